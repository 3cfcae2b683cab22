//! The data path against a model of netback: it maps our granted pages by
//! grant reference, copies packets into posted rx buffers and reads our tx
//! buffers, and it can answer badly in every way netif.h leaves open. The
//! frontend must deliver exactly the good packets, keep every buffer, and
//! never panic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gpuif::ring::{RingError, SharedPage};
use netfront::nic::{BadAnswer, Buffer, NetError, Netfront, TxError, MAX_FRAME};
use netfront::wire::*;
use netfront::NetStats;

const PAGE: usize = 4096;

/// A page both sides see (the model's grant mapping of our page).
#[derive(Clone)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Shared {
    fn new() -> Self {
        Shared(Rc::new(RefCell::new(vec![0; PAGE])))
    }
}

impl SharedPage for Shared {
    fn read_u32(&self, o: usize) -> u32 {
        let p = self.0.borrow();
        u32::from_le_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]])
    }
    fn write_u32(&mut self, o: usize, v: u32) {
        self.0.borrow_mut()[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn read(&self, o: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0.borrow()[o..o + buf.len()]);
    }
    fn write(&mut self, o: usize, data: &[u8]) {
        self.0.borrow_mut()[o..o + data.len()].copy_from_slice(data);
    }
    fn fence(&self) {}
}

/// netback, modelled: the grant table it maps from, and its ring cursors.
struct Backend {
    grants: HashMap<u32, Shared>,
    tx_ring: Shared,
    rx_ring: Shared,
    tx_req_cons: u32,
    tx_rsp_prod: u32,
    rx_req_cons: u32,
    rx_rsp_prod: u32,
    /// Frames read from tx requests, in order.
    sent: Vec<Vec<u8>>,
}

const HDR: usize = 64;

impl Backend {
    fn slot(index: u32, size: usize) -> usize {
        HDR + (index & 255) as usize * size
    }

    fn rx_outstanding(&self) -> u32 {
        self.rx_ring.read_u32(0).wrapping_sub(self.rx_req_cons)
    }

    /// Takes the next rx request (the buffer a packet goes into).
    fn take_rx(&mut self) -> Option<RxRequest> {
        if self.rx_outstanding() == 0 {
            return None;
        }
        let mut s = [0u8; RX_SLOT];
        self.rx_ring.read(Self::slot(self.rx_req_cons, RX_SLOT), &mut s);
        self.rx_req_cons += 1;
        Some(RxRequest::parse(&s))
    }

    fn put_rx(&mut self, rsp: [u8; RX_SLOT]) {
        self.rx_ring.write(Self::slot(self.rx_rsp_prod, RX_SLOT), &rsp);
        self.rx_rsp_prod += 1;
        self.rx_ring.write_u32(8, self.rx_rsp_prod);
    }

    /// Copies `frame` into the next posted buffer, as netback's grant copy does.
    fn deliver(&mut self, frame: &[u8], offset: u16) {
        let req = self.take_rx().expect("a posted rx buffer");
        self.grants.get_mut(&req.gref).expect("granted").write(offset as usize, frame);
        let rsp = RxResponse { id: req.id, offset, flags: 0, status: frame.len() as i16 };
        self.put_rx(rsp.emit());
    }

    /// Consumes the next rx request and answers it with `f(request)`.
    fn answer_rx(&mut self, f: impl FnOnce(RxRequest) -> [u8; RX_SLOT]) {
        let req = self.take_rx().expect("a posted rx buffer");
        self.put_rx(f(req));
    }

    /// Reads every tx request; answers each with `status(id)` (None: no answer yet).
    fn take_tx(&mut self) -> Vec<TxRequest> {
        let prod = self.tx_ring.read_u32(0);
        let mut out = Vec::new();
        while self.tx_req_cons != prod {
            let mut s = [0u8; TX_SLOT];
            self.tx_ring.read(Self::slot(self.tx_req_cons, TX_SLOT), &mut s);
            self.tx_req_cons += 1;
            let r = TxRequest::parse(&s);
            let mut frame = vec![0; r.size as usize];
            self.grants[&r.gref].read(r.offset as usize, &mut frame);
            self.sent.push(frame);
            out.push(r);
        }
        out
    }

    fn put_tx(&mut self, rsp: TxResponse) {
        self.tx_ring.write(Self::slot(self.tx_rsp_prod, TX_SLOT), &rsp.emit());
        self.tx_rsp_prod += 1;
        self.tx_ring.write_u32(8, self.tx_rsp_prod);
    }

    fn complete_all_tx(&mut self) -> usize {
        let reqs = self.take_tx();
        for r in &reqs {
            self.put_tx(TxResponse { id: r.id, status: RSP_OKAY });
        }
        reqs.len()
    }
}

/// A frontend with `nrx` rx and `ntx` tx buffers, and the backend that
/// maps them (grant refs 10.. for the rings and buffers).
fn rig(nrx: usize, ntx: usize) -> (Netfront<Shared>, Backend) {
    let mut grants = HashMap::new();
    let mut next = 10u32;
    let mut grant = |grants: &mut HashMap<u32, Shared>| {
        let page = Shared::new();
        next += 1;
        grants.insert(next, page.clone());
        Buffer { page, gref: next }
    };
    let tx_ring = grant(&mut grants);
    let rx_ring = grant(&mut grants);
    let rx = (0..nrx).map(|_| grant(&mut grants)).collect();
    let tx = (0..ntx).map(|_| grant(&mut grants)).collect();
    let be = Backend {
        tx_ring: tx_ring.page.clone(),
        rx_ring: rx_ring.page.clone(),
        grants,
        tx_req_cons: 0,
        tx_rsp_prod: 0,
        rx_req_cons: 0,
        rx_rsp_prod: 0,
        sent: Vec::new(),
    };
    let nf = Netfront::new(tx_ring, rx_ring, rx, tx).expect("buffer counts");
    (nf, be)
}

fn frame(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
}

fn recv(nf: &mut Netfront<Shared>) -> Option<Vec<u8>> {
    let mut out = vec![0; MAX_FRAME];
    nf.receive(&mut out).expect("device running").map(|n| out[..n].to_vec())
}

#[test]
fn every_rx_buffer_is_posted_and_refilled_as_packets_arrive() {
    let (mut nf, mut be) = rig(8, 4);
    assert!(nf.push(), "the first push notifies");
    assert_eq!(be.rx_outstanding(), 8);
    for i in 0..50u8 {
        let f = frame(60 + i as usize, i);
        be.deliver(&f, (i as u16 % 3) * 100);
        assert_eq!(recv(&mut nf), Some(f));
        nf.push();
        assert_eq!(be.rx_outstanding(), 8, "the buffer went back on the ring");
    }
    assert_eq!(recv(&mut nf), None);
    let s = nf.stats();
    assert_eq!((s.rx_packets, s.bad_answers, s.rx_errors), (50, 0, 0));
}

#[test]
fn tx_frames_reach_the_backend_and_completions_free_their_buffers() {
    let (mut nf, mut be) = rig(2, 3);
    for i in 0..3u8 {
        nf.send(&frame(100, i)).unwrap();
    }
    assert_eq!(nf.send(&frame(100, 9)), Err(TxError::NoBuffer));
    assert_eq!(nf.stats().tx_no_buffer, 1);
    nf.push();
    assert_eq!(be.complete_all_tx(), 3);
    assert_eq!(be.sent, vec![frame(100, 0), frame(100, 1), frame(100, 2)]);
    assert_eq!(nf.collect_tx(), Ok(3));
    nf.send(&frame(1514, 7)).unwrap();
    nf.push();
    be.complete_all_tx();
    assert_eq!(be.sent.last(), Some(&frame(1514, 7)));
    assert_eq!(nf.send(&[0; 13]), Err(TxError::BadLength(13)));
    assert_eq!(nf.send(&vec![0; MAX_FRAME + 1]), Err(TxError::BadLength(MAX_FRAME + 1)));
}

#[test]
fn bad_rx_answers_are_counted_dropped_and_cost_no_buffer() {
    let (mut nf, mut be) = rig(4, 2);
    nf.push();
    // An id that is not the buffer posted at that position.
    be.answer_rx(|r| RxResponse { id: r.id ^ 1, offset: 0, flags: 0, status: 60 }.emit());
    // An error status.
    be.answer_rx(|r| RxResponse { id: r.id, offset: 0, flags: 0, status: RSP_ERROR }.emit());
    // Impossible sizes and offsets.
    be.answer_rx(|r| RxResponse { id: r.id, offset: 4000, flags: 0, status: 200 }.emit());
    be.answer_rx(|r| RxResponse { id: r.id, offset: 0, flags: 0, status: 0 }.emit());
    assert_eq!(recv(&mut nf), None);
    nf.push();
    be.answer_rx(|r| RxResponse { id: r.id, offset: 0xffff, flags: 0, status: i16::MAX }.emit());
    assert_eq!(recv(&mut nf), None);
    nf.push();
    assert_eq!(be.rx_outstanding(), 4, "every buffer is back on the ring");
    let s = nf.stats();
    assert_eq!((s.rx_packets, s.rx_errors, s.bad_answers), (0, 1, 4));
    // Service goes on.
    be.deliver(&frame(64, 1), 0);
    assert_eq!(recv(&mut nf), Some(frame(64, 1)));
}

#[test]
fn fragments_and_extra_info_that_were_not_negotiated_are_skipped_whole() {
    let (mut nf, mut be) = rig(8, 2);
    nf.push();
    // A packet in three slots (more_data twice): all three dropped.
    be.answer_rx(|r| {
        RxResponse { id: r.id, offset: 0, flags: NETRXF_MORE_DATA, status: 100 }.emit()
    });
    be.answer_rx(|r| {
        RxResponse { id: r.id, offset: 0, flags: NETRXF_MORE_DATA, status: 100 }.emit()
    });
    be.answer_rx(|r| RxResponse { id: r.id, offset: 0, flags: 0, status: 100 }.emit());
    // A packet with two extra-info slots (the first says MORE).
    be.answer_rx(|r| {
        RxResponse { id: r.id, offset: 0, flags: NETRXF_EXTRA_INFO, status: 100 }.emit()
    });
    be.answer_rx(|_| [1, EXTRA_FLAG_MORE, 0, 0, 0, 0, 0, 0]);
    be.answer_rx(|_| [1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    be.deliver(&frame(70, 3), 12);
    assert_eq!(recv(&mut nf), Some(frame(70, 3)), "the first good packet after them");
    nf.push();
    assert_eq!(be.rx_outstanding(), 8);
    assert_eq!(nf.stats().bad_answers, 2, "one per dropped packet");
}

#[test]
fn bad_tx_answers_are_counted_and_lost_buffers_come_back() {
    let (mut nf, mut be) = rig(2, 4);
    for i in 0..4u8 {
        nf.send(&frame(80, i)).unwrap();
    }
    nf.push();
    let reqs = be.take_tx();
    be.put_tx(TxResponse { id: reqs[0].id, status: RSP_OKAY });
    be.put_tx(TxResponse { id: reqs[0].id, status: RSP_OKAY }); // again: not in flight
    be.put_tx(TxResponse { id: 999, status: RSP_OKAY }); // no such buffer
    be.put_tx(TxResponse { id: reqs[1].id, status: RSP_DROPPED });
    assert_eq!(nf.collect_tx(), Ok(4), "all answered: the two never named are reclaimed");
    let s = nf.stats();
    assert_eq!(s.tx_errors, 1);
    assert_eq!(s.bad_answers, 3, "duplicate id, unknown id, then the lost buffers");
    assert_eq!(nf.take_last_bad(), Some(BadAnswer::TxLost(2)));
    assert_eq!(nf.tx_free(), 4);
}

#[test]
fn a_runaway_producer_stops_the_device_without_a_panic() {
    let (mut nf, mut be) = rig(4, 2);
    nf.push();
    be.rx_ring.write_u32(8, 1000);
    let mut out = vec![0; MAX_FRAME];
    let stopped = NetError::Ring {
        ring: netfront::nic::Ring::Rx,
        error: RingError::ProducerOverrun { prod: 1000, cons: 0, unconsumed: 1000, most: 4 },
    };
    assert_eq!(nf.receive(&mut out), Err(stopped));
    assert_eq!(nf.receive(&mut out), Err(stopped));
    assert_eq!(nf.send(&frame(60, 0)), Err(TxError::Stopped(stopped)));
    assert!(!nf.final_check());
    let (mut nf, mut be) = rig(4, 2);
    nf.send(&frame(60, 0)).unwrap();
    nf.push();
    be.tx_ring.write_u32(8, 2);
    assert!(matches!(nf.collect_tx(), Err(NetError::Ring { ring: netfront::nic::Ring::Tx, .. })));
}

/// xorshift64*: deterministic garbage.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn a_backend_answering_garbage_never_panics_and_never_costs_a_buffer() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        let (mut nf, mut be) = rig(1 + (rng.next() % 16) as usize, 1 + (rng.next() % 8) as usize);
        let nrx = {
            nf.push();
            be.rx_outstanding()
        };
        for _ in 0..50 {
            match rng.next() % 4 {
                0 if be.rx_outstanding() > 0 => {
                    let garbage = rng.next().to_le_bytes();
                    be.answer_rx(|_| garbage);
                }
                1 => {
                    let _ = nf.send(&frame(14 + (rng.next() % 1500) as usize, 0));
                    nf.push();
                }
                2 => {
                    let reqs = be.take_tx();
                    for _ in 0..reqs.len() {
                        let g = rng.next();
                        let id = if g % 3 == 0 {
                            g as u16
                        } else {
                            reqs[(g % reqs.len() as u64) as usize].id
                        };
                        be.put_tx(TxResponse { id, status: (g >> 16) as i16 % 3 });
                    }
                }
                _ => {}
            }
            let mut out = vec![0; MAX_FRAME];
            while let Ok(Some(n)) = nf.receive(&mut out) {
                assert!(n > 0 && n <= MAX_FRAME);
            }
            let _ = nf.collect_tx();
            nf.push();
            let _ = nf.final_check();
        }
        assert_eq!(be.rx_outstanding(), nrx, "every rx buffer is still posted");
        be.complete_all_tx();
        let _ = nf.collect_tx();
        let s: NetStats = nf.stats();
        assert!(s.rx_packets <= s.rx_packets + s.bad_answers);
    }
}
