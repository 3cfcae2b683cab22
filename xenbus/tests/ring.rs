//! The shared-ring transport against the in-memory page: index arithmetic,
//! wrap-around, hostile indexes, the error and connection fields, and a whole
//! client talking to a fake xenstored through the ring.

mod common;

use common::msg;
use xenbus::ring::layout::*;
use xenbus::ring::RingSide;
use xenbus::{
    Client, Framer, MemPage, MsgType, RingError, RingTransport, StorePage, Transport, TxId,
};

#[test]
fn send_publishes_bytes_then_req_prod_and_notifies() {
    let mut ring = RingTransport::new(MemPage::new());
    assert_eq!(ring.send(b"hello").unwrap(), 5);
    let page = ring.page_mut();
    assert_eq!(page.get_u32(REQ_PROD), 5);
    assert_eq!(page.notifications(), 1);
    let mut buf = [0u8; 8];
    assert_eq!(page.server_read(&mut buf), 5);
    assert_eq!(&buf[..5], b"hello");
}

#[test]
fn send_wraps_around_the_end_of_the_request_ring() {
    // Indexes start 3 bytes before the end of the ring, and 3 before u32 overflow.
    let start = u32::MAX - 2;
    let mut ring = RingTransport::new(MemPage::with_indexes(start, 0));
    assert_eq!(mask(start), XENSTORE_RING_SIZE - 3);
    assert_eq!(ring.send(b"abcdefgh").unwrap(), 8);
    let page = ring.page_mut();
    assert_eq!(page.get_u32(REQ_PROD), 5, "u32 index wrapped");
    let mut buf = [0u8; 8];
    assert_eq!(page.server_read(&mut buf), 8);
    assert_eq!(&buf, b"abcdefgh");
}

#[test]
fn recv_wraps_around_the_end_of_the_response_ring() {
    let start = u32::MAX - 1;
    let mut ring = RingTransport::new(MemPage::with_indexes(0, start));
    assert_eq!(ring.page_mut().server_write(b"0123456789"), 10);
    let mut buf = [0u8; 4];
    assert_eq!(ring.recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"0123");
    let mut rest = [0u8; 16];
    assert_eq!(ring.recv(&mut rest).unwrap(), 6);
    assert_eq!(&rest[..6], b"456789");
    assert_eq!(ring.page().get_u32(RSP_CONS), 8);
    assert_eq!(ring.recv(&mut rest).unwrap(), 0, "empty ring reads nothing");
}

#[test]
fn send_takes_only_the_free_space_and_resumes_after_consumption() {
    let mut ring = RingTransport::new(MemPage::with_indexes(100, 0));
    let data = [7u8; 1500];
    assert_eq!(ring.send(&data).unwrap(), XENSTORE_RING_SIZE);
    assert_eq!(ring.send(&data[1024..]).unwrap(), 0, "full ring takes nothing");
    let mut sink = [0u8; 300];
    assert_eq!(ring.page_mut().server_read(&mut sink), 300);
    assert_eq!(ring.send(&data[1024..]).unwrap(), 300);
}

#[test]
fn response_producer_more_than_a_ring_ahead_is_an_error_not_a_panic() {
    let mut ring = RingTransport::new(MemPage::with_indexes(0, 10));
    ring.page_mut().set_u32(RSP_PROD, 10 + 1025);
    let mut buf = [0u8; 64];
    let expected = RingError::BadIndex { ring: RingSide::Response, cons: 10, prod: 1035 };
    assert_eq!(ring.recv(&mut buf), Err(expected));
    // Sticky: even after the index looks sane again, the ring is left alone.
    ring.page_mut().set_u32(RSP_PROD, 12);
    assert_eq!(ring.recv(&mut buf), Err(expected));
    assert_eq!(ring.send(b"x"), Err(expected));
    assert_eq!(ring.broken(), Some(expected));
}

#[test]
fn response_producer_behind_the_consumer_is_an_error() {
    let mut ring = RingTransport::new(MemPage::with_indexes(0, 500));
    ring.page_mut().set_u32(RSP_PROD, 499);
    let mut buf = [0u8; 8];
    assert!(matches!(
        ring.recv(&mut buf),
        Err(RingError::BadIndex { ring: RingSide::Response, cons: 500, prod: 499 })
    ));
}

#[test]
fn request_consumer_beyond_our_producer_is_an_error() {
    let mut ring = RingTransport::new(MemPage::with_indexes(50, 0));
    ring.page_mut().set_u32(REQ_CONS, 51);
    assert_eq!(
        ring.send(b"x"),
        Err(RingError::BadIndex { ring: RingSide::Request, cons: 51, prod: 50 })
    );
}

#[test]
fn a_full_ring_exactly_is_accepted() {
    let mut ring = RingTransport::new(MemPage::with_indexes(0, 0));
    assert_eq!(ring.page_mut().server_write(&[1u8; 2000]), XENSTORE_RING_SIZE);
    let mut buf = [0u8; 2000];
    assert_eq!(ring.recv(&mut buf).unwrap(), XENSTORE_RING_SIZE);
}

#[test]
fn server_error_field_stops_the_ring_when_the_feature_is_advertised() {
    let mut page = MemPage::new();
    page.set_u32(ERROR, ERROR_RINGIDX);
    let mut ring = RingTransport::new(page.clone());
    assert_eq!(ring.send(b"x").unwrap(), 1, "error field ignored without the feature");
    page.set_u32(SERVER_FEATURES, FEATURE_ERROR);
    let mut ring = RingTransport::new(page);
    assert_eq!(ring.send(b"x"), Err(RingError::Server { code: ERROR_RINGIDX }));
    assert!(ring.send(b"x").unwrap_err().to_string().contains("invalid ring index"));
}

#[test]
fn reconnect_in_progress_blocks_io_until_connected() {
    let mut page = MemPage::with_indexes(7, 9);
    page.set_u32(SERVER_FEATURES, FEATURE_RECONNECTION);
    page.set_u32(CONNECTION, RECONNECT);
    let mut ring = RingTransport::new(page);
    assert_eq!(ring.send(b"x"), Err(RingError::Reconnecting));
    ring.page_mut().set_u32(CONNECTION, CONNECTED);
    ring.wait_connected().unwrap();
    assert_eq!(ring.send(b"x").unwrap(), 1);
}

#[test]
fn reconnect_needs_the_server_feature() {
    let mut ring = RingTransport::new(MemPage::new());
    assert_eq!(ring.reconnect(), Err(RingError::ReconnectUnsupported));
}

/// A page whose event channel "wait" lets a fake xenstored run: it resets the
/// ring on reconnect requests, reads requests, and answers them.
struct ServedPage {
    page: MemPage,
    framer: Framer,
    outbox: Vec<u8>,
    waits: u32,
}

impl ServedPage {
    fn new(page: MemPage) -> Self {
        ServedPage { page, framer: Framer::new(), outbox: Vec::new(), waits: 0 }
    }

    fn serve(&mut self) {
        if self.page.get_u32(CONNECTION) == RECONNECT {
            for (cons, prod) in [(REQ_CONS, REQ_PROD), (RSP_CONS, RSP_PROD)] {
                let at = self.page.get_u32(prod);
                self.page.set_u32(cons, at);
            }
            self.page.set_u32(CONNECTION, CONNECTED);
            return;
        }
        let mut chunk = [0u8; 64];
        loop {
            let n = self.page.server_read(&mut chunk);
            if n == 0 {
                break;
            }
            let mut input = &chunk[..n];
            while let Some(m) = self.framer.feed(&mut input).unwrap() {
                let reply: &[u8] = match m.msg_type().unwrap() {
                    MsgType::Read => b"Domain-0",
                    MsgType::TransactionStart => b"5\0",
                    _ => b"OK\0",
                };
                let (ty, id, tx) = (m.msg_type().unwrap(), m.req_id(), m.tx_id());
                self.outbox.extend(msg(MsgType::WatchEvent, 0, 0, b"/w\0tok\0"));
                self.outbox.extend(msg(ty, id, tx, reply));
            }
        }
        let n = self.page.server_write(&self.outbox);
        self.outbox.drain(..n);
    }
}

impl StorePage for ServedPage {
    fn read_u32(&self, offset: usize) -> u32 {
        self.page.read_u32(offset)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.page.write_u32(offset, value)
    }
    fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        self.page.read_bytes(offset, buf)
    }
    fn write_bytes(&mut self, offset: usize, data: &[u8]) {
        self.page.write_bytes(offset, data)
    }
    fn fence(&self) {
        self.page.fence()
    }
    fn notify(&mut self) {
        self.page.notify()
    }
    fn wait(&mut self) -> Result<(), RingError> {
        self.waits += 1;
        if self.waits > 10_000 {
            return Err(RingError::TimedOut);
        }
        self.serve();
        Ok(())
    }
}

#[test]
fn client_over_the_ring_talks_to_a_fake_xenstored_across_many_wraps() {
    let ring =
        RingTransport::new(ServedPage::new(MemPage::with_indexes(u32::MAX - 100, u32::MAX - 50)));
    // A queue of 4 events, so that losing events is exercised.
    let mut xs: Client<_, 4> = Client::new(ring);
    // A message four times the ring size must go through in pieces.
    let big = vec![b'x'; 4000];
    xs.write(TxId::NONE, "/big", &big).unwrap();
    for _ in 0..100 {
        assert_eq!(xs.read(TxId::NONE, "/local/domain/0/name").unwrap(), b"Domain-0");
    }
    let tx = xs.transaction_start().unwrap();
    assert_eq!(tx, TxId(5));
    assert!(xs.transaction_end(tx, true).is_ok());
    // One event before each of the 103 replies: 4 fit the queue, 99 are counted lost.
    assert_eq!(xs.take_lost_events(), 99);
    assert_eq!(xs.pending_event().unwrap().token(), "tok");
    let page = &xs.transport().page().page;
    assert!(page.notifications() > 100);
}

#[test]
fn ring_reconnect_resets_indexes_and_the_client_carries_on() {
    let mut page = MemPage::with_indexes(3, 4);
    page.set_u32(SERVER_FEATURES, FEATURE_RECONNECTION);
    let mut xs: Client<_> = Client::new(RingTransport::new(ServedPage::new(page)));
    assert_eq!(xs.read(TxId::NONE, "/a").unwrap(), b"Domain-0");
    xs.transport_mut().reconnect().unwrap();
    xs.reset();
    assert_eq!(xs.read(TxId::NONE, "/a").unwrap(), b"Domain-0");
}

#[test]
fn a_server_that_never_answers_times_out_through_wait() {
    struct Silent(MemPage);
    impl StorePage for Silent {
        fn read_u32(&self, o: usize) -> u32 {
            self.0.read_u32(o)
        }
        fn write_u32(&mut self, o: usize, v: u32) {
            self.0.write_u32(o, v)
        }
        fn read_bytes(&self, o: usize, b: &mut [u8]) {
            self.0.read_bytes(o, b)
        }
        fn write_bytes(&mut self, o: usize, d: &[u8]) {
            self.0.write_bytes(o, d)
        }
        fn fence(&self) {}
        fn notify(&mut self) {}
        fn wait(&mut self) -> Result<(), RingError> {
            Err(RingError::TimedOut)
        }
    }
    let mut xs: Client<_> = Client::new(RingTransport::new(Silent(MemPage::new())));
    assert_eq!(
        xs.read(TxId::NONE, "/a").unwrap_err(),
        xenbus::ClientError::Transport(RingError::TimedOut)
    );
}
