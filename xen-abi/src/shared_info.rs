//! The shared-info page and per-vCPU info: `xen/include/public/xen.h` and
//! `arch-x86/xen.h`, `arch-x86/xen-x86_64.h`.

use core::mem::size_of;

/// `XEN_LEGACY_MAX_VCPUS` (`arch-x86/xen.h`): vCPUs whose `vcpu_info` lives
/// in the shared-info page.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// Bits per `xen_ulong_t` on x86_64.
pub const XEN_ULONG_BITS: usize = 64;

/// `EVTCHN_2L_NR_CHANNELS` (`event_channel.h`): ports of the 2-level ABI.
pub const EVTCHN_2L_NR_CHANNELS: usize = XEN_ULONG_BITS * XEN_ULONG_BITS;

/// `struct vcpu_time_info` (`xen.h`). Seqlock-protected by `version`
/// (odd: an update is in progress).
#[doc(alias = "vcpu_time_info")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuTimeInfo {
    /// Incremented before and after each update.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Xen system time (ns since boot) at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC to ns multiplier (32.32 fixed point), applied after `tsc_shift`.
    pub tsc_to_system_mul: u32,
    /// Shift applied to the TSC delta (negative: right shift).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}
const _: () = assert!(size_of::<VcpuTimeInfo>() == 32);

/// `struct arch_vcpu_info` (`arch-x86/xen-x86_64.h`).
#[doc(alias = "arch_vcpu_info")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ArchVcpuInfo {
    /// Faulting address of the last PV page fault (unused for PVH).
    pub cr2: u64,
    /// Padding.
    pub pad: u64,
}
const _: () = assert!(size_of::<ArchVcpuInfo>() == 16);

/// `struct vcpu_info` (`xen.h`).
#[doc(alias = "vcpu_info")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending for this vCPU; cleared by the guest
    /// before it scans (Xen raises the upcall only on a 0 -> 1 transition).
    pub evtchn_upcall_pending: u8,
    /// PV upcall mask (unused by HVM upcall-vector delivery).
    pub evtchn_upcall_mask: u8,
    /// Padding.
    pub pad: [u8; 6],
    /// Selector: bit `i` set means word `i` of `evtchn_pending` may have work.
    pub evtchn_pending_sel: u64,
    /// Architecture part.
    pub arch: ArchVcpuInfo,
    /// System time for this vCPU.
    pub time: VcpuTimeInfo,
}
const _: () = assert!(size_of::<VcpuInfo>() == 64);

/// `struct arch_shared_info` (`arch-x86/xen.h`).
#[doc(alias = "arch_shared_info")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ArchSharedInfo {
    /// PV p2m size (unused for PVH).
    pub max_pfn: u64,
    /// PV p2m frame list list (unused for PVH).
    pub pfn_to_mfn_frame_list_list: u64,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// PV linear p2m root (unused for PVH).
    pub p2m_cr3: u64,
    /// PV linear p2m address (unused for PVH).
    pub p2m_vaddr: u64,
    /// PV p2m generation (unused for PVH).
    pub p2m_generation: u64,
}
const _: () = assert!(size_of::<ArchSharedInfo>() == 48);

/// `struct shared_info` (`xen.h`), as placed by `XENMAPSPACE_shared_info`.
#[doc(alias = "shared_info")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SharedInfo {
    /// Per-vCPU info for vCPUs `0..XEN_LEGACY_MAX_VCPUS`.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level event channel pending bits (one per port).
    pub evtchn_pending: [u64; XEN_ULONG_BITS],
    /// 2-level event channel mask bits (one per port; set = masked).
    pub evtchn_mask: [u64; XEN_ULONG_BITS],
    /// Wallclock seqlock version.
    pub wc_version: u32,
    /// Wallclock seconds (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds.
    pub wc_nsec: u32,
    /// Wallclock seconds (high 32 bits).
    pub wc_sec_hi: u32,
    /// Architecture part.
    pub arch: ArchSharedInfo,
}
const _: () = assert!(size_of::<SharedInfo>() == 3136);
const _: () = assert!(core::mem::offset_of!(SharedInfo, evtchn_pending) == 2048);
const _: () = assert!(core::mem::offset_of!(SharedInfo, evtchn_mask) == 2560);
