//! Scheduler operations: `xen/include/public/sched.h`
//! (`HYPERVISOR_sched_op(cmd, arg)`).

use crate::event_channel::EvtchnPort;
use core::mem::size_of;

/// `SCHEDOP_yield` (`sched.h`).
pub const SCHEDOP_YIELD: u32 = 0;
/// `SCHEDOP_block` (`sched.h`): sleep until an event is pending.
pub const SCHEDOP_BLOCK: u32 = 1;
/// `SCHEDOP_shutdown` (`sched.h`): arg is a [`SchedShutdown`].
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// `SCHEDOP_poll` (`sched.h`): arg is a [`SchedPoll`].
pub const SCHEDOP_POLL: u32 = 3;

/// `SHUTDOWN_poweroff` (`sched.h`): exited normally.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// `SHUTDOWN_reboot` (`sched.h`).
pub const SHUTDOWN_REBOOT: u32 = 1;
/// `SHUTDOWN_suspend` (`sched.h`).
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// `SHUTDOWN_crash` (`sched.h`).
pub const SHUTDOWN_CRASH: u32 = 3;
/// `SHUTDOWN_watchdog` (`sched.h`).
pub const SHUTDOWN_WATCHDOG: u32 = 4;

/// `struct sched_shutdown` (`sched.h`).
#[doc(alias = "sched_shutdown")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}
const _: () = assert!(size_of::<SchedShutdown>() == 4);

/// `struct sched_poll` (`sched.h`): block until one of `ports` is pending or
/// `timeout` (absolute Xen system time in ns; 0 = none) passes. Xen checks the
/// pending bits after marking the vCPU blocked, so no wakeup is lost.
#[doc(alias = "sched_poll")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SchedPoll {
    /// Guest handle: pointer to `nr_ports` ports.
    pub ports: *const EvtchnPort,
    /// Number of ports (Xen refuses more than 128).
    pub nr_ports: u32,
    /// Absolute timeout (ns of Xen system time); 0: none.
    pub timeout: u64,
}
const _: () = assert!(size_of::<SchedPoll>() == 24);

/// Most ports Xen accepts in one `SCHEDOP_poll` (`xen/common/sched/core.c`).
pub const SCHED_POLL_MAX_PORTS: usize = 128;
