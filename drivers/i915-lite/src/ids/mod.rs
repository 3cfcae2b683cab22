//! Which devices this driver drives, by PCI device ID: Intel (vendor
//! `0x8086`) integrated GPUs of Gen8 (Broadwell), Gen9 "big core" (Skylake
//! to Comet Lake) and Gen12 Xe-LP (Tiger Lake, Rocket Lake, Alder Lake
//! S/P/N, Raptor Lake S/P/U).
//!
//! Known Intel GPUs that are not driven are listed in [`refused`] with the
//! reason, so the probe can say which family it found and why it stops
//! (discrete parts with local memory; Meteor Lake and later; Gen9 LP,
//! Cherryview, Gen10, Gen11).
//!
//! # Source
//! Linux `include/drm/intel/pciids.h` (before 6.11:
//! `include/drm/i915_pciids.h`); each table's module names its macros. The
//! engines each platform has are in [`crate::engines`].

mod gen12;
mod gen9;
pub mod refused;

pub use refused::RefusalReason;

/// The PCI vendor ID of Intel.
pub const INTEL_VENDOR: u16 = 0x8086;

/// Graphics generation, as the PRM volumes and i915's `GRAPHICS_VER` split them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gen {
    /// Broadwell.
    Gen8,
    /// Skylake and its derivatives up to Comet Lake.
    Gen9,
    /// Xe-LP integrated (graphics IP 12.0): Tiger Lake to Raptor Lake.
    Gen12,
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
    /// TGL (U, Y and H).
    TigerLake,
    /// RKL (desktop Xe-LP on a 14 nm die).
    RocketLake,
    /// ADL-S (desktop).
    AlderLakeS,
    /// ADL-P (mobile).
    AlderLakeP,
    /// ADL-N (i915: an ADL-P subplatform).
    AlderLakeN,
    /// RPL-S (i915: an ADL-S subplatform).
    RaptorLakeS,
    /// RPL-P (i915: an ADL-P subplatform).
    RaptorLakeP,
    /// RPL-U (i915: an ADL-P subplatform).
    RaptorLakeU,
}

impl Platform {
    /// The graphics generation of the platform.
    pub const fn gen(self) -> Gen {
        match self {
            Platform::Broadwell => Gen::Gen8,
            Platform::Skylake
            | Platform::KabyLake
            | Platform::AmberLake
            | Platform::CoffeeLake
            | Platform::WhiskeyLake
            | Platform::CometLake => Gen::Gen9,
            _ => Gen::Gen12,
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
            Platform::TigerLake => "TGL",
            Platform::RocketLake => "RKL",
            Platform::AlderLakeS => "ADL-S",
            Platform::AlderLakeP => "ADL-P",
            Platform::AlderLakeN => "ADL-N",
            Platform::RaptorLakeS => "RPL-S",
            Platform::RaptorLakeP => "RPL-P",
            Platform::RaptorLakeU => "RPL-U",
        }
    }

    /// Whether i915 counts the platform as `IS_TIGERLAKE`, `IS_ROCKETLAKE`,
    /// `IS_ALDERLAKE_S` or `IS_ALDERLAKE_P` (the RPL and ADL-N parts are
    /// subplatforms of those): the platforms of Wa_2207587034 in
    /// `gt/intel_tlb.c` `mmio_invalidate_full`.
    pub const fn needs_oa_tlb_invalidation(self) -> bool {
        matches!(self.gen(), Gen::Gen12)
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
    /// `pciids.h` gives no GT level for the platform (RKL, ADL, RPL).
    Unlisted,
}

impl Gt {
    /// Whether a Gen8/Gen9 part has a second video decode engine (VCS1),
    /// which i915 gives to GT3 and GT4 (`bdw_gt3_info`, `skl_gt3_info`,
    /// `kbl_gt3_info`, `cfl_gt3_info`). Gen12 engines come from the
    /// platform instead ([`crate::engines`]).
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

/// Every device ID this driver accepts: the Gen8/Gen9 table, then Gen12.
pub fn devices() -> impl Iterator<Item = &'static Device> {
    gen9::GEN9.iter().chain(gen12::GEN12)
}

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
    /// An Intel GPU this driver knows and does not drive: the family and why.
    Refused {
        /// The device ID read.
        device: u16,
        /// The family it belongs to (e.g. "DG2 (Arc A-series, discrete Xe-HPG)").
        family: &'static str,
        /// Why it is not driven.
        reason: RefusalReason,
    },
    /// An Intel device in neither table (not a GPU this driver knows of).
    Unsupported {
        /// The device ID read.
        device: u16,
    },
}

/// What the driver drives, for messages.
const DRIVES: &str = "i915-lite drives integrated Gen8 BDW, Gen9 SKL/KBL/AML/CFL/WHL/CML \
                      and Gen12 TGL/RKL/ADL/RPL";

impl core::fmt::Display for IdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            IdError::NotIntel { vendor, device } => {
                write!(f, "{vendor:04x}:{device:04x} is not an Intel device")
            }
            IdError::Refused { device, family, reason } => write!(
                f,
                "8086:{device:04x} is {family}, not driven: {}; {DRIVES}",
                reason.explain()
            ),
            IdError::Unsupported { device } => {
                write!(f, "8086:{device:04x} is not a supported GPU ({DRIVES})")
            }
        }
    }
}

/// The supported device with these IDs.
pub fn lookup(vendor: u16, device: u16) -> Result<&'static Device, IdError> {
    if vendor != INTEL_VENDOR {
        return Err(IdError::NotIntel { vendor, device });
    }
    if let Some(d) = devices().find(|d| d.id == device) {
        return Ok(d);
    }
    match refused::family(device) {
        Some(f) => Err(IdError::Refused { device, family: f.name, reason: f.reason }),
        None => Err(IdError::Unsupported { device }),
    }
}

#[cfg(test)]
mod tests;
