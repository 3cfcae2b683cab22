//! Grant tables, v1: our own table (frames placed into the reserved region
//! with `XENMAPSPACE_grant_table`) and granting our pages to other domains.
//! Mapping other domains' grants is `foreign.rs`.
//!
//! # Invariants
//! - A ref we hand out is written `domid`, `frame`, barrier, `flags`; it is
//!   revoked only when Xen no longer has it mapped.

use super::XenError;
use crate::grant_entry::{encode_permit, in_use, EncodeError, RefAllocator};
use core::sync::atomic::{AtomicU16, Ordering};
use xen_abi::grant_table::*;
use xen_abi::memory::{XenAddToPhysmap, XENMAPSPACE_GRANT_TABLE, XENMEM_ADD_TO_PHYSMAP};
use xen_abi::xen::{DomId, DOMID_SELF};

/// Grant-table frames we set up ([`crate::layout::GRANT_FRAMES_WANTED`]).
pub const FRAMES_WANTED: u32 = crate::layout::GRANT_FRAMES_WANTED;
const REF_WORDS: usize = (FRAMES_WANTED as usize * GRANT_ENTRIES_V1_PER_FRAME).div_ceil(64);

/// Our grant table.
pub struct GrantTable {
    base: u64,
    frames: u32,
    max_frames: u32,
    refs: spin::Mutex<RefAllocator<REF_WORDS>>,
}

/// Why a grant could not be made or revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// No free grant ref.
    NoRefs,
    /// The frame cannot be expressed in a v1 entry.
    Encode(EncodeError),
    /// The grantee still has the page mapped.
    InUse(GrantRef),
    /// Not one of our refs.
    BadRef(GrantRef),
}

fn query_size() -> Result<GnttabQuerySize, XenError> {
    let mut q = GnttabQuerySize { dom: DOMID_SELF, ..Default::default() };
    // SAFETY: one `gnttab_query_size`, alive across the call.
    let rc = unsafe {
        xen_abi::hypercall::grant_table_op(
            GNTTABOP_QUERY_SIZE,
            (&mut q as *mut GnttabQuerySize).cast(),
            1,
        )
    };
    XenError::check("GNTTABOP_query_size", rc)?;
    if q.status != GNTST_OKAY {
        return Err(XenError { op: "GNTTABOP_query_size status", rc: q.status as i64 });
    }
    Ok(q)
}

impl GrantTable {
    /// Places up to [`FRAMES_WANTED`] table frames at `first_gfn..` (which
    /// must be identity-mapped) and makes the table usable.
    pub fn setup(first_gfn: u64, max_gfns: u64) -> Result<GrantTable, XenError> {
        let q = query_size()?;
        let frames = FRAMES_WANTED.min(q.max_nr_frames).min(max_gfns as u32).max(1);
        for idx in 0..frames {
            let mut xatp = XenAddToPhysmap {
                domid: DOMID_SELF,
                size: 0,
                space: XENMAPSPACE_GRANT_TABLE,
                idx: idx as u64,
                gpfn: first_gfn + idx as u64,
            };
            // SAFETY: `xatp` lives across the call; Xen only reads it.
            let rc = unsafe {
                xen_abi::hypercall::memory_op(
                    XENMEM_ADD_TO_PHYSMAP,
                    (&mut xatp as *mut XenAddToPhysmap).cast(),
                )
            };
            XenError::check("XENMEM_add_to_physmap(grant_table)", rc)?;
        }
        let capacity = frames * GRANT_ENTRIES_V1_PER_FRAME as u32;
        Ok(GrantTable {
            base: first_gfn << 12,
            frames,
            max_frames: q.max_nr_frames,
            refs: spin::Mutex::new(RefAllocator::new(capacity)),
        })
    }

    /// Frames mapped, and the most Xen allows.
    pub fn frames(&self) -> (u32, u32) {
        (self.frames, self.max_frames)
    }

    fn entry(&self, r: GrantRef) -> *mut GrantEntryV1 {
        (self.base as *mut GrantEntryV1).wrapping_add(r as usize)
    }

    fn capacity(&self) -> u32 {
        self.frames * GRANT_ENTRIES_V1_PER_FRAME as u32
    }

    /// Lets `domid` map our page `gfn` (read-only if `readonly`).
    pub fn grant(&self, domid: DomId, gfn: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        let e = encode_permit(domid, gfn, readonly).map_err(GrantError::Encode)?;
        let r = self.refs.lock().alloc().ok_or(GrantError::NoRefs)?;
        let p = self.entry(r);
        // SAFETY: `r` < capacity, so `p` is inside the mapped table frames;
        // the entry is ours (free until now, flags 0, so Xen ignores it) and
        // `flags` is written last, atomically, after a release fence.
        unsafe {
            core::ptr::write_volatile(core::ptr::addr_of_mut!((*p).domid), e.domid);
            core::ptr::write_volatile(core::ptr::addr_of_mut!((*p).frame), e.frame);
            core::sync::atomic::fence(Ordering::Release);
            (*(core::ptr::addr_of_mut!((*p).flags) as *const AtomicU16))
                .store(e.flags, Ordering::Release);
        }
        Ok(r)
    }

    /// Revokes `r` if the grantee has it unmapped; frees the ref.
    pub fn end_grant(&self, r: GrantRef) -> Result<(), GrantError> {
        if r < GNTTAB_NR_RESERVED_ENTRIES || r >= self.capacity() {
            return Err(GrantError::BadRef(r));
        }
        // SAFETY: `r` is inside the table; Xen updates `flags` atomically
        // (GTF_reading/writing), so it is accessed as an AtomicU16.
        let flags =
            unsafe { &*(core::ptr::addr_of_mut!((*self.entry(r)).flags) as *const AtomicU16) };
        let mut cur = flags.load(Ordering::Acquire);
        loop {
            if in_use(cur) {
                return Err(GrantError::InUse(r));
            }
            match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.refs.lock().free(r);
        Ok(())
    }
}
