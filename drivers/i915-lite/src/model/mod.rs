//! A register-level model of a Gen8/Gen9 or Gen12 integrated GPU, built
//! from the same documentation as the driver (PRM Skylake Vol. 2c and 5;
//! the 12th Generation Core datasheet Vol. 2; PCI 3.0; Linux i915 where the
//! public documentation is silent, each rule saying which), for host tests
//! here and in the rest of gpu-dom: its PCI configuration space
//! ([`ModelPci`]), its GTTMMADR BAR with the GGTT, the flush and TLB
//! invalidation registers ([`ModelBar`], [`TlbModel`]), and table memory
//! with the GPU's PPGTT walk ([`ModelMemory`]).
//!
//! The generation, and with it the entry format, the GGTT publication rule
//! and the TLB registers, follows from the device ID ([`ModelGpu::new`]).
//!
//! It is *a model*: it checks that the driver follows the documented
//! sequences (BAR sizing with decoding off, the generation's GGTT flush
//! before the GPU uses an entry, engine TLBs invalidated after table
//! changes, no access outside the BAR or the GGTT, no entry the hardware
//! would misread) and records what was done. Passing against it says
//! nothing about timing, power wells, forcewake or errata of real silicon.

mod bar;
mod memory;
mod pci;
mod tlb;

pub use bar::{BarState, BarViolation, Flush, ModelBar};
pub use memory::{MemState, ModelMemory, Walk};
pub use pci::{ModelPci, PciViolation};
pub use tlb::TlbModel;

use crate::engines::Engines;
use crate::ggc::Ggc;
use crate::ids::{self, Gen, INTEL_VENDOR};
use crate::pte::Format;

/// Where the model puts BAR0 (above 4 GiB, as firmware often does).
pub const MODEL_BAR0: u64 = 0x40_0000_0000;
/// Where the model's table memory starts (above 4 GiB, so the upper dword
/// of every entry is exercised).
pub const MODEL_TABLES: u64 = 0x1_0000_0000;

/// A whole model device: configuration space, BAR, table memory.
pub struct ModelGpu {
    /// PCI configuration space.
    pub pci: ModelPci,
    /// The GTTMMADR BAR (a shared handle).
    pub bar: ModelBar,
    /// Table memory (a shared handle).
    pub mem: ModelMemory,
}

impl ModelGpu {
    /// A device `device` whose GGC is `ggc` (its GGMS sizes the GGTT, 0
    /// gives a GGTT of none), a 16 MiB BAR0 and `table_pages` pages of
    /// table memory. A supported ID gets its generation's rules and its
    /// platform's engines; any other ID a Gen9 GT2's (for probe tests).
    pub fn new(device: u16, ggc: Ggc, table_pages: u32) -> Self {
        Self::with_media_fuse(device, ggc, table_pages, 0)
    }

    /// As [`ModelGpu::new`], with `GEN11_GT_VEBOX_VDBOX_DISABLE` reading
    /// `media_fuse` on a Gen12 device, whose fused-off media engines are
    /// then absent.
    pub fn with_media_fuse(device: u16, ggc: Ggc, table_pages: u32, media_fuse: u32) -> Self {
        let (gen, engines) = match ids::lookup(INTEL_VENDOR, device) {
            Ok(d) if d.gen() == Gen::Gen12 => {
                (d.gen(), Engines::of(d).without_fused_off(media_fuse))
            }
            Ok(d) => (d.gen(), Engines::of(d)),
            Err(_) => {
                let skl = ids::lookup(INTEL_VENDOR, 0x1912).expect("SKL GT2 is supported");
                (Gen::Gen9, Engines::of(skl))
            }
        };
        let entries = ggc.ggtt_bytes().unwrap_or(0) / 8;
        let mem = ModelMemory::new(MODEL_TABLES, table_pages, Format::of(gen));
        ModelGpu {
            pci: ModelPci::new(device, ggc, MODEL_BAR0),
            bar: ModelBar::new(16 << 20, entries, gen, &engines, media_fuse, mem.clone()),
            mem,
        }
    }

    /// A Skylake GT2 desktop (0x1912), 2 MiB of GGTT (256 Ki entries),
    /// 64 MiB stolen, GGC locked, 64 table pages.
    pub fn skylake_gt2() -> Self {
        Self::new(0x1912, Ggc::from_fields(1, 2, true), 64)
    }

    /// A Tiger Lake UY GT2 (0x9A49), otherwise as [`ModelGpu::skylake_gt2`].
    pub fn tiger_lake_gt2() -> Self {
        Self::new(0x9A49, Ggc::from_fields(1, 2, true), 64)
    }
}
