use super::*;

fn count(p: Platform) -> usize {
    devices().filter(|d| d.platform == p).count()
}

#[test]
fn known_gen9_ids_are_identified_with_their_platform_and_gt() {
    let skl = lookup(0x8086, 0x1912).unwrap();
    assert_eq!((skl.platform, skl.gt, skl.gen()), (Platform::Skylake, Gt::Gt2, Gen::Gen9));
    let kbl = lookup(0x8086, 0x5916).unwrap();
    assert_eq!((kbl.platform, kbl.gt), (Platform::KabyLake, Gt::Gt2));
    let cfl = lookup(0x8086, 0x3E92).unwrap();
    assert_eq!((cfl.platform, cfl.gt), (Platform::CoffeeLake, Gt::Gt2));
    let cml = lookup(0x8086, 0x9BC5).unwrap();
    assert_eq!((cml.platform, cml.gt), (Platform::CometLake, Gt::Gt2));
    let skl_gt3 = lookup(0x8086, 0x1926).unwrap();
    assert_eq!(skl_gt3.gt, Gt::Gt3);
    assert!(skl_gt3.gt.has_vcs1() && !skl.gt.has_vcs1());
}

#[test]
fn known_gen12_ids_are_identified_with_their_platform() {
    let cases = [
        (0x9A60, Platform::TigerLake, Gt::Gt1, "TGL-H GT1"),
        (0x9A49, Platform::TigerLake, Gt::Gt2, "TGL-UY GT2"),
        (0x4C8A, Platform::RocketLake, Gt::Unlisted, "RKL"),
        (0x4680, Platform::AlderLakeS, Gt::Unlisted, "ADL-S"),
        (0x46A6, Platform::AlderLakeP, Gt::Unlisted, "ADL-P"),
        (0x46D1, Platform::AlderLakeN, Gt::Unlisted, "ADL-N"),
        (0xA780, Platform::RaptorLakeS, Gt::Unlisted, "RPL-S"),
        (0xA7A0, Platform::RaptorLakeP, Gt::Unlisted, "RPL-P"),
        (0xA7A9, Platform::RaptorLakeU, Gt::Unlisted, "RPL-U"),
    ];
    for (id, platform, gt, name) in cases {
        let d = lookup(0x8086, id).unwrap();
        assert_eq!((d.platform, d.gt, d.name, d.gen()), (platform, gt, name, Gen::Gen12));
    }
}

#[test]
fn the_tables_hold_every_listed_id_per_platform() {
    let per_platform = [
        (Platform::Broadwell, 18),
        (Platform::Skylake, 25),
        (Platform::KabyLake, 20),
        (Platform::AmberLake, 3),
        (Platform::CoffeeLake, 16),
        (Platform::WhiskeyLake, 5),
        (Platform::CometLake, 17),
        (Platform::TigerLake, 11),
        (Platform::RocketLake, 6),
        (Platform::AlderLakeS, 8),
        (Platform::AlderLakeP, 18),
        (Platform::AlderLakeN, 5),
        (Platform::RaptorLakeS, 8),
        (Platform::RaptorLakeP, 5),
        (Platform::RaptorLakeU, 5),
    ];
    for (p, n) in per_platform {
        assert_eq!(count(p), n, "{p:?}");
    }
    assert_eq!(devices().count(), 170);
    assert_eq!(devices().filter(|d| d.gen() == Gen::Gen8).count(), 18);
    assert_eq!(devices().filter(|d| d.gen() == Gen::Gen9).count(), 86);
    assert_eq!(devices().filter(|d| d.gen() == Gen::Gen12).count(), 66);
}

#[test]
fn broadwell_is_gen8() {
    assert_eq!(lookup(0x8086, 0x1616).unwrap().gen(), Gen::Gen8);
}

#[test]
fn unknown_ids_are_refused_with_what_was_read() {
    // A NIC, an unlisted ID near the Gen12 ranges, Wildcat Lake (newer than the table).
    for dev in [0x10D3, 0x9A41, 0xFD80] {
        let e = lookup(0x8086, dev).unwrap_err();
        assert_eq!(e, IdError::Unsupported { device: dev });
        assert!(std::format!("{e}").contains("not a supported GPU"));
    }
    assert_eq!(lookup(0x1234, 0x1111), Err(IdError::NotIntel { vendor: 0x1234, device: 0x1111 }));
}

#[test]
fn discrete_and_meteor_lake_or_later_are_refused_naming_the_family_and_why() {
    let cases = [
        (0x4905, "DG1", RefusalReason::Discrete, "local memory"),
        (0x56A0, "DG2", RefusalReason::Discrete, "local memory"),
        (0x56C1, "ATS-M", RefusalReason::Discrete, "local memory"),
        (0xE20B, "Battlemage", RefusalReason::Discrete, "local memory"),
        (0x7D55, "Meteor Lake", RefusalReason::MeteorLakeOrLater, "bits 52-53"),
        (0x7D51, "Arrow Lake", RefusalReason::MeteorLakeOrLater, "62 (PPGTT)"),
        (0x64A0, "Lunar Lake", RefusalReason::MeteorLakeOrLater, "Meteor Lake and later"),
        (0xB080, "Panther Lake", RefusalReason::MeteorLakeOrLater, "Meteor Lake and later"),
        (0x5A84, "Apollo Lake", RefusalReason::Gen9Lp, "bxt_vtd_ggtt_wa"),
        (0x8A52, "Ice Lake", RefusalReason::Gen11, "Gen11"),
    ];
    for (id, family, reason, why) in cases {
        match lookup(0x8086, id) {
            Err(e @ IdError::Refused { device, family: f, reason: r }) => {
                assert_eq!((device, r), (id, reason), "{id:#06x}");
                assert!(f.contains(family), "{f}");
                let text = std::format!("{e}");
                assert!(text.starts_with(&std::format!("8086:{id:04x} is ")), "{text}");
                assert!(text.contains(family) && text.contains(why), "{text}");
            }
            other => panic!("{id:#06x}: {other:?}"),
        }
    }
}

#[test]
fn no_id_is_both_driven_and_refused_and_none_twice() {
    let mut all: Vec<u16> = devices().map(|d| d.id).collect();
    all.extend(refused::REFUSED.iter().flat_map(|f| f.ids.iter().copied()));
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "an ID appears twice");
    let refused: usize = refused::REFUSED.iter().map(|f| f.ids.len()).sum();
    assert_eq!(refused, 5 + 2 + 4 + 14 + 15 + 6 + 5 + 5 + 25 + 3 + 13 + 5 + 5 + 3 + 12);
}

#[test]
fn names_match_platforms_and_every_gen9_platform_has_its_gt_levels() {
    for d in devices() {
        assert!(d.name.starts_with(d.platform.short_name()), "{d:?}");
        assert_eq!(d.gen() == Gen::Gen12, d.platform.needs_oa_tlb_invalidation(), "{d:?}");
    }
    let platforms = [
        Platform::Broadwell,
        Platform::Skylake,
        Platform::KabyLake,
        Platform::CoffeeLake,
        Platform::CometLake,
    ];
    for p in platforms {
        for gt in [Gt::Gt1, Gt::Gt2, Gt::Gt3] {
            let any = devices().any(|d| d.platform == p && d.gt == gt);
            assert!(any || (p == Platform::CometLake && gt == Gt::Gt3), "{p:?} {gt:?}");
        }
    }
}
