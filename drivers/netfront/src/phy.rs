//! The netfront as a smoltcp [`phy::Device`] (feature `smoltcp`).
//!
//! A received frame is copied out of its rx page into a scratch buffer
//! (smoltcp reads it from there); a frame to send is built by smoltcp in a
//! second scratch buffer and copied into a free tx page. Both buffers are
//! allocated once, in [`NetDevice::new`].
//!
//! The device takes at most [`NetDevice::set_rx_budget`] frames between two
//! calls to that method: the caller's per-round budget, so that a flood on
//! the management network cannot keep gpu-dom from its guests.

use alloc::vec;
use alloc::vec::Vec;

use gpuif::ring::SharedPage;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::nic::{NetError, Netfront, TxError, MAX_FRAME};

/// Ethernet MTU plus its header: what smoltcp may send in one frame.
pub const ETHERNET_FRAME: usize = 1514;

/// A [`Netfront`] that smoltcp can drive.
pub struct NetDevice<P: SharedPage> {
    pub nic: Netfront<P>,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    rx_budget: u32,
    /// Frames smoltcp produced that could not be queued.
    pub tx_dropped: u64,
    /// The device stopped (a ring protocol violation).
    pub error: Option<NetError>,
}

impl<P: SharedPage> NetDevice<P> {
    pub fn new(nic: Netfront<P>) -> Self {
        NetDevice {
            nic,
            rx_buf: vec![0; MAX_FRAME],
            tx_buf: vec![0; ETHERNET_FRAME],
            rx_budget: 0,
            tx_dropped: 0,
            error: None,
        }
    }

    /// Frames [`phy::Device::receive`] may still hand out this round.
    pub fn set_rx_budget(&mut self, frames: u32) {
        self.rx_budget = frames;
    }

    /// True when the budget ran out (frames may be waiting).
    pub fn budget_spent(&self) -> bool {
        self.rx_budget == 0
    }
}

/// A received frame, in the device's rx scratch buffer.
pub struct RxToken<'a>(&'a [u8]);

/// Room for one frame to send.
pub struct TxToken<'a, P: SharedPage> {
    nic: &'a mut Netfront<P>,
    buf: &'a mut [u8],
    dropped: &'a mut u64,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl<P: SharedPage> phy::TxToken for TxToken<'_, P> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(self.buf.len());
        let r = f(&mut self.buf[..len]);
        match self.nic.send(&self.buf[..len]) {
            Ok(()) => {}
            Err(TxError::NoBuffer | TxError::BadLength(_) | TxError::Stopped(_)) => {
                *self.dropped += 1
            }
        }
        r
    }
}

impl<P: SharedPage> phy::Device for NetDevice<P> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, P>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_, P>)> {
        if self.rx_budget == 0 || self.error.is_some() {
            return None;
        }
        let len = match self.nic.receive(&mut self.rx_buf) {
            Ok(Some(len)) => len,
            Ok(None) => return None,
            Err(e) => {
                self.error = Some(e);
                return None;
            }
        };
        self.rx_budget -= 1;
        let tx =
            TxToken { nic: &mut self.nic, buf: &mut self.tx_buf, dropped: &mut self.tx_dropped };
        Some((RxToken(&self.rx_buf[..len]), tx))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_, P>> {
        if self.error.is_some() {
            return None;
        }
        if self.nic.tx_free() == 0 {
            if let Err(e) = self.nic.collect_tx() {
                self.error = Some(e);
                return None;
            }
            if self.nic.tx_free() == 0 {
                return None;
            }
        }
        Some(TxToken { nic: &mut self.nic, buf: &mut self.tx_buf, dropped: &mut self.tx_dropped })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = ETHERNET_FRAME;
        caps.max_burst_size = Some(1);
        caps
    }
}
