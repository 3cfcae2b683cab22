//! Changes to the boot page tables (`boot.rs`: identity map of 0..4 GiB with
//! 2 MiB pages): the stack guard page is unmapped, the reserved physmap
//! region (shared info, grant frames, foreign-grant window) is
//! identity-mapped once Xen has been asked to put frames there, and single
//! 4 KiB pages get new attributes (`mmio`'s uncached BAR pages).
//!
//! The table and entry types, the flags, the index arithmetic, `invlpg` and
//! the read-only walk in [`is_unmapped`] are the `x86_64` crate's; what it
//! has no call for is here: splitting a 2 MiB page into a table that maps
//! the same frames, and a fixed pool of table pages.
//!
//! # Invariants
//! - Virtual address == guest-physical address for everything mapped, the
//!   table pages included (they live in `.bss`, below 4 GiB).
//! - The tables form a tree: every table page is referenced by exactly one
//!   entry (or CR3), so a `&mut` to an entry is exclusive access to the
//!   table below it.
//! - The guard page below the main stack (and the one below the exception
//!   stack) is not present: an overflow faults instead of corrupting `.bss`.
//! - Table pages come from a fixed pool in `.bss`; running out is an error,
//!   never an overwrite.
//! - Only this module reads or writes the tables, on the single vCPU, never
//!   from an interrupt handler.
//! - Once [`protect_boot_state`] ran, what delivers an exception and what
//!   nothing but Xen or this module should write is mapped read-only: the
//!   image's code and read-only data, the hypercall page, the GDT/TSS/IDT,
//!   and every table page. This module writes tables with `CR0.WP` cleared,
//!   interrupts off, for the length of one [`with_root`]. A stray write
//!   elsewhere in the image then faults and is reported with its RIP,
//!   instead of corrupting what exception delivery needs (which would end
//!   in a triple fault that no handler can report).

use core::cell::UnsafeCell;
use core::sync::atomic::{compiler_fence, Ordering};

use x86_64::instructions::{interrupts, tlb};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3};
use x86_64::structures::paging::mapper::TranslateResult;
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{
    OffsetPageTable, PageSize, PageTable, PageTableFlags as Flags, Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

const POOL_PAGES: usize = 8;

struct Pool {
    pages: [PageTable; POOL_PAGES],
    used: usize,
}

struct PoolCell(UnsafeCell<Pool>);
// SAFETY: only this module touches the pool, from the single vCPU at init,
// with interrupts off or before they are enabled (see the callers in `start`).
unsafe impl Sync for PoolCell {}

static POOL: PoolCell =
    PoolCell(UnsafeCell::new(Pool { pages: [const { PageTable::new() }; POOL_PAGES], used: 0 }));

extern "C" {
    static __stack_guard: u8;
    static __ist_guard: u8;
    static __image_start: u8;
    static __rodata_end: u8;
    static boot_pml4: u8;
    static boot_pd: u8;
}

/// The boot tables (`boot.rs`): PML4, PDPT and four PDs, contiguous.
const BOOT_TABLE_PAGES: u64 = 6;

/// Why a mapping change failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// The fixed pool of table pages is used up.
    PoolExhausted,
    /// The address is outside what the tables can reach (above 4 GiB for a
    /// 4 KiB change, above one PML4 slot's 512 GiB for a gigabyte, or in a
    /// region without tables).
    OutOfRange(u64),
    /// A 1 GiB region that is already (partly) mapped.
    AlreadyMapped(u64),
}

/// Takes a page from the pool, lets `fill` write each of its 512 entries,
/// and returns its address (physical == virtual) for a parent entry.
fn new_table(mut fill: impl FnMut(u64, &mut PageTableEntry)) -> Result<PhysAddr, PagingError> {
    // SAFETY: see `PoolCell`: exclusive access on the single vCPU at init;
    // each page is handed out once, so no two callers share one.
    let pool = unsafe { &mut *POOL.0.get() };
    let i = pool.used;
    if i == POOL_PAGES {
        return Err(PagingError::PoolExhausted);
    }
    pool.used += 1;
    let table = &mut pool.pages[i];
    for (n, entry) in table.iter_mut().enumerate() {
        fill(n as u64, entry);
    }
    Ok(PhysAddr::new(table as *mut PageTable as u64))
}

/// Runs `f` on the live PML4 (the one CR3 names), with interrupts off and
/// `CR0.WP` clear, so that `f` can write table pages that are mapped
/// read-only ([`protect_boot_state`]).
fn with_root<R>(f: impl FnOnce(&mut PageTable) -> R) -> R {
    interrupts::without_interrupts(|| {
        let cr0 = Cr0::read();
        // SAFETY: with WP clear, supervisor writes ignore read-only
        // mappings; interrupts are off, so only `f` runs meanwhile, and `f`
        // writes table entries only (module invariants). WP is restored
        // below, before anything else runs.
        unsafe { Cr0::write(cr0 - Cr0Flags::WRITE_PROTECT) };
        let (pml4, _) = Cr3::read();
        // SAFETY: CR3 names the live PML4 (`boot.rs`), identity-mapped; only
        // this module touches the tables, on the single vCPU and never from
        // an interrupt handler (module invariants), so this is the only
        // reference.
        let r = f(unsafe { &mut *(pml4.start_address().as_u64() as *mut PageTable) });
        // The MMU reads the tables behind the compiler's back: keep every
        // table write before whatever the caller does next through the new
        // mapping (and before WP comes back).
        compiler_fence(Ordering::SeqCst);
        // SAFETY: restores the caller's CR0 (WP set again).
        unsafe { Cr0::write(cr0) };
        r
    })
}

/// The table that `entry` (of a PML4, PDPT or PD) points at, if it points
/// at one (present, not a huge page).
fn next_table(entry: &mut PageTableEntry) -> Option<&mut PageTable> {
    let flags = entry.flags();
    if !flags.contains(Flags::PRESENT) || flags.contains(Flags::HUGE_PAGE) {
        return None;
    }
    // SAFETY: a present non-leaf entry of the live tables holds a table
    // page's address, identity-mapped; the tree invariant makes the borrow
    // of `entry` exclusive access to that page.
    Some(unsafe { &mut *(entry.addr().as_u64() as *mut PageTable) })
}

/// The 4 KiB entry that maps `addr`. A 2 MiB page around it is first split
/// into a table that maps the same frames with the same access and cache
/// attributes (the TLB entries of the old 2 MiB page are then flushed).
fn pt_entry(root: &mut PageTable, addr: VirtAddr) -> Result<&mut PageTableEntry, PagingError> {
    let out_of_range = PagingError::OutOfRange(addr.as_u64());
    let pdpt = next_table(&mut root[addr.p4_index()]).ok_or(out_of_range)?;
    let pd = next_table(&mut pdpt[addr.p3_index()]).ok_or(out_of_range)?;
    let pde = &mut pd[addr.p2_index()];
    let flags = pde.flags();
    if !flags.contains(Flags::PRESENT) {
        return Err(out_of_range);
    }
    if flags.contains(Flags::HUGE_PAGE) {
        let frame = pde.addr().align_down(Size2MiB::SIZE);
        let kept =
            flags & (Flags::PRESENT | Flags::WRITABLE | Flags::WRITE_THROUGH | Flags::NO_CACHE);
        let pt = new_table(|i, e| e.set_addr(frame + i * Size4KiB::SIZE, kept))?;
        pde.set_addr(pt, Flags::PRESENT | Flags::WRITABLE);
        tlb::flush(addr.align_down(Size2MiB::SIZE));
    }
    let pt = next_table(pde).ok_or(out_of_range)?;
    Ok(&mut pt[addr.p1_index()])
}

/// Sets the 4 KiB entry of `addr` (below 4 GiB) with `set`, then flushes
/// its TLB entry.
fn update_4k(addr: u64, set: impl FnOnce(&mut PageTableEntry)) -> Result<(), PagingError> {
    if addr >= 1 << 32 {
        return Err(PagingError::OutOfRange(addr));
    }
    let virt = VirtAddr::new(addr);
    with_root(|root| pt_entry(root, virt).map(set))?;
    tlb::flush(virt);
    Ok(())
}

/// Unmaps the 4 KiB page at `addr` (below 4 GiB).
fn unmap_4k(addr: u64) -> Result<(), PagingError> {
    update_4k(addr, PageTableEntry::set_unused)
}

/// Identity-maps the 4 KiB page at `addr` (below 4 GiB, page-aligned)
/// with `flags` (`PRESENT` is added).
pub(super) fn map_4k(addr: u64, flags: Flags) -> Result<(), PagingError> {
    if !addr.is_multiple_of(Size4KiB::SIZE) {
        return Err(PagingError::OutOfRange(addr));
    }
    update_4k(addr, |e| e.set_addr(PhysAddr::new(addr), flags | Flags::PRESENT))
}

/// Unmaps the guard pages below the main and the exception stack.
pub fn unmap_guard_pages() -> Result<(), PagingError> {
    unmap_4k(core::ptr::addr_of!(__stack_guard) as u64)?;
    unmap_4k(core::ptr::addr_of!(__ist_guard) as u64)
}

/// Maps the 4 KiB pages of `[start, end)` (below 4 GiB) read-only.
fn write_protect(start: u64, end: u64) -> Result<(), PagingError> {
    let mut page = start & !(Size4KiB::SIZE - 1);
    while page < end {
        update_4k(page, |e| e.set_flags(e.flags() - Flags::WRITABLE))?;
        page += Size4KiB::SIZE;
    }
    Ok(())
}

/// Maps read-only, for good, what only the CPU, Xen or this module write
/// after boot (module invariants): the image's code and read-only data,
/// the hypercall page (`hypercall_page`, once Xen filled it), the
/// descriptor tables (`descriptor_tables`, loaded) and every table page.
pub fn protect_boot_state(
    hypercall_page: u64,
    descriptor_tables: (u64, u64),
) -> Result<(), PagingError> {
    let (image, rodata_end) = code_range();
    let boot_tables = core::ptr::addr_of!(boot_pml4) as u64;
    debug_assert_eq!(core::ptr::addr_of!(boot_pd) as u64, boot_tables + 2 * Size4KiB::SIZE);
    // SAFETY: only the address of the pool is taken, no reference.
    let pool = unsafe { core::ptr::addr_of!((*POOL.0.get()).pages) } as u64;
    write_protect(image, rodata_end)?;
    write_protect(hypercall_page, hypercall_page + Size4KiB::SIZE)?;
    write_protect(descriptor_tables.0, descriptor_tables.1)?;
    write_protect(boot_tables, boot_tables + BOOT_TABLE_PAGES * Size4KiB::SIZE)?;
    write_protect(pool, pool + POOL_PAGES as u64 * Size4KiB::SIZE)
}

/// The image's code and read-only data, `[start, end)`: read-only once
/// [`protect_boot_state`] ran.
pub fn code_range() -> (u64, u64) {
    (core::ptr::addr_of!(__image_start) as u64, core::ptr::addr_of!(__rodata_end) as u64)
}

/// The address of the main stack's guard page.
pub fn stack_guard() -> u64 {
    core::ptr::addr_of!(__stack_guard) as u64
}

/// The flags of the leaf entry that maps `addr`, if one does (the `x86_64`
/// crate's walk).
fn leaf_flags(addr: u64) -> Option<Flags> {
    let virt = VirtAddr::try_new(addr).ok()?; // non-canonical: never translated
    with_root(|root| {
        // SAFETY: physical == virtual for every table page (module
        // invariant), which is what a physical-memory offset of 0 asserts;
        // the walk only reads.
        let tables = unsafe { OffsetPageTable::new(root, VirtAddr::zero()) };
        match tables.translate(virt) {
            TranslateResult::Mapped { flags, .. } => Some(flags),
            _ => None,
        }
    })
}

/// True when `addr` has no present translation.
pub fn is_unmapped(addr: u64) -> bool {
    leaf_flags(addr).is_none()
}

/// True when `addr` is mapped without write access (every table above a
/// leaf is writable here, so the leaf decides).
pub fn is_read_only(addr: u64) -> bool {
    leaf_flags(addr).is_some_and(|f| !f.contains(Flags::WRITABLE))
}

/// Identity-maps the 1 GiB-aligned gigabyte at `base` with 2 MiB pages.
pub fn map_gigabyte(base: u64) -> Result<(), PagingError> {
    if base >= 1 << 39 || base & ((1 << 30) - 1) != 0 {
        return Err(PagingError::OutOfRange(base));
    }
    let virt = VirtAddr::new(base);
    with_root(|root| {
        let pdpt = next_table(&mut root[virt.p4_index()]).ok_or(PagingError::OutOfRange(base))?;
        let slot = &mut pdpt[virt.p3_index()];
        // Only an empty slot is filled, so no live mapping changes (and
        // there is no TLB entry to flush).
        if slot.flags().contains(Flags::PRESENT) {
            return Err(PagingError::AlreadyMapped(base));
        }
        let flags = Flags::PRESENT | Flags::WRITABLE | Flags::HUGE_PAGE;
        let pd = new_table(|i, e| e.set_addr(PhysAddr::new(base + i * Size2MiB::SIZE), flags))?;
        slot.set_addr(pd, Flags::PRESENT | Flags::WRITABLE);
        Ok(())
    })
}
