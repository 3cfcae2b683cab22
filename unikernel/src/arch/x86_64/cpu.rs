//! What the CPU needs beyond the `x86_64` crate's instruction and register
//! wrappers: a string port write, CPUID and the TSC from `core::arch`, and
//! the few sequences this unikernel gives a name (SSE on, halt for good, the
//! legacy PIC masked).
//!
//! Everything else (control registers, MSRs, port I/O, `cli`/`sti`/`hlt`,
//! `invlpg`) callers take from `x86_64` directly.

use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, _rdtsc, CpuidResult};

use x86_64::instructions::{hlt, interrupts, port::Port};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// Writes one byte to I/O port `port`.
///
/// Only for ports without an effect on memory: Xen's debug console (0xe9)
/// and QEMU's `isa-debug-exit` (0xf4).
pub fn outb(port: u16, val: u8) {
    // SAFETY: the ports this is used for (see above) have no side effect on
    // memory; an I/O write cannot break Rust's memory model.
    unsafe { Port::<u8>::new(port).write(val) }
}

/// Writes `bytes` to an I/O port with one `rep outsb`: under Xen an HVM or
/// PVH vCPU exits to the hypervisor once per I/O instruction, so this is
/// one exit (Xen's emulator may split it, resuming the same instruction)
/// where a byte loop of `outb` would be one exit per byte. (The `x86_64`
/// crate has single-value port accesses only.)
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

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads a counter (CR4.TSD is clear in ring 0 anyway).
    #[allow(unused_unsafe)]
    unsafe {
        _rdtsc()
    }
}

/// Lets the CPU run SSE instructions: clears `CR0.EM`, sets `CR0.MP`,
/// `CR4.OSFXSR` and `CR4.OSXMMEXCPT`. (The image itself is built soft-float;
/// this keeps any SSE code, e.g. in a future driver, from faulting.)
pub fn enable_sse() {
    // SAFETY: only the FPU/SSE control bits change; they do not affect memory
    // accesses or the code currently running.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
}

/// Stops the vCPU for good: interrupts off, then `hlt` forever (Xen takes a
/// halted vCPU with interrupts off as "down").
pub fn halt_forever() -> ! {
    loop {
        interrupts::disable();
        hlt();
    }
}

/// Masks every line of the legacy 8259 PICs (ports 0x21 and 0xa1). An HVM
/// domU reaches us after SeaBIOS, which leaves the PIC's timer line unmasked
/// with its vectors at 0x08..0x0f: once interrupts are on, those would land
/// on exception vectors. PVH has no PIC; the writes are then ignored.
pub fn mask_legacy_pic() {
    // SAFETY: the PICs' interrupt-mask registers (OCW1); masking lines only
    // stops interrupt delivery and touches no memory.
    unsafe {
        Port::<u8>::new(0x21).write(0xff);
        Port::<u8>::new(0xa1).write(0xff);
    }
}
