//! Xen's interdomain event channels, and a [`Connector`] for the backend
//! `Service` that binds only what Xen would bind: a port the frontend
//! allocated unbound for the backend. (`service_world::ModelConnector`
//! binds any port number Xen could name, which is what the handshake tests
//! need; a fuzz target's hostile `event-channel` values, a port never
//! allocated or allocated for another domain, need this one.) Rings are
//! mapped by grant map through the backend's strict IOMMU, as there.
//!
//! # Invariants
//! - A ring is mapped only if the model's grant table lets the backend map
//!   that reference writable; a port binds only if the frontend allocated it
//!   unbound for the backend (`EVTCHNOP_alloc_unbound` with the backend as
//!   remote) and nothing is bound to it, as `EVTCHNOP_bind_interdomain`.
//! - Closing the backend's end makes the frontend's port unbound again, as
//!   `EVTCHNOP_close` leaves the other end of an interdomain channel.

use std::collections::BTreeMap;

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
}

/// The backend's rings and event channels on the model, with Xen's rules.
pub struct StrictConnector {
    pub platform: Platform,
    rings: ModelRings,
    pub channels: EventChannels,
    /// Local ports notified, in order.
    pub notified: Vec<u32>,
}

impl StrictConnector {
    pub fn new(platform: Platform, channels: EventChannels) -> StrictConnector {
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
        self.channels.bind(backend, dom, remote_port)
    }

    fn unbind(&mut self, local_port: u32) {
        let backend = self.platform.backend();
        self.channels.close(backend, local_port);
    }

    fn notify(&mut self, local_port: u32) {
        self.notified.push(local_port);
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
}
