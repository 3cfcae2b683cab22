//! x86_64: boot, CPU tables, paging, LAPIC, allocator, PCI configuration
//! ports, uncached MMIO mappings, and the Rust entry.

pub mod alloc;
pub mod boot;
pub mod cpu;
pub mod fault;
pub mod lapic;
pub mod mmio;
pub mod paging;
pub mod pci_io;
pub mod start;
pub mod traps;
