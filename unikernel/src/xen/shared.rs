//! The shared-info page: placed into our physmap with
//! `XENMEM_add_to_physmap(XENMAPSPACE_shared_info)`, then read and written
//! only through the accessors here (atomics for the words Xen changes
//! concurrently, a seqlock read for the time info).

use super::XenError;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use xen_abi::memory::{XenAddToPhysmap, XENMAPSPACE_SHARED_INFO, XENMEM_ADD_TO_PHYSMAP};
use xen_abi::shared_info::{SharedInfo, VcpuInfo, VcpuTimeInfo};
use xen_abi::xen::DOMID_SELF;

/// Address of the page (0 until [`map`]).
static BASE: AtomicU64 = AtomicU64::new(0);

/// Asks Xen to place the shared-info page at `gfn` (which must be mapped in
/// our page tables: the reserved region).
pub fn map(gfn: u64) -> Result<(), XenError> {
    let mut xatp = XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: gfn,
    };
    // SAFETY: `xatp` lives across the call; Xen only reads it.
    let rc = unsafe {
        xen_abi::hypercall::memory_op(
            XENMEM_ADD_TO_PHYSMAP,
            (&mut xatp as *mut XenAddToPhysmap).cast(),
        )
    };
    XenError::check("XENMEM_add_to_physmap(shared_info)", rc)?;
    BASE.store(gfn << 12, Ordering::Release);
    Ok(())
}

/// True once the page is mapped.
pub fn mapped() -> bool {
    BASE.load(Ordering::Acquire) != 0
}

fn base() -> u64 {
    let b = BASE.load(Ordering::Acquire);
    assert!(b != 0, "shared_info used before it was mapped");
    b
}

fn word(offset: usize) -> &'static AtomicU64 {
    // SAFETY: `offset` is a field offset inside `SharedInfo` (callers use
    // `offset_of!`), 8-byte aligned; the page stays mapped for the life of the
    // domain, and Xen accesses these words atomically too.
    unsafe { &*((base() + offset as u64) as *const AtomicU64) }
}

/// vCPU 0's `evtchn_pending_sel`.
pub fn pending_sel() -> &'static AtomicU64 {
    word(offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, evtchn_pending_sel))
}

/// Pending word `w` (0..64).
pub fn pending(w: usize) -> &'static AtomicU64 {
    word(offset_of!(SharedInfo, evtchn_pending) + 8 * (w % 64))
}

/// Mask word `w` (0..64).
pub fn mask(w: usize) -> &'static AtomicU64 {
    word(offset_of!(SharedInfo, evtchn_mask) + 8 * (w % 64))
}

/// vCPU 0's `evtchn_upcall_pending`.
pub fn upcall_pending() -> &'static AtomicU8 {
    let off = offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, evtchn_upcall_pending);
    // SAFETY: as in `word`, for a byte field.
    unsafe { &*((base() + off as u64) as *const AtomicU8) }
}

/// A consistent copy of vCPU 0's time info (retries while Xen updates it).
pub fn time_info() -> VcpuTimeInfo {
    let p = (base() + (offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, time)) as u64)
        as *const VcpuTimeInfo;
    // SAFETY: `version` is the first field of the mapped VcpuTimeInfo;
    // reading it atomically is how the seqlock is meant to be read.
    let version = unsafe { &*(p as *const core::sync::atomic::AtomicU32) };
    loop {
        let v1 = version.load(Ordering::Acquire);
        // SAFETY: a plain copy of the mapped struct; torn reads are detected
        // by the version check below and retried.
        let t = unsafe { core::ptr::read_volatile(p) };
        core::sync::atomic::fence(Ordering::Acquire);
        let v2 = version.load(Ordering::Relaxed);
        if v1 == v2 && v1 & 1 == 0 {
            return t;
        }
        core::hint::spin_loop();
    }
}
