//! Which devices a batch of watch events names, so that gpu-dom looks again
//! at those devices only, not at every device it serves.
//!
//! An event under gpu-dom's `backend/vgpu` names a frontend's directory
//! (`backend/vgpu/<fe>`) or one device (`backend/vgpu/<fe>/<devid>/...`);
//! an event on a frontend's state names one device
//! (`/local/domain/<fe>/device/vgpu/<devid>/state`). Looking at a named
//! device costs a constant number of xenstore requests, whatever the number
//! of devices; before, every such event re-listed and re-validated every
//! device (about 30 + 18 requests per device per event, measured on the
//! model xenstored).
//!
//! # Invariants
//! - Nothing is missed: an event whose path names no device (the watched
//!   node itself, a path that is not understood), `@releaseDomain` (some
//!   domain died: which one is not said), events the client dropped, and
//!   more named devices than a [`Rescan`] holds all fall back to a full
//!   rescan, as before.
//! - A device named by a backend event is validated again, as a full
//!   rescan would (the toolstack's side may have changed); a device named
//!   only by a frontend event has only its frontend state read.

use gpuif::keys::parse_u32;
use gtt::{DomId, GpuTables, GrantMapper};
use xenbus::wire::TxId;
use xenbus::{Client, Transport};

use super::{exists, path_of, Change, Scan, Service, TOKEN_BACKEND, TOKEN_FRONTEND, TOKEN_RELEASE};
use crate::device::Connector;
use crate::CpuAccess;

/// Devices one [`Rescan`] names before it becomes a full rescan (one per
/// watch event gpu-dom takes in a round, `XS_EVENTS_PER_ROUND` in the image).
pub const MAX_TARGETS: usize = 32;

/// What a backend event names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every device of one frontend domain (`backend/vgpu/<fe>`).
    Frontend(DomId),
    /// One device (`backend/vgpu/<fe>/<devid>` or below).
    Device(DomId, u32),
}

/// What a batch of watch events asks the service to look at again
/// ([`super::Service::on_watches`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rescan {
    /// Every device, both sides.
    pub(super) full: bool,
    /// Every device's frontend state.
    pub(super) all_frontends: bool,
    /// Devices whose toolstack side (and frontend state) is read again.
    pub(super) backend: heapless::Vec<Target, MAX_TARGETS>,
    /// Devices whose frontend state is read again.
    pub(super) frontend: heapless::Vec<(DomId, u32), MAX_TARGETS>,
}

impl Rescan {
    /// Adds one watch event; returns false if `token` is not the service's.
    pub fn add(&mut self, token: &str, path: &str) -> bool {
        match token {
            TOKEN_BACKEND => match backend_target(path) {
                Some(t) if !self.backend.contains(&t) => {
                    if self.backend.push(t).is_err() {
                        self.full = true;
                    }
                }
                Some(_) => {}
                None => self.full = true,
            },
            TOKEN_FRONTEND => match frontend_device(path) {
                Some(d) if !self.frontend.contains(&d) => {
                    if self.frontend.push(d).is_err() {
                        self.all_frontends = true;
                    }
                }
                Some(_) => {}
                None => self.all_frontends = true,
            },
            TOKEN_RELEASE => self.full = true,
            _ => return false,
        }
        true
    }

    /// The client dropped events: one of them may have mattered.
    pub fn lost_events(&mut self) {
        self.full = true;
    }

    /// True when no event of the service was added.
    pub fn is_empty(&self) -> bool {
        !self.full && !self.all_frontends && self.backend.is_empty() && self.frontend.is_empty()
    }

    /// True when it falls back to looking at every device's toolstack side.
    pub fn is_full(&self) -> bool {
        self.full
    }
}

/// The part of `path` below gpu-dom's `backend/vgpu`, with the path given
/// relative (as xenstored reports events of a relative watch) or absolute.
fn below_backend(path: &str) -> Option<&str> {
    const BE: &str = "backend/vgpu";
    if let Some(rest) = path.strip_prefix(BE) {
        return Some(rest);
    }
    let (_, rest) = path.strip_prefix("/local/domain/")?.split_once('/')?;
    rest.strip_prefix(BE)
}

/// The device(s) a `backend/vgpu` event names; `None` when the path names
/// none (the watched node itself, or a path not understood): a full rescan.
pub fn backend_target(path: &str) -> Option<Target> {
    let rest = below_backend(path)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let fe = parts.next().and_then(parse_u32).and_then(|v| u16::try_from(v).ok())?;
    match parts.next() {
        // A node that is not a device id is no device; the frontend's
        // directory is listed again (the full rescan ignores it too).
        Some(d) => {
            Some(parse_u32(d).map_or(Target::Frontend(DomId(fe)), |d| Target::Device(DomId(fe), d)))
        }
        None => Some(Target::Frontend(DomId(fe))),
    }
}

/// The device a frontend-state event names
/// (`/local/domain/<fe>/device/vgpu/<devid>/state`).
pub fn frontend_device(path: &str) -> Option<(DomId, u32)> {
    let (fe, rest) = path.strip_prefix("/local/domain/")?.split_once('/')?;
    let fe = parse_u32(fe).and_then(|v| u16::try_from(v).ok())?;
    let devid = rest.strip_prefix("device/vgpu/")?.strip_suffix("/state")?;
    Some((DomId(fe), parse_u32(devid)?))
}

impl<M, W, D, C> Service<M, W, D, C>
where
    M: GrantMapper,
    W: GpuTables,
    D: CpuAccess,
    C: Connector,
{
    /// Handles a batch of watch events (see the module documentation):
    /// a full rescan if any asked for one, otherwise only the devices the
    /// events named.
    pub fn on_watches<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        r: &Rescan,
        changes: &mut impl FnMut(Change),
    ) {
        if r.full {
            return self.rescan(xs, Scan::Full, changes);
        }
        for &t in r.backend.iter() {
            self.look_at(xs, t, changes);
        }
        for &(fe, devid) in r.frontend.iter() {
            let named = |t: &Target| match *t {
                Target::Frontend(f) => f == fe,
                Target::Device(f, d) => (f, d) == (fe, devid),
            };
            if r.backend.iter().any(named) {
                continue; // stepped above, both sides
            }
            if let Some(i) = self.find(fe, devid) {
                self.step(xs, i, Scan::Frontends, changes);
            }
        }
        if r.all_frontends {
            self.rescan(xs, Scan::Frontends, changes);
        }
        if !r.backend.is_empty() {
            self.publish_pools(xs);
        }
    }

    /// One watch event (`token`, `path`), as [`Self::on_watches`] handles it.
    pub fn on_watch_event<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        token: &str,
        path: &str,
        changes: &mut impl FnMut(Change),
    ) {
        let mut r = Rescan::default();
        if r.add(token, path) {
            self.on_watches(xs, &r, changes);
        }
    }

    fn find(&self, fe: DomId, devid: u32) -> Option<usize> {
        self.devices.iter().position(|d| d.fe == fe && d.devid == devid)
    }

    /// Brings the device(s) `t` names in line with xenstore: forgotten if
    /// their directory is gone, taken on if new, stepped otherwise.
    fn look_at<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        t: Target,
        changes: &mut impl FnMut(Change),
    ) {
        match t {
            Target::Device(fe, devid) => {
                let present = exists(xs, &path_of(format_args!("backend/vgpu/{}/{devid}", fe.0)));
                self.reconcile(xs, fe, devid, present, changes);
            }
            Target::Frontend(fe) => {
                let dir = path_of(format_args!("backend/vgpu/{}", fe.0));
                let listed: heapless::Vec<u32, { super::MAX_DEVICES }> =
                    match xs.directory(TxId::NONE, &dir) {
                        Ok(list) => {
                            list.iter().filter_map(parse_u32).take(super::MAX_DEVICES).collect()
                        }
                        Err(e) if e.is_not_found() => heapless::Vec::new(),
                        // Unreadable: not a named device's business; look at everything.
                        Err(_) => return self.rescan(xs, Scan::Full, changes),
                    };
                let known: heapless::Vec<u32, { super::MAX_DEVICES }> =
                    self.devices.iter().filter(|d| d.fe == fe).map(|d| d.devid).collect();
                for devid in known.iter().chain(listed.iter().filter(|d| !known.contains(d))) {
                    self.reconcile(xs, fe, *devid, listed.contains(devid), changes);
                }
            }
        }
    }

    /// Device `fe`/`devid`, whose backend directory is `present` or not.
    fn reconcile<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        fe: DomId,
        devid: u32,
        present: bool,
        changes: &mut impl FnMut(Change),
    ) {
        match (self.find(fe, devid), present) {
            (Some(i), false) => {
                self.close_silently(i, "backend directory removed", changes);
                self.devices.swap_remove(i);
            }
            (Some(i), true) => self.step(xs, i, Scan::Full, changes),
            (None, true) => {
                if let Some(i) = self.take_on(xs, fe, devid) {
                    self.step(xs, i, Scan::Full, changes);
                }
            }
            (None, false) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_paths_name_a_device_or_a_frontend_relative_or_absolute() {
        let dev = Some(Target::Device(DomId(5), 0));
        assert_eq!(backend_target("backend/vgpu/5/0/state"), dev);
        assert_eq!(backend_target("backend/vgpu/5/0"), dev);
        assert_eq!(backend_target("/local/domain/1/backend/vgpu/5/0/limits/max-pages"), dev);
        assert_eq!(backend_target("backend/vgpu/5"), Some(Target::Frontend(DomId(5))));
        assert_eq!(backend_target("backend/vgpu/5/junk"), Some(Target::Frontend(DomId(5))));
    }

    #[test]
    fn paths_that_name_no_device_are_a_full_rescan() {
        for p in ["backend/vgpu", "backend/vgpux/5/0", "backend/vgpu/x/0", "backend/vgpu/70000/0"] {
            assert_eq!(backend_target(p), None, "{p}");
        }
        let mut r = Rescan::default();
        assert!(r.add(TOKEN_BACKEND, "backend/vgpu"));
        assert!(r.is_full());
        let mut r = Rescan::default();
        assert!(r.add(TOKEN_RELEASE, "@releaseDomain"));
        assert!(r.is_full());
        let mut r = Rescan::default();
        r.lost_events();
        assert!(r.is_full());
    }

    #[test]
    fn frontend_state_paths_name_one_device() {
        assert_eq!(frontend_device("/local/domain/7/device/vgpu/0/state"), Some((DomId(7), 0)));
        assert_eq!(frontend_device("/local/domain/7/device/vgpu/0/ring-ref"), None);
        assert_eq!(frontend_device("device/vgpu/0/state"), None);
        let mut r = Rescan::default();
        assert!(r.add(TOKEN_FRONTEND, "/local/domain/7/device/vgpu/x/state"));
        assert!(r.all_frontends && !r.is_full());
    }

    #[test]
    fn repeated_events_name_a_device_once_and_too_many_become_full() {
        let mut r = Rescan::default();
        for _ in 0..3 {
            r.add(TOKEN_BACKEND, "backend/vgpu/5/0/state");
            r.add(TOKEN_FRONTEND, "/local/domain/5/device/vgpu/0/state");
        }
        assert_eq!(r.backend.len(), 1);
        assert_eq!(r.frontend.len(), 1);
        assert!(!r.is_full() && !r.is_empty());
        assert!(!r.add("shutdown", "control/shutdown"), "not the service's");
        for fe in 0..MAX_TARGETS as u32 {
            r.add(TOKEN_BACKEND, &format!("backend/vgpu/{}/0", fe + 10));
        }
        assert!(r.is_full(), "the 33rd device makes it a full rescan");
    }
}
