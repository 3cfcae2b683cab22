//! # i915-lite — a minimal Intel Gen8/Gen9 GPU driver
//!
//! What exists so far:
//! - [`pte`]: the Gen8+ 64-bit GGTT/PPGTT entry format (encode and decode),
//!   used by the driver's table writer and by the host GPU model.
//!
//! PCI identification, BAR mapping, GGTT/PPGTT writes behind an MMIO trait,
//! TLB invalidation and reset come later.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod pte;
