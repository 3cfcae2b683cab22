use gtt::platform::{testing_cap, GpuCaps, GpuTables};
use gtt::types::{Access, BusAddr, Level};
use i915_lite::pte::{Gen8Pte, Ppat};

use super::{rig, A, B};
use crate::{Event, GpuFault, Hit, IommuFault, Location, Space, Violation};

/// A PPGTT address with indexes 3 / 5 / 7 / 9 and offset 0x10.
const VA: u64 = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0x10;

#[test]
fn caps_report_no_read_only_in_ggtt_and_read_only_in_ppgtt() {
    let r = rig();
    assert_eq!(
        r.gpu.caps(),
        GpuCaps { ggtt_entries: 64, ggtt_read_only: false, ppgtt_read_only: true }
    );
}

#[test]
fn fresh_ggtt_and_tables_resolve_to_scratch_and_drop_writes() {
    let mut r = rig();
    let cap = testing_cap();
    assert_eq!(r.gpu.gpu_read(Space::Ggtt, 0x5000, 8), Ok(Hit::Scratch));
    assert_eq!(r.gpu.gpu_write(Space::Ggtt, 0x5000, &[0xff; 8]), Ok(Hit::Scratch));
    let root = r.gpu.table_alloc(&cap, Level::Pml4).unwrap();
    let space = Space::Ppgtt { root: root.bus };
    assert_eq!(r.gpu.gpu_read(space, VA, 8), Ok(Hit::Scratch));
    assert_eq!(r.gpu.gpu_write(space, VA, &[0xff; 8]), Ok(Hit::Scratch));
    let frame = r.p.iommu_translate(r.gpu.scratch_page(), false).unwrap();
    assert!(r.p.frame_bytes(frame).unwrap().iter().all(|&b| b == 0));
    // Scratch leaves are read-only and uncached, directories RW (i915 gen8_init_scratch).
    let pt = r.gpu.scratch_table(Level::Pt).unwrap();
    let leaf = r.gpu.table_entry(pt, 0).unwrap();
    assert_eq!(leaf, Gen8Pte::leaf(r.gpu.scratch_page().0, false, Ppat::UNCACHED).unwrap());
    assert_eq!(
        r.gpu.table_entry(root.bus, 511),
        Some(Gen8Pte::dir(r.gpu.scratch_table(Level::Pdp).unwrap().0).unwrap())
    );
}

#[test]
fn ggtt_entry_reaches_the_granted_page_through_the_iommu() {
    let mut r = rig();
    let (_, m) = r.grant_and_map(A, 0, 0x5a, Access::ReadWrite);
    r.gpu.ggtt_set(&testing_cap(), 3, m.bus, Access::ReadWrite);
    assert_eq!(r.gpu.ggtt_entry(3).unwrap().bits(), m.bus.0 | 1);
    assert_eq!(r.gpu.gpu_read(Space::Ggtt, 0x3004, 2), Ok(Hit::Mapped(vec![0x5a, 0x5a])));
    assert_eq!(r.gpu.gpu_write(Space::Ggtt, 0x3004, &[1, 2]), Ok(Hit::Mapped(())));
    let mut b = [0; 2];
    r.a.read(crate::Gfn(0), 4, &mut b).unwrap();
    assert_eq!(b, [1, 2]);
}

#[test]
fn hand_built_ppgtt_is_walked_from_table_bytes() {
    let mut r = rig();
    let (_, m) = r.grant_and_map(A, 1, 0x77, Access::ReadWrite);
    let t = r.ppgtt_with_leaf(VA, m.bus, Access::ReadWrite);
    // The tables hold Gen8 PTEs: dir = addr | present | RW, leaf adds PPAT_CACHED.
    assert_eq!(r.gpu.table_entry(t[0].bus, 3).unwrap().bits(), t[1].bus.0 | 0x3);
    assert_eq!(r.gpu.table_entry(t[1].bus, 5).unwrap().bits(), t[2].bus.0 | 0x3);
    assert_eq!(r.gpu.table_entry(t[2].bus, 7).unwrap().bits(), t[3].bus.0 | 0x3);
    assert_eq!(r.gpu.table_entry(t[3].bus, 9).unwrap().bits(), m.bus.0 | 0x83);
    let space = Space::Ppgtt { root: t[0].bus };
    assert_eq!(r.gpu.gpu_read(space, VA, 3), Ok(Hit::Mapped(vec![0x77; 3])));
    let tr = r.gpu.gpu_translate(space, VA, true).unwrap();
    assert_eq!(tr.page, m.bus);
    assert!(tr.writable && !tr.scratch && tr.from_tlb);
    // Neighbours in the same PT, and other PML4 slots, are scratch.
    assert_eq!(r.gpu.gpu_read(space, VA + 0x1000, 1), Ok(Hit::Scratch));
    assert_eq!(r.gpu.gpu_read(space, VA ^ (1 << 40), 1), Ok(Hit::Scratch));
}

#[test]
fn read_only_ppgtt_leaf_refuses_gpu_writes() {
    let mut r = rig();
    let (_, m) = r.grant_and_map(A, 1, 0x10, Access::ReadOnly);
    let t = r.ppgtt_with_leaf(VA, m.bus, Access::ReadOnly);
    let space = Space::Ppgtt { root: t[0].bus };
    assert_eq!(r.gpu.gpu_read(space, VA, 1), Ok(Hit::Mapped(vec![0x10])));
    assert_eq!(r.gpu.gpu_write(space, VA, &[0]), Err(GpuFault::ReadOnlyEntry { space, va: VA }));
}

#[test]
fn iommu_refuses_writes_to_a_read_only_grant_even_through_a_writable_pte() {
    let mut r = rig();
    let (_, m) = r.grant_and_map(A, 1, 0x10, Access::ReadOnly);
    let t = r.ppgtt_with_leaf(VA, m.bus, Access::ReadOnly);
    let rw = Gen8Pte::leaf(m.bus.0, true, Ppat::CACHED).unwrap();
    assert!(r.gpu.inject_table_entry(t[3].bus, 9, rw));
    let space = Space::Ppgtt { root: t[0].bus };
    let fault = IommuFault::ReadOnly { bus: m.bus };
    assert_eq!(r.gpu.gpu_write(space, VA, &[0]), Err(GpuFault::Iommu { space, va: VA, fault }));
    // GGTT: no RW bit at all, so only the IOMMU stops the write.
    r.gpu.ggtt_set(&testing_cap(), 0, m.bus, Access::ReadOnly);
    let fault = IommuFault::ReadOnly { bus: m.bus };
    assert_eq!(
        r.gpu.gpu_write(Space::Ggtt, 0, &[0]),
        Err(GpuFault::Iommu { space: Space::Ggtt, va: 0, fault })
    );
    let mut b = [0];
    r.a.read(crate::Gfn(1), 0, &mut b).unwrap();
    assert_eq!(b, [0x10]);
}

#[test]
fn faults_say_where_the_walk_stopped() {
    let mut r = rig();
    let cap = testing_cap();
    assert!(r.gpu.inject_ggtt(5, Gen8Pte::NOT_PRESENT));
    let at = Location::Ggtt { index: 5 };
    assert_eq!(
        r.gpu.gpu_read(Space::Ggtt, 0x5000, 1),
        Err(GpuFault::NotPresent { space: Space::Ggtt, at })
    );
    assert_eq!(
        r.gpu.gpu_read(Space::Ggtt, 64 << 12, 1),
        Err(GpuFault::GgttOutOfRange { va: 64 << 12 })
    );
    assert_eq!(
        r.gpu.gpu_read(Space::Ggtt, 0xffe, 4),
        Err(GpuFault::CrossesPage { va: 0xffe, len: 4 })
    );
    let root = r.gpu.table_alloc(&cap, Level::Pml4).unwrap().bus;
    let space = Space::Ppgtt { root };
    assert_eq!(r.gpu.gpu_read(space, 1 << 48, 1), Err(GpuFault::NonCanonical { va: 1 << 48 }));
    // A directory entry pointing at an empty window slot: the walk's table
    // read faults in the IOMMU.
    let nowhere = BusAddr(r.p.config().window_base_gfn << 12);
    r.gpu.inject_table_entry(root, 3, Gen8Pte::dir(nowhere.0).unwrap());
    assert_eq!(
        r.gpu.gpu_read(space, VA, 1),
        Err(GpuFault::TableUnreachable {
            space,
            level: Level::Pdp,
            table: nowhere,
            fault: IommuFault::NotMapped { bus: nowhere },
        })
    );
    r.gpu.inject_table_entry(root, 3, Gen8Pte::NOT_PRESENT);
    let at = Location::Table { table: root, level: Level::Pml4, index: 3 };
    assert_eq!(r.gpu.gpu_read(space, VA, 1), Err(GpuFault::NotPresent { space, at }));
    assert!(r.p.violations().is_empty());
}

#[test]
fn tlb_serves_stale_ggtt_translation_until_invalidate() {
    let mut r = rig();
    let cap = testing_cap();
    let (_, x) = r.grant_and_map(A, 0, 0x11, Access::ReadWrite);
    let (_, y) = r.grant_and_map(A, 1, 0x22, Access::ReadWrite);
    r.gpu.ggtt_set(&cap, 3, x.bus, Access::ReadWrite);
    assert_eq!(r.gpu.gpu_read(Space::Ggtt, 0x3000, 1), Ok(Hit::Mapped(vec![0x11])));
    r.gpu.ggtt_set(&cap, 3, y.bus, Access::ReadWrite);
    assert_eq!(r.gpu.gpu_read(Space::Ggtt, 0x3000, 1), Ok(Hit::Mapped(vec![0x11])));
    assert!(r.gpu.tlb_holds(Space::Ggtt, 0x3000));
    r.gpu.invalidate(&cap);
    assert!(!r.gpu.tlb_holds(Space::Ggtt, 0x3000));
    assert_eq!(r.gpu.gpu_read(Space::Ggtt, 0x3000, 1), Ok(Hit::Mapped(vec![0x22])));
    let c = r.p.counters();
    assert_eq!((c.tlb_misses, c.tlb_hits, c.invalidations), (2, 1, 1));
}

#[test]
fn tlb_serves_stale_ppgtt_translation_until_invalidate() {
    let mut r = rig();
    let cap = testing_cap();
    let (_, m) = r.grant_and_map(A, 0, 0x44, Access::ReadWrite);
    let t = r.ppgtt_with_leaf(VA, m.bus, Access::ReadWrite);
    let space = Space::Ppgtt { root: t[0].bus };
    assert_eq!(r.gpu.gpu_read(space, VA, 1), Ok(Hit::Mapped(vec![0x44])));
    r.gpu.table_clear(&cap, t[3], Level::Pt, 9);
    assert_eq!(r.gpu.gpu_read(space, VA, 1), Ok(Hit::Mapped(vec![0x44])));
    r.gpu.invalidate(&cap);
    assert_eq!(r.gpu.gpu_read(space, VA, 1), Ok(Hit::Scratch));
}

#[test]
fn unmap_while_the_tlb_caches_the_page_is_a_violation() {
    let mut r = rig();
    let cap = testing_cap();
    let (gref, m) = r.grant_and_map(A, 0, 0x11, Access::ReadWrite);
    r.gpu.ggtt_set(&cap, 3, m.bus, Access::ReadWrite);
    r.gpu.gpu_read(Space::Ggtt, 0x3000, 1).unwrap();
    r.gpu.ggtt_clear(&cap, 3);
    r.unmap(m); // no invalidate in between
    let cached = Location::Tlb { space: Space::Ggtt, va: 0x3000 };
    assert_eq!(
        r.p.violations(),
        vec![Violation::UnmappedWhileCached { dom: A, gref, bus: m.bus, cached }]
    );
    // The stale translation now faults in the IOMMU...
    let fault = IommuFault::NotMapped { bus: m.bus };
    assert_eq!(
        r.gpu.gpu_read(Space::Ggtt, 0x3000, 1),
        Err(GpuFault::Iommu { space: Space::Ggtt, va: 0x3000, fault })
    );
    // ...and once the slot is reused it would reach another guest's page.
    let (_, other) = r.grant_and_map(B, 0, 0xbb, Access::ReadWrite);
    assert_eq!(other.bus, m.bus);
    assert_eq!(r.gpu.gpu_read(Space::Ggtt, 0x3000, 1), Ok(Hit::Mapped(vec![0xbb])));
}

#[test]
fn unmap_while_a_table_entry_points_at_the_page_is_a_violation() {
    let mut r = rig();
    let (gref, m) = r.grant_and_map(A, 0, 0, Access::ReadWrite);
    r.gpu.ggtt_set(&testing_cap(), 7, m.bus, Access::ReadWrite);
    let t = r.ppgtt_with_leaf(VA, m.bus, Access::ReadWrite);
    r.unmap(m);
    let leaf = Location::Table { table: t[3].bus, level: Level::Pt, index: 9 };
    assert_eq!(
        r.p.violations(),
        vec![
            Violation::UnmappedWhileReferenced {
                dom: A,
                gref,
                bus: m.bus,
                entry: Location::Ggtt { index: 7 }
            },
            Violation::UnmappedWhileReferenced { dom: A, gref, bus: m.bus, entry: leaf },
        ]
    );
}

#[test]
fn clear_invalidate_unmap_records_no_violation_and_is_traced_in_order() {
    let mut r = rig();
    let cap = testing_cap();
    let (gref, m) = r.grant_and_map(A, 0, 0x11, Access::ReadWrite);
    r.p.clear_trace();
    r.gpu.ggtt_set(&cap, 3, m.bus, Access::ReadWrite);
    r.gpu.gpu_read(Space::Ggtt, 0x3000, 1).unwrap();
    r.gpu.ggtt_clear(&cap, 3);
    r.gpu.invalidate(&cap);
    r.unmap(m);
    assert!(r.p.violations().is_empty());
    assert_eq!(
        r.p.trace(),
        vec![
            Event::GgttSet { index: 3, page: m.bus, access: Access::ReadWrite },
            Event::GgttClear { index: 3 },
            Event::Invalidate { entries: 1 },
            Event::GrantUnmapped { dom: A, gref, bus: m.bus, handle: m.handle },
        ]
    );
}

#[test]
fn table_contract_breaches_are_recorded_not_applied() {
    let mut r = rig();
    let cap = testing_cap();
    let [pml4, pdp, pd, pt] = Level::ALL.map(|l| r.gpu.table_alloc(&cap, l).unwrap());
    let page = r.p.alloc_backend_page().unwrap();
    r.gpu.table_set_leaf(&cap, pd, 0, page, Access::ReadWrite);
    r.gpu.table_set_dir(&cap, pml4, Level::Pml4, 0, pd);
    r.gpu.table_set_leaf(&cap, pt, 512, page, Access::ReadWrite);
    r.gpu.ggtt_set(&cap, 64, page, Access::ReadWrite);
    r.gpu.table_set_leaf(&cap, pt, 0, BusAddr(1 << 40), Access::ReadWrite);
    let forged = gtt::platform::TablePage { bus: pt.bus, id: 999 };
    r.gpu.table_clear(&cap, forged, Level::Pt, 0);
    assert_eq!(
        r.p.violations(),
        vec![
            Violation::LevelMismatch { table: pd, expected: Level::Pd, actual: Level::Pt },
            Violation::ChildLevelMismatch { table: pml4, child: pd, child_level: Level::Pd },
            Violation::TableIndexOutOfRange { table: pt, index: 512 },
            Violation::GgttIndexOutOfRange { index: 64 },
            Violation::UnencodableAddress { addr: 1 << 40 },
            Violation::UnknownTable { table: forged },
        ]
    );
    assert_eq!(r.p.counters().table_writes, 0);
    assert_eq!(r.p.counters().ggtt_writes, 0);
    let _ = pdp;
}

#[test]
fn freeing_a_table_that_is_not_clear_or_still_referenced_is_a_violation() {
    let mut r = rig();
    let cap = testing_cap();
    let page = r.p.alloc_backend_page().unwrap();
    let t = r.ppgtt_with_leaf(VA, page, Access::ReadWrite);
    r.gpu.table_free(&cap, t[3]);
    let parent = Location::Table { table: t[2].bus, level: Level::Pd, index: 7 };
    assert_eq!(
        r.p.violations(),
        vec![
            Violation::FreedTableNotClear { table: t[3], index: 9 },
            Violation::FreedTableStillReferenced { table: t[3], entry: parent },
        ]
    );
    r.gpu.table_free(&cap, t[3]);
    assert_eq!(r.p.violations()[2], Violation::UnknownTable { table: t[3] });
}

#[test]
fn table_pool_runs_out_and_recycled_tables_come_back_all_scratch() {
    let mut r = rig();
    let cap = testing_cap();
    let mut tables: Vec<_> = (0..32).map(|_| r.gpu.table_alloc(&cap, Level::Pt).unwrap()).collect();
    assert_eq!(r.gpu.table_alloc(&cap, Level::Pt), None);
    let t = tables.pop().unwrap();
    r.gpu.table_free(&cap, t);
    let again = r.gpu.table_alloc(&cap, Level::Pd).unwrap();
    assert_eq!(again.bus, t.bus);
    assert_ne!(again.id, t.id);
    let scratch_pt = r.gpu.scratch_table(Level::Pt).unwrap();
    let want = Gen8Pte::dir(scratch_pt.0).unwrap();
    assert!((0..512).all(|i| r.gpu.table_entry(again.bus, i) == Some(want)));
    assert!(r.p.violations().is_empty());
    assert_eq!(r.gpu.live_tables().len(), 32);
}

#[test]
fn touching_everything_caches_every_ggtt_entry_and_ppgtt_leaf() {
    let mut r = rig();
    let cap = testing_cap();
    let (_, m) = r.grant_and_map(A, 0, 0x11, Access::ReadWrite);
    let (_, ro) = r.grant_and_map(A, 1, 0x22, Access::ReadOnly);
    r.gpu.ggtt_set(&cap, 3, m.bus, Access::ReadWrite);
    let va = (1 << 39) | (5 << 21) | (7 << 12);
    let t = r.ppgtt_with_leaf(va, ro.bus, Access::ReadOnly);
    r.gpu.table_set_leaf(&cap, t[3], 8, m.bus, Access::ReadWrite);
    assert_eq!(r.gpu.touch_all(), 3);
    assert_eq!(r.gpu.touch_all(), 0, "all cached already");
    let root = t[0].bus;
    assert!(r.gpu.tlb_holds(Space::Ggtt, 0x3000));
    assert!(r.gpu.tlb_holds(Space::Ppgtt { root }, va));
    assert!(r.gpu.tlb_holds(Space::Ppgtt { root }, (va & !0x1f_f000) | (8 << 12)));
    assert_eq!(r.gpu.tlb_len(), 3);
    // So an unmap that skips the invalidation is caught.
    r.gpu.table_clear(&cap, t[3], Level::Pt, 8);
    r.gpu.ggtt_clear(&cap, 3);
    r.unmap(m);
    assert_eq!(r.p.violations().len(), 2, "{:?}", r.p.violations());
}
