//! Changes to the boot page tables (`boot.rs`: identity map of 0..4 GiB with
//! 2 MiB pages): the stack guard page is unmapped, and the reserved physmap
//! region (shared info, grant frames, foreign-grant window) is identity-mapped
//! once Xen has been asked to put frames there.
//!
//! # Invariants
//! - Virtual address == guest-physical address for everything mapped.
//! - The guard page below the main stack (and the one below the exception
//!   stack) is not present: an overflow faults instead of corrupting `.bss`.
//! - Table pages come from a fixed pool in `.bss`; running out is an error,
//!   never an overwrite.

use core::cell::UnsafeCell;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const POOL_PAGES: usize = 8;

#[repr(C, align(4096))]
struct TablePage([u64; 512]);

struct Pool {
    pages: [TablePage; POOL_PAGES],
    used: usize,
}

struct PoolCell(UnsafeCell<Pool>);
// SAFETY: only this module touches the pool, from the single vCPU at init,
// with interrupts off or before they are enabled (see the callers in `start`).
unsafe impl Sync for PoolCell {}

static POOL: PoolCell =
    PoolCell(UnsafeCell::new(Pool { pages: [const { TablePage([0; 512]) }; POOL_PAGES], used: 0 }));

extern "C" {
    static boot_pml4: [u64; 512];
    static __stack_guard: u8;
    static __ist_guard: u8;
}

/// Why a mapping change failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// The fixed pool of table pages is used up.
    PoolExhausted,
    /// The address is outside what one PML4 slot (512 GiB) covers.
    OutOfRange(u64),
    /// A 1 GiB region that is already (partly) mapped.
    AlreadyMapped(u64),
}

pub(super) fn alloc_table() -> Result<*mut u64, PagingError> {
    // SAFETY: see `PoolCell`: exclusive access on the single vCPU at init.
    let pool = unsafe { &mut *POOL.0.get() };
    let page = pool.pages.get_mut(pool.used).ok_or(PagingError::PoolExhausted)?;
    pool.used += 1;
    Ok(page.0.as_mut_ptr())
}

pub(super) fn pdpt() -> *mut u64 {
    // SAFETY: boot_pml4 is the live root (boot.rs); entry 0 points at the
    // PDPT, identity-mapped like all boot tables.
    let e = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(boot_pml4).cast::<u64>()) };
    (e & ADDR_MASK) as *mut u64
}

/// Unmaps the 4 KiB page at `addr` (below 4 GiB), splitting its 2 MiB page.
fn unmap_4k(addr: u64) -> Result<(), PagingError> {
    if addr >= 1 << 32 {
        return Err(PagingError::OutOfRange(addr));
    }
    // SAFETY: the PDPT/PD entries read and written here are the boot tables
    // (identity-mapped, in .bss); the split PT maps exactly what the 2 MiB
    // entry mapped, except the one page; the TLB entry is flushed after.
    unsafe {
        let pdpte = core::ptr::read_volatile(pdpt().add((addr >> 30) as usize));
        let pd = (pdpte & ADDR_MASK) as *mut u64;
        let pde_p = pd.add(((addr >> 21) & 511) as usize);
        let pde = core::ptr::read_volatile(pde_p);
        let pt = if pde & HUGE != 0 {
            let pt = alloc_table()?;
            let base = pde & ADDR_MASK & !0x1f_ffff;
            for i in 0..512u64 {
                core::ptr::write_volatile(
                    pt.add(i as usize),
                    (base + (i << 12)) | PRESENT | WRITABLE,
                );
            }
            core::ptr::write_volatile(pde_p, pt as u64 | PRESENT | WRITABLE);
            pt
        } else {
            (pde & ADDR_MASK) as *mut u64
        };
        core::ptr::write_volatile(pt.add(((addr >> 12) & 511) as usize), 0);
    }
    super::cpu::invlpg(addr);
    super::cpu::invlpg(addr & !0x1f_ffff);
    Ok(())
}

/// Unmaps the guard pages below the main and the exception stack.
pub fn unmap_guard_pages() -> Result<(), PagingError> {
    unmap_4k(core::ptr::addr_of!(__stack_guard) as u64)?;
    unmap_4k(core::ptr::addr_of!(__ist_guard) as u64)
}

/// The address of the main stack's guard page.
pub fn stack_guard() -> u64 {
    core::ptr::addr_of!(__stack_guard) as u64
}

/// True when `addr` (below 4 GiB) has no present translation.
pub fn is_unmapped(addr: u64) -> bool {
    // SAFETY: reads of the live boot tables, which are identity-mapped.
    unsafe {
        let pdpte = core::ptr::read_volatile(pdpt().add((addr >> 30) as usize & 511));
        if pdpte & PRESENT == 0 {
            return true;
        }
        let pde = core::ptr::read_volatile(
            ((pdpte & ADDR_MASK) as *const u64).add(((addr >> 21) & 511) as usize),
        );
        if pde & PRESENT == 0 {
            return true;
        }
        if pde & HUGE != 0 {
            return false;
        }
        let pte = core::ptr::read_volatile(
            ((pde & ADDR_MASK) as *const u64).add(((addr >> 12) & 511) as usize),
        );
        pte & PRESENT == 0
    }
}

/// Identity-maps the 1 GiB-aligned gigabyte at `base` with 2 MiB pages.
pub fn map_gigabyte(base: u64) -> Result<(), PagingError> {
    if base >= 1 << 39 || base & ((1 << 30) - 1) != 0 {
        return Err(PagingError::OutOfRange(base));
    }
    // SAFETY: the PDPT slot is checked empty, so no live mapping changes;
    // the new PD maps only the requested gigabyte.
    unsafe {
        let slot = pdpt().add((base >> 30) as usize);
        if core::ptr::read_volatile(slot) & PRESENT != 0 {
            return Err(PagingError::AlreadyMapped(base));
        }
        let pd = alloc_table()?;
        for i in 0..512u64 {
            core::ptr::write_volatile(
                pd.add(i as usize),
                (base + (i << 21)) | PRESENT | WRITABLE | HUGE,
            );
        }
        core::ptr::write_volatile(slot, pd as u64 | PRESENT | WRITABLE);
    }
    Ok(())
}
