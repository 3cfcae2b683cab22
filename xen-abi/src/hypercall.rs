//! The hypercall page and one thin wrapper per hypercall gpu-dom makes.
//!
//! Xen fills [`HYPERCALL_PAGE`] with 32-byte stubs (`mov $nr, %eax;
//! vmcall/vmmcall; ret`) once the guest writes the page's address to the MSR
//! that CPUID leaf `base + 2` names (the `unikernel` crate does that). Until
//! then, calling any wrapper executes zeroed memory; every wrapper is `unsafe`
//! for that reason and because its pointer arguments must be valid for what
//! Xen reads or writes through them.
//!
//! Register convention (x86_64, `xen.h`): arguments in `rdi, rsi, rdx, r10,
//! r8`, result in `rax` (negative `XEN_E*` on error). Xen may clobber the
//! argument registers.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::ffi::c_void;

use crate::xen::{hypercall_nr as nr, HYPERCALL_ENTRY_SIZE};

/// One page that Xen fills with hypercall stubs.
#[repr(C, align(4096))]
pub struct HypercallPage(UnsafeCell<[u8; 4096]>);

// SAFETY: the guest never writes the page; Xen writes it once, before any
// wrapper runs (the contract of every wrapper below).
unsafe impl Sync for HypercallPage {}

/// The hypercall page. Its address goes to the hypercall MSR.
#[link_section = ".bss.hypercall_page"]
pub static HYPERCALL_PAGE: HypercallPage = HypercallPage(UnsafeCell::new([0; 4096]));

impl HypercallPage {
    /// The page's address (identity-mapped: also its guest-physical address).
    pub fn addr(&self) -> u64 {
        self.0.get() as u64
    }
}

fn entry(op: usize) -> usize {
    HYPERCALL_PAGE.0.get() as usize + op * HYPERCALL_ENTRY_SIZE
}

/// Calls hypercall `op` with up to three arguments.
///
/// # Safety
/// The hypercall page must be installed; the arguments must be what `op`
/// expects (pointers valid for Xen's reads and writes).
#[inline]
unsafe fn call3(op: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller guarantees the page holds Xen's stubs and the
    // arguments are valid for `op`; the stub follows the C ABI's clobbers.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) entry(op),
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            lateout("rax") ret,
            clobber_abi("C"),
        );
    }
    ret
}

/// `HYPERVISOR_memory_op(cmd, arg)` (`memory.h`).
///
/// # Safety
/// See the module documentation; `arg` points at the struct `cmd` expects.
pub unsafe fn memory_op(cmd: u32, arg: *mut c_void) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call3(nr::MEMORY_OP, cmd as u64, arg as u64, 0) }
}

/// `HYPERVISOR_set_timer_op(timeout)` (`xen.h`): absolute system time (ns), 0 cancels.
///
/// # Safety
/// See the module documentation.
pub unsafe fn set_timer_op(timeout_abs_ns: u64) -> i64 {
    // SAFETY: forwarded contract; no pointers.
    unsafe { call3(nr::SET_TIMER_OP, timeout_abs_ns, 0, 0) }
}

/// `HYPERVISOR_xen_version(cmd, arg)` (`version.h`).
///
/// # Safety
/// See the module documentation; `arg` points at what `cmd` expects or is null.
pub unsafe fn xen_version(cmd: u32, arg: *mut c_void) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call3(nr::XEN_VERSION, cmd as u64, arg as u64, 0) }
}

/// `HYPERVISOR_console_io(cmd, count, buffer)` (`xen.h`).
///
/// # Safety
/// See the module documentation; `buf` is valid for `count` bytes.
pub unsafe fn console_io(cmd: u32, count: u32, buf: *const u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call3(nr::CONSOLE_IO, cmd as u64, count as u64, buf as u64) }
}

/// `HYPERVISOR_grant_table_op(cmd, uop, count)` (`grant_table.h`).
///
/// # Safety
/// See the module documentation; `uop` points at `count` structs of the kind
/// `cmd` expects.
pub unsafe fn grant_table_op(cmd: u32, uop: *mut c_void, count: u32) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call3(nr::GRANT_TABLE_OP, cmd as u64, uop as u64, count as u64) }
}

/// `HYPERVISOR_vcpu_op(cmd, vcpuid, arg)` (`vcpu.h`).
///
/// # Safety
/// See the module documentation; `arg` points at what `cmd` expects or is null.
pub unsafe fn vcpu_op(cmd: u32, vcpuid: u32, arg: *mut c_void) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call3(nr::VCPU_OP, cmd as u64, vcpuid as u64, arg as u64) }
}

/// `HYPERVISOR_sched_op(cmd, arg)` (`sched.h`).
///
/// # Safety
/// See the module documentation; `arg` points at what `cmd` expects or is null.
pub unsafe fn sched_op(cmd: u32, arg: *mut c_void) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call3(nr::SCHED_OP, cmd as u64, arg as u64, 0) }
}

/// `HYPERVISOR_event_channel_op(cmd, arg)` (`event_channel.h`).
///
/// # Safety
/// See the module documentation; `arg` points at the struct `cmd` expects.
pub unsafe fn event_channel_op(cmd: u32, arg: *mut c_void) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call3(nr::EVENT_CHANNEL_OP, cmd as u64, arg as u64, 0) }
}

/// `HYPERVISOR_hvm_op(op, arg)` (`hvm_op.h`).
///
/// # Safety
/// See the module documentation; `arg` points at the struct `op` expects.
pub unsafe fn hvm_op(op: u32, arg: *mut c_void) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call3(nr::HVM_OP, op as u64, arg as u64, 0) }
}
