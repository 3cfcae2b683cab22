//! # xenbus — a xenstore client for gpu-dom
//!
//! Speaks the xenstore protocol of Xen's `xen/include/public/io/xs_wire.h`
//! (semantics in `docs/misc/xenstore.txt`) over any byte transport:
//!
//! - inside a domain, the shared xenstore ring page (`struct
//!   xenstore_domain_interface`, see [`ring`]), driven through the small
//!   [`StorePage`] trait that the unikernel implements with volatile accesses;
//! - in dom0 tools (feature `std`), the xenstored Unix socket or
//!   `/dev/xen/xenbus` (see [`std_io`]).
//!
//! Layers, bottom up (one idea per module):
//!
//! | module | what |
//! |---|---|
//! | [`wire`] | the message view [`Message`], [`MsgType`], request emission ([`Request`]), reply decoding ([`Reply`], [`XsError`], [`NulList`], [`Perm`]) |
//! | [`path`] | path validation (`XENSTORE_ABS_PATH_MAX`, charset) and a fixed-size path builder |
//! | [`framer`] | [`Framer`]: cuts a byte stream into whole messages, without allocating |
//! | [`transport`] | the [`Transport`] trait a [`Client`] runs over |
//! | [`client`] | [`Client`]: request ids, replies, a bounded queue of watch events, transactions |
//! | [`ring`] | the shared-ring index rules, as a [`Transport`] over a [`StorePage`] |
//! | [`state`] | [`XenbusState`] (`io/xenbus.h`) and the device path conventions |
//!
//! ## Invariants
//!
//! - Nothing xenstored (or the other end of the ring) sends can make this crate
//!   panic: every length is checked once ([`Message::new_checked`]), ring indexes
//!   are checked against the ring size before use, and malformed payloads become
//!   typed errors ([`wire::Error`]).
//! - No allocation outside the `std` transports: message buffers are fixed at
//!   `16 + XENSTORE_PAYLOAD_MAX` bytes and the watch-event queue has a fixed depth.
//! - A request that would exceed `XENSTORE_PAYLOAD_MAX` is refused before it is
//!   sent (xenstored kills a connection that exceeds it, and a domain cannot
//!   reconnect).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod events;
pub mod framer;
pub mod path;
pub mod ring;
pub mod state;
#[cfg(all(feature = "std", unix))]
pub mod std_io;
pub mod transport;
pub mod wire;

pub use client::{Client, ClientError, TxOutcome};
pub use events::OwnedWatchEvent;
pub use framer::Framer;
pub use path::{PathError, XsPathBuf};
pub use ring::{MemPage, RingError, RingTransport, StorePage};
pub use state::{StateError, XenbusState};
pub use transport::Transport;
pub use wire::{
    Access, Message, MsgType, NulList, Perm, PermList, Reply, Request, RequestError, TxId,
    WatchEvent, XsError,
};

/// Maximum payload of one message, in either direction (`xs_wire.h`).
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;

/// Longest absolute path xenstored accepts (`xs_wire.h`).
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;

/// Longest relative path a client should send (relative to
/// `/local/domain/<domid>`; `xs_wire.h`).
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// A Xen domain id (`domid_t`).
pub type DomId = u16;
