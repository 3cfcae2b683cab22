//! The driver's table writes, entry by entry, read back through the model.

use gtt::platform::{testing_cap, GpuTables};
use gtt::{Access, BusAddr, Level};

use super::{setup, setup_on};
use crate::ggc::Ggc;
use crate::model::{ModelGpu, Walk, MODEL_TABLES};
use crate::ppgtt::FIRST_TABLE;
use crate::pte::{Gen8Pte, Ppat};
use crate::regs::{GEN8_M2TCR, GEN8_RTCR};
use crate::{probe, Config, InitError, I915};

const PAGE: u64 = 0x7_1234_5000;

#[test]
fn caps_come_from_the_device_minus_the_reserved_entry() {
    let (d, _, _) = setup(u32::MAX);
    let caps = d.caps();
    assert_eq!(caps.ggtt_entries, (2 << 20) / 8 - 1, "256 Ki entries, the last one reserved");
    assert!(!caps.ggtt_read_only, "no RW bit in a Gen9 GGTT entry");
    assert!(caps.ppgtt_read_only);
    assert_eq!(d.ggtt().reserved(), (2 << 20) / 8 - 1);
    let (small, _, _) = setup(1000);
    assert_eq!(small.caps().ggtt_entries, 1000);
}

#[test]
fn init_points_every_managed_entry_and_the_reserved_one_at_scratch_and_flushes() {
    let mut m = ModelGpu::skylake_gt2();
    let info = probe(&mut m.pci).unwrap();
    let d = I915::new(info, m.bar.clone(), m.mem.clone(), Config::default()).unwrap();
    let bar = m.bar.state();
    let scratch = Gen8Pte::ggtt(d.scratch_page().0).unwrap();
    assert_eq!(bar.written.len() as u32, bar.ggtt_entries(), "every entry written once");
    assert!((0..bar.ggtt_entries()).all(|i| bar.gpu_ggtt(i) == scratch));
    assert!(bar.stale().is_empty());
    let f = bar.flushes.last().unwrap();
    assert!(f.read_back && f.completed);
    assert!(bar.violations.is_empty(), "{:?}", bar.violations);
}

#[test]
fn ggtt_limit_leaves_entries_past_it_untouched() {
    let mut m = ModelGpu::skylake_gt2();
    let info = probe(&mut m.pci).unwrap();
    let cfg = Config { ggtt_limit: 16, ..Config::default() };
    let _d = I915::new(info, m.bar.clone(), m.mem.clone(), cfg).unwrap();
    let s = m.bar.state();
    let last = s.ggtt_entries() - 1;
    let want: std::collections::BTreeSet<u32> = (0..16).chain([last]).collect();
    assert_eq!(s.written, want);
}

#[test]
fn ggtt_entries_round_trip_through_the_bar() {
    let (mut d, bar, _) = setup(64);
    let cap = testing_cap();
    d.ggtt_set(&cap, 5, BusAddr(PAGE), Access::ReadWrite);
    d.invalidate(&cap);
    let e = d.read_ggtt(5).unwrap();
    assert_eq!(e, Gen8Pte::ggtt(PAGE).unwrap());
    assert!(e.present() && !e.writable() && e.unknown_bits() == 0);
    assert_eq!(bar.state().gpu_ggtt(5).addr(), PAGE);
    d.ggtt_clear(&cap, 5);
    d.invalidate(&cap);
    assert_eq!(bar.state().gpu_ggtt(5).addr(), d.scratch_page().0, "cleared to scratch");
}

#[test]
fn a_ggtt_write_is_not_used_by_the_gpu_before_the_flush_and_posting_read() {
    let (mut d, bar, _) = setup(64);
    let cap = testing_cap();
    d.ggtt_set(&cap, 7, BusAddr(PAGE), Access::ReadWrite);
    assert_eq!(bar.state().ggtt(7).addr(), PAGE, "in GGTT memory");
    assert_eq!(bar.state().stale(), [7], "but not yet what the GPU uses");
    d.invalidate(&cap);
    let s = bar.state();
    assert!(s.stale().is_empty());
    let f = s.flushes.last().unwrap();
    assert_eq!(f.ggtt_writes, [7]);
    assert!(f.read_back, "the last written entry was read back before the flush");
    assert!(f.completed, "the flush write was followed by a posting read");
    assert_eq!(d.stats().readback_mismatches, 0);
}

#[test]
fn ppgtt_entries_of_every_kind_round_trip_through_the_model_walk() {
    let (mut d, _, mem) = setup(8);
    let cap = testing_cap();
    let pml4 = d.table_alloc(&cap, Level::Pml4).unwrap();
    let pdp = d.table_alloc(&cap, Level::Pdp).unwrap();
    let pd = d.table_alloc(&cap, Level::Pd).unwrap();
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    let va = (3u64 << 39) | (4 << 30) | (5 << 21) | (6 << 12);
    d.table_set_dir(&cap, pml4, Level::Pml4, 3, pdp);
    d.table_set_dir(&cap, pdp, Level::Pdp, 4, pd);
    d.table_set_dir(&cap, pd, Level::Pd, 5, pt);
    d.table_set_leaf(&cap, pt, 6, BusAddr(PAGE), Access::ReadOnly);
    d.table_set_leaf(&cap, pt, 7, BusAddr(PAGE + 0x1000), Access::ReadWrite);
    d.invalidate(&cap);
    let m = mem.state();
    assert_eq!(m.entry(pml4.bus.0, 3), Some(Gen8Pte::dir(pdp.bus.0).unwrap()));
    assert_eq!(m.entry(pd.bus.0, 5).unwrap().addr(), pt.bus.0);
    let ro = Walk::Page { addr: PAGE, writable: false, ppat: Ppat::CACHED };
    assert_eq!(m.walk(pml4.bus.0, va), ro);
    let rw = Walk::Page { addr: PAGE + 0x1000, writable: true, ppat: Ppat::CACHED };
    assert_eq!(m.walk(pml4.bus.0, va + 0x1000), rw);
    // Unset entries at every level resolve to the read-only, uncached scratch page.
    let scratch = Walk::Page { addr: d.scratch_page().0, writable: false, ppat: Ppat::UNCACHED };
    for other in [va + 0x2000, va ^ (1 << 21), va ^ (1 << 30), va ^ (1 << 39)] {
        assert_eq!(m.walk(pml4.bus.0, other), scratch, "{other:#x}");
    }
    assert_eq!(m.unpublished_writes, 0, "made visible at invalidate");
}

#[test]
fn clearing_points_entries_at_scratch_at_every_level() {
    let (mut d, _, mem) = setup(8);
    let cap = testing_cap();
    let pml4 = d.table_alloc(&cap, Level::Pml4).unwrap();
    let pdp = d.table_alloc(&cap, Level::Pdp).unwrap();
    let pd = d.table_alloc(&cap, Level::Pd).unwrap();
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    d.table_set_dir(&cap, pml4, Level::Pml4, 0, pdp);
    d.table_set_dir(&cap, pdp, Level::Pdp, 0, pd);
    d.table_set_dir(&cap, pd, Level::Pd, 0, pt);
    d.table_set_leaf(&cap, pt, 0, BusAddr(PAGE), Access::ReadWrite);
    for (t, level) in [(pt, Level::Pt), (pd, Level::Pd), (pdp, Level::Pdp), (pml4, Level::Pml4)] {
        d.table_clear(&cap, t, level, 0);
        assert_eq!(mem.state().entry(t.bus.0, 0), Some(d.scratch_entry(level)));
    }
    d.invalidate(&cap);
    let scratch = d.scratch_page().0;
    assert!(matches!(mem.state().walk(pml4.bus.0, 0), Walk::Page { addr, .. } if addr == scratch));
}

#[test]
fn a_fresh_table_is_all_scratch_for_its_level_and_free_recycles_it() {
    let (mut d, _, mem) = setup(8);
    let cap = testing_cap();
    for level in Level::ALL {
        let t = d.table_alloc(&cap, level).unwrap();
        let m = mem.state();
        assert!((0..512).all(|i| m.entry(t.bus.0, i) == Some(d.scratch_entry(level))));
        drop(m);
        d.table_free(&cap, t);
        assert_eq!(d.table_alloc(&cap, Level::Pt).unwrap(), t, "the freed page comes back");
        d.table_free(&cap, t);
    }
    assert_eq!(d.stats().tables_in_use, 0);
    assert_eq!(d.stats().rejected, 0);
}

#[test]
fn the_pool_runs_out_instead_of_reusing_a_live_table() {
    let (mut d, _, _) = setup_on(ModelGpu::new(0x1912, Ggc::from_fields(1, 2, true), 6), 8);
    let cap = testing_cap();
    let a = d.table_alloc(&cap, Level::Pt).unwrap();
    let b = d.table_alloc(&cap, Level::Pt).unwrap();
    assert_ne!(a, b);
    assert!(d.table_alloc(&cap, Level::Pt).is_none());
    d.table_free(&cap, a);
    d.table_free(&cap, a);
    assert_eq!(d.stats().rejected, 1, "a double free is refused");
}

#[test]
fn calls_outside_the_contract_write_nothing_and_are_counted() {
    let (mut d, bar, mem) = setup(8);
    let cap = testing_cap();
    let reserved = d.ggtt().reserved();
    d.ggtt_set(&cap, 8, BusAddr(PAGE), Access::ReadWrite);
    d.ggtt_set(&cap, reserved, BusAddr(PAGE), Access::ReadWrite);
    d.ggtt_clear(&cap, reserved);
    assert!(
        bar.state().written.is_empty(),
        "nothing past the managed share, not the reserved entry"
    );
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    let pd = d.table_alloc(&cap, Level::Pd).unwrap();
    let before = mem.state().unpublished_writes;
    d.table_set_leaf(&cap, pd, 0, BusAddr(PAGE), Access::ReadWrite); // leaf in a PD
    d.table_set_leaf(&cap, pt, 512, BusAddr(PAGE), Access::ReadWrite); // index out of range
    d.table_set_dir(&cap, pt, Level::Pt, 0, pd); // a PT has no directory entries
    d.table_set_dir(&cap, pd, Level::Pd, 0, pd); // child of the wrong level
    let fake = gtt::TablePage { bus: BusAddr(MODEL_TABLES), id: 0 };
    d.table_set_leaf(&cap, fake, 0, BusAddr(PAGE), Access::ReadWrite); // the scratch page
    let stale = gtt::TablePage { bus: pt.bus, id: FIRST_TABLE + 40 };
    d.table_clear(&cap, stale, Level::Pt, 0); // id and bus disagree
    assert_eq!(mem.state().unpublished_writes, before);
    assert_eq!(d.stats().rejected, 9);
}

#[test]
fn an_address_a_gen9_entry_cannot_hold_makes_the_entry_scratch() {
    let (mut d, bar, mem) = setup(8);
    let cap = testing_cap();
    d.ggtt_set(&cap, 2, BusAddr(PAGE), Access::ReadWrite);
    d.ggtt_set(&cap, 2, BusAddr(1 << 40), Access::ReadWrite);
    d.invalidate(&cap);
    assert_eq!(bar.state().gpu_ggtt(2).addr(), d.scratch_page().0, "the old page is gone");
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    d.table_set_leaf(&cap, pt, 1, BusAddr(PAGE), Access::ReadWrite);
    d.table_set_leaf(&cap, pt, 1, BusAddr(PAGE + 1), Access::ReadWrite);
    assert_eq!(mem.state().entry(pt.bus.0, 1), Some(d.scratch_entry(Level::Pt)));
    assert_eq!(d.stats().rejected, 2);
}

#[test]
fn ppgtt_writes_invalidate_every_engine_tlb_and_wait_for_done() {
    let (mut d, bar, _) = setup(8);
    let cap = testing_cap();
    d.invalidate(&cap);
    assert!(bar.state().tlb_invalidations.is_empty(), "no PPGTT write, no TLB invalidation");
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    d.table_set_leaf(&cap, pt, 0, BusAddr(PAGE), Access::ReadWrite);
    d.invalidate(&cap);
    let s = bar.state();
    assert_eq!(s.tlb_invalidations.len(), 4, "RCS, VCS0, BCS, VECS on a GT2");
    assert_eq!(s.tlb_invalidations.get(&GEN8_RTCR), Some(&1));
    assert!(!s.tlb_invalidations.contains_key(&GEN8_M2TCR));
    drop(s);
    assert_eq!((d.stats().tlb_invalidations, d.stats().tlb_timeouts), (1, 0));
}

#[test]
fn a_gt3_also_invalidates_the_second_video_engine_and_a_stuck_engine_times_out() {
    let m = ModelGpu::new(0x1926, Ggc::from_fields(1, 2, true), 16);
    m.bar.state_mut().tlb_busy_reads = u32::MAX;
    let (mut d, bar, _) = setup_on(m, 8);
    let cap = testing_cap();
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    d.table_set_leaf(&cap, pt, 0, BusAddr(PAGE), Access::ReadWrite);
    d.invalidate(&cap);
    assert_eq!(bar.state().tlb_invalidations.get(&GEN8_M2TCR), Some(&1));
    assert_eq!(d.stats().tlb_timeouts, 5, "each engine that never reported done");
}

#[test]
fn pml4_pointer_is_given_for_live_roots_only() {
    let (mut d, _, _) = setup(8);
    let cap = testing_cap();
    let root = d.table_alloc(&cap, Level::Pml4).unwrap();
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    let p = d.pml4_pointer(root.bus).unwrap();
    assert_eq!((p.udw(), p.ldw()), ((root.bus.0 >> 32) as u32, root.bus.0 as u32));
    assert_eq!(d.pml4_pointer(pt.bus), None, "a PT is not a root");
    assert_eq!(d.pml4_pointer(BusAddr(MODEL_TABLES)), None, "the scratch page is not a root");
}

#[test]
fn too_little_table_memory_is_refused_at_init() {
    let mut m = ModelGpu::new(0x1912, Ggc::from_fields(1, 2, true), 4);
    let info = probe(&mut m.pci).unwrap();
    let e = I915::new(info, m.bar.clone(), m.mem.clone(), Config::default()).err().unwrap();
    assert_eq!(e, InitError::Pool(crate::ppgtt::PoolError::TooFewPages(4)));
    assert!(std::format!("{e}").contains("4 pages"));
}
