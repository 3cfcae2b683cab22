//! # mgmt-endpoint — gpu-dom's management endpoint
//!
//! | module | what |
//! |---|---|
//! | [`metrics`] | [`Snapshot`]: plain numbers the image copies out of the service, and their rendering in the Prometheus text exposition format 0.0.4 |
//! | [`server`] | [`Server`]: smoltcp TCP sockets on the management address, each request parsed by `mgmt-http`, bounded in connections, size and time, worked on a budget per main-loop round |
//!
//! Nothing here changes gpu-dom's state: a request can only read a
//! [`Snapshot`], which the image fills from the service when a `/metrics`
//! request asks for it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod metrics;
pub mod server;

pub use metrics::{GuestFigures, NetFigures, PoolFigures, Snapshot};
pub use server::{Limits, Server, ServerStats};
