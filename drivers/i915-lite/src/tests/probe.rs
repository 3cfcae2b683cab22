//! PCI probe against the model's configuration space.

use crate::ggc::{Ggc, GgcError};
use crate::ids::{Gen, IdError, Platform, RefusalReason};
use crate::model::{ModelPci, PciViolation, MODEL_BAR0};
use crate::pci::{cfg, probe, Bar, ProbeError};

fn skl() -> ModelPci {
    ModelPci::new(0x1912, Ggc::from_fields(3, 2, true), MODEL_BAR0)
}

#[test]
fn probe_identifies_every_gen12_platform_and_reads_bar0_and_ggc_as_on_gen9() {
    let cases = [
        (0x9A60, Platform::TigerLake),
        (0x9A49, Platform::TigerLake),
        (0x4C8A, Platform::RocketLake),
        (0x4690, Platform::AlderLakeS),
        (0x46A6, Platform::AlderLakeP),
        (0x46D1, Platform::AlderLakeN),
        (0xA780, Platform::RaptorLakeS),
        (0xA7A0, Platform::RaptorLakeP),
        (0xA721, Platform::RaptorLakeU),
    ];
    for (id, platform) in cases {
        let mut pci = ModelPci::new(id, Ggc::from_fields(3, 0xf1, true), MODEL_BAR0);
        let info = probe(&mut pci).unwrap();
        assert_eq!(
            (info.device.id, info.device.platform, info.device.gen()),
            (id, platform, Gen::Gen12)
        );
        assert_eq!(info.gttmmadr, Bar { base: MODEL_BAR0, size: 16 << 20 });
        assert_eq!(info.ggtt_offset(), 8 << 20, "the GGTT starts at GTTMMADR + 8 MiB");
        assert_eq!(info.ggc_info.ggtt_entries(), 1 << 20);
        assert_eq!(info.ggc_info.stolen_bytes, Some(8 << 20), "GMS 0xf1 = 8 MiB, gen9_stolen_size");
        assert_eq!(pci.command() & 0b110, 0b110);
        assert!(pci.violations.is_empty(), "{:?}", pci.violations);
    }
}

#[test]
fn discrete_and_meteor_lake_or_later_are_refused_at_probe_and_never_touched() {
    let cases = [
        (0x4905, "8086:4905 is DG1", RefusalReason::Discrete),
        (0x56A0, "8086:56a0 is DG2 (Arc A-series", RefusalReason::Discrete),
        (0x56C0, "8086:56c0 is ATS-M", RefusalReason::Discrete),
        (0xE20B, "8086:e20b is Battlemage", RefusalReason::Discrete),
        (0x7D55, "8086:7d55 is Meteor Lake", RefusalReason::MeteorLakeOrLater),
        (0x7DD1, "8086:7dd1 is Arrow Lake", RefusalReason::MeteorLakeOrLater),
        (0x64A0, "8086:64a0 is Lunar Lake", RefusalReason::MeteorLakeOrLater),
    ];
    for (id, log, reason) in cases {
        let mut pci = ModelPci::new(id, Ggc::from_fields(3, 2, true), MODEL_BAR0);
        let e = probe(&mut pci).unwrap_err();
        match e {
            ProbeError::Id(IdError::Refused { device, reason: r, .. }) => {
                assert_eq!((device, r), (id, reason));
            }
            other => panic!("{id:#06x}: {other:?}"),
        }
        // What the image logs: the device and why it is not driven.
        let line = std::format!("{e}");
        assert!(line.starts_with(log), "{line}");
        assert!(line.contains("not driven: ") && line.contains(reason.explain()), "{line}");
        assert!(pci.writes.is_empty(), "a refused device is not written to");
        assert_eq!(pci.command(), 0);
    }
}

#[test]
fn probe_identifies_a_skylake_and_reads_bar0_and_ggc() {
    let mut pci = skl();
    let info = probe(&mut pci).unwrap();
    assert_eq!(info.device.id, 0x1912);
    assert_eq!(info.device.platform, Platform::Skylake);
    assert_eq!(info.revision, 7);
    assert_eq!(info.gttmmadr, Bar { base: MODEL_BAR0, size: 16 << 20 });
    assert_eq!(info.ggtt_offset(), 8 << 20, "the GGTT is the upper half of a 16 MiB BAR");
    assert_eq!(info.ggc_info.ggtt_bytes, 8 << 20);
    assert_eq!(info.ggc_info.ggtt_entries(), 1 << 20);
    assert_eq!(info.ggc_info.stolen_bytes, Some(64 << 20));
    assert!(pci.violations.is_empty(), "{:?}", pci.violations);
}

#[test]
fn probe_enables_memory_decoding_and_bus_mastering() {
    let mut pci = skl();
    assert_eq!(pci.command() & (cfg::CMD_MEMORY | cfg::CMD_BUS_MASTER), 0);
    probe(&mut pci).unwrap();
    assert_eq!(pci.command() & 0b110, 0b110, "command bits 1 (memory) and 2 (bus master)");
    // Every command write kept the RW1C status half zero.
    let cmd_writes = pci.writes.iter().filter(|(o, _)| *o == cfg::COMMAND);
    assert!(cmd_writes.clone().count() >= 3);
    assert!(cmd_writes.clone().all(|(_, v)| v >> 16 == 0));
}

#[test]
fn bar_sizing_is_done_with_decoding_off_and_restores_the_bar() {
    let mut pci = skl();
    // Firmware left memory decoding on: the probe must turn it off to size.
    pci.poke(cfg::COMMAND, u32::from(cfg::CMD_MEMORY));
    probe(&mut pci).unwrap();
    assert!(pci.violations.is_empty(), "{:?}", pci.violations);
    assert_eq!(pci.bar0(), MODEL_BAR0);
    assert!(pci.writes.contains(&(cfg::BAR0, u32::MAX)), "sized by an all-ones write");
}

#[test]
fn unknown_device_is_refused_with_a_clear_error_and_nothing_enabled() {
    let mut pci = ModelPci::new(0x9A41, Ggc::from_fields(3, 2, true), MODEL_BAR0);
    let e = probe(&mut pci).unwrap_err();
    assert_eq!(e, ProbeError::Id(IdError::Unsupported { device: 0x9A41 }));
    assert!(std::format!("{e}").contains("8086:9a41 is not a supported GPU"));
    assert_eq!(pci.command(), 0);
    assert!(pci.writes.is_empty(), "an unknown device is not touched");

    let mut other = skl();
    other.poke(cfg::ID, 0x1111_1234);
    let e = probe(&mut other).unwrap_err();
    assert_eq!(e, ProbeError::Id(IdError::NotIntel { vendor: 0x1234, device: 0x1111 }));
}

#[test]
fn a_non_display_function_with_a_known_id_is_refused() {
    let mut pci = skl();
    pci.poke(cfg::CLASS_REV, 0x0c03_0007);
    assert_eq!(probe(&mut pci), Err(ProbeError::NotDisplay(0x0c0300)));
}

#[test]
fn no_ggtt_in_ggc_is_refused() {
    let mut pci = ModelPci::new(0x1912, Ggc::from_fields(0, 2, true), MODEL_BAR0);
    let e = probe(&mut pci).unwrap_err();
    assert_eq!(e, ProbeError::Ggc(GgcError::NoGgtt(0x0201)));
    assert_eq!(pci.command(), 0);
}

#[test]
fn a_32_bit_or_io_bar0_is_refused() {
    let mut pci = skl();
    pci.poke(cfg::BAR0, 0xf000_0000); // 32-bit memory BAR
    assert_eq!(probe(&mut pci), Err(ProbeError::Bar0NotMem64(0xf000_0000)));
    pci.poke(cfg::BAR0, 0xe001); // I/O BAR
    assert_eq!(probe(&mut pci), Err(ProbeError::Bar0NotMem64(0xe001)));
}

#[test]
fn an_unassigned_bar0_is_refused() {
    let mut pci = ModelPci::new(0x1912, Ggc::from_fields(3, 2, true), 0);
    assert_eq!(probe(&mut pci), Err(ProbeError::Bar0Unassigned));
    assert_eq!(pci.command(), 0);
}

#[test]
fn a_ggtt_larger_than_half_the_bar_is_refused() {
    let mut pci = skl();
    pci.set_bar0_size(8 << 20);
    assert_eq!(
        probe(&mut pci),
        Err(ProbeError::GgttTooBig { ggtt_bytes: 8 << 20, bar_size: 8 << 20 })
    );
}

#[test]
fn a_locked_ggc_stays_as_the_firmware_set_it() {
    let mut pci = skl();
    let before = Ggc::from_fields(3, 2, true).0;
    crate::pci::PciConfig::write32(&mut pci, 0x50, 0);
    assert_eq!(crate::pci::PciConfig::read32(&mut pci, 0x50) as u16, before);
    assert!(!pci.violations.contains(&PciViolation::BadOffset(0x50)));
}
