//! The local APIC, only as far as the event upcall needs it: software-enable
//! it (Xen's vLAPIC delivers nothing while `SVR.APIC_ENABLE` is clear) and
//! signal end-of-interrupt (the upcall vector is an edge interrupt: until EOI,
//! the in-service bit blocks the next upcall).
//!
//! Works in xAPIC mode (MMIO at the base in `IA32_APIC_BASE`, identity-mapped
//! below 4 GiB) and in x2APIC mode (MSRs), whichever the loader left enabled.
//! `IA32_APIC_BASE` and the MSR accesses are the `x86_64` crate's
//! (`ApicBase`, `Msr`); the register offsets are the SDM's.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::model_specific::{ApicBase, ApicBaseFlags, Msr};

const REG_EOI: u64 = 0xb0;
const REG_SVR: u64 = 0xf0;
const X2APIC_MSR_BASE: u32 = 0x800;
const SVR_ENABLE: u32 = 1 << 8;

/// xAPIC MMIO base, or 0 in x2APIC mode.
static MMIO_BASE: AtomicU64 = AtomicU64::new(0);

/// The x2APIC MSR of xAPIC register offset `reg` (SDM vol. 3, "x2APIC
/// Register Address Space": MSR 0x800 + offset / 16).
fn x2apic_msr(reg: u64) -> Msr {
    Msr::new(X2APIC_MSR_BASE + (reg >> 4) as u32)
}

fn write_reg(reg: u64, val: u32) {
    let base = MMIO_BASE.load(Ordering::Relaxed);
    if base == 0 {
        // SAFETY: x2APIC mode is on (see `enable`), so MSR 0x800 + reg/16 is
        // the architectural x2APIC register for `reg`.
        unsafe { x2apic_msr(reg).write(val as u64) }
    } else {
        // SAFETY: `base` is the xAPIC page (from IA32_APIC_BASE, below 4 GiB
        // and identity-mapped); `reg` is a register offset inside it.
        unsafe { core::ptr::write_volatile((base + reg) as *mut u32, val) }
    }
}

fn read_reg(reg: u64) -> u32 {
    let base = MMIO_BASE.load(Ordering::Relaxed);
    if base == 0 {
        // SAFETY: as in `write_reg`.
        unsafe { x2apic_msr(reg).read() as u32 }
    } else {
        // SAFETY: as in `write_reg`.
        unsafe { core::ptr::read_volatile((base + reg) as *const u32) }
    }
}

/// Enables the LAPIC with `spurious` as its spurious vector.
pub fn enable(spurious: u8) {
    let (frame, mut flags) = ApicBase::read();
    if !flags.contains(ApicBaseFlags::LAPIC_ENABLE) {
        flags.insert(ApicBaseFlags::LAPIC_ENABLE);
        // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (all of
        // Xen's HVM/PVH vCPUs); the base stays where it is and the mode bit
        // (x2APIC) is kept: only the global-enable bit is set.
        unsafe { ApicBase::write(frame, flags) };
    }
    let base = if flags.contains(ApicBaseFlags::X2APIC_ENABLE) {
        0
    } else {
        frame.start_address().as_u64()
    };
    MMIO_BASE.store(base, Ordering::Relaxed);
    let svr = read_reg(REG_SVR);
    write_reg(REG_SVR, (svr & !0xff) | SVR_ENABLE | spurious as u32);
}

/// Signals end of interrupt.
pub fn eoi() {
    write_reg(REG_EOI, 0);
}

/// (x2APIC mode, SVR, in-service bit of `vector`, request bit of `vector`),
/// for diagnostics.
pub fn describe(vector: u8) -> (bool, u32, bool, bool) {
    let word = 0x10 * (vector as u64 / 32);
    let bit = 1 << (vector % 32);
    let isr = read_reg(0x100 + word) & bit != 0;
    let irr = read_reg(0x200 + word) & bit != 0;
    (MMIO_BASE.load(Ordering::Relaxed) == 0, read_reg(REG_SVR), isr, irr)
}
