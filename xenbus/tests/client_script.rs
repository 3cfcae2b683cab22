//! The client against a scripted xenstored: a transport that frames what the
//! client sends and answers each request with canned messages, delivered in
//! chunks of a chosen size.

mod common;

use common::{msg, raw_header};
use std::collections::VecDeque;
use xenbus::wire::{Error, MAX_MESSAGE_LEN};
use xenbus::{
    Access, Client, ClientError, Framer, Message, MsgType, Perm, RequestError, Transport, TxId,
    TxOutcome, XenbusState, XsError,
};

/// One request as the fake xenstored saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    ty: MsgType,
    req_id: u32,
    tx_id: u32,
    payload: Vec<u8>,
}

type Handler = Box<dyn FnMut(&Seen) -> Vec<Vec<u8>>>;

struct FakeXenstored {
    framer: Framer,
    seen: Vec<Seen>,
    inbox: VecDeque<u8>,
    handler: Handler,
    /// Largest `recv` / `send` chunk, to exercise partial transfers.
    chunk: usize,
}

impl FakeXenstored {
    fn new(chunk: usize, handler: impl FnMut(&Seen) -> Vec<Vec<u8>> + 'static) -> Self {
        FakeXenstored {
            framer: Framer::new(),
            seen: Vec::new(),
            inbox: VecDeque::new(),
            handler: Box::new(handler),
            chunk,
        }
    }

    /// Bytes that arrive without a request (e.g. a watch event).
    fn push_unsolicited(&mut self, bytes: &[u8]) {
        self.inbox.extend(bytes);
    }
}

impl Transport for FakeXenstored {
    type Error = &'static str;

    fn send(&mut self, data: &[u8]) -> Result<usize, Self::Error> {
        let mut input = &data[..data.len().min(self.chunk)];
        let taken = input.len();
        while let Some(m) = self.framer.feed(&mut input).map_err(|_| "bad request framing")? {
            let seen = Seen {
                ty: m.msg_type().map_err(|_| "unknown request type")?,
                req_id: m.req_id(),
                tx_id: m.tx_id(),
                payload: m.payload().to_vec(),
            };
            for reply in (self.handler)(&seen) {
                self.inbox.extend(reply);
            }
            self.seen.push(seen);
        }
        Ok(taken)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.chunk).min(self.inbox.len());
        for b in &mut buf[..n] {
            *b = self.inbox.pop_front().unwrap_or(0);
        }
        Ok(n)
    }

    fn wait(&mut self) -> Result<(), Self::Error> {
        // Nothing else will ever arrive: fail instead of hanging the test.
        Err("would wait forever")
    }
}

fn client(
    chunk: usize,
    handler: impl FnMut(&Seen) -> Vec<Vec<u8>> + 'static,
) -> Client<FakeXenstored> {
    Client::new(FakeXenstored::new(chunk, handler))
}

/// Answers every request with `payload` of the request's own type.
fn answer(payload: &'static [u8]) -> impl FnMut(&Seen) -> Vec<Vec<u8>> {
    move |s| vec![msg(s.ty, s.req_id, s.tx_id, payload)]
}

#[test]
fn read_returns_the_value_of_the_reply_to_its_req_id() {
    let mut xs = client(usize::MAX, answer(b"Domain-0"));
    assert_eq!(xs.read(TxId::NONE, "/local/domain/0/name").unwrap(), b"Domain-0");
    let seen = &xs.transport().seen[0];
    assert_eq!(seen.ty, MsgType::Read);
    assert_eq!(seen.payload, b"/local/domain/0/name\0");
}

#[test]
fn one_byte_transfers_in_both_directions_still_frame_correctly() {
    let mut xs = client(1, answer(b"x"));
    for _ in 0..3 {
        assert_eq!(xs.read(TxId::NONE, "/a").unwrap(), b"x");
    }
    let ids: Vec<u32> = xs.transport().seen.iter().map(|s| s.req_id).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "fresh req_id per request");
}

#[test]
fn watch_event_arriving_before_the_reply_is_queued_not_taken_as_reply() {
    let mut xs = client(7, |s: &Seen| {
        vec![
            msg(MsgType::WatchEvent, 0, 0, b"/local/domain/5/device/vgpu/0/state\0fe\0"),
            msg(s.ty, s.req_id, s.tx_id, b"4"),
        ]
    });
    assert_eq!(xs.read(TxId::NONE, "/x").unwrap(), b"4");
    let event = xs.pending_event().expect("event was queued");
    assert_eq!(event.path(), "/local/domain/5/device/vgpu/0/state");
    assert_eq!(event.token(), "fe");
    assert!(xs.pending_event().is_none());
}

#[test]
fn watch_then_wait_event_delivers_the_initial_firing() {
    let mut xs = client(usize::MAX, |s: &Seen| {
        let mut out = vec![msg(s.ty, s.req_id, s.tx_id, b"OK\0")];
        if s.ty == MsgType::Watch {
            out.push(msg(MsgType::WatchEvent, 0, 0, b"backend/vgpu\0be\0"));
        }
        out
    });
    xs.watch("backend/vgpu", "be").unwrap();
    assert_eq!(xs.transport().seen[0].payload, b"backend/vgpu\0be\0");
    let event = xs.wait_event().unwrap();
    assert_eq!((event.path(), event.token()), ("backend/vgpu", "be"));
    assert_eq!(xs.poll_event().unwrap(), None, "nothing more available");
    assert_eq!(xs.wait_event().unwrap_err(), ClientError::Transport("would wait forever"));
}

#[test]
fn poll_event_reads_events_that_arrived_unsolicited_and_drops_stray_replies() {
    let mut xs = client(5, answer(b"OK\0"));
    xs.transport_mut().push_unsolicited(&msg(MsgType::Read, 99, 0, b"stale"));
    xs.transport_mut().push_unsolicited(&msg(MsgType::WatchEvent, 0, 0, b"/a\0t\0"));
    let event = xs.poll_event().unwrap().expect("one event");
    assert_eq!(event.path(), "/a");
    assert_eq!(xs.poll_event().unwrap(), None);
}

#[test]
fn stale_reply_with_another_req_id_is_dropped() {
    let mut xs = client(usize::MAX, |s: &Seen| {
        vec![
            msg(s.ty, s.req_id.wrapping_sub(1), s.tx_id, b"stale"),
            msg(s.ty, s.req_id, s.tx_id, b"fresh"),
        ]
    });
    assert_eq!(xs.read(TxId::NONE, "/a").unwrap(), b"fresh");
}

#[test]
fn error_reply_becomes_a_typed_xenstored_error() {
    let mut xs =
        client(usize::MAX, |s: &Seen| vec![msg(MsgType::Error, s.req_id, s.tx_id, b"ENOENT\0")]);
    let err = xs.read(TxId::NONE, "/nope").unwrap_err();
    assert_eq!(err, ClientError::Xenstored(XsError::NotFound));
    assert!(err.is_not_found());
    assert_eq!(err.to_string(), "xenstored: ENOENT (no such node)");
}

#[test]
fn unknown_error_name_reaches_the_caller_verbatim() {
    let mut xs =
        client(usize::MAX, |s: &Seen| vec![msg(MsgType::Error, s.req_id, s.tx_id, b"EQUOTA\0")]);
    match xs.mkdir(TxId::NONE, "/a").unwrap_err() {
        ClientError::Xenstored(e) => assert_eq!(e.name(), "EQUOTA"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn transaction_requests_carry_tx_id_and_eagain_commit_is_retry() {
    let mut xs = client(usize::MAX, |s: &Seen| match s.ty {
        MsgType::TransactionStart => vec![msg(s.ty, s.req_id, 0, b"17\0")],
        MsgType::TransactionEnd if s.payload == b"T\0" => {
            vec![msg(MsgType::Error, s.req_id, s.tx_id, b"EAGAIN\0")]
        }
        _ => vec![msg(s.ty, s.req_id, s.tx_id, b"OK\0")],
    });
    let tx = xs.transaction_start().unwrap();
    assert_eq!(tx, TxId(17));
    xs.write(tx, "/a", b"1").unwrap();
    assert_eq!(xs.transaction_end(tx, true).unwrap(), TxOutcome::Retry);
    let tx = xs.transaction_start().unwrap();
    assert_eq!(xs.transaction_end(tx, false).unwrap(), TxOutcome::Aborted);
    let seen = &xs.transport().seen;
    assert_eq!(
        (seen[0].ty, seen[0].tx_id, &seen[0].payload[..]),
        (MsgType::TransactionStart, 0, &b"\0"[..])
    );
    assert_eq!((seen[1].ty, seen[1].tx_id), (MsgType::Write, 17));
    assert_eq!((seen[2].tx_id, &seen[2].payload[..]), (17, &b"T\0"[..]));
    assert_eq!(&seen[4].payload[..], b"F\0");
}

#[test]
fn committed_transaction_reports_committed() {
    let mut xs = client(usize::MAX, |s: &Seen| match s.ty {
        MsgType::TransactionStart => vec![msg(s.ty, s.req_id, 0, b"3\0")],
        _ => vec![msg(s.ty, s.req_id, s.tx_id, b"OK\0")],
    });
    let tx = xs.transaction_start().unwrap();
    assert_eq!(xs.transaction_end(tx, true).unwrap(), TxOutcome::Committed);
}

#[test]
fn reply_of_another_type_or_transaction_is_unexpected() {
    let mut xs =
        client(usize::MAX, |s: &Seen| vec![msg(MsgType::Directory, s.req_id, s.tx_id, b"")]);
    assert_eq!(
        xs.read(TxId::NONE, "/a").unwrap_err(),
        ClientError::UnexpectedReply {
            sent: MsgType::Read,
            got_type: MsgType::Directory as u32,
            got_tx: 0
        }
    );
    let mut xs = client(usize::MAX, |s: &Seen| vec![msg(s.ty, s.req_id, 99, b"v")]);
    assert!(matches!(
        xs.read(TxId(5), "/a").unwrap_err(),
        ClientError::UnexpectedReply { got_tx: 99, .. }
    ));
}

#[test]
fn oversize_reply_header_is_a_protocol_error_and_nothing_is_allocated() {
    let mut xs = client(usize::MAX, |s: &Seen| {
        vec![raw_header(MsgType::Read as u32, s.req_id, 0, 0x7fff_ffff).to_vec()]
    });
    assert_eq!(
        xs.read(TxId::NONE, "/a").unwrap_err(),
        ClientError::Protocol(Error::PayloadTooLong { len: 0x7fff_ffff })
    );
    // The stream is desynchronised: the client keeps refusing until reset.
    assert!(matches!(
        xs.read(TxId::NONE, "/a").unwrap_err(),
        ClientError::Protocol(Error::PayloadTooLong { .. })
    ));
}

#[test]
fn directory_perms_and_domain_path_replies_are_typed() {
    let mut xs = client(usize::MAX, |s: &Seen| {
        let payload: &[u8] = match s.ty {
            MsgType::Directory => b"0\x005\0",
            MsgType::GetPerms => b"b0\0r5\0",
            MsgType::GetDomainPath => b"/local/domain/5\0",
            _ => b"OK\0",
        };
        vec![msg(s.ty, s.req_id, s.tx_id, payload)]
    });
    let names: Vec<String> =
        xs.directory(TxId::NONE, "/local/domain").unwrap().iter().map(str::to_owned).collect();
    assert_eq!(names, ["0", "5"]);
    let perms = xs.get_perms(TxId::NONE, "/a").unwrap();
    assert_eq!(perms.owner(), Perm::new(0, Access::Both));
    assert_eq!(perms.len(), 2);
    assert_eq!(xs.get_domain_path(5).unwrap(), "/local/domain/5");
    assert_eq!(xs.transport().seen[2].payload, b"5\0");
}

#[test]
fn malformed_perms_reply_is_a_protocol_error() {
    let mut xs = client(usize::MAX, answer(b"b0\0z5\0"));
    assert_eq!(
        xs.get_perms(TxId::NONE, "/a").unwrap_err(),
        ClientError::Protocol(Error::BadAccess { letter: b'z' })
    );
}

#[test]
fn set_perms_sends_owner_first() {
    let mut xs = client(usize::MAX, answer(b"OK\0"));
    let perms = [Perm::new(0, Access::None), Perm::new(5, Access::Read)];
    xs.set_perms(TxId::NONE, "/local/domain/0/backend/vgpu/5", &perms).unwrap();
    assert_eq!(xs.transport().seen[0].payload, b"/local/domain/0/backend/vgpu/5\0n0\0r5\0");
}

#[test]
fn refused_requests_send_nothing() {
    let mut xs = client(usize::MAX, answer(b"OK\0"));
    let big = vec![b'v'; 4096];
    assert_eq!(
        xs.write(TxId::NONE, "/a", &big).unwrap_err(),
        ClientError::Request(RequestError::PayloadTooLong { len: 4099 })
    );
    assert!(matches!(
        xs.rm(TxId::NONE, "/a//b").unwrap_err(),
        ClientError::Request(RequestError::Path(_))
    ));
    assert!(matches!(
        xs.transaction_end(TxId::NONE, true).unwrap_err(),
        ClientError::Request(RequestError::NotInTransaction)
    ));
    assert!(xs.transport().seen.is_empty());
}

#[test]
fn largest_allowed_write_goes_through_in_one_message() {
    let mut xs = client(100, answer(b"OK\0"));
    let value = vec![b'v'; 4096 - 3];
    xs.write(TxId::NONE, "/a", &value).unwrap();
    let seen = &xs.transport().seen[0];
    assert_eq!(seen.payload.len() + 16, MAX_MESSAGE_LEN);
}

#[test]
fn full_event_queue_counts_lost_events_and_keeps_the_reply() {
    let mut xs: Client<FakeXenstored, 2> =
        Client::new(FakeXenstored::new(usize::MAX, |s: &Seen| {
            let mut out: Vec<Vec<u8>> = (0..5)
                .map(|i| msg(MsgType::WatchEvent, 0, 0, format!("/e{i}\0t\0").as_bytes()))
                .collect();
            out.push(msg(s.ty, s.req_id, s.tx_id, b"v"));
            out
        }));
    assert_eq!(xs.read(TxId::NONE, "/a").unwrap(), b"v");
    assert_eq!(xs.take_lost_events(), 3);
    assert_eq!(xs.pending_event().unwrap().path(), "/e0");
    assert_eq!(xs.pending_event().unwrap().path(), "/e1");
    assert!(xs.pending_event().is_none());
}

#[test]
fn malformed_watch_event_is_counted_lost_not_fatal() {
    let mut xs = client(usize::MAX, |s: &Seen| {
        vec![msg(MsgType::WatchEvent, 0, 0, b"/only-a-path\0"), msg(s.ty, s.req_id, s.tx_id, b"v")]
    });
    assert_eq!(xs.read(TxId::NONE, "/a").unwrap(), b"v");
    assert_eq!(xs.take_lost_events(), 1);
}

#[test]
fn xenbus_state_is_written_and_read_as_decimal() {
    let mut xs = client(usize::MAX, |s: &Seen| {
        let payload: &[u8] = if s.ty == MsgType::Read { b"9" } else { b"OK\0" };
        vec![msg(s.ty, s.req_id, s.tx_id, payload)]
    });
    xs.write_state(TxId::NONE, "/be/state", XenbusState::Connected).unwrap();
    assert_eq!(xs.transport().seen[0].payload, b"/be/state\x004");
    assert_eq!(
        xs.read_state(TxId::NONE, "/fe/state").unwrap_err(),
        ClientError::State(xenbus::StateError::OutOfRange { value: 9 })
    );
}

#[test]
fn emitted_requests_are_valid_messages() {
    let mut xs = client(usize::MAX, answer(b"OK\0"));
    xs.unwatch("@releaseDomain", "rel").unwrap();
    let seen = &xs.transport().seen[0];
    assert_eq!(seen.ty, MsgType::Unwatch);
    let bytes = msg(seen.ty, seen.req_id, seen.tx_id, &seen.payload);
    assert!(Message::new_checked(&bytes[..]).is_ok());
    assert_eq!(seen.payload, b"@releaseDomain\0rel\0");
}
