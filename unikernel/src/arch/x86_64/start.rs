//! The first Rust code: from `boot.rs`'s long-mode jump to the application's
//! `main`, with the CPU tables, the stack guard, hypercalls, the memory map,
//! the heap and a console ready.

use super::{cpu, paging, traps};
use crate::kernel::{self, Kernel};
use crate::memmap::{MemoryMap, Range};
use crate::xen::{console, hcall};
use xen_abi::start_info::{
    HvmModlistEntry, HvmStartInfo, HVM_START_INFO_V0_SIZE, XEN_HVM_START_MAGIC_VALUE,
};

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

extern "Rust" {
    /// Defined by [`crate::entry!`] in the image.
    fn __unikernel_main(k: Kernel) -> !;
}

/// Reads `T` at physical address `paddr`.
///
/// # Safety
/// `paddr..paddr + size_of::<T>()` must be identity-mapped memory (the boot
/// tables map 0..4 GiB, and Xen places boot data below 4 GiB).
unsafe fn read_phys<T: Copy>(paddr: u64) -> T {
    // SAFETY: forwarded; unaligned read, since Xen's layout is its own.
    unsafe { core::ptr::read_unaligned(paddr as *const T) }
}

/// The boot data's footprint, and the map.
fn read_start_info(paddr: u64) -> (HvmStartInfo, [Range; 8], usize) {
    if paddr == 0 || paddr >= 1 << 32 {
        panic!("start info at {paddr:#x}: not below 4 GiB (PVH puts it there)");
    }
    // SAFETY: below 4 GiB (checked), identity-mapped; version-0 fields only
    // until the version is known.
    let magic: u32 = unsafe { read_phys(paddr) };
    if magic != XEN_HVM_START_MAGIC_VALUE {
        panic!("bad hvm_start_info magic {magic:#x} at {paddr:#x} (want {XEN_HVM_START_MAGIC_VALUE:#x})");
    }
    // SAFETY: as above; the struct is 56 bytes below 4 GiB.
    let mut si: HvmStartInfo = unsafe { read_phys(paddr) };
    let mut used = [Range::default(); 8];
    let mut n = 0;
    if si.version == 0 {
        si.memmap_paddr = 0;
        si.memmap_entries = 0;
        used[n] = Range::new(paddr, HVM_START_INFO_V0_SIZE as u64);
    } else {
        used[n] = Range::new(paddr, core::mem::size_of::<HvmStartInfo>() as u64);
    }
    n += 1;
    if si.memmap_entries > 0 {
        used[n] = Range::new(si.memmap_paddr, si.memmap_entries as u64 * 24);
        n += 1;
    }
    if si.nr_modules > 0 {
        used[n] = Range::new(si.modlist_paddr, si.nr_modules as u64 * 32);
        n += 1;
    }
    if si.cmdline_paddr != 0 {
        used[n] = Range::new(si.cmdline_paddr, 4096);
        n += 1;
    }
    (si, used, n)
}

fn memory_map(si: &HvmStartInfo) -> MemoryMap {
    if si.memmap_entries > 0 && si.memmap_paddr < 1 << 32 {
        let len = (si.memmap_entries as usize).min(crate::memmap::MAX_REGIONS + 64) * 24;
        // SAFETY: Xen wrote `memmap_entries` entries at `memmap_paddr`, below
        // 4 GiB (checked), identity-mapped; the slice is only read, at boot.
        let bytes = unsafe { core::slice::from_raw_parts(si.memmap_paddr as *const u8, len) };
        MemoryMap::from_start_info_bytes(bytes)
    } else {
        crate::xen::memory::memory_map().unwrap_or_else(|e| {
            panic!("no memory map: start info v{} has none and {e}", si.version)
        })
    }
}

/// The start info's command line ("" if none or not UTF-8), up to 1 KiB.
fn read_cmdline(paddr: u64) -> &'static str {
    if paddr == 0 || paddr >= 1 << 32 {
        return "";
    }
    // SAFETY: Xen wrote a NUL-terminated string at `paddr` (below 4 GiB,
    // identity-mapped, reserved from the heap with 4 KiB around it); at most
    // 1 KiB is read, and the bytes are never written.
    let bytes = unsafe { core::slice::from_raw_parts(paddr as *const u8, 1024) };
    let len = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..len]).unwrap_or("")
}

/// The Rust entry, called by `boot.rs` on the main stack.
#[no_mangle]
extern "C" fn unikernel_start64(start_info_paddr: u64) -> ! {
    cpu::enable_sse();
    console::write(b"gpu-dom: PVH entry reached long mode\n");
    traps::init();
    if let Err(e) = paging::unmap_guard_pages() {
        panic!("cannot unmap the stack guard pages: {e:?}");
    }
    let xen_version = match hcall::init() {
        Ok(v) => v,
        Err(e) => panic!("no hypercall page: {e:?}"),
    };
    let hypercall_page = xen_abi::hypercall::HYPERCALL_PAGE.addr();
    if let Err(e) = paging::protect_boot_state(hypercall_page, traps::descriptor_tables()) {
        panic!("cannot map the image's code and the CPU's tables read-only: {e:?}");
    }
    let (si, boot_data, n) = read_start_info(start_info_paddr);
    let map = memory_map(&si);

    let mut reserved = [Range::default(); 16];
    // Linker-script symbols: only their addresses are used.
    let image = Range {
        start: core::ptr::addr_of!(__image_start) as u64,
        end: core::ptr::addr_of!(__image_end) as u64,
    };
    reserved[0] = image;
    reserved[1..1 + n].copy_from_slice(&boot_data[..n]);
    let mut r = 1 + n;
    for i in 0..(si.nr_modules as u64).min(4) {
        // SAFETY: Xen wrote `nr_modules` entries at `modlist_paddr` (below 4 GiB).
        let m: HvmModlistEntry = unsafe { read_phys(si.modlist_paddr + i * 32) };
        reserved[r] = Range::new(m.paddr, m.size);
        r += 1;
    }
    let k =
        kernel::init(si, read_cmdline(si.cmdline_paddr), map, &mut reserved, r, xen_version, image);
    // SAFETY: `entry!` defines this function with exactly this signature.
    unsafe { __unikernel_main(k) }
}
