//! What a table page holds besides scratch, read from its bytes and cached
//! by the frame's write stamp, so that checking the whole GPU after every
//! step of a test costs what changed, not 512 reads per table.
//!
//! # Invariants
//! - [`World::non_scratch`] returns exactly the entries of the frame whose
//!   bits differ from the given scratch bits, in index order, as the bytes
//!   are now: a cached answer is used only for the same frame, the same
//!   write stamp (equal stamps mean equal bytes, see `memory`) and the same
//!   scratch bits; anything else reads the 512 entries again.
//! - [`World::leaf_targets`] is derived from those entries alone, and
//!   cached with them.

use std::collections::HashMap;
use std::rc::Rc;

use gtt::types::{BusAddr, ENTRIES_PER_TABLE};
use i915_lite::pte::Gen8Pte;

use crate::memory::FrameId;
use crate::platform::World;

/// Bytes compared at once.
const BLOCK: usize = 64;
const _: () = assert!((ENTRIES_PER_TABLE * 8).is_multiple_of(BLOCK));

/// `(index, bits)` of every entry that is not the scratch entry.
pub(crate) type Entries = Rc<[(u16, u64)]>;

/// What the present leaves of a PPGTT leaf table (`Level::Pt`) reach,
/// leaves to the scratch page aside.
pub(crate) struct LeafTargets {
    /// How many leaves.
    pub leaves: usize,
    /// The distinct `(page, PTE writable)` pairs among them, sorted.
    pub targets: Vec<(BusAddr, bool)>,
}

struct Summary {
    stamp: u64,
    scratch: u64,
    entries: Entries,
    /// Computed on first use, for `scratch_page`.
    leaves: Option<(BusAddr, Rc<LeafTargets>)>,
}

/// The cache; lives in the world, outlives snapshots and restores (stamps
/// stay meaningful across both).
#[derive(Default)]
pub(crate) struct Summaries {
    by_frame: HashMap<FrameId, Summary>,
}

impl World {
    /// The entries of the table page in `frame` whose bits are not `scratch`.
    pub(crate) fn non_scratch(&self, frame: FrameId, scratch: u64) -> Entries {
        let stamp = self.mem.stamp(frame);
        let mut cache = self.summaries.borrow_mut();
        if let Some(s) = cache.by_frame.get(&frame) {
            if s.stamp == stamp && s.scratch == scratch {
                return s.entries.clone();
            }
        }
        // Blocks of 8 entries compared whole first: most of a table is scratch.
        let block: [u8; BLOCK] = core::array::from_fn(|i| scratch.to_le_bytes()[i % 8]);
        let page = self.mem.page(frame);
        let mut entries = Vec::new();
        for (b, chunk) in page.chunks_exact(BLOCK).enumerate() {
            if chunk == block {
                continue;
            }
            for (j, e) in chunk.chunks_exact(8).enumerate() {
                let bits = u64::from_le_bytes(e.try_into().expect("8 bytes"));
                if bits != scratch {
                    entries.push(((b * BLOCK / 8 + j) as u16, bits));
                }
            }
        }
        let entries: Entries = entries.into();
        let s = Summary { stamp, scratch, entries: entries.clone(), leaves: None };
        cache.by_frame.insert(frame, s);
        entries
    }

    /// What the leaf table in `frame` (scratch entry `scratch`) reaches
    /// besides `scratch_page`.
    pub(crate) fn leaf_targets(
        &self,
        frame: FrameId,
        scratch: u64,
        scratch_page: BusAddr,
    ) -> Rc<LeafTargets> {
        let entries = self.non_scratch(frame, scratch);
        let mut cache = self.summaries.borrow_mut();
        let s = cache.by_frame.get_mut(&frame).expect("summarised just above");
        if let Some((page, t)) = &s.leaves {
            if *page == scratch_page {
                return t.clone();
            }
        }
        let mut targets: Vec<(BusAddr, bool)> = Vec::new();
        let mut leaves = 0;
        for &(_, bits) in entries.iter() {
            let pte = Gen8Pte::from_bits(bits);
            let page = BusAddr(pte.addr());
            if pte.present() && page != scratch_page {
                leaves += 1;
                targets.push((page, pte.writable()));
            }
        }
        targets.sort_unstable();
        targets.dedup();
        let t = Rc::new(LeafTargets { leaves, targets });
        s.leaves = Some((scratch_page, t.clone()));
        t
    }
}
