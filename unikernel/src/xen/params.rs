//! HVM parameters (`hvm/params.h`) and feature flags (`features.h`).

use super::XenError;
use xen_abi::hvm::{XenHvmParam, HVMOP_GET_PARAM, HVMOP_SET_PARAM};
use xen_abi::version::{XenFeatureInfo, XENVER_GET_FEATURES, XENVER_VERSION};
use xen_abi::xen::DOMID_SELF;

/// `HVMOP_get_param` for our own domain.
pub fn get(index: u32) -> Result<u64, XenError> {
    let mut p = XenHvmParam { domid: DOMID_SELF, pad: 0, index, value: 0 };
    // SAFETY: `p` lives across the call; Xen writes only `value`.
    let rc =
        unsafe { xen_abi::hypercall::hvm_op(HVMOP_GET_PARAM, (&mut p as *mut XenHvmParam).cast()) };
    XenError::check("HVMOP_get_param", rc).map(|_| p.value)
}

/// `HVMOP_set_param` for our own domain.
pub fn set(index: u32, value: u64) -> Result<(), XenError> {
    let mut p = XenHvmParam { domid: DOMID_SELF, pad: 0, index, value };
    // SAFETY: `p` lives across the call; Xen only reads it.
    let rc =
        unsafe { xen_abi::hypercall::hvm_op(HVMOP_SET_PARAM, (&mut p as *mut XenHvmParam).cast()) };
    XenError::check("HVMOP_set_param", rc).map(|_| ())
}

/// `XENVER_get_features` submap `idx`.
pub fn features(idx: u32) -> Result<u32, XenError> {
    let mut f = XenFeatureInfo { submap_idx: idx, submap: 0 };
    // SAFETY: `f` lives across the call; Xen writes only `submap`.
    let rc = unsafe {
        xen_abi::hypercall::xen_version(XENVER_GET_FEATURES, (&mut f as *mut XenFeatureInfo).cast())
    };
    XenError::check("XENVER_get_features", rc).map(|_| f.submap)
}

/// `XENVER_version`: (major, minor) as the hypercall reports it.
pub fn version() -> Result<(u16, u16), XenError> {
    // SAFETY: no argument.
    let rc = unsafe { xen_abi::hypercall::xen_version(XENVER_VERSION, core::ptr::null_mut()) };
    XenError::check("XENVER_version", rc).map(|v| ((v >> 16) as u16, v as u16))
}
