//! Properties of the framer and decoders under arbitrary input.

mod common;

use common::msg;
use proptest::prelude::*;
use xenbus::ring::layout::XENSTORE_RING_SIZE;
use xenbus::wire::{Error, MAX_MESSAGE_LEN};
use xenbus::{
    Framer, MemPage, Message, MsgType, Reply, Request, RingTransport, Transport,
    XENSTORE_PAYLOAD_MAX,
};

fn any_type() -> impl Strategy<Value = MsgType> {
    proptest::sample::select(MsgType::ALL.to_vec())
}

fn any_message() -> impl Strategy<Value = Vec<u8>> {
    let small = proptest::collection::vec(any::<u8>(), 0..64);
    let large = proptest::collection::vec(any::<u8>(), 0..=XENSTORE_PAYLOAD_MAX);
    (any_type(), any::<u32>(), any::<u32>(), prop_oneof![4 => small, 1 => large])
        .prop_map(|(ty, req, tx, payload)| msg(ty, req, tx, &payload))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the chunking, the framer yields exactly the messages sent, in order.
    #[test]
    fn framer_reassembles_messages_under_arbitrary_chunking(
        messages in proptest::collection::vec(any_message(), 1..8),
        cuts in proptest::collection::vec(1usize..700, 1..64),
    ) {
        let stream: Vec<u8> = messages.concat();
        let mut framer = Framer::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        while at < stream.len() {
            let end = (at + cut.next().copied().unwrap_or(1)).min(stream.len());
            let mut input = &stream[at..end];
            while let Some(m) = framer.feed(&mut input).unwrap() {
                out.push(m.as_bytes().to_vec());
            }
            prop_assert!(input.is_empty());
            at = end;
        }
        prop_assert!(!framer.is_mid_message());
        prop_assert_eq!(out, messages);
    }

    /// The zero-copy path (`recv_buf`/`commit`) with short reads agrees.
    #[test]
    fn recv_buf_path_reassembles_messages_with_short_reads(
        messages in proptest::collection::vec(any_message(), 1..6),
        reads in proptest::collection::vec(1usize..300, 1..32),
    ) {
        let stream: Vec<u8> = messages.concat();
        let mut framer = Framer::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut read = reads.iter().cycle();
        while at < stream.len() {
            let buf = framer.recv_buf().unwrap();
            prop_assert!(!buf.is_empty());
            let n = buf.len().min(*read.next().unwrap_or(&1)).min(stream.len() - at);
            buf[..n].copy_from_slice(&stream[at..at + n]);
            at += n;
            if framer.commit(n).unwrap() {
                out.push(framer.message().unwrap().as_bytes().to_vec());
            }
        }
        prop_assert_eq!(out, messages);
    }

    /// Arbitrary bytes never panic the framer or the decoder, every yielded
    /// message respects XENSTORE_PAYLOAD_MAX, and a bad length stops the stream.
    #[test]
    fn arbitrary_bytes_never_panic_framer_or_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..9000),
    ) {
        let mut framer = Framer::new();
        let mut input = &bytes[..];
        loop {
            match framer.feed(&mut input) {
                Ok(Some(m)) => {
                    prop_assert!(m.payload_len() <= XENSTORE_PAYLOAD_MAX);
                    prop_assert!(m.total_len() <= MAX_MESSAGE_LEN);
                    let _ = Reply::parse(&m);
                }
                Ok(None) => break,
                Err(Error::PayloadTooLong { len }) => {
                    prop_assert!(len as usize > XENSTORE_PAYLOAD_MAX);
                    prop_assert!(framer.is_poisoned());
                    break;
                }
                Err(e) => prop_assert!(false, "unexpected framing error {e:?}"),
            }
        }
    }

    /// Every payload of every type decodes to a value or a typed error.
    #[test]
    fn reply_decoding_is_total(ty in any_type(), payload in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(reply) = Reply::parse_payload(ty, &payload) {
            match reply {
                Reply::Directory(list) => prop_assert_eq!(list.iter().count(), list.len()),
                Reply::Perms(perms) => {
                    prop_assert!(!perms.is_empty());
                    prop_assert_eq!(perms.iter().count(), perms.len());
                }
                _ => {}
            }
        }
    }

    /// Valid requests emit messages that re-parse with the same header, and a
    /// payload within XENSTORE_PAYLOAD_MAX.
    #[test]
    fn emitted_requests_reparse(
        path in "/[a-z0-9_@-]{1,40}(/[a-z0-9_@-]{1,40}){0,5}",
        value in proptest::collection::vec(any::<u8>(), 0..200),
        token in "[ -~]{0,20}",
        req_id in any::<u32>(),
        tx in 1u32..,
    ) {
        let requests = [
            Request::Read { path: &path },
            Request::Write { path: &path, value: &value },
            Request::Watch { path: &path, token: &token },
            Request::TransactionEnd { commit: true },
        ];
        for req in requests {
            let mut buf = [0u8; MAX_MESSAGE_LEN];
            let n = req.emit(req_id, tx, &mut buf).unwrap();
            let m = Message::new_checked(&buf[..n]).unwrap();
            prop_assert_eq!(m.msg_type(), Ok(req.msg_type()));
            prop_assert_eq!((m.req_id(), m.tx_id()), (req_id, tx));
            prop_assert_eq!(m.total_len(), n);
        }
    }

    /// Bytes sent through the ring arrive unchanged and in order, wherever the
    /// indexes start and however the other side consumes them.
    #[test]
    fn ring_delivers_a_stream_intact_from_any_start_index(
        start in any::<u32>(),
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        drains in proptest::collection::vec(1usize..=XENSTORE_RING_SIZE, 1..16),
    ) {
        let mut ring = RingTransport::new(MemPage::with_indexes(start, start));
        let mut sent = 0;
        let mut received = Vec::new();
        let mut drain = drains.iter().cycle();
        while received.len() < data.len() {
            sent += ring.send(&data[sent..]).unwrap();
            let mut buf = vec![0u8; *drain.next().unwrap_or(&1)];
            let n = ring.page_mut().server_read(&mut buf);
            received.extend_from_slice(&buf[..n]);
        }
        prop_assert_eq!(received, data);
    }
}
