//! The boot self-test against the model, on every generation.

use gtt::platform::GpuTables;

use super::{setup, setup_on, Kind};
use crate::ggc::Ggc;
use crate::ids::{Gen, Platform};
use crate::model::{ModelGpu, MODEL_BAR0, MODEL_TABLES};
use crate::pte::Format;
use crate::selftest::{selftest, SelfTestError};

per_gen! {
    fn selftest_reports_identity_sizes_and_a_ggtt_round_trip_on_the_reserved_slot(k: Kind) {
        let (id, platform) = match k {
            Kind::Gen9 => (0x3E92, Platform::CoffeeLake),
            Kind::Gen12 => (0x46A6, Platform::AlderLakeP),
        };
        let m = ModelGpu::new(id, Ggc::from_fields(3, 0xf1, true), 16);
        let (mut d, bar, _) = setup_on(m, 4096);
        let r = selftest(&mut d).unwrap();
        assert_eq!((r.device_id, r.platform, r.gen), (id, platform, k.gen()));
        assert_eq!((r.gttmmadr.base, r.gttmmadr.size), (MODEL_BAR0, 16 << 20));
        assert_eq!((r.ggtt_bytes, r.ggtt_entries, r.ggtt_managed), (8 << 20, 1 << 20, 4096));
        assert_eq!(r.stolen_bytes, Some(8 << 20), "GMS 0xf1 = 8 MiB on Gen9 and Gen12");
        assert_eq!(r.slot, (1 << 20) - 1, "the last entry");
        assert!(r.slot_was_scratch);
        assert_eq!(r.read_back, r.pattern);
        let f = Format::of(k.gen());
        let pattern = crate::pte::Entry::from_bits(r.pattern);
        assert_eq!(f.ggtt_addr(pattern), MODEL_TABLES + 0x1000, "the scratch PT page");
        assert_eq!(f.check_ggtt(pattern), Ok(()));
        assert!(r.pattern >> 32 != 0, "the pattern exercises the upper dword");
        let s = bar.state();
        assert_eq!(s.written.iter().copied().collect::<Vec<_>>(), [r.slot], "only the reserved slot");
        assert_eq!(s.gpu_ggtt_addr(r.slot), d.scratch_page().0, "restored and flushed");
        assert!(s.stale().is_empty());
        assert!(s.flushes.iter().all(|f| f.read_back && f.completed));
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        assert_eq!(d.fault(), None);
    }

    fn selftest_leaves_gtt_entries_and_caps_alone(k: Kind) {
        let (mut d, bar, _) = setup(k, 64);
        let caps = d.caps();
        selftest(&mut d).unwrap();
        assert_eq!(d.caps(), caps);
        assert!(bar.state().written.iter().all(|&i| i >= caps.ggtt_entries));
    }

    fn selftest_fails_when_the_slot_does_not_read_back_and_says_why(k: Kind) {
        let (mut d, bar, _) = setup(k, 64);
        // A BAR that drops GGTT writes (not mapped, or not decoding).
        let slot = d.ggtt().reserved();
        bar.state_mut().drop_ggtt_writes = true;
        let e = selftest(&mut d).unwrap_err();
        let scratch = d.ggtt().scratch().bits();
        match e {
            SelfTestError::ReadBack { index, read, .. } => {
                assert_eq!((index, read), (slot, scratch));
            }
            other => panic!("{other:?}"),
        }
        assert!(std::format!("{e}").contains("not mapped uncached"));
    }
}

#[test]
fn selftest_report_prints_what_the_boot_log_shows_on_gen9() {
    let (mut d, _, _) = setup(Kind::Gen9, 64);
    let text = std::format!("{}", selftest(&mut d).unwrap());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("i915-lite: SKL GT2 DT [8086:1912] rev 0x07 (Gen9, Skylake"),
        "{text}"
    );
    assert!(lines[1].contains("GGTT 2 MiB = 262144 entries (64 for guests), stolen 64 MiB"));
    assert_eq!(
        lines[2],
        "i915-lite: TLB invalidation for rcs0 bcs0 vcs0 vecs0; \
         GGTT updates: read-back + GFX_FLSH_CNTL + posting read"
    );
    assert!(lines[3].ends_with("restored to scratch: ok"), "{text}");
}

#[test]
fn selftest_report_prints_what_the_boot_log_shows_on_gen12() {
    let m = ModelGpu::with_media_fuse(0x9A49, Ggc::from_fields(1, 2, true), 64, 1 << 2);
    let (mut d, _, _) = setup_on(m, 64);
    let r = selftest(&mut d).unwrap();
    assert_eq!((r.gen, r.platform, r.media_fuse), (Gen::Gen12, Platform::TigerLake, Some(4)));
    let text = std::format!("{r}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("i915-lite: TGL-UY GT2 [8086:9a49] rev 0x07 (Gen12, TigerLake, Gt2)"),
        "{text}"
    );
    assert!(lines[1].contains("GGTT 2 MiB = 262144 entries (64 for guests), stolen 64 MiB"));
    assert_eq!(
        lines[2],
        "i915-lite: TLB invalidation for rcs0 bcs0 vcs0 vecs0 (media fuse 0x00000004); \
         GGTT updates: read-back (posting read; the GPU snoops GGTT writes)"
    );
    assert!(lines[3].ends_with("restored to scratch: ok"), "{text}");
}
