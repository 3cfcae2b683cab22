//! The xenstore ring page of a domU (`HVM_PARAM_STORE_PFN`, notified through
//! `HVM_PARAM_STORE_EVTCHN`), as the `xenbus` crate's [`StorePage`]: that
//! crate holds the ring logic and the protocol; this is only the memory and
//! event-channel access.
//!
//! # Invariants
//! - Every access stays inside the 4096-byte page (out-of-range requests are
//!   ignored: reads give zeros).
//! - `wait` never spins: it consumes the port's pending bit if set, else
//!   sleeps in `SCHEDOP_poll` on the port, bounded by a timeout.

use super::{events, sched, timer};
use core::sync::atomic::{fence, Ordering};
use xenbus::{RingError, RingTransport, StorePage};

const PAGE: usize = 4096;

/// The xenstore ring page and its event channel.
pub struct XenstorePage {
    base: u64,
    port: events::Port,
    timeout_ns: u64,
}

impl XenstorePage {
    /// The page at `gfn` (a page Xen set aside in our physmap, below 4 GiB,
    /// identity-mapped), notified through `port`. A wait gives up after
    /// `timeout_ns`.
    ///
    /// Returns `None` if the page is not below 4 GiB (not identity-mapped).
    pub fn new(gfn: u64, port: events::Port, timeout_ns: u64) -> Option<XenstorePage> {
        (gfn < 1 << 20).then_some(XenstorePage { base: gfn << 12, port, timeout_ns })
    }

    /// A ring transport over this page.
    pub fn into_transport(self) -> RingTransport<XenstorePage> {
        RingTransport::new(self)
    }

    /// The event channel.
    pub fn port(&self) -> events::Port {
        self.port
    }

    fn inside(offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= PAGE)
    }
}

impl StorePage for XenstorePage {
    fn read_u32(&self, offset: usize) -> u32 {
        if !Self::inside(offset, 4) || !offset.is_multiple_of(4) {
            return 0;
        }
        // SAFETY: an aligned u32 inside the ring page (checked), which Xen
        // keeps mapped for the life of the domain; the peer writes it
        // concurrently, hence the volatile read.
        unsafe { core::ptr::read_volatile((self.base + offset as u64) as *const u32) }
    }

    fn write_u32(&mut self, offset: usize, value: u32) {
        if Self::inside(offset, 4) && offset.is_multiple_of(4) {
            // SAFETY: as in `read_u32`; we own the indexes we write.
            unsafe { core::ptr::write_volatile((self.base + offset as u64) as *mut u32, value) }
        }
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        if !Self::inside(offset, buf.len()) {
            buf.fill(0);
            return;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the page (checked above).
            *b =
                unsafe { core::ptr::read_volatile((self.base + (offset + i) as u64) as *const u8) };
        }
    }

    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        if !Self::inside(offset, data.len()) {
            return;
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the page (checked above).
            unsafe { core::ptr::write_volatile((self.base + (offset + i) as u64) as *mut u8, *b) };
        }
    }

    fn fence(&self) {
        fence(Ordering::SeqCst);
    }

    fn notify(&mut self) {
        events::send_raw(self.port);
    }

    fn wait(&mut self) -> Result<(), RingError> {
        if events::clear_pending(self.port) {
            return Ok(());
        }
        let deadline = timer::now_ns().saturating_add(self.timeout_ns);
        loop {
            let _ = sched::poll(&[self.port], deadline);
            if events::clear_pending(self.port) {
                return Ok(());
            }
            if timer::now_ns() >= deadline {
                return Err(RingError::TimedOut);
            }
        }
    }
}
