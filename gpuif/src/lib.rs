//! # gpuif — the gpu-dom wire protocol
//!
//! What a frontend and gpu-dom say to each other: a one-page shared ring with
//! Xen's `io/ring.h` layout ([`ring`]), fixed-size request and response slots
//! carrying GPU page-table updates by grant reference ([`wire`]), and the
//! xenstore keys and version negotiation of the device ([`keys`]).
//!
//! Shared by the backend and the frontends; `no_std`, no `unsafe`, no
//! allocation. The decoder works on private copies of slots and rejects
//! anything malformed with a typed error, so a fuzzer can drive it directly.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod keys;
pub mod ring;
pub mod wire;

/// The page size of the ring and of directory pages.
pub const PAGE_SIZE: usize = 4096;

pub use ring::{
    BackRing, FrontRing, FrontRingOf, LocalPage, RingError, SharedPage, Slot, RING_SIZE, SLOT_SIZE,
};
pub use wire::{
    fnv1a64, AttachInfo, DecodeError, Entries, Entry, Op, Request, RequestBuilder, Response,
    Status, MAX_ENTRIES, NO_FAILURE,
};
