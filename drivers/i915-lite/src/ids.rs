//! Which devices this driver drives: Intel (vendor `0x8086`) integrated GPUs
//! of Gen9 "big core" platforms (Skylake, Kaby Lake, Amber Lake, Coffee Lake,
//! Whiskey Lake, Comet Lake) and Gen8 Broadwell, by PCI device ID.
//!
//! # Source
//! The IDs and their GT levels are those of Linux's
//! `include/drm/intel/i915_pciids.h` (`INTEL_BDW_*_IDS`, `INTEL_SKL_*_IDS`,
//! `INTEL_KBL_*_IDS`, `INTEL_AML_*_IDS`, `INTEL_CFL_*_IDS`, `INTEL_WHL_*_IDS`,
//! `INTEL_CML_*_IDS`); the names follow its comments.
//!
//! # Not here, on purpose
//! - Gen9 LP (Broxton/Apollo Lake, Gemini Lake): their GGTT must be mapped
//!   uncached and updated with the GPU quiesced when VT-d is on (i915
//!   `intel_ggtt.c`: `bxt_vtd_ggtt_wa`, `ggtt_probe_common`), which this
//!   driver does not do.
//! - Cherryview (Gen8 LP): a different GGMS/GMS encoding.
//! - Gen11+: wider PTE addresses and different invalidation registers.

/// The PCI vendor ID of Intel.
pub const INTEL_VENDOR: u16 = 0x8086;

/// Graphics generation, as the PRM volumes are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gen {
    /// Broadwell.
    Gen8,
    /// Skylake and its derivatives up to Comet Lake.
    Gen9,
}

/// The platform (code name) of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    /// BDW.
    Broadwell,
    /// SKL.
    Skylake,
    /// KBL.
    KabyLake,
    /// AML (Kaby Lake or Coffee Lake based Y parts).
    AmberLake,
    /// CFL.
    CoffeeLake,
    /// WHL (Coffee Lake U refresh).
    WhiskeyLake,
    /// CML.
    CometLake,
}

impl Platform {
    /// The graphics generation of the platform.
    pub const fn gen(self) -> Gen {
        match self {
            Platform::Broadwell => Gen::Gen8,
            _ => Gen::Gen9,
        }
    }

    /// The short name i915 uses.
    pub const fn short_name(self) -> &'static str {
        match self {
            Platform::Broadwell => "BDW",
            Platform::Skylake => "SKL",
            Platform::KabyLake => "KBL",
            Platform::AmberLake => "AML",
            Platform::CoffeeLake => "CFL",
            Platform::WhiskeyLake => "WHL",
            Platform::CometLake => "CML",
        }
    }
}

/// GT level: how many slices of execution units (GT1.5 counts as GT1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gt {
    /// GT1 (and GT1.5).
    Gt1,
    /// GT2.
    Gt2,
    /// GT3 (and GT3e).
    Gt3,
    /// GT4 (and GT4e).
    Gt4,
}

impl Gt {
    /// Whether the part has a second video decode engine (VCS1), which
    /// i915 gives to GT3 and GT4 parts of Gen8/Gen9.
    pub const fn has_vcs1(self) -> bool {
        matches!(self, Gt::Gt3 | Gt::Gt4)
    }
}

/// One supported device ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    /// The PCI device ID.
    pub id: u16,
    /// Its platform.
    pub platform: Platform,
    /// Its GT level.
    pub gt: Gt,
    /// A human name (segment and GT, as i915's comments give them).
    pub name: &'static str,
}

impl Device {
    /// The graphics generation.
    pub const fn gen(&self) -> Gen {
        self.platform.gen()
    }
}

const fn d(id: u16, platform: Platform, gt: Gt, name: &'static str) -> Device {
    Device { id, platform, gt, name }
}

use Gt::{Gt1, Gt2, Gt3, Gt4};
use Platform::{AmberLake as Aml, Broadwell as Bdw, CoffeeLake as Cfl, CometLake as Cml};
use Platform::{KabyLake as Kbl, Skylake as Skl, WhiskeyLake as Whl};

/// Every device ID this driver accepts.
pub static DEVICES: &[Device] = &[
    // Broadwell (Gen8): INTEL_BDW_GT1/GT2/GT3_IDS.
    d(0x1602, Bdw, Gt1, "BDW GT1 ULT"),
    d(0x1606, Bdw, Gt1, "BDW GT1 ULT"),
    d(0x160A, Bdw, Gt1, "BDW GT1 Server"),
    d(0x160B, Bdw, Gt1, "BDW GT1 Iris"),
    d(0x160D, Bdw, Gt1, "BDW GT1 Workstation"),
    d(0x160E, Bdw, Gt1, "BDW GT1 ULX"),
    d(0x1612, Bdw, Gt2, "BDW GT2 Halo"),
    d(0x1616, Bdw, Gt2, "BDW GT2 ULT"),
    d(0x161A, Bdw, Gt2, "BDW GT2 Server"),
    d(0x161B, Bdw, Gt2, "BDW GT2 ULT"),
    d(0x161D, Bdw, Gt2, "BDW GT2 Workstation"),
    d(0x161E, Bdw, Gt2, "BDW GT2 ULX"),
    d(0x1622, Bdw, Gt3, "BDW GT3 ULT"),
    d(0x1626, Bdw, Gt3, "BDW GT3 ULT"),
    d(0x162A, Bdw, Gt3, "BDW GT3 Server"),
    d(0x162B, Bdw, Gt3, "BDW GT3 Iris"),
    d(0x162D, Bdw, Gt3, "BDW GT3 Workstation"),
    d(0x162E, Bdw, Gt3, "BDW GT3 ULX"),
    // Skylake: INTEL_SKL_GT1..GT4_IDS.
    d(0x1902, Skl, Gt1, "SKL GT1 DT"),
    d(0x1906, Skl, Gt1, "SKL GT1 ULT"),
    d(0x190A, Skl, Gt1, "SKL GT1 SRV"),
    d(0x190B, Skl, Gt1, "SKL GT1 Halo"),
    d(0x190E, Skl, Gt1, "SKL GT1 ULX"),
    d(0x1913, Skl, Gt1, "SKL GT1.5 ULT"),
    d(0x1915, Skl, Gt1, "SKL GT1.5 ULX"),
    d(0x1917, Skl, Gt1, "SKL GT1.5 DT"),
    d(0x1912, Skl, Gt2, "SKL GT2 DT"),
    d(0x1916, Skl, Gt2, "SKL GT2 ULT"),
    d(0x191A, Skl, Gt2, "SKL GT2 SRV"),
    d(0x191B, Skl, Gt2, "SKL GT2 Halo"),
    d(0x191D, Skl, Gt2, "SKL GT2 WKS"),
    d(0x191E, Skl, Gt2, "SKL GT2 ULX"),
    d(0x1921, Skl, Gt2, "SKL GT2F ULT"),
    d(0x1923, Skl, Gt3, "SKL GT3 ULT"),
    d(0x1926, Skl, Gt3, "SKL GT3e ULT"),
    d(0x1927, Skl, Gt3, "SKL GT3e ULT"),
    d(0x192A, Skl, Gt3, "SKL GT3 SRV"),
    d(0x192B, Skl, Gt3, "SKL GT3e Halo"),
    d(0x192D, Skl, Gt3, "SKL GT3e SRV"),
    d(0x1932, Skl, Gt4, "SKL GT4 DT"),
    d(0x193A, Skl, Gt4, "SKL GT4e SRV"),
    d(0x193B, Skl, Gt4, "SKL GT4e Halo"),
    d(0x193D, Skl, Gt4, "SKL GT4e WKS"),
    // Kaby Lake: INTEL_KBL_GT1..GT4_IDS.
    d(0x5902, Kbl, Gt1, "KBL GT1 DT"),
    d(0x5906, Kbl, Gt1, "KBL GT1 ULT"),
    d(0x5908, Kbl, Gt1, "KBL GT1 Halo"),
    d(0x590A, Kbl, Gt1, "KBL GT1 SRV"),
    d(0x590B, Kbl, Gt1, "KBL GT1 Halo"),
    d(0x590E, Kbl, Gt1, "KBL GT1 ULX"),
    d(0x5913, Kbl, Gt1, "KBL GT1.5 ULT"),
    d(0x5915, Kbl, Gt1, "KBL GT1.5 ULX"),
    d(0x5912, Kbl, Gt2, "KBL GT2 DT"),
    d(0x5916, Kbl, Gt2, "KBL GT2 ULT"),
    d(0x5917, Kbl, Gt2, "KBL GT2 Mobile"),
    d(0x591A, Kbl, Gt2, "KBL GT2 SRV"),
    d(0x591B, Kbl, Gt2, "KBL GT2 Halo"),
    d(0x591D, Kbl, Gt2, "KBL GT2 WKS"),
    d(0x591E, Kbl, Gt2, "KBL GT2 ULX"),
    d(0x5921, Kbl, Gt2, "KBL GT2F ULT"),
    d(0x5923, Kbl, Gt3, "KBL GT3 ULT"),
    d(0x5926, Kbl, Gt3, "KBL GT3 ULT"),
    d(0x5927, Kbl, Gt3, "KBL GT3 ULT"),
    d(0x593B, Kbl, Gt4, "KBL GT4 Halo"),
    // Amber Lake Y: INTEL_AML_KBL_GT2_IDS, INTEL_AML_CFL_GT2_IDS.
    d(0x591C, Aml, Gt2, "AML GT2 ULX"),
    d(0x87C0, Aml, Gt2, "AML GT2 ULX"),
    d(0x87CA, Aml, Gt2, "AML (CFL) GT2 ULX"),
    // Coffee Lake: INTEL_CFL_S/H/U_*_IDS.
    d(0x3E90, Cfl, Gt1, "CFL-S GT1"),
    d(0x3E93, Cfl, Gt1, "CFL-S GT1"),
    d(0x3E99, Cfl, Gt1, "CFL-S GT1"),
    d(0x3E9C, Cfl, Gt1, "CFL-H GT1"),
    d(0x3E91, Cfl, Gt2, "CFL-S GT2"),
    d(0x3E92, Cfl, Gt2, "CFL-S GT2"),
    d(0x3E96, Cfl, Gt2, "CFL-S GT2"),
    d(0x3E98, Cfl, Gt2, "CFL-S GT2"),
    d(0x3E9A, Cfl, Gt2, "CFL-S GT2"),
    d(0x3E94, Cfl, Gt2, "CFL-H GT2"),
    d(0x3E9B, Cfl, Gt2, "CFL-H GT2"),
    d(0x3EA9, Cfl, Gt2, "CFL-U GT2"),
    d(0x3EA5, Cfl, Gt3, "CFL-U GT3"),
    d(0x3EA6, Cfl, Gt3, "CFL-U GT3"),
    d(0x3EA7, Cfl, Gt3, "CFL-U GT3"),
    d(0x3EA8, Cfl, Gt3, "CFL-U GT3"),
    // Whiskey Lake: INTEL_WHL_U_GT1..GT3_IDS.
    d(0x3EA1, Whl, Gt1, "WHL-U GT1"),
    d(0x3EA4, Whl, Gt1, "WHL-U GT1"),
    d(0x3EA0, Whl, Gt2, "WHL-U GT2"),
    d(0x3EA3, Whl, Gt2, "WHL-U GT2"),
    d(0x3EA2, Whl, Gt3, "WHL-U GT3"),
    // Comet Lake: INTEL_CML_GT1/GT2_IDS, INTEL_CML_U_GT1/GT2_IDS.
    d(0x9BA2, Cml, Gt1, "CML GT1"),
    d(0x9BA4, Cml, Gt1, "CML GT1"),
    d(0x9BA5, Cml, Gt1, "CML GT1"),
    d(0x9BA8, Cml, Gt1, "CML GT1"),
    d(0x9B21, Cml, Gt1, "CML-U GT1"),
    d(0x9BAA, Cml, Gt1, "CML-U GT1"),
    d(0x9BAC, Cml, Gt1, "CML-U GT1"),
    d(0x9BC2, Cml, Gt2, "CML GT2"),
    d(0x9BC4, Cml, Gt2, "CML GT2"),
    d(0x9BC5, Cml, Gt2, "CML GT2"),
    d(0x9BC6, Cml, Gt2, "CML GT2"),
    d(0x9BC8, Cml, Gt2, "CML GT2"),
    d(0x9BE6, Cml, Gt2, "CML GT2"),
    d(0x9BF6, Cml, Gt2, "CML GT2"),
    d(0x9B41, Cml, Gt2, "CML-U GT2"),
    d(0x9BCA, Cml, Gt2, "CML-U GT2"),
    d(0x9BCC, Cml, Gt2, "CML-U GT2"),
];

/// Why a PCI function is not a device this driver drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    /// Not an Intel device (the vendor and device IDs read).
    NotIntel {
        /// The vendor ID read.
        vendor: u16,
        /// The device ID read.
        device: u16,
    },
    /// An Intel device that is not in [`DEVICES`] (not Gen8/Gen9 big core,
    /// or not a GPU at all).
    Unsupported {
        /// The device ID read.
        device: u16,
    },
}

impl core::fmt::Display for IdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            IdError::NotIntel { vendor, device } => {
                write!(f, "{vendor:04x}:{device:04x} is not an Intel device")
            }
            IdError::Unsupported { device } => write!(
                f,
                "8086:{device:04x} is not a supported GPU (i915-lite drives Gen9 SKL/KBL/AML/CFL/WHL/CML and Gen8 BDW)"
            ),
        }
    }
}

/// The supported device with these IDs.
pub fn lookup(vendor: u16, device: u16) -> Result<&'static Device, IdError> {
    if vendor != INTEL_VENDOR {
        return Err(IdError::NotIntel { vendor, device });
    }
    DEVICES.iter().find(|d| d.id == device).ok_or(IdError::Unsupported { device })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_table_holds_every_listed_id() {
        assert_eq!(DEVICES.len(), 104);
        assert_eq!(DEVICES.iter().filter(|d| d.gen() == Gen::Gen8).count(), 18);
    }

    #[test]
    fn broadwell_is_gen8() {
        assert_eq!(lookup(0x8086, 0x1616).unwrap().gen(), Gen::Gen8);
    }

    #[test]
    fn unknown_ids_are_refused_with_what_was_read() {
        // Apollo Lake (Gen9 LP), Ice Lake (Gen11), a NIC.
        for dev in [0x5A84, 0x8A52, 0x10D3] {
            let e = lookup(0x8086, dev).unwrap_err();
            assert_eq!(e, IdError::Unsupported { device: dev });
            assert!(std::format!("{e}").contains("not a supported GPU"));
        }
        assert_eq!(
            lookup(0x1234, 0x1111),
            Err(IdError::NotIntel { vendor: 0x1234, device: 0x1111 })
        );
    }

    #[test]
    fn the_table_has_no_duplicate_ids_and_names_match_platforms() {
        for (i, a) in DEVICES.iter().enumerate() {
            assert!(DEVICES[i + 1..].iter().all(|b| b.id != a.id), "{:#06x} twice", a.id);
            assert!(a.name.starts_with(a.platform.short_name()), "{a:?}");
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
                let any = DEVICES.iter().any(|d| d.platform == p && d.gt == gt);
                assert!(any || (p == Platform::CometLake && gt == Gt::Gt3), "{p:?} {gt:?}");
            }
        }
    }
}
