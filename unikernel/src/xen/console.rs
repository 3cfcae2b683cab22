//! Console output: the early debug port, Xen's console (dom0), and the PV
//! console ring (a domU's console, what xenconsoled logs and `xl console`
//! shows).
//!
//! Every byte goes to port 0xe9 (Xen prints a domU's 0xe9 bytes on its own
//! console as `(dN) ...`). Once [`use_console_io`] or [`use_ring`] has been
//! called, bytes also go to `console_io` or the ring.
//!
//! # Invariants
//! - Output never blocks forever: a full ring is given a bounded number of
//!   yields to drain, then bytes are dropped (and counted).
//! - The writer used after a panic or exception ([`write_unlocked`]) takes no
//!   lock, so a fault while printing cannot deadlock the report.

use crate::arch::x86_64::cpu;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use xen_abi::console::XenconsInterface;
use xen_abi::xen::CONSOLEIO_WRITE;

const PORT_E9: u16 = 0xe9;
const MODE_EARLY: u8 = 0;
const MODE_CONSOLE_IO: u8 = 1;
const MODE_RING: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(MODE_EARLY);
static E9: AtomicU8 = AtomicU8::new(1);
static RING_GFN: AtomicU64 = AtomicU64::new(0);
static RING_PORT: AtomicU32 = AtomicU32::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Sends output through `HYPERVISOR_console_io` (dom0). With
/// `keep_e9 = false`, stops writing port 0xe9 (when it would duplicate lines
/// on the same serial console).
pub fn use_console_io(keep_e9: bool) {
    E9.store(keep_e9 as u8, Ordering::Relaxed);
    MODE.store(MODE_CONSOLE_IO, Ordering::Release);
}

/// Sends output to the PV console ring at `gfn`, notifying `port`.
pub fn use_ring(gfn: u64, port: u32) {
    RING_GFN.store(gfn, Ordering::Relaxed);
    RING_PORT.store(port, Ordering::Relaxed);
    MODE.store(MODE_RING, Ordering::Release);
}

/// Bytes dropped because the ring stayed full.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Port 0xe9, Xen's HVM debug console (`hvm_print_line`): one `rep outsb`
/// per write, one VM exit, not one `out` (and one exit) per byte.
fn e9(bytes: &[u8]) {
    if E9.load(Ordering::Relaxed) != 0 && !bytes.is_empty() {
        cpu::outsb(PORT_E9, bytes);
    }
}

fn console_io(bytes: &[u8]) {
    for chunk in bytes.chunks(1024) {
        // SAFETY: the hypercall page is installed before MODE_CONSOLE_IO is
        // set; `chunk` is valid for its length, and Xen only reads it.
        unsafe {
            xen_abi::hypercall::console_io(CONSOLEIO_WRITE, chunk.len() as u32, chunk.as_ptr())
        };
    }
}

/// One `CONSOLEIO_write` of `bytes` (at most 1 KiB), with its result.
pub fn console_io_write(bytes: &[u8]) -> Result<(), super::XenError> {
    let n = bytes.len().min(1024);
    // SAFETY: the hypercall page is installed at boot, before any caller;
    // `bytes` is valid for `n` bytes, and Xen only reads them.
    let rc = unsafe { xen_abi::hypercall::console_io(CONSOLEIO_WRITE, n as u32, bytes.as_ptr()) };
    super::XenError::check("CONSOLEIO_write", rc).map(|_| ())
}

fn ring(bytes: &[u8]) {
    let gfn = RING_GFN.load(Ordering::Relaxed);
    let port = RING_PORT.load(Ordering::Relaxed);
    let intf = (gfn << 12) as *mut XenconsInterface;
    // SAFETY: `gfn` is HVM_PARAM_CONSOLE_PFN: a page of our physmap that Xen
    // set aside for the ring (below 4 GiB, identity-mapped, excluded from the
    // heap). The daemon owns `out_cons`; we own `out_prod` and `out`. Indexes
    // are read with volatile loads and masked before use.
    unsafe {
        let out = core::ptr::addr_of_mut!((*intf).out) as *mut u8;
        let cons_p = core::ptr::addr_of!((*intf).out_cons);
        let prod_p = core::ptr::addr_of_mut!((*intf).out_prod);
        let mut prod = core::ptr::read_volatile(prod_p);
        let mut waits = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let expanded: &[u8] = if b == b'\n' { b"\r\n" } else { core::slice::from_ref(&b) };
            for &c in expanded {
                while prod.wrapping_sub(core::ptr::read_volatile(cons_p)) >= 2048 {
                    core::sync::atomic::fence(Ordering::Release);
                    core::ptr::write_volatile(prod_p, prod);
                    super::events::send_raw(port);
                    if waits >= 1000 {
                        DROPPED.fetch_add((bytes.len() - i) as u64, Ordering::Relaxed);
                        return;
                    }
                    waits += 1;
                    super::sched::yield_now();
                }
                core::ptr::write_volatile(out.add((prod & 2047) as usize), c);
                prod = prod.wrapping_add(1);
            }
        }
        core::sync::atomic::fence(Ordering::Release);
        core::ptr::write_volatile(prod_p, prod);
    }
    super::events::send_raw(port);
}

/// Writes `bytes` to every active console, without taking the lock.
pub fn write_unlocked(bytes: &[u8]) {
    e9(bytes);
    match MODE.load(Ordering::Acquire) {
        MODE_CONSOLE_IO => console_io(bytes),
        MODE_RING => ring(bytes),
        _ => {}
    }
}

/// Writes `bytes` to every active console.
pub fn write(bytes: &[u8]) {
    let _g = LOCK.lock();
    write_unlocked(bytes);
}

/// A `fmt::Write` that buffers one line and writes it whole (so lines from
/// different callers do not interleave inside a line).
pub struct LineWriter {
    buf: [u8; 512],
    len: usize,
    unlocked: bool,
}

impl LineWriter {
    /// A writer that takes the console lock per line.
    pub const fn new() -> Self {
        LineWriter { buf: [0; 512], len: 0, unlocked: false }
    }
    /// A writer for the panic and exception paths (no lock).
    pub const fn unlocked() -> Self {
        LineWriter { buf: [0; 512], len: 0, unlocked: true }
    }
    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            if self.unlocked {
                write_unlocked(&self.buf[..self.len]);
            } else {
                write(&self.buf[..self.len]);
            }
            self.len = 0;
        }
    }
}

impl Default for LineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Prints one line (no prefix) on every console: used for the machine-read
/// markers (`SELFTEST ...`, `PANIC: ...`, `EXCEPTION ...`).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut w = $crate::xen::console::LineWriter::new();
        let _ = writeln!(w, $($arg)*);
    }};
}

/// The PV console ring's (out_cons, out_prod), if the ring is in use.
pub fn ring_indexes() -> Option<(u32, u32)> {
    if MODE.load(Ordering::Acquire) != MODE_RING {
        return None;
    }
    let intf = (RING_GFN.load(Ordering::Relaxed) << 12) as *const XenconsInterface;
    // SAFETY: as in `ring`: the ring page is mapped; the indexes are read
    // with volatile loads.
    unsafe {
        Some((
            core::ptr::read_volatile(core::ptr::addr_of!((*intf).out_cons)),
            core::ptr::read_volatile(core::ptr::addr_of!((*intf).out_prod)),
        ))
    }
}
