//! The xenstore shared ring: `struct xenstore_domain_interface`.
//!
//! Source: `xen/include/public/io/xs_wire.h`, `docs/misc/xenstore-ring.txt`.
//! One 4 KiB page shared with xenstored (found through `HVM_PARAM_STORE_PFN`,
//! signalled through the event channel of `HVM_PARAM_STORE_EVTCHN`) holds two
//! byte rings of `XENSTORE_RING_SIZE` (1024) bytes:
//!
//! | offset | field | written by |
//! |---|---|---|
//! | 0 | `req[1024]`: requests to xenstored | us |
//! | 1024 | `rsp[1024]`: replies and watch events | xenstored |
//! | 2048 | `req_cons` | xenstored |
//! | 2052 | `req_prod` | us |
//! | 2056 | `rsp_cons` | us |
//! | 2060 | `rsp_prod` | xenstored |
//! | 2064 | `server_features` | xenstored |
//! | 2068 | `connection` | both (reconnect handshake) |
//! | 2072 | `error` | xenstored |
//! | 2076 | `evtchn_port` | Xen (dom0less) |
//!
//! Indexes are free-running `u32`s; byte `x` of a stream lives at
//! `MASK_XENSTORE_IDX(x)`. Producer minus consumer (wrapping) is the number of
//! bytes in flight, and is never more than the ring size in a sane ring.
//!
//! ## Invariants
//!
//! - The indexes we produce (`req_prod`, `rsp_cons`) are kept in
//!   [`RingTransport`] and only *written* to the page; the page's copies are
//!   read back only at attach or reconnect. The other side's indexes
//!   (`req_cons`, `rsp_prod`) are read once per operation and checked: if
//!   `prod - cons` (wrapping) exceeds 1024 the ring is broken, and the transport
//!   returns [`RingError::BadIndex`] from then on instead of reading or writing
//!   anything. No other value from the page can cause an out-of-range access.
//! - Ordering, as in Mini-OS's client: read the peer's index, fence, then touch
//!   data; write data, fence, then publish our index; notify after publishing.
//! - Every offset passed to [`StorePage`] lies inside the 4096-byte page.

mod mem;

pub use mem::MemPage;

use crate::transport::Transport;
use core::fmt;

/// Offsets and constants of `struct xenstore_domain_interface`.
pub mod layout {
    /// Size of each ring (`xs_wire.h`).
    pub const XENSTORE_RING_SIZE: usize = 1024;
    /// The shared page.
    pub const PAGE_SIZE: usize = 4096;
    /// `char req[XENSTORE_RING_SIZE]`.
    pub const REQ: usize = 0;
    /// `char rsp[XENSTORE_RING_SIZE]`.
    pub const RSP: usize = 1024;
    /// `XENSTORE_RING_IDX req_cons`.
    pub const REQ_CONS: usize = 2048;
    /// `XENSTORE_RING_IDX req_prod`.
    pub const REQ_PROD: usize = 2052;
    /// `XENSTORE_RING_IDX rsp_cons`.
    pub const RSP_CONS: usize = 2056;
    /// `XENSTORE_RING_IDX rsp_prod`.
    pub const RSP_PROD: usize = 2060;
    /// `uint32_t server_features`.
    pub const SERVER_FEATURES: usize = 2064;
    /// `uint32_t connection`.
    pub const CONNECTION: usize = 2068;
    /// `uint32_t error`.
    pub const ERROR: usize = 2072;
    /// `uint32_t evtchn_port`.
    pub const EVTCHN_PORT: usize = 2076;

    /// `XENSTORE_SERVER_FEATURE_RECONNECTION`.
    pub const FEATURE_RECONNECTION: u32 = 1;
    /// `XENSTORE_SERVER_FEATURE_ERROR`: the `error` field is valid.
    pub const FEATURE_ERROR: u32 = 2;
    /// `XENSTORE_SERVER_FEATURE_WATCHDEPTH`.
    pub const FEATURE_WATCHDEPTH: u32 = 4;
    /// `XENSTORE_SERVER_FEATURE_DOMID_ANY`.
    pub const FEATURE_DOMID_ANY: u32 = 8;

    /// `XENSTORE_CONNECTED`.
    pub const CONNECTED: u32 = 0;
    /// `XENSTORE_RECONNECT`.
    pub const RECONNECT: u32 = 1;

    /// `XENSTORE_ERROR_COMM`.
    pub const ERROR_COMM: u32 = 1;
    /// `XENSTORE_ERROR_RINGIDX`.
    pub const ERROR_RINGIDX: u32 = 2;
    /// `XENSTORE_ERROR_PROTO`.
    pub const ERROR_PROTO: u32 = 3;

    /// `MASK_XENSTORE_IDX(idx)`.
    #[doc(alias = "MASK_XENSTORE_IDX")]
    pub const fn mask(idx: u32) -> usize {
        idx as usize & (XENSTORE_RING_SIZE - 1)
    }

    const _: () = assert!(XENSTORE_RING_SIZE.is_power_of_two());
    const _: () = assert!(RSP == REQ + XENSTORE_RING_SIZE);
    const _: () = assert!(REQ_CONS == RSP + XENSTORE_RING_SIZE);
    const _: () = assert!(EVTCHN_PORT + 4 <= PAGE_SIZE);
}

use layout::*;

/// Access to the shared xenstore page and its event channel.
///
/// The unikernel implements this with volatile accesses to the page mapped
/// from `HVM_PARAM_STORE_PFN` and the event channel of
/// `HVM_PARAM_STORE_EVTCHN`; [`MemPage`] is an in-memory one for tests.
///
/// This crate passes only offsets inside the 4096-byte page (`offset + len <=
/// 4096`, `u32`s 4-byte aligned).
pub trait StorePage {
    /// Reads the `u32` at `offset` (one access: a volatile load).
    fn read_u32(&self, offset: usize) -> u32;
    /// Writes the `u32` at `offset` (one access: a volatile store).
    fn write_u32(&mut self, offset: usize, value: u32);
    /// Copies `buf.len()` bytes from `offset` into `buf`.
    fn read_bytes(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` to `offset`.
    fn write_bytes(&mut self, offset: usize, data: &[u8]);
    /// A full memory barrier (`mb()`): accesses before it are visible to the
    /// other side before accesses after it.
    fn fence(&self);
    /// Signals xenstored through the event channel.
    fn notify(&mut self);
    /// Blocks until xenstored signals the event channel (or a timeout: return
    /// [`RingError::TimedOut`]). The default only hints a spin loop.
    fn wait(&mut self) -> Result<(), RingError> {
        core::hint::spin_loop();
        Ok(())
    }
}

/// Which of the two rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingSide {
    /// `req`: we produce, xenstored consumes.
    Request,
    /// `rsp`: xenstored produces, we consume.
    Response,
}

/// Why the ring cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// `prod - cons` exceeded the ring size: the other side wrote an impossible
    /// index. The ring is left alone from then on (until [`RingTransport::reconnect`]).
    BadIndex {
        /// The ring whose indexes disagree.
        ring: RingSide,
        /// Consumer index as seen.
        cons: u32,
        /// Producer index as seen.
        prod: u32,
    },
    /// xenstored set the `error` field (`XENSTORE_ERROR_*`: 1 communication,
    /// 2 ring index, 3 protocol) and stopped serving this connection.
    #[doc(alias = "XENSTORE_ERROR_COMM")]
    Server {
        /// The `error` field.
        code: u32,
    },
    /// A reconnect is in progress (`connection == XENSTORE_RECONNECT`); call
    /// [`RingTransport::wait_connected`].
    Reconnecting,
    /// xenstored does not offer `XENSTORE_SERVER_FEATURE_RECONNECTION`.
    ReconnectUnsupported,
    /// [`StorePage::wait`] gave up.
    TimedOut,
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RingError::BadIndex { ring, cons, prod } => write!(
                f,
                "xenstore {ring:?} ring indexes inconsistent: prod {prod} is {} bytes ahead of cons {cons} (ring size {XENSTORE_RING_SIZE})",
                prod.wrapping_sub(cons)
            ),
            RingError::Server { code } => {
                let what = match code {
                    ERROR_COMM => "communication problem",
                    ERROR_RINGIDX => "invalid ring index",
                    ERROR_PROTO => "protocol violation",
                    _ => "unknown error",
                };
                write!(f, "xenstored closed the ring: error {code} ({what})")
            }
            RingError::Reconnecting => write!(f, "xenstore ring reconnect in progress"),
            RingError::ReconnectUnsupported => {
                write!(f, "xenstored does not support ring reconnection")
            }
            RingError::TimedOut => write!(f, "timed out waiting for xenstored"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RingError {}

/// A [`Transport`] over the shared xenstore ring.
pub struct RingTransport<P: StorePage> {
    page: P,
    /// Next byte we produce on `req`: ours, never read back from the page.
    req_prod: u32,
    /// Next byte we consume on `rsp`: ours, never read back from the page.
    rsp_cons: u32,
    /// Set by the first inconsistency seen; sticky.
    broken: Option<RingError>,
}

impl<P: StorePage> RingTransport<P> {
    /// Attaches to a connected page, taking our indexes from it (the guest may
    /// not assume they start at 0).
    pub fn new(page: P) -> RingTransport<P> {
        let req_prod = page.read_u32(REQ_PROD);
        let rsp_cons = page.read_u32(RSP_CONS);
        RingTransport { page, req_prod, rsp_cons, broken: None }
    }

    /// The page.
    pub fn page(&self) -> &P {
        &self.page
    }

    /// The page, mutably (tests use it to play xenstored).
    pub fn page_mut(&mut self) -> &mut P {
        &mut self.page
    }

    /// Gives the page back.
    pub fn into_page(self) -> P {
        self.page
    }

    /// `server_features` as advertised now.
    pub fn server_features(&self) -> u32 {
        self.page.read_u32(SERVER_FEATURES)
    }

    /// The error that stopped this ring, if any.
    pub fn broken(&self) -> Option<RingError> {
        self.broken
    }

    fn check(&mut self) -> Result<(), RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let features = self.server_features();
        if features & FEATURE_ERROR != 0 {
            let code = self.page.read_u32(ERROR);
            if code != 0 {
                let e = RingError::Server { code };
                self.broken = Some(e);
                return Err(e);
            }
        }
        if features & FEATURE_RECONNECTION != 0 && self.page.read_u32(CONNECTION) != CONNECTED {
            return Err(RingError::Reconnecting);
        }
        Ok(())
    }

    fn fail(&mut self, ring: RingSide, cons: u32, prod: u32) -> RingError {
        let e = RingError::BadIndex { ring, cons, prod };
        log::error!("xenbus: {e}");
        self.broken = Some(e);
        e
    }

    /// Waits until `connection` reads `XENSTORE_CONNECTED` (immediately if the
    /// server has no reconnection feature), then re-reads our indexes and
    /// clears a [`RingError::BadIndex`].
    pub fn wait_connected(&mut self) -> Result<(), RingError> {
        loop {
            self.page.fence();
            if self.server_features() & FEATURE_RECONNECTION == 0
                || self.page.read_u32(CONNECTION) == CONNECTED
            {
                break;
            }
            self.page.wait()?;
        }
        self.req_prod = self.page.read_u32(REQ_PROD);
        self.rsp_cons = self.page.read_u32(RSP_CONS);
        if matches!(self.broken, Some(RingError::BadIndex { .. })) {
            self.broken = None;
        }
        Ok(())
    }

    /// Asks xenstored to reset the ring (the reconnection feature of
    /// `docs/misc/xenstore-ring.txt`): in-flight requests, watches and
    /// transactions are discarded. Reset the client's framer afterwards
    /// ([`crate::Client::reset`]).
    pub fn reconnect(&mut self) -> Result<(), RingError> {
        if self.server_features() & FEATURE_RECONNECTION == 0 {
            return Err(RingError::ReconnectUnsupported);
        }
        self.page.write_u32(CONNECTION, RECONNECT);
        self.page.fence();
        self.page.notify();
        self.wait_connected()
    }
}

impl<P: StorePage> Transport for RingTransport<P> {
    type Error = RingError;

    fn send(&mut self, data: &[u8]) -> Result<usize, RingError> {
        self.check()?;
        let cons = self.page.read_u32(REQ_CONS);
        // Read cons before overwriting the bytes it frees.
        self.page.fence();
        let prod = self.req_prod;
        let used = prod.wrapping_sub(cons) as usize;
        if used > XENSTORE_RING_SIZE {
            return Err(self.fail(RingSide::Request, cons, prod));
        }
        let n = data.len().min(XENSTORE_RING_SIZE - used);
        if n == 0 {
            return Ok(0);
        }
        let off = mask(prod);
        let first = n.min(XENSTORE_RING_SIZE - off);
        self.page.write_bytes(REQ + off, &data[..first]);
        if first < n {
            self.page.write_bytes(REQ, &data[first..n]);
        }
        // Data before the index that publishes it.
        self.page.fence();
        self.req_prod = prod.wrapping_add(n as u32);
        self.page.write_u32(REQ_PROD, self.req_prod);
        self.page.notify();
        Ok(n)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RingError> {
        self.check()?;
        let prod = self.page.read_u32(RSP_PROD);
        // Read prod before the data it publishes.
        self.page.fence();
        let cons = self.rsp_cons;
        let avail = prod.wrapping_sub(cons) as usize;
        if avail > XENSTORE_RING_SIZE {
            return Err(self.fail(RingSide::Response, cons, prod));
        }
        let n = buf.len().min(avail);
        if n == 0 {
            return Ok(0);
        }
        let off = mask(cons);
        let first = n.min(XENSTORE_RING_SIZE - off);
        self.page.read_bytes(RSP + off, &mut buf[..first]);
        if first < n {
            self.page.read_bytes(RSP, &mut buf[first..n]);
        }
        // Finish reading before handing the bytes back.
        self.page.fence();
        self.rsp_cons = cons.wrapping_add(n as u32);
        self.page.write_u32(RSP_CONS, self.rsp_cons);
        self.page.notify();
        Ok(n)
    }

    fn wait(&mut self) -> Result<(), RingError> {
        self.page.wait()
    }
}
