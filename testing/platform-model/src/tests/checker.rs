use gtt::platform::{testing_cap, GpuTables, GrantMapping, TablePage};
use gtt::types::{Access, BusAddr, GrantRef, Level};
use i915_lite::pte::{Gen8Pte, Ppat};

use super::{rig, Rig, A, B};
use crate::{
    check_isolation, CheckStats, GuestView, IommuFault, Location, Problem, Space, Violation,
};

const VA: u64 = (1 << 39) | (2 << 30) | (3 << 21) | (4 << 12);

/// A: slice 0..16 with a writable grant at 2 and a read-only one at 3, and a
/// context whose VA maps a read-only grant read-only. B: slice 16..32 with a
/// writable grant at 20.
struct Scene {
    r: Rig,
    a_rw: GrantMapping,
    a_ro: GrantMapping,
    a_gref: GrantRef,
    b_rw: GrantMapping,
    a_tables: [TablePage; 4],
}

fn scene() -> Scene {
    let mut r = rig();
    let cap = testing_cap();
    let (a_gref, a_rw) = r.grant_and_map(A, 0, 0xa0, Access::ReadWrite);
    let (_, a_ro) = r.grant_and_map(A, 1, 0xa1, Access::ReadOnly);
    let (_, b_rw) = r.grant_and_map(B, 0, 0xb0, Access::ReadWrite);
    r.gpu.ggtt_set(&cap, 2, a_rw.bus, Access::ReadWrite);
    r.gpu.ggtt_set(&cap, 3, a_ro.bus, Access::ReadOnly);
    r.gpu.ggtt_set(&cap, 20, b_rw.bus, Access::ReadWrite);
    let a_tables = r.ppgtt_with_leaf(VA, a_ro.bus, Access::ReadOnly);
    Scene { r, a_rw, a_ro, a_gref, b_rw, a_tables }
}

impl Scene {
    fn views(&self) -> Vec<GuestView> {
        vec![
            GuestView::new(A).with_ggtt(0..16).with_root(self.a_tables[0].bus),
            GuestView::new(B).with_ggtt(16..32),
        ]
    }

    fn check(&self) -> Result<CheckStats, Problem> {
        check_isolation(&self.r.p, &self.views())
    }
}

#[test]
fn each_guest_reaching_only_its_own_grants_passes() {
    let s = scene();
    let space = Space::Ppgtt { root: s.a_tables[0].bus };
    s.r.gpu.gpu_read(space, VA, 1).unwrap();
    s.r.gpu.gpu_read(Space::Ggtt, 20 << 12, 1).unwrap();
    assert_eq!(
        s.check(),
        Ok(CheckStats { ggtt_mapped: 3, ppgtt_leaves: 1, tables: 4, tlb_entries: 2 })
    );
}

#[test]
fn entry_in_one_guests_slice_to_another_guests_grant_is_reported() {
    let mut s = scene();
    s.r.gpu.ggtt_set(&testing_cap(), 5, s.b_rw.bus, Access::ReadWrite);
    assert!(matches!(
        s.check(),
        Err(Problem::OtherGuest { at: Location::Ggtt { index: 5 }, owner: A, granter: B, .. })
    ));
}

#[test]
fn read_only_grant_behind_a_writable_ppgtt_leaf_is_reported() {
    let mut s = scene();
    let t = s.a_tables;
    s.r.gpu.table_set_leaf(&testing_cap(), t[3], 5, s.a_ro.bus, Access::ReadWrite);
    let va = (VA & !0x1f_f000) | (5 << 12);
    assert_eq!(
        s.check(),
        Err(Problem::WiderThanGranted {
            at: Location::Ppgtt { root: t[0].bus, va },
            owner: A,
            page: s.a_ro.bus,
            gref: GrantRef(9),
        })
    );
}

#[test]
fn entry_to_backend_ram_is_reported() {
    let mut s = scene();
    let table = s.a_tables[3].bus;
    s.r.gpu.ggtt_set(&testing_cap(), 4, table, Access::ReadWrite);
    assert_eq!(
        s.check(),
        Err(Problem::NotAGrant { at: Location::Ggtt { index: 4 }, owner: A, page: table })
    );
}

#[test]
fn entry_to_an_empty_window_slot_is_reported() {
    let s = scene();
    let empty = BusAddr((s.r.p.config().window_base_gfn + 9) << 12);
    s.r.gpu.inject_ggtt(6, Gen8Pte::ggtt(empty.0).unwrap());
    assert_eq!(
        s.check(),
        Err(Problem::Unresolvable {
            at: Location::Ggtt { index: 6 },
            owner: A,
            page: empty,
            fault: IommuFault::NotMapped { bus: empty },
        })
    );
}

#[test]
fn entry_outside_every_slice_is_reported() {
    let mut s = scene();
    s.r.gpu.ggtt_set(&testing_cap(), 40, s.a_rw.bus, Access::ReadWrite);
    assert_eq!(
        s.check(),
        Err(Problem::Unowned { at: Location::Ggtt { index: 40 }, page: s.a_rw.bus })
    );
}

#[test]
fn recorded_violation_is_reported_first() {
    let mut s = scene();
    let m = s.a_rw;
    s.r.unmap(m);
    assert_eq!(
        s.check(),
        Err(Problem::Violation(Violation::UnmappedWhileReferenced {
            dom: A,
            gref: s.a_gref,
            bus: m.bus,
            entry: Location::Ggtt { index: 2 },
        }))
    );
}

#[test]
fn gone_guest_must_leave_no_entry_no_mapping_and_no_cached_translation() {
    let mut s = scene();
    let cap = testing_cap();
    let gone = |s: &Scene| {
        let mut v = s.views();
        v[0].gone = true;
        check_isolation(&s.r.p, &v)
    };
    assert_eq!(gone(&s), Err(Problem::GoneGuestEntry { dom: A, at: Location::Ggtt { index: 2 } }));
    s.r.gpu.ggtt_clear(&cap, 2);
    s.r.gpu.ggtt_clear(&cap, 3);
    let t = s.a_tables;
    let root_entry = Location::Table { table: t[0].bus, level: Level::Pml4, index: 1 };
    assert_eq!(gone(&s), Err(Problem::GoneGuestEntry { dom: A, at: root_entry }));
    // Tear the context down leaf first, but read through it before the TLB
    // is invalidated: the stale translation is still A's.
    s.r.gpu.gpu_read(Space::Ppgtt { root: t[0].bus }, VA, 1).unwrap();
    s.r.gpu.table_clear(&cap, t[3], Level::Pt, 4);
    for (i, level) in [(2, Level::Pd), (1, Level::Pdp), (0, Level::Pml4)] {
        s.r.gpu.table_clear(&cap, t[i], level, level.index(VA));
        s.r.gpu.table_free(&cap, t[i + 1]);
    }
    s.r.gpu.table_free(&cap, t[0]);
    let tlb = Location::Tlb { space: Space::Ppgtt { root: t[0].bus }, va: VA };
    assert_eq!(gone(&s), Err(Problem::GoneGuestEntry { dom: A, at: tlb }));
    s.r.gpu.invalidate(&cap);
    assert_eq!(gone(&s), Err(Problem::GoneGuestMapped { dom: A, gref: s.a_gref, bus: s.a_rw.bus }));
    let (rw, ro) = (s.a_rw, s.a_ro);
    assert_eq!(s.r.unmap(rw) + s.r.unmap(ro), 0);
    assert!(gone(&s).is_ok());
    assert!(s.r.p.violations().is_empty());
}

#[test]
fn table_reachable_from_two_guests_contexts_is_reported() {
    let mut s = scene();
    let cap = testing_cap();
    let b_root = s.r.gpu.table_alloc(&cap, Level::Pml4).unwrap();
    s.r.gpu.table_set_dir(&cap, b_root, Level::Pml4, 0, s.a_tables[1]);
    let mut v = s.views();
    v[1].roots.push(b_root.bus);
    assert_eq!(
        check_isolation(&s.r.p, &v),
        Err(Problem::SharedTable { table: s.a_tables[1].bus, first: A, second: B })
    );
}

#[test]
fn undeclared_context_with_mappings_is_an_orphan() {
    let s = scene();
    let v = vec![GuestView::new(A).with_ggtt(0..16), GuestView::new(B).with_ggtt(16..32)];
    assert_eq!(
        check_isolation(&s.r.p, &v),
        Err(Problem::OrphanTable { table: s.a_tables[0].bus, index: 1 })
    );
}

#[test]
fn directory_entry_to_a_guest_page_is_reported() {
    // A guest page used as a page table would let the guest write its own PTEs.
    let s = scene();
    let root = s.a_tables[0].bus;
    s.r.gpu.inject_table_entry(root, 7, Gen8Pte::dir(s.a_rw.bus.0).unwrap());
    assert_eq!(
        s.check(),
        Err(Problem::BadDirectory {
            at: Location::Table { table: root, level: Level::Pml4, index: 7 },
            points_to: s.a_rw.bus,
        })
    );
}

#[test]
fn declared_root_that_is_not_a_live_pml4_is_reported() {
    let s = scene();
    let pt = s.a_tables[3].bus;
    let v = vec![GuestView::new(A).with_ggtt(0..16).with_root(s.a_tables[0].bus).with_root(pt)];
    let v = [v, vec![GuestView::new(B).with_ggtt(16..32)]].concat();
    assert_eq!(check_isolation(&s.r.p, &v), Err(Problem::UnknownRoot { dom: A, root: pt }));
}

#[test]
fn writable_ppgtt_leaf_to_a_writable_grant_passes_and_leaf_ppat_is_ignored() {
    let mut s = scene();
    let t = s.a_tables;
    s.r.gpu.table_set_leaf(&testing_cap(), t[3], 6, s.a_rw.bus, Access::ReadWrite);
    let uncached = Gen8Pte::leaf(s.a_rw.bus.0, true, Ppat::UNCACHED).unwrap();
    s.r.gpu.inject_table_entry(t[3].bus, 7, uncached);
    assert_eq!(s.check().map(|st| st.ppgtt_leaves), Ok(3));
}

#[test]
fn table_bytes_rewritten_behind_the_drivers_back_after_a_check_are_seen_by_the_next() {
    // The checker caches what each table holds by the frame's write stamp:
    // a stray write by the backend CPU into its own RAM renews the stamp.
    let s = scene();
    assert!(s.check().is_ok());
    let leaf = s.a_tables[3].bus;
    let ram = BusAddr(50 << 12);
    let pte = Gen8Pte::leaf(ram.0, false, Ppat::CACHED).unwrap();
    s.r.p.bus_write(BusAddr(leaf.0 + 9 * 8), &pte.bits().to_le_bytes()).unwrap();
    let va = (VA & !0x1f_f000) | (9 << 12);
    let at = Location::Ppgtt { root: s.a_tables[0].bus, va };
    assert_eq!(s.check(), Err(Problem::NotAGrant { at, owner: A, page: ram }));
}

#[test]
fn every_mapped_ggtt_entry_is_checked_whatever_wrote_it() {
    let mut s = scene();
    let cap = testing_cap();
    s.r.gpu.ggtt_clear(&cap, 2);
    s.r.gpu.inject_ggtt(63, Gen8Pte::ggtt(s.a_rw.bus.0).unwrap());
    assert_eq!(
        s.check(),
        Err(Problem::Unowned { at: Location::Ggtt { index: 63 }, page: s.a_rw.bus })
    );
    s.r.gpu.inject_ggtt(63, s.r.gpu.ggtt_entry(0).unwrap());
    assert_eq!(s.check().map(|st| st.ggtt_mapped), Ok(2));
}

#[test]
fn a_change_after_a_check_of_anything_it_reads_is_seen_by_the_next() {
    use crate::GrantEntryV1;
    let s = scene();
    assert!(s.check().is_ok());
    // The guest rewrites a grant the backend maps writable as read-only.
    let e = s.r.a.grant_entry(s.a_gref).unwrap();
    s.r.a.set_grant_entry(s.a_gref, GrantEntryV1 { flags: e.flags | 1 << 2, ..e }).unwrap();
    assert!(matches!(s.check(), Err(Problem::WiderThanGranted { owner: A, .. })));
    s.r.a.set_grant_entry(s.a_gref, e).unwrap();
    assert!(s.check().is_ok());
    // The same state, other views: A is gone.
    let mut v = s.views();
    v[0].gone = true;
    assert!(matches!(check_isolation(&s.r.p, &v), Err(Problem::GoneGuestEntry { dom: A, .. })));
}

#[test]
fn guest_memory_and_ring_bytes_do_not_count_as_changes_but_backend_ram_does() {
    use crate::Gfn;
    let s = scene();
    let epoch = |s: &Scene| s.r.p.world().epoch;
    let e0 = epoch(&s);
    s.r.a.fill(Gfn(5), 0x77).unwrap();
    s.r.p.bus_write(s.a_rw.bus, &[1, 2, 3]).unwrap();
    let mut buf = [0; 8];
    s.r.p.copy_from_grant(A, s.a_gref, 0, &mut buf).unwrap();
    assert_eq!(epoch(&s), e0, "guest frames only");
    s.r.p.bus_write(BusAddr(50 << 12), &[1]).unwrap();
    assert_ne!(epoch(&s), e0, "backend RAM holds the tables");
    let e1 = epoch(&s);
    s.r.gpu.gpu_read(Space::Ggtt, 2 << 12, 1).unwrap();
    assert_ne!(epoch(&s), e1, "the TLB");
}
