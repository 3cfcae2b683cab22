use gtt::platform::{testing_cap, GpuTables};
use gtt::types::{Access, DomId, Level};

use super::{rig, A};
use crate::{check_isolation, Gfn, GuestView, Platform, Problem, Space};

#[test]
fn restore_brings_back_memory_grants_mappings_gpu_and_trace() {
    let mut r = rig();
    let cap = testing_cap();
    r.a.fill(Gfn(0), 0x11).unwrap();
    let trace = r.p.trace();
    let snap = r.p.snapshot();

    let (gref, m) = r.grant_and_map(A, 1, 0x22, Access::ReadWrite);
    r.gpu.ggtt_set(&cap, 2, m.bus, Access::ReadWrite);
    r.gpu.gpu_read(Space::Ggtt, 2 << 12, 1).unwrap();
    let t = r.ppgtt_with_leaf(1 << 30, m.bus, Access::ReadWrite);
    r.a.fill(Gfn(0), 0x33).unwrap();
    r.p.create_guest(DomId(9), 2).unwrap();
    r.unmap(m);
    assert!(!r.p.violations().is_empty());

    r.p.restore(&snap);
    let mut byte = [0];
    r.a.read(Gfn(0), 0, &mut byte).unwrap();
    assert_eq!(byte, [0x11]);
    r.a.read(Gfn(1), 0, &mut byte).unwrap();
    assert_eq!(byte, [0]);
    assert_eq!(r.a.grant_entry(gref).map_or(0, |e| e.flags), 0, "the grant is gone");
    assert!(r.p.window_mappings().is_empty());
    assert_eq!(r.gpu.ggtt_entry(2), r.gpu.ggtt_entry(0));
    assert_eq!(r.gpu.tlb_len(), 0);
    assert!(r.gpu.live_tables().is_empty());
    assert_eq!(r.p.domain_state(DomId(9)), None);
    assert_eq!(r.p.trace(), trace);
    assert!(r.p.violations().is_empty());
    let views = [GuestView::new(A).with_ggtt(0..16)];
    assert_eq!(check_isolation(&r.p, &views).map(|s| s.ggtt_mapped), Ok(0));

    // The same steps again give the same addresses, handles and tables.
    let (_, again) = r.grant_and_map(A, 1, 0x22, Access::ReadWrite);
    assert_eq!(again, m);
    let t2 = r.ppgtt_with_leaf(1 << 30, m.bus, Access::ReadWrite);
    assert_eq!(t2, t);
}

#[test]
fn checker_after_a_restore_reads_the_restored_table_bytes() {
    let mut r = rig();
    let cap = testing_cap();
    let (_, m) = r.grant_and_map(A, 1, 0x22, Access::ReadWrite);
    let t = r.ppgtt_with_leaf(1 << 30, m.bus, Access::ReadWrite);
    let views = [GuestView::new(A).with_ggtt(0..16).with_root(t[0].bus)];
    let snap = r.p.snapshot();
    assert_eq!(check_isolation(&r.p, &views).map(|s| s.ppgtt_leaves), Ok(1));
    // Changed, checked (cached), then restored: the old leaf is back.
    r.gpu.table_clear(&cap, t[3], Level::Pt, Level::Pt.index(1 << 30));
    assert_eq!(check_isolation(&r.p, &views).map(|s| s.ppgtt_leaves), Ok(0));
    r.p.restore(&snap);
    assert_eq!(check_isolation(&r.p, &views).map(|s| s.ppgtt_leaves), Ok(1));
    // And an unmap after the restore is judged on the restored tables.
    r.unmap(m);
    assert!(matches!(check_isolation(&r.p, &views), Err(Problem::Violation(_))));
}

#[test]
#[should_panic(expected = "a snapshot of another platform")]
fn a_snapshot_restores_only_its_own_platform() {
    let r = rig();
    let other = Platform::new(super::small_config()).unwrap();
    other.restore(&r.p.snapshot());
}

#[test]
fn non_scratch_entries_match_a_plain_scan_and_follow_every_write() {
    let mut r = rig();
    let cap = testing_cap();
    let (_, m) = r.grant_and_map(A, 1, 0x22, Access::ReadOnly);
    let t = r.ppgtt_with_leaf(1 << 30, m.bus, Access::ReadOnly);
    let frame = r.p.world().table_frame(t[3].bus).unwrap();
    let scratch = r.p.world().gpu.scratch_entry(Level::Pt).bits();
    let plain = |r: &super::Rig| -> Vec<(u16, u64)> {
        let w = r.p.world();
        (0..512u16).map(|i| (i, w.mem.read_u64(frame, i))).filter(|e| e.1 != scratch).collect()
    };
    for index in [0u16, 7, 8, 63, 64, 511] {
        r.gpu.table_set_leaf(&cap, t[3], index, m.bus, Access::ReadOnly);
        assert_eq!(r.p.world().non_scratch(frame, scratch).to_vec(), plain(&r), "after {index}");
    }
    r.gpu.table_clear(&cap, t[3], Level::Pt, 7);
    assert_eq!(r.p.world().non_scratch(frame, scratch).to_vec(), plain(&r));
    // A write that is not through the GPU interface is seen too.
    r.p.world_mut().mem.write_u64(frame, 300, 0);
    assert_eq!(r.p.world().non_scratch(frame, scratch).to_vec(), plain(&r));
    assert_eq!(plain(&r).len(), 6, "indexes 0, 8, 63, 64, 511 and the 300 written");
}
