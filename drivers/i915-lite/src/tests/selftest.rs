//! The boot self-test against the model.

use gtt::platform::GpuTables;

use super::{setup, setup_on};
use crate::ggc::Ggc;
use crate::ids::{Gen, Platform};
use crate::model::{ModelGpu, MODEL_BAR0, MODEL_TABLES};
use crate::pte::Gen8Pte;
use crate::selftest::{selftest, SelfTestError};

#[test]
fn selftest_reports_identity_sizes_and_a_ggtt_round_trip_on_the_reserved_slot() {
    let m = ModelGpu::new(0x3E92, Ggc::from_fields(3, 0xf1, true), 16);
    let (mut d, bar, _) = setup_on(m, 4096);
    let r = selftest(&mut d).unwrap();
    assert_eq!((r.device_id, r.platform, r.gen), (0x3E92, Platform::CoffeeLake, Gen::Gen9));
    assert_eq!((r.gttmmadr.base, r.gttmmadr.size), (MODEL_BAR0, 16 << 20));
    assert_eq!((r.ggtt_bytes, r.ggtt_entries, r.ggtt_managed), (8 << 20, 1 << 20, 4096));
    assert_eq!(r.stolen_bytes, Some(8 << 20), "GMS 0xf1 = 8 MiB on Gen9");
    assert_eq!(r.slot, (1 << 20) - 1, "the last entry");
    assert!(r.slot_was_scratch);
    assert_eq!(r.read_back, r.pattern);
    assert_eq!(Gen8Pte::from_bits(r.pattern).addr(), MODEL_TABLES + 0x1000, "the scratch PT page");
    assert!(r.pattern >> 32 != 0, "the pattern exercises the upper dword");
    let s = bar.state();
    assert_eq!(s.written.iter().copied().collect::<Vec<_>>(), [r.slot], "only the reserved slot");
    assert_eq!(s.gpu_ggtt(r.slot).addr(), d.scratch_page().0, "restored and flushed");
    assert!(s.stale().is_empty());
    assert!(s.flushes.iter().all(|f| f.read_back && f.completed));
    assert!(s.violations.is_empty(), "{:?}", s.violations);
}

#[test]
fn selftest_report_prints_what_the_boot_log_shows() {
    let (mut d, _, _) = setup(64);
    let text = std::format!("{}", selftest(&mut d).unwrap());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("i915-lite: SKL GT2 DT [8086:1912] rev 0x07"), "{text}");
    assert!(lines[1].contains("GGTT 2 MiB = 262144 entries (64 for guests), stolen 64 MiB"));
    assert!(lines[2].ends_with("restored to scratch: ok"), "{text}");
}

#[test]
fn selftest_leaves_gtt_entries_and_caps_alone() {
    let (mut d, bar, _) = setup(64);
    let caps = d.caps();
    selftest(&mut d).unwrap();
    assert_eq!(d.caps(), caps);
    assert!(bar.state().written.iter().all(|&i| i >= caps.ggtt_entries));
}

#[test]
fn selftest_fails_when_the_slot_does_not_read_back_and_says_why() {
    let (mut d, bar, _) = setup(64);
    // A BAR that drops GGTT writes (not mapped, or not decoding).
    let slot = d.ggtt().reserved();
    bar.state_mut().drop_ggtt_writes = true;
    let e = selftest(&mut d).unwrap_err();
    let scratch = Gen8Pte::ggtt(d.scratch_page().0).unwrap().bits();
    match e {
        SelfTestError::ReadBack { index, read, .. } => {
            assert_eq!((index, read), (slot, scratch));
        }
        other => panic!("{other:?}"),
    }
    assert!(std::format!("{e}").contains("not mapped uncached"));
}
