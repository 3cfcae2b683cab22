//! # gtt — the shadow GPU page-table engine
//!
//! The only code in gpu-dom that creates GPU-visible mappings. (under construction)
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod platform;
pub mod types;

pub use platform::{
    GpuCaps, GpuTables, GrantMapError, GrantMapRequest, GrantMapper, GrantMapping, MappingCap,
    TablePage,
};
pub use types::{Access, BusAddr, ContextId, DomId, GrantRef, Level};
