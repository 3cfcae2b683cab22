//! x86_64: boot, CPU tables, paging, LAPIC, allocator, and the Rust entry.

pub mod alloc;
pub mod boot;
pub mod cpu;
pub mod fault;
pub mod lapic;
pub mod paging;
pub mod start;
pub mod traps;
