//! Ending the domain: shutdown with a reason, the panic handler, and the
//! exception report.
//!
//! # Invariants
//! - Every path ends in `SCHEDOP_shutdown` once hypercalls work; before that
//!   (a fault during the first instructions) it halts with interrupts off,
//!   which Xen treats as the vCPU going down. Neither hangs silently: the
//!   reason is printed first.
//! - A fault while reporting a fault does not recurse: the second report is
//!   one line, then shutdown.

use super::console::LineWriter;
use crate::arch::x86_64::{cpu, traps::TrapFrame};
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::interrupts;
use x86_64::registers::control::{Cr2, Cr3};
use xen_abi::sched::{SchedShutdown, SCHEDOP_SHUTDOWN, SHUTDOWN_CRASH};

static DYING: AtomicBool = AtomicBool::new(false);

/// Asks Xen to shut the domain down with `reason` (`SHUTDOWN_*`); never returns.
pub fn shutdown(reason: u32) -> ! {
    if super::hcall::ready() {
        let mut arg = SchedShutdown { reason };
        // SAFETY: the page is installed; `arg` lives across the call.
        unsafe {
            xen_abi::hypercall::sched_op(SCHEDOP_SHUTDOWN, (&mut arg as *mut SchedShutdown).cast())
        };
    }
    cpu::halt_forever()
}

fn second_fault(what: &str) -> ! {
    super::console::write_unlocked(b"gpu-dom: fault while reporting a fault: ");
    super::console::write_unlocked(what.as_bytes());
    super::console::write_unlocked(b"\n");
    shutdown(SHUTDOWN_CRASH)
}

#[panic_handler]
#[allow(clippy::incompatible_msrv)]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    interrupts::disable();
    if DYING.swap(true, Ordering::SeqCst) {
        second_fault("panic");
    }
    let mut w = LineWriter::unlocked();
    let _ = write!(w, "PANIC: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(w, " (at {}:{})", loc.file(), loc.line());
    }
    let _ = writeln!(w);
    drop(w);
    shutdown(SHUTDOWN_CRASH)
}

/// Reports exception `frame` and crashes the domain.
pub fn exception(f: &TrapFrame) -> ! {
    if DYING.swap(true, Ordering::SeqCst) {
        second_fault(crate::arch::x86_64::traps::exception_name(f.vector));
    }
    let mut w = LineWriter::unlocked();
    let name = crate::arch::x86_64::traps::exception_name(f.vector);
    let _ = writeln!(
        w,
        "EXCEPTION {name} vector={} error={:#x} rip={:#018x} cr2={:#018x}",
        f.vector,
        f.error,
        f.cpu.instruction_pointer.as_u64(),
        Cr2::read_raw()
    );
    let guard = crate::arch::x86_64::paging::stack_guard();
    if f.vector == 14 && (guard..guard + 4096).contains(&Cr2::read_raw()) {
        let _ = writeln!(w, "  stack overflow: the fault is in the guard page below the stack");
    }
    let _ = writeln!(
        w,
        "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}",
        f.rax, f.rbx, f.rcx, f.rdx
    );
    let _ = writeln!(
        w,
        "  rsi={:#018x} rdi={:#018x} rbp={:#018x} rsp={:#018x}",
        f.rsi,
        f.rdi,
        f.rbp,
        f.cpu.stack_pointer.as_u64()
    );
    let _ = writeln!(
        w,
        "  r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}",
        f.r8, f.r9, f.r10, f.r11
    );
    let _ = writeln!(
        w,
        "  r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}",
        f.r12, f.r13, f.r14, f.r15
    );
    let (pml4, cr3_low) = Cr3::read_raw();
    let _ = writeln!(
        w,
        "  cs={:#x} ss={:#x} rflags={:#x} cr3={:#x}",
        f.cpu.code_segment.0,
        f.cpu.stack_segment.0,
        f.cpu.cpu_flags.bits(),
        pml4.start_address().as_u64() | u64::from(cr3_low)
    );
    let _ = writeln!(w, "gpu-dom: crashing the domain (SHUTDOWN_crash): {name}");
    drop(w);
    shutdown(SHUTDOWN_CRASH)
}
