//! The xenstore client: one request at a time, replies matched by `req_id`,
//! watch events queued on the side.
//!
//! ```no_run
//! # fn demo<T: xenbus::Transport>(transport: T) -> Result<(), xenbus::ClientError<T::Error>> {
//! use xenbus::{Client, TxId, TxOutcome};
//! let mut xs: Client<T> = Client::new(transport);
//! let dom = xs.get_domain_path(0)?.len();
//! xs.write(TxId::NONE, "device/vgpu/0/state", b"1")?;
//! xs.watch("backend/vgpu", "be")?;
//! loop {
//!     let tx = xs.transaction_start()?;
//!     xs.write(tx, "data/a", b"1")?;
//!     match xs.transaction_end(tx, true)? {
//!         TxOutcome::Retry => continue, // EAGAIN: someone else wrote; redo it all
//!         _ => break,
//!     }
//! }
//! let event = xs.wait_event()?;
//! # let _ = (dom, event); Ok(()) }
//! ```
//!
//! ## Invariants
//!
//! - At most one request is outstanding. A message whose `req_id` is not the
//!   outstanding one (a late reply to a request abandoned on a transport error)
//!   is dropped; a `WATCH_EVENT` is queued (bounded, see [`crate::events`]).
//! - A reply is accepted only with the request's `req_id`, `tx_id`, and either
//!   the request's type or `ERROR`; anything else is a typed error.
//! - A reply borrowed from the client ([`Client::read`], [`Client::directory`],
//!   ...) lives in the receive buffer until the next call.
//! - No allocation: the client holds a receive framer, a send buffer (each
//!   `16 + XENSTORE_PAYLOAD_MAX` bytes) and `EVENTS` event slots of
//!   `XENSTORE_PAYLOAD_MAX` bytes. Place it in a static or on the heap if the
//!   stack is small.

use crate::events::{EventQueue, OwnedWatchEvent};
use crate::framer::Framer;
use crate::state::StateError;
use crate::transport::Transport;
use crate::wire::{
    self, MsgType, NulList, Perm, PermList, Reply, Request, RequestError, TxId, WatchEvent,
    XsError, MAX_MESSAGE_LEN,
};
use crate::DomId;
use core::fmt;

/// What a call to xenstored can end in, besides success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError<E> {
    /// The transport failed (I/O error, broken ring, closed socket).
    Transport(E),
    /// xenstored answered `ERROR` with this errno name.
    Xenstored(XsError),
    /// The request was refused before sending (bad path, too long, ...).
    Request(RequestError),
    /// xenstored sent bytes that do not decode (bad framing or payload).
    Protocol(wire::Error),
    /// The reply to our `req_id` had another type or `tx_id` than the request.
    UnexpectedReply {
        /// Type of the request.
        sent: MsgType,
        /// `type` of the reply, raw.
        got_type: u32,
        /// `tx_id` of the reply.
        got_tx: u32,
    },
    /// A xenbus `state` node held something other than a state number.
    State(StateError),
}

impl<E> ClientError<E> {
    /// Whether xenstored answered `ERROR` with `err`.
    pub fn is_xs(&self, err: &XsError) -> bool {
        matches!(self, ClientError::Xenstored(e) if e == err)
    }

    /// Whether the node does not exist (`ENOENT`).
    pub fn is_not_found(&self) -> bool {
        self.is_xs(&XsError::NotFound)
    }
}

impl<E: fmt::Debug> fmt::Display for ClientError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Transport(e) => write!(f, "xenstore transport: {e:?}"),
            ClientError::Xenstored(e) => write!(f, "{e}"),
            ClientError::Request(e) => write!(f, "request refused: {e}"),
            ClientError::Protocol(e) => write!(f, "xenstored protocol error: {e}"),
            ClientError::UnexpectedReply { sent, got_type, got_tx } => write!(
                f,
                "reply to {sent} had type {got_type} and tx_id {got_tx}, which do not match"
            ),
            ClientError::State(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(feature = "std")]
impl<E: fmt::Debug> std::error::Error for ClientError<E> {}

impl<E> From<wire::Error> for ClientError<E> {
    fn from(e: wire::Error) -> Self {
        ClientError::Protocol(e)
    }
}

impl<E> From<RequestError> for ClientError<E> {
    fn from(e: RequestError) -> Self {
        ClientError::Request(e)
    }
}

/// How a `TRANSACTION_END` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a transaction that must be retried did not happen"]
pub enum TxOutcome {
    /// Committed: every write of the transaction took effect.
    Committed,
    /// Discarded at the caller's request.
    Aborted,
    /// `EAGAIN`: another write intervened; nothing took effect. Start a new
    /// transaction and redo the reads and writes.
    #[doc(alias = "EAGAIN")]
    Retry,
}

/// A xenstore client over a [`Transport`], with room for `EVENTS` pending watch events
/// (16 by default: a driver domain's own writes fire its watches in bursts;
/// events beyond the queue are counted as lost, see [`Client::take_lost_events`]).
pub struct Client<T: Transport, const EVENTS: usize = 16> {
    transport: T,
    rx: Framer,
    tx: [u8; MAX_MESSAGE_LEN],
    events: EventQueue<EVENTS>,
    next_req_id: u32,
}

type Res<T, X> = Result<X, ClientError<<T as Transport>::Error>>;

impl<T: Transport, const EVENTS: usize> Client<T, EVENTS> {
    /// A client over `transport`, which must be at a message boundary (fresh).
    pub fn new(transport: T) -> Self {
        Client {
            transport,
            rx: Framer::new(),
            tx: [0; MAX_MESSAGE_LEN],
            events: EventQueue::new(),
            next_req_id: 1,
        }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably (e.g. to reconnect a ring; then call [`Client::reset`]).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Forgets any partial message and queued events, after the transport was
    /// reconnected or replaced.
    pub fn reset(&mut self) {
        self.rx.reset();
        while self.events.pop().is_some() {}
    }

    fn send_all(&mut self, len: usize) -> Res<T, ()> {
        let mut off = 0;
        while off < len {
            let n = self.transport.send(&self.tx[off..len]).map_err(ClientError::Transport)?;
            if n == 0 {
                self.transport.wait().map_err(ClientError::Transport)?;
            }
            off += n.min(len - off);
        }
        Ok(())
    }

    /// Reads until a whole message is in `rx`. Without `block`, returns `false`
    /// as soon as the transport has nothing (a partial message is kept).
    fn fill(&mut self, block: bool) -> Res<T, bool> {
        loop {
            let buf = self.rx.recv_buf()?;
            let n = self.transport.recv(buf).map_err(ClientError::Transport)?;
            if n == 0 {
                if !block {
                    return Ok(false);
                }
                self.transport.wait().map_err(ClientError::Transport)?;
                continue;
            }
            if self.rx.commit(n)? {
                return Ok(true);
            }
        }
    }

    /// Queues the message in `rx` if it is a watch event; returns whether it was.
    fn take_event(&mut self) -> bool {
        let Some(msg) = self.rx.message() else {
            return false;
        };
        if msg.msg_type_raw() != MsgType::WatchEvent as u32 {
            return false;
        }
        match WatchEvent::parse(msg.payload()) {
            Ok(event) => self.events.push(event),
            Err(e) => {
                log::warn!("xenbus: dropping malformed watch event: {e}");
                self.events.count_lost();
            }
        }
        true
    }

    fn drop_unsolicited(&mut self, expected: Option<u32>) {
        if let Some(msg) = self.rx.message() {
            log::debug!(
                "xenbus: dropping message type {} req_id {} (waiting for {:?})",
                msg.msg_type_raw(),
                msg.req_id(),
                expected
            );
        }
    }

    /// Sends `req` in transaction `tx` and returns xenstored's reply.
    ///
    /// `ERROR` replies become [`ClientError::Xenstored`]; watch events that
    /// arrive meanwhile are queued.
    pub fn request(&mut self, tx: TxId, req: &Request<'_>) -> Res<T, Reply<'_>> {
        let req_id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1);
        let len = req.emit(req_id, tx.0, &mut self.tx)?;
        self.send_all(len)?;
        loop {
            self.fill(true)?;
            if self.take_event() {
                continue;
            }
            if self.rx.message().is_some_and(|m| m.req_id() == req_id) {
                break;
            }
            self.drop_unsolicited(Some(req_id));
        }
        let sent = req.msg_type();
        let msg =
            self.rx.message().ok_or(wire::Error::Truncated { have: 0, need: wire::HEADER_LEN })?;
        let got_type = msg.msg_type_raw();
        let mismatch = ClientError::UnexpectedReply { sent, got_type, got_tx: msg.tx_id() };
        if msg.tx_id() != tx.0 {
            return Err(mismatch);
        }
        let ty = msg.msg_type()?;
        if ty != sent && ty != MsgType::Error {
            return Err(mismatch);
        }
        match Reply::parse(&msg)? {
            Reply::Error(e) => Err(ClientError::Xenstored(e)),
            reply => Ok(reply),
        }
    }

    fn ack(&mut self, tx: TxId, req: &Request<'_>) -> Res<T, ()> {
        match self.request(tx, req)? {
            Reply::Ack(_) => Ok(()),
            _ => Err(unexpected(req.msg_type())),
        }
    }

    /// `XS_READ`: the value of `path` (binary; no NUL is added).
    #[doc(alias = "XS_READ")]
    pub fn read(&mut self, tx: TxId, path: &str) -> Res<T, &[u8]> {
        match self.request(tx, &Request::Read { path })? {
            Reply::Read(value) => Ok(value),
            _ => Err(unexpected(MsgType::Read)),
        }
    }

    /// `XS_READ` of a text value.
    pub fn read_str(&mut self, tx: TxId, path: &str) -> Res<T, &str> {
        let value = self.read(tx, path)?;
        core::str::from_utf8(value)
            .map_err(|_| ClientError::Protocol(wire::Error::NotText { ty: MsgType::Read }))
    }

    /// `XS_WRITE`: store `value` at `path`, creating missing parents.
    #[doc(alias = "XS_WRITE")]
    pub fn write(&mut self, tx: TxId, path: &str, value: &[u8]) -> Res<T, ()> {
        self.ack(tx, &Request::Write { path, value })
    }

    /// `XS_MKDIR`: make `path` (and its parents) exist.
    #[doc(alias = "XS_MKDIR")]
    pub fn mkdir(&mut self, tx: TxId, path: &str) -> Res<T, ()> {
        self.ack(tx, &Request::Mkdir { path })
    }

    /// `XS_RM`: remove `path` and its children (not an error if absent, but
    /// `ENOENT` if its parent is absent too).
    #[doc(alias = "XS_RM")]
    pub fn rm(&mut self, tx: TxId, path: &str) -> Res<T, ()> {
        self.ack(tx, &Request::Rm { path })
    }

    /// `XS_DIRECTORY`: the leaf names of `path`'s children.
    #[doc(alias = "XS_DIRECTORY")]
    pub fn directory(&mut self, tx: TxId, path: &str) -> Res<T, NulList<'_>> {
        match self.request(tx, &Request::Directory { path })? {
            Reply::Directory(list) => Ok(list),
            _ => Err(unexpected(MsgType::Directory)),
        }
    }

    /// `XS_GET_PERMS`: `path`'s permissions, owner first.
    #[doc(alias = "XS_GET_PERMS")]
    pub fn get_perms(&mut self, tx: TxId, path: &str) -> Res<T, PermList<'_>> {
        match self.request(tx, &Request::GetPerms { path })? {
            Reply::Perms(list) => Ok(list),
            _ => Err(unexpected(MsgType::GetPerms)),
        }
    }

    /// `XS_SET_PERMS`: replace `path`'s permissions; `perms[0]` is the owner and
    /// the default for unlisted domains.
    #[doc(alias = "XS_SET_PERMS")]
    pub fn set_perms(&mut self, tx: TxId, path: &str, perms: &[Perm]) -> Res<T, ()> {
        self.ack(tx, &Request::SetPerms { path, perms })
    }

    /// `XS_WATCH`: watch `path` and everything below it. xenstored fires the
    /// watch once right away; events arrive through [`Client::wait_event`].
    #[doc(alias = "XS_WATCH")]
    pub fn watch(&mut self, path: &str, token: &str) -> Res<T, ()> {
        self.ack(TxId::NONE, &Request::Watch { path, token })
    }

    /// `XS_UNWATCH`: remove the watch set with the same `path` and `token`.
    /// Events of it already queued stay queued ([`Client::forget_events`]).
    #[doc(alias = "XS_UNWATCH")]
    pub fn unwatch(&mut self, path: &str, token: &str) -> Res<T, ()> {
        self.ack(TxId::NONE, &Request::Unwatch { path, token })
    }

    /// `XS_TRANSACTION_START`: a new transaction, to pass to the other calls.
    #[doc(alias = "XS_TRANSACTION_START")]
    pub fn transaction_start(&mut self) -> Res<T, TxId> {
        match self.request(TxId::NONE, &Request::TransactionStart)? {
            Reply::TransactionStarted(tx) => Ok(tx),
            _ => Err(unexpected(MsgType::TransactionStart)),
        }
    }

    /// `XS_TRANSACTION_END`: commit or abort `tx`. A commit that conflicted
    /// (`EAGAIN`) is [`TxOutcome::Retry`]; the caller decides whether to redo.
    #[doc(alias = "XS_TRANSACTION_END")]
    pub fn transaction_end(&mut self, tx: TxId, commit: bool) -> Res<T, TxOutcome> {
        match self.ack(tx, &Request::TransactionEnd { commit }) {
            Ok(()) if commit => Ok(TxOutcome::Committed),
            Ok(()) => Ok(TxOutcome::Aborted),
            Err(ClientError::Xenstored(XsError::Again)) if commit => Ok(TxOutcome::Retry),
            Err(e) => Err(e),
        }
    }

    /// `XS_GET_DOMAIN_PATH`: `/local/domain/<domid>`.
    #[doc(alias = "XS_GET_DOMAIN_PATH")]
    pub fn get_domain_path(&mut self, domid: DomId) -> Res<T, &str> {
        match self.request(TxId::NONE, &Request::GetDomainPath { domid })? {
            Reply::DomainPath(path) => Ok(path),
            _ => Err(unexpected(MsgType::GetDomainPath)),
        }
    }

    /// The oldest queued watch event, without touching the transport.
    pub fn pending_event(&mut self) -> Option<OwnedWatchEvent> {
        self.events.pop()
    }

    /// The oldest watch event: queued, or read from what the transport has now.
    /// Returns `None` when nothing is available without waiting (a blocking
    /// transport blocks in `recv`).
    pub fn poll_event(&mut self) -> Res<T, Option<OwnedWatchEvent>> {
        loop {
            if let Some(event) = self.events.pop() {
                return Ok(Some(event));
            }
            if !self.fill(false)? {
                return Ok(None);
            }
            if !self.take_event() {
                self.drop_unsolicited(None);
            }
        }
    }

    /// The oldest watch event, waiting for one if none is queued.
    pub fn wait_event(&mut self) -> Res<T, OwnedWatchEvent> {
        loop {
            if let Some(event) = self.events.pop() {
                return Ok(event);
            }
            self.fill(true)?;
            if !self.take_event() {
                self.drop_unsolicited(None);
            }
        }
    }

    /// Events dropped since the last call (queue full, or malformed). Non-zero
    /// means: rescan the watched nodes.
    pub fn take_lost_events(&mut self) -> u32 {
        self.events.take_lost()
    }

    /// Drops queued events of the watch with `token` (e.g. after `unwatch`).
    pub fn forget_events(&mut self, token: &str) {
        self.events.forget_token(token);
    }
}

fn unexpected<E>(sent: MsgType) -> ClientError<E> {
    // `request` checked the type, and `Reply::parse` maps each type to one
    // variant; this is reached only if those two disagree.
    ClientError::UnexpectedReply { sent, got_type: sent as u32, got_tx: 0 }
}
