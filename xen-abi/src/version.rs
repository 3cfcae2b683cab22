//! Version and feature queries: `xen/include/public/version.h` and
//! `features.h` (`HYPERVISOR_xen_version(cmd, arg)`).

use core::mem::size_of;

/// `XENVER_version` (`version.h`): returns `major << 16 | minor`, arg NULL.
pub const XENVER_VERSION: u32 = 0;
/// `XENVER_get_features` (`version.h`): arg is a [`XenFeatureInfo`].
pub const XENVER_GET_FEATURES: u32 = 6;

/// `struct xen_feature_info` (`version.h`).
#[doc(alias = "xen_feature_info")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap.
    pub submap_idx: u32,
    /// OUT: the submap.
    pub submap: u32,
}
const _: () = assert!(size_of::<XenFeatureInfo>() == 8);

/// `XENFEAT_hvm_callback_vector` (`features.h`).
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// `XENFEAT_dom0` (`features.h`): the domain is dom0.
pub const XENFEAT_DOM0: u32 = 11;
