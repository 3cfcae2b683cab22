//! # xenstored-model — a small xenstored for host tests
//!
//! Speaks the `xs_wire.h` protocol over [`xenbus::Transport`], so the real
//! `xenbus::Client` code of the tools and of the backend service runs
//! against it: nodes with permission lists (owner first, inherited on
//! creation, as C xenstored does), transactions with EAGAIN on conflicts,
//! watches, `GET_DOMAIN_PATH`, and a Unix-socket front for testing binaries.
//! Simulated domains are closures run whenever a client would block.
#![forbid(unsafe_code)]

pub mod socket;
pub mod tree;
pub mod xenstored;

pub use xenstored::{Conn, Counters, Model, Snapshot, Xenstored};
