//! vCPU operations: `xen/include/public/vcpu.h`
//! (`HYPERVISOR_vcpu_op(cmd, vcpuid, arg)`).

use core::mem::size_of;

/// `VCPUOP_stop_periodic_timer` (`vcpu.h`), arg NULL.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// `VCPUOP_set_singleshot_timer` (`vcpu.h`): raises `VIRQ_TIMER` at the deadline.
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// `VCPUOP_stop_singleshot_timer` (`vcpu.h`), arg NULL.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;

/// `VCPU_SSHOTTMR_future` (`vcpu.h`): fail with `-ETIME` if the deadline passed.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `struct vcpu_set_singleshot_timer` (`vcpu.h`).
#[doc(alias = "vcpu_set_singleshot_timer")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute Xen system time of the deadline, ns.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
}
const _: () = assert!(size_of::<VcpuSetSingleshotTimer>() == 16);
