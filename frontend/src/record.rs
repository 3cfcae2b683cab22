//! The frontend's own record of what the backend mapped for it: the guest
//! is the source of truth, so that a new backend (after gpu-dom died) can be
//! given everything again ([`crate::Frontend::reconnect`]).
//!
//! Only what the backend confirmed is recorded: the entries a response
//! counts as done (`done`), contexts it created or destroyed with `OK`. An
//! entry names a page by [`PageId`], not by grant reference, because a
//! page is granted again (under a new reference) to a new backend.
//!
//! # Invariants
//! - Between two responses the record holds exactly the entries the backend
//!   reported applied and not since unmapped, per GGTT index and per
//!   (context, GPU address); a context is recorded from its `ContextCreate`
//!   to its `ContextDestroy`, which drops its entries with it.
//! - An entry whose grant reference is not one of our pages (a hostile
//!   test's foreign gref that a backend wrongly accepted) is not recorded:
//!   it could not be replayed.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use gpuif::wire::{Entry, Op};
use gpuif::{Response, Status};

use crate::platform::PageId;

/// One recorded entry: the page and whether it was mapped read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// Our page.
    pub page: PageId,
    /// Mapped read-only.
    pub read_only: bool,
}

/// Everything the backend mapped for us.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    ggtt: BTreeMap<u32, Mapped>,
    contexts: BTreeMap<u16, BTreeMap<u64, Mapped>>,
}

impl Record {
    /// Notes what the backend did with a request: `entries` as sent, `rsp`
    /// its response; `page_of` names our page for a grant reference.
    pub fn note(
        &mut self,
        op: Op,
        ctx: u16,
        entries: &[Entry],
        rsp: &Response,
        page_of: impl Fn(u32) -> Option<PageId>,
    ) {
        let done = &entries[..(rsp.done as usize).min(entries.len())];
        match op {
            Op::GgttMap => {
                for e in done {
                    let Ok(index) = u32::try_from(e.addr) else { continue };
                    match page_of(e.gref) {
                        Some(page) => {
                            self.ggtt.insert(index, Mapped { page, read_only: e.read_only });
                        }
                        None => {
                            self.ggtt.remove(&index);
                        }
                    }
                }
            }
            Op::GgttUnmap => {
                for e in done {
                    if let Ok(index) = u32::try_from(e.addr) {
                        self.ggtt.remove(&index);
                    }
                }
            }
            Op::PpgttMap => {
                let Some(table) = self.contexts.get_mut(&ctx) else { return };
                for e in done {
                    match page_of(e.gref) {
                        Some(page) => {
                            table.insert(e.addr, Mapped { page, read_only: e.read_only });
                        }
                        None => {
                            table.remove(&e.addr);
                        }
                    }
                }
            }
            Op::PpgttUnmap => {
                let Some(table) = self.contexts.get_mut(&ctx) else { return };
                for e in done {
                    table.remove(&e.addr);
                }
            }
            Op::ContextCreate if rsp.status == Status::OK => {
                if let Ok(id) = u16::try_from(rsp.value) {
                    self.contexts.insert(id, BTreeMap::new());
                }
            }
            Op::ContextDestroy if rsp.status == Status::OK => {
                self.contexts.remove(&ctx);
            }
            _ => {}
        }
    }

    /// Forgets everything (the backend revoked it all).
    pub fn clear(&mut self) {
        self.ggtt.clear();
        self.contexts.clear();
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.ggtt.is_empty() && self.contexts.is_empty()
    }

    /// GGTT entries, by slice index.
    pub fn ggtt(&self) -> impl Iterator<Item = (u32, Mapped)> + '_ {
        self.ggtt.iter().map(|(i, m)| (*i, *m))
    }

    /// Context ids, ascending.
    pub fn contexts(&self) -> impl Iterator<Item = u16> + '_ {
        self.contexts.keys().copied()
    }

    /// The entries of context `ctx`, by GPU address.
    pub fn ppgtt(&self, ctx: u16) -> impl Iterator<Item = (u64, Mapped)> + '_ {
        self.contexts.get(&ctx).into_iter().flat_map(|t| t.iter().map(|(a, m)| (*a, *m)))
    }

    /// Entries recorded: GGTT plus every context's.
    pub fn entries(&self) -> usize {
        self.ggtt.len() + self.contexts.values().map(BTreeMap::len).sum::<usize>()
    }

    /// Whether `page` backs any recorded entry.
    pub fn uses(&self, page: PageId) -> bool {
        self.ggtt.values().any(|m| m.page == page)
            || self.contexts.values().any(|t| t.values().any(|m| m.page == page))
    }

    /// The pages behind the entries, each once.
    pub fn pages(&self) -> Vec<PageId> {
        let mut v: Vec<PageId> = self
            .ggtt
            .values()
            .chain(self.contexts.values().flat_map(|t| t.values()))
            .map(|m| m.page)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(done: u32) -> Response {
        Response { done, ..Response::new(1, 0, Status::OK) }
    }

    fn e(addr: u64, gref: u32, read_only: bool) -> Entry {
        Entry { addr, gref, read_only }
    }

    fn page_of(gref: u32) -> Option<PageId> {
        (gref >= 10).then_some(PageId(gref as usize))
    }

    #[test]
    fn only_entries_the_backend_reports_done_are_recorded() {
        let mut r = Record::default();
        let mut rsp = ok(2);
        rsp.status = Status::INDEX_OUT_OF_SLICE;
        r.note(Op::GgttMap, 0, &[e(0, 10, false), e(1, 11, true), e(9, 12, false)], &rsp, page_of);
        let got: Vec<_> = r.ggtt().collect();
        assert_eq!(
            got,
            [
                (0, Mapped { page: PageId(10), read_only: false }),
                (1, Mapped { page: PageId(11), read_only: true })
            ]
        );
        r.note(Op::GgttUnmap, 0, &[e(0, 0, false)], &ok(1), page_of);
        assert_eq!(r.entries(), 1);
        assert!(!r.uses(PageId(10)) && r.uses(PageId(11)));
    }

    #[test]
    fn contexts_hold_their_entries_until_destroyed() {
        let mut r = Record::default();
        let created = |id| Response { value: id, ..Response::new(1, 0, Status::OK) };
        r.note(Op::PpgttMap, 3, &[e(0x1000, 10, false)], &ok(1), page_of);
        assert!(r.is_empty(), "a map into an unknown context records nothing");
        r.note(Op::ContextCreate, 0, &[], &created(0), page_of);
        r.note(Op::ContextCreate, 0, &[], &created(2), page_of);
        r.note(Op::PpgttMap, 2, &[e(0x1000, 10, false), e(0x2000, 11, true)], &ok(2), page_of);
        assert_eq!(r.contexts().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(r.ppgtt(2).count(), 2);
        assert_eq!(r.pages(), [PageId(10), PageId(11)]);
        r.note(Op::ContextDestroy, 2, &[], &ok(0), page_of);
        assert_eq!(r.contexts().collect::<Vec<_>>(), [0]);
        assert_eq!(r.entries(), 0);
    }

    #[test]
    fn a_foreign_gref_is_not_recorded_and_replaces_nothing_silently() {
        let mut r = Record::default();
        r.note(Op::GgttMap, 0, &[e(4, 10, false)], &ok(1), page_of);
        r.note(Op::GgttMap, 0, &[e(4, 3, false)], &ok(1), page_of);
        assert!(r.is_empty(), "index 4 now holds a page we cannot replay");
    }
}
