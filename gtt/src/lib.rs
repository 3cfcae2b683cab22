//! # gtt — the shadow GPU page-table engine
//!
//! The only code in gpu-dom that creates GPU-visible mappings. Guests name
//! pages by grant reference; `gtt` asks the [`GrantMapper`] to map each grant
//! into the backend's own physmap (what the backend's strict IOMMU context
//! lets the GPU reach) and writes the resulting bus address into a shadow GGTT
//! entry (a slice of the global GTT per guest) or a PPGTT leaf (per-guest
//! contexts whose directory levels the backend owns) through the
//! [`GpuTables`] writer. No grant, no mapping.
//!
//! It does no I/O and holds no `unsafe`: it is driven through those two traits,
//! which require a [`MappingCap`] that only this crate can make.
//!
//! ## Isolation invariants
//! - Every non-scratch shadow entry of guest G holds the bus address of a
//!   grant G made to the backend, mapped with at least the entry's access
//!   (read-only grants give read-only entries; tables that cannot express
//!   read-only refuse them).
//! - A guest's indexes, addresses and contexts resolve only inside its own
//!   slice and its own contexts; grant lookups are keyed by its own domid.
//! - Clearing precedes invalidation, which precedes unmapping; a replaced
//!   entry is rewritten before the old grant's reference is dropped.
//! - `detach` leaves nothing of the guest: entries, grants, tables, contexts.
//! - Every refusal is a typed [`Refusal`]; no input panics.
//!
//! Capacities are fixed at [`Engine::new`]; no operation allocates.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod counters;
mod engine;
mod error;
mod ggtt;
mod grants;
pub mod platform;
mod pools;
mod ppgtt;
mod tables;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;

pub use counters::{Counters, GuestStats, Released};
pub use engine::{BatchOutcome, Config, Engine, Limits, MAX_CONTEXTS_PER_GUEST};
pub use error::{Refusal, RefusalKind};
pub use ggtt::GgttEntry;
pub use platform::{
    GpuCaps, GpuTables, GrantMapError, GrantMapRequest, GrantMapper, GrantMapping, MappingCap,
    TablePage,
};
pub use pools::{Pool, PoolUse};
pub use ppgtt::{valid_gpu_addr, PpgttEntry};
pub use types::{Access, BusAddr, ContextId, DomId, GrantRef, Level};

#[cfg(test)]
mod tests;
