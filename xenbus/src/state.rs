//! Xenbus device states and device paths.
//!
//! States: `enum xenbus_state` of `xen/include/public/io/xenbus.h`. Each end of
//! a split device writes its state to its own `state` node as a decimal string
//! (`"4"` for Connected).
//!
//! Paths, per `docs/misc/xenstore-paths.pandoc`:
//! - frontend: `/local/domain/<frontend-domid>/device/<type>/<devid>`
//!   (relative to the frontend domain: `device/<type>/<devid>`), holding
//!   `backend`, `backend-id`, `state` and the protocol keys;
//! - backend: `/local/domain/<backend-domid>/backend/<type>/<frontend-domid>/<devid>`
//!   (relative: `backend/<type>/<frontend-domid>/<devid>`), holding
//!   `frontend`, `frontend-id`, `online`, `state`.

use crate::client::{Client, ClientError};
use crate::path::{PathError, XsPathBuf};
use crate::transport::Transport;
use crate::wire::TxId;
use crate::DomId;
use core::fmt;

/// `enum xenbus_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XenbusState {
    /// `XenbusStateUnknown`.
    #[doc(alias = "XenbusStateUnknown")]
    Unknown = 0,
    /// `XenbusStateInitialising`.
    #[doc(alias = "XenbusStateInitialising")]
    Initialising = 1,
    /// `XenbusStateInitWait`: finished early initialisation, waiting for
    /// information from the peer or hotplug scripts.
    #[doc(alias = "XenbusStateInitWait")]
    InitWait = 2,
    /// `XenbusStateInitialised`: waiting for a connection from the peer.
    #[doc(alias = "XenbusStateInitialised")]
    Initialised = 3,
    /// `XenbusStateConnected`.
    #[doc(alias = "XenbusStateConnected")]
    Connected = 4,
    /// `XenbusStateClosing`: being closed after an error or an unplug.
    #[doc(alias = "XenbusStateClosing")]
    Closing = 5,
    /// `XenbusStateClosed`.
    #[doc(alias = "XenbusStateClosed")]
    Closed = 6,
    /// `XenbusStateReconfiguring`.
    #[doc(alias = "XenbusStateReconfiguring")]
    Reconfiguring = 7,
    /// `XenbusStateReconfigured`.
    #[doc(alias = "XenbusStateReconfigured")]
    Reconfigured = 8,
}

/// A `state` node that does not hold a xenbus state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// Not a decimal number (or empty).
    NotANumber,
    /// A number, but not a value of `enum xenbus_state`.
    OutOfRange {
        /// The value read.
        value: u32,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::NotANumber => write!(f, "xenbus state node is not a decimal number"),
            StateError::OutOfRange { value } => {
                write!(f, "xenbus state {value} is not in 0..=8 (io/xenbus.h)")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StateError {}

impl XenbusState {
    /// Every state, in numeric order.
    pub const ALL: [XenbusState; 9] = [
        XenbusState::Unknown,
        XenbusState::Initialising,
        XenbusState::InitWait,
        XenbusState::Initialised,
        XenbusState::Connected,
        XenbusState::Closing,
        XenbusState::Closed,
        XenbusState::Reconfiguring,
        XenbusState::Reconfigured,
    ];

    /// The value as xenstore stores it: `"0"` ..= `"8"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            XenbusState::Unknown => "0",
            XenbusState::Initialising => "1",
            XenbusState::InitWait => "2",
            XenbusState::Initialised => "3",
            XenbusState::Connected => "4",
            XenbusState::Closing => "5",
            XenbusState::Closed => "6",
            XenbusState::Reconfiguring => "7",
            XenbusState::Reconfigured => "8",
        }
    }

    /// Parses a `state` node's value: decimal, optionally followed by the NUL
    /// or newline some writers add.
    pub fn parse(value: &[u8]) -> Result<XenbusState, StateError> {
        let digits =
            value.strip_suffix(b"\0").or_else(|| value.strip_suffix(b"\n")).unwrap_or(value);
        let number = crate::wire::parse_decimal_u32(digits).ok_or(StateError::NotANumber)?;
        XenbusState::try_from(number)
    }

    /// Whether the device is going away (`Closing` or `Closed`): the backend
    /// must tear down, and acknowledge `Closed` only when that is done.
    pub const fn is_closing(self) -> bool {
        matches!(self, XenbusState::Closing | XenbusState::Closed)
    }
}

impl TryFrom<u32> for XenbusState {
    type Error = StateError;
    fn try_from(value: u32) -> Result<Self, StateError> {
        XenbusState::ALL.get(value as usize).copied().ok_or(StateError::OutOfRange { value })
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Common keys of a device directory.
pub mod keys {
    /// The xenbus state of this end.
    pub const STATE: &str = "state";
    /// Frontend: path of the backend directory.
    pub const BACKEND: &str = "backend";
    /// Frontend: domid of the backend.
    pub const BACKEND_ID: &str = "backend-id";
    /// Backend: path of the frontend directory.
    pub const FRONTEND: &str = "frontend";
    /// Backend: domid of the frontend.
    pub const FRONTEND_ID: &str = "frontend-id";
    /// Backend: `1` while the toolstack wants the device.
    pub const ONLINE: &str = "online";
}

/// The directory of a frontend device, as seen from dom0:
/// `/local/domain/<frontend>/device/<ty>/<devid>`.
pub fn frontend_dir(frontend: DomId, ty: &str, devid: u32) -> Result<XsPathBuf, PathError> {
    let mut p = XsPathBuf::absolute();
    p.push("local")?
        .push("domain")?
        .push_u32(frontend.into())?
        .push("device")?
        .push(ty)?
        .push_u32(devid)?;
    Ok(p)
}

/// The frontend directory relative to the frontend domain: `device/<ty>/<devid>`.
pub fn frontend_dir_relative(ty: &str, devid: u32) -> Result<XsPathBuf, PathError> {
    let mut p = XsPathBuf::relative();
    p.push("device")?.push(ty)?.push_u32(devid)?;
    Ok(p)
}

/// The directory of a backend device:
/// `/local/domain/<backend>/backend/<ty>/<frontend>/<devid>`.
pub fn backend_dir(
    backend: DomId,
    ty: &str,
    frontend: DomId,
    devid: u32,
) -> Result<XsPathBuf, PathError> {
    let mut p = XsPathBuf::absolute();
    p.push("local")?
        .push("domain")?
        .push_u32(backend.into())?
        .push("backend")?
        .push(ty)?
        .push_u32(frontend.into())?
        .push_u32(devid)?;
    Ok(p)
}

/// The backend directory relative to the backend domain:
/// `backend/<ty>/<frontend>/<devid>`.
pub fn backend_dir_relative(ty: &str, frontend: DomId, devid: u32) -> Result<XsPathBuf, PathError> {
    let mut p = XsPathBuf::relative();
    p.push("backend")?.push(ty)?.push_u32(frontend.into())?.push_u32(devid)?;
    Ok(p)
}

impl<T: Transport, const EVENTS: usize> Client<T, EVENTS> {
    /// Reads the xenbus state stored at `path` (usually `<dir>/state`).
    pub fn read_state(
        &mut self,
        tx: TxId,
        path: &str,
    ) -> Result<XenbusState, ClientError<T::Error>> {
        let value = self.read(tx, path)?;
        XenbusState::parse(value).map_err(ClientError::State)
    }

    /// Writes `state` at `path` as xenstore stores it (decimal, no NUL).
    pub fn write_state(
        &mut self,
        tx: TxId,
        path: &str,
        state: XenbusState,
    ) -> Result<(), ClientError<T::Error>> {
        self.write(tx, path, state.as_str().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_decimal_form() {
        for (n, s) in XenbusState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, n);
            assert_eq!(XenbusState::parse(s.as_str().as_bytes()), Ok(*s));
            assert_eq!(s.as_str(), n.to_string());
        }
    }

    #[test]
    fn state_values_written_with_nul_or_newline_parse() {
        assert_eq!(XenbusState::parse(b"4\0"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"6\n"), Ok(XenbusState::Closed));
    }

    #[test]
    fn bad_state_values_are_typed() {
        assert_eq!(XenbusState::parse(b"9"), Err(StateError::OutOfRange { value: 9 }));
        assert_eq!(XenbusState::parse(b""), Err(StateError::NotANumber));
        assert_eq!(XenbusState::parse(b"x"), Err(StateError::NotANumber));
        assert_eq!(XenbusState::parse(b"-1"), Err(StateError::NotANumber));
        assert_eq!(XenbusState::parse(b"99999999999"), Err(StateError::NotANumber));
    }

    #[test]
    fn device_paths_follow_xenstore_paths_convention() {
        assert_eq!(frontend_dir(5, "vgpu", 0).unwrap().as_str(), "/local/domain/5/device/vgpu/0");
        assert_eq!(
            backend_dir(1, "vgpu", 5, 0).unwrap().as_str(),
            "/local/domain/1/backend/vgpu/5/0"
        );
        assert_eq!(frontend_dir_relative("vgpu", 3).unwrap().as_str(), "device/vgpu/3");
        assert_eq!(backend_dir_relative("vgpu", 5, 3).unwrap().as_str(), "backend/vgpu/5/3");
        assert_eq!(backend_dir(1, "vg/pu", 5, 0).err(), Some(PathError::BadComponent));
        assert_eq!(
            backend_dir(1, "vgpu", 5, 0).unwrap().join(keys::STATE).unwrap().as_str(),
            "/local/domain/1/backend/vgpu/5/0/state"
        );
    }
}
