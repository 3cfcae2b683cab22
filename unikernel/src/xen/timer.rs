//! Xen system time and the one-shot timer (`VCPUOP_set_singleshot_timer`,
//! delivered on the `VIRQ_TIMER` port).

use super::{shared, XenError};
use crate::arch::x86_64::cpu;
use xen_abi::vcpu::{
    VcpuSetSingleshotTimer, VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER,
    VCPUOP_STOP_SINGLESHOT_TIMER,
};

/// Xen system time now, in ns since Xen booted.
pub fn now_ns() -> u64 {
    crate::time::system_time_ns(&shared::time_info(), cpu::rdtsc())
}

/// Stops the legacy periodic timer (so `VIRQ_TIMER` fires only on request).
pub fn stop_periodic() -> Result<(), XenError> {
    // SAFETY: no argument.
    let rc = unsafe {
        xen_abi::hypercall::vcpu_op(VCPUOP_STOP_PERIODIC_TIMER, 0, core::ptr::null_mut())
    };
    XenError::check("VCPUOP_stop_periodic_timer", rc).map(|_| ())
}

/// Arms the one-shot timer for absolute system time `deadline_ns`.
pub fn set_oneshot(deadline_ns: u64) -> Result<(), XenError> {
    let mut t = VcpuSetSingleshotTimer { timeout_abs_ns: deadline_ns, flags: 0 };
    // SAFETY: `t` lives across the call; Xen only reads it.
    let rc = unsafe {
        xen_abi::hypercall::vcpu_op(
            VCPUOP_SET_SINGLESHOT_TIMER,
            0,
            (&mut t as *mut VcpuSetSingleshotTimer).cast(),
        )
    };
    XenError::check("VCPUOP_set_singleshot_timer", rc).map(|_| ())
}

/// Disarms the one-shot timer.
pub fn stop_oneshot() -> Result<(), XenError> {
    // SAFETY: no argument.
    let rc = unsafe {
        xen_abi::hypercall::vcpu_op(VCPUOP_STOP_SINGLESHOT_TIMER, 0, core::ptr::null_mut())
    };
    XenError::check("VCPUOP_stop_singleshot_timer", rc).map(|_| ())
}
