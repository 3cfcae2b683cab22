//! Grant tables, version 1: `xen/include/public/grant_table.h`
//! (`HYPERVISOR_grant_table_op(cmd, uop, count)`).

use crate::xen::DomId;
use core::mem::size_of;

/// `grant_ref_t` (`grant_table.h`).
pub type GrantRef = u32;
/// `grant_handle_t` (`grant_table.h`).
pub type GrantHandle = u32;

/// `struct grant_entry_v1` (`grant_table.h`): one entry of the granting
/// domain's table. Write `domid` and `frame` first, then `flags` (with a
/// write barrier between): Xen reads `flags` to decide the entry is valid.
#[doc(alias = "grant_entry_v1")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: DomId,
    /// The granted GFN (`GTF_permit_access`).
    pub frame: u32,
}
const _: () = assert!(size_of::<GrantEntryV1>() == 8);

/// Entries of [`GrantEntryV1`] per 4 KiB grant-table frame.
pub const GRANT_ENTRIES_V1_PER_FRAME: usize = 4096 / size_of::<GrantEntryV1>();

/// `GNTTAB_NR_RESERVED_ENTRIES` (`grant_table.h`): refs `0..8` are reserved
/// for the toolstack (console, xenstore).
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;

/// `GTF_invalid` (`grant_table.h`).
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access` (`grant_table.h`).
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_type_mask` (`grant_table.h`).
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly` (`grant_table.h`).
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading` (`grant_table.h`): set by Xen while the grant is mapped.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing` (`grant_table.h`): set by Xen while mapped writable.
pub const GTF_WRITING: u16 = 1 << 4;

/// `GNTTABOP_map_grant_ref` (`grant_table.h`).
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// `GNTTABOP_unmap_grant_ref` (`grant_table.h`).
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// `GNTTABOP_setup_table` (`grant_table.h`).
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// `GNTTABOP_copy` (`grant_table.h`).
pub const GNTTABOP_COPY: u32 = 5;
/// `GNTTABOP_query_size` (`grant_table.h`).
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// `GNTTABOP_set_version` (`grant_table.h`).
pub const GNTTABOP_SET_VERSION: u32 = 8;

/// `GNTMAP_device_map` (`grant_table.h`).
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map` (`grant_table.h`): for an HVM/PVH caller, `host_addr`
/// is the guest-physical address where the page appears.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly` (`grant_table.h`).
pub const GNTMAP_READONLY: u32 = 1 << 2;

/// `GNTST_okay` (`grant_table.h`).
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error` (`grant_table.h`).
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain` (`grant_table.h`).
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref` (`grant_table.h`).
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle` (`grant_table.h`).
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr` (`grant_table.h`).
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_permission_denied` (`grant_table.h`).
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page` (`grant_table.h`).
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_eagain` (`grant_table.h`).
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space` (`grant_table.h`).
pub const GNTST_NO_SPACE: i16 = -13;

/// `struct gnttab_map_grant_ref` (`grant_table.h`).
#[doc(alias = "gnttab_map_grant_ref")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabMapGrantRef {
    /// IN: where to map (a guest-physical address for HVM/PVH callers).
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the grant reference in `dom`'s table.
    pub ref_: GrantRef,
    /// IN: the granting domain.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for the unmap.
    pub handle: GrantHandle,
    /// OUT: bus address (with `GNTMAP_device_map`).
    pub dev_bus_addr: u64,
}
const _: () = assert!(size_of::<GnttabMapGrantRef>() == 32);

/// `struct gnttab_unmap_grant_ref` (`grant_table.h`).
#[doc(alias = "gnttab_unmap_grant_ref")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabUnmapGrantRef {
    /// IN: the address given to the map.
    pub host_addr: u64,
    /// IN: the bus address returned by the map (0 without device_map).
    pub dev_bus_addr: u64,
    /// IN: the handle returned by the map.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = assert!(size_of::<GnttabUnmapGrantRef>() == 24);

/// `struct gnttab_setup_table` (`grant_table.h`).
#[doc(alias = "gnttab_setup_table")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GnttabSetupTable {
    /// IN: `DOMID_SELF`.
    pub dom: DomId,
    /// IN: frames wanted.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT (guest handle): `nr_frames` frame numbers.
    pub frame_list: *mut u64,
}
const _: () = assert!(size_of::<GnttabSetupTable>() == 24);

/// `struct gnttab_query_size` (`grant_table.h`).
#[doc(alias = "gnttab_query_size")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabQuerySize {
    /// IN: `DOMID_SELF`.
    pub dom: DomId,
    /// OUT: frames currently in the table.
    pub nr_frames: u32,
    /// OUT: frames the table may grow to.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = assert!(size_of::<GnttabQuerySize>() == 16);

/// `struct gnttab_set_version` (`grant_table.h`).
#[doc(alias = "gnttab_set_version")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabSetVersion {
    /// IN/OUT: 1 or 2.
    pub version: u32,
}
const _: () = assert!(size_of::<GnttabSetVersion>() == 4);

/// `GNTCOPY_source_gref` (`grant_table.h`): `source.u` is a grant ref, not a GFN.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref` (`grant_table.h`): `dest.u` is a grant ref, not a GFN.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// One end of a `struct gnttab_copy` (`grant_table.h`, `gnttab_copy_ptr`).
/// The union `u` (`grant_ref_t ref` / `xen_pfn_t gmfn`) is kept as one
/// 64-bit word: a grant ref is its low 32 bits (little endian).
#[doc(alias = "gnttab_copy_ptr")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    /// IN: a grant ref (with `GNTCOPY_*_gref`) or a GFN of `domid`.
    pub u: u64,
    /// IN: the domain (`DOMID_SELF` for our own frame).
    pub domid: DomId,
    /// IN: byte offset in the page.
    pub offset: u16,
}
const _: () = assert!(size_of::<GnttabCopyPtr>() == 16);

/// `struct gnttab_copy` (`grant_table.h`): Xen copies `len` bytes from
/// `source` to `dest`, neither crossing a page boundary. Nothing is mapped.
#[doc(alias = "gnttab_copy")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    /// IN: where to copy from.
    pub source: GnttabCopyPtr,
    /// IN: where to copy to.
    pub dest: GnttabCopyPtr,
    /// IN: bytes to copy.
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
const _: () = assert!(size_of::<GnttabCopy>() == 40);
const _: () = assert!(core::mem::offset_of!(GnttabCopy, dest) == 16);
const _: () = assert!(core::mem::offset_of!(GnttabCopy, len) == 32);
const _: () = assert!(core::mem::offset_of!(GnttabCopy, status) == 36);
