//! Event channels (`event_channel.h`, 2-level ABI): operations, the upcall
//! (delivered as a LAPIC vector registered with
//! `HVMOP_set_evtchn_upcall_vector`), and the pending-bit scan.
//!
//! # Invariants
//! - The upcall handler only acknowledges: it clears
//!   `evtchn_upcall_pending` (so the next 0 -> 1 raises a new upcall), counts,
//!   and sends EOI. It never clears a pending bit, so `SCHEDOP_poll` on those
//!   ports cannot miss an event the handler saw.
//! - Pending bits are taken only by [`scan`] (the executor's context).

use super::{params, shared, XenError};
use crate::arch::x86_64::lapic;
use crate::evtchn_demux::{self, EventWords};
use core::sync::atomic::{AtomicU64, Ordering};
use xen_abi::event_channel::*;
use xen_abi::hvm::{
    callback_via_vector, XenHvmEvtchnUpcallVector, HVMOP_SET_EVTCHN_UPCALL_VECTOR,
    HVM_PARAM_CALLBACK_IRQ,
};
use xen_abi::xen::{DomId, DOMID_SELF};

/// An event channel port.
pub type Port = EvtchnPort;

static UPCALLS: AtomicU64 = AtomicU64::new(0);

fn op<T>(cmd: u32, name: &'static str, arg: &mut T) -> Result<(), XenError> {
    // SAFETY: `arg` is the struct `cmd` takes (callers pair them), alive
    // across the call; the hypercall page is installed at boot.
    let rc = unsafe { xen_abi::hypercall::event_channel_op(cmd, (arg as *mut T).cast()) };
    XenError::check(name, rc).map(|_| ())
}

/// Registers `vector` as vCPU 0's upcall vector and enables the LAPIC.
///
/// The same vector also goes into `HVM_PARAM_CALLBACK_IRQ` (as Linux does):
/// libxl takes a zero there to mean "no PV drivers" in an HVM domU and then
/// refuses `xl shutdown` ("PV control interface not available"). Xen
/// delivers through the per-vCPU vector first (`hvm_assert_evtchn_irq`); the
/// callback form injects the same vector while `evtchn_upcall_pending` is
/// set, which [`upcall`] clears, so either way the handler is the same.
pub fn init_upcall(vector: u8, spurious: u8) -> Result<(), XenError> {
    lapic::enable(spurious);
    let mut arg = XenHvmEvtchnUpcallVector { vcpu: 0, vector };
    // SAFETY: `arg` lives across the call; Xen only reads it.
    let rc = unsafe {
        xen_abi::hypercall::hvm_op(
            HVMOP_SET_EVTCHN_UPCALL_VECTOR,
            (&mut arg as *mut XenHvmEvtchnUpcallVector).cast(),
        )
    };
    XenError::check("HVMOP_set_evtchn_upcall_vector", rc)?;
    if let Err(e) = params::set(HVM_PARAM_CALLBACK_IRQ, callback_via_vector(vector)) {
        log::warn!("{e}: the toolstack will not see PV control (xl shutdown of an HVM domU fails)");
    }
    Ok(())
}

/// The upcall handler body (called from the vector's stub).
pub fn upcall() {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    if shared::mapped() {
        shared::upcall_pending().store(0, Ordering::SeqCst);
    }
    lapic::eoi();
}

/// Upcalls taken so far.
pub fn upcalls() -> u64 {
    UPCALLS.load(Ordering::Relaxed)
}

/// `EVTCHNOP_alloc_unbound`: a port in our domain that `remote` may bind.
pub fn alloc_unbound(remote: DomId) -> Result<Port, XenError> {
    let mut a = EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: remote, port: 0 };
    op(EVTCHNOP_ALLOC_UNBOUND, "EVTCHNOP_alloc_unbound", &mut a)?;
    Ok(a.port)
}

/// `EVTCHNOP_bind_interdomain`: connects to `remote`'s unbound `remote_port`.
pub fn bind_interdomain(remote: DomId, remote_port: Port) -> Result<Port, XenError> {
    let mut a = EvtchnBindInterdomain { remote_dom: remote, remote_port, local_port: 0 };
    op(EVTCHNOP_BIND_INTERDOMAIN, "EVTCHNOP_bind_interdomain", &mut a)?;
    Ok(a.local_port)
}

/// `EVTCHNOP_bind_virq` on vCPU 0.
pub fn bind_virq(virq: u32) -> Result<Port, XenError> {
    let mut a = EvtchnBindVirq { virq, vcpu: 0, port: 0 };
    op(EVTCHNOP_BIND_VIRQ, "EVTCHNOP_bind_virq", &mut a)?;
    Ok(a.port)
}

/// `EVTCHNOP_send`.
pub fn send(port: Port) -> Result<(), XenError> {
    op(EVTCHNOP_SEND, "EVTCHNOP_send", &mut EvtchnSend { port })
}

/// `EVTCHNOP_send`, ignoring errors (console notifications).
pub fn send_raw(port: Port) {
    let _ = send(port);
}

/// `EVTCHNOP_close`.
pub fn close(port: Port) -> Result<(), XenError> {
    op(EVTCHNOP_CLOSE, "EVTCHNOP_close", &mut EvtchnClose { port })
}

/// `EVTCHNOP_status` for our own `port`: the `EVTCHNSTAT_*` value.
pub fn status(port: Port) -> Result<u32, XenError> {
    let mut s = EvtchnStatus { dom: DOMID_SELF, port, ..Default::default() };
    op(EVTCHNOP_STATUS, "EVTCHNOP_status", &mut s)?;
    Ok(s.status)
}

/// Masks `port` (sets its mask bit; Xen then raises no upcall for it).
pub fn mask(port: Port) {
    shared::mask(port as usize / 64).fetch_or(1 << (port % 64), Ordering::SeqCst);
}

/// `EVTCHNOP_unmask`: clears the mask bit, and Xen re-raises the upcall if
/// the port is pending (which a local bit clear would not do).
pub fn unmask(port: Port) -> Result<(), XenError> {
    op(EVTCHNOP_UNMASK, "EVTCHNOP_unmask", &mut EvtchnUnmask { port })
}

/// True when `port`'s pending bit is set.
pub fn is_pending(port: Port) -> bool {
    shared::pending(port as usize / 64).load(Ordering::SeqCst) & (1 << (port % 64)) != 0
}

struct SharedWords;

impl EventWords for SharedWords {
    fn take_selector(&self) -> u64 {
        shared::pending_sel().swap(0, Ordering::SeqCst)
    }
    fn pending(&self, w: usize) -> u64 {
        shared::pending(w).load(Ordering::SeqCst)
    }
    fn mask(&self, w: usize) -> u64 {
        shared::mask(w).load(Ordering::SeqCst)
    }
    fn clear_pending(&self, w: usize, bits: u64) -> u64 {
        shared::pending(w).fetch_and(!bits, Ordering::SeqCst) & bits
    }
}

/// Takes every pending, unmasked port (see [`evtchn_demux::scan`]).
pub fn scan(fired: impl FnMut(Port)) -> usize {
    shared::upcall_pending().store(0, Ordering::SeqCst);
    evtchn_demux::scan(&SharedWords, fired)
}

/// Clears `port`'s pending bit; returns whether it was set.
pub fn clear_pending(port: Port) -> bool {
    let bit = 1 << (port % 64);
    shared::pending(port as usize / 64).fetch_and(!bit, Ordering::SeqCst) & bit != 0
}
