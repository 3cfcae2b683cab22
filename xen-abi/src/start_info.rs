//! The PVH start of day: `xen/include/public/arch-x86/hvm/start_info.h`.
//!
//! On entry through `XEN_ELFNOTE_PHYS32_ENTRY`, `%ebx` holds the physical
//! address of a [`HvmStartInfo`].

use core::mem::size_of;

/// `XEN_HVM_START_MAGIC_VALUE` (`start_info.h`): "xEn3" with bit 7 of 'E' set.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// `XEN_HVM_MEMMAP_TYPE_RAM` (`start_info.h`; ACPI address range types).
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
/// `XEN_HVM_MEMMAP_TYPE_RESERVED` (`start_info.h`).
pub const XEN_HVM_MEMMAP_TYPE_RESERVED: u32 = 2;
/// `XEN_HVM_MEMMAP_TYPE_ACPI` (`start_info.h`).
pub const XEN_HVM_MEMMAP_TYPE_ACPI: u32 = 3;
/// `XEN_HVM_MEMMAP_TYPE_NVS` (`start_info.h`).
pub const XEN_HVM_MEMMAP_TYPE_NVS: u32 = 4;
/// `XEN_HVM_MEMMAP_TYPE_UNUSABLE` (`start_info.h`).
pub const XEN_HVM_MEMMAP_TYPE_UNUSABLE: u32 = 5;

/// `struct hvm_start_info` (`start_info.h`). Fields from `memmap_paddr` on
/// exist only when `version >= 1`.
#[doc(alias = "hvm_start_info")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmStartInfo {
    /// [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Version of this structure (0 or 1).
    pub version: u32,
    /// `SIF_*` flags (`xen.h`).
    pub flags: u32,
    /// Number of entries at `modlist_paddr`.
    pub nr_modules: u32,
    /// Physical address of an array of [`HvmModlistEntry`].
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line (0: none).
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP (0: none).
    pub rsdp_paddr: u64,
    /// Physical address of an array of [`HvmMemmapTableEntry`] (version >= 1).
    pub memmap_paddr: u64,
    /// Number of entries at `memmap_paddr`; 0 when no map is given (version >= 1).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}
const _: () = assert!(size_of::<HvmStartInfo>() == 56);
/// Size of the version-0 structure (everything before `memmap_paddr`).
pub const HVM_START_INFO_V0_SIZE: usize = 40;

/// `struct hvm_modlist_entry` (`start_info.h`).
#[doc(alias = "hvm_modlist_entry")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size of the module in bytes.
    pub size: u64,
    /// Physical address of the module's command line (0: none).
    pub cmdline_paddr: u64,
    /// Reserved.
    pub reserved: u64,
}
const _: () = assert!(size_of::<HvmModlistEntry>() == 32);

/// `struct hvm_memmap_table_entry` (`start_info.h`).
#[doc(alias = "hvm_memmap_table_entry")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmMemmapTableEntry {
    /// Base address of the region.
    pub addr: u64,
    /// Size of the region in bytes.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*`.
    pub type_: u32,
    /// Must be zero.
    pub reserved: u32,
}
const _: () = assert!(size_of::<HvmMemmapTableEntry>() == 24);

/// Size of one entry of the BIOS INT 15h/E820 format that
/// `XENMEM_memory_map` returns (`memory.h`): packed `u64 addr, u64 size, u32 type`.
pub const E820_ENTRY_SIZE: usize = 20;
