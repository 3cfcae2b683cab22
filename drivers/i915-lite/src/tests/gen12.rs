//! What only Gen12 has: the per-class TLB invalidation registers with
//! instance bits (masked for media), the OA workaround, fused-off media
//! engines, Rocket Lake's single VDBOX, the uncached GGTT that needs no
//! `GFX_FLSH_CNTL`, and every Gen12 platform driven end to end.

use gtt::platform::{testing_cap, GpuTables};
use gtt::{Access, BusAddr, Level};

use super::{setup, setup_on, Kind};
use crate::engines::Engine;
use crate::ggc::Ggc;
use crate::ids::Gen;
use crate::model::ModelGpu;
use crate::pte::gen12::GGTT_LM;
use crate::regs::*;
use crate::selftest::selftest;

const PAGE: u64 = 0x7_1234_5000;

/// One PPGTT write and an invalidation; returns the TLB register log.
fn one_tlb_invalidation(m: ModelGpu) -> (Vec<(u32, u32)>, Vec<Engine>) {
    let (mut d, bar, _) = setup_on(m, 8);
    let cap = testing_cap();
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    d.table_set_leaf(&cap, pt, 0, BusAddr(PAGE), Access::ReadWrite);
    d.invalidate(&cap);
    assert_eq!(d.fault(), None);
    let s = bar.state();
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    let completed = s.tlb.completed.keys().copied().collect();
    (s.tlb.log.clone(), completed)
}

#[test]
fn tiger_lake_writes_i915s_requests_then_the_oa_workaround() {
    let (log, completed) = one_tlb_invalidation(ModelGpu::tiger_lake_gt2());
    // Engine-id order: RCS0, BCS0, VCS0, VCS2, VECS0; then Wa_2207587034.
    let want = [
        (GEN12_GFX_TLB_INV_CR, 0x1),
        (GEN12_BLT_TLB_INV_CR, 0x1),
        (GEN12_VD_TLB_INV_CR, 0x0001_0001),
        (GEN12_VD_TLB_INV_CR, 0x0004_0004),
        (GEN12_VE_TLB_INV_CR, 0x0001_0001),
        (GEN12_OA_TLB_INV_CR, 0x1),
    ];
    assert_eq!(log, want);
    let all = [Engine::RCS0, Engine::BCS0, Engine::VCS0, Engine::VCS2, Engine::VECS0];
    assert_eq!(completed.len(), all.len());
    assert!(all.iter().all(|e| completed.contains(e)));
}

#[test]
fn fused_off_media_engines_are_read_from_the_fuse_and_not_invalidated() {
    // VCS2 and VECS0 fused off (GEN11_GT_VEBOX_VDBOX_DISABLE bits 2 and 16).
    let fuse = (1 << 2) | (1 << 16);
    let m = ModelGpu::with_media_fuse(0x9A49, Ggc::from_fields(1, 2, true), 64, fuse);
    let (mut d, _, _) = setup_on(m, 8);
    assert_eq!(d.media_fuse(), Some(fuse));
    assert_eq!(std::format!("{}", d.engines()), "rcs0 bcs0 vcs0");
    let cap = testing_cap();
    let pt = d.table_alloc(&cap, Level::Pt).unwrap();
    d.table_set_leaf(&cap, pt, 0, BusAddr(PAGE), Access::ReadWrite);
    d.invalidate(&cap);
    assert_eq!((d.fault(), d.stats().tlb_timeouts), (None, 0));
    let m = ModelGpu::with_media_fuse(0x9A49, Ggc::from_fields(1, 2, true), 64, fuse);
    let (log, _) = one_tlb_invalidation(m);
    assert!(!log.iter().any(|&(reg, _)| reg == GEN12_VE_TLB_INV_CR));
    assert!(!log.contains(&(GEN12_VD_TLB_INV_CR, 0x0004_0004)));
}

#[test]
fn a_request_for_an_engine_the_device_lacks_is_a_model_violation() {
    // What a driver that ignored the fuse would do: the model refuses it
    // and the request never completes.
    let fuse = 1 << 2;
    let m = ModelGpu::with_media_fuse(0x9A49, Ggc::from_fields(1, 2, true), 64, fuse);
    let mut bar = m.bar.clone();
    bar.write32(GEN12_VD_TLB_INV_CR, masked_bit_enable(1 << 2));
    assert_eq!(bar.read32(GEN12_VD_TLB_INV_CR) & 4, 0);
    let v = bar.state().violations.clone();
    assert_eq!(
        v,
        [crate::model::BarViolation::TlbNoSuchEngine { reg: GEN12_VD_TLB_INV_CR, bit: 4 }]
    );
    assert_eq!(bar.state().tlb.requests.get(&Engine::VCS2), None);
}

#[test]
fn rocket_lake_has_one_vdbox_and_the_same_sequence() {
    let m = ModelGpu::new(0x4C8A, Ggc::from_fields(1, 2, true), 64);
    let (log, completed) = one_tlb_invalidation(m);
    assert_eq!(completed, [Engine::RCS0, Engine::BCS0, Engine::VCS0, Engine::VECS0]);
    assert!(!log.contains(&(GEN12_VD_TLB_INV_CR, 0x0004_0004)));
    assert_eq!(log.last(), Some(&(GEN12_OA_TLB_INV_CR, 1)), "RKL is in Wa_2207587034");
}

#[test]
fn the_gen12_ggtt_is_synchronised_by_the_read_back_alone() {
    let (mut d, bar, _) = setup(Kind::Gen12, 64);
    let cap = testing_cap();
    for i in 0..8 {
        d.ggtt_set(&cap, i, BusAddr(PAGE + u64::from(i) * 0x1000), Access::ReadWrite);
    }
    assert_eq!(bar.state().stale().len(), 8, "posted until a read");
    d.invalidate(&cap);
    let s = bar.state();
    assert!(s.stale().is_empty());
    assert_eq!(
        s.flush_control_writes, 0,
        "no GFX_FLSH_CNTL on Gen12 (as Linux since 7d7a328d0e8d)"
    );
    let f = s.flushes.last().unwrap();
    assert_eq!((f.ggtt_writes.len(), f.read_back, f.completed), (8, true, true));
    assert!((0..8).all(|i| s.ggtt(i).bits() & GGTT_LM == 0), "never the LM bit");
}

#[test]
fn every_gen12_platform_is_driven_end_to_end() {
    for id in [0x9A60, 0x9A49, 0x4C8A, 0x4690, 0x46A6, 0x46D1, 0xA780, 0xA7A0, 0xA721] {
        let m = ModelGpu::new(id, Ggc::from_fields(1, 2, true), 16);
        let (mut d, bar, mem) = setup_on(m, 64);
        let r = selftest(&mut d).unwrap();
        assert_eq!((r.device_id, r.gen), (id, Gen::Gen12));
        let cap = testing_cap();
        d.ggtt_set(&cap, 3, BusAddr(PAGE), Access::ReadWrite);
        let root = d.table_alloc(&cap, Level::Pml4).unwrap();
        let pdp = d.table_alloc(&cap, Level::Pdp).unwrap();
        let pd = d.table_alloc(&cap, Level::Pd).unwrap();
        let pt = d.table_alloc(&cap, Level::Pt).unwrap();
        d.table_set_dir(&cap, root, Level::Pml4, 0, pdp);
        d.table_set_dir(&cap, pdp, Level::Pdp, 0, pd);
        d.table_set_dir(&cap, pd, Level::Pd, 0, pt);
        d.table_set_leaf(&cap, pt, 1, BusAddr(PAGE), Access::ReadOnly);
        d.invalidate(&cap);
        let s = bar.state();
        assert_eq!(s.gpu_ggtt_addr(3), PAGE, "{id:#06x}");
        let w = mem.state().walk(root.bus.0, 0x1000);
        assert!(
            matches!(w, crate::model::Walk::Page { addr: PAGE, writable: false, .. }),
            "{id:#06x}: {w:?}"
        );
        assert!(s.violations.is_empty() && d.fault().is_none(), "{id:#06x}: {:?}", s.violations);
        assert_eq!(s.tlb.oa_invalidations, 1, "{id:#06x}");
    }
}
