//! Decoding byte sequences laid out exactly as xenstored sends them.
//!
//! Each array is a whole message as it crosses the ring or the socket:
//! `struct xsd_sockmsg` (little-endian `type`, `req_id`, `tx_id`, `len`) then
//! the payload, with the NULs the C xenstored puts there (`send_reply`,
//! `send_ack` = "OK\0", `send_error` = "<name>\0", `send_event` =
//! "<path>\0<token>\0"; READ values carry none). The same bytes are the fuzz
//! corpus in `fuzz/corpus/xenstore_decode/`.

mod common;

use xenbus::wire::{Error, Header};
use xenbus::{Access, Framer, Message, MsgType, Perm, Reply, TxId, WatchEvent, XsError};

/// Reply to `READ /local/domain/0/name` (req_id 42): "Domain-0".
const READ_REPLY: [u8; 24] = [
    0x02, 0x00, 0x00, 0x00, // type = XS_READ
    0x2a, 0x00, 0x00, 0x00, // req_id = 42
    0x00, 0x00, 0x00, 0x00, // tx_id = 0
    0x08, 0x00, 0x00, 0x00, // len = 8
    b'D', b'o', b'm', b'a', b'i', b'n', b'-', b'0',
];

/// Reply to a `READ` of a missing node (req_id 43): ERROR "ENOENT\0".
const ERROR_ENOENT: [u8; 23] = [
    0x10, 0x00, 0x00, 0x00, // type = XS_ERROR
    0x2b, 0x00, 0x00, 0x00, // req_id = 43
    0x00, 0x00, 0x00, 0x00, // tx_id = 0
    0x07, 0x00, 0x00, 0x00, // len = 7
    b'E', b'N', b'O', b'E', b'N', b'T', 0x00,
];

/// A watch firing on a backend state node; req_id and tx_id are 0.
const WATCH_EVENT: [u8; 57] = [
    0x0f, 0x00, 0x00, 0x00, // type = XS_WATCH_EVENT
    0x00, 0x00, 0x00, 0x00, // req_id = 0
    0x00, 0x00, 0x00, 0x00, // tx_id = 0
    0x29, 0x00, 0x00, 0x00, // len = 41
    b'/', b'l', b'o', b'c', b'a', b'l', b'/', b'd', b'o', b'm', b'a', b'i', b'n', b'/', b'0', b'/',
    b'b', b'a', b'c', b'k', b'e', b'n', b'd', b'/', b'v', b'g', b'p', b'u', b'/', b'5',
    0x00, // end of <epath>
    b'v', b'g', b'p', b'u', b'-', b'b', b'e', b'/', b'5', 0x00, // <token>
];

/// Reply to `DIRECTORY /local/domain` (req_id 7, inside transaction 3).
const DIRECTORY_REPLY: [u8; 23] = [
    0x01, 0x00, 0x00, 0x00, // type = XS_DIRECTORY
    0x07, 0x00, 0x00, 0x00, // req_id = 7
    0x03, 0x00, 0x00, 0x00, // tx_id = 3
    0x07, 0x00, 0x00, 0x00, // len = 7
    b'0', 0x00, b'5', 0x00, b'1', b'2', 0x00,
];

/// Reply to `GET_PERMS` (req_id 8): owner dom0 with default none, dom5 read.
const GET_PERMS_REPLY: [u8; 22] = [
    0x03, 0x00, 0x00, 0x00, // type = XS_GET_PERMS
    0x08, 0x00, 0x00, 0x00, // req_id = 8
    0x00, 0x00, 0x00, 0x00, // tx_id = 0
    0x06, 0x00, 0x00, 0x00, // len = 6
    b'n', b'0', 0x00, b'r', b'5', 0x00,
];

/// Reply to `TRANSACTION_START` (req_id 9): transaction 17.
const TRANSACTION_START_REPLY: [u8; 19] = [
    0x06, 0x00, 0x00, 0x00, // type = XS_TRANSACTION_START
    0x09, 0x00, 0x00, 0x00, // req_id = 9
    0x00, 0x00, 0x00, 0x00, // tx_id = 0
    0x03, 0x00, 0x00, 0x00, // len = 3
    b'1', b'7', 0x00,
];

/// Reply to a `WRITE` inside transaction 17 (req_id 10): "OK\0".
const WRITE_ACK: [u8; 19] = [
    0x0b, 0x00, 0x00, 0x00, // type = XS_WRITE
    0x0a, 0x00, 0x00, 0x00, // req_id = 10
    0x11, 0x00, 0x00, 0x00, // tx_id = 17
    0x03, 0x00, 0x00, 0x00, // len = 3
    b'O', b'K', 0x00,
];

/// Reply to `GET_DOMAIN_PATH 5` (req_id 11).
const DOMAIN_PATH_REPLY: [u8; 32] = [
    0x0a, 0x00, 0x00, 0x00, // type = XS_GET_DOMAIN_PATH
    0x0b, 0x00, 0x00, 0x00, // req_id = 11
    0x00, 0x00, 0x00, 0x00, // tx_id = 0
    0x10, 0x00, 0x00, 0x00, // len = 16
    b'/', b'l', b'o', b'c', b'a', b'l', b'/', b'd', b'o', b'm', b'a', b'i', b'n', b'/', b'5', 0x00,
];

fn decode(bytes: &[u8]) -> (Header, Reply<'_>) {
    let msg = Message::new_checked(bytes).expect("recorded message is well-formed");
    assert_eq!(msg.total_len(), bytes.len(), "no trailing bytes");
    (Header::parse(&msg).expect("known type"), Reply::parse(&msg).expect("payload decodes"))
}

#[test]
fn recorded_read_reply_decodes_to_value_without_nul() {
    let (hdr, reply) = decode(&READ_REPLY);
    assert_eq!(hdr.msg_type, MsgType::Read);
    assert_eq!((hdr.req_id, hdr.tx_id, hdr.payload_len), (42, 0, 8));
    assert_eq!(reply, Reply::Read(b"Domain-0"));
}

#[test]
fn recorded_enoent_error_decodes_to_not_found() {
    let (hdr, reply) = decode(&ERROR_ENOENT);
    assert_eq!((hdr.msg_type, hdr.req_id), (MsgType::Error, 43));
    assert_eq!(reply, Reply::Error(XsError::NotFound));
}

#[test]
fn recorded_watch_event_decodes_to_path_and_token() {
    let (hdr, reply) = decode(&WATCH_EVENT);
    assert_eq!((hdr.msg_type, hdr.req_id, hdr.tx_id), (MsgType::WatchEvent, 0, 0));
    assert_eq!(
        reply,
        Reply::WatchEvent(WatchEvent {
            path: "/local/domain/0/backend/vgpu/5",
            token: "vgpu-be/5",
        })
    );
}

#[test]
fn recorded_directory_reply_lists_children_in_order() {
    let (hdr, reply) = decode(&DIRECTORY_REPLY);
    assert_eq!(hdr.tx_id, 3);
    let Reply::Directory(list) = reply else {
        panic!("not a directory reply: {reply:?}");
    };
    assert_eq!(list.iter().collect::<Vec<_>>(), ["0", "5", "12"]);
}

#[test]
fn recorded_get_perms_reply_has_owner_first() {
    let (_, reply) = decode(&GET_PERMS_REPLY);
    let Reply::Perms(perms) = reply else {
        panic!("not a perms reply: {reply:?}");
    };
    assert_eq!(perms.owner(), Perm::new(0, Access::None));
    assert_eq!(
        perms.iter().collect::<Vec<_>>(),
        [Perm::new(0, Access::None), Perm::new(5, Access::Read)]
    );
    assert_eq!(perms.access_of(5), Access::Read);
    assert_eq!(perms.access_of(6), Access::None);
}

#[test]
fn recorded_transaction_write_and_domain_path_replies_decode() {
    assert_eq!(decode(&TRANSACTION_START_REPLY).1, Reply::TransactionStarted(TxId(17)));
    let (hdr, reply) = decode(&WRITE_ACK);
    assert_eq!(hdr.tx_id, 17);
    assert_eq!(reply, Reply::Ack(MsgType::Write));
    assert_eq!(decode(&DOMAIN_PATH_REPLY).1, Reply::DomainPath("/local/domain/5"));
}

#[test]
fn recorded_stream_fed_one_byte_at_a_time_yields_every_message() {
    let recorded: [&[u8]; 8] = [
        &READ_REPLY,
        &ERROR_ENOENT,
        &WATCH_EVENT,
        &DIRECTORY_REPLY,
        &GET_PERMS_REPLY,
        &TRANSACTION_START_REPLY,
        &WRITE_ACK,
        &DOMAIN_PATH_REPLY,
    ];
    let stream: Vec<u8> = recorded.concat();
    let mut framer = Framer::new();
    let mut seen = Vec::new();
    for byte in stream.chunks(1) {
        let mut input = byte;
        if let Some(m) = framer.feed(&mut input).unwrap() {
            seen.push(m.as_bytes().to_vec());
        }
        assert!(input.is_empty());
    }
    assert_eq!(seen, recorded.map(<[u8]>::to_vec));
}

#[test]
fn truncated_recorded_message_is_rejected_with_lengths() {
    assert_eq!(
        Message::new_checked(&READ_REPLY[..20]).err(),
        Some(Error::Truncated { have: 20, need: 24 })
    );
}

#[test]
fn error_with_unknown_name_keeps_the_name() {
    let bytes = common::msg(MsgType::Error, 1, 0, b"ENOTSUP\0");
    let (_, reply) = decode(&bytes);
    let Reply::Error(err) = reply else {
        panic!("not an error: {reply:?}");
    };
    assert_eq!(err.name(), "ENOTSUP");
    assert!(matches!(err, XsError::Unknown(_)));
}

#[test]
fn unknown_message_type_is_reported_with_its_value() {
    let mut bytes = READ_REPLY;
    bytes[0] = 20; // XS_RESTRICT, removed
    let msg = Message::new_checked(&bytes[..]).unwrap();
    assert_eq!(Reply::parse(&msg), Err(Error::UnknownType { raw: 20 }));
}
