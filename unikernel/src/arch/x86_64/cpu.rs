//! Single-instruction wrappers: port I/O, CPUID, MSRs, TSC, control
//! registers, interrupt flag, halt.

use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, _rdtsc, CpuidResult};

/// Writes one byte to an I/O port.
pub fn outb(port: u16, val: u8) {
    // SAFETY: the ports used (0xe9 debug console) have no side effect on
    // memory; an I/O write cannot break Rust's memory model.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack, preserves_flags))
    }
}

/// Writes `bytes` to an I/O port with one `rep outsb`: under Xen an HVM or
/// PVH vCPU exits to the hypervisor once per I/O instruction, so this is
/// one exit (Xen's emulator may split it, resuming the same instruction)
/// where a byte loop of `outb` would be one exit per byte.
pub fn outsb(port: u16, bytes: &[u8]) {
    // SAFETY: OUTSB only reads `bytes` (RSI..RSI+RCX, inside the slice) and
    // writes to the port; the direction flag is clear (Rust's ABI, and every
    // interrupt stub clears it); RSI/RCX are marked clobbered.
    unsafe {
        asm!(
            "rep outsb",
            in("dx") port,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, preserves_flags, readonly)
        )
    }
}

/// CPUID leaf `leaf`, sub-leaf `sub`.
pub fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    // SAFETY: CPUID is available on every x86_64 CPU and only reads (newer
    // toolchains declare the intrinsic safe, hence the allow).
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid_count(leaf, sub)
    }
}

/// Reads MSR `msr`.
///
/// # Safety
/// `msr` must exist (else #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller names an existing MSR; RDMSR only reads it.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

/// Writes MSR `msr`.
///
/// # Safety
/// `msr` must exist and `val` must be a value whose effect the caller accounts
/// for (e.g. Xen writing the hypercall page at the address given).
pub unsafe fn wrmsr(msr: u32, val: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") val as u32, in("edx") (val >> 32) as u32, options(nostack, preserves_flags))
    }
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads a counter (CR4.TSD is clear in ring 0 anyway).
    unsafe { _rdtsc() }
}

/// CR2 (the last page-fault address).
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR3 (the page-table root).
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Lets the CPU run SSE instructions: clears `CR0.EM`, sets `CR0.MP`,
/// `CR4.OSFXSR` and `CR4.OSXMMEXCPT`. (The image itself is built soft-float;
/// this keeps any SSE code, e.g. in a future driver, from faulting.)
pub fn enable_sse() {
    // SAFETY: only the FPU/SSE control bits change; they do not affect memory
    // accesses or the code currently running.
    unsafe {
        asm!(
            "mov {t}, cr0",
            "and {t}, ~0x4",
            "or {t}, 0x2",
            "mov cr0, {t}",
            "mov {t}, cr4",
            "or {t}, 0x600",
            "mov cr4, {t}",
            t = out(reg) _,
            options(nomem, nostack, preserves_flags),
        )
    }
}

/// Disables interrupts; returns whether they were enabled. Also a compiler
/// barrier (no `nomem`): memory accesses are not moved across it.
pub fn interrupts_off() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS and clearing IF affect only interrupt delivery.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(preserves_flags)) };
    flags & 0x200 != 0
}

/// Enables interrupts. Also a compiler barrier, like [`interrupts_off`].
pub fn interrupts_on() {
    // SAFETY: the IDT is loaded before anything calls this (see `start`).
    unsafe { asm!("sti", options(nostack)) }
}

/// Stops the vCPU for good: interrupts off, then `hlt` forever (Xen takes a
/// halted vCPU with interrupts off as "down").
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: CLI and HLT only stop this vCPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// Flushes the TLB entry for `addr`.
pub fn invlpg(addr: u64) {
    // SAFETY: INVLPG only drops a cached translation.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) }
}

/// Masks every line of the legacy 8259 PICs (ports 0x21 and 0xa1). An HVM
/// domU reaches us after SeaBIOS, which leaves the PIC's timer line unmasked
/// with its vectors at 0x08..0x0f: once interrupts are on, those would land
/// on exception vectors. PVH has no PIC; the writes are then ignored.
pub fn mask_legacy_pic() {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}
