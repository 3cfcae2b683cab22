//! Scheduler operations (`sched.h`): yield, block, poll.

use super::XenError;
use xen_abi::event_channel::EvtchnPort;
use xen_abi::hypercall::sched_op;
use xen_abi::sched::*;

/// `SCHEDOP_yield`.
pub fn yield_now() {
    // SAFETY: the hypercall page is installed before anything runs that
    // could call this (console ring output, the executor); no argument.
    unsafe { sched_op(SCHEDOP_YIELD, core::ptr::null_mut()) };
}

/// `SCHEDOP_block`: sleeps until an event is pending for this vCPU.
pub fn block() {
    // SAFETY: as for `yield_now`; no argument.
    unsafe { sched_op(SCHEDOP_BLOCK, core::ptr::null_mut()) };
}

/// `SCHEDOP_poll`: sleeps until one of `ports` is pending or Xen system time
/// reaches `timeout_ns` (0: no timeout). Xen re-checks the ports' pending
/// bits after marking the vCPU blocked, so an event that arrives between the
/// caller's last check and this call still wakes it.
pub fn poll(ports: &[EvtchnPort], timeout_ns: u64) -> Result<(), XenError> {
    let n = ports.len().min(SCHED_POLL_MAX_PORTS);
    let mut arg = SchedPoll { ports: ports.as_ptr(), nr_ports: n as u32, timeout: timeout_ns };
    // SAFETY: `arg` and the `n` ports it points at live across the call;
    // Xen only reads them.
    let rc = unsafe { sched_op(SCHEDOP_POLL, (&mut arg as *mut SchedPoll).cast()) };
    XenError::check("SCHEDOP_poll", rc).map(|_| ())
}
