//! # i915-lite — a minimal Intel Gen8/Gen9 GPU driver
//!
//! What gpu-dom needs from an Intel GPU to give guests shadow page tables,
//! and nothing more: find the device, map its GGTT, write GGTT and PPGTT
//! entries, and make the GPU see them. It implements
//! [`gtt::GpuTables`] so that `gtt` learns the GPU's capabilities from here.
//!
//! | module | what |
//! |---|---|
//! | [`ids`] | supported PCI device IDs (Gen9 SKL/KBL/AML/CFL/WHL/CML, Gen8 BDW) |
//! | [`pci`] | [`PciConfig`], [`probe`]: identify, BAR0 = GTTMMADR, GGC, memory + bus-master enable |
//! | [`ggc`] | GGC decoding: GGTT size (GGMS), stolen size (GMS) |
//! | [`regs`] | [`Mmio`], register offsets (`GFX_FLSH_CNTL`, engine TLB control) |
//! | [`ggtt`] | GGTT geometry, entry writes, the flush sequence |
//! | [`ppgtt`] | [`TableMemory`], the table pool and its scratch chain |
//! | [`pte`] | the Gen8 64-bit entry format |
//! | `driver`, `tables` | [`I915`] and its [`gtt::GpuTables`] implementation |
//! | [`selftest`](mod@selftest) | the boot-time hardware self-test |
//! | `model` (feature `model`) | a register-level model of a Gen9 GPU for host tests |
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
//! programming, display, power management and GPU reset. See `README.md`.
//!
//! `no_std` with `alloc` (the table pool's bookkeeping, sized at init);
//! no `unsafe`: MMIO, configuration space and table memory are traits the
//! unikernel implements.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod driver;
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

pub use driver::{Config, InitError, Pml4Pointer, Stats, I915};
pub use pci::{probe, DeviceInfo, PciConfig, ProbeError};
pub use ppgtt::TableMemory;
pub use regs::Mmio;
pub use selftest::{selftest, SelfTestError, SelfTestReport};
pub use tables::LEAF_PPAT;

#[cfg(test)]
mod tests;
