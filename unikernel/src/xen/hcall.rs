//! Installing the hypercall page: find Xen's CPUID leaves, write the page's
//! address to the MSR they name (`arch-x86/cpuid.h`, leaf 3).

use crate::arch::x86_64::cpu;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::registers::model_specific::Msr;
use xen_abi::cpuid::*;
use xen_abi::hypercall::HYPERCALL_PAGE;

static READY: AtomicBool = AtomicBool::new(false);

/// Why the hypercall page could not be installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HcallError {
    /// No CPUID leaf carries Xen's signature: not running on Xen.
    NotXen,
    /// Xen reports no hypercall pages.
    NoPages,
}

/// Xen's CPUID base (`0x4000_0000 + n * 0x100`), if running on Xen.
pub fn cpuid_base() -> Option<u32> {
    (XEN_CPUID_FIRST_LEAF..=XEN_CPUID_LAST_BASE).step_by(0x100).find(|&base| {
        let r = cpu::cpuid(base, 0);
        r.ebx == XEN_CPUID_SIGNATURE_EBX
            && r.ecx == XEN_CPUID_SIGNATURE_ECX
            && r.edx == XEN_CPUID_SIGNATURE_EDX
            && r.eax >= base + XEN_CPUID_LEAF_HYPERCALL
    })
}

/// Installs the hypercall page; returns Xen's version (major, minor) from CPUID.
pub fn init() -> Result<(u16, u16), HcallError> {
    let base = cpuid_base().ok_or(HcallError::NotXen)?;
    let version = cpu::cpuid(base + XEN_CPUID_LEAF_VERSION, 0).eax;
    let leaf = cpu::cpuid(base + XEN_CPUID_LEAF_HYPERCALL, 0);
    if leaf.eax == 0 {
        return Err(HcallError::NoPages);
    }
    // SAFETY: `leaf.ebx` is the MSR Xen names for this purpose; writing the
    // page's guest-physical address (identity-mapped, page aligned, in
    // .bss and used for nothing else) makes Xen fill it with stubs.
    unsafe { Msr::new(leaf.ebx).write(HYPERCALL_PAGE.addr()) };
    READY.store(true, Ordering::Release);
    Ok(((version >> 16) as u16, version as u16))
}

/// True once the page is installed (hypercalls may be made).
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}
