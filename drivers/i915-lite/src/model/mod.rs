//! A register-level model of a Gen9 GPU, built from the same documentation
//! as the driver (PRM Skylake Vol. 2c and 5; PCI 3.0), for host tests here
//! and in the rest of gpu-dom: its PCI configuration space ([`ModelPci`]),
//! its GTTMMADR BAR with the GGTT and the flush/TLB registers
//! ([`ModelBar`]), and table memory with the GPU's PPGTT walk
//! ([`ModelMemory`]).
//!
//! It is *a model*: it checks that the driver follows the documented
//! sequences (BAR sizing with decoding off, flush + posting read before the
//! GPU uses a GGTT entry, no access outside the BAR or the GGTT) and records
//! what was done. Passing against it says nothing about timing, power wells,
//! forcewake or errata of real silicon.

mod bar;
mod memory;
mod pci;

pub use bar::{BarState, BarViolation, Flush, ModelBar};
pub use memory::{MemState, ModelMemory, Walk};
pub use pci::{ModelPci, PciViolation};

use crate::ggc::Ggc;

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
    /// table memory.
    pub fn new(device: u16, ggc: Ggc, table_pages: u32) -> Self {
        let entries = ggc.ggtt_bytes().unwrap_or(0) / 8;
        ModelGpu {
            pci: ModelPci::new(device, ggc, MODEL_BAR0),
            bar: ModelBar::new(16 << 20, entries),
            mem: ModelMemory::new(MODEL_TABLES, table_pages),
        }
    }

    /// A Skylake GT2 desktop (0x1912), 2 MiB of GGTT (256 Ki entries),
    /// 64 MiB stolen, GGC locked, 64 table pages.
    pub fn skylake_gt2() -> Self {
        Self::new(0x1912, Ggc::from_fields(1, 2, true), 64)
    }
}
