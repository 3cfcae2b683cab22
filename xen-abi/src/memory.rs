//! Memory reservation and physmap operations: `xen/include/public/memory.h`
//! (`HYPERVISOR_memory_op(cmd, arg)`).

use crate::xen::DomId;
use core::mem::size_of;

/// `XENMEM_populate_physmap` (`memory.h`).
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// `XENMEM_add_to_physmap` (`memory.h`).
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// `XENMEM_memory_map` (`memory.h`): the caller's own E820 map.
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// `XENMEM_remove_from_physmap` (`memory.h`).
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;

/// `XENMAPSPACE_shared_info` (`memory.h`).
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table` (`memory.h`): `idx` is the grant frame index.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `XENMAPSPACE_gmfn` (`memory.h`).
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `XENMAPSPACE_gmfn_range` (`memory.h`).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign` (`memory.h`).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `XENMAPSPACE_dev_mmio` (`memory.h`).
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

/// `struct xen_add_to_physmap` (`memory.h`).
#[doc(alias = "xen_add_to_physmap")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenAddToPhysmap {
    /// The domain whose physmap changes (`DOMID_SELF`).
    pub domid: DomId,
    /// Pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space.
    pub idx: u64,
    /// The GFN where the page appears.
    pub gpfn: u64,
}
const _: () = assert!(size_of::<XenAddToPhysmap>() == 24);

/// `struct xen_remove_from_physmap` (`memory.h`).
#[doc(alias = "xen_remove_from_physmap")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenRemoveFromPhysmap {
    /// The domain whose physmap changes (`DOMID_SELF`).
    pub domid: DomId,
    /// The GFN to empty.
    pub gpfn: u64,
}
const _: () = assert!(size_of::<XenRemoveFromPhysmap>() == 16);

/// `struct xen_memory_map` (`memory.h`).
#[doc(alias = "xen_memory_map")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenMemoryMap {
    /// IN: entries that fit in `buffer`; OUT: entries written.
    pub nr_entries: u32,
    /// Guest handle: E820 entries (20 bytes each, packed).
    pub buffer: *mut u8,
}
const _: () = assert!(size_of::<XenMemoryMap>() == 16);

/// `struct xen_memory_reservation` (`memory.h`).
#[doc(alias = "xen_memory_reservation")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenMemoryReservation {
    /// Guest handle: GFNs (IN/OUT).
    pub extent_start: *mut u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// log2 of pages per extent.
    pub extent_order: u32,
    /// `XENMEMF_*` flags.
    pub mem_flags: u32,
    /// The domain (`DOMID_SELF`).
    pub domid: DomId,
}
const _: () = assert!(size_of::<XenMemoryReservation>() == 32);
