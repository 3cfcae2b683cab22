//! # netfront — a Xen network frontend (`io/netif.h`)
//!
//! gpu-dom's management interface: one vif, connected to dom0's
//! `xen-netback`, carrying the read-only management endpoint.
//!
//! | module | what |
//! |---|---|
//! | [`wire`] | the ring slots: tx/rx requests and responses, flags, statuses |
//! | [`nic`] | [`Netfront`]: granted rx buffers kept posted, tx buffers and completions, the backend's bad answers; its rings are `gpuif`'s `io/ring.h` front ring ([`gpuif::FrontRingOf`]) with netif's slot sizes |
//! | [`handshake`] | the vif's xenstore configuration and the xenbus handshake |
//! | `phy` (feature `smoltcp`) | [`Netfront`] as a smoltcp `phy::Device` |
//!
//! The crate does no I/O of its own: pages come in as
//! [`gpuif::SharedPage`]s with their grant references already made, xenstore
//! is a [`xenbus::Client`] over any transport, and the caller owns the event
//! channel and the waiting. That keeps it host-testable against a model of
//! netback (`tests/backend_model.rs`) and an in-memory xenstored.
//!
//! Negotiated with the backend: see [`handshake::FEATURES`] (receive by
//! copy, rx notifications, one queue, one event channel; no checksum
//! offload, no scatter-gather, no GSO).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod handshake;
pub mod nic;
#[cfg(feature = "smoltcp")]
pub mod phy;
pub mod wire;

pub use handshake::{Handshake, HandshakeError, Ipv4Cidr, Next, VifConfig};
pub use nic::{BadAnswer, Buffer, NetError, NetStats, Netfront, TxError};
