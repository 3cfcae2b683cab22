//! The engine: guests, their limits, and the batch machinery shared by the
//! GGTT and PPGTT operations (`ggtt.rs`, `ppgtt.rs`).
//!
//! # A batch, step by step
//! 1. **Validate** entries in order; the first invalid entry ends the batch
//!    there (entries before it are still applied).
//! 2. **Resolve grants** (same pass as 1): each entry's `(guest, gref)` is
//!    looked up; grants not yet mapped are reserved (deduplicated within the
//!    batch), checked against the guest's page limit, and mapped with *one*
//!    call to the grant mapper.
//! 3. **Apply** in order: write the shadow entry, take a reference on the new
//!    grant, *then* drop the reference the entry held before. The first entry
//!    whose grant failed to map ends the batch.
//! 4. **Finish**: if anything was written, invalidate the GPU TLBs; only then
//!    unmap grants whose last reference went away and free table pages that
//!    were unlinked, and unmap grants mapped in step 2 but never used.
//!
//! # Invariants (checked by the tests in `tests/`)
//! - Every shadow entry that is not scratch holds the bus address of a `Live`
//!   grant slot of the entry's own guest, with access within the slot's.
//! - A grant is unmapped only after an invalidation that followed the clearing
//!   of its last entry.
//! - Nothing of a detached guest remains: no entry, slot, table page or context.
//! - No input makes the engine panic; every refusal is a typed [`Refusal`].

use alloc::vec::Vec;

use crate::counters::{Counters, GuestStats, Released};
use crate::error::Refusal;
use crate::grants::{GrantTable, Lookup, SlotId, SlotState};
use crate::platform::{
    GpuCaps, GpuTables, GrantMapError, GrantMapRequest, GrantMapper, GrantMapping, MappingCap,
};
use crate::tables::{Arena, NodeId, EMPTY};
use crate::types::{Access, BusAddr, ContextId, DomId, GrantRef};

/// Most contexts one guest can be allowed.
pub const MAX_CONTEXTS_PER_GUEST: u16 = 16;

/// Capacities fixed when the engine is built; nothing is allocated later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Guests served at once.
    pub max_guests: u16,
    /// Grant mappings held at once, over all guests (the physmap window size).
    pub grant_slots: usize,
    /// PPGTT table pages in use at once, over all guests.
    pub table_pages: usize,
    /// PPGTT contexts at once, over all guests.
    pub contexts: usize,
    /// Longest batch accepted by one call.
    pub max_batch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_guests: 16,
            grant_slots: 16384,
            table_pages: 2048,
            contexts: 64,
            max_batch: 2048,
        }
    }
}

/// What the toolstack allows one guest (written by dom0, read by the backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// First GGTT entry of the guest's slice (an absolute GGTT index).
    pub ggtt_base: u32,
    /// Entries in the slice; the guest's indexes are `0..ggtt_len`.
    pub ggtt_len: u32,
    /// PPGTT contexts at once (at most [`MAX_CONTEXTS_PER_GUEST`]).
    pub max_contexts: u16,
    /// Distinct grant-mapped pages at once.
    pub max_pages: u32,
    /// PPGTT table pages at once (roots included). Leaf entries can share a
    /// grant, so table pages need their own bound.
    pub max_table_pages: u32,
}

/// The result of a batch: entries `0..done` were applied; if `refusal` is
/// `Some((i, r))` then `i == done`, entry `i` was refused for `r`, and no
/// entry after it was looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    pub done: u32,
    pub refusal: Option<(u32, Refusal)>,
}

impl BatchOutcome {
    pub(crate) fn refused(r: Refusal) -> Self {
        BatchOutcome { done: 0, refusal: Some((0, r)) }
    }
    /// True when every entry was applied.
    pub fn is_complete(&self) -> bool {
        self.refusal.is_none()
    }
}

pub(crate) const NO_CTX: u32 = u32::MAX;

pub(crate) struct Guest {
    pub dom: DomId,
    pub limits: Limits,
    pub stats: GuestStats,
    /// Global context slot for each of the guest's context ids, or `NO_CTX`.
    pub contexts: [u32; MAX_CONTEXTS_PER_GUEST as usize],
}

pub(crate) struct Context {
    pub guest: usize,
    pub root: NodeId,
}

/// The shadow page-table engine. See the crate documentation.
pub struct Engine<M, W> {
    pub(crate) mapper: M,
    pub(crate) gpu: W,
    pub(crate) cap: MappingCap,
    pub(crate) caps: GpuCaps,
    pub(crate) config: Config,
    pub(crate) guests: Vec<Option<Guest>>,
    pub(crate) grants: GrantTable,
    pub(crate) nodes: Arena,
    pub(crate) contexts: Vec<Option<Context>>,
    /// Shadow of the managed GGTT: a packed leaf (`tables::Leaf`) or `EMPTY`.
    pub(crate) ggtt: Vec<u32>,
    pub(crate) counters: Counters,
    // Per-batch scratch space, sized at init.
    pub(crate) resolved: Vec<SlotId>,
    map_reqs: Vec<GrantMapRequest>,
    map_ids: Vec<SlotId>,
    /// Grants reserved by this batch's `resolve_grants` (`map_ids[..fresh]`).
    fresh: usize,
    /// Some fresh grant may have failed or gone unused: `finish` must look.
    pub(crate) fresh_unused_possible: bool,
    map_out: Vec<Result<GrantMapping, GrantMapError>>,
    pending_unmap: Vec<SlotId>,
    pending_overflow: bool,
    pub(crate) pending_tables: Vec<NodeId>,
    unmap_buf: Vec<GrantMapping>,
    unmap_ids: Vec<SlotId>,
    /// Something was written to the GPU's tables since the last invalidation.
    pub(crate) dirty: bool,
}

impl<M: GrantMapper, W: GpuTables> Engine<M, W> {
    /// Builds an engine; every table is allocated here, once.
    pub fn new(config: Config, mapper: M, gpu: W) -> Self {
        let caps = gpu.caps();
        let batch = config.max_batch.max(1);
        let mut guests = Vec::with_capacity(config.max_guests as usize);
        guests.resize_with(config.max_guests as usize, || None);
        let mut contexts = Vec::with_capacity(config.contexts);
        contexts.resize_with(config.contexts, || None);
        Engine {
            mapper,
            gpu,
            cap: MappingCap::new(),
            caps,
            config: Config { max_batch: batch, ..config },
            guests,
            grants: GrantTable::new(config.grant_slots),
            nodes: Arena::new(config.table_pages),
            contexts,
            ggtt: alloc::vec![EMPTY; caps.ggtt_entries as usize],
            counters: Counters::default(),
            resolved: alloc::vec![0; batch],
            map_reqs: alloc::vec![
                GrantMapRequest { dom: DomId(0), gref: GrantRef(0), access: Access::ReadOnly };
                batch
            ],
            map_ids: alloc::vec![0; batch],
            fresh: 0,
            fresh_unused_possible: false,
            map_out: alloc::vec![Err(GrantMapError::WindowFull); batch],
            pending_unmap: Vec::with_capacity(batch),
            pending_overflow: false,
            pending_tables: Vec::with_capacity(batch * 3 + 3),
            unmap_buf: Vec::with_capacity(batch),
            unmap_ids: Vec::with_capacity(batch),
            dirty: false,
        }
    }

    /// The driver's capabilities, as read at construction.
    pub fn caps(&self) -> GpuCaps {
        self.caps
    }

    /// The engine's capacities.
    pub fn config(&self) -> Config {
        self.config
    }

    /// Engine-wide counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The grant mapper (read-only: only `gtt` may map).
    pub fn mapper(&self) -> &M {
        &self.mapper
    }

    /// The GPU table writer (read-only: only `gtt` may write).
    pub fn gpu(&self) -> &W {
        &self.gpu
    }

    /// Domains attached now.
    pub fn guests(&self) -> impl Iterator<Item = DomId> + '_ {
        self.guests.iter().flatten().map(|g| g.dom)
    }

    /// What `dom` holds now, if attached.
    pub fn guest_stats(&self, dom: DomId) -> Option<GuestStats> {
        self.guest_index(dom).ok().and_then(|i| self.guests[i].as_ref()).map(|g| g.stats)
    }

    /// The limits `dom` was attached with.
    pub fn guest_limits(&self, dom: DomId) -> Option<Limits> {
        self.guest_index(dom).ok().and_then(|i| self.guests[i].as_ref()).map(|g| g.limits)
    }

    pub(crate) fn guest_index(&self, dom: DomId) -> Result<usize, Refusal> {
        self.guests
            .iter()
            .position(|g| matches!(g, Some(g) if g.dom == dom))
            .ok_or(Refusal::NotAttached { dom })
    }

    pub(crate) fn guest(&mut self, gi: usize) -> &mut Guest {
        self.guests[gi].as_mut().expect("guest index from guest_index")
    }

    /// Counts a refusal against the engine and, if attached, the guest.
    pub(crate) fn note_refusal(&mut self, dom: DomId, r: &Refusal) {
        self.counters.refuse(r);
        if let Ok(gi) = self.guest_index(dom) {
            self.guest(gi).stats.refused += 1;
        }
    }

    /// Counts and returns a whole-call refusal.
    pub(crate) fn refuse<T>(&mut self, dom: DomId, r: Refusal) -> Result<T, Refusal> {
        self.note_refusal(dom, &r);
        Err(r)
    }

    /// Starts serving `dom` with `limits` (the toolstack's decision), which
    /// are reserved from the engine's pools until [`Engine::detach`]: a
    /// guest whose limits do not fit in what is left is refused
    /// ([`Refusal::DoesNotFit`]).
    pub fn attach(&mut self, dom: DomId, limits: Limits) -> Result<(), Refusal> {
        if self.guest_index(dom).is_ok() {
            return self.refuse(dom, Refusal::AlreadyAttached { dom });
        }
        if let Err(r) = self.check_limits(&limits).and_then(|()| self.check_fits(&limits)) {
            return self.refuse(dom, r);
        }
        let Some(free) = self.guests.iter().position(Option::is_none) else {
            return self.refuse(dom, Refusal::TooManyGuests { max: self.config.max_guests });
        };
        self.guests[free] = Some(Guest {
            dom,
            limits,
            stats: GuestStats::default(),
            contexts: [NO_CTX; MAX_CONTEXTS_PER_GUEST as usize],
        });
        Ok(())
    }

    fn check_limits(&self, l: &Limits) -> Result<(), Refusal> {
        let (base, len) = (l.ggtt_base, l.ggtt_len);
        let n = self.caps.ggtt_entries;
        if base.checked_add(len).is_none_or(|end| end > n) {
            return Err(Refusal::SliceOutOfRange { base, len, ggtt_entries: n });
        }
        if l.max_contexts > MAX_CONTEXTS_PER_GUEST {
            return Err(Refusal::ContextLimitTooHigh {
                requested: l.max_contexts,
                max: MAX_CONTEXTS_PER_GUEST,
            });
        }
        for g in self.guests.iter().flatten() {
            let (ob, ol) = (g.limits.ggtt_base, g.limits.ggtt_len);
            if len > 0 && ol > 0 && base < ob + ol && ob < base + len {
                return Err(Refusal::SliceOverlaps { base, len, other: g.dom });
            }
        }
        Ok(())
    }

    /// Stops serving `dom`: clears every entry of it in every table,
    /// invalidates the GPU TLBs, then unmaps every grant and frees every table
    /// page and context. Afterwards nothing of `dom` is reachable by the GPU
    /// and Xen holds no mapping of its pages for the backend.
    pub fn detach(&mut self, dom: DomId) -> Result<Released, Refusal> {
        let gi = match self.guest_index(dom) {
            Ok(gi) => gi,
            Err(r) => return self.refuse(dom, r),
        };
        let mut rel = Released::default();
        // Unlink: after this and the invalidation, the GPU can reach nothing of dom.
        let slots = self.guest(gi).contexts;
        for &c in slots.iter().filter(|&&c| c != NO_CTX) {
            rel.entries_cleared += self.unlink_context(c as usize);
        }
        rel.entries_cleared += self.clear_ggtt_slice(gi);
        self.invalidate_if_dirty();
        // Release: table pages, contexts, then the grants themselves.
        for (id, &c) in slots.iter().enumerate().filter(|(_, &c)| c != NO_CTX) {
            self.release_context(c as usize, &mut rel);
            self.guest(gi).contexts[id] = NO_CTX;
            rel.contexts_destroyed += 1;
        }
        self.finish(&mut rel);
        debug_assert_eq!(self.grants.owned_by(dom).count(), 0, "detach left a grant of {dom:?}");
        self.guests[gi] = None;
        Ok(rel)
    }

    /// Clears every GGTT entry of guest `gi`'s slice; returns how many.
    fn clear_ggtt_slice(&mut self, gi: usize) -> u32 {
        let l = self.guest(gi).limits;
        let mut n = 0;
        for index in l.ggtt_base..l.ggtt_base + l.ggtt_len {
            let old = self.ggtt[index as usize];
            if old != EMPTY {
                self.gpu.ggtt_clear(&self.cap, index);
                self.ggtt[index as usize] = EMPTY;
                self.drop_ref(crate::tables::Leaf::slot(old));
                n += 1;
            }
        }
        self.guest(gi).stats.ggtt_entries = 0;
        self.counters.entries_cleared += n as u64;
        self.dirty |= n > 0;
        n
    }

    // ---- batch machinery -------------------------------------------------

    /// Steps 1 and 2 of a batch: validates each entry (`keys` yields its
    /// grant and access, or why it is invalid) and resolves `keys[..n]` to
    /// grant slots in `self.resolved`, mapping the missing ones in one call. Returns how many
    /// entries may proceed and the refusal that stopped the rest, if any.
    pub(crate) fn resolve_grants(
        &mut self,
        gi: usize,
        n: usize,
        keys: impl Iterator<Item = Result<(GrantRef, Access), Refusal>>,
    ) -> (usize, Option<Refusal>) {
        let (dom, max_pages, pages) = {
            let g = self.guest(gi);
            (g.dom, g.limits.max_pages, g.stats.pages)
        };
        let budget = (max_pages as usize).saturating_sub(pages as usize);
        let mut k = 0;
        let mut stop = None;
        for (i, (key, r)) in keys.zip(self.resolved[..n].iter_mut()).enumerate() {
            let (gref, access) = match key {
                Ok(k) => k,
                Err(refusal) => {
                    stop = Some((i, refusal));
                    break;
                }
            };
            *r = match self.grants.find_or_insert(dom, gref, access, k < budget) {
                Lookup::Found(id) => {
                    if access == Access::ReadWrite
                        && self.grants.slot(id).access == Access::ReadOnly
                    {
                        stop = Some((i, Refusal::GrantMappedReadOnly { gref }));
                        break;
                    }
                    id
                }
                Lookup::Inserted(id) => {
                    self.map_reqs[k] = GrantMapRequest { dom, gref, access };
                    self.map_ids[k] = id;
                    k += 1;
                    id
                }
                Lookup::Missing => {
                    stop = Some((i, Refusal::PageLimit { max: max_pages }));
                    break;
                }
                Lookup::Full => {
                    stop = Some((i, Refusal::GrantWindowFull));
                    break;
                }
            };
        }
        self.fresh = k;
        self.fresh_unused_possible = stop.is_some();
        if k > 0 {
            self.mapper.map(&self.cap, &self.map_reqs[..k], &mut self.map_out[..k]);
            let mut mapped = 0;
            for (id, out) in self.map_ids[..k].iter().zip(&self.map_out[..k]) {
                let slot = self.grants.slot_mut(*id);
                match *out {
                    Ok(m) => {
                        slot.mapping = m;
                        slot.state = SlotState::Live;
                        mapped += 1;
                    }
                    Err(e) => {
                        slot.state = SlotState::Failed;
                        slot.failure = e;
                        self.fresh_unused_possible = true;
                    }
                }
            }
            self.counters.grants_mapped += mapped;
            self.counters.grants_live += mapped as u32;
            self.guest(gi).stats.pages += mapped as u32;
        }
        match stop {
            Some((i, r)) => (i, Some(r)),
            None => (n, None),
        }
    }

    /// Step 3 helper: takes a reference on slot `id` for a new entry and
    /// returns its bus address, or the refusal if its grant failed to map.
    #[inline]
    pub(crate) fn acquire(&mut self, id: SlotId) -> Result<BusAddr, Refusal> {
        let s = self.grants.slot_mut(id);
        match s.state {
            SlotState::Live => {
                s.refs += 1;
                Ok(s.mapping.bus)
            }
            _ => match s.failure {
                GrantMapError::Xen(status) => Err(Refusal::GrantMapFailed { gref: s.gref, status }),
                GrantMapError::WindowFull => Err(Refusal::GrantWindowFull),
            },
        }
    }

    /// Drops an entry's reference on slot `id`; at zero the grant is queued
    /// for unmapping after the batch's invalidation.
    #[inline]
    pub(crate) fn drop_ref(&mut self, id: SlotId) {
        let s = self.grants.slot_mut(id);
        debug_assert!(s.refs > 0);
        s.refs -= 1;
        if s.refs == 0 {
            if self.pending_unmap.len() < self.pending_unmap.capacity() {
                self.pending_unmap.push(id);
            } else {
                self.pending_overflow = true;
            }
        }
    }

    pub(crate) fn invalidate_if_dirty(&mut self) {
        if self.dirty {
            self.gpu.invalidate(&self.cap);
            self.counters.invalidations += 1;
            self.dirty = false;
        }
    }

    /// Step 4 of a batch: invalidate, then release what lost its last use.
    pub(crate) fn finish(&mut self, rel: &mut Released) {
        self.invalidate_if_dirty();
        // Table pages unlinked during the batch: unreachable since the invalidation.
        while let Some(n) = self.pending_tables.pop() {
            self.free_table(n);
            rel.table_pages_freed += 1;
        }
        // Grants: fresh ones that failed or went unused (possible only if the
        // batch stopped early), and ones whose last reference was dropped. A
        // slot can be listed twice; `queue_unmap` moves it out of `Live`, so
        // the second listing is skipped.
        if self.fresh_unused_possible {
            for j in 0..self.fresh {
                let id = self.map_ids[j];
                if matches!(self.grants.slot(id).state, SlotState::Failed) {
                    self.grants.remove(id);
                } else {
                    self.queue_unmap(id, rel);
                }
            }
        }
        self.fresh = 0;
        self.fresh_unused_possible = false;
        if self.pending_overflow {
            self.pending_overflow = false;
            self.pending_unmap.clear();
            for id in 0..self.grants.capacity() as SlotId {
                self.queue_unmap(id, rel);
            }
        } else {
            for j in 0..self.pending_unmap.len() {
                let id = self.pending_unmap[j];
                self.queue_unmap(id, rel);
            }
            self.pending_unmap.clear();
        }
        self.flush_unmaps(rel);
    }

    fn queue_unmap(&mut self, id: SlotId, rel: &mut Released) {
        let s = self.grants.slot_mut(id);
        if s.state != SlotState::Live || s.refs != 0 {
            return;
        }
        s.state = SlotState::Pending;
        let m = s.mapping;
        if self.unmap_buf.len() == self.unmap_buf.capacity() {
            self.flush_unmaps(rel);
        }
        self.unmap_buf.push(m);
        self.unmap_ids.push(id);
    }

    fn flush_unmaps(&mut self, rel: &mut Released) {
        if self.unmap_buf.is_empty() {
            return;
        }
        let failed = self.mapper.unmap(&self.cap, &self.unmap_buf);
        let n = self.unmap_buf.len();
        self.counters.grants_unmapped += n as u64;
        self.counters.unmap_failures += failed as u64;
        self.counters.grants_live -= n as u32;
        rel.grants_unmapped += n as u32;
        rel.unmap_failures += failed as u32;
        for j in 0..n {
            let id = self.unmap_ids[j];
            let dom = self.grants.slot(id).dom;
            self.grants.remove(id);
            if let Ok(gi) = self.guest_index(dom) {
                self.guest(gi).stats.pages -= 1;
            }
        }
        self.unmap_buf.clear();
        self.unmap_ids.clear();
    }

    /// Returns table page `n` to the driver (it must be unreachable and invalidated).
    pub(crate) fn free_table(&mut self, n: NodeId) {
        let (page, ctx) = {
            let node = self.nodes.get(n);
            (node.page, node.ctx)
        };
        self.gpu.table_free(&self.cap, page);
        self.nodes.release(n);
        self.counters.table_pages_live -= 1;
        if let Some(c) = self.contexts.get(ctx as usize).and_then(|c| c.as_ref()) {
            let gi = c.guest;
            self.guest(gi).stats.table_pages -= 1;
        }
    }

    /// The bus address and access a guest's GGTT entry resolves to, if mapped.
    pub fn ggtt_lookup(&self, dom: DomId, index: u32) -> Option<(BusAddr, Access)> {
        let g = self.guests[self.guest_index(dom).ok()?].as_ref()?;
        if index >= g.limits.ggtt_len {
            return None;
        }
        let e = self.ggtt[(g.limits.ggtt_base + index) as usize];
        (e != EMPTY).then(|| self.leaf_target(e))
    }

    pub(crate) fn leaf_target(&self, packed: u32) -> (BusAddr, Access) {
        use crate::tables::Leaf;
        (self.grants.slot(Leaf::slot(packed)).mapping.bus, Leaf::access(packed))
    }

    /// The global context slot of `dom`'s context `ctx`.
    pub(crate) fn context_slot(&self, gi: usize, ctx: ContextId) -> Result<usize, Refusal> {
        let g = self.guests[gi].as_ref().expect("valid guest index");
        match g.contexts.get(ctx.0 as usize) {
            Some(&c) if c != NO_CTX => Ok(c as usize),
            _ => Err(Refusal::UnknownContext { ctx }),
        }
    }
}
