//! The driver under `gtt::Engine`, as gpu-dom runs it, with the model
//! watching: the GPU sees every batch's writes, nothing is written outside a
//! guest's slice, PPGTT walks give the mapped page with the granted access,
//! revocation goes back to scratch, and no grant is unmapped while the GPU
//! could still reach it (through the GGTT, the tables, or an engine TLB not
//! invalidated since the tables stopped naming it).
//!
//! Each scenario returns what it found instead of panicking, so the same
//! scenarios prove the honest driver (no finding, on every generation) and
//! catch the broken ones in `mutation`.

use std::cell::RefCell;
use std::rc::Rc;

use gtt::platform::GrantMapping;
use gtt::testing::FixedMapper;
use gtt::{Access, BusAddr, Config, DomId, Engine, GgttEntry, GrantRef, Limits, PpgttEntry};

use super::mutation::{MutantBar, MutantMemory, Mutation};
use super::Kind;
use crate::engines::Engine as GpuEngine;
use crate::model::{BarViolation, ModelBar, ModelMemory, Walk};
use crate::{probe, I915};

/// Where the grant mapper puts grants (`FixedMapper`).
const GRANTS: u64 = 0x50_0000_0000;

fn bus_of(gref: u32) -> u64 {
    GRANTS + (u64::from(gref) << 12)
}

/// How the GPU could still reach a page when its grant was unmapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A GGTT entry the GPU uses names it.
    Ggtt,
    /// A table entry names it.
    Tables,
    /// GGTT or table writes the GPU was not made to see were pending.
    Unflushed,
    /// This engine's TLB was not invalidated since the tables stopped naming it.
    Tlb(GpuEngine),
}

/// Something a scenario found wrong.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Finding {
    /// After a batch, GGTT entries the GPU does not use yet.
    NotFlushed(Vec<u32>),
    /// A batch's GGTT writes were published without the last being read back.
    NotReadBack,
    /// After a batch, table writes not made visible.
    TablesNotVisible(u64),
    /// A grant unmapped while the GPU could reach its page.
    UnmappedTooEarly(u64, Reach),
    /// GGTT indexes written outside the guest's slice.
    OutsideSlice(Vec<u32>),
    /// A GPU address that did not lead to the mapped page with its access.
    Walk(u64, Walk),
    /// A rule the model saw broken.
    Violation(BarViolation),
    /// Driver calls rejected (gtt never breaks the contract).
    Rejected(u64),
    /// Something else the scenario expected (what).
    Expected(&'static str),
}

/// The unmap hook of the grant mapper.
type Checker = Box<dyn FnMut(&GrantMapping)>;

/// Checks each unmapped grant against the model GPU's view at that moment:
/// nothing may still reach its page.
fn checker(
    bar: ModelBar,
    mem: ModelMemory,
    found: Rc<RefCell<Vec<Finding>>>,
    unmapped: Rc<RefCell<Vec<u64>>>,
) -> Checker {
    Box::new(move |m: &GrantMapping| {
        let bar = bar.state();
        let mem = mem.state();
        let a = m.bus.0;
        let reach = if bar.gpu_reaches(a) {
            Some(Reach::Ggtt)
        } else if mem.holds(a) {
            Some(Reach::Tables)
        } else if !bar.stale().is_empty() || mem.unpublished_reachable != 0 {
            Some(Reach::Unflushed)
        } else {
            bar.tlb_may_hold(a).map(Reach::Tlb)
        };
        if let Some(r) = reach {
            found.borrow_mut().push(Finding::UnmappedTooEarly(a, r));
        }
        unmapped.borrow_mut().push(a);
    })
}

const A: DomId = DomId(3);
const B: DomId = DomId(4);

fn limits(ggtt_base: u32, ggtt_len: u32) -> Limits {
    Limits { ggtt_base, ggtt_len, max_contexts: 2, max_pages: 64, max_table_pages: 16 }
}

/// The driver as gpu-dom runs it, on a (possibly mutated) model.
struct Rig {
    engine: Engine<FixedMapper<Checker>, I915<MutantBar, MutantMemory>>,
    bar: ModelBar,
    mem: ModelMemory,
    found: Rc<RefCell<Vec<Finding>>>,
    unmapped: Rc<RefCell<Vec<u64>>>,
    flushes_seen: usize,
}

impl Rig {
    /// A `kind` model driven through `mutation`, guests A (GGTT 100+16)
    /// and B (200+8) attached.
    fn new(kind: Kind, mutation: Mutation) -> Rig {
        let mut m = kind.model(64);
        let info = probe(&mut m.pci).unwrap();
        let cfg = crate::Config { ggtt_limit: 1024, ..crate::Config::default() };
        let bar = MutantBar::new(m.bar.clone(), mutation);
        let mem = MutantMemory::new(m.mem.clone(), mutation);
        let d = I915::new(info, bar, mem, cfg).unwrap();
        m.bar.state_mut().clear_logs();
        let found = Rc::new(RefCell::new(Vec::new()));
        let unmapped = Rc::new(RefCell::new(Vec::new()));
        let hook = checker(m.bar.clone(), m.mem.clone(), found.clone(), unmapped.clone());
        let mapper = FixedMapper::with_unmap_hook(GRANTS, hook);
        let cfg =
            Config { max_guests: 2, grant_slots: 256, table_pages: 40, contexts: 4, max_batch: 64 };
        let mut engine = Engine::new(cfg, mapper, d);
        engine.attach(A, limits(100, 16)).unwrap();
        engine.attach(B, limits(200, 8)).unwrap();
        Rig { engine, bar: m.bar, mem: m.mem, found, unmapped, flushes_seen: 0 }
    }

    /// A new context of `dom`, its root registered with the model.
    fn context(&mut self, dom: DomId) -> (gtt::ContextId, BusAddr) {
        let ctx = self.engine.context_create(dom).unwrap();
        let root = self.engine.context_root(dom, ctx).unwrap();
        self.mem.add_root(root.0);
        (ctx, root)
    }

    /// Detaches `dom`, then forgets the roots of its contexts.
    fn detach(&mut self, dom: DomId, roots: &[BusAddr]) {
        self.engine.detach(dom).unwrap();
        for r in roots {
            self.mem.remove_root(r.0);
        }
    }

    fn find(&self, f: Finding) {
        self.found.borrow_mut().push(f);
    }

    /// After a batch: the GPU sees every GGTT write, each publication read
    /// the last write back, and every table write was made visible.
    fn check_batch(&mut self) {
        let s = self.bar.state();
        let stale = s.stale();
        let new = &s.flushes[self.flushes_seen.min(s.flushes.len())..];
        let published_unread = |f: &&crate::model::Flush| !f.ggtt_writes.is_empty();
        let unread = new.iter().filter(published_unread).any(|f| !(f.read_back && f.completed));
        let unpublished = self.mem.state().unpublished_reachable;
        self.flushes_seen = s.flushes.len();
        drop(s);
        if !stale.is_empty() {
            self.find(Finding::NotFlushed(stale));
        }
        if unread {
            self.find(Finding::NotReadBack);
        }
        if unpublished != 0 {
            self.find(Finding::TablesNotVisible(unpublished));
        }
    }

    /// Everything found, with the model's violations and the driver's
    /// rejections.
    fn findings(self) -> Vec<Finding> {
        let mut found = self.found.borrow().clone();
        let s = self.bar.state();
        found.extend(s.violations.iter().copied().map(Finding::Violation));
        let rejected = self.engine.gpu().stats().rejected;
        if rejected != 0 {
            found.push(Finding::Rejected(rejected));
        }
        found
    }
}

fn ggtt(index: u32, gref: u32) -> GgttEntry {
    GgttEntry { index, gref: GrantRef(gref), access: Access::ReadWrite }
}

/// Maps, clears, replaces and revokes GGTT and PPGTT entries, checking
/// after every batch and at every unmap.
pub(crate) fn clearing_batches(kind: Kind, mutation: Mutation) -> Vec<Finding> {
    let mut r = Rig::new(kind, mutation);
    assert!(r.engine.ggtt_map(A, &[ggtt(0, 10), ggtt(1, 11), ggtt(2, 12)]).is_complete());
    r.check_batch();
    // Clearing: the entries go to scratch and the grants are unmapped.
    assert!(r.engine.ggtt_unmap(A, &[0, 1]).is_complete());
    r.check_batch();
    if *r.unmapped.borrow() != [bus_of(10), bus_of(11)] {
        r.find(Finding::Expected("grants 10 and 11 unmapped after the clear"));
    }
    // Replacing: the old grant is unmapped only after the new entry is seen.
    assert!(r.engine.ggtt_map(A, &[ggtt(2, 13)]).is_complete());
    r.check_batch();
    // PPGTT maps and clears, then detach (revokes everything).
    let (ctx, root) = r.context(A);
    let e = PpgttEntry { addr: 0x1000, gref: GrantRef(20), access: Access::ReadWrite };
    let e2 = PpgttEntry { addr: 0x2000, gref: GrantRef(21), access: Access::ReadWrite };
    assert!(r.engine.ppgtt_map(A, ctx, &[e, e2]).is_complete());
    r.check_batch();
    assert!(r.engine.ppgtt_unmap(A, ctx, &[0x1000]).is_complete());
    r.check_batch();
    r.detach(A, &[root]);
    r.check_batch();
    let unmapped = r.unmapped.borrow().clone();
    if ![bus_of(20), bus_of(21), bus_of(13)].iter().all(|a| unmapped.contains(a)) {
        r.find(Finding::Expected("detach unmapped every grant"));
    }
    r.findings()
}

/// Batches with out-of-slice indexes: nothing is written outside the
/// guest's slice, and one guest's detach leaves the other's entry.
pub(crate) fn slice_confinement(kind: Kind, mutation: Mutation) -> Vec<Finding> {
    let mut r = Rig::new(kind, mutation);
    let entries = [ggtt(0, 1), ggtt(15, 2), ggtt(7, 3), ggtt(16, 4), ggtt(u32::MAX, 5)];
    assert_eq!(r.engine.ggtt_map(A, &entries).done, 3, "the out-of-slice entry ends the batch");
    r.check_batch();
    assert_eq!(r.engine.ggtt_map(B, &[ggtt(0, 6), ggtt(8, 7)]).done, 1);
    r.check_batch();
    assert_eq!(r.engine.ggtt_unmap(A, &[0, 15, 7, 16, 9999]).done, 3);
    r.check_batch();
    r.engine.detach(A).unwrap();
    r.check_batch();
    let s = r.bar.state();
    let outside: Vec<u32> =
        s.written.iter().copied().filter(|i| !(100..116).contains(i) && *i != 200).collect();
    let b_kept = s.gpu_ggtt_addr(200) == bus_of(6);
    let scratch = r.engine.gpu().scratch_page().0;
    let a_cleared = (100..116).all(|i| s.gpu_ggtt_addr(i) == scratch);
    drop(s);
    if !outside.is_empty() {
        r.find(Finding::OutsideSlice(outside));
    }
    if !b_kept {
        r.find(Finding::Expected("B's entry survives A's detach"));
    }
    if !a_cleared {
        r.find(Finding::Expected("A's slice back at scratch"));
    }
    r.findings()
}

/// PPGTT mappings with both accesses: each address walks to its page with
/// its access, unmapped ones to the read-only scratch page; detach returns
/// every table.
pub(crate) fn walk_access(kind: Kind, mutation: Mutation) -> Vec<Finding> {
    let mut r = Rig::new(kind, mutation);
    let (ctx, root) = r.context(A);
    if r.engine.gpu().pml4_pointer(root).is_none() {
        r.find(Finding::Expected("the context root is a live PML4"));
    }
    let ro = PpgttEntry { addr: 0x7f_c000_0000, gref: GrantRef(30), access: Access::ReadOnly };
    let rw = PpgttEntry { addr: 0x1000, gref: GrantRef(31), access: Access::ReadWrite };
    assert!(r.engine.ppgtt_map(A, ctx, &[ro, rw]).is_complete());
    r.check_batch();
    let walk = |r: &Rig, va| r.mem.state().walk(root.0, va);
    let scratch = r.engine.gpu().scratch_page().0;
    let expect = |r: &Rig, va: u64, addr: u64, writable: bool| {
        let w = walk(r, va);
        if !matches!(w, Walk::Page { addr: a, writable: wr, .. } if a == addr && wr == writable) {
            r.find(Finding::Walk(va, w));
        }
    };
    expect(&r, ro.addr, bus_of(30), false);
    expect(&r, rw.addr, bus_of(31), true);
    for unmapped in [0x2000, 0x40_0000_0000, 0xffff_ffff_f000] {
        expect(&r, unmapped, scratch, false);
    }
    assert!(r.engine.ppgtt_unmap(A, ctx, &[ro.addr]).is_complete());
    r.check_batch();
    expect(&r, ro.addr, scratch, false);
    r.detach(A, &[root]);
    r.check_batch();
    if r.engine.gpu().stats().tables_in_use != 0 {
        r.find(Finding::Expected("detach returned every table"));
    }
    r.findings()
}

per_gen! {
    /// Every batch that cleared entries is flushed (as the generation
    /// needs) and its TLBs invalidated before any grant is unmapped.
    fn every_batch_that_cleared_entries_is_flushed_before_any_unmap(k: Kind) {
        assert_eq!(clearing_batches(k, Mutation::None), []);
    }

    fn a_guest_batch_writes_nothing_outside_its_slice(k: Kind) {
        assert_eq!(slice_confinement(k, Mutation::None), []);
    }

    fn the_ppgtt_walk_resolves_each_address_to_the_mapped_page_with_its_access(k: Kind) {
        assert_eq!(walk_access(k, Mutation::None), []);
    }

    fn every_engine_tlb_was_invalidated_after_the_ppgtt_batches(k: Kind) {
        let mut r = Rig::new(k, Mutation::None);
        let (ctx, _) = r.context(A);
        let e = PpgttEntry { addr: 0x1000, gref: GrantRef(20), access: Access::ReadWrite };
        assert!(r.engine.ppgtt_map(A, ctx, &[e]).is_complete());
        assert!(r.engine.ppgtt_unmap(A, ctx, &[0x1000]).is_complete());
        let s = r.bar.state();
        for engine in s.tlb.engines() {
            assert!(s.tlb.completed.get(&engine).is_some_and(|&n| n >= 2), "{engine}");
        }
        assert_eq!(s.tlb_may_hold(bus_of(20)), None);
    }
}
