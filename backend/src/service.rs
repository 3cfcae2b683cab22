//! The backend service: every vgpu device the toolstack created for gpu-dom,
//! driven by xenstore watches and event-channel notifications.
//!
//! The caller (the unikernel's event loop, or a host test) owns the xenstore
//! client and the event channels; it calls [`Service::start`] once, then
//! [`Service::on_watches`] for a batch of watch events gathered in a
//! [`Rescan`] (or [`Service::on_watch_event`] for one; each looks again only
//! at the device the event's path names, see `service/rescan.rs`),
//! [`Service::on_lost_events`]
//! whenever the client had to drop events, [`Service::on_event`] for every
//! notification on a port, and [`Service::shutdown`] before gpu-dom exits.
//! All waiting happens in the caller, and so does reporting: each
//! [`Change`] is the one record of what happened to a device.
//!
//! Statistics go to `data/vgpu/` (`gpuif::keys::STATS_ROOT`), outside the
//! watched tree: serving a ring never fires gpu-dom's own watches.
//!
//! # Invariants
//! - Only devices under gpu-dom's own `backend/vgpu/` that validate are
//!   served (see `device.rs`): the toolstack decides whom gpu-dom serves.
//! - A device whose directory disappears, whose guest disappears, whose
//!   guest closes, or whose guest breaks the ring protocol is revoked before
//!   anything else happens to it; other devices are not disturbed.

use core::fmt::Write as _;

use gpuif::keys;
use gpuif::wire::MAX_ENTRIES;
use gpuif::RING_SIZE;
use gtt::{DomId, GpuTables, GrantMapper};
use xenbus::wire::TxId;
use xenbus::{Client, Transport, XenbusState};

use crate::device::{self, Connector, Device, DeviceError, Path, Refused, Until};
use crate::{Backend, CpuAccess};

mod rescan;
pub use rescan::{backend_target, frontend_device, Rescan, Target, MAX_TARGETS};

/// Devices served at once: 64 small guests (`cargo xtask scale`), or 16
/// guests with `vgpu attach`'s default limits (the pools are the bound
/// then: see `src/vgpu.rs`).
pub const MAX_DEVICES: usize = 64;
/// Watch token for gpu-dom's `backend/vgpu` tree.
pub const TOKEN_BACKEND: &str = "vgpu-backend";
/// Watch token for `@releaseDomain` (some domain died).
pub const TOKEN_RELEASE: &str = "vgpu-release";
/// Watch token for the frontends' directories.
pub const TOKEN_FRONTEND: &str = "vgpu-frontend";
/// Work served per device turn before yielding to other devices, in
/// `Backend::serve` units (a request costs 1 plus the entries it named or
/// applied):
/// two of the longest requests, or a ring's worth of small ones many times
/// over. What one guest's turn can cost the others is bounded by this, not
/// by the number of requests it queues.
pub const BUDGET: u32 = 2 * MAX_ENTRIES as u32;

/// How much of xenstore a rescan reads again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// Everything: the device directories, and the toolstack's side of
    /// every device validated again.
    Full,
    /// Only what frontends change: each device's frontend state.
    Frontends,
}

/// What happened to a device, for the caller's log and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Validated and waiting for the frontend.
    InitWait { fe: DomId, devid: u32 },
    /// Ring mapped, event channel bound (`port` is the local port to wait on).
    Connected { fe: DomId, devid: u32, port: u32 },
    /// Not served: validation or connection failed.
    Refused { fe: DomId, devid: u32, error: DeviceError },
    /// Revoked and closed (`why` says what triggered it).
    Closed { fe: DomId, devid: u32, why: &'static str, grants_unmapped: u32 },
}

/// The backend service.
pub struct Service<M, W, D, C: Connector> {
    pub backend: Backend<M, W, D>,
    pub connector: C,
    devices: heapless::Vec<Device<C::Ring>, MAX_DEVICES>,
    /// Pool figures as last published (`keys::POOL_ROOT`), to write only changes.
    pools_published: [[u64; 3]; 5],
}

impl<M, W, D, C> Service<M, W, D, C>
where
    M: GrantMapper,
    W: GpuTables,
    D: CpuAccess,
    C: Connector,
{
    /// A service around a backend.
    pub fn new(backend: Backend<M, W, D>, connector: C) -> Self {
        Service {
            backend,
            connector,
            devices: heapless::Vec::new(),
            pools_published: [[u64::MAX; 3]; 5],
        }
    }

    /// The engine (read-only: counters, pools, lookups).
    pub fn engine(&self) -> &gtt::Engine<M, W> {
        self.backend.engine()
    }

    /// The platform's CPU-side access.
    pub fn cpu_access(&self) -> &D {
        self.backend.cpu_access()
    }

    /// The devices known now.
    pub fn devices(&self) -> impl Iterator<Item = &Device<C::Ring>> {
        self.devices.iter()
    }

    /// Publishes what gpu-dom offers and sets its watches; then serves the
    /// devices that already exist.
    pub fn start<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        changes: &mut impl FnMut(Change),
    ) -> Result<(), xenbus::ClientError<T::Error>> {
        let mut total: heapless::String<16> = heapless::String::new();
        let _ = write!(total, "{}", self.backend.engine().caps().ggtt_entries);
        xs.write(TxId::NONE, keys::GGTT_TOTAL, total.as_bytes())?;
        self.publish_pools(xs);
        xs.watch("backend/vgpu", TOKEN_BACKEND)?;
        xs.watch("@releaseDomain", TOKEN_RELEASE)?;
        self.rescan(xs, Scan::Full, changes);
        Ok(())
    }

    /// Handles one watch event by its token alone: a rescan of every
    /// device, idempotent ([`Self::on_watches`] looks only at the devices
    /// the events' paths name). An event on a frontend's state ([`TOKEN_FRONTEND`]) only
    /// steps the devices along the handshake; the toolstack's side (the
    /// device directories, their limits and permissions) can change only
    /// with an event under `backend/vgpu` ([`TOKEN_BACKEND`]), and is read
    /// and validated again only then (or after a domain died): a frontend
    /// cycling its state costs gpu-dom two reads per device, not a
    /// validation of every device.
    pub fn on_watch<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        token: &str,
        changes: &mut impl FnMut(Change),
    ) {
        match token {
            TOKEN_BACKEND | TOKEN_RELEASE => self.rescan(xs, Scan::Full, changes),
            TOKEN_FRONTEND => self.rescan(xs, Scan::Frontends, changes),
            _ => {}
        }
    }

    /// The xenstore client dropped watch events (its queue was full): one of
    /// them may have mattered (a guest's directory vanishing), so everything
    /// is brought in line with xenstore again. Call it whenever
    /// `Client::take_lost_events` is nonzero.
    pub fn on_lost_events<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        changes: &mut impl FnMut(Change),
    ) {
        self.rescan(xs, Scan::Full, changes);
    }

    /// Serves the device bound to local `port`. Returns true if requests
    /// remain (call again after other work).
    pub fn on_event<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        port: u32,
        changes: &mut impl FnMut(Change),
    ) -> bool {
        let Some(i) =
            self.devices.iter().position(|d| d.live.as_ref().is_some_and(|l| l.port == port))
        else {
            return false;
        };
        let dev = &mut self.devices[i];
        let live = dev.live.as_mut().expect("found by its live port");
        match self.backend.serve(&mut live.conn, &mut live.ring, BUDGET) {
            Ok(served) => {
                if served.notify {
                    self.connector.notify(port);
                }
                self.publish_stats(xs, i);
                self.publish_pools(xs);
                served.more
            }
            Err(_) => {
                self.devices[i].counters.ring_errors += 1;
                self.close(xs, i, "ring protocol violation", changes);
                false
            }
        }
    }

    /// Revokes every device and writes Closed (gpu-dom is shutting down).
    pub fn shutdown<T: Transport>(&mut self, xs: &mut Client<T>, changes: &mut impl FnMut(Change)) {
        for i in 0..self.devices.len() {
            self.close(xs, i, "backend shutting down", changes);
        }
    }

    /// Brings every device in line with xenstore.
    fn rescan<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        scan: Scan,
        changes: &mut impl FnMut(Change),
    ) {
        if scan == Scan::Frontends {
            for i in 0..self.devices.len() {
                self.step(xs, i, scan, changes);
            }
            return;
        }
        // Devices whose directory vanished: revoke and forget.
        let mut i = 0;
        while i < self.devices.len() {
            let be = self.devices[i].be_path();
            if exists(xs, &be) {
                i += 1;
            } else {
                self.close_silently(i, "backend directory removed", changes);
                self.devices.swap_remove(i);
            }
        }
        // New devices.
        for (fe, devid) in list_devices(xs) {
            if !self.devices.iter().any(|d| d.fe == fe && d.devid == devid) {
                self.take_on(xs, fe, devid);
            }
        }
        for i in 0..self.devices.len() {
            self.step(xs, i, scan, changes);
        }
        self.publish_pools(xs);
    }

    /// A new device: remembered, its frontend's state watched. Returns its
    /// index, or `None` when gpu-dom already has [`MAX_DEVICES`].
    fn take_on<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        fe: DomId,
        devid: u32,
    ) -> Option<usize> {
        if self.devices.push(Device::new(fe, devid)).is_err() {
            log::warn!("vgpu dom{}/{devid}: more than {MAX_DEVICES} devices; not served", fe.0);
            return None;
        }
        let dev = self.devices.last().expect("just pushed");
        let fe_state = path_of(format_args!("{}/{}", dev.fe_path(), "state"));
        let _ = xs.watch(&fe_state, TOKEN_FRONTEND);
        Some(self.devices.len() - 1)
    }

    /// Moves device `i` one step along the handshake, given xenstore now.
    fn step<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        i: usize,
        scan: Scan,
        changes: &mut impl FnMut(Change),
    ) {
        let toolstack_may_have_changed = scan == Scan::Full;
        let dev = &self.devices[i];
        let fe_state = match device::frontend_state(xs, dev) {
            Ok(s) => s,
            Err(_) => return,
        };
        let online = device::online(xs, dev).unwrap_or(true);
        let closing = matches!(fe_state, None | Some(XenbusState::Closing | XenbusState::Closed));
        if !online || closing {
            if dev.attached || dev.live.is_some() || !matches!(dev.state, XenbusState::Closed) {
                let why = if !online {
                    "toolstack detach"
                } else if fe_state.is_none() {
                    "guest gone"
                } else {
                    "frontend closed"
                };
                self.close(xs, i, why, changes);
            }
            return;
        }
        match dev.state {
            XenbusState::Unknown => self.probe(xs, i, changes),
            XenbusState::Closed => {
                // Refused or closed earlier: nothing is written here (a write
                // would fire our own watch). The device is probed again only
                // when the refused party changed something.
                let starts_over =
                    matches!(fe_state, Some(XenbusState::Initialising | XenbusState::InitWait));
                let again = match &dev.refused {
                    None | Some(Refused { until: Until::FrontendRestarts, .. }) => starts_over,
                    Some(Refused { until: Until::ToolstackChanges(seen), .. }) => {
                        toolstack_may_have_changed && device::validate(xs, dev) != *seen
                    }
                };
                if again {
                    self.probe(xs, i, changes);
                }
            }
            XenbusState::InitWait | XenbusState::Connected => {
                // The toolstack's decision can change under a served device:
                // limits that became guest-writable or different end service.
                let checked =
                    if toolstack_may_have_changed { Some(device::validate(xs, dev)) } else { None };
                match checked {
                    Some(Err(e)) => {
                        let until = Until::ToolstackChanges(Err(e.clone()));
                        return self.refuse(xs, i, e, until, changes);
                    }
                    Some(Ok(l)) if Some(l) != self.backend.engine().guest_limits(dev.fe) => {
                        let until = Until::ToolstackChanges(Ok(l));
                        return self.refuse(xs, i, DeviceError::LimitsChanged, until, changes);
                    }
                    _ => {}
                }
                let ready =
                    matches!(fe_state, Some(XenbusState::Initialised | XenbusState::Connected));
                if dev.state == XenbusState::InitWait && ready {
                    self.connect(xs, i, changes)
                }
            }
            _ => {}
        }
    }

    /// Validates device `i`, attaches its guest, moves to InitWait.
    fn probe<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        i: usize,
        changes: &mut impl FnMut(Change),
    ) {
        let dev = &self.devices[i];
        let (fe, devid) = (dev.fe, dev.devid);
        let limits = match device::validate(xs, dev) {
            Ok(l) => l,
            Err(e) => {
                let until = Until::ToolstackChanges(Err(e.clone()));
                return self.refuse(xs, i, e, until, changes);
            }
        };
        if let Err(r) = self.backend.engine_mut().attach(fe, limits) {
            let until = Until::ToolstackChanges(Ok(limits));
            return self.refuse(xs, i, DeviceError::Refused(r), until, changes);
        }
        let dev = &mut self.devices[i];
        dev.attached = true;
        dev.refused = None;
        let be = dev.be_path();
        dev.guest_name.clear();
        if let Ok(name) = xs.read(TxId::NONE, &path_of(format_args!("{be}/{}", keys::GUEST_NAME))) {
            for c in name.iter().take(64).map(|&b| b as char) {
                let printable = c.is_ascii_graphic() || c == ' ';
                let _ = dev.guest_name.push(if printable { c } else { '?' });
            }
        }
        let mut n: heapless::String<16> = heapless::String::new();
        let _ = write!(n, "{}", MAX_ENTRIES.min(self.backend.engine().config().max_batch));
        let mut slots: heapless::String<16> = heapless::String::new();
        let _ = write!(slots, "{RING_SIZE}");
        let mut ok =
            xs.write(TxId::NONE, &path_of(format_args!("{be}/{}", keys::VERSIONS)), b"1").is_ok();
        ok &= xs
            .write(TxId::NONE, &path_of(format_args!("{be}/{}", keys::MAX_ENTRIES)), n.as_bytes())
            .is_ok();
        ok &= xs
            .write(
                TxId::NONE,
                &path_of(format_args!("{be}/{}", keys::RING_SLOTS)),
                slots.as_bytes(),
            )
            .is_ok();
        ok &= device::set_state(xs, dev, XenbusState::InitWait).is_ok();
        if ok {
            log::info!(
                "vgpu dom{}/{devid}: attached: GGTT slice {}+{}, {} contexts, {} pages",
                fe.0,
                limits.ggtt_base,
                limits.ggtt_len,
                limits.max_contexts,
                limits.max_pages
            );
            changes(Change::InitWait { fe, devid });
        }
    }

    /// Maps the ring and binds the event channel of device `i`.
    fn connect<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        i: usize,
        changes: &mut impl FnMut(Change),
    ) {
        let dev = &self.devices[i];
        let (fe, devid) = (dev.fe, dev.devid);
        match device::connect(xs, dev, &mut self.connector) {
            Ok(live) => {
                let port = live.port;
                let dev = &mut self.devices[i];
                dev.live = Some(live);
                dev.counters.connects += 1;
                if device::set_state(xs, dev, XenbusState::Connected).is_ok() {
                    changes(Change::Connected { fe, devid, port });
                }
            }
            Err(e) => self.refuse(xs, i, e, Until::FrontendRestarts, changes),
        }
    }

    /// Device `i` is not served: says why in xenstore and the log, revokes
    /// anything attached, and closes; then waits, without writing, `until`.
    fn refuse<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        i: usize,
        error: DeviceError,
        until: Until,
        changes: &mut impl FnMut(Change),
    ) {
        let (fe, devid) = (self.devices[i].fe, self.devices[i].devid);
        log::warn!("vgpu dom{}/{devid}: not served: {error}", fe.0);
        let dev = &mut self.devices[i];
        let mut msg: heapless::String<160> = heapless::String::new();
        let _ = write!(msg, "{error}");
        let _ =
            xs.write(TxId::NONE, &path_of(format_args!("{}/error", dev.be_path())), msg.as_bytes());
        device::disconnect(&mut self.backend, dev, &mut self.connector);
        let _ = device::set_state(xs, dev, XenbusState::Closed);
        dev.refused = Some(Refused { error: error.clone(), until });
        changes(Change::Refused { fe, devid, error });
    }

    /// Revokes device `i` and writes Closed.
    fn close<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        i: usize,
        why: &'static str,
        changes: &mut impl FnMut(Change),
    ) {
        self.close_silently(i, why, changes);
        let dev = &self.devices[i];
        let stats = path_of(format_args!("{}/{}/{}", keys::STATS_ROOT, dev.fe.0, dev.devid));
        let _ = xs.rm(TxId::NONE, &stats);
        self.devices[i].published = [u64::MAX; 4];
        let dev = &mut self.devices[i];
        if exists(xs, &dev.be_path()) {
            let _ = device::set_state(xs, dev, XenbusState::Closed);
        }
    }

    /// Revokes device `i` without touching xenstore (its directory is gone).
    fn close_silently(&mut self, i: usize, why: &'static str, changes: &mut impl FnMut(Change)) {
        let dev = &mut self.devices[i];
        let was_active = dev.attached || dev.live.is_some();
        let rel = device::disconnect(&mut self.backend, dev, &mut self.connector);
        dev.state = XenbusState::Closed;
        if was_active {
            changes(Change::Closed {
                fe: dev.fe,
                devid: dev.devid,
                why,
                grants_unmapped: rel.grants_unmapped,
            });
        }
    }

    /// Writes the device's statistics (`data/vgpu/<fe>/<devid>/`) where they
    /// changed.
    fn publish_stats<T: Transport>(&mut self, xs: &mut Client<T>, i: usize) {
        let dev = &self.devices[i];
        let Some(s) = self.backend.engine().guest_stats(dev.fe) else { return };
        let now = [
            s.pages as u64,
            (s.ggtt_entries + s.ppgtt_entries) as u64,
            s.contexts as u64,
            s.refused,
        ];
        let dir = path_of(format_args!("{}/{}/{}", keys::STATS_ROOT, dev.fe.0, dev.devid));
        for (k, name) in keys::STATS_KEYS.iter().enumerate() {
            let p = || path_of(format_args!("{dir}/{name}"));
            write_if_changed(xs, p, now[k], &mut self.devices[i].published[k]);
        }
    }

    /// Writes gpu-dom's pools (`data/vgpu-pool/<pool>/{capacity,reserved,used}`)
    /// where they changed. Outside the watched tree, like the statistics.
    fn publish_pools<T: Transport>(&mut self, xs: &mut Client<T>) {
        for (k, (pool, u)) in self.backend.engine().pools().into_iter().enumerate() {
            let now = [u.capacity, u.reserved, u.used];
            for (j, key) in keys::POOL_KEYS.iter().enumerate() {
                let p = || path_of(format_args!("{}/{}/{key}", keys::POOL_ROOT, pool.name()));
                write_if_changed(xs, p, now[j], &mut self.pools_published[k][j]);
            }
        }
    }
}

/// Writes `now` to the path `p` makes unless it is what was last written
/// there (`last`, updated when the write succeeds); the path is formatted
/// only when there is something to write.
fn write_if_changed<T: Transport>(
    xs: &mut Client<T>,
    p: impl FnOnce() -> Path,
    now: u64,
    last: &mut u64,
) {
    if now == *last {
        return;
    }
    let mut v: heapless::String<24> = heapless::String::new();
    let _ = write!(v, "{now}");
    if xs.write(TxId::NONE, &p(), v.as_bytes()).is_ok() {
        *last = now;
    }
}

fn path_of(args: core::fmt::Arguments<'_>) -> Path {
    let mut p = Path::new();
    let _ = p.write_fmt(args);
    p
}

fn exists<T: Transport>(xs: &mut Client<T>, p: &str) -> bool {
    match xs.read(TxId::NONE, p) {
        Ok(_) => true,
        Err(e) => !e.is_not_found(),
    }
}

/// Every `(frontend, devid)` under `backend/vgpu/`. Entries that are not
/// numbers are ignored (and logged).
fn list_devices<T: Transport>(xs: &mut Client<T>) -> heapless::Vec<(DomId, u32), MAX_DEVICES> {
    let mut out = heapless::Vec::new();
    let mut fes: heapless::Vec<u16, MAX_DEVICES> = heapless::Vec::new();
    if let Ok(list) = xs.directory(TxId::NONE, "backend/vgpu") {
        for name in list.iter() {
            match gpuif::keys::parse_u32(name).and_then(|v| u16::try_from(v).ok()) {
                Some(fe) => {
                    let _ = fes.push(fe);
                }
                None => log::debug!("backend/vgpu: ignoring entry that is not a domid"),
            }
        }
    }
    for fe in fes {
        let dir = path_of(format_args!("backend/vgpu/{fe}"));
        let mut devids: heapless::Vec<u32, MAX_DEVICES> = heapless::Vec::new();
        if let Ok(list) = xs.directory(TxId::NONE, &dir) {
            for name in list.iter() {
                if let Some(d) = gpuif::keys::parse_u32(name) {
                    let _ = devids.push(d);
                }
            }
        }
        for d in devids {
            let _ = out.push((DomId(fe), d));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_published_pool_names_are_gtts() {
        let names = gtt::Pool::ALL.map(|p| p.name());
        assert_eq!(names, gpuif::keys::POOLS);
    }
}
