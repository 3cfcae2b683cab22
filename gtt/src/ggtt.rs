//! GGTT operations: a guest's slice of the global GTT, slice-relative indexes.

use crate::counters::Released;
use crate::engine::{BatchOutcome, Engine};
use crate::error::Refusal;
use crate::platform::{GpuTables, GrantMapper};
use crate::tables::{Leaf, EMPTY};
use crate::types::{Access, DomId, GrantRef};

/// One GGTT map entry as the guest sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GgttEntry {
    /// Index relative to the guest's slice.
    pub index: u32,
    /// The guest's grant of the page to map.
    pub gref: GrantRef,
    /// The access the entry gives the GPU.
    pub access: Access,
}

impl<M: GrantMapper, W: GpuTables> Engine<M, W> {
    /// Maps each entry's granted page at the entry's slice index, replacing
    /// what was there. See [`BatchOutcome`] for partial results.
    pub fn ggtt_map(&mut self, dom: DomId, entries: &[GgttEntry]) -> BatchOutcome {
        let gi = match self.batch_guest(dom, entries.len()) {
            Ok(gi) => gi,
            Err(r) => return BatchOutcome::refused(r),
        };
        let (base, len) = {
            let l = self.guest(gi).limits;
            (l.ggtt_base, l.ggtt_len)
        };
        // 1. validate and 2. resolve grants
        let ro_ok = self.caps.ggtt_read_only;
        let keys = entries.iter().map(|e| {
            if e.index >= len {
                Err(Refusal::GgttIndexOutOfSlice { index: e.index, slice_len: len })
            } else if e.access == Access::ReadOnly && !ro_ok {
                Err(Refusal::ReadOnlyUnsupported)
            } else {
                Ok((e.gref, e.access))
            }
        });
        let (n, mut stop) = self.resolve_grants(gi, entries.len(), keys);
        // 3. apply
        let mut done = n;
        let mut written = 0u32;
        for (i, e) in entries[..n].iter().enumerate() {
            let id = self.resolved[i];
            let bus = match self.acquire(id) {
                Ok(bus) => bus,
                Err(r) => {
                    done = i;
                    stop = Some(r);
                    break;
                }
            };
            let index = base + e.index;
            self.gpu.ggtt_set(&self.cap, index, bus, e.access);
            let old = core::mem::replace(&mut self.ggtt[index as usize], Leaf::pack(id, e.access));
            if old == EMPTY {
                written += 1;
            } else {
                self.drop_ref(Leaf::slot(old));
            }
        }
        self.dirty |= done > 0;
        self.fresh_unused_possible |= done < n;
        self.counters.entries_mapped += done as u64;
        self.guest(gi).stats.ggtt_entries += written;
        // 4. invalidate, release
        self.finish(&mut Released::default());
        self.outcome(dom, done, stop)
    }

    /// Points each listed slice index back at scratch. Indexes that map
    /// nothing are accepted and left alone.
    pub fn ggtt_unmap(&mut self, dom: DomId, indexes: &[u32]) -> BatchOutcome {
        let gi = match self.batch_guest(dom, indexes.len()) {
            Ok(gi) => gi,
            Err(r) => return BatchOutcome::refused(r),
        };
        let (base, len) = {
            let l = self.guest(gi).limits;
            (l.ggtt_base, l.ggtt_len)
        };
        let mut done = indexes.len();
        let mut stop = None;
        let mut cleared = 0u32;
        for (i, &index) in indexes.iter().enumerate() {
            if index >= len {
                done = i;
                stop = Some(Refusal::GgttIndexOutOfSlice { index, slice_len: len });
                break;
            }
            let abs = base + index;
            let old = core::mem::replace(&mut self.ggtt[abs as usize], EMPTY);
            if old != EMPTY {
                self.gpu.ggtt_clear(&self.cap, abs);
                self.drop_ref(Leaf::slot(old));
                cleared += 1;
            }
        }
        self.dirty |= cleared > 0;
        self.counters.entries_cleared += cleared as u64;
        self.guest(gi).stats.ggtt_entries -= cleared;
        self.finish(&mut Released::default());
        self.outcome(dom, done, stop)
    }

    /// The attached guest for a batch of `len` entries, or the refusal.
    pub(crate) fn batch_guest(&mut self, dom: DomId, len: usize) -> Result<usize, Refusal> {
        let r = match self.guest_index(dom) {
            Ok(_) if len > self.config.max_batch => {
                Refusal::BatchTooLarge { len, max: self.config.max_batch }
            }
            Ok(gi) => return Ok(gi),
            Err(r) => r,
        };
        self.note_refusal(dom, &r);
        Err(r)
    }

    pub(crate) fn outcome(
        &mut self,
        dom: DomId,
        done: usize,
        stop: Option<Refusal>,
    ) -> BatchOutcome {
        if let Some(r) = &stop {
            self.note_refusal(dom, r);
        }
        BatchOutcome { done: done as u32, refusal: stop.map(|r| (done as u32, r)) }
    }
}
