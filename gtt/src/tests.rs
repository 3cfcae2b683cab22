//! Unit tests of the engine against a recording fake platform. The property
//! tests against the full platform model (IOMMU, model GPU) live in `tests/`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::*;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Map(u16, u32),
    Unmap(u64),
    GgttSet(u32, u64, Access),
    GgttClear(u32),
    Alloc(u32, Level),
    Free(u32),
    SetLeaf(u32, u16, u64, Access),
    SetDir(u32, u16, u32),
    Clear(u32, Level, u16),
    Invalidate,
}

type Log = Rc<RefCell<Vec<Ev>>>;

/// Grants: (dom, gref) -> read-only?; refs outside this set fail with GNTST_bad_gntref.
struct FakeMapper {
    log: Log,
    grants: HashMap<(u16, u32), bool>,
    next: u64,
    live: HashSet<u64>,
}

impl GrantMapper for FakeMapper {
    fn map(
        &mut self,
        _: &MappingCap,
        reqs: &[GrantMapRequest],
        out: &mut [Result<GrantMapping, GrantMapError>],
    ) {
        for (r, o) in reqs.iter().zip(out.iter_mut()) {
            self.log.borrow_mut().push(Ev::Map(r.dom.0, r.gref.0));
            *o = match self.grants.get(&(r.dom.0, r.gref.0)) {
                None => Err(GrantMapError::Xen(-3)),
                Some(true) if r.access == Access::ReadWrite => Err(GrantMapError::Xen(-1)),
                Some(_) => {
                    self.next += 1;
                    let bus = 0x1_0000_0000 + self.next * 4096;
                    self.live.insert(bus);
                    Ok(GrantMapping { bus: BusAddr(bus), handle: self.next as u32 })
                }
            };
        }
    }
    fn unmap(&mut self, _: &MappingCap, m: &[GrantMapping]) -> usize {
        for g in m {
            assert!(self.live.remove(&g.bus.0), "unmap of a bus address not mapped");
            self.log.borrow_mut().push(Ev::Unmap(g.bus.0));
        }
        0
    }
}

struct FakeGpu {
    log: Log,
    ggtt: HashMap<u32, (u64, Access)>,
    tables: HashMap<u32, HashMap<u16, u64>>,
    next: u32,
    pool: u32,
    ro_ggtt: bool,
}

impl GpuTables for FakeGpu {
    fn caps(&self) -> GpuCaps {
        GpuCaps { ggtt_entries: 1024, ggtt_read_only: self.ro_ggtt, ppgtt_read_only: true }
    }
    fn ggtt_set(&mut self, _: &MappingCap, i: u32, p: BusAddr, a: Access) {
        self.ggtt.insert(i, (p.0, a));
        self.log.borrow_mut().push(Ev::GgttSet(i, p.0, a));
    }
    fn ggtt_clear(&mut self, _: &MappingCap, i: u32) {
        self.ggtt.remove(&i);
        self.log.borrow_mut().push(Ev::GgttClear(i));
    }
    fn table_alloc(&mut self, _: &MappingCap, l: Level) -> Option<TablePage> {
        if self.pool == 0 {
            return None;
        }
        self.pool -= 1;
        self.next += 1;
        self.tables.insert(self.next, HashMap::new());
        self.log.borrow_mut().push(Ev::Alloc(self.next, l));
        Some(TablePage { bus: BusAddr(0x8000_0000 + self.next as u64 * 4096), id: self.next })
    }
    fn table_free(&mut self, _: &MappingCap, t: TablePage) {
        let entries = self.tables.remove(&t.id).expect("free of an unknown table");
        assert!(entries.is_empty() || self.log.borrow().contains(&Ev::Invalidate));
        self.pool += 1;
        self.log.borrow_mut().push(Ev::Free(t.id));
    }
    fn table_set_leaf(&mut self, _: &MappingCap, t: TablePage, i: u16, p: BusAddr, a: Access) {
        self.tables.get_mut(&t.id).unwrap().insert(i, p.0);
        self.log.borrow_mut().push(Ev::SetLeaf(t.id, i, p.0, a));
    }
    fn table_set_dir(&mut self, _: &MappingCap, t: TablePage, _: Level, i: u16, c: TablePage) {
        self.tables.get_mut(&t.id).unwrap().insert(i, c.bus.0);
        self.log.borrow_mut().push(Ev::SetDir(t.id, i, c.id));
    }
    fn table_clear(&mut self, _: &MappingCap, t: TablePage, l: Level, i: u16) {
        self.tables.get_mut(&t.id).unwrap().remove(&i);
        self.log.borrow_mut().push(Ev::Clear(t.id, l, i));
    }
    fn invalidate(&mut self, _: &MappingCap) {
        self.log.borrow_mut().push(Ev::Invalidate);
    }
}

const A: DomId = DomId(1);
const B: DomId = DomId(2);

fn limits(base: u32) -> Limits {
    Limits { ggtt_base: base, ggtt_len: 64, max_contexts: 2, max_pages: 32, max_table_pages: 16 }
}

fn engine() -> (Engine<FakeMapper, FakeGpu>, Log) {
    let log: Log = Rc::default();
    let mut grants = HashMap::new();
    for g in 0..64 {
        grants.insert((A.0, g), g >= 50);
        grants.insert((B.0, g), g >= 50);
    }
    let m = FakeMapper { log: log.clone(), grants, next: 0, live: HashSet::new() };
    let gpu = FakeGpu {
        log: log.clone(),
        ggtt: HashMap::new(),
        tables: HashMap::new(),
        next: 0,
        pool: 64,
        ro_ggtt: false,
    };
    let cfg =
        Config { max_guests: 4, grant_slots: 128, table_pages: 64, contexts: 8, max_batch: 16 };
    let mut e = Engine::new(cfg, m, gpu);
    e.attach(A, limits(0)).unwrap();
    e.attach(B, limits(64)).unwrap();
    (e, log)
}

fn gg(index: u32, gref: u32) -> GgttEntry {
    GgttEntry { index, gref: GrantRef(gref), access: Access::ReadWrite }
}

fn pp(addr: u64, gref: u32, access: Access) -> PpgttEntry {
    PpgttEntry { addr, gref: GrantRef(gref), access }
}

fn pos(log: &Log, ev: &Ev) -> usize {
    log.borrow().iter().position(|e| e == ev).unwrap_or_else(|| panic!("{ev:?} not in log"))
}

#[test]
fn ggtt_map_writes_the_grant_bus_address_at_the_slice_offset() {
    let (mut e, _) = engine();
    let out = e.ggtt_map(B, &[gg(3, 7)]);
    assert_eq!(out, BatchOutcome { done: 1, refusal: None });
    let (bus, _) = e.ggtt_lookup(B, 3).unwrap();
    assert_eq!(e.gpu().ggtt.get(&(64 + 3)), Some(&(bus.0, Access::ReadWrite)));
    assert!(e.mapper().live.contains(&bus.0));
}

#[test]
fn a_guest_that_was_not_attached_is_refused_everything() {
    let (mut e, log) = engine();
    let c = DomId(9);
    let out = e.ggtt_map(c, &[gg(0, 1)]);
    assert_eq!(out.refusal, Some((0, Refusal::NotAttached { dom: c })));
    assert_eq!(e.context_create(c), Err(Refusal::NotAttached { dom: c }));
    assert!(log.borrow().is_empty(), "nothing may reach the platform for an unknown guest");
    assert_eq!(e.counters().refused_of(RefusalKind::NotAttached), 2);
}

#[test]
fn out_of_slice_index_stops_the_batch_after_the_valid_prefix() {
    let (mut e, _) = engine();
    let out = e.ggtt_map(A, &[gg(0, 1), gg(63, 2), gg(64, 3), gg(5, 4)]);
    assert_eq!(out.done, 2);
    assert_eq!(out.refusal, Some((2, Refusal::GgttIndexOutOfSlice { index: 64, slice_len: 64 })));
    assert!(e.ggtt_lookup(A, 5).is_none());
    assert_eq!(e.guest_stats(A).unwrap().pages, 2, "grant 3 and 4 were never mapped");
}

#[test]
fn one_grant_used_by_many_entries_is_mapped_once_and_unmapped_after_the_last() {
    let (mut e, log) = engine();
    assert!(e.ggtt_map(A, &[gg(0, 5), gg(1, 5), gg(2, 5)]).is_complete());
    assert_eq!(log.borrow().iter().filter(|e| matches!(e, Ev::Map(..))).count(), 1);
    assert!(e.ggtt_unmap(A, &[0, 1]).is_complete());
    assert_eq!(e.counters().grants_live, 1);
    assert!(e.ggtt_unmap(A, &[2]).is_complete());
    assert_eq!(e.counters().grants_live, 0);
    assert!(e.mapper().live.is_empty());
}

#[test]
fn clearing_invalidates_before_the_grant_is_unmapped() {
    let (mut e, log) = engine();
    e.ggtt_map(A, &[gg(4, 9)]);
    let (bus, _) = e.ggtt_lookup(A, 4).unwrap();
    log.borrow_mut().clear();
    e.ggtt_unmap(A, &[4]);
    let (clear, inv, unmap) =
        (pos(&log, &Ev::GgttClear(4)), pos(&log, &Ev::Invalidate), pos(&log, &Ev::Unmap(bus.0)));
    assert!(clear < inv && inv < unmap, "{:?}", log.borrow());
}

#[test]
fn a_replaced_entry_is_rewritten_before_the_old_grant_is_unmapped() {
    let (mut e, log) = engine();
    e.ggtt_map(A, &[gg(4, 9)]);
    let (old, _) = e.ggtt_lookup(A, 4).unwrap();
    log.borrow_mut().clear();
    assert!(e.ggtt_map(A, &[gg(4, 10)]).is_complete());
    let (new, _) = e.ggtt_lookup(A, 4).unwrap();
    let set = pos(&log, &Ev::GgttSet(4, new.0, Access::ReadWrite));
    let inv = pos(&log, &Ev::Invalidate);
    let unmap = pos(&log, &Ev::Unmap(old.0));
    assert!(set < inv && inv < unmap, "{:?}", log.borrow());
}

#[test]
fn remapping_the_same_grant_at_the_same_index_keeps_it_mapped() {
    let (mut e, log) = engine();
    e.ggtt_map(A, &[gg(4, 9)]);
    e.ggtt_map(A, &[gg(4, 9), gg(4, 9)]);
    assert!(!log.borrow().iter().any(|e| matches!(e, Ev::Unmap(_))));
    assert_eq!(e.guest_stats(A).unwrap().ggtt_entries, 1);
}

#[test]
fn read_only_in_a_ggtt_without_read_only_entries_is_refused_not_upgraded() {
    let (mut e, log) = engine();
    let out =
        e.ggtt_map(A, &[GgttEntry { index: 0, gref: GrantRef(55), access: Access::ReadOnly }]);
    assert_eq!(out.refusal, Some((0, Refusal::ReadOnlyUnsupported)));
    assert!(log.borrow().is_empty());
}

#[test]
fn a_read_only_grant_asked_writable_is_refused_by_xen_and_nothing_stays_mapped() {
    let (mut e2, _) = engine();
    let ctx = e2.context_create(A).unwrap();
    let out = e2.ppgtt_map(
        A,
        ctx,
        &[pp(0x1000, 1, Access::ReadWrite), pp(0x2000, 55, Access::ReadWrite)],
    );
    assert_eq!(out.done, 1);
    assert_eq!(out.refusal, Some((1, Refusal::GrantMapFailed { gref: GrantRef(55), status: -1 })));
    assert_eq!(e2.counters().grants_live, 1);
    let ok = e2.ppgtt_map(A, ctx, &[pp(0x3000, 55, Access::ReadOnly)]);
    assert!(ok.is_complete());
    assert_eq!(e2.ppgtt_lookup(A, ctx, 0x3000).unwrap().1, Access::ReadOnly);
}

#[test]
fn a_grant_mapped_read_only_is_not_reused_for_a_writable_entry() {
    let (mut e, _) = engine();
    let ctx = e.context_create(A).unwrap();
    assert!(e.ppgtt_map(A, ctx, &[pp(0x1000, 3, Access::ReadOnly)]).is_complete());
    let out = e.ppgtt_map(A, ctx, &[pp(0x2000, 3, Access::ReadWrite)]);
    assert_eq!(out.refusal, Some((0, Refusal::GrantMappedReadOnly { gref: GrantRef(3) })));
}

#[test]
fn a_failed_grant_stops_the_batch_and_unused_fresh_grants_are_unmapped() {
    let (mut e, _) = engine();
    // gref 70 is not granted: Xen says GNTST_bad_gntref (-3).
    let out = e.ggtt_map(A, &[gg(0, 1), gg(1, 70), gg(2, 2)]);
    assert_eq!(out.done, 1);
    assert_eq!(out.refusal, Some((1, Refusal::GrantMapFailed { gref: GrantRef(70), status: -3 })));
    assert_eq!(e.counters().grants_live, 1, "gref 2 was mapped in the batch but never used");
    assert_eq!(e.mapper().live.len(), 1);
}

#[test]
fn the_page_limit_counts_distinct_grants() {
    let (mut e, _) = engine();
    let many: Vec<_> = (0..16).map(|i| gg(i, i % 4)).collect();
    assert!(e.ggtt_map(A, &many).is_complete());
    let more: Vec<_> = (0..16).map(|i| gg(16 + i, 4 + i)).collect();
    assert!(e.ggtt_map(A, &more).is_complete());
    let more: Vec<_> = (0..16).map(|i| gg(32 + i, 20 + i)).collect();
    let out = e.ggtt_map(A, &more);
    assert_eq!(out.refusal, Some((12, Refusal::PageLimit { max: 32 })));
    assert_eq!(e.guest_stats(A).unwrap().pages, 32);
}

#[test]
fn ppgtt_map_builds_the_four_levels_and_unmap_frees_empty_tables_after_invalidating() {
    let (mut e, log) = engine();
    let ctx = e.context_create(A).unwrap();
    let addr = 0x0000_7f12_3456_7000;
    assert!(e.ppgtt_map(A, ctx, &[pp(addr, 1, Access::ReadWrite)]).is_complete());
    assert_eq!(e.guest_stats(A).unwrap().table_pages, 4);
    let allocs: Vec<_> = log
        .borrow()
        .iter()
        .filter_map(|e| if let Ev::Alloc(_, l) = e { Some(*l) } else { None })
        .collect();
    assert_eq!(allocs, Level::ALL);
    log.borrow_mut().clear();
    assert!(e.ppgtt_unmap(A, ctx, &[addr]).is_complete());
    assert_eq!(e.guest_stats(A).unwrap().table_pages, 1, "only the root remains");
    let inv = pos(&log, &Ev::Invalidate);
    for (i, ev) in log.borrow().iter().enumerate() {
        if matches!(ev, Ev::Free(_) | Ev::Unmap(_)) {
            assert!(i > inv, "{ev:?} before the invalidation: {:?}", log.borrow());
        }
        if matches!(ev, Ev::Clear(..)) {
            assert!(i < inv);
        }
    }
}

#[test]
fn ppgtt_addresses_must_be_aligned_and_below_2_pow_48() {
    let (mut e, _) = engine();
    let ctx = e.context_create(A).unwrap();
    for bad in [0x1001, 1 << 48, !0xfff] {
        let out = e.ppgtt_map(A, ctx, &[pp(bad, 1, Access::ReadWrite)]);
        assert_eq!(out.refusal, Some((0, Refusal::BadGpuAddress { addr: bad })));
    }
}

#[test]
fn contexts_are_per_guest_and_limited() {
    let (mut e, _) = engine();
    let a0 = e.context_create(A).unwrap();
    let _a1 = e.context_create(A).unwrap();
    assert_eq!(e.context_create(A), Err(Refusal::ContextLimit { max: 2 }));
    // B's context 0 is B's own; A's id means nothing to B until B creates one.
    assert_eq!(e.ppgtt_map(B, a0, &[]).refusal, Some((0, Refusal::UnknownContext { ctx: a0 })));
    let b0 = e.context_create(B).unwrap();
    assert!(e.ppgtt_map(B, b0, &[pp(0, 1, Access::ReadWrite)]).is_complete());
    assert!(e.ppgtt_lookup(A, a0, 0).is_none());
}

#[test]
fn the_table_page_limit_bounds_sparse_mappings_of_one_grant() {
    let (mut e, _) = engine();
    let ctx = e.context_create(A).unwrap();
    // Each address in its own 512 GiB region needs 3 new tables.
    let sparse: Vec<_> = (0..8u64).map(|i| pp(i << 39, 1, Access::ReadWrite)).collect();
    let out = e.ppgtt_map(A, ctx, &sparse);
    assert_eq!(out.refusal, Some((5, Refusal::TablePageLimit { max: 16 })));
    assert_eq!(e.guest_stats(A).unwrap().table_pages, 16);
    // The half-built branch for entry 5 was pruned and freed.
    assert_eq!(e.guest_stats(A).unwrap().ppgtt_entries, 5);
}

#[test]
fn context_destroy_releases_its_tables_and_grants_only() {
    let (mut e, log) = engine();
    let c0 = e.context_create(A).unwrap();
    let c1 = e.context_create(A).unwrap();
    e.ppgtt_map(A, c0, &[pp(0x1000, 1, Access::ReadWrite), pp(0x2000, 2, Access::ReadWrite)]);
    e.ppgtt_map(A, c1, &[pp(0x1000, 2, Access::ReadWrite)]);
    log.borrow_mut().clear();
    let rel = e.context_destroy(A, c0).unwrap();
    assert_eq!(rel.grants_unmapped, 1, "grant 2 is still used by context 1");
    assert_eq!(rel.table_pages_freed, 4);
    assert!(e.ppgtt_lookup(A, c1, 0x1000).is_some());
    assert_eq!(e.ppgtt_map(A, c0, &[]).refusal, Some((0, Refusal::UnknownContext { ctx: c0 })));
}

#[test]
fn detach_clears_invalidates_then_releases_everything_of_that_guest_only() {
    let (mut e, log) = engine();
    let ca = e.context_create(A).unwrap();
    let cb = e.context_create(B).unwrap();
    e.ggtt_map(A, &[gg(0, 1), gg(1, 2)]);
    e.ppgtt_map(A, ca, &[pp(0x5000, 3, Access::ReadWrite), pp(0x6000, 55, Access::ReadOnly)]);
    e.ggtt_map(B, &[gg(0, 1)]);
    e.ppgtt_map(B, cb, &[pp(0x5000, 3, Access::ReadWrite)]);
    log.borrow_mut().clear();
    let rel = e.detach(A).unwrap();
    assert_eq!(rel.grants_unmapped, 4);
    assert_eq!(rel.table_pages_freed, 4);
    assert_eq!(rel.contexts_destroyed, 1);
    let inv = pos(&log, &Ev::Invalidate);
    for (i, ev) in log.borrow().iter().enumerate() {
        match ev {
            Ev::Unmap(_) | Ev::Free(_) => assert!(i > inv),
            // Unlinking (GGTT entries, the roots' entries) precedes the
            // invalidation; entries below an unlinked root are cleared after
            // it, before their tables are freed.
            Ev::GgttClear(_) | Ev::Clear(_, Level::Pml4, _) => assert!(i < inv),
            _ => {}
        }
    }
    assert!(e.guest_stats(A).is_none());
    assert_eq!(e.ggtt_map(A, &[gg(0, 1)]).refusal, Some((0, Refusal::NotAttached { dom: A })));
    assert!(e.ggtt_lookup(B, 0).is_some() && e.ppgtt_lookup(B, cb, 0x5000).is_some());
    assert_eq!(e.counters().grants_live, 2);
    e.detach(B).unwrap();
    assert!(e.mapper().live.is_empty());
    assert_eq!(e.counters().table_pages_live, 0);
    assert!(e.gpu().ggtt.is_empty() && e.gpu().tables.is_empty());
}

#[test]
fn attach_refuses_overlapping_or_oversized_slices_and_duplicates() {
    let (mut e, _) = engine();
    let c = DomId(3);
    assert_eq!(e.attach(A, limits(200)), Err(Refusal::AlreadyAttached { dom: A }));
    assert_eq!(
        e.attach(c, limits(100)),
        Err(Refusal::SliceOverlaps { base: 100, len: 64, other: B })
    );
    assert_eq!(
        e.attach(c, limits(1000)),
        Err(Refusal::SliceOutOfRange { base: 1000, len: 64, ggtt_entries: 1024 })
    );
    let mut l = limits(u32::MAX);
    assert!(matches!(e.attach(c, l), Err(Refusal::SliceOutOfRange { .. })));
    l = limits(128);
    l.max_contexts = 17;
    assert_eq!(e.attach(c, l), Err(Refusal::ContextLimitTooHigh { requested: 17, max: 16 }));
    assert!(e.attach(c, limits(128)).is_ok());
}

#[test]
fn a_batch_over_capacity_is_refused_whole() {
    let (mut e, log) = engine();
    let big: Vec<_> = (0..17).map(|i| gg(i, 1)).collect();
    assert_eq!(e.ggtt_map(A, &big).refusal, Some((0, Refusal::BatchTooLarge { len: 17, max: 16 })));
    assert!(log.borrow().is_empty());
}

// ---- admission control (pools.rs) -----------------------------------------

/// An engine of `grant_slots` grant slots and `table_pages` table pages
/// (the driver's pool the same), no guest attached; every gref below 256
/// of domains 1..=3 is grantable writable.
fn small_engine(grant_slots: usize, table_pages: usize) -> Engine<FakeMapper, FakeGpu> {
    let log: Log = Rc::default();
    let grants = (1..=3u16).flat_map(|d| (0..256).map(move |g| ((d, g), false))).collect();
    let m = FakeMapper { log: log.clone(), grants, next: 0, live: HashSet::new() };
    let gpu = FakeGpu {
        log,
        ggtt: HashMap::new(),
        tables: HashMap::new(),
        next: 0,
        pool: table_pages as u32,
        ro_ggtt: false,
    };
    let cfg = Config { max_guests: 4, grant_slots, table_pages, contexts: 8, max_batch: 256 };
    Engine::new(cfg, m, gpu)
}

fn limits_of(base: u32, pages: u32, table_pages: u32) -> Limits {
    Limits {
        ggtt_base: base,
        ggtt_len: 128,
        max_contexts: 2,
        max_pages: pages,
        max_table_pages: table_pages,
    }
}

#[test]
fn attach_refuses_limits_that_do_not_fit_naming_the_pool_and_the_numbers() {
    // The reproducer: before admission control, H (within its own
    // limits) took every slot and G's next map got BACKEND_FULL.
    let mut e = small_engine(64, 32);
    let (h, g) = (DomId(1), DomId(2));
    e.attach(h, limits_of(0, 64, 32)).unwrap();
    let all: Vec<_> = (0..64).map(|i| gg(i, i)).collect();
    assert!(e.ggtt_map(h, &all).is_complete());
    assert_eq!(
        e.attach(g, limits_of(128, 1, 1)),
        Err(Refusal::DoesNotFit { pool: Pool::Pages, requested: 1, free: 0, capacity: 64 })
    );
    let msg = Refusal::DoesNotFit { pool: Pool::Pages, requested: 1, free: 0, capacity: 64 };
    assert_eq!(
        msg.to_string(),
        "does not fit: 1 pages asked, 0 of 64 free (the rest is reserved by attached guests)"
    );
    assert!(e.guest_stats(g).is_none(), "nothing of the refused guest is kept");
    assert_eq!(e.counters().refused_of(RefusalKind::DoesNotFit), 1);
}

#[test]
fn a_guest_within_its_limits_leaves_every_other_guest_all_it_was_promised() {
    let mut e = small_engine(64, 32);
    let (h, g) = (DomId(1), DomId(2));
    e.attach(h, limits_of(0, 32, 16)).unwrap();
    e.attach(g, limits_of(128, 32, 16)).unwrap();
    // H takes all of its own promise: pages, then table pages (each 4 KiB
    // PPGTT entry in its own 1 GiB region costs a directory and a leaf).
    let hp: Vec<_> = (0..32).map(|i| gg(i, i)).collect();
    assert!(e.ggtt_map(h, &hp).is_complete());
    let hc = e.context_create(h).unwrap();
    let far = |i: u64| pp(i << 30, 0, Access::ReadWrite);
    let out = e.ppgtt_map(h, hc, &(0..16).map(far).collect::<Vec<_>>());
    assert_eq!(out.refusal.map(|r| r.1), Some(Refusal::TablePageLimit { max: 16 }));
    // G still gets all of its own.
    let gp: Vec<_> = (0..32).map(|i| gg(i, 100 + i)).collect();
    assert!(e.ggtt_map(g, &gp).is_complete(), "G's pages were reserved for it");
    let gc = e.context_create(g).unwrap();
    let out = e.ppgtt_map(
        g,
        gc,
        &(0..16).map(|i| pp(i << 30, 100, Access::ReadWrite)).collect::<Vec<_>>(),
    );
    assert_eq!(
        out.refusal.map(|r| r.1),
        Some(Refusal::TablePageLimit { max: 16 }),
        "its own limit, not BACKEND_FULL"
    );
    assert_eq!(e.guest_stats(g).unwrap().table_pages, 16);
    for (pool, u) in e.pools() {
        assert!(u.used <= u.reserved && u.reserved <= u.capacity, "{pool}: {u:?}");
    }
}

#[test]
fn pools_report_capacity_reservation_and_use_and_detach_gives_the_reservation_back() {
    let mut e = small_engine(64, 32);
    let h = DomId(1);
    e.attach(h, limits_of(0, 40, 20)).unwrap();
    assert!(e.ggtt_map(h, &[gg(0, 1), gg(1, 2), gg(2, 2)]).is_complete());
    assert_eq!(e.pool(Pool::Pages), PoolUse { capacity: 64, reserved: 40, used: 2 });
    assert_eq!(e.pool(Pool::GgttEntries), PoolUse { capacity: 1024, reserved: 128, used: 3 });
    assert_eq!(e.pool(Pool::Devices), PoolUse { capacity: 4, reserved: 1, used: 1 });
    assert_eq!(e.pool(Pool::TablePages).free(), 12);
    assert!(matches!(
        e.attach(DomId(2), limits_of(128, 25, 1)),
        Err(Refusal::DoesNotFit { pool: Pool::Pages, requested: 25, free: 24, .. })
    ));
    e.detach(h).unwrap();
    assert_eq!(e.pool(Pool::Pages), PoolUse { capacity: 64, reserved: 0, used: 0 });
    assert!(e.attach(DomId(2), limits_of(128, 64, 32)).is_ok(), "the whole pool is free again");
}
