//! # platform-model — Xen, a strict IOMMU and a GPU, modelled on the host
//!
//! A host model of the platform gpu-dom runs on, for integration tests. It
//! implements the two traits `gtt` drives — [`gtt::GrantMapper`]
//! ([`ModelMapper`]) and [`gtt::GpuTables`] ([`ModelGpu`]) — on top of:
//!
//! - [`memory`]: domains, each with a p2m of 4 KiB frames in one global store;
//! - [`grants`]: Xen grant tables v1 with Xen's checks and `GNTST_*` statuses
//!   (map, unmap, `GNTTABOP_copy`, end of access, zombie domains);
//! - [`physmap`]: the backend's RAM, its grant-mapping window and its strict
//!   IOMMU (only its RAM and currently mapped grants resolve; read-only
//!   mappings refuse writes);
//! - [`gpu`] and [`walk`]: a Gen8/Gen9 GPU with a GGTT, PPGTT tables in
//!   backend RAM written with `i915-lite`'s PTE encoder, scratch page and
//!   tables, a TLB that serves stale translations until `invalidate`, and
//!   reads/writes that walk the tables and reach memory through the IOMMU;
//! - [`trace`]: events in order, counters, and violations detected as they
//!   happen (unmapping a grant the TLB or a table still reaches, breaking the
//!   trait contracts);
//! - [`checker`]: [`check_isolation`], which proves the DESIGN.md isolation
//!   invariants on the current state and reports the first problem.
//!
//! Every handle ([`Platform`], [`Guest`], [`ModelMapper`], [`ModelGpu`])
//! shares one world (`Rc<RefCell<..>>`), so a test holds them all at once.
//!
//! # Invariants
//! - Nothing in the model panics on anything the backend or a guest does:
//!   refusals are typed errors, contract breaches are recorded
//!   [`Violation`]s, and the checker returns a [`Problem`].
//! - The model decides nothing from the backend's bookkeeping: reachability
//!   is computed from the table bytes and the TLB, permission from the grant
//!   tables and the IOMMU.
#![forbid(unsafe_code)]

pub mod checker;
pub mod gpu;
pub mod grants;
pub mod memory;
pub mod physmap;
pub mod platform;
mod summary;
pub mod trace;
pub mod walk;

#[cfg(test)]
mod tests;

pub use checker::{check_isolation, CheckStats, GuestView, Problem};
pub use gpu::ModelGpu;
pub use grants::{ActiveGrant, GrantEntryV1, GrantError};
pub use memory::{DomainState, FrameId, Gfn, MemError, PAGE_SIZE};
pub use physmap::{IommuFault, ModelMapper, WindowMapping};
pub use platform::{ConfigError, Guest, Platform, PlatformConfig, Snapshot};
pub use trace::{Counters, Event, Location, Space, Violation};
pub use walk::{GpuFault, Hit, Translation};
