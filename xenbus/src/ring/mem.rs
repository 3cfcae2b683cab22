//! An in-memory xenstore page, with helpers that play the xenstored end.
//!
//! For host tests of this crate and of the crates above it: the client side
//! goes through [`StorePage`] like the real page; the `server_*` methods move
//! bytes the way xenstored does (consume `req`, produce `rsp`), and
//! [`MemPage::set_u32`] lets a test write any value, hostile ones included.

use super::layout::*;
use super::StorePage;

/// A 4 KiB xenstore page in ordinary memory.
#[derive(Clone)]
pub struct MemPage {
    bytes: [u8; PAGE_SIZE],
    notifications: u32,
}

impl Default for MemPage {
    fn default() -> Self {
        MemPage::new()
    }
}

impl core::fmt::Debug for MemPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemPage")
            .field("req_cons", &self.get_u32(REQ_CONS))
            .field("req_prod", &self.get_u32(REQ_PROD))
            .field("rsp_cons", &self.get_u32(RSP_CONS))
            .field("rsp_prod", &self.get_u32(RSP_PROD))
            .field("notifications", &self.notifications)
            .finish()
    }
}

impl MemPage {
    /// A zeroed page: empty rings, indexes at 0, no features.
    pub const fn new() -> MemPage {
        MemPage { bytes: [0; PAGE_SIZE], notifications: 0 }
    }

    /// A page whose empty rings start at these free-running indexes (to test
    /// wrap-around of the byte offsets and of the `u32` indexes).
    pub fn with_indexes(req: u32, rsp: u32) -> MemPage {
        let mut page = MemPage::new();
        page.set_u32(REQ_CONS, req);
        page.set_u32(REQ_PROD, req);
        page.set_u32(RSP_CONS, rsp);
        page.set_u32(RSP_PROD, rsp);
        page
    }

    /// Reads a `u32` field (offsets from [`layout`](super::layout)).
    pub fn get_u32(&self, offset: usize) -> u32 {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&self.bytes[offset..offset + 4]);
        u32::from_le_bytes(raw)
    }

    /// Writes a `u32` field, any value.
    pub fn set_u32(&mut self, offset: usize, value: u32) {
        self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// How often the client side notified the event channel.
    pub fn notifications(&self) -> u32 {
        self.notifications
    }

    /// Request bytes waiting for xenstored.
    pub fn server_pending(&self) -> usize {
        (self.get_u32(REQ_PROD).wrapping_sub(self.get_u32(REQ_CONS)) as usize)
            .min(XENSTORE_RING_SIZE)
    }

    /// As xenstored: consumes up to `buf.len()` request bytes.
    pub fn server_read(&mut self, buf: &mut [u8]) -> usize {
        let cons = self.get_u32(REQ_CONS);
        let n = buf.len().min(self.server_pending());
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = self.bytes[REQ + mask(cons.wrapping_add(i as u32))];
        }
        self.set_u32(REQ_CONS, cons.wrapping_add(n as u32));
        n
    }

    /// As xenstored: produces as much of `data` as the response ring has room
    /// for; returns how much.
    pub fn server_write(&mut self, data: &[u8]) -> usize {
        let prod = self.get_u32(RSP_PROD);
        let used = (prod.wrapping_sub(self.get_u32(RSP_CONS)) as usize).min(XENSTORE_RING_SIZE);
        let n = data.len().min(XENSTORE_RING_SIZE - used);
        for (i, &b) in data[..n].iter().enumerate() {
            self.bytes[RSP + mask(prod.wrapping_add(i as u32))] = b;
        }
        self.set_u32(RSP_PROD, prod.wrapping_add(n as u32));
        n
    }
}

impl StorePage for MemPage {
    fn read_u32(&self, offset: usize) -> u32 {
        self.get_u32(offset)
    }

    fn write_u32(&mut self, offset: usize, value: u32) {
        self.set_u32(offset, value);
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes[offset..offset + buf.len()]);
    }

    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.bytes[offset..offset + data.len()].copy_from_slice(data);
    }

    fn fence(&self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }

    fn notify(&mut self) {
        self.notifications = self.notifications.wrapping_add(1);
    }
}
