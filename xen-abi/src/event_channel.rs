//! Event channel operations: `xen/include/public/event_channel.h`.
//!
//! Each `EVTCHNOP_*` takes a pointer to its argument struct
//! (`HYPERVISOR_event_channel_op(cmd, &arg)`).

use crate::xen::DomId;
use core::mem::size_of;

/// `evtchn_port_t` (`event_channel.h`).
pub type EvtchnPort = u32;

/// `EVTCHNOP_bind_interdomain` (`event_channel.h`).
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `EVTCHNOP_bind_virq` (`event_channel.h`).
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// `EVTCHNOP_close` (`event_channel.h`).
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `EVTCHNOP_send` (`event_channel.h`).
pub const EVTCHNOP_SEND: u32 = 4;
/// `EVTCHNOP_status` (`event_channel.h`).
pub const EVTCHNOP_STATUS: u32 = 5;
/// `EVTCHNOP_alloc_unbound` (`event_channel.h`).
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_unmask` (`event_channel.h`).
pub const EVTCHNOP_UNMASK: u32 = 9;

/// `struct evtchn_alloc_unbound` (`event_channel.h`): allocate a port that
/// `remote_dom` may later bind to.
#[doc(alias = "evtchn_alloc_unbound")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnAllocUnbound {
    /// IN: the domain the port is allocated in (`DOMID_SELF`).
    pub dom: DomId,
    /// IN: the domain allowed to bind to it.
    pub remote_dom: DomId,
    /// OUT: the new port.
    pub port: EvtchnPort,
}
const _: () = assert!(size_of::<EvtchnAllocUnbound>() == 8);

/// `struct evtchn_bind_interdomain` (`event_channel.h`).
#[doc(alias = "evtchn_bind_interdomain")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain.
    pub remote_dom: DomId,
    /// IN: its unbound port.
    pub remote_port: EvtchnPort,
    /// OUT: the local port now connected to it.
    pub local_port: EvtchnPort,
}
const _: () = assert!(size_of::<EvtchnBindInterdomain>() == 12);

/// `struct evtchn_bind_virq` (`event_channel.h`).
#[doc(alias = "evtchn_bind_virq")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*` (`xen.h`).
    pub virq: u32,
    /// IN: the vCPU that receives it.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: EvtchnPort,
}
const _: () = assert!(size_of::<EvtchnBindVirq>() == 12);

/// `struct evtchn_close` (`event_channel.h`).
#[doc(alias = "evtchn_close")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnClose {
    /// IN: the port to close.
    pub port: EvtchnPort,
}
const _: () = assert!(size_of::<EvtchnClose>() == 4);

/// `struct evtchn_send` (`event_channel.h`).
#[doc(alias = "evtchn_send")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnSend {
    /// IN: the local port whose remote end is notified.
    pub port: EvtchnPort,
}
const _: () = assert!(size_of::<EvtchnSend>() == 4);

/// `struct evtchn_unmask` (`event_channel.h`): unmask, and re-raise the
/// upcall if the port is pending.
#[doc(alias = "evtchn_unmask")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnUnmask {
    /// IN: the port to unmask.
    pub port: EvtchnPort,
}
const _: () = assert!(size_of::<EvtchnUnmask>() == 4);

/// `EVTCHNSTAT_closed` (`event_channel.h`).
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_unbound` (`event_channel.h`).
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_interdomain` (`event_channel.h`).
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// `EVTCHNSTAT_virq` (`event_channel.h`).
pub const EVTCHNSTAT_VIRQ: u32 = 4;

/// `struct evtchn_status` (`event_channel.h`). The union `u` is kept as two
/// raw words: `u.unbound.dom` / `u.interdomain.dom` are the low 16 bits of
/// `u[0]`, `u.interdomain.port` is `u[1]`, `u.virq` is `u[0]`.
#[doc(alias = "evtchn_status")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnStatus {
    /// IN: the domain (`DOMID_SELF`).
    pub dom: DomId,
    /// IN: the port.
    pub port: EvtchnPort,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: the vCPU the port is bound to.
    pub vcpu: u32,
    /// OUT: the status-dependent union.
    pub u: [u32; 2],
}
const _: () = assert!(size_of::<EvtchnStatus>() == 24);
