//! The driver's table writes, entry by entry, read back through the model,
//! on every generation.

use gtt::platform::{testing_cap, GpuTables};
use gtt::{Access, BusAddr, Level};

use super::{setup, setup_on, Kind};
use crate::ggc::Ggc;
use crate::model::{ModelGpu, Walk, MODEL_TABLES};
use crate::ppgtt::FIRST_TABLE;
use crate::pte::{Format, Ppat};
use crate::tlb::TlbInvalidation;
use crate::{probe, Config, InitError, InvalidateError, I915};

const PAGE: u64 = 0x7_1234_5000;

fn format(k: Kind) -> Format {
    Format::of(k.gen())
}

per_gen! {
    fn caps_come_from_the_device_minus_the_reserved_entry(k: Kind) {
        let (d, _, _) = setup(k, u32::MAX);
        let caps = d.caps();
        assert_eq!(caps.ggtt_entries, (2 << 20) / 8 - 1, "256 Ki entries, the last one reserved");
        assert!(!caps.ggtt_read_only, "no read-only GGTT entry on Gen9 or Gen12");
        assert!(caps.ppgtt_read_only);
        assert_eq!(d.ggtt().reserved(), (2 << 20) / 8 - 1);
        let (small, _, _) = setup(k, 1000);
        assert_eq!(small.caps().ggtt_entries, 1000);
    }

    fn init_points_every_managed_entry_and_the_reserved_one_at_scratch_and_flushes(k: Kind) {
        let mut m = k.model(64);
        let info = probe(&mut m.pci).unwrap();
        let d = I915::new(info, m.bar.clone(), m.mem.clone(), Config::default()).unwrap();
        let bar = m.bar.state();
        let scratch = format(k).ggtt(d.scratch_page().0).unwrap();
        assert_eq!(bar.written.len() as u32, bar.ggtt_entries(), "every entry written once");
        assert!((0..bar.ggtt_entries()).all(|i| bar.gpu_ggtt(i) == scratch));
        assert!(bar.stale().is_empty());
        let f = bar.flushes.last().unwrap();
        assert!(f.read_back && f.completed);
        assert!(bar.violations.is_empty(), "{:?}", bar.violations);
        assert_eq!(d.fault(), None);
    }

    fn ggtt_limit_leaves_entries_past_it_untouched(k: Kind) {
        let mut m = k.model(64);
        let info = probe(&mut m.pci).unwrap();
        let cfg = Config { ggtt_limit: 16, ..Config::default() };
        let _d = I915::new(info, m.bar.clone(), m.mem.clone(), cfg).unwrap();
        let s = m.bar.state();
        let last = s.ggtt_entries() - 1;
        let want: std::collections::BTreeSet<u32> = (0..16).chain([last]).collect();
        assert_eq!(s.written, want);
    }

    fn ggtt_entries_round_trip_through_the_bar(k: Kind) {
        let (mut d, bar, _) = setup(k, 64);
        let cap = testing_cap();
        d.ggtt_set(&cap, 5, BusAddr(PAGE), Access::ReadWrite);
        d.invalidate(&cap);
        let e = d.read_ggtt(5).unwrap();
        assert_eq!(e, format(k).ggtt(PAGE).unwrap());
        assert_eq!(e.bits(), PAGE | 1, "present and the address, nothing else (bit 1: Gen9 RW, Gen12 LM)");
        assert_eq!(format(k).check_ggtt(e), Ok(()));
        assert_eq!(bar.state().gpu_ggtt_addr(5), PAGE);
        d.ggtt_clear(&cap, 5);
        d.invalidate(&cap);
        assert_eq!(bar.state().gpu_ggtt_addr(5), d.scratch_page().0, "cleared to scratch");
        assert!(bar.state().violations.is_empty());
    }

    fn a_ggtt_write_is_not_used_by_the_gpu_before_the_generations_flush(k: Kind) {
        let (mut d, bar, _) = setup(k, 64);
        let cap = testing_cap();
        d.ggtt_set(&cap, 7, BusAddr(PAGE), Access::ReadWrite);
        assert_eq!(format(k).ggtt_addr(bar.state().ggtt(7)), PAGE, "in GGTT memory");
        assert_eq!(bar.state().stale(), [7], "but not yet what the GPU uses");
        d.invalidate(&cap);
        let s = bar.state();
        assert!(s.stale().is_empty());
        let f = s.flushes.last().unwrap();
        assert_eq!(f.ggtt_writes, [7]);
        assert!(f.read_back, "the last written entry was read back");
        assert!(f.completed, "and the GPU was made to see it");
        let flush_writes = match k {
            Kind::Gen9 => 1,
            Kind::Gen12 => 0, // gen8_ggtt_invalidate writes nothing on an uncached GGTT
        };
        assert_eq!(s.flush_control_writes, flush_writes);
        assert_eq!(d.stats().readback_mismatches, 0);
    }

    fn ppgtt_entries_of_every_kind_round_trip_through_the_model_walk(k: Kind) {
        let (mut d, _, mem) = setup(k, 8);
        let f = format(k);
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
        assert_eq!(m.entry(pml4.bus.0, 3), Some(f.dir(pdp.bus.0).unwrap()));
        assert_eq!(f.ppgtt_addr(m.entry(pd.bus.0, 5).unwrap()), pt.bus.0);
        let leaf_pat = f.leaf_pat();
        assert_eq!(leaf_pat, if k == Kind::Gen9 { Ppat::CACHED } else { Ppat::GEN12_WB });
        let ro = Walk::Page { addr: PAGE, writable: false, ppat: leaf_pat };
        assert_eq!(m.walk(pml4.bus.0, va), ro);
        let rw = Walk::Page { addr: PAGE + 0x1000, writable: true, ppat: leaf_pat };
        assert_eq!(m.walk(pml4.bus.0, va + 0x1000), rw);
        // Unset entries at every level resolve to the read-only, uncached scratch page.
        let scratch = Walk::Page { addr: d.scratch_page().0, writable: false, ppat: Ppat::UNCACHED };
        for other in [va + 0x2000, va ^ (1 << 21), va ^ (1 << 30), va ^ (1 << 39)] {
            assert_eq!(m.walk(pml4.bus.0, other), scratch, "{other:#x}");
        }
        assert_eq!(m.unpublished_writes, 0, "made visible at invalidate");
    }

    fn clearing_points_entries_at_scratch_at_every_level(k: Kind) {
        let (mut d, _, mem) = setup(k, 8);
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

    fn a_fresh_table_is_all_scratch_for_its_level_and_free_recycles_it(k: Kind) {
        let (mut d, _, mem) = setup(k, 8);
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

    fn the_pool_runs_out_instead_of_reusing_a_live_table(k: Kind) {
        let (mut d, _, _) = setup_on(k.model(6), 8);
        let cap = testing_cap();
        let a = d.table_alloc(&cap, Level::Pt).unwrap();
        let b = d.table_alloc(&cap, Level::Pt).unwrap();
        assert_ne!(a, b);
        assert!(d.table_alloc(&cap, Level::Pt).is_none());
        d.table_free(&cap, a);
        d.table_free(&cap, a);
        assert_eq!(d.stats().rejected, 1, "a double free is refused");
    }

    fn calls_outside_the_contract_write_nothing_and_are_counted(k: Kind) {
        let (mut d, bar, mem) = setup(k, 8);
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

    fn an_address_the_gpu_cannot_reach_makes_the_entry_scratch(k: Kind) {
        // 2^39: past Gen9's address field, and past Gen12's 39-bit DMA reach
        // although its field (bits 12..=45) could hold it.
        let (mut d, bar, mem) = setup(k, 8);
        let cap = testing_cap();
        d.ggtt_set(&cap, 2, BusAddr(PAGE), Access::ReadWrite);
        d.ggtt_set(&cap, 2, BusAddr(1 << 39), Access::ReadWrite);
        d.ggtt_set(&cap, 3, BusAddr(1 << 40), Access::ReadWrite);
        d.invalidate(&cap);
        assert_eq!(bar.state().gpu_ggtt_addr(2), d.scratch_page().0, "the old page is gone");
        assert_eq!(bar.state().gpu_ggtt_addr(3), d.scratch_page().0);
        let pt = d.table_alloc(&cap, Level::Pt).unwrap();
        d.table_set_leaf(&cap, pt, 1, BusAddr(PAGE), Access::ReadWrite);
        d.table_set_leaf(&cap, pt, 1, BusAddr(PAGE + 1), Access::ReadWrite);
        assert_eq!(mem.state().entry(pt.bus.0, 1), Some(d.scratch_entry(Level::Pt)));
        d.table_set_leaf(&cap, pt, 2, BusAddr(1 << 39), Access::ReadWrite);
        assert_eq!(mem.state().entry(pt.bus.0, 2), Some(d.scratch_entry(Level::Pt)));
        assert_eq!(d.stats().rejected, 4);
        assert!(bar.state().violations.is_empty(), "{:?}", bar.state().violations);
    }

    fn ppgtt_writes_invalidate_every_engine_tlb_and_wait_for_done(k: Kind) {
        let (mut d, bar, _) = setup(k, 8);
        let cap = testing_cap();
        d.invalidate(&cap);
        assert!(bar.state().tlb.requests.is_empty(), "no PPGTT write, no TLB invalidation");
        let pt = d.table_alloc(&cap, Level::Pt).unwrap();
        d.table_set_leaf(&cap, pt, 0, BusAddr(PAGE), Access::ReadWrite);
        d.invalidate(&cap);
        let s = bar.state();
        let engines: Vec<_> = s.tlb.engines().collect();
        let want = match k {
            Kind::Gen9 => "rcs0 bcs0 vcs0 vecs0",
            Kind::Gen12 => "rcs0 bcs0 vcs0 vcs2 vecs0",
        };
        assert_eq!(std::format!("{}", d.engines()), want);
        assert_eq!(engines, d.engines().iter().collect::<Vec<_>>());
        for e in &engines {
            assert_eq!(s.tlb.requests.get(e), Some(&1), "{e} requested once");
            assert_eq!(s.tlb.completed.get(e), Some(&1), "{e} seen done");
        }
        // Each request went to the register i915 uses, with i915's value.
        for step in d.tlb_plan().steps() {
            assert_eq!(*step, TlbInvalidation::of(k.gen(), step.engine));
            assert!(s.tlb.log.contains(&(step.reg, step.request)), "{step:?}");
        }
        // Wa_2207587034 on Gen12: the OA TLB after the engines' requests.
        let oa = (crate::regs::GEN12_OA_TLB_INV_CR, 1);
        match k {
            Kind::Gen9 => assert_eq!(s.tlb.oa_invalidations, 0),
            Kind::Gen12 => {
                assert_eq!(s.tlb.oa_invalidations, 1);
                assert_eq!(s.tlb.log.last(), Some(&oa));
            }
        }
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        drop(s);
        assert_eq!((d.stats().tlb_invalidations, d.stats().tlb_timeouts), (1, 0));
    }

    fn a_stuck_engine_is_an_error_the_caller_gets_and_the_driver_fails_closed(k: Kind) {
        let m = k.model(16);
        m.bar.state_mut().tlb.busy_reads = u32::MAX;
        let (mut d, bar, mem) = setup_on(m, 8);
        let cap = testing_cap();
        let pt = d.table_alloc(&cap, Level::Pt).unwrap();
        d.table_set_leaf(&cap, pt, 0, BusAddr(PAGE), Access::ReadWrite);
        // The driver's own call returns the error, naming the first engine.
        let e = d.try_invalidate().unwrap_err();
        let InvalidateError::Tlb(t) = e else { panic!("{e:?}") };
        assert_eq!((t.engine, t.engines), (crate::engines::Engine::RCS0, d.engines().len() as u32));
        assert_eq!(t.reads, Config::default().tlb_poll_reads, "bounded: no hang");
        assert!(std::format!("{e}").starts_with("rcs0 TLB invalidation did not complete"));
        // Under gtt (invalidate returns nothing) the fault is kept, and no new
        // mapping is written from then on; clears still clear.
        d.table_set_leaf(&cap, pt, 1, BusAddr(PAGE), Access::ReadWrite);
        d.invalidate(&cap);
        assert!(matches!(d.fault(), Some(InvalidateError::Tlb(_))));
        let rejected = d.stats().rejected;
        d.table_set_leaf(&cap, pt, 2, BusAddr(PAGE), Access::ReadWrite);
        d.ggtt_set(&cap, 1, BusAddr(PAGE), Access::ReadWrite);
        assert_eq!(mem.state().entry(pt.bus.0, 2), Some(d.scratch_entry(Level::Pt)));
        assert_eq!(bar.state().ggtt(1), d.ggtt().scratch());
        assert_eq!(d.stats().rejected, rejected + 2);
        d.table_clear(&cap, pt, Level::Pt, 0);
        assert_eq!(mem.state().entry(pt.bus.0, 0), Some(d.scratch_entry(Level::Pt)));
    }

    fn pml4_pointer_is_given_for_live_roots_only(k: Kind) {
        let (mut d, _, _) = setup(k, 8);
        let cap = testing_cap();
        let root = d.table_alloc(&cap, Level::Pml4).unwrap();
        let pt = d.table_alloc(&cap, Level::Pt).unwrap();
        let p = d.pml4_pointer(root.bus).unwrap();
        assert_eq!((p.udw(), p.ldw()), ((root.bus.0 >> 32) as u32, root.bus.0 as u32));
        assert_eq!(d.pml4_pointer(pt.bus), None, "a PT is not a root");
        assert_eq!(d.pml4_pointer(BusAddr(MODEL_TABLES)), None, "the scratch page is not a root");
    }

    fn too_little_table_memory_is_refused_at_init(k: Kind) {
        let mut m = k.model(4);
        let info = probe(&mut m.pci).unwrap();
        let e = I915::new(info, m.bar.clone(), m.mem.clone(), Config::default()).err().unwrap();
        assert_eq!(e, InitError::Pool(crate::ppgtt::PoolError::TooFewPages(4)));
        assert!(std::format!("{e}").contains("4 pages"));
    }
}

#[test]
fn a_gen9_gt3_also_invalidates_the_second_video_engine() {
    let m = ModelGpu::new(0x1926, Ggc::from_fields(1, 2, true), 16);
    let (mut d, bar, _) = setup_on(m, 8);
    let cap = testing_cap();
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    d.table_set_leaf(&cap, pt, 0, BusAddr(PAGE), Access::ReadWrite);
    d.invalidate(&cap);
    let s = bar.state();
    assert_eq!(s.tlb.requests.get(&crate::engines::Engine::VCS1), Some(&1));
    assert!(s.tlb.log.contains(&(crate::regs::GEN8_M2TCR, 1)));
    assert_eq!(s.tlb.requests.len(), 5);
}
