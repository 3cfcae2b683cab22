//! One vgpu device: the backend half of the xenbus handshake for a guest.
//!
//! The toolstack (`vgpu attach`, in dom0) creates the backend directory
//! `backend/vgpu/<frontend>/<devid>` (relative to gpu-dom's home path) with
//! dom0-owned `limits/`. For each such directory the backend:
//!
//! 1. **validates** it before serving anything: the `frontend` and
//!    `frontend-id` nodes name the guest the directory is for; every limit is
//!    present, a number, owned by dom0 and not writable by the guest; the
//!    backend directory itself is not writable by the guest (a dom0 frontend
//!    is the toolstack's own domain: for it only ownership is checked);
//! 2. attaches the guest to `gtt` with those limits and moves to **InitWait**,
//!    publishing `versions`, `max-entries` and `ring-slots`;
//! 3. when the frontend is Initialised (or Connected), reads `version`,
//!    `ring-ref` and `event-channel`, maps the ring, binds the event channel,
//!    and moves to **Connected**;
//! 4. when the frontend closes or disappears, the toolstack sets `online = 0`
//!    or removes the directory, or the frontend breaks the ring protocol:
//!    **revokes everything first** (`Backend::disconnect`: entries cleared,
//!    TLB invalidated, grants unmapped), then unmaps the ring and closes the
//!    event channel, and only then writes **Closed**.
//!
//! # Invariants
//! - A guest is attached to `gtt` only after its device validated; nothing
//!   is served for a directory that failed validation, and a served device is
//!   validated again on every change under `backend/vgpu` (limits that turn
//!   guest-writable or change end service).
//! - `Closed` is written only after every mapping of the guest was released,
//!   so the guest's domain can be destroyed completely.

use core::fmt::{self, Write as _};

use gpuif::keys;
use gpuif::ring::SharedPage;
use gtt::{DomId, GpuTables, GrantMapper, Limits, Released};
use xenbus::wire::{Access, TxId};
use xenbus::{Client, Transport, XenbusState};

use crate::{Backend, Connection, CpuAccess, DeviceCounters, RequestCounters};

/// A xenstore path (gpu-dom's paths are short).
pub type Path = heapless::String<128>;

/// What a device needs from the platform besides `gtt`'s traits: the ring
/// mapping for the backend CPU and the event channel.
pub trait Connector {
    /// The mapped ring page.
    type Ring: SharedPage;
    /// Maps the frontend's ring grant (writable) for the backend CPU; `Err`
    /// is the `GNTST_*` status.
    fn map_ring(&mut self, dom: DomId, gref: u32) -> Result<Self::Ring, i16>;
    /// Unmaps a ring mapped by `map_ring`.
    fn unmap_ring(&mut self, dom: DomId, ring: Self::Ring);
    /// Binds the frontend's unbound port (`EVTCHNOP_bind_interdomain`);
    /// returns the local port, or the Xen error.
    fn bind(&mut self, dom: DomId, remote_port: u32) -> Result<u32, i32>;
    /// Closes a local port.
    fn unbind(&mut self, local_port: u32);
    /// Notifies the frontend through a bound local port.
    fn notify(&mut self, local_port: u32);
}

/// Why a device was not (or no longer) served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// A required node is missing (named relative to the device directory).
    Missing(&'static str),
    /// A node does not hold what it must (the start of its value shown).
    BadValue { node: &'static str, value: heapless::String<16> },
    /// A node the guest must not control is writable by the guest.
    GuestWritable(&'static str),
    /// A limit is not owned by dom0 (the owner is shown).
    NotToolstackOwned { node: &'static str, owner: u16 },
    /// gpu-dom may not read a node it needs (`EACCES`).
    Unreadable(&'static str),
    /// The limits changed while the guest was served (detach and attach again).
    LimitsChanged,
    /// `gtt` refused to attach the guest with these limits.
    Refused(gtt::Refusal),
    /// The frontend speaks no protocol version we do.
    Version,
    /// Mapping the ring grant failed (`GNTST_*`).
    RingMap(i16),
    /// Binding the event channel failed.
    Bind(i32),
    /// xenstore failed.
    Xenstore,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Missing(n) => write!(f, "{n} is missing"),
            DeviceError::BadValue { node, value } => write!(f, "{node} = {value:?} is not valid"),
            DeviceError::GuestWritable(n) => {
                write!(f, "{n} is writable by the guest (the toolstack must own it)")
            }
            DeviceError::NotToolstackOwned { node, owner } => {
                write!(f, "{node} is owned by domain {owner}, not by dom0")
            }
            DeviceError::LimitsChanged => {
                write!(
                    f,
                    "the limits changed while the guest was served; detach and attach it again"
                )
            }
            DeviceError::Unreadable(n) => {
                write!(
                    f,
                    "{n} is not readable by gpu-dom (the toolstack must grant it read access)"
                )
            }
            DeviceError::Refused(r) => write!(f, "refused by gtt: {r}"),
            DeviceError::Version => write!(f, "no common protocol version"),
            DeviceError::RingMap(s) => write!(f, "cannot map the ring grant (GNTST {s})"),
            DeviceError::Bind(e) => write!(f, "cannot bind the event channel ({e})"),
            DeviceError::Xenstore => write!(f, "xenstore request failed"),
        }
    }
}

fn path(args: fmt::Arguments<'_>) -> Path {
    let mut p = Path::new();
    // A path that does not fit is truncated; it then names nothing and the
    // read fails as missing, which is the right outcome for garbage input.
    let _ = p.write_fmt(args);
    p
}

fn short(v: &[u8]) -> heapless::String<16> {
    let mut s = heapless::String::new();
    for &b in v.iter().take(16) {
        let c = if b.is_ascii_graphic() { b as char } else { '?' };
        if s.push(c).is_err() {
            break;
        }
    }
    s
}

/// A refusal, kept as state: the device is looked at again only when the
/// party that was refused changed something (never in reaction to gpu-dom's
/// own writes, which would fire its own watch and loop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub error: DeviceError,
    /// Until when.
    pub until: Until,
}

/// What a refused device waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Until {
    /// A frontend value was refused (version, ring-ref, event-channel): the
    /// frontend must start over (state back to Initialising or InitWait,
    /// possibly through Closing/Closed), as blkback waits for a frontend
    /// to reconnect.
    FrontendRestarts,
    /// The toolstack's side was refused (validation, or `gtt` refused the
    /// limits): the device is validated again, silently, on every change,
    /// and probed again only when the outcome differs from this one.
    ToolstackChanges(Result<Limits, DeviceError>),
}

/// A connected device's live resources.
pub struct Live<R> {
    pub ring: R,
    pub port: u32,
    pub conn: Connection,
}

/// One device, as the backend tracks it.
pub struct Device<R> {
    /// The guest.
    pub fe: DomId,
    /// Its device number.
    pub devid: u32,
    /// Our xenbus state, as last written.
    pub state: XenbusState,
    /// Attached to `gtt` (validated).
    pub attached: bool,
    /// The ring and event channel, while connected.
    pub live: Option<Live<R>>,
    /// Why the device is not served, and what it waits for, if it was refused.
    pub refused: Option<Refused>,
    /// Statistics as last published (to write only changes).
    pub published: [u64; 4],
    /// Connects, disconnects, ring errors, and the requests of ended connections.
    pub counters: DeviceCounters,
    /// The guest's name as the toolstack wrote it (`keys::GUEST_NAME`; empty
    /// if absent), read at probe; for labels only.
    pub guest_name: heapless::String<64>,
}

impl<R> Device<R> {
    /// A device found in xenstore, not yet validated.
    pub fn new(fe: DomId, devid: u32) -> Self {
        Device {
            fe,
            devid,
            state: XenbusState::Unknown,
            attached: false,
            live: None,
            refused: None,
            published: [u64::MAX; 4],
            counters: DeviceCounters::default(),
            guest_name: heapless::String::new(),
        }
    }

    /// Requests answered so far, ended connections and the live one together.
    pub fn requests(&self) -> RequestCounters {
        let mut r = self.counters.requests;
        if let Some(live) = &self.live {
            r.add(&live.conn.counters);
        }
        r
    }

    /// Our directory, relative to gpu-dom's home path.
    pub fn be_path(&self) -> Path {
        path(format_args!("backend/{}/{}/{}", keys::DEVICE_TYPE, self.fe.0, self.devid))
    }

    /// The guest's directory (absolute).
    pub fn fe_path(&self) -> Path {
        path(format_args!(
            "/local/domain/{}/device/{}/{}",
            self.fe.0,
            keys::DEVICE_TYPE,
            self.devid
        ))
    }
}

type XsResult<T, E> = Result<T, xenbus::ClientError<E>>;

/// Reads `path` as a decimal number: `Ok(None)` if missing.
fn read_u32<T: Transport>(
    xs: &mut Client<T>,
    p: &str,
    node: &'static str,
) -> Result<Option<Result<u32, heapless::String<16>>>, DeviceError> {
    match xs.read(TxId::NONE, p) {
        Ok(v) => {
            let s = core::str::from_utf8(v).ok().and_then(keys::parse_u32);
            Ok(Some(s.ok_or_else(|| short(v))))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(read_error(&e, node)),
    }
}

/// What a failed read of `node` means for the device.
fn read_error<E>(e: &xenbus::ClientError<E>, node: &'static str) -> DeviceError {
    if e.is_not_found() {
        DeviceError::Missing(node)
    } else if e.is_xs(&xenbus::XsError::AccessDenied) {
        DeviceError::Unreadable(node)
    } else {
        DeviceError::Xenstore
    }
}

/// Reads `<dir>/<node>` as a decimal number that must be there.
fn require_u32<T: Transport>(
    xs: &mut Client<T>,
    dir: &str,
    node: &'static str,
) -> Result<u32, DeviceError> {
    match read_u32(xs, &path(format_args!("{dir}/{node}")), node)? {
        None => Err(DeviceError::Missing(node)),
        Some(Ok(v)) => Ok(v),
        Some(Err(value)) => Err(DeviceError::BadValue { node, value }),
    }
}

/// The guest may not write `p` (`node` names it); if `toolstack`, dom0 must own it.
fn check_perms<T: Transport>(
    xs: &mut Client<T>,
    p: &str,
    node: &'static str,
    guest: DomId,
    toolstack: bool,
) -> Result<(), DeviceError> {
    let perms = match xs.get_perms(TxId::NONE, p) {
        Ok(perms) => perms,
        Err(e) => return Err(read_error(&e, node)),
    };
    let owner = perms.owner().dom;
    // dom0 is the toolstack itself: a dom0 frontend can always write what
    // the toolstack wrote, and is trusted to; only ownership is checked then.
    if guest.0 != 0 && matches!(perms.access_of(guest.0), Access::Write | Access::Both) {
        return Err(DeviceError::GuestWritable(node));
    }
    if toolstack && owner != 0 {
        return Err(DeviceError::NotToolstackOwned { node, owner });
    }
    Ok(())
}

/// Limit keys with their names as nodes of the device directory.
const LIMIT_NODES: [(&str, &str); 5] = [
    (keys::LIMIT_GGTT_BASE, "limits/ggtt-base"),
    (keys::LIMIT_GGTT_ENTRIES, "limits/ggtt-entries"),
    (keys::LIMIT_MAX_CONTEXTS, "limits/max-contexts"),
    (keys::LIMIT_MAX_PAGES, "limits/max-pages"),
    (keys::LIMIT_MAX_TABLE_PAGES, "limits/max-table-pages"),
];

/// Reads and checks what the toolstack wrote for `dev` (step 1).
pub fn validate<T: Transport, R>(
    xs: &mut Client<T>,
    dev: &Device<R>,
) -> Result<Limits, DeviceError> {
    let be = dev.be_path();
    check_perms(xs, &be, "the device directory", dev.fe, false)?;
    let fe_id = require_u32(xs, &be, xenbus::state::keys::FRONTEND_ID)?;
    if fe_id != dev.fe.0 as u32 {
        let mut value = heapless::String::new();
        let _ = write!(value, "{fe_id}");
        return Err(DeviceError::BadValue { node: "frontend-id", value });
    }
    let fe_node = path(format_args!("{be}/{}", xenbus::state::keys::FRONTEND));
    match xs.read(TxId::NONE, &fe_node) {
        Ok(v) if v == dev.fe_path().as_bytes() => {}
        Ok(v) => return Err(DeviceError::BadValue { node: "frontend", value: short(v) }),
        Err(e) => return Err(read_error(&e, "frontend")),
    }
    let limits_dir = path(format_args!("{be}/{}", keys::LIMITS_DIR));
    check_perms(xs, &limits_dir, "limits", dev.fe, true)?;
    let mut v = [0u32; 5];
    for (slot, (key, node)) in v.iter_mut().zip(LIMIT_NODES) {
        *slot = require_u32(xs, &limits_dir, key).map_err(|e| match e {
            DeviceError::Missing(_) => DeviceError::Missing(node),
            DeviceError::Unreadable(_) => DeviceError::Unreadable(node),
            DeviceError::BadValue { value, .. } => DeviceError::BadValue { node, value },
            other => other,
        })?;
        check_perms(xs, &path(format_args!("{limits_dir}/{key}")), node, dev.fe, true)?;
    }
    let max_contexts = u16::try_from(v[2]).unwrap_or(u16::MAX);
    Ok(Limits {
        ggtt_base: v[0],
        ggtt_len: v[1],
        max_contexts,
        max_pages: v[3],
        max_table_pages: v[4],
    })
}

/// Writes our state node.
pub fn set_state<T: Transport, R>(
    xs: &mut Client<T>,
    dev: &mut Device<R>,
    state: XenbusState,
) -> XsResult<(), T::Error> {
    let p = path(format_args!("{}/{}", dev.be_path(), xenbus::state::keys::STATE));
    xs.write(TxId::NONE, &p, state.as_str().as_bytes())?;
    dev.state = state;
    Ok(())
}

/// Reads the guest's state. `None` when the guest is gone: its node is
/// missing (`ENOENT`), or unreadable (`EACCES`), which is what xenstored
/// answers once the toolstack removed the guest's whole home directory (a
/// missing node reports its nearest existing ancestor's permission, here the
/// dom0-only `/local/domain`) — and what a guest that hides its state from
/// the backend gets treated as.
pub fn frontend_state<T: Transport, R>(
    xs: &mut Client<T>,
    dev: &Device<R>,
) -> Result<Option<XenbusState>, DeviceError> {
    let p = path(format_args!("{}/{}", dev.fe_path(), xenbus::state::keys::STATE));
    match xs.read(TxId::NONE, &p) {
        Ok(v) => Ok(Some(XenbusState::parse(v).unwrap_or(XenbusState::Unknown))),
        Err(e) if e.is_not_found() || e.is_xs(&xenbus::XsError::AccessDenied) => Ok(None),
        Err(_) => Err(DeviceError::Xenstore),
    }
}

/// Whether the toolstack still wants the device (`online` absent counts as 1).
pub fn online<T: Transport, R>(xs: &mut Client<T>, dev: &Device<R>) -> Result<bool, DeviceError> {
    let p = path(format_args!("{}/{}", dev.be_path(), xenbus::state::keys::ONLINE));
    Ok(!matches!(read_u32(xs, &p, "online")?, Some(Ok(0))))
}

/// Reads the frontend's connection details and connects (step 3).
pub fn connect<T: Transport, C: Connector>(
    xs: &mut Client<T>,
    dev: &Device<C::Ring>,
    connector: &mut C,
) -> Result<Live<C::Ring>, DeviceError> {
    let fe = dev.fe_path();
    let version = require_u32(xs, &fe, keys::VERSION)?;
    if version != keys::PROTOCOL_VERSION {
        return Err(DeviceError::Version);
    }
    let gref = require_u32(xs, &fe, keys::RING_REF)?;
    let remote = require_u32(xs, &fe, keys::EVENT_CHANNEL)?;
    let ring = connector.map_ring(dev.fe, gref).map_err(DeviceError::RingMap)?;
    let port = match connector.bind(dev.fe, remote) {
        Ok(p) => p,
        Err(e) => {
            connector.unmap_ring(dev.fe, ring);
            return Err(DeviceError::Bind(e));
        }
    };
    let conn = Connection::new(dev.fe, &ring);
    Ok(Live { ring, port, conn })
}

/// Revokes everything of `dev`'s guest, then releases the ring and port
/// (step 4). Returns what `gtt` released.
pub fn disconnect<R, C, M, W, D>(
    backend: &mut Backend<M, W, D>,
    dev: &mut Device<R>,
    connector: &mut C,
) -> Released
where
    C: Connector<Ring = R>,
    M: GrantMapper,
    W: GpuTables,
    D: CpuAccess,
{
    let rel = if dev.attached { backend.disconnect(dev.fe) } else { Released::default() };
    dev.attached = false;
    if let Some(live) = dev.live.take() {
        dev.counters.requests.add(&live.conn.counters);
        dev.counters.disconnects += 1;
        connector.unbind(live.port);
        connector.unmap_ring(dev.fe, live.ring);
    }
    rel
}
