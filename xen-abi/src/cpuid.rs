//! Xen's CPUID leaves (`xen/include/public/arch-x86/cpuid.h`).
//!
//! Xen's leaves start at `0x4000_0000` but may be shifted by multiples of
//! `0x100` (when Xen also offers Viridian leaves); a guest scans for the
//! signature.

/// `XEN_CPUID_FIRST_LEAF` (`arch-x86/cpuid.h`).
pub const XEN_CPUID_FIRST_LEAF: u32 = 0x4000_0000;
/// The last base a guest needs to try (`0x4000_0000 + n * 0x100`, `n < 256`).
pub const XEN_CPUID_LAST_BASE: u32 = 0x4000_ff00;
/// `XEN_CPUID_SIGNATURE_EBX`: "XenV" (`arch-x86/cpuid.h`).
pub const XEN_CPUID_SIGNATURE_EBX: u32 = 0x566e_6558;
/// `XEN_CPUID_SIGNATURE_ECX`: "MMXe" (`arch-x86/cpuid.h`).
pub const XEN_CPUID_SIGNATURE_ECX: u32 = 0x6558_4d4d;
/// `XEN_CPUID_SIGNATURE_EDX`: "nVMM" (`arch-x86/cpuid.h`).
pub const XEN_CPUID_SIGNATURE_EDX: u32 = 0x4d4d_566e;
/// Offset of the leaf whose EAX is the number of hypercall pages and EBX the
/// MSR that installs them (`arch-x86/cpuid.h`, "Leaf 3").
pub const XEN_CPUID_LEAF_HYPERCALL: u32 = 2;
/// Offset of the version leaf: EAX = major << 16 | minor (`arch-x86/cpuid.h`, "Leaf 2").
pub const XEN_CPUID_LEAF_VERSION: u32 = 1;
