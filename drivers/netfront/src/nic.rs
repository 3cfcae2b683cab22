//! The data path: an rx ring kept full of granted buffers, a tx ring with
//! granted buffers and their completions, and what to do with a backend's
//! answers, good and bad.
//!
//! Buffers are granted once, before [`Netfront::new`] (rx pages writable,
//! tx pages read-only), and reused: a packet is copied out of its rx page
//! and into a free tx page. The identity of an rx buffer is its ring
//! position (netif.h: "responses always appear in the same ring slot as
//! their corresponding request"), as in Linux's netfront; the `id` the
//! backend echoes is checked against it.
//!
//! # Invariants
//! - Every rx buffer is posted on the ring, except for the moment between
//!   taking its response and posting it again: a bad response never costs
//!   a buffer.
//! - A tx buffer is in flight from [`Netfront::send`] until its response
//!   names it; when every request has been answered, every buffer is free
//!   again (one the backend never named is counted as lost, not leaked).
//! - Bad answers (an `id` that does not match, an impossible size or
//!   offset, an error status, flags that were not negotiated) are counted
//!   and the packet dropped; a ring protocol violation stops the device
//!   ([`NetError::Ring`]). Nothing the backend writes causes a panic.
//! - No allocation after [`Netfront::new`].

use alloc::vec;
use alloc::vec::Vec;

use gpuif::ring::{FrontRingOf, RingError, SharedPage};
use gpuif::PAGE_SIZE;

use crate::wire::*;

/// A page of ours, granted to the backend.
#[derive(Debug)]
pub struct Buffer<P> {
    pub page: P,
    pub gref: u32,
}

/// The smallest frame netback accepts (`ETH_HLEN`).
pub const MIN_FRAME: usize = 14;
/// The largest frame one buffer holds (no `feature-sg`).
pub const MAX_FRAME: usize = PAGE_SIZE;

/// The `io/ring.h` rings of `io/netif.h`: gpuif's front ring with netif's
/// slots, 256 of each after the 64-byte header.
type TxRing = FrontRingOf<TX_SLOT>;
type RxRing = FrontRingOf<RX_SLOT>;
const _: () = assert!(TxRing::SIZE == 256 && RxRing::SIZE == 256);

/// Why [`Netfront::new`] refused its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Between 1 and the ring size (256) of each are needed.
    BufferCount { rx: usize, tx: usize },
}

/// Which ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ring {
    Tx,
    Rx,
}

/// The device stopped: the backend broke a ring's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    Ring { ring: Ring, error: RingError },
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::Ring { ring, error } => write!(f, "{ring:?} ring: {error}"),
        }
    }
}

/// Why a packet could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// Every tx buffer is in flight.
    NoBuffer,
    /// Shorter than an Ethernet header or longer than a page.
    BadLength(usize),
    /// The device stopped.
    Stopped(NetError),
}

/// One bad answer from the backend (the last one is kept for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadAnswer {
    /// An rx response's `id` is not the buffer posted at its position.
    RxId { expected: u16, got: u16 },
    /// An rx response with an error status (`NETIF_RSP_*`).
    RxStatus(i16),
    /// A packet of `size` bytes at `offset` does not fit the page (or is empty).
    RxSize { offset: u16, size: i16 },
    /// Flags this frontend did not negotiate (more data, extra info, GSO).
    RxFlags(u16),
    /// A tx response names a buffer that is not in flight.
    TxId(u16),
    /// A tx response with a status other than `NETIF_RSP_OKAY`.
    TxStatus { id: u16, status: i16 },
    /// Every request was answered, yet these tx buffers were never named.
    TxLost(u16),
}

/// Counters, for the log and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Rx responses with an error status.
    pub rx_errors: u64,
    /// Tx responses with an error status (`ERROR`, `DROPPED`).
    pub tx_errors: u64,
    /// Packets not sent because every tx buffer was in flight.
    pub tx_no_buffer: u64,
    /// Answers that break netif.h's rules (wrong ids, sizes, flags).
    pub bad_answers: u64,
}

/// What happens to the rx responses that follow a dropped one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// Extra-info slots follow (`NETRXF_extra_info`, then `EXTRA_FLAG_MORE`).
    Extras,
    /// Fragments of the dropped packet follow (`NETRXF_more_data`).
    Fragments,
}

/// The netfront's rings and buffers (see the module documentation).
pub struct Netfront<P: SharedPage> {
    tx_ring: Buffer<P>,
    rx_ring: Buffer<P>,
    tx: TxRing,
    rx: RxRing,
    rx_bufs: Vec<Buffer<P>>,
    tx_bufs: Vec<Buffer<P>>,
    /// Ring position (index & 255) -> the rx buffer posted there.
    rx_posted: Vec<u16>,
    tx_in_flight: Vec<bool>,
    tx_free: Vec<u16>,
    skip: Skip,
    stopped: Option<NetError>,
    stats: NetStats,
    last_bad: Option<BadAnswer>,
}

impl<P: SharedPage> Netfront<P> {
    /// Initialises both shared rings and posts every rx buffer (not yet
    /// pushed: the backend sees them at the first [`Netfront::push`]).
    pub fn new(
        mut tx_ring: Buffer<P>,
        mut rx_ring: Buffer<P>,
        rx_bufs: Vec<Buffer<P>>,
        tx_bufs: Vec<Buffer<P>>,
    ) -> Result<Self, ConfigError> {
        let (nrx, ntx) = (rx_bufs.len(), tx_bufs.len());
        if !(1..=RxRing::SIZE as usize).contains(&nrx)
            || !(1..=TxRing::SIZE as usize).contains(&ntx)
        {
            return Err(ConfigError::BufferCount { rx: nrx, tx: ntx });
        }
        let tx = TxRing::init(&mut tx_ring.page);
        let rx = RxRing::init(&mut rx_ring.page);
        let mut nf = Netfront {
            tx_ring,
            rx_ring,
            tx,
            rx,
            rx_bufs,
            tx_bufs,
            rx_posted: vec![0; RxRing::SIZE as usize],
            tx_in_flight: vec![false; ntx],
            tx_free: (0..ntx as u16).rev().collect(),
            skip: Skip::Nothing,
            stopped: None,
            stats: NetStats::default(),
            last_bad: None,
        };
        for id in 0..nrx as u16 {
            nf.post_rx(id);
        }
        Ok(nf)
    }

    /// The grant references of the tx and rx ring pages (`tx-ring-ref`,
    /// `rx-ring-ref`).
    pub fn ring_refs(&self) -> (u32, u32) {
        (self.tx_ring.gref, self.rx_ring.gref)
    }

    /// Counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// The last bad answer, once (for the log).
    pub fn take_last_bad(&mut self) -> Option<BadAnswer> {
        self.last_bad.take()
    }

    /// Why the device stopped, if it did.
    pub fn stopped(&self) -> Option<NetError> {
        self.stopped
    }

    /// Tx buffers free now.
    pub fn tx_free(&self) -> usize {
        self.tx_free.len()
    }

    fn bad(&mut self, b: BadAnswer) {
        self.stats.bad_answers += 1;
        self.last_bad = Some(b);
    }

    fn post_rx(&mut self, id: u16) {
        let pos = self.rx.req_prod_pvt() & (RxRing::SIZE - 1);
        self.rx_posted[pos as usize] = id;
        let req = RxRequest { id, gref: self.rx_bufs[id as usize].gref };
        // Never full: at most `rx_bufs.len()` <= SIZE requests are in flight.
        let _ = self.rx.put_request(&mut self.rx_ring.page, &req.emit());
    }

    fn stop(&mut self, ring: Ring, error: RingError) -> NetError {
        let e = NetError::Ring { ring, error };
        self.stopped = Some(e);
        e
    }

    /// Copies the next good packet into `out` and returns its length;
    /// `Ok(None)` when no response is waiting. Bad responses met on the way
    /// are counted and their buffers posted again.
    pub fn receive(&mut self, out: &mut [u8]) -> Result<Option<usize>, NetError> {
        if let Some(e) = self.stopped {
            return Err(e);
        }
        loop {
            let pos = self.rx.rsp_cons() & (RxRing::SIZE - 1);
            let slot = match self.rx.take_response(&self.rx_ring.page) {
                Ok(Some(s)) => s,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.stop(Ring::Rx, e)),
            };
            let id = self.rx_posted[pos as usize];
            let got = self.rx_packet(id, &slot, out);
            self.post_rx(id);
            if let Some(len) = got {
                return Ok(Some(len));
            }
        }
    }

    /// Judges one rx response for buffer `id`; copies a good packet out.
    fn rx_packet(&mut self, id: u16, slot: &[u8; RX_SLOT], out: &mut [u8]) -> Option<usize> {
        match self.skip {
            Skip::Extras => {
                if RxResponse::extra_flags(slot) & EXTRA_FLAG_MORE == 0 {
                    self.skip = Skip::Nothing;
                }
                return None;
            }
            Skip::Fragments => {
                if RxResponse::parse(slot).flags & NETRXF_MORE_DATA == 0 {
                    self.skip = Skip::Nothing;
                }
                return None;
            }
            Skip::Nothing => {}
        }
        let rsp = RxResponse::parse(slot);
        let unwanted = rsp.flags & (NETRXF_MORE_DATA | NETRXF_EXTRA_INFO | NETRXF_GSO_PREFIX);
        if rsp.flags & NETRXF_EXTRA_INFO != 0 {
            self.skip = Skip::Extras;
        } else if rsp.flags & NETRXF_MORE_DATA != 0 {
            self.skip = Skip::Fragments;
        }
        if rsp.id != id {
            self.bad(BadAnswer::RxId { expected: id, got: rsp.id });
            return None;
        }
        if rsp.status < 0 {
            self.stats.rx_errors += 1;
            self.last_bad = Some(BadAnswer::RxStatus(rsp.status));
            return None;
        }
        if unwanted != 0 {
            self.bad(BadAnswer::RxFlags(rsp.flags));
            return None;
        }
        let (offset, size) = (rsp.offset as usize, rsp.status as usize);
        if size == 0 || offset + size > PAGE_SIZE || size > out.len() {
            self.bad(BadAnswer::RxSize { offset: rsp.offset, size: rsp.status });
            return None;
        }
        self.rx_bufs[id as usize].page.read(offset, &mut out[..size]);
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += size as u64;
        Some(size)
    }

    /// Queues `frame` in a free tx buffer (visible at the next
    /// [`Netfront::push`]). Takes completions first if no buffer is free.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), TxError> {
        if let Some(e) = self.stopped {
            return Err(TxError::Stopped(e));
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            return Err(TxError::BadLength(frame.len()));
        }
        if self.tx_free.is_empty() {
            self.collect_tx().map_err(TxError::Stopped)?;
        }
        let Some(id) = self.tx_free.pop() else {
            self.stats.tx_no_buffer += 1;
            return Err(TxError::NoBuffer);
        };
        let buf = &mut self.tx_bufs[id as usize];
        buf.page.write(0, frame);
        let req = TxRequest { gref: buf.gref, offset: 0, flags: 0, id, size: frame.len() as u16 };
        // Never full: at most `tx_bufs.len()` <= SIZE requests are in flight.
        let _ = self.tx.put_request(&mut self.tx_ring.page, &req.emit());
        self.tx_in_flight[id as usize] = true;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += frame.len() as u64;
        Ok(())
    }

    /// Takes every tx completion; returns how many buffers became free.
    pub fn collect_tx(&mut self) -> Result<usize, NetError> {
        if let Some(e) = self.stopped {
            return Err(e);
        }
        let before = self.tx_free.len();
        loop {
            let slot = match self.tx.take_response(&self.tx_ring.page) {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) => return Err(self.stop(Ring::Tx, e)),
            };
            let rsp = TxResponse::parse(&slot);
            let id = rsp.id as usize;
            if id >= self.tx_in_flight.len() || !self.tx_in_flight[id] {
                self.bad(BadAnswer::TxId(rsp.id));
                continue;
            }
            match rsp.status {
                RSP_OKAY => {}
                RSP_ERROR | RSP_DROPPED => {
                    self.stats.tx_errors += 1;
                    self.last_bad = Some(BadAnswer::TxStatus { id: rsp.id, status: rsp.status });
                }
                other => self.bad(BadAnswer::TxStatus { id: rsp.id, status: other }),
            }
            self.free_tx(rsp.id);
        }
        if self.tx.in_flight() == 0 && self.tx_free.len() < self.tx_bufs.len() {
            // Every request was answered: whatever the backend failed to
            // name is no longer in its hands.
            let mut lost = 0u16;
            for id in 0..self.tx_bufs.len() as u16 {
                if self.tx_in_flight[id as usize] {
                    self.free_tx(id);
                    lost += 1;
                }
            }
            self.bad(BadAnswer::TxLost(lost));
        }
        Ok(self.tx_free.len() - before)
    }

    fn free_tx(&mut self, id: u16) {
        self.tx_in_flight[id as usize] = false;
        self.tx_free.push(id);
    }

    /// Publishes queued requests on both rings; true if the backend must be
    /// notified (one event channel serves both).
    pub fn push(&mut self) -> bool {
        let tx = self.tx.push_requests(&mut self.tx_ring.page);
        let rx = self.rx.push_requests(&mut self.rx_ring.page);
        tx || rx
    }

    /// Before sleeping: asks for a notification at the next response on
    /// each ring and re-checks; true if responses are waiting (do not sleep).
    pub fn final_check(&mut self) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        let rx = self.rx.final_check_for_responses(&mut self.rx_ring.page);
        let tx = self.tx.final_check_for_responses(&mut self.tx_ring.page);
        rx || tx
    }

    /// Gives the pages back (to end their grants): tx ring, rx ring, then
    /// the rx and tx buffers.
    pub fn into_buffers(self) -> impl Iterator<Item = Buffer<P>> {
        [self.tx_ring, self.rx_ring].into_iter().chain(self.rx_bufs).chain(self.tx_bufs)
    }
}
