//! # i915-lite — a minimal Intel Gen8/Gen9/Gen12 integrated GPU driver
//!
//! What gpu-dom needs from an Intel GPU to give guests shadow page tables,
//! and nothing more: find the device, map its GGTT, write GGTT and PPGTT
//! entries, and make the GPU see them. It implements
//! [`gtt::GpuTables`] so that `gtt` learns the GPU's capabilities from here.
//!
//! | module | what |
//! |---|---|
//! | [`ids`] | supported PCI device IDs (Gen8 BDW; Gen9 SKL/KBL/AML/CFL/WHL/CML; Gen12 TGL/RKL/ADL/RPL) and the refused families, with why |
//! | [`pci`] | [`PciConfig`], [`probe`]: identify, BAR0 = GTTMMADR, GGC, memory + bus-master enable |
//! | [`ggc`] | GGC decoding: GGTT size (GGMS), stolen size (GMS) |
//! | [`engines`] | the engines each device has (Gen12: minus the fused-off ones) |
//! | [`regs`] | [`Mmio`], register offsets (`GFX_FLSH_CNTL`, TLB invalidation, fuses) |
//! | [`tlb`] | per-engine PPGTT TLB invalidation, bounded, per generation |
//! | [`ggtt`] | GGTT geometry, entry writes, the flush sequence of each generation |
//! | [`ppgtt`] | [`TableMemory`], the table pool and its scratch chain |
//! | [`pte`] | the Gen8/Gen9 and Gen12 entry formats |
//! | `driver`, `tables` | [`I915`] and its [`gtt::GpuTables`] implementation |
//! | [`selftest`](mod@selftest) | the boot-time hardware self-test |
//! | `model` (feature `model`) | a register-level model of a Gen9 or Gen12 GPU for host tests |
//!
//! # Use (what the image does)
//! ```text
//! let info = i915_lite::probe(&mut pci_config)?;            // identify, enable
//! // map info.gttmmadr (uncached), allocate table pages, then:
//! let mut gpu = I915::new(info, bar, table_memory, Config::default())?;
//! let report = i915_lite::selftest(&mut gpu)?;               // log `report`
//! let engine = gtt::Engine::new(cfg, mapper, gpu);           // caps from the driver
//! ```
//!
//! # Out of scope
//! Command submission (context images, rings, ELSP), forcewake, private PAT
//! programming, the GuC, display, power management and GPU reset; discrete
//! GPUs and Meteor Lake and later (refused at probe). See `README.md`.
//!
//! `no_std` with `alloc` (the table pool's bookkeeping, sized at init);
//! no `unsafe`: MMIO, configuration space and table memory are traits the
//! unikernel implements.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod driver;
pub mod engines;
pub mod ggc;
pub mod ggtt;
pub mod ids;
#[cfg(any(test, feature = "model"))]
pub mod model;
pub mod pci;
pub mod ppgtt;
pub mod pte;
pub mod regs;
pub mod selftest;
mod tables;
pub mod tlb;

pub use driver::{Config, InitError, InvalidateError, Pml4Pointer, Stats, I915};
pub use pci::{probe, DeviceInfo, PciConfig, ProbeError};
pub use ppgtt::TableMemory;
pub use regs::Mmio;
pub use selftest::{selftest, SelfTestError, SelfTestReport};

#[cfg(test)]
mod tests;
