//! Bookkeeping for backend-owned PPGTT table pages.
//!
//! Every PPGTT table page the GPU can walk has a [`Node`] here that mirrors
//! its 512 entries: for directory levels the child node, for the leaf level the
//! grant slot (and access) the entry points at. `gtt` never reads the GPU's
//! tables back; this mirror is the truth it acts on.
//!
//! # Invariants
//! - `live` equals the number of entries that are not `EMPTY`.
//! - A non-root node with `live == 0` is not reachable from its root: it is
//!   unlinked (its parent entry cleared) in the same step that empties it.
//! - Every node belongs to exactly one context (`ctx`), and so to one guest.
//! - A free node's entries are all `EMPTY` (whoever frees a node empties it
//!   first), so allocation does not need to fill 2 KiB.

use alloc::vec::Vec;

use crate::grants::SlotId;
use crate::platform::TablePage;
use crate::types::{Access, BusAddr, Level, ENTRIES_PER_TABLE};

pub(crate) type NodeId = u32;
pub(crate) const NO_NODE: NodeId = NodeId::MAX;

/// An entry of a node: `EMPTY`, a child [`NodeId`] (directories) or a leaf
/// ([`Leaf::pack`]).
pub(crate) const EMPTY: u32 = u32::MAX;

/// A packed leaf entry: grant slot in the low 31 bits, bit 31 = read-only.
pub(crate) struct Leaf;

impl Leaf {
    const RO: u32 = 1 << 31;

    #[inline]
    pub fn pack(slot: SlotId, access: Access) -> u32 {
        debug_assert!(slot < Self::RO);
        match access {
            Access::ReadOnly => slot | Self::RO,
            Access::ReadWrite => slot,
        }
    }

    #[inline]
    pub fn slot(packed: u32) -> SlotId {
        packed & !Self::RO
    }

    #[inline]
    pub fn access(packed: u32) -> Access {
        if packed & Self::RO != 0 {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        }
    }
}

pub(crate) struct Node {
    pub page: TablePage,
    pub level: Level,
    /// Global context slot this node belongs to.
    pub ctx: u32,
    pub parent: NodeId,
    pub parent_index: u16,
    pub live: u16,
    pub entries: [u32; ENTRIES_PER_TABLE],
}

/// Fixed-capacity arena of nodes with a free list.
pub(crate) struct Arena {
    nodes: Vec<Node>,
    free: Vec<NodeId>,
}

impl Arena {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.min(NO_NODE as usize - 1);
        let mut nodes = Vec::with_capacity(capacity);
        for _ in 0..capacity {
            nodes.push(Node {
                page: TablePage { bus: BusAddr(0), id: 0 },
                level: Level::Pt,
                ctx: u32::MAX,
                parent: NO_NODE,
                parent_index: 0,
                live: 0,
                entries: [EMPTY; ENTRIES_PER_TABLE],
            });
        }
        let free = (0..capacity as NodeId).rev().collect();
        Arena { nodes, free }
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Takes a node for `page`; `None` when the arena is full.
    pub fn alloc(
        &mut self,
        page: TablePage,
        level: Level,
        ctx: u32,
        parent: NodeId,
        parent_index: u16,
    ) -> Option<NodeId> {
        let id = self.free.pop()?;
        let n = &mut self.nodes[id as usize];
        n.page = page;
        n.level = level;
        n.ctx = ctx;
        n.parent = parent;
        n.parent_index = parent_index;
        debug_assert!(n.live == 0 && n.entries.iter().all(|&e| e == EMPTY));
        Some(id)
    }

    /// Returns a node whose entries are all `EMPTY` to the free list.
    pub fn release(&mut self, id: NodeId) {
        let n = &mut self.nodes[id as usize];
        debug_assert!(n.entries.iter().all(|&e| e == EMPTY), "released a non-empty node");
        n.live = 0;
        n.ctx = u32::MAX;
        self.free.push(id);
    }

    #[inline]
    pub fn get(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize]
    }
}
