//! GGC, the GMCH Graphics Control register: PCI configuration offset `0x50`
//! of the GPU (device 0:2.0), 16 bits, written by the firmware and locked.
//! It says how big the GGTT is (GGMS) and how much RAM the firmware set
//! aside for the GPU (GMS, "stolen" or Data Stolen Memory).
//!
//! # Sources
//! - Intel PRM, Skylake, Vol. 2c "Registers", "GGC — GMCH Graphics Control
//!   Register" (bits 15:8 GMS, 7:6 GGMS, 1 IVD, 0 GGCLCK); Broadwell Vol. 2c
//!   the same layout.
//! - Linux `include/drm/intel/i915_drm.h`: `SNB_GMCH_CTRL` (0x50),
//!   `BDW_GMCH_GGMS_SHIFT`/`_MASK` (6, 0x3), `BDW_GMCH_GMS_SHIFT`/`_MASK`
//!   (8, 0xff); `gt/intel_ggtt.c` `gen8_get_total_gtt_size` (GGMS `n` != 0
//!   means `1 << n` MiB of GGTT entries; `gen8_gmch_probe` uses it for every
//!   generation from 9 on, Gen12 included); `arch/x86/kernel/early-quirks.c`
//!   `gen8_stolen_size` (GMS × 32 MiB) and `gen9_stolen_size` (below `0xf0`
//!   GMS × 32 MiB, from `0xf0` 4 MiB steps starting at 4 MiB), which
//!   `gen11_early_ops` also uses for TGL, RKL, ADL-S/P/N and RPL-S/U/P
//!   (`intel_early_ids`).
//! - GGC keeps this layout on Gen12: the Core Ultra 200H/U "CFG and MEM
//!   Registers" (Intel doc. 844345), "Graphics Control (GGC_0_0_0_PCI) –
//!   Offset 50", has GMS 15:8, GGMS 7:6, IVD 1, GGCLCK 0, as the 7th
//!   Generation datasheet Vol. 2, 3.13, has; QEMU's `vfio/igd` commit
//!   ea652c2beeae cites the 12th Generation datasheet Vol. 2, 4.1.28, for
//!   device 2's copy at configuration offset 0x50 (which this driver reads).
//!
//! # Decoding choices
//! - GGMS 0 means "no GGTT": the driver cannot work and says so.
//! - Gen9 GMS `0xff` is past the PRM's table (`0xf0`..=`0xfe` are 4..=60 MiB);
//!   it decodes as "reserved" instead of Linux's extrapolated 64 MiB. The
//!   stolen size is only logged here, so nothing depends on it.

use crate::ids::Gen;

/// PCI configuration offset of GGC (`SNB_GMCH_CTRL`).
#[doc(alias = "SNB_GMCH_CTRL")]
pub const GGC_OFFSET: u16 = 0x50;

mod field {
    pub const GGCLCK: u16 = 1 << 0;
    pub const IVD: u16 = 1 << 1;
    pub const GGMS_SHIFT: u16 = 6;
    pub const GGMS_MASK: u16 = 0x3;
    pub const GMS_SHIFT: u16 = 8;
    pub const GMS_MASK: u16 = 0xff;
}

const MIB: u64 = 1 << 20;

/// The raw GGC value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ggc(pub u16);

/// What GGC says, decoded for one generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GgcInfo {
    /// Bytes of GGTT entries (2, 4 or 8 MiB); entries = bytes / 8.
    pub ggtt_bytes: u32,
    /// Bytes of stolen memory, or `None` for a reserved GMS encoding.
    pub stolen_bytes: Option<u64>,
    /// The raw GMS field (for the log).
    pub gms: u8,
    /// GGCLCK: the firmware locked the register.
    pub locked: bool,
    /// IVD: the IGD's legacy VGA decode is disabled.
    pub vga_disabled: bool,
}

impl GgcInfo {
    /// GGTT entries (8 bytes each).
    pub const fn ggtt_entries(&self) -> u32 {
        self.ggtt_bytes / 8
    }
}

/// Why GGC cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgcError {
    /// GGMS is 0: the firmware gave the GPU no GGTT (the raw GGC value).
    NoGgtt(u16),
}

impl core::fmt::Display for GgcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            GgcError::NoGgtt(raw) => write!(
                f,
                "GGC {raw:#06x} has GGMS=0 (no GGTT): enable the integrated GPU in the firmware setup"
            ),
        }
    }
}

impl Ggc {
    /// The GGMS field (bits 7:6).
    pub const fn ggms(self) -> u8 {
        ((self.0 >> field::GGMS_SHIFT) & field::GGMS_MASK) as u8
    }

    /// The GMS field (bits 15:8).
    pub const fn gms(self) -> u8 {
        ((self.0 >> field::GMS_SHIFT) & field::GMS_MASK) as u8
    }

    /// GGTT bytes for GGMS (Gen8+: `1 << ggms` MiB), `None` for 0.
    pub const fn ggtt_bytes(self) -> Option<u32> {
        match self.ggms() {
            0 => None,
            n => Some(1 << (20 + n as u32)),
        }
    }

    /// Stolen bytes for GMS on `gen`, `None` for a reserved encoding.
    pub const fn stolen_bytes(self, gen: Gen) -> Option<u64> {
        let gms = self.gms() as u64;
        match gen {
            Gen::Gen8 => Some(gms * 32 * MIB),
            Gen::Gen9 | Gen::Gen12 => match gms {
                0..=0xef => Some(gms * 32 * MIB),
                0xf0..=0xfe => Some((gms - 0xf0 + 1) * 4 * MIB),
                _ => None,
            },
        }
    }

    /// Decodes every field for `gen`.
    pub const fn decode(self, gen: Gen) -> Result<GgcInfo, GgcError> {
        let Some(ggtt_bytes) = self.ggtt_bytes() else {
            return Err(GgcError::NoGgtt(self.0));
        };
        Ok(GgcInfo {
            ggtt_bytes,
            stolen_bytes: self.stolen_bytes(gen),
            gms: self.gms(),
            locked: self.0 & field::GGCLCK != 0,
            vga_disabled: self.0 & field::IVD != 0,
        })
    }

    /// The GGC value with these fields (for models and tests).
    pub const fn from_fields(ggms: u8, gms: u8, locked: bool) -> Ggc {
        Ggc(((gms as u16) << field::GMS_SHIFT)
            | (((ggms as u16) & field::GGMS_MASK) << field::GGMS_SHIFT)
            | if locked { field::GGCLCK } else { 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ggms_value_decodes_to_its_ggtt_size() {
        assert_eq!(Ggc::from_fields(0, 0, false).decode(Gen::Gen9), Err(GgcError::NoGgtt(0)));
        for (ggms, mib) in [(1u8, 2u32), (2, 4), (3, 8)] {
            let info = Ggc::from_fields(ggms, 1, true).decode(Gen::Gen9).unwrap();
            assert_eq!(info.ggtt_bytes, mib << 20);
            assert_eq!(info.ggtt_entries(), (mib << 20) / 8);
        }
    }

    #[test]
    fn ggms_is_two_bits_and_ignores_gms() {
        // GMS bit 0 (GGC bit 8) must not leak into GGMS.
        let g = Ggc(0x01C0);
        assert_eq!((g.ggms(), g.gms()), (3, 1));
        assert_eq!(g.ggtt_bytes(), Some(8 << 20));
    }

    #[test]
    fn every_gen9_gms_value_decodes() {
        for gms in 0..=0xffu8 {
            let s = Ggc::from_fields(3, gms, false).stolen_bytes(Gen::Gen9);
            let want = match gms {
                0..=0xef => Some(u64::from(gms) * 32 * MIB),
                0xf0..=0xfe => Some((u64::from(gms) - 0xef) * 4 * MIB),
                0xff => None,
            };
            assert_eq!(s, want, "gms {gms:#x}");
        }
        let s = |gms| Ggc::from_fields(3, gms, false).stolen_bytes(Gen::Gen9);
        assert_eq!(s(0x01), Some(32 * MIB));
        assert_eq!(s(0x02), Some(64 * MIB));
        assert_eq!(s(0xf0), Some(4 * MIB));
        assert_eq!(s(0xfe), Some(60 * MIB));
    }

    #[test]
    fn every_gen8_gms_value_is_32_mib_steps() {
        for gms in 0..=0xffu8 {
            let s = Ggc::from_fields(3, gms, false).stolen_bytes(Gen::Gen8);
            assert_eq!(s, Some(u64::from(gms) * 32 * MIB));
        }
    }

    #[test]
    fn gen12_decodes_gms_and_ggms_as_gen9() {
        for raw in [0x00C1, 0x02C1, 0xF0C3, 0xFEC0, 0xFFC0, 0x0140] {
            assert_eq!(Ggc(raw).decode(Gen::Gen12), Ggc(raw).decode(Gen::Gen9), "{raw:#06x}");
        }
    }

    #[test]
    fn lock_and_vga_bits_are_reported() {
        let info = Ggc(0x02C3).decode(Gen::Gen9).unwrap();
        assert!(info.locked && info.vga_disabled);
        assert_eq!((info.gms, info.stolen_bytes), (2, Some(64 * MIB)));
        let info = Ggc(0x02C0).decode(Gen::Gen9).unwrap();
        assert!(!info.locked && !info.vga_disabled);
    }
}
