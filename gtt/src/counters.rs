//! What the engine has done, for the management endpoint and for tests.

use crate::error::{Refusal, RefusalKind};

/// Engine-wide counters. Monotonic totals unless named `*_live`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Shadow entries written to point at a guest page.
    pub entries_mapped: u64,
    /// Shadow entries cleared back to scratch.
    pub entries_cleared: u64,
    /// Grant map operations that succeeded.
    pub grants_mapped: u64,
    /// Grant unmap operations issued.
    pub grants_unmapped: u64,
    /// Grant unmaps that Xen refused.
    pub unmap_failures: u64,
    /// Grants mapped right now.
    pub grants_live: u32,
    /// PPGTT table pages allocated right now.
    pub table_pages_live: u32,
    /// GPU TLB invalidations requested.
    pub invalidations: u64,
    /// Refusals, indexed by [`RefusalKind`] as `usize`.
    pub refused: [u64; RefusalKind::COUNT],
}

impl Counters {
    pub(crate) fn refuse(&mut self, r: &Refusal) {
        self.refused[r.kind() as usize] += 1;
    }

    /// Refusals of one kind.
    pub fn refused_of(&self, kind: RefusalKind) -> u64 {
        self.refused[kind as usize]
    }

    /// All refusals.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().sum()
    }
}

/// What one guest holds right now, and what it was refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestStats {
    /// Grant-mapped pages.
    pub pages: u32,
    /// PPGTT table pages (all levels, roots included).
    pub table_pages: u32,
    /// Live PPGTT contexts.
    pub contexts: u16,
    /// Non-scratch GGTT entries in its slice.
    pub ggtt_entries: u32,
    /// Non-scratch PPGTT leaf entries in all its contexts.
    pub ppgtt_entries: u32,
    /// Refusals given to this guest.
    pub refused: u64,
}

/// What a detach or context destruction released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Shadow entries cleared (GGTT entries and PPGTT entries of every level).
    pub entries_cleared: u32,
    /// Grant mappings unmapped.
    pub grants_unmapped: u32,
    /// Unmaps Xen refused (the page stays mapped: the guest cannot be destroyed cleanly).
    pub unmap_failures: u32,
    /// PPGTT table pages freed.
    pub table_pages_freed: u32,
    /// Contexts destroyed.
    pub contexts_destroyed: u16,
}
