//! What can go wrong, typed, with the values involved.

use alloc::string::String;
use core::fmt;

use gpuif::wire::BuildError;
use gpuif::{Op, RingError, Status};
use xenbus::{ClientError, XenbusState};

/// A frontend error. `PE` is the platform's error, `XE` the xenstore
/// transport's.
#[derive(Debug)]
pub enum Error<PE, XE> {
    /// A xenstore operation on `path` failed.
    Xenstore { op: &'static str, path: String, error: ClientError<XE> },
    /// The platform failed (a hypercall, an ioctl).
    Platform { op: &'static str, error: PE },
    /// There is no device directory: the toolstack did not attach a vGPU
    /// to this domain (`vgpu attach` in dom0 creates it).
    NoDevice { path: String },
    /// A xenstore node holds something this frontend cannot use.
    BadNode { path: String, value: String },
    /// The backend offers no protocol version this frontend speaks.
    NoCommonVersion { offered: String, wanted: u32 },
    /// The backend did not reach `want` within `waited_ms`; `last` is the
    /// state it was in (`None`: no state node).
    BackendTimeout { want: XenbusState, last: Option<XenbusState>, waited_ms: u64 },
    /// The backend closed the device (it is shutting down, or it
    /// disconnected this frontend); `None`: its directory is gone.
    BackendClosed { state: Option<XenbusState> },
    /// The backend broke the ring protocol (responses nobody asked for).
    Ring(RingError),
    /// The ring has no free slot (more requests in flight than it holds).
    RingFull,
    /// No response to request `id` within `waited_ms`.
    NoResponse { id: u64, op: Op, waited_ms: u64 },
    /// The device is not connected (call `connect` first).
    NotConnected,
    /// More entries than one request may carry.
    TooManyEntries { nr: usize, max: usize },
    /// The request could not be encoded.
    Build(BuildError),
    /// The handshake transaction kept conflicting (`EAGAIN`).
    TransactionConflict { attempts: u32 },
    /// The backend refused a request that has no per-entry outcome.
    Refused { op: Op, status: Status, value: u64 },
    /// After a reconnect, the new backend applied only `done` of the
    /// `wanted` recorded entries of one table (`status` stopped it).
    Replay { op: Op, status: Status, done: u32, wanted: u32 },
    /// After a reconnect, the new backend gave a context another id than
    /// the one the guest uses.
    ReplayContext { wanted: u16, got: u16 },
}

impl<PE: fmt::Display, XE: fmt::Debug> fmt::Display for Error<PE, XE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xenstore { op, path, error } => write!(f, "xenstore {op} {path}: {error}"),
            Error::Platform { op, error } => write!(f, "{op}: {error}"),
            Error::NoDevice { path } => {
                write!(f, "no device at {path}: attach one from dom0 with `vgpu attach`")
            }
            Error::BadNode { path, value } => write!(f, "{path} holds {value:?}"),
            Error::NoCommonVersion { offered, wanted } => {
                write!(f, "the backend offers versions {offered:?}, this frontend speaks {wanted}")
            }
            Error::BackendTimeout { want, last, waited_ms } => {
                write!(f, "the backend did not reach {want} within {} ms (state ", waited_ms)?;
                match last {
                    Some(s) => write!(f, "{s})"),
                    None => write!(f, "absent)"),
                }
            }
            Error::BackendClosed { state: Some(s) } => write!(f, "the backend closed ({s})"),
            Error::BackendClosed { state: None } => write!(f, "the backend directory is gone"),
            Error::Ring(e) => write!(f, "the backend broke the ring protocol: {e}"),
            Error::RingFull => write!(f, "the ring is full"),
            Error::NoResponse { id, op, waited_ms } => {
                write!(f, "no response to request {id} ({op:?}) within {waited_ms} ms")
            }
            Error::NotConnected => write!(f, "not connected"),
            Error::TooManyEntries { nr, max } => {
                write!(f, "{nr} entries in one request; the backend takes {max}")
            }
            Error::Build(e) => write!(f, "cannot build the request: {e:?}"),
            Error::TransactionConflict { attempts } => {
                write!(f, "the handshake transaction conflicted {attempts} times")
            }
            Error::Refused { op, status, value } => {
                write!(f, "{op:?} refused: {} (value {value:#x})", status.name())
            }
            Error::Replay { op, status, done, wanted } => write!(
                f,
                "the new backend took back {done} of {wanted} {op:?} entries ({})",
                status.name()
            ),
            Error::ReplayContext { wanted, got } => {
                write!(f, "the new backend created context {got} where {wanted} was wanted")
            }
        }
    }
}

impl<PE, XE> Error<PE, XE> {
    /// The backend ended the connection, or went away with its domain (as
    /// opposed to a local failure): [`crate::Frontend::release`], then
    /// [`crate::Frontend::reconnect`], is the way on.
    pub fn is_backend_closed(&self) -> bool {
        matches!(self, Error::BackendClosed { .. })
    }
}

#[cfg(feature = "std")]
impl<PE: fmt::Debug + fmt::Display, XE: fmt::Debug> std::error::Error for Error<PE, XE> {}
