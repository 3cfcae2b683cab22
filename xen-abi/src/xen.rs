//! Core definitions from `xen/include/public/xen.h`: hypercall numbers,
//! special domain ids, virtual IRQs, start-info flags and console_io commands.

/// A domain id (`domid_t`, `xen.h`).
pub type DomId = u16;

/// Hypercall numbers (`__HYPERVISOR_*`, `xen.h`). Each is an index into the
/// hypercall page: entry `n` is at byte offset `n * 32`.
pub mod hypercall_nr {
    /// `__HYPERVISOR_memory_op` (`xen.h`).
    pub const MEMORY_OP: usize = 12;
    /// `__HYPERVISOR_set_timer_op` (`xen.h`).
    pub const SET_TIMER_OP: usize = 15;
    /// `__HYPERVISOR_xen_version` (`xen.h`).
    pub const XEN_VERSION: usize = 17;
    /// `__HYPERVISOR_console_io` (`xen.h`).
    pub const CONSOLE_IO: usize = 18;
    /// `__HYPERVISOR_grant_table_op` (`xen.h`).
    pub const GRANT_TABLE_OP: usize = 20;
    /// `__HYPERVISOR_vcpu_op` (`xen.h`).
    pub const VCPU_OP: usize = 24;
    /// `__HYPERVISOR_sched_op` (`xen.h`).
    pub const SCHED_OP: usize = 29;
    /// `__HYPERVISOR_event_channel_op` (`xen.h`).
    pub const EVENT_CHANNEL_OP: usize = 32;
    /// `__HYPERVISOR_hvm_op` (`xen.h`).
    pub const HVM_OP: usize = 34;
}

/// Bytes per hypercall-page entry (`xen.h`: "each hypercall is 32 bytes").
pub const HYPERCALL_ENTRY_SIZE: usize = 32;

/// `DOMID_FIRST_RESERVED` (`xen.h`): ids at or above this are not real domains.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;
/// `DOMID_SELF` (`xen.h`): "the calling domain".
pub const DOMID_SELF: DomId = 0x7ff0;
/// `DOMID_INVALID` (`xen.h`).
pub const DOMID_INVALID: DomId = 0x7ff4;

/// `VIRQ_TIMER` (`xen.h`): the per-vCPU timer virtual IRQ.
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG` (`xen.h`).
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE` (`xen.h`, dom0 only).
pub const VIRQ_CONSOLE: u32 = 2;

/// `SIF_PRIVILEGED` (`xen.h`): the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN` (`xen.h`): the domain is the initial control domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;

/// `CONSOLEIO_write` (`xen.h`).
pub const CONSOLEIO_WRITE: u32 = 0;
/// `CONSOLEIO_read` (`xen.h`).
pub const CONSOLEIO_READ: u32 = 1;

/// Xen's error numbers as hypercalls return them, negated (`errno.h`).
pub mod errno {
    /// `XEN_EPERM` (`errno.h`).
    pub const EPERM: i64 = 1;
    /// `XEN_ENOENT` (`errno.h`).
    pub const ENOENT: i64 = 2;
    /// `XEN_ENOMEM` (`errno.h`).
    pub const ENOMEM: i64 = 12;
    /// `XEN_EFAULT` (`errno.h`).
    pub const EFAULT: i64 = 14;
    /// `XEN_EBUSY` (`errno.h`).
    pub const EBUSY: i64 = 16;
    /// `XEN_EEXIST` (`errno.h`).
    pub const EEXIST: i64 = 17;
    /// `XEN_EINVAL` (`errno.h`).
    pub const EINVAL: i64 = 22;
    /// `XEN_ENOSYS` (`errno.h`).
    pub const ENOSYS: i64 = 38;
    /// `XEN_ETIMEDOUT` (`errno.h`).
    pub const ETIMEDOUT: i64 = 110;
}
