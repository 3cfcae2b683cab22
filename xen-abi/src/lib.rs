//! The Xen guest ABI, as data: types and constants from Xen's
//! `xen/include/public` headers (Xen 4.17), plus one thin wrapper per
//! hypercall that gpu-dom uses, called through the hypercall page.
//!
//! In the style of `hermit-abi`: nothing here decides anything. Every struct
//! is `#[repr(C)]` with the header's field names, a doc comment naming the
//! header it comes from, and its size checked at compile time. The safe,
//! typed layer on top lives in the `unikernel` crate.
//!
//! # Invariants
//! - Layouts are those of the x86_64 ABI (`xen_ulong_t` = `u64`,
//!   `xen_pfn_t` = `u64`, guest handles are 64-bit pointers).
//! - The only `unsafe` code is in [`hypercall`].
#![cfg_attr(not(test), no_std)]

pub mod console;
pub mod cpuid;
pub mod elfnote;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
#[cfg(target_arch = "x86_64")]
pub mod hypercall;
pub mod memory;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod vcpu;
pub mod version;
pub mod xen;

pub use xen::DomId;
