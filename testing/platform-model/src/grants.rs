//! Xen grant tables, version 1, with the semantics of Xen's
//! `xen/common/grant_table.c` (`map_grant_ref`, `_set_status_v1`,
//! `unmap_common`) and of the guest side's `gnttab_end_foreign_access_ref`.
//!
//! Each domain has a shared table of [`GrantEntryV1`] that only the guest
//! writes (except `GTF_reading`/`GTF_writing`, which Xen sets), and a private
//! active table (Xen's `struct active_grant_entry`) that records who pinned
//! the entry, the frame pinned, and the pin counts.
//!
//! # Invariants
//! - A grant is pinned by at most one domain, the `domid` of the entry when it
//!   was first pinned; while pinned, the pinned frame is what every mapping of
//!   it uses, whatever the guest later writes into the shared entry.
//! - `GTF_reading` is set exactly while the entry has pins, `GTF_writing`
//!   exactly while it has writable pins (unless the guest scribbles them).
//! - A writable pin needs an entry without `GTF_readonly`.
//! - Statuses are Xen's: wrong domid, wrong type and writable map of a
//!   read-only grant are all `GNTST_general_error` in `_set_status_v1`
//!   (`GNTST_permission_denied` is only XSM's refusal).

use std::collections::BTreeMap;

use gtt::types::{DomId, GrantRef};

use crate::memory::{DomainState, FrameId, Gfn};
use crate::platform::World;
use crate::trace::Event;

/// Constants from `xen/include/public/grant_table.h`, with Xen's names.
#[allow(non_upper_case_globals)]
pub mod abi {
    /// `GTF_invalid`: the entry grants nothing.
    pub const GTF_invalid: u16 = 0;
    /// `GTF_permit_access`: `domid` may map and access `frame`.
    pub const GTF_permit_access: u16 = 1;
    /// `GTF_type_mask`.
    pub const GTF_type_mask: u16 = 3;
    /// `GTF_readonly`: `domid` may only map read-only. (The guest writes it.)
    pub const GTF_readonly: u16 = 1 << 2;
    /// `GTF_reading`: currently mapped (for reading at least). (Xen writes it.)
    pub const GTF_reading: u16 = 1 << 3;
    /// `GTF_writing`: currently mapped writable. (Xen writes it.)
    pub const GTF_writing: u16 = 1 << 4;
    /// `GTF_sub_page`: copy-only grant of part of a page; cannot be mapped.
    pub const GTF_sub_page: u16 = 1 << 8;

    /// `GNTST_okay`.
    pub const GNTST_okay: i16 = 0;
    /// `GNTST_general_error`: bad flags or domid, write-pin of a r/o grant,
    /// unpinnable page.
    pub const GNTST_general_error: i16 = -1;
    /// `GNTST_bad_domain`: no such (live) granting domain.
    pub const GNTST_bad_domain: i16 = -2;
    /// `GNTST_bad_gntref`: reference beyond the granting domain's table.
    pub const GNTST_bad_gntref: i16 = -3;
    /// `GNTST_bad_handle`: unknown or already released mapping handle.
    pub const GNTST_bad_handle: i16 = -4;
    /// `GNTST_bad_copy_arg`: a copy runs past the end of the page.
    pub const GNTST_bad_copy_arg: i16 = -10;
    /// `GNTST_no_device_space`: out of maptrack handles / IOMMU space.
    pub const GNTST_no_device_space: i16 = -7;
    /// `GNTST_permission_denied`: refused by XSM policy.
    pub const GNTST_permission_denied: i16 = -8;
    /// `GNTST_bad_page`: the granted frame is not a valid page of the granter.
    pub const GNTST_bad_page: i16 = -9;

    /// `GNTTAB_NR_RESERVED_ENTRIES`: grant refs 0..8 are the toolstack's
    /// (console, xenstore); guests allocate from 8 up.
    pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
}

use abi::*;

/// Entries per grant-table frame in version 1 (4096 / 8).
pub const ENTRIES_PER_FRAME: u32 = 512;
/// Frames a grant table may grow to (Xen's `max_grant_frames`, default 64 on
/// current Xen; the model uses 32 so tests that fill it stay quick).
pub const MAX_GRANT_FRAMES: u32 = 32;

/// `struct grant_entry_v1`: one entry of a domain's shared grant table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[doc(alias = "grant_entry_v1")]
pub struct GrantEntryV1 {
    /// `GTF_*`.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: u16,
    /// The granting domain's gfn.
    pub frame: u32,
}

/// Why a guest could not issue a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// No such domain, or it is not running.
    NotRunning(DomId),
    /// The grant table is at `MAX_GRANT_FRAMES` and every entry is in use.
    TableFull,
    /// The reference lies beyond the largest table.
    RefOutOfRange(GrantRef),
}

/// Xen's private view of a pinned entry (`struct active_grant_entry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveGrant {
    /// The domain that pinned it.
    pub mapper: DomId,
    /// The frame pinned.
    pub frame: FrameId,
    /// Read-only pins.
    pub pins_ro: u32,
    /// Writable pins.
    pub pins_rw: u32,
}

#[derive(Clone, Default)]
pub(crate) struct GrantTable {
    pub shared: Vec<GrantEntryV1>,
    pub active: BTreeMap<u32, ActiveGrant>,
}

impl GrantTable {
    fn ensure(&mut self, gref: u32) -> Result<(), GrantError> {
        if gref >= MAX_GRANT_FRAMES * ENTRIES_PER_FRAME {
            return Err(GrantError::RefOutOfRange(GrantRef(gref)));
        }
        let frames = gref / ENTRIES_PER_FRAME + 1;
        let want = (frames * ENTRIES_PER_FRAME) as usize;
        if self.shared.len() < want {
            self.shared.resize(want, GrantEntryV1::default());
        }
        Ok(())
    }

    pub fn pins(&self) -> u32 {
        self.active.values().map(|a| a.pins_ro + a.pins_rw).sum()
    }
}

impl World {
    fn running_table(&mut self, dom: DomId) -> Result<&mut GrantTable, GrantError> {
        if self.mem.state(dom) != Some(DomainState::Running) {
            return Err(GrantError::NotRunning(dom));
        }
        Ok(self.grants.entry(dom).or_default())
    }

    /// The guest writes a whole shared entry (any value, like any guest can).
    pub(crate) fn set_grant_entry(
        &mut self,
        dom: DomId,
        gref: GrantRef,
        entry: GrantEntryV1,
    ) -> Result<(), GrantError> {
        let t = self.running_table(dom)?;
        t.ensure(gref.0)?;
        t.shared[gref.0 as usize] = entry;
        Ok(())
    }

    /// `gnttab_grant_foreign_access`: the lowest free reference from
    /// `GNTTAB_NR_RESERVED_ENTRIES` up now lets `to` map `gfn`.
    pub(crate) fn grant(
        &mut self,
        dom: DomId,
        gfn: Gfn,
        to: DomId,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let t = self.running_table(dom)?;
        let limit = MAX_GRANT_FRAMES * ENTRIES_PER_FRAME;
        let free = (GNTTAB_NR_RESERVED_ENTRIES..limit).find(|&r| {
            let in_use =
                t.shared.get(r as usize).is_some_and(|e| e.flags & GTF_type_mask != GTF_invalid);
            !in_use && !t.active.contains_key(&r)
        });
        let gref = free.ok_or(GrantError::TableFull)?;
        t.ensure(gref)?;
        t.shared[gref as usize] = GrantEntryV1 {
            flags: GTF_permit_access | if readonly { GTF_readonly } else { 0 },
            domid: to.0,
            frame: gfn.0 as u32,
        };
        self.trace.event(Event::Granted { dom, gref: GrantRef(gref), to, readonly });
        Ok(GrantRef(gref))
    }

    /// `gnttab_end_foreign_access_ref` (v1): refused (false) while Xen has
    /// the entry mapped (`GTF_reading | GTF_writing`), else clears it.
    pub(crate) fn end_access(&mut self, dom: DomId, gref: GrantRef) -> bool {
        let Some(t) = self.grants.get_mut(&dom) else {
            return false;
        };
        let Some(e) = t.shared.get_mut(gref.0 as usize) else {
            return false;
        };
        if e.flags & (GTF_reading | GTF_writing) != 0 {
            self.trace.event(Event::GrantEndRefused { dom, gref });
            return false;
        }
        e.flags = 0;
        self.trace.event(Event::GrantEnded { dom, gref });
        true
    }

    pub(crate) fn grant_entry(&self, dom: DomId, gref: GrantRef) -> Option<GrantEntryV1> {
        self.grants.get(&dom)?.shared.get(gref.0 as usize).copied()
    }

    pub(crate) fn active_grant(&self, dom: DomId, gref: GrantRef) -> Option<ActiveGrant> {
        self.grants.get(&dom)?.active.get(&gref.0).copied()
    }

    /// Xen's `map_grant_ref` up to the pin: checks and pins `(dom, gref)` for
    /// `mapper`, returning the frame or a `GNTST_*` status.
    pub(crate) fn xen_pin(
        &mut self,
        mapper: DomId,
        dom: DomId,
        gref: GrantRef,
        readonly: bool,
    ) -> Result<FrameId, i16> {
        let state = match self.mem.state(dom) {
            None | Some(DomainState::Dead) => return Err(GNTST_bad_domain),
            Some(s) => s,
        };
        let t = self.grants.entry(dom).or_default();
        // Every table has at least its first frame (Xen's
        // INITIAL_NR_GRANT_FRAMES); beyond the frames in use is bad_gntref.
        let nr_entries = t.shared.len().max(ENTRIES_PER_FRAME as usize);
        if gref.0 as usize >= nr_entries {
            return Err(GNTST_bad_gntref);
        }
        let entry = t.shared.get(gref.0 as usize).copied().unwrap_or_default();
        let active = t.active.get(&gref.0).copied();
        if let Some(a) = active {
            if a.mapper != mapper {
                return Err(GNTST_general_error);
            }
        } else if entry.flags & (GTF_type_mask | GTF_sub_page) != GTF_permit_access
            || entry.domid != mapper.0
        {
            return Err(GNTST_general_error);
        }
        let first_writer = match active {
            Some(a) => a.pins_rw == 0,
            None => true,
        };
        if !readonly && first_writer && entry.flags & GTF_readonly != 0 {
            return Err(GNTST_general_error);
        }
        let frame = match active {
            Some(a) => a.frame,
            None => {
                if state == DomainState::Dying {
                    // "Could not pin grant frame": the owner is dying.
                    return Err(GNTST_general_error);
                }
                self.mem.frame_of(dom, Gfn(u64::from(entry.frame))).map_err(|_| GNTST_bad_page)?
            }
        };
        let t = self.grants.get_mut(&dom).expect("created above");
        let a =
            t.active.entry(gref.0).or_insert(ActiveGrant { mapper, frame, pins_ro: 0, pins_rw: 0 });
        if readonly {
            a.pins_ro += 1;
        } else {
            a.pins_rw += 1;
        }
        let e = &mut t.shared[gref.0 as usize];
        e.flags |= GTF_reading | if readonly { 0 } else { GTF_writing };
        Ok(frame)
    }

    /// Xen's `acquire_grant_for_copy` for `GNTTABOP_copy` with a grant
    /// reference on `dom`'s side: `copier` must be the grantee, a copy into
    /// the page (`write`) needs a writable grant. Nothing stays pinned.
    pub(crate) fn xen_copy_frame(
        &mut self,
        copier: DomId,
        dom: DomId,
        gref: GrantRef,
        write: bool,
    ) -> Result<FrameId, i16> {
        match self.mem.state(dom) {
            None | Some(DomainState::Dead) => return Err(GNTST_bad_domain),
            Some(DomainState::Dying) => return Err(GNTST_general_error),
            Some(DomainState::Running) => {}
        }
        let t = self.grants.entry(dom).or_default();
        let nr_entries = t.shared.len().max(ENTRIES_PER_FRAME as usize);
        if gref.0 as usize >= nr_entries {
            return Err(GNTST_bad_gntref);
        }
        if let Some(a) = t.active.get(&gref.0) {
            // Pinned: the active entry decides (a map by the same domain).
            if a.mapper != copier {
                return Err(GNTST_general_error);
            }
        }
        let entry = t.shared.get(gref.0 as usize).copied().unwrap_or_default();
        let pinned = t.active.get(&gref.0).map(|a| a.frame);
        if pinned.is_none()
            && (entry.flags & GTF_type_mask != GTF_permit_access || entry.domid != copier.0)
        {
            return Err(GNTST_general_error);
        }
        if write && entry.flags & GTF_readonly != 0 {
            return Err(GNTST_general_error);
        }
        match pinned {
            Some(f) => Ok(f),
            None => self.mem.frame_of(dom, Gfn(u64::from(entry.frame))).map_err(|_| GNTST_bad_page),
        }
    }

    /// Xen's `unmap_common_complete`: drops one pin and clears
    /// `GTF_writing`/`GTF_reading` when the last (writable) pin goes. A dying
    /// domain whose last pin goes becomes dead.
    pub(crate) fn xen_unpin(&mut self, dom: DomId, gref: GrantRef, readonly: bool) {
        let Some(t) = self.grants.get_mut(&dom) else {
            return;
        };
        let Some(a) = t.active.get_mut(&gref.0) else {
            return;
        };
        if readonly {
            a.pins_ro = a.pins_ro.saturating_sub(1);
        } else {
            a.pins_rw = a.pins_rw.saturating_sub(1);
        }
        let (ro, rw) = (a.pins_ro, a.pins_rw);
        let mut clear = 0;
        if rw == 0 {
            clear |= GTF_writing;
        }
        if ro + rw == 0 {
            clear |= GTF_reading;
            t.active.remove(&gref.0);
        }
        if let Some(e) = t.shared.get_mut(gref.0 as usize) {
            e.flags &= !clear;
        }
        let none_left = t.pins() == 0;
        if none_left && self.mem.state(dom) == Some(DomainState::Dying) {
            self.set_state(dom, DomainState::Dead);
            self.trace.event(Event::DomainReleased { dom });
        }
    }

    /// The toolstack destroys `dom`: it is dead at once if nothing of it is
    /// mapped, else a zombie until the last mapping goes.
    pub(crate) fn destroy_domain(&mut self, dom: DomId) -> Option<DomainState> {
        if self.mem.state(dom)? != DomainState::Running {
            return self.mem.state(dom);
        }
        let pinned = self.grants.get(&dom).map_or(0, GrantTable::pins);
        let state = if pinned == 0 { DomainState::Dead } else { DomainState::Dying };
        self.set_state(dom, state);
        self.trace.event(Event::DomainDestroyed { dom, pinned });
        Some(state)
    }

    pub(crate) fn set_state_of(&mut self, dom: DomId, state: DomainState) {
        self.set_state(dom, state);
    }

    /// Xen's `gnttab_release_mappings` for the dead backend: every grant it
    /// has mapped is unpinned and its window emptied; the backend is dead.
    pub(crate) fn release_backend_mappings(&mut self) -> u32 {
        let maps: Vec<_> = core::mem::take(&mut self.physmap.maptrack).into_values().collect();
        for m in &maps {
            self.xen_unpin(m.dom, m.gref, m.access == gtt::types::Access::ReadOnly);
        }
        for s in self.physmap.slots.iter_mut() {
            *s = None;
        }
        let old = self.cfg.backend;
        self.set_state(old, DomainState::Dead);
        self.trace.event(Event::DomainReleased { dom: old });
        maps.len() as u32
    }

    fn set_state(&mut self, dom: DomId, state: DomainState) {
        if let Some(d) = self.mem.domains.get_mut(&dom) {
            d.state = state;
        }
    }
}
