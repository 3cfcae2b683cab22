//! The gpu-dom unikernel: PVH boot, memory, console, hypercalls, event
//! channels, timer, grant tables and a small executor, for one vCPU.
//!
//! Pure logic (memory-map parsing, the heap's arithmetic, the event-channel
//! scan, grant entry encoding, the physmap layout, time conversion) is in
//! host-testable modules at the top level. Everything that runs only inside a
//! Xen domain is under `cfg(target_os = "none")`: `arch` (boot, CPU tables,
//! paging, the LAPIC, the allocator) and `xen` (the typed layer over
//! `xen-abi`'s hypercalls). `unsafe` lives only there, each block with a
//! `// SAFETY:` line.
//!
//! CPU access goes through the `x86_64` crate (stable features only): page
//! tables and their flags, `invlpg`, CR0/CR2/CR3/CR4, MSRs (`Msr`,
//! `ApicBase`), port I/O (`Port`), the GDT, TSS and IDT-gate types with
//! `lgdt`/`lidt`/`ltr` and the segment loads, the interrupt frame, and
//! `cli`/`sti`/`hlt`. Hand-written, because the crate has no stable
//! equivalent: the 32-bit PVH entry and the switch to long mode
//! (`arch::x86_64::boot`, assembly), the exception and upcall entry stubs
//! (`traps`, assembly: the crate's typed handlers need the nightly
//! `x86-interrupt` ABI), splitting a 2 MiB page and the pool of table pages
//! (`paging`), `rep outsb` for the console (`cpu`), the deliberate `ud2`
//! (`fault`) and the call into Xen's hypercall page (`xen-abi`). CPUID and
//! the TSC come from `core::arch`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod boot_options;
pub mod control;
pub mod copy_plan;
pub mod evtchn_demux;
pub mod grant_entry;
pub mod heap;
pub mod layout;
pub mod memmap;
pub mod pci;
pub mod time;
pub mod window;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod executor;
#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
pub mod selftest;
#[cfg(target_os = "none")]
pub mod xen;

#[cfg(target_os = "none")]
pub use kernel::{Kernel, StepError};
