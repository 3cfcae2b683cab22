//! Architecture code: the only place (with `xen`'s shared-page accessors)
//! that touches CPU state, page tables and raw memory.

pub mod x86_64;
