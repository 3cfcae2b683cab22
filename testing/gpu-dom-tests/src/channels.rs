//! Xen's interdomain event channels, and the [`Connector`] the backend
//! `Service` runs with in every host world: it binds only what Xen would
//! bind, a port the frontend allocated unbound for the backend (a hostile
//! `event-channel` value, a port never allocated or allocated for another
//! domain, is refused as Xen refuses it). Rings are mapped by grant map
//! through the backend's strict IOMMU, as the unikernel maps them.
//!
//! # Invariants
//! - A ring is mapped only if the model's grant table lets the backend map
//!   that reference writable; a port binds only if the frontend allocated it
//!   unbound for the backend (`EVTCHNOP_alloc_unbound` with the backend as
//!   remote) and nothing is bound to it, as `EVTCHNOP_bind_interdomain`.
//! - Closing the backend's end makes the frontend's port unbound again, as
//!   `EVTCHNOP_close` leaves the other end of an interdomain channel; so
//!   does the backend's death (Xen closes a dying domain's ports), and the
//!   port stays unbound *for the dead domain*: a new backend cannot bind it.
//! - A notification reaches the other end only over a bound channel;
//!   `EVTCHNOP_send` on an unbound port is dropped, as Xen drops it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use backend::Connector;
use gtt::DomId;
use platform_model::Platform;

use crate::pages::{BusRingPage, ModelRings};

/// `EINVAL`, what `EVTCHNOP_bind_interdomain` returns for a port that is not
/// unbound for the caller.
pub const EINVAL: i32 = -22;

/// Interdomain event channels between guests and the backend.
#[derive(Clone, Debug, Default)]
pub struct EventChannels {
    /// `(guest, port)` allocated unbound, and the domain allowed to bind it.
    unbound: BTreeMap<(DomId, u32), DomId>,
    /// Backend local port -> the guest's port it is bound to.
    bound: BTreeMap<u32, (DomId, u32)>,
    next_local: u32,
    /// Backend local ports notified by their guest, not yet delivered.
    to_backend: BTreeSet<u32>,
    /// Guest ports notified by the backend, not yet delivered.
    to_guest: BTreeSet<(DomId, u32)>,
}

impl EventChannels {
    /// No channels; the backend's local ports are numbered from `first_local`.
    pub fn new(first_local: u32) -> EventChannels {
        EventChannels { next_local: first_local, ..EventChannels::default() }
    }

    /// Guest `dom` allocates `port` unbound, for `remote` to bind.
    pub fn alloc_unbound(&mut self, dom: DomId, port: u32, remote: DomId) {
        self.unbound.insert((dom, port), remote);
    }

    /// `EVTCHNOP_bind_interdomain` by `backend`: the local port, or `EINVAL`.
    pub fn bind(&mut self, backend: DomId, dom: DomId, port: u32) -> Result<u32, i32> {
        match self.unbound.get(&(dom, port)) {
            Some(&remote) if remote == backend => {}
            _ => return Err(EINVAL),
        }
        self.unbound.remove(&(dom, port));
        let local = self.next_local;
        self.next_local += 1;
        self.bound.insert(local, (dom, port));
        Ok(local)
    }

    /// `EVTCHNOP_close` of a local port: the guest's end is unbound again
    /// (for `backend`, the domain that closed).
    pub fn close(&mut self, backend: DomId, local: u32) {
        if let Some(end) = self.bound.remove(&local) {
            self.unbound.insert(end, backend);
        }
    }

    /// The guest port a local port is bound to.
    pub fn peer(&self, local: u32) -> Option<(DomId, u32)> {
        self.bound.get(&local).copied()
    }

    /// Whether guest `dom`'s `port` is open (unbound or bound): `EINVAL` from
    /// `EVTCHNOP_send` and `EVTCHNOP_close` otherwise.
    pub fn is_open(&self, dom: DomId, port: u32) -> bool {
        self.unbound.contains_key(&(dom, port)) || self.local_of(dom, port).is_some()
    }

    /// The backend's local port bound to guest `dom`'s `port`.
    fn local_of(&self, dom: DomId, port: u32) -> Option<u32> {
        self.bound.iter().find(|(_, &end)| end == (dom, port)).map(|(&l, _)| l)
    }

    /// `EVTCHNOP_send` by guest `dom` on `port`: pending for the backend if
    /// bound, dropped otherwise.
    pub fn notify_from_guest(&mut self, dom: DomId, port: u32) {
        if let Some(local) = self.local_of(dom, port) {
            self.to_backend.insert(local);
        }
    }

    /// `EVTCHNOP_send` by the backend on `local`: pending for the guest if bound.
    pub fn notify_from_backend(&mut self, local: u32) {
        if let Some(end) = self.bound.get(&local) {
            self.to_guest.insert(*end);
        }
    }

    /// The backend's local ports with a notification pending, cleared.
    pub fn take_backend_pending(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.to_backend).into_iter().collect()
    }

    /// Whether any port of guest `dom` had a notification pending; clears them.
    pub fn take_guest_pending(&mut self, dom: DomId) -> bool {
        let before = self.to_guest.len();
        self.to_guest.retain(|(d, _)| *d != dom);
        self.to_guest.len() != before
    }

    /// `EVTCHNOP_close` by guest `dom` of `port`: gone, whichever state it was in.
    pub fn close_guest(&mut self, dom: DomId, port: u32) {
        self.unbound.remove(&(dom, port));
        if let Some(local) = self.local_of(dom, port) {
            self.bound.remove(&local);
            self.to_backend.remove(&local);
        }
        self.to_guest.remove(&(dom, port));
    }

    /// `backend` dies: Xen closes every port it had bound, leaving each
    /// guest's end unbound for the dead domain.
    pub fn backend_died(&mut self, backend: DomId) {
        for local in self.bound.keys().copied().collect::<Vec<_>>() {
            self.close(backend, local);
        }
        self.to_backend.clear();
    }
}

/// The backend's rings and event channels on the model, with Xen's rules.
pub struct StrictConnector {
    pub platform: Platform,
    rings: ModelRings,
    /// Shared with the guests' side of the world (their ports outlive a backend).
    pub channels: Rc<RefCell<EventChannels>>,
    /// Local ports notified, in order.
    pub notified: Vec<u32>,
}

impl StrictConnector {
    /// A connector with channels of its own.
    pub fn new(platform: Platform, channels: EventChannels) -> StrictConnector {
        StrictConnector::shared(platform, Rc::new(RefCell::new(channels)))
    }

    /// A connector on channels the world shares with its guests.
    pub fn shared(platform: Platform, channels: Rc<RefCell<EventChannels>>) -> StrictConnector {
        StrictConnector {
            rings: ModelRings::new(platform.clone()),
            platform,
            channels,
            notified: Vec::new(),
        }
    }
}

impl Connector for StrictConnector {
    type Ring = BusRingPage;

    fn map_ring(&mut self, dom: DomId, gref: u32) -> Result<BusRingPage, i16> {
        self.rings.map(dom, gref)
    }

    fn unmap_ring(&mut self, _dom: DomId, ring: BusRingPage) {
        self.rings.unmap(ring);
    }

    fn bind(&mut self, dom: DomId, remote_port: u32) -> Result<u32, i32> {
        let backend = self.platform.backend();
        self.channels.borrow_mut().bind(backend, dom, remote_port)
    }

    fn unbind(&mut self, local_port: u32) {
        let backend = self.platform.backend();
        self.channels.borrow_mut().close(backend, local_port);
    }

    fn notify(&mut self, local_port: u32) {
        self.notified.push(local_port);
        self.channels.borrow_mut().notify_from_backend(local_port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_port_allocated_for_the_backend_binds_once_and_close_unbinds_it() {
        let (be, g, other) = (DomId(1), DomId(5), DomId(7));
        let mut ch = EventChannels::new(100);
        ch.alloc_unbound(g, 9, be);
        ch.alloc_unbound(g, 10, other);
        assert_eq!(ch.bind(be, g, 10), Err(EINVAL), "allocated for another domain");
        assert_eq!(ch.bind(be, g, 11), Err(EINVAL), "never allocated");
        assert_eq!(ch.bind(be, other, 9), Err(EINVAL), "another guest's port number");
        assert_eq!(ch.bind(be, g, 9), Ok(100));
        assert_eq!(ch.bind(be, g, 9), Err(EINVAL), "already bound");
        assert_eq!(ch.peer(100), Some((g, 9)));
        ch.close(be, 100);
        assert_eq!(ch.peer(100), None);
        assert_eq!(ch.bind(be, g, 9), Ok(101), "unbound again after the close");
    }

    #[test]
    fn notifications_cross_only_bound_channels_and_a_dead_backends_ports_stay_its_own() {
        let (be, new_be, g) = (DomId(1), DomId(2), DomId(5));
        let mut ch = EventChannels::new(100);
        ch.alloc_unbound(g, 9, be);
        ch.notify_from_guest(g, 9);
        assert!(ch.take_backend_pending().is_empty(), "unbound: dropped");
        let local = ch.bind(be, g, 9).unwrap();
        ch.notify_from_guest(g, 9);
        assert_eq!(ch.take_backend_pending(), [local]);
        assert!(ch.take_backend_pending().is_empty(), "delivered once");
        ch.notify_from_backend(local);
        assert!(!ch.take_guest_pending(DomId(7)), "another guest hears nothing");
        assert!(ch.take_guest_pending(g));
        ch.backend_died(be);
        assert_eq!(ch.bind(new_be, g, 9), Err(EINVAL), "unbound for the dead backend only");
        ch.close_guest(g, 9);
        assert_eq!(ch.bind(be, g, 9), Err(EINVAL), "closed by the guest");
    }
}
