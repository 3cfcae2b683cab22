//! ELF note types from `xen/include/public/elfnote.h`.

/// `XEN_ELFNOTE_PHYS32_ENTRY` (`elfnote.h`): the 32-bit physical entry point
/// of a PVH kernel, entered in protected mode, paging off, `%ebx` pointing at
/// `struct hvm_start_info`.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The note's name ("Xen", NUL-terminated).
pub const XEN_ELFNOTE_NAME: &[u8; 4] = b"Xen\0";
