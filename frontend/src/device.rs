//! The xenbus side of the device: discovery, the handshake, watching the
//! backend's state, waiting, and the teardown.
//!
//! Handshake (as Linux's displif/blkfront do it):
//! 1. read `device/vgpu/<devid>/{backend,backend-id}`; absent means nobody
//!    attached this domain ([`Error::NoDevice`]);
//! 2. watch `<backend>/state`, wait (bounded) for `InitWait`;
//! 3. read `versions` and negotiate, read `max-entries`;
//! 4. grant the ring page (writable), allocate an unbound port for the
//!    backend, grant the directory pool (read-only);
//! 5. one transaction (retried on `EAGAIN`): `version`, `ring-ref`,
//!    `event-channel`, `state` = Initialised;
//! 6. wait (bounded) for the backend's `Connected`, write ours, ask
//!    `AttachInfo`.
//!
//! # Invariants
//! - Every wait is bounded by a deadline on the platform's clock.
//! - Watch events of other tokens (e.g. `control/shutdown`) are never lost
//!   by the frontend's own waits: they are queued for the caller
//!   ([`Frontend::take_event`]); if xenstore dropped events, the caller is
//!   told ([`Frontend::take_lost_events`]).
//! - Every page the frontend granted is tracked until its grant is ended;
//!   a grant the backend still maps is reported, never freed.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use gpuif::keys;
use gpuif::wire::MAX_DIR_PAGES;
use gpuif::{AttachInfo, FrontRing, Response, MAX_ENTRIES};
use xenbus::{Client, OwnedWatchEvent, Transport, TxId, TxOutcome, XenbusState};

use crate::platform::{DomId, Granted, PageId, Platform, Port, RingPage};
use crate::reconnect::Lost;
use crate::record::Record;
use crate::Error;

/// The frontend's error type for platform `P` and transport `T`.
pub type FrontError<P, T> = Error<<P as Platform>::Error, <T as Transport>::Error>;
pub(crate) type Res<P, T, X> = Result<X, FrontError<P, T>>;

/// Watch events kept for the caller before the oldest is dropped.
const OTHER_EVENTS_MAX: usize = 32;
/// Attempts at the handshake transaction.
const TX_ATTEMPTS: u32 = 16;

/// Timeouts and the device to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The device id (`device/vgpu/<devid>`).
    pub devid: u32,
    /// Longest wait for each of the backend's `InitWait` and `Connected`.
    pub handshake_timeout_ms: u64,
    /// Longest wait for one response.
    pub response_timeout_ms: u64,
    /// Longest wait for the backend's `Closed` when disconnecting.
    pub close_timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            devid: 0,
            handshake_timeout_ms: 30_000,
            response_timeout_ms: 10_000,
            close_timeout_ms: 5_000,
        }
    }
}

/// Where the device lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Our directory (relative to our domain): `device/vgpu/<devid>`.
    pub frontend_dir: String,
    /// The backend's directory (absolute).
    pub backend_dir: String,
    /// The backend's domain.
    pub backend_id: DomId,
}

pub(crate) struct Conn {
    pub ring: Granted,
    pub front: FrontRing,
    pub port: Port,
}

/// What [`Frontend::idle`] saw.
#[derive(Debug)]
pub enum Happening {
    /// A watch event that is not the frontend's (e.g. `control/shutdown`).
    Event(Box<OwnedWatchEvent>),
    /// The backend left `Connected` (closed, or its directory vanished)
    /// while we were connected.
    BackendClosed(Option<XenbusState>),
    /// The deadline passed.
    Timeout,
}

/// What [`Frontend::disconnect`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Teardown {
    /// The backend reached `Closed` (or removed its directory) in time.
    pub backend_closed: bool,
    /// The backend's last state seen.
    pub backend_state: Option<XenbusState>,
    /// Grants ended (ring, directory pool, pages).
    pub grants_ended: u32,
    /// Grants that could not be ended because the backend still maps them.
    pub still_mapped: Vec<u32>,
}

/// One vGPU frontend. See the crate documentation.
pub struct Frontend<P: Platform, T: Transport> {
    pub(crate) platform: P,
    pub(crate) xs: Box<Client<T>>,
    pub(crate) opts: Options,
    pub(crate) dev: Option<Device>,
    token: String,
    pub(crate) be_state: Option<XenbusState>,
    pub(crate) conn: Option<Conn>,
    pub(crate) dirs: Vec<Granted>,
    pub(crate) pages: Vec<Granted>,
    pub(crate) next_id: u64,
    pub(crate) stash: Vec<Response>,
    pub(crate) max_entries: usize,
    info: AttachInfo,
    others: VecDeque<OwnedWatchEvent>,
    others_lost: u32,
    pub(crate) wrote_state: bool,
    /// What the backend mapped for us (replayed to a new backend).
    pub(crate) record: Record,
    /// The backend went away; set by [`Frontend::release`].
    pub(crate) lost: Option<Lost>,
    /// Pages whose grant ended after the backend went away (kept, with
    /// their contents, to be granted again to a new backend).
    pub(crate) released: Vec<PageId>,
    /// Ring and directory pages of a lost connection whose grant could not
    /// be ended yet (freed once it can).
    pub(crate) limbo: Vec<Granted>,
}

impl<P: Platform, T: Transport> Frontend<P, T> {
    /// A frontend for device `opts.devid`, not yet connected (no I/O).
    pub fn new(platform: P, xs: Box<Client<T>>, opts: Options) -> Self {
        Frontend {
            platform,
            xs,
            opts,
            dev: None,
            token: format!("vgpu-front/{}", opts.devid),
            be_state: None,
            conn: None,
            dirs: Vec::new(),
            pages: Vec::new(),
            next_id: 0,
            stash: Vec::new(),
            max_entries: MAX_ENTRIES,
            info: AttachInfo::default(),
            others: VecDeque::new(),
            others_lost: 0,
            wrote_state: false,
            record: Record::default(),
            lost: None,
            released: Vec::new(),
            limbo: Vec::new(),
        }
    }

    /// The platform.
    pub fn platform(&mut self) -> &mut P {
        &mut self.platform
    }

    /// The xenstore client (to watch other nodes; their events come back
    /// through [`Frontend::take_event`] and [`Frontend::idle`]).
    pub fn xs(&mut self) -> &mut Client<T> {
        &mut self.xs
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The device, once found.
    pub fn device(&self) -> Option<&Device> {
        self.dev.as_ref()
    }

    /// The backend's state as last seen.
    pub fn backend_state(&self) -> Option<XenbusState> {
        self.be_state
    }

    /// Whether the ring is up.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// What the backend allows this guest (from `AttachInfo` at connect).
    pub fn info(&self) -> AttachInfo {
        self.info
    }

    /// Entries per request (the backend's `max-entries`, at most 2048).
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// A queued watch event of another token.
    pub fn take_event(&mut self) -> Option<OwnedWatchEvent> {
        self.others.pop_front()
    }

    /// Puts a watch event back at the front of the queue, to be handled later.
    pub fn requeue_event(&mut self, ev: OwnedWatchEvent) {
        self.others.push_front(ev);
    }

    /// Watch events dropped since the last call (queue full, or xenstore
    /// dropped them): rescan the nodes you watch.
    pub fn take_lost_events(&mut self) -> u32 {
        core::mem::take(&mut self.others_lost)
    }

    /// Our watch token.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    pub(crate) fn xs_err<'a>(
        op: &'static str,
        path: &'a str,
    ) -> impl FnOnce(xenbus::ClientError<T::Error>) -> FrontError<P, T> + 'a {
        move |error| Error::Xenstore { op, path: path.to_string(), error }
    }

    pub(crate) fn platform_err(op: &'static str) -> impl FnOnce(P::Error) -> FrontError<P, T> {
        move |error| Error::Platform { op, error }
    }

    /// Reads a text node; `None` if it does not exist.
    pub(crate) fn read_opt(&mut self, path: &str) -> Res<P, T, Option<String>> {
        match self.xs.read_str(TxId::NONE, path) {
            Ok(s) => Ok(Some(s.to_string())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Self::xs_err("read", path)(e)),
        }
    }

    /// Finds the device directory and the backend.
    pub fn discover(&mut self) -> Res<P, T, Device> {
        let fe = format!("device/{}/{}", keys::DEVICE_TYPE, self.opts.devid);
        let be_key = format!("{fe}/backend");
        let Some(backend_dir) = self.read_opt(&be_key)? else {
            return Err(Error::NoDevice { path: fe });
        };
        let backend_dir = backend_dir.trim_end_matches('\0').to_string();
        let id_key = format!("{fe}/backend-id");
        let id = self.read_opt(&id_key)?.unwrap_or_default();
        let backend_id = keys::parse_u32(&id)
            .and_then(|v| DomId::try_from(v).ok())
            .ok_or(Error::BadNode { path: id_key, value: id })?;
        if !backend_dir.starts_with('/') {
            return Err(Error::BadNode { path: be_key, value: backend_dir });
        }
        let dev = Device { frontend_dir: fe, backend_dir, backend_id };
        self.dev = Some(dev.clone());
        Ok(dev)
    }

    pub(crate) fn dev(&self) -> Res<P, T, &Device> {
        self.dev.as_ref().ok_or(Error::NotConnected)
    }

    fn be_path(&self, key: &str) -> Res<P, T, String> {
        Ok(format!("{}/{key}", self.dev()?.backend_dir))
    }

    pub(crate) fn fe_path(&self, key: &str) -> Res<P, T, String> {
        Ok(format!("{}/{key}", self.dev()?.frontend_dir))
    }

    /// Reads the backend's state. A node we may not read counts as absent:
    /// xenstored answers `EACCES` for a node whose whole directory is gone
    /// (a missing node reports its nearest ancestor's permissions, here the
    /// backend's home, which the guest may not read).
    pub(crate) fn refresh_backend_state(&mut self) -> Res<P, T, ()> {
        let path = self.be_path(keys::STATE)?;
        self.be_state = match self.xs.read_state(TxId::NONE, &path) {
            Ok(s) => Some(s),
            Err(e) if e.is_not_found() || e.is_xs(&xenbus::XsError::AccessDenied) => None,
            Err(xenbus::ClientError::State(e)) => {
                log::warn!("vgpu: {path} holds no state ({e}); treating it as absent");
                None
            }
            Err(e) => return Err(Self::xs_err("read", &path)(e)),
        };
        Ok(())
    }

    /// Drains xenstore's watch events: ours update the backend state,
    /// others are queued for the caller.
    pub(crate) fn pump(&mut self) -> Res<P, T, ()> {
        let mut ours = false;
        loop {
            match self.xs.poll_event() {
                Ok(Some(ev)) if ev.token() == self.token => ours = true,
                Ok(Some(ev)) => {
                    if self.others.len() == OTHER_EVENTS_MAX {
                        self.others.pop_front();
                        self.others_lost += 1;
                    }
                    self.others.push_back(ev);
                }
                Ok(None) => break,
                Err(e) => return Err(Self::xs_err("watch event", "")(e)),
            }
        }
        let lost = self.xs.take_lost_events();
        if lost > 0 {
            self.others_lost += lost;
            ours = true;
        }
        if ours && self.dev.is_some() {
            self.refresh_backend_state()?;
        }
        Ok(())
    }

    /// While connected: the backend left `Connected` (closing, closed, its
    /// directory gone, or already starting over at `InitWait`), so the ring
    /// is no longer served.
    pub(crate) fn connection_lost(&self) -> bool {
        self.be_state != Some(XenbusState::Connected)
    }

    /// Waits until the backend's state satisfies `done` (`None`: no state
    /// node). Unless we wait for `Closed`, Closing, Closed and a vanished
    /// state node (the backend's directory went away with its domain) end
    /// the wait with [`Error::BackendClosed`].
    fn wait_backend(
        &mut self,
        want: XenbusState,
        done: impl Fn(Option<XenbusState>) -> bool,
        timeout_ms: u64,
    ) -> Res<P, T, Option<XenbusState>> {
        self.wait_backend_with(want, done, timeout_ms, false)
    }

    /// [`Frontend::wait_backend`]; with `starting_over`, a Closed or
    /// Closing backend is waited out (it closed the device while we were
    /// Closed, and takes it up again once it sees us Initialising).
    fn wait_backend_with(
        &mut self,
        want: XenbusState,
        done: impl Fn(Option<XenbusState>) -> bool,
        timeout_ms: u64,
        starting_over: bool,
    ) -> Res<P, T, Option<XenbusState>> {
        let start = self.platform.now_ms();
        let deadline = start.saturating_add(timeout_ms);
        loop {
            self.pump()?;
            match self.be_state {
                s if done(s) => return Ok(s),
                Some(s @ (XenbusState::Closing | XenbusState::Closed))
                    if want != XenbusState::Closed && !starting_over =>
                {
                    return Err(Error::BackendClosed { state: Some(s) })
                }
                None if want != XenbusState::Closed => {
                    return Err(Error::BackendClosed { state: None })
                }
                _ => {}
            }
            let now = self.platform.now_ms();
            if now >= deadline {
                return Err(Error::BackendTimeout {
                    want,
                    last: self.be_state,
                    waited_ms: now - start,
                });
            }
            self.platform.wait(deadline).map_err(Self::platform_err("wait"))?;
        }
    }

    /// Connects: the whole handshake, then `AttachInfo`. On failure after
    /// granting, every grant is ended again and our state set to Closed.
    pub fn connect(&mut self) -> Res<P, T, AttachInfo> {
        if self.dev.is_none() {
            self.discover()?;
        }
        let result = self.handshake();
        if result.is_err() {
            let t = self.teardown();
            if !t.still_mapped.is_empty() {
                log::warn!(
                    "vgpu: grants still mapped after a failed connect: {:?}",
                    t.still_mapped
                );
            }
        }
        result
    }

    pub(crate) fn handshake(&mut self) -> Res<P, T, AttachInfo> {
        self.handshake_with(false)
    }

    /// The handshake; `starting_over`: with a backend that may still show
    /// Closed from before we went back to Initialising (a reconnect).
    pub(crate) fn handshake_with(&mut self, starting_over: bool) -> Res<P, T, AttachInfo> {
        let state_path = self.be_path(keys::STATE)?;
        let token = self.token.clone();
        self.xs.watch(&state_path, &token).map_err(Self::xs_err("watch", &state_path))?;
        self.refresh_backend_state()?;
        let timeout = self.opts.handshake_timeout_ms;
        let init_wait = |s| s == Some(XenbusState::InitWait);
        self.wait_backend_with(XenbusState::InitWait, init_wait, timeout, starting_over)?;

        let versions_path = self.be_path(keys::VERSIONS)?;
        let offered = self.read_opt(&versions_path)?.unwrap_or_default();
        let version = keys::negotiate(&offered, keys::PROTOCOL_VERSION)
            .ok_or(Error::NoCommonVersion { offered, wanted: keys::PROTOCOL_VERSION })?;
        let max_path = self.be_path(keys::MAX_ENTRIES)?;
        if let Some(v) = self.read_opt(&max_path)? {
            let max = keys::parse_u32(&v).filter(|&m| m > 0);
            let max = max.ok_or(Error::BadNode { path: max_path, value: v })?;
            self.max_entries = (max as usize).min(MAX_ENTRIES);
        }

        let backend = self.dev()?.backend_id;
        let ring =
            self.platform.grant_page(backend, false).map_err(Self::platform_err("grant ring"))?;
        let front = FrontRing::init(&mut RingPage { platform: &mut self.platform, page: ring.id });
        let port = match self.platform.alloc_unbound(backend) {
            Ok(p) => p,
            Err(e) => {
                let _ = self.platform.end_access(ring.id);
                return Err(Self::platform_err("alloc unbound port")(e));
            }
        };
        self.conn = Some(Conn { ring, front, port });
        while self.dirs.len() < MAX_DIR_PAGES {
            let d = self.platform.grant_page(backend, true);
            self.dirs.push(d.map_err(Self::platform_err("grant directory page"))?);
        }
        self.publish(version, ring.gref, port)?;
        let timeout = self.opts.handshake_timeout_ms;
        let connected = |s| s == Some(XenbusState::Connected);
        self.wait_backend(XenbusState::Connected, connected, timeout)?;
        let path = self.fe_path(keys::STATE)?;
        self.xs
            .write_state(TxId::NONE, &path, XenbusState::Connected)
            .map_err(Self::xs_err("write", &path))?;
        let rsp = self.call(gpuif::Op::AttachInfo, 0, &[])?;
        if rsp.status != gpuif::Status::OK {
            return Err(Error::Refused { op: gpuif::Op::AttachInfo, status: rsp.status, value: 0 });
        }
        self.info = rsp.info;
        Ok(rsp.info)
    }

    /// Grows the directory pool to `pages` read-only pages (a pipeline keeps
    /// several requests' entries in it at once); the pool shrinks back to
    /// [`MAX_DIR_PAGES`] with the next connection.
    pub fn grow_dir_pool(&mut self, pages: usize) -> Res<P, T, ()> {
        let backend = self.dev()?.backend_id;
        if self.conn.is_none() {
            return Err(Error::NotConnected);
        }
        while self.dirs.len() < pages {
            let d = self.platform.grant_page(backend, true);
            self.dirs.push(d.map_err(Self::platform_err("grant directory page"))?);
        }
        Ok(())
    }

    /// Stops using the connection: closes the port and moves the ring and
    /// directory pages to the ones whose grant must end (`limbo`).
    pub(crate) fn abandon_connection(&mut self) {
        if let Some(c) = self.conn.take() {
            if let Err(e) = self.platform.close_port(c.port) {
                log::warn!("vgpu: cannot close port {}: {e}", c.port);
            }
            self.limbo.push(c.ring);
        }
        self.limbo.append(&mut self.dirs);
        self.stash.clear();
    }

    /// A failed handshake: ends the grants of the ring and the directory
    /// pool (freeing them, or keeping them for later while the backend
    /// maps them) and closes the port; the pages stay.
    pub(crate) fn drop_connection(&mut self) {
        self.abandon_connection();
        let platform = &mut self.platform;
        self.limbo.retain(|g| {
            matches!(platform.end_access(g.id), Err(crate::EndAccessError::StillMapped { .. }))
        });
    }

    /// Step 5: one transaction with the ring, the port and `Initialised`.
    fn publish(&mut self, version: u32, ring_ref: u32, port: Port) -> Res<P, T, ()> {
        let nodes = [
            (self.fe_path(keys::VERSION)?, version.to_string()),
            (self.fe_path(keys::RING_REF)?, ring_ref.to_string()),
            (self.fe_path(keys::EVENT_CHANNEL)?, port.to_string()),
            (self.fe_path(keys::STATE)?, XenbusState::Initialised.as_str().to_string()),
        ];
        self.wrote_state = true;
        for _ in 0..TX_ATTEMPTS {
            let tx = self.xs.transaction_start().map_err(Self::xs_err("transaction_start", ""))?;
            for (path, value) in &nodes {
                if let Err(e) = self.xs.write(tx, path, value.as_bytes()) {
                    let _ = self.xs.transaction_end(tx, false);
                    return Err(Self::xs_err("write", path)(e));
                }
            }
            match self.xs.transaction_end(tx, true) {
                Ok(TxOutcome::Committed) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(Self::xs_err("transaction_end", "")(e)),
            }
        }
        Err(Error::TransactionConflict { attempts: TX_ATTEMPTS })
    }

    /// Waits until something happens: a watch event of another token, the
    /// backend closing (while connected), or the deadline.
    pub fn idle(&mut self, deadline_ms: u64) -> Res<P, T, Happening> {
        loop {
            self.pump()?;
            if let Some(ev) = self.others.pop_front() {
                return Ok(Happening::Event(Box::new(ev)));
            }
            if self.conn.is_some() && self.connection_lost() {
                return Ok(Happening::BackendClosed(self.be_state));
            }
            if self.platform.now_ms() >= deadline_ms {
                return Ok(Happening::Timeout);
            }
            self.platform.wait(deadline_ms).map_err(Self::platform_err("wait"))?;
        }
    }

    /// Disconnects: `Closing`, wait (bounded) for the backend's `Closed`,
    /// end every grant, close the port, `Closed`. Also the way to clean up
    /// after the backend closed by itself.
    pub fn disconnect(&mut self) -> Res<P, T, Teardown> {
        if self.dev.is_none() {
            return Ok(Teardown::default());
        }
        self.pump()?;
        let mut closed = matches!(self.be_state, None | Some(XenbusState::Closed));
        if !closed {
            let path = self.fe_path(keys::STATE)?;
            self.xs
                .write_state(TxId::NONE, &path, XenbusState::Closing)
                .map_err(Self::xs_err("write", &path))?;
            self.wrote_state = true;
            let timeout = self.opts.close_timeout_ms;
            let gone = |s| matches!(s, None | Some(XenbusState::Closed));
            closed = match self.wait_backend(XenbusState::Closed, gone, timeout) {
                Ok(_) => true,
                Err(Error::BackendTimeout { .. }) => false,
                Err(e) => return Err(e),
            };
        }
        let mut t = self.teardown();
        t.backend_closed = closed || self.be_state.is_none();
        Ok(t)
    }

    /// Ends every grant (pages, directory pool, ring last), closes the port,
    /// writes `Closed` if we wrote a state before, and stops watching.
    fn teardown(&mut self) -> Teardown {
        let mut t = Teardown { backend_state: self.be_state, ..Teardown::default() };
        let conn = self.conn.take();
        let ring = conn.as_ref().map(|c| c.ring);
        let mut keep = Vec::new(); // grants the backend still maps: ours, to retry later
        let all: Vec<Granted> = self
            .pages
            .drain(..)
            .chain(self.dirs.drain(..))
            .chain(self.limbo.drain(..))
            .chain(ring)
            .collect();
        self.released.clear();
        self.record.clear();
        for g in all {
            match self.platform.end_access(g.id) {
                Ok(()) => t.grants_ended += 1,
                Err(e) => {
                    log::warn!("vgpu: cannot end grant {}: {e}", g.gref);
                    t.still_mapped.push(g.gref);
                    keep.push(g);
                }
            }
        }
        self.pages = keep;
        if let Some(c) = conn {
            if let Err(e) = self.platform.close_port(c.port) {
                log::warn!("vgpu: cannot close port {}: {e}", c.port);
            }
        }
        self.stash.clear();
        let lost = self.lost.take();
        if let Some(dev) = self.dev.clone() {
            if self.wrote_state && self.device_present() {
                let path = format!("{}/{}", dev.frontend_dir, keys::STATE);
                if let Err(e) = self.xs.write_state(TxId::NONE, &path, XenbusState::Closed) {
                    log::warn!("vgpu: cannot write {path}: {e}");
                }
            }
            let state_path = format!("{}/{}", dev.backend_dir, keys::STATE);
            let _ = self.xs.unwatch(&state_path, &self.token);
            if let Some(lost) = lost {
                let old = format!("{}/{}", lost.backend_dir, keys::STATE);
                let _ = self.xs.unwatch(&old, &self.token);
                self.unwatch_for_reconnect();
            }
            self.xs.forget_events(&self.token);
        }
        t
    }

    /// Whether our device directory still exists (it has a `backend` node):
    /// the toolstack removes it at detach, and a write would create it again.
    pub(crate) fn device_present(&mut self) -> bool {
        let Ok(path) = self.fe_path(xenbus::state::keys::BACKEND) else { return false };
        !matches!(self.read_opt(&path), Ok(None))
    }
}
