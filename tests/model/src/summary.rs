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

use std::collections::HashMap;
use std::rc::Rc;

use gtt::types::ENTRIES_PER_TABLE;

use crate::memory::FrameId;
use crate::platform::World;

/// `(index, bits)` of every entry that is not the scratch entry.
pub(crate) type Entries = Rc<[(u16, u64)]>;

struct Summary {
    stamp: u64,
    scratch: u64,
    entries: Entries,
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
        let entries: Entries = (0..ENTRIES_PER_TABLE as u16)
            .filter_map(|i| {
                let bits = self.mem.read_u64(frame, i);
                (bits != scratch).then_some((i, bits))
            })
            .collect();
        cache.by_frame.insert(frame, Summary { stamp, scratch, entries: entries.clone() });
        entries
    }
}
