//! The backend's grant mappings: one per (guest, grant ref), reference-counted.
//!
//! A fixed-capacity slab of [`Slot`]s (one per page the backend may have
//! grant-mapped at once) and an open-addressed index from `(DomId, GrantRef)`
//! to slot. Both are allocated once, in [`GrantTable::new`]; nothing here
//! allocates afterwards.
//!
//! # Invariants
//! - A key is in the index iff its slot is not `Free`; the index and the slab
//!   agree on every key (checked by `check_consistency` in tests).
//! - A slot's `refs` counts the shadow entries (GGTT or PPGTT leaves) that
//!   currently hold its bus address. A `Live` slot with `refs == 0` exists only
//!   inside a batch, between the write that dropped the last reference and the
//!   batch's release step.
//! - Slots are keyed by the guest's own domid: a lookup for guest A can never
//!   return a slot holding guest B's page.

use alloc::vec::Vec;

use crate::platform::GrantMapping;
use crate::types::{Access, DomId, GrantRef};

/// Index of a slot in the slab.
pub(crate) type SlotId = u32;

/// A slot's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Unused; on the free list.
    Free,
    /// Reserved in this batch; the grant map hypercall has not run yet.
    Pending,
    /// Xen refused to map it (why: `Slot::failure`); freed at batch end.
    Failed,
    /// Mapped; `mapping` is valid.
    Live,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub dom: DomId,
    pub gref: GrantRef,
    pub access: Access,
    pub state: SlotState,
    /// Why mapping failed, while `Failed`.
    pub failure: crate::platform::GrantMapError,
    pub refs: u32,
    pub mapping: GrantMapping,
    /// Next free slot while `Free`.
    next_free: SlotId,
}

const NONE: SlotId = SlotId::MAX;

/// The result of [`GrantTable::find_or_insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Already there.
    Found(SlotId),
    /// Newly reserved (`Pending`).
    Inserted(SlotId),
    /// Not there, and inserting was not allowed.
    Missing,
    /// Not there, and no slot is free.
    Full,
}
/// Marks an empty index bucket.
const EMPTY: u32 = u32::MAX;

/// An index bucket: the key (so probes need not touch the slab) and the slot.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    key: u64,
    id: SlotId,
}

const EMPTY_BUCKET: Bucket = Bucket { key: 0, id: EMPTY };

#[inline]
fn key_of(dom: DomId, gref: GrantRef) -> u64 {
    ((dom.0 as u64) << 32) | gref.0 as u64
}

pub(crate) struct GrantTable {
    slots: Vec<Slot>,
    free_head: SlotId,
    /// Open addressing with linear probing; a bucket's id is EMPTY or a slot.
    index: Vec<Bucket>,
    mask: usize,
}

#[inline]
fn hash(key: u64) -> usize {
    // Fibonacci hashing of the 48-bit key; the high bits are the best mixed.
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
}

impl GrantTable {
    /// A table for at most `capacity` simultaneous mappings.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.min(NONE as usize - 1);
        let mut slots = Vec::with_capacity(capacity);
        for i in 0..capacity {
            let next = if i + 1 < capacity { (i + 1) as SlotId } else { NONE };
            slots.push(Slot {
                dom: DomId(0),
                gref: GrantRef(0),
                access: Access::ReadOnly,
                state: SlotState::Free,
                failure: crate::platform::GrantMapError::WindowFull,
                refs: 0,
                mapping: GrantMapping { bus: crate::types::BusAddr(0), handle: 0 },
                next_free: next,
            });
        }
        // Load factor at most 1/2 keeps probe sequences short.
        let buckets = (capacity.max(1) * 2).next_power_of_two();
        GrantTable {
            slots,
            free_head: if capacity > 0 { 0 } else { NONE },
            index: alloc::vec![EMPTY_BUCKET; buckets],
            mask: buckets - 1,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub fn free_count(&self) -> usize {
        self.slots.iter().filter(|s| s.state == SlotState::Free).count()
    }

    pub fn slot(&self, id: SlotId) -> &Slot {
        &self.slots[id as usize]
    }

    pub fn slot_mut(&mut self, id: SlotId) -> &mut Slot {
        &mut self.slots[id as usize]
    }

    /// The slot holding `(dom, gref)`, if any.
    #[cfg(test)]
    pub fn find(&self, dom: DomId, gref: GrantRef) -> Option<SlotId> {
        let key = key_of(dom, gref);
        let mut b = hash(key) & self.mask;
        loop {
            let e = self.index[b];
            if e.id == EMPTY {
                return None;
            }
            if e.key == key {
                return Some(e.id);
            }
            b = (b + 1) & self.mask;
        }
    }

    /// The slot of `(dom, gref)`, or else (if `may_insert`) a new `Pending`
    /// slot for it, found and placed with one probe sequence.
    #[inline(always)]
    pub fn find_or_insert(
        &mut self,
        dom: DomId,
        gref: GrantRef,
        access: Access,
        may_insert: bool,
    ) -> Lookup {
        let key = key_of(dom, gref);
        let mut b = hash(key) & self.mask;
        loop {
            let e = self.index[b];
            if e.id == EMPTY {
                break;
            }
            if e.key == key {
                return Lookup::Found(e.id);
            }
            b = (b + 1) & self.mask;
        }
        if !may_insert {
            return Lookup::Missing;
        }
        match self.take_free(dom, gref, access) {
            Some(id) => {
                self.index[b] = Bucket { key, id };
                Lookup::Inserted(id)
            }
            None => Lookup::Full,
        }
    }

    /// Reserves a `Pending` slot for `(dom, gref)`, which must not be present.
    /// `None` when every slot is in use.
    #[cfg(test)]
    pub fn insert(&mut self, dom: DomId, gref: GrantRef, access: Access) -> Option<SlotId> {
        let id = self.take_free(dom, gref, access)?;
        let key = key_of(dom, gref);
        let mut b = hash(key) & self.mask;
        while self.index[b].id != EMPTY {
            b = (b + 1) & self.mask;
        }
        self.index[b] = Bucket { key, id };
        Some(id)
    }

    /// Pops a free slot and fills it in (not yet indexed).
    #[inline]
    fn take_free(&mut self, dom: DomId, gref: GrantRef, access: Access) -> Option<SlotId> {
        let id = self.free_head;
        if id == NONE {
            return None;
        }
        let slot = &mut self.slots[id as usize];
        self.free_head = slot.next_free;
        // `refs` is already 0 (reset by `remove`); `mapping`, `failure` and
        // `next_free` mean nothing until the state says so.
        slot.dom = dom;
        slot.gref = gref;
        slot.access = access;
        slot.state = SlotState::Pending;
        Some(id)
    }

    /// Frees slot `id` and removes its key from the index.
    pub fn remove(&mut self, id: SlotId) {
        let (dom, gref) = {
            let s = &self.slots[id as usize];
            debug_assert!(s.state != SlotState::Free);
            (s.dom, s.gref)
        };
        // Find the bucket, then close the gap by shifting later entries of the
        // probe run back (deletion without tombstones for linear probing).
        let mut hole = hash(key_of(dom, gref)) & self.mask;
        while self.index[hole].id != id {
            debug_assert!(self.index[hole].id != EMPTY, "slot missing from the index");
            hole = (hole + 1) & self.mask;
        }
        let mut b = hole;
        loop {
            b = (b + 1) & self.mask;
            let other = self.index[b];
            if other.id == EMPTY {
                break;
            }
            let home = hash(other.key) & self.mask;
            // `other` may move into the hole if its home is not cyclically in (hole, b].
            let dist_home = b.wrapping_sub(home) & self.mask;
            let dist_hole = b.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.index[hole] = other;
                hole = b;
            }
        }
        self.index[hole] = EMPTY_BUCKET;
        let slot = &mut self.slots[id as usize];
        slot.state = SlotState::Free;
        slot.refs = 0;
        slot.next_free = self.free_head;
        self.free_head = id;
    }

    /// Ids of every non-free slot owned by `dom`.
    pub fn owned_by(&self, dom: DomId) -> impl Iterator<Item = SlotId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.state != SlotState::Free && s.dom == dom)
            .map(|(i, _)| i as SlotId)
    }

    /// Every key in the index resolves to its slot and every used slot is indexed.
    #[cfg(test)]
    pub fn check_consistency(&self) {
        let used = self.slots.iter().filter(|s| s.state != SlotState::Free).count();
        let indexed = self.index.iter().filter(|b| b.id != EMPTY).count();
        assert_eq!(used, indexed);
        assert_eq!(used + self.free_count(), self.slots.len());
        for (i, s) in self.slots.iter().enumerate() {
            if s.state != SlotState::Free {
                assert_eq!(self.find(s.dom, s.gref), Some(i as SlotId));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_then_find_returns_the_same_slot_and_remove_forgets_it() {
        let mut t = GrantTable::new(4);
        let a = t.insert(DomId(1), GrantRef(7), Access::ReadWrite).unwrap();
        let b = t.insert(DomId(2), GrantRef(7), Access::ReadOnly).unwrap();
        assert_ne!(a, b);
        assert_eq!(t.find(DomId(1), GrantRef(7)), Some(a));
        assert_eq!(t.find(DomId(2), GrantRef(7)), Some(b));
        t.remove(a);
        assert_eq!(t.find(DomId(1), GrantRef(7)), None);
        assert_eq!(t.find(DomId(2), GrantRef(7)), Some(b));
        t.check_consistency();
    }

    #[test]
    fn insert_fails_cleanly_when_every_slot_is_used() {
        let mut t = GrantTable::new(2);
        assert!(t.insert(DomId(1), GrantRef(1), Access::ReadWrite).is_some());
        assert!(t.insert(DomId(1), GrantRef(2), Access::ReadWrite).is_some());
        assert_eq!(t.insert(DomId(1), GrantRef(3), Access::ReadWrite), None);
        assert_eq!(t.free_count(), 0);
    }

    proptest! {
        /// Random inserts and removes keep the index equal to a reference map,
        /// including across probe-run deletions (backward shift).
        #[test]
        fn index_matches_a_reference_map(ops in proptest::collection::vec((any::<bool>(), 0u16..4, 0u32..24), 1..400)) {
            let mut t = GrantTable::new(32);
            let mut reference = std::collections::HashMap::new();
            for (insert, dom, gref) in ops {
                let key = (DomId(dom), GrantRef(gref));
                match (insert, reference.get(&key).copied()) {
                    (true, None) => {
                        if let Some(id) = t.insert(key.0, key.1, Access::ReadWrite) {
                            reference.insert(key, id);
                        } else {
                            prop_assert_eq!(reference.len(), 32);
                        }
                    }
                    (false, Some(id)) => { t.remove(id); reference.remove(&key); }
                    _ => {}
                }
                t.check_consistency();
                for (k, id) in &reference {
                    prop_assert_eq!(t.find(k.0, k.1), Some(*id));
                }
            }
        }
    }
}
