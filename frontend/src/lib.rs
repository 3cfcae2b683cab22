//! # frontend — the guest side of a gpu-dom vGPU
//!
//! Connects to gpu-dom over xenbus, grants pages, sends GPU page-table
//! updates in batches over the shared ring (`gpuif`), matches responses, and
//! disconnects, ending every grant. One core, three platforms:
//!
//! | platform | where | what provides pages, grants, events |
//! |---|---|---|
//! | `guests/test-guest` | a PVH unikernel domU | its grant table, `EVTCHNOP_alloc_unbound`, `SCHEDOP_poll` |
//! | [`linux`] (feature `std`) | Linux user space (`vgpu-front`) | `/dev/xen/gntalloc`, `/dev/xen/evtchn`, xenstored |
//! | host tests | the platform model | model grant tables; the real backend runs when the frontend waits |
//!
//! | module | what |
//! |---|---|
//! | [`platform`] | the [`Platform`] trait: pages + grants, ports, clock, sleeping |
//! | [`device`] | [`Frontend`]: discovery, handshake, watches, waiting, teardown |
//! | [`request`] | requests, directory pages, batches, responses by id |
//! | [`pipeline`] | [`Pipeline`]: batches queued, several requests in flight, responses matched by id |
//! | [`flood`] | requests posted without waiting, a notification every round (mode busy) |
//! | [`record`] | what the backend confirmed it mapped, by page (the guest is the source of truth) |
//! | [`reconnect`] | the backend died: release its grants, wait for a new one, reconnect, replay |
//! | [`scenario`] | what the test guest and `vgpu-front attach-test` do (good, hostile, busy, unattached), with their console markers |
//! | [`error`] | [`Error`] |
//!
//! The core is `no_std` + `alloc` and has no `unsafe`; with feature `std`,
//! the Linux platform's system calls are confined to `linux::sys`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![cfg_attr(not(feature = "std"), forbid(unsafe_code))]
#![cfg_attr(feature = "std", deny(unsafe_code))]

extern crate alloc;

pub mod device;
pub mod error;
pub mod flood;
pub mod pipeline;
pub mod platform;
pub mod reconnect;
pub mod record;
pub mod request;
pub mod scenario;

#[cfg(all(feature = "std", target_os = "linux"))]
pub mod linux;

pub use device::{Device, FrontError, Frontend, Happening, Options, Teardown};
pub use error::Error;
pub use flood::{Flood, FloodRound};
pub use pipeline::{Abandoned, BatchOutcome, Pipeline, Ticket};
pub use platform::{DomId, EndAccessError, Granted, PageId, Platform, Port};
pub use reconnect::{Lost, Reconnected, Released};
pub use request::BatchResult;
