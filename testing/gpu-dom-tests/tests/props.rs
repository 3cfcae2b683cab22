//! Property tests: long random sequences of operations from several guests,
//! hostile ones included, against the real backend on the platform model.
//! After every step the DESIGN.md invariants are checked on the model's own
//! state (table bytes, TLB, grant tables, IOMMU), not on the backend's
//! bookkeeping:
//! - every GPU-reachable address resolves to a page its own guest granted to
//!   the backend, with no more than the granted access;
//! - nothing of a detached or disconnected guest remains, and its domain can
//!   be destroyed (no zombie);
//! - no grant was unmapped while the GPU TLB or a table still reached it
//!   (invalidation precedes unmap);
//! - every entry the backend reported as applied reads back, through the
//!   model GPU, the exact bytes of the page the guest named;
//! - every request slot was read from shared memory exactly once;
//! - nothing panics (a panic fails the case).

use std::collections::HashMap;

use gpu_dom_tests::{limits, PageInfo, Rig};
use gpuif::wire::Entry;
use gpuif::{Op, RequestBuilder, Response, Status, RING_SIZE};
use gtt::DomId;
use platform_model::{DomainState, Hit, Space};
use proptest::prelude::*;

const GUESTS: [DomId; 3] = [DomId(2), DomId(3), DomId(4)];
/// Guest 2 is never attached by the toolstack.
const UNATTACHED: usize = 2;
const SLICE: u32 = 32;

#[derive(Clone, Debug)]
enum PageRef {
    /// One of the guest's own granted pages (index mod count).
    Own(usize),
    /// The grant ref of another guest's page (means nothing in this guest's table).
    Foreign(usize, usize),
    /// A grant ref nobody made.
    Bogus(u32),
}

/// What a grant ref names in a guest's own grant table.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// A data page the test filled (bytes known).
    Page(PageInfo),
    /// The frontend's ring (granted writable) or one of its directory pages
    /// (granted read-only): its own page, but its bytes change as it works.
    Untracked { read_only: bool },
    /// Nothing the guest granted to the backend.
    Nothing,
}

#[derive(Clone, Debug)]
enum Step {
    Grant { g: usize, n: usize, ro: bool },
    GgttMap { g: usize, entries: Vec<(u32, PageRef, bool)> },
    GgttUnmap { g: usize, indexes: Vec<u32> },
    CtxCreate { g: usize },
    CtxDestroy { g: usize, ctx: u16 },
    PpgttMap { g: usize, ctx: u16, entries: Vec<(u64, PageRef, bool)> },
    PpgttUnmap { g: usize, ctx: u16, vas: Vec<u64> },
    EndAccess { g: usize, page: usize },
    Replay { g: usize },
    Garbage { g: usize, bytes: Vec<u8> },
    Runaway { g: usize, by: u32 },
    Detach { g: usize },
}

fn page_ref() -> impl Strategy<Value = PageRef> {
    prop_oneof![
        6 => (0usize..64).prop_map(PageRef::Own),
        1 => (0usize..3, 0usize..64).prop_map(|(g, i)| PageRef::Foreign(g, i)),
        1 => (0u32..5000).prop_map(PageRef::Bogus),
    ]
}

/// GPU addresses from a few 2 MiB regions, so tables are shared and freed;
/// sometimes unaligned or beyond 48 bits.
fn gpu_addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => (0u64..4, 0u64..24).prop_map(|(r, p)| r * (1 << 30) + (r % 2) * (1 << 39) + p * 4096),
        1 => any::<u64>(),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let g = 0usize..3;
    prop_oneof![
        3 => (g.clone(), 1usize..4, any::<bool>()).prop_map(|(g, n, ro)| Step::Grant { g, n, ro }),
        4 => (g.clone(), prop::collection::vec((0u32..SLICE + 3, page_ref(), prop::bool::weighted(0.1)), 1..12))
            .prop_map(|(g, entries)| Step::GgttMap { g, entries }),
        2 => (g.clone(), prop::collection::vec(0u32..SLICE + 2, 1..8)).prop_map(|(g, indexes)| Step::GgttUnmap { g, indexes }),
        2 => g.clone().prop_map(|g| Step::CtxCreate { g }),
        1 => (g.clone(), 0u16..5).prop_map(|(g, ctx)| Step::CtxDestroy { g, ctx }),
        4 => (g.clone(), 0u16..3, prop::collection::vec((gpu_addr(), page_ref(), prop::bool::weighted(0.3)), 1..12))
            .prop_map(|(g, ctx, entries)| Step::PpgttMap { g, ctx, entries }),
        2 => (g.clone(), 0u16..3, prop::collection::vec(gpu_addr(), 1..8)).prop_map(|(g, ctx, vas)| Step::PpgttUnmap { g, ctx, vas }),
        1 => (g.clone(), 0usize..64).prop_map(|(g, page)| Step::EndAccess { g, page }),
        1 => g.clone().prop_map(|g| Step::Replay { g }),
        1 => (g.clone(), prop::collection::vec(any::<u8>(), 112)).prop_map(|(g, bytes)| Step::Garbage { g, bytes }),
        1 => (g.clone(), RING_SIZE + 1..RING_SIZE * 4).prop_map(|(g, by)| Step::Runaway { g, by }),
        1 => g.prop_map(|g| Step::Detach { g }),
    ]
}

/// What the test believes each guest has mapped (from the responses).
#[derive(Default)]
struct Expect {
    ggtt: HashMap<(usize, u32), PageInfo>,
    ppgtt: HashMap<(usize, u16, u64), PageInfo>,
    last: HashMap<usize, gpuif::Slot>,
    requests: u64,
}

struct Harness {
    rig: Rig,
    fes: Vec<usize>,
    expect: Expect,
}

impl Harness {
    fn new() -> Harness {
        let mut rig = Rig::new();
        let mut fes = Vec::new();
        for (i, dom) in GUESTS.iter().enumerate() {
            let l = (i != UNATTACHED).then(|| limits(i as u32 * SLICE, SLICE, 24));
            fes.push(rig.add_guest(*dom, 160, l));
        }
        Harness { rig, fes, expect: Expect::default() }
    }

    /// The grant ref `r` names for guest `g`, and what it is in g's table.
    fn gref_of(&self, g: usize, r: &PageRef) -> (u32, Target) {
        let f = &self.rig.frontends[self.fes[g]];
        let gref = match *r {
            PageRef::Own(i) if !f.pages.is_empty() => f.pages[i % f.pages.len()].gref.0,
            PageRef::Own(_) => 4999,
            PageRef::Foreign(o, i) => {
                let pages = &self.rig.frontends[self.fes[o]].pages;
                if pages.is_empty() {
                    4998
                } else {
                    pages[i % pages.len()].gref.0
                }
            }
            PageRef::Bogus(gref) => gref,
        };
        // The number means whatever it is in g's own grant table.
        let target = if let Some(p) = f.pages.iter().find(|p| p.gref.0 == gref) {
            Target::Page(*p)
        } else if f.is_dir_page(gtt::GrantRef(gref)) {
            Target::Untracked { read_only: true }
        } else if f.ring_gref.0 == gref {
            Target::Untracked { read_only: false }
        } else {
            Target::Nothing
        };
        (gref, target)
    }

    fn send(&mut self, g: usize, op: Op, ctx: u16, entries: &[Entry]) -> Option<Response> {
        let fe = self.fes[g];
        if !self.rig.frontends[fe].connected {
            return None;
        }
        let (slot, _) = self.rig.fe(fe).request(op, ctx, entries);
        self.expect.last.insert(g, slot);
        self.expect.requests += 1;
        self.rig.call(fe, &slot)
    }

    fn apply(&mut self, s: &Step) -> Result<(), TestCaseError> {
        match s {
            Step::Grant { g, n, ro } => {
                let fe = self.fes[*g];
                if self.rig.frontends[fe].pages.len() < 64 {
                    self.rig.fe(fe).grant_pages(*n, *ro);
                }
            }
            Step::GgttMap { g, entries } => self.ggtt_map(g, entries)?,
            Step::GgttUnmap { g, indexes } => {
                let wire: Vec<Entry> = indexes
                    .iter()
                    .map(|i| Entry { addr: *i as u64, gref: 0, read_only: false })
                    .collect();
                if let Some(rsp) = self.send(*g, Op::GgttUnmap, 0, &wire) {
                    for i in indexes.iter().take(rsp.done as usize) {
                        self.expect.ggtt.remove(&(*g, *i));
                    }
                }
            }
            Step::CtxCreate { g } => self.ctx_create(g)?,
            Step::CtxDestroy { g, ctx } => self.ctx_destroy(g, ctx)?,
            Step::PpgttMap { g, ctx, entries } => self.ppgtt_map(g, ctx, entries)?,
            Step::PpgttUnmap { g, ctx, vas } => {
                let wire: Vec<Entry> =
                    vas.iter().map(|va| Entry { addr: *va, gref: 0, read_only: false }).collect();
                if let Some(rsp) = self.send(*g, Op::PpgttUnmap, *ctx, &wire) {
                    for va in vas.iter().take(rsp.done as usize) {
                        self.expect.ppgtt.remove(&(*g, *ctx, *va));
                    }
                }
            }
            Step::EndAccess { g, page } => self.end_access(g, page)?,
            Step::Replay { g } => self.replay(g)?,
            Step::Garbage { g, bytes } => self.garbage(g, bytes)?,
            Step::Runaway { g, by } => self.runaway(g, by)?,
            Step::Detach { g } => {
                let fe = self.fes[*g];
                if self.rig.frontends[fe].connected {
                    self.rig.disconnect(fe);
                    self.forget(*g);
                }
            }
        }
        Ok(())
    }

    /// Checks a GGTT map's answer against what each entry named, and records what is now mapped.
    fn ggtt_map(
        &mut self,
        g: &usize,
        entries: &[(u32, PageRef, bool)],
    ) -> Result<(), TestCaseError> {
        let resolved: Vec<_> =
            entries.iter().map(|(i, r, ro)| (*i, self.gref_of(*g, r), *ro)).collect();
        let wire: Vec<Entry> = resolved
            .iter()
            .map(|(i, (gref, _), ro)| Entry { addr: *i as u64, gref: *gref, read_only: *ro })
            .collect();
        if let Some(rsp) = self.send(*g, Op::GgttMap, 0, &wire) {
            prop_assert!(rsp.done as usize <= wire.len());
            if *g == UNATTACHED {
                prop_assert_eq!(rsp.status, Status::NOT_ATTACHED);
            }
            for (i, (gref, target), _) in resolved.iter().take(rsp.done as usize) {
                match target {
                    Target::Page(p) => {
                        self.expect.ggtt.insert((*g, *i), *p);
                    }
                    Target::Untracked { read_only: false } => {
                        self.expect.ggtt.remove(&(*g, *i));
                    }
                    // Read-only pages cannot be in the GGTT at all.
                    _ => {
                        return Err(TestCaseError::fail(format!(
                            "GGTT mapped gref {gref}: {target:?}"
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates a context; only limits may refuse it.
    fn ctx_create(&mut self, g: &usize) -> Result<(), TestCaseError> {
        let fe = self.fes[*g];
        if self.rig.frontends[fe].connected {
            self.expect.requests += 1;
            let rsp = self.rig.create_context(fe);
            prop_assert!(
                rsp.status == Status::OK
                    || *g == UNATTACHED
                    || rsp.status == Status::CONTEXT_LIMIT
                    || rsp.status == Status::TABLE_PAGE_LIMIT
                    || rsp.status == Status::BACKEND_FULL,
                "{:?}",
                rsp
            );
        }
        Ok(())
    }

    /// Destroys a context and forgets its entries.
    fn ctx_destroy(&mut self, g: &usize, ctx: &u16) -> Result<(), TestCaseError> {
        let fe = self.fes[*g];
        if self.rig.frontends[fe].connected {
            let id = self.rig.fe(fe).id();
            self.expect.requests += 1;
            let rsp = self.rig.call(fe, &RequestBuilder::simple(id, Op::ContextDestroy, *ctx));
            if rsp.map(|r| r.status) == Some(Status::OK) {
                self.rig.fe(fe).contexts.retain(|c| c.0 != *ctx);
                self.expect.ppgtt.retain(|(eg, ec, _), _| !(*eg == *g && *ec == *ctx));
            }
        }
        Ok(())
    }

    /// Checks a PPGTT map's answer (read-only stays read-only) and records what is now mapped.
    fn ppgtt_map(
        &mut self,
        g: &usize,
        ctx: &u16,
        entries: &[(u64, PageRef, bool)],
    ) -> Result<(), TestCaseError> {
        let resolved: Vec<_> =
            entries.iter().map(|(va, r, ro)| (*va, self.gref_of(*g, r), *ro)).collect();
        let wire: Vec<Entry> = resolved
            .iter()
            .map(|(va, (gref, _), ro)| Entry { addr: *va, gref: *gref, read_only: *ro })
            .collect();
        if let Some(rsp) = self.send(*g, Op::PpgttMap, *ctx, &wire) {
            for (va, (gref, target), ro) in resolved.iter().take(rsp.done as usize) {
                match target {
                    Target::Page(p) => {
                        prop_assert!(!p.read_only || *ro, "a read-only grant was mapped writable");
                        self.expect.ppgtt.insert((*g, *ctx, *va), *p);
                    }
                    Target::Untracked { read_only } => {
                        prop_assert!(*ro || !read_only, "a read-only page was mapped writable");
                        self.expect.ppgtt.remove(&(*g, *ctx, *va));
                    }
                    Target::Nothing => {
                        return Err(TestCaseError::fail(format!(
                            "PPGTT mapped gref {gref} nobody granted"
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    /// The guest ends a grant: Xen refuses while the backend maps it.
    fn end_access(&mut self, g: &usize, page: &usize) -> Result<(), TestCaseError> {
        let f = &self.rig.frontends[self.fes[*g]];
        if !f.pages.is_empty() {
            let p = f.pages[page % f.pages.len()];
            let mapped = f.guest.map_count(p.gref) > 0;
            let ended = f.guest.end_access(p.gref);
            // Xen refuses to end a grant the backend still maps.
            prop_assert!(!(mapped && ended), "ended access to a mapped grant");
            if ended {
                self.rig.fe(self.fes[*g]).pages.retain(|q| q.gref != p.gref);
            }
        }
        Ok(())
    }

    /// Sends the guest's last request again.
    fn replay(&mut self, g: &usize) -> Result<(), TestCaseError> {
        if let Some(slot) = self.expect.last.get(g).copied() {
            let fe = self.fes[*g];
            if self.rig.frontends[fe].connected {
                // A replay re-applies the same entries (directory pages
                // may have been rewritten since, so expectations for
                // it are not tracked: the checker still covers it).
                self.expect.requests += 1;
                let rsp = self.rig.call(fe, &slot);
                prop_assert!(rsp.is_some());
                // What it mapped is not tracked, so what the guest's
                // entries hold is no longer known: forget it.
                self.forget(*g);
            }
        }
        Ok(())
    }

    /// Sends a slot of garbage that is never a real map or readback.
    fn garbage(&mut self, g: &usize, bytes: &[u8]) -> Result<(), TestCaseError> {
        let fe = self.fes[*g];
        if self.rig.frontends[fe].connected {
            let mut slot = [0u8; 112];
            slot.copy_from_slice(bytes);
            // Never a real map or readback: keep expectations exact.
            slot[8] = [0x00, 0x02, 0x41, 0x99, 0x40][bytes[8] as usize % 5];
            self.expect.requests += 1;
            let rsp = self.rig.call(fe, &slot);
            prop_assert!(rsp.is_some());
        }
        Ok(())
    }

    /// Moves `req_prod` far past what the ring holds: the guest is disconnected.
    fn runaway(&mut self, g: &usize, by: &u32) -> Result<(), TestCaseError> {
        let fe = self.fes[*g];
        if self.rig.frontends[fe].connected {
            let base = self.rig.frontends[fe].front_ring().in_flight();
            prop_assert_eq!(base, 0);
            // req_prod far beyond what the ring holds.
            let cur = read_req_prod(&self.rig, fe);
            self.rig.fe(fe).poke(0, &cur.wrapping_add(*by).to_le_bytes());
            self.rig.serve(fe);
            prop_assert!(!self.rig.frontends[fe].connected, "overrun did not disconnect");
            self.forget(*g);
        }
        Ok(())
    }

    fn forget(&mut self, g: usize) {
        self.expect.ggtt.retain(|(eg, _), _| *eg != g);
        self.expect.ppgtt.retain(|(eg, _, _), _| *eg != g);
    }

    /// Every entry the responses said was applied reads its page's bytes.
    fn check_expectations(&self) -> Result<(), TestCaseError> {
        let gpu = self.rig.platform.gpu();
        for ((g, i), page) in &self.expect.ggtt {
            let fe = &self.rig.frontends[self.fes[*g]];
            let abs = *g as u32 * SLICE + i;
            let got = gpu.gpu_read(Space::Ggtt, (abs as u64) << 12, 64);
            prop_assert_eq!(
                got,
                Ok(Hit::Mapped(fe.expected(page)[..64].to_vec())),
                "GGTT {} of guest {}",
                i,
                g
            );
        }
        for ((g, ctx, va), page) in &self.expect.ppgtt {
            let fe = &self.rig.frontends[self.fes[*g]];
            let root = self
                .rig
                .backend
                .engine()
                .context_root(fe.dom, gtt::ContextId(*ctx))
                .expect("context of a live entry");
            let got = gpu.gpu_read(Space::Ppgtt { root }, *va, 64);
            prop_assert_eq!(
                got,
                Ok(Hit::Mapped(fe.expected(page)[..64].to_vec())),
                "PPGTT {:#x} of guest {}",
                va,
                g
            );
        }
        Ok(())
    }
}

fn read_req_prod(rig: &Rig, fe: usize) -> u32 {
    let f = &rig.frontends[fe];
    let mut b = [0u8; 4];
    f.ring.guest.read(f.ring.gfn, 0, &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    for s in steps {
        h.apply(s)?;
        if let Err(p) = h.rig.check() {
            return Err(TestCaseError::fail(format!("after {s:?}: {p:?}")));
        }
        h.check_expectations()?;
    }
    // Copy-once: the backend read exactly one slot per request it took.
    let reads: u64 = h.fes.iter().map(|&fe| h.rig.frontends[fe].backend_slot_reads()).sum();
    prop_assert_eq!(reads, h.rig.backend.stats().requests);
    // Everyone leaves; every domain can then be destroyed completely.
    for g in 0..GUESTS.len() {
        let fe = h.fes[g];
        if h.rig.frontends[fe].connected {
            h.rig.disconnect(fe);
        }
    }
    if let Err(p) = h.rig.check() {
        return Err(TestCaseError::fail(format!("after everyone left: {p:?}")));
    }
    prop_assert_eq!(h.rig.backend.engine().counters().grants_live, 0);
    prop_assert_eq!(h.rig.backend.engine().counters().table_pages_live, 0);
    for dom in GUESTS {
        prop_assert_eq!(
            h.rig.platform.destroy_domain(dom),
            Some(DomainState::Dead),
            "{:?} is a zombie",
            dom
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    /// 10,000 random sequences of up to 40 steps from three guests (one never
    /// attached, all of them sometimes hostile) keep every invariant.
    #[test]
    fn random_guest_sequences_keep_every_isolation_invariant(steps in prop::collection::vec(step(), 1..40)) {
        run(&steps)?;
    }
}
