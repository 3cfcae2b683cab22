//! HVM operations and parameters: `xen/include/public/hvm/hvm_op.h` and
//! `hvm/params.h` (`HYPERVISOR_hvm_op(op, arg)`).

use crate::xen::DomId;
use core::mem::size_of;

/// `HVMOP_set_param` (`hvm_op.h`).
pub const HVMOP_SET_PARAM: u32 = 0;
/// `HVMOP_get_param` (`hvm_op.h`).
pub const HVMOP_GET_PARAM: u32 = 1;
/// `HVMOP_set_evtchn_upcall_vector` (`hvm_op.h`): deliver this vCPU's event
/// upcall as a LAPIC vector (edge; the handler must EOI).
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: u32 = 23;

/// `HVM_PARAM_CALLBACK_IRQ` (`params.h`): how vCPU 0's event upcall is
/// delivered; bits 63:56 the type, the rest its argument.
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_CALLBACK_TYPE_VECTOR` (`params.h`, x86): bits 7:0 are a vector.
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// The `HVM_PARAM_CALLBACK_IRQ` value for delivery at `vector`.
pub const fn callback_via_vector(vector: u8) -> u64 {
    HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | vector as u64
}
/// `HVM_PARAM_STORE_PFN` (`params.h`): the xenstore ring page.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN` (`params.h`): the xenstore event channel.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_CONSOLE_PFN` (`params.h`): the PV console ring page.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN` (`params.h`): the PV console event channel.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

/// `struct xen_hvm_param` (`hvm_op.h`).
#[doc(alias = "xen_hvm_param")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenHvmParam {
    /// IN: `DOMID_SELF`.
    pub domid: DomId,
    /// Padding.
    pub pad: u16,
    /// IN: `HVM_PARAM_*`.
    pub index: u32,
    /// IN/OUT: the value.
    pub value: u64,
}
const _: () = assert!(size_of::<XenHvmParam>() == 16);

/// `struct xen_hvm_evtchn_upcall_vector` (`hvm_op.h`).
#[doc(alias = "xen_hvm_evtchn_upcall_vector")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenHvmEvtchnUpcallVector {
    /// The vCPU.
    pub vcpu: u32,
    /// The vector (Xen accepts `0x10..=0xff`).
    pub vector: u8,
}
const _: () = assert!(size_of::<XenHvmEvtchnUpcallVector>() == 8);
