//! The driver under `gtt::Engine`, as gpu-dom runs it, with the model
//! watching: invalidation after every batch, nothing outside a guest's
//! slice, PPGTT walks with the right access, revocation back to scratch.

use std::cell::RefCell;
use std::rc::Rc;

use gtt::platform::{GrantMapError, GrantMapRequest, GrantMapper, GrantMapping, MappingCap};
use gtt::{Access, BusAddr, Config, DomId, Engine, GgttEntry, GrantRef, Limits, PpgttEntry};

use super::{setup, ModelDriver};
use crate::model::{ModelBar, ModelMemory, Walk};

fn bus_of(gref: u32) -> u64 {
    0x50_0000_0000 + (u64::from(gref) << 12)
}

/// What the mapper saw when `gtt` unmapped a grant.
#[derive(Debug, Default)]
struct UnmapLog {
    unmapped: Vec<u64>,
    /// Unmaps of a page the GPU could still reach, or with table writes or
    /// GGTT writes the GPU had not been made to see.
    too_early: Vec<u64>,
}

/// Grants map at a fixed bus address per ref; every unmap is checked
/// against the model GPU's view at that moment.
struct CheckingMapper {
    bar: ModelBar,
    mem: ModelMemory,
    log: Rc<RefCell<UnmapLog>>,
}

impl GrantMapper for CheckingMapper {
    fn map(
        &mut self,
        _: &MappingCap,
        reqs: &[GrantMapRequest],
        out: &mut [Result<GrantMapping, GrantMapError>],
    ) {
        for (r, o) in reqs.iter().zip(out) {
            *o = Ok(GrantMapping { bus: BusAddr(bus_of(r.gref.0)), handle: r.gref.0 });
        }
    }

    fn unmap(&mut self, _: &MappingCap, mappings: &[GrantMapping]) -> usize {
        let bar = self.bar.state();
        let mem = self.mem.state();
        let mut log = self.log.borrow_mut();
        for m in mappings {
            let a = m.bus.0;
            let visible = (0..bar.ggtt_entries()).any(|i| bar.gpu_ggtt(i).addr() == a);
            let unflushed = !bar.stale().is_empty() || mem.unpublished_writes != 0;
            if visible || mem.holds(a) || unflushed {
                log.too_early.push(a);
            }
            log.unmapped.push(a);
        }
        0
    }
}

const A: DomId = DomId(3);
const B: DomId = DomId(4);

fn limits(ggtt_base: u32, ggtt_len: u32) -> Limits {
    Limits { ggtt_base, ggtt_len, max_contexts: 2, max_pages: 64, max_table_pages: 16 }
}

struct Rig {
    engine: Engine<CheckingMapper, ModelDriver>,
    bar: ModelBar,
    mem: ModelMemory,
    log: Rc<RefCell<UnmapLog>>,
}

fn rig() -> Rig {
    let (d, bar, mem) = setup(1024);
    let log = Rc::new(RefCell::new(UnmapLog::default()));
    let mapper = CheckingMapper { bar: bar.clone(), mem: mem.clone(), log: log.clone() };
    let cfg =
        Config { max_guests: 2, grant_slots: 256, table_pages: 40, contexts: 4, max_batch: 64 };
    let mut engine = Engine::new(cfg, mapper, d);
    engine.attach(A, limits(100, 16)).unwrap();
    engine.attach(B, limits(200, 8)).unwrap();
    Rig { engine, bar, mem, log }
}

fn ggtt(index: u32, gref: u32) -> GgttEntry {
    GgttEntry { index, gref: GrantRef(gref), access: Access::ReadWrite }
}

/// After a batch: the GPU sees everything written, through a completed
/// flush whose last write was read back.
fn assert_flushed(r: &Rig, flushes_before: usize) {
    let s = r.bar.state();
    assert!(s.flushes.len() > flushes_before, "no flush after the batch");
    assert!(s.stale().is_empty(), "GGTT entries the GPU does not see: {:?}", s.stale());
    let f = s.flushes.last().unwrap();
    assert!(f.read_back && f.completed, "{f:?}");
    assert_eq!(r.mem.state().unpublished_writes, 0);
}

#[test]
fn every_batch_that_cleared_entries_is_followed_by_an_invalidation_before_any_unmap() {
    let mut r = rig();
    let n = |r: &Rig| r.bar.state().flushes.len();
    let before = n(&r);
    assert!(r.engine.ggtt_map(A, &[ggtt(0, 10), ggtt(1, 11), ggtt(2, 12)]).is_complete());
    assert_flushed(&r, before);
    // Clearing: the entries go to scratch and the grants are unmapped.
    let before = n(&r);
    assert!(r.engine.ggtt_unmap(A, &[0, 1]).is_complete());
    assert_flushed(&r, before);
    assert_eq!(r.log.borrow().unmapped, [bus_of(10), bus_of(11)]);
    // Replacing: the old grant is unmapped only after the new entry is seen.
    let before = n(&r);
    assert!(r.engine.ggtt_map(A, &[ggtt(2, 13)]).is_complete());
    assert_flushed(&r, before);
    // PPGTT clears, then detach (revokes everything).
    let ctx = r.engine.context_create(A).unwrap();
    let e = PpgttEntry { addr: 0x1000, gref: GrantRef(20), access: Access::ReadWrite };
    assert!(r.engine.ppgtt_map(A, ctx, &[e]).is_complete());
    let before = n(&r);
    assert!(r.engine.ppgtt_unmap(A, ctx, &[0x1000]).is_complete());
    assert_flushed(&r, before);
    let before = n(&r);
    r.engine.detach(A).unwrap();
    assert_flushed(&r, before);
    let log = r.log.borrow();
    assert!(log.unmapped.contains(&bus_of(20)) && log.unmapped.contains(&bus_of(13)));
    assert!(log.too_early.is_empty(), "unmapped while the GPU could reach: {:?}", log.too_early);
    let bar = r.bar.state();
    assert!(bar.violations.is_empty(), "{:?}", bar.violations);
    assert!(bar.tlb_invalidations.values().all(|&n| n >= 2), "PPGTT batches invalidated TLBs");
}

#[test]
fn a_guest_batch_writes_nothing_outside_its_slice() {
    let mut r = rig();
    let entries = [ggtt(0, 1), ggtt(15, 2), ggtt(7, 3), ggtt(16, 4), ggtt(u32::MAX, 5)];
    let out = r.engine.ggtt_map(A, &entries);
    assert_eq!(out.done, 3, "the out-of-slice entry ends the batch");
    assert!(r.engine.ggtt_map(B, &[ggtt(0, 6), ggtt(8, 7)]).done == 1);
    assert!(r.engine.ggtt_unmap(A, &[0, 15, 7, 16, 9999]).done == 3);
    r.engine.detach(A).unwrap();
    let bar = r.bar.state();
    let outside: Vec<u32> =
        bar.written.iter().copied().filter(|i| !(100..116).contains(i) && *i != 200).collect();
    assert!(outside.is_empty(), "written outside A's slice and B's entry 0: {outside:?}");
    assert_eq!(bar.gpu_ggtt(200).addr(), bus_of(6), "B's entry survives A's detach");
    let scratch = r.engine.gpu().scratch_page().0;
    assert!((100..116).all(|i| bar.gpu_ggtt(i).addr() == scratch));
    assert_eq!(r.engine.gpu().stats().rejected, 0, "gtt never broke the contract");
}

#[test]
fn the_ppgtt_walk_resolves_each_address_to_the_mapped_page_with_its_access() {
    let mut r = rig();
    let ctx = r.engine.context_create(A).unwrap();
    let root = r.engine.context_root(A, ctx).unwrap();
    assert!(r.engine.gpu().pml4_pointer(root).is_some());
    let ro = PpgttEntry { addr: 0x7f_c000_0000, gref: GrantRef(30), access: Access::ReadOnly };
    let rw = PpgttEntry { addr: 0x1000, gref: GrantRef(31), access: Access::ReadWrite };
    assert!(r.engine.ppgtt_map(A, ctx, &[ro, rw]).is_complete());
    let walk = |r: &Rig, va| r.mem.state().walk(root.0, va);
    assert!(
        matches!(walk(&r, ro.addr), Walk::Page { addr, writable: false, .. } if addr == bus_of(30))
    );
    assert!(
        matches!(walk(&r, rw.addr), Walk::Page { addr, writable: true, .. } if addr == bus_of(31))
    );
    let scratch = r.engine.gpu().scratch_page().0;
    for unmapped in [0x2000, 0x40_0000_0000, 0xffff_ffff_f000] {
        let w = walk(&r, unmapped);
        assert!(matches!(w, Walk::Page { addr, writable: false, .. } if addr == scratch), "{w:?}");
    }
    assert!(r.engine.ppgtt_unmap(A, ctx, &[ro.addr]).is_complete());
    assert!(matches!(walk(&r, ro.addr), Walk::Page { addr, .. } if addr == scratch));
    r.engine.detach(A).unwrap();
    let d = r.engine.gpu();
    assert_eq!(d.stats().tables_in_use, 0, "detach returned every table");
    assert_eq!(d.stats().rejected, 0);
}
