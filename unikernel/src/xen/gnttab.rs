//! Grant tables, v1: our own table (frames placed into the reserved region
//! with `XENMAPSPACE_grant_table`), granting our pages to other domains, and
//! mapping other domains' grants, batched, into the foreign-grant window of
//! our own physmap (`GNTTABOP_map_grant_ref` with `GNTMAP_host_map`,
//! `host_addr` = window GFN << 12). With a PVH/HVM driver domain, that
//! physmap is what the IOMMU enforces, so the window address is also the
//! page's bus address for a device we own.
//!
//! # Invariants
//! - A ref we hand out is written `domid`, `frame`, barrier, `flags`; it is
//!   revoked only when Xen no longer has it mapped.
//! - A window GFN holds at most one mapping; a GFN whose unmap Xen refused
//!   stays reserved (never reused while something may be mapped there).
//! - A failed map leaves nothing mapped and its GFN free.

use super::XenError;
use crate::grant_entry::{encode_permit, in_use, EncodeError, RefAllocator};
use crate::window::Window;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use xen_abi::grant_table::*;
use xen_abi::memory::{XenAddToPhysmap, XENMAPSPACE_GRANT_TABLE, XENMEM_ADD_TO_PHYSMAP};
use xen_abi::xen::{DomId, DOMID_SELF};

/// Grant-table frames we set up (v1: 512 refs each).
pub const FRAMES_WANTED: u32 = 4;
const REF_WORDS: usize = (FRAMES_WANTED as usize * GRANT_ENTRIES_V1_PER_FRAME).div_ceil(64);
/// Grants mapped or unmapped per hypercall.
pub const BATCH: usize = 32;

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

/// Maps other domains' grants into the foreign-grant window.
pub struct ForeignMapper {
    window: Window,
    refused_unmaps: AtomicU32,
}

/// One grant to map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    /// The granting domain.
    pub dom: DomId,
    /// Its grant ref.
    pub gref: GrantRef,
    /// Map with `GNTMAP_readonly`.
    pub readonly: bool,
}

/// A mapped grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The window GFN it occupies.
    pub gfn: u64,
    /// Xen's handle, for the unmap.
    pub handle: GrantHandle,
}

/// Why one grant was not mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Xen's `GNTST_*` status for the entry (or the hypercall's rc if it failed whole).
    Xen(i16),
    /// The window is full.
    WindowFull,
}

impl ForeignMapper {
    /// A mapper over `frames` GFNs from `base_gfn` (identity-mapped region).
    pub fn new(base_gfn: u64, frames: u64) -> Self {
        ForeignMapper { window: Window::new(base_gfn, frames), refused_unmaps: AtomicU32::new(0) }
    }

    /// Window GFNs in use.
    pub fn in_use(&self) -> u64 {
        self.window.in_use()
    }

    /// Copies the page mapped at `m` into `buf` (CPU access through the
    /// window, e.g. to check a mapping).
    pub fn read(&self, m: &Mapped, buf: &mut [u8; 4096]) -> bool {
        if !self.window.contains(m.gfn) {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `m.gfn` is a window GFN (checked), identity-mapped in the
            // reserved region; if the grant was unmapped meanwhile, the read
            // returns Xen's filler for an empty GFN, never another page.
            *b = unsafe { core::ptr::read_volatile(((m.gfn << 12) + i as u64) as *const u8) };
        }
        true
    }

    /// Maps `reqs` (in batches of [`BATCH`] per hypercall); `out[i]` gets
    /// the outcome of `reqs[i]`.
    pub fn map(&mut self, reqs: &[MapRequest], out: &mut [Result<Mapped, MapError>]) {
        for (reqs, out) in reqs.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let mut ops = [GnttabMapGrantRef::default(); BATCH];
            let mut slot = [usize::MAX; BATCH]; // ops index -> reqs index
            let mut n = 0;
            for (i, r) in reqs.iter().enumerate() {
                let Some(gfn) = self.window.take() else {
                    out[i] = Err(MapError::WindowFull);
                    continue;
                };
                ops[n] = GnttabMapGrantRef {
                    host_addr: gfn << 12,
                    flags: GNTMAP_HOST_MAP | if r.readonly { GNTMAP_READONLY } else { 0 },
                    ref_: r.gref,
                    dom: r.dom,
                    ..Default::default()
                };
                slot[n] = i;
                n += 1;
            }
            if n == 0 {
                continue;
            }
            // SAFETY: `ops[..n]` are initialised map requests, alive across the
            // call; Xen writes their status/handle fields.
            let rc = unsafe {
                xen_abi::hypercall::grant_table_op(
                    GNTTABOP_MAP_GRANT_REF,
                    ops.as_mut_ptr().cast(),
                    n as u32,
                )
            };
            for k in 0..n {
                let gfn = ops[k].host_addr >> 12;
                let res = if rc < 0 {
                    Err(MapError::Xen(GNTST_GENERAL_ERROR))
                } else if ops[k].status != GNTST_OKAY {
                    Err(MapError::Xen(ops[k].status))
                } else {
                    Ok(Mapped { gfn, handle: ops[k].handle })
                };
                if res.is_err() {
                    self.window.release(gfn);
                }
                out[slot[k]] = res;
            }
        }
    }

    /// Unmaps `maps` (batched); returns how many Xen refused (their GFNs stay
    /// reserved).
    pub fn unmap(&mut self, maps: &[Mapped]) -> usize {
        let mut refused = 0;
        for chunk in maps.chunks(BATCH) {
            let mut ops = [GnttabUnmapGrantRef::default(); BATCH];
            let mut n = 0;
            for m in chunk.iter().filter(|m| self.window.contains(m.gfn)) {
                ops[n] = GnttabUnmapGrantRef {
                    host_addr: m.gfn << 12,
                    dev_bus_addr: 0,
                    handle: m.handle,
                    status: 0,
                };
                n += 1;
            }
            refused += chunk.len() - n;
            if n == 0 {
                continue;
            }
            // SAFETY: `ops[..n]` are initialised unmap requests, alive across
            // the call; Xen writes their status fields.
            let rc = unsafe {
                xen_abi::hypercall::grant_table_op(
                    GNTTABOP_UNMAP_GRANT_REF,
                    ops.as_mut_ptr().cast(),
                    n as u32,
                )
            };
            for op in &ops[..n] {
                if rc >= 0 && op.status == GNTST_OKAY {
                    self.window.release(op.host_addr >> 12);
                } else {
                    refused += 1;
                }
            }
        }
        self.refused_unmaps.fetch_add(refused as u32, Ordering::Relaxed);
        refused
    }
}

impl gtt::GrantMapper for ForeignMapper {
    fn map(
        &mut self,
        _cap: &gtt::MappingCap,
        reqs: &[gtt::GrantMapRequest],
        out: &mut [Result<gtt::GrantMapping, gtt::GrantMapError>],
    ) {
        let mut mine = [MapRequest { dom: 0, gref: 0, readonly: false }; BATCH];
        let mut res = [Err(MapError::WindowFull); BATCH];
        for (reqs, out) in reqs.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            for (m, r) in mine.iter_mut().zip(reqs) {
                *m = MapRequest {
                    dom: r.dom.0,
                    gref: r.gref.0,
                    readonly: r.access == gtt::types::Access::ReadOnly,
                };
            }
            ForeignMapper::map(self, &mine[..reqs.len()], &mut res[..reqs.len()]);
            for (o, r) in out.iter_mut().zip(&res[..reqs.len()]) {
                *o = match *r {
                    Ok(m) => Ok(gtt::GrantMapping {
                        bus: gtt::types::BusAddr(m.gfn << 12),
                        handle: m.handle,
                    }),
                    Err(MapError::Xen(st)) => Err(gtt::GrantMapError::Xen(st)),
                    Err(MapError::WindowFull) => Err(gtt::GrantMapError::WindowFull),
                };
            }
        }
    }

    fn unmap(&mut self, _cap: &gtt::MappingCap, mappings: &[gtt::GrantMapping]) -> usize {
        let mut refused = 0;
        let mut mine = [Mapped { gfn: 0, handle: 0 }; BATCH];
        for chunk in mappings.chunks(BATCH) {
            for (m, g) in mine.iter_mut().zip(chunk) {
                *m = Mapped { gfn: g.bus.frame(), handle: g.handle };
            }
            refused += ForeignMapper::unmap(self, &mine[..chunk.len()]);
        }
        refused
    }
}
