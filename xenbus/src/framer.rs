//! Incremental framing: cut a byte stream into whole xenstore messages.
//!
//! Both transports are byte streams: the ring gives whatever bytes the other
//! end has produced, the socket whatever `read` returns. A [`Framer`] keeps one
//! message in a fixed buffer of `16 + XENSTORE_PAYLOAD_MAX` bytes.
//!
//! Two ways to feed it:
//! - [`Framer::feed`] takes bytes from a slice you already have (any chunking),
//!   consuming only up to the end of the current message;
//! - [`Framer::recv_buf`] + [`Framer::commit`] let a transport write straight
//!   into the buffer (no copy); `recv_buf` never extends past the end of the
//!   current message, so nothing of the next one is read early.
//!
//! ## Invariants
//!
//! - `have <= HEADER_LEN` until the header is complete; after that the header's
//!   `len` has been checked against `XENSTORE_PAYLOAD_MAX`, so `have` never
//!   exceeds `MAX_MESSAGE_LEN` and no index can go out of bounds.
//! - A header whose `len` is too large poisons the framer: the stream cannot be
//!   resynchronised, so every later call returns the same error until
//!   [`Framer::reset`] (a fresh connection). Nothing is allocated for it.
//! - A complete message stays readable ([`Framer::message`]) until the next
//!   `feed` or `recv_buf`, which drops it and starts the next one.

use crate::wire::{Error, Message, HEADER_LEN, MAX_MESSAGE_LEN};
use crate::XENSTORE_PAYLOAD_MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Accumulating the header or the payload.
    Filling,
    /// A whole message is in `buf[..have]`.
    Complete,
    /// A header declared this oversize `len`.
    Poisoned(u32),
}

/// Accumulates stream bytes and yields whole messages.
#[derive(Clone)]
pub struct Framer {
    buf: [u8; MAX_MESSAGE_LEN],
    have: usize,
    state: State,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new()
    }
}

impl core::fmt::Debug for Framer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Framer").field("have", &self.have).field("state", &self.state).finish()
    }
}

impl Framer {
    /// An empty framer.
    pub const fn new() -> Framer {
        Framer { buf: [0; MAX_MESSAGE_LEN], have: 0, state: State::Filling }
    }

    /// Bytes the current message needs in total, as far as known now.
    fn target(&self) -> usize {
        if self.have < HEADER_LEN {
            HEADER_LEN
        } else {
            HEADER_LEN + Message::new_unchecked(&self.buf[..HEADER_LEN]).payload_len()
        }
    }

    fn check_poisoned(&self) -> Result<(), Error> {
        match self.state {
            State::Poisoned(len) => Err(Error::PayloadTooLong { len }),
            _ => Ok(()),
        }
    }

    /// Drops a complete message so the next one can start.
    fn start_next(&mut self) {
        if self.state == State::Complete {
            self.have = 0;
            self.state = State::Filling;
        }
    }

    /// Where the transport should write next: at most the bytes that finish the
    /// current header or message. Drops a complete message first.
    pub fn recv_buf(&mut self) -> Result<&mut [u8], Error> {
        self.check_poisoned()?;
        self.start_next();
        let target = self.target();
        Ok(&mut self.buf[self.have..target])
    }

    /// Records that `n` bytes were written into [`Framer::recv_buf`] (clamped to
    /// its length). Returns `true` when a whole message is ready.
    pub fn commit(&mut self, n: usize) -> Result<bool, Error> {
        self.check_poisoned()?;
        if self.state == State::Complete {
            return Ok(true);
        }
        let target = self.target();
        self.have += n.min(target - self.have);
        if self.have == HEADER_LEN {
            let len = Message::new_unchecked(&self.buf[..HEADER_LEN]).payload_len();
            if len > XENSTORE_PAYLOAD_MAX {
                let len = len as u32;
                self.state = State::Poisoned(len);
                return Err(Error::PayloadTooLong { len });
            }
        }
        if self.have >= HEADER_LEN && self.have == self.target() {
            self.state = State::Complete;
        }
        Ok(self.state == State::Complete)
    }

    /// Consumes bytes from the front of `input` (only up to the end of the
    /// current message) and returns the message once it is whole. Call again
    /// with the rest of `input` for the next one.
    pub fn feed(&mut self, input: &mut &[u8]) -> Result<Option<Message<&[u8]>>, Error> {
        loop {
            let spare = self.recv_buf()?;
            let n = spare.len().min(input.len());
            if n == 0 {
                return Ok(None);
            }
            spare[..n].copy_from_slice(&input[..n]);
            *input = &input[n..];
            if self.commit(n)? {
                return Ok(self.message());
            }
        }
    }

    /// The complete message, if one is ready.
    pub fn message(&self) -> Option<Message<&[u8]>> {
        match self.state {
            State::Complete => Message::new_checked(&self.buf[..self.have]).ok(),
            _ => None,
        }
    }

    /// Drops the complete message, if any (the next `feed`/`recv_buf` would too).
    pub fn discard(&mut self) {
        self.start_next();
    }

    /// Whether part of a message has been received but not all of it.
    pub fn is_mid_message(&self) -> bool {
        self.state == State::Filling && self.have > 0
    }

    /// Whether an oversize header has stopped this stream.
    pub fn is_poisoned(&self) -> bool {
        matches!(self.state, State::Poisoned(_))
    }

    /// Forgets everything, including a poisoned state (use for a new connection
    /// or after a ring reconnect).
    pub fn reset(&mut self) {
        self.have = 0;
        self.state = State::Filling;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MsgType;

    fn header(ty: u32, req: u32, len: u32) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&ty.to_le_bytes());
        h[4..8].copy_from_slice(&req.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        h
    }

    #[test]
    fn feed_stops_at_message_boundary_and_keeps_the_rest() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&header(2, 1, 2));
        stream.extend_from_slice(b"ab");
        stream.extend_from_slice(&header(11, 2, 3));
        stream.extend_from_slice(b"OK\0");
        let mut input = &stream[..];
        let mut f = Framer::new();
        let m = f.feed(&mut input).unwrap().unwrap();
        assert_eq!((m.req_id(), m.payload()), (1, &b"ab"[..]));
        assert_eq!(input.len(), 19);
        let m = f.feed(&mut input).unwrap().unwrap();
        assert_eq!(m.msg_type(), Ok(MsgType::Write));
        assert_eq!(m.payload(), b"OK\0");
        assert!(input.is_empty());
        assert_eq!(f.feed(&mut input).unwrap().map(|_| ()), None);
    }

    #[test]
    fn zero_length_payload_completes_with_the_header() {
        let h = header(1, 3, 0);
        let mut input = &h[..];
        let mut f = Framer::new();
        let m = f.feed(&mut input).unwrap().unwrap();
        assert_eq!(m.payload(), b"");
    }

    #[test]
    fn oversize_len_poisons_until_reset_without_reading_payload() {
        let mut bytes = header(2, 1, 4097).to_vec();
        bytes.extend_from_slice(&header(2, 1, 0));
        let mut input = &bytes[..];
        let mut f = Framer::new();
        assert_eq!(
            f.feed(&mut input).map(|m| m.is_some()),
            Err(Error::PayloadTooLong { len: 4097 })
        );
        assert_eq!(input.len(), 16, "nothing past the bad header was consumed");
        assert!(f.is_poisoned());
        assert_eq!(
            f.feed(&mut input).map(|m| m.is_some()),
            Err(Error::PayloadTooLong { len: 4097 })
        );
        f.reset();
        assert!(f.feed(&mut input).unwrap().is_some());
    }

    #[test]
    fn recv_buf_never_extends_past_the_current_message() {
        let mut f = Framer::new();
        assert_eq!(f.recv_buf().unwrap().len(), 16);
        f.recv_buf().unwrap()[..16].copy_from_slice(&header(2, 1, 5));
        assert!(!f.commit(16).unwrap());
        assert_eq!(f.recv_buf().unwrap().len(), 5);
        f.recv_buf().unwrap()[..2].copy_from_slice(b"he");
        assert!(!f.commit(2).unwrap());
        assert!(f.is_mid_message());
        assert_eq!(f.recv_buf().unwrap().len(), 3);
        f.recv_buf().unwrap().copy_from_slice(b"llo");
        assert!(f.commit(999).unwrap(), "over-long commit is clamped");
        assert_eq!(f.message().unwrap().payload(), b"hello");
        assert_eq!(f.recv_buf().unwrap().len(), 16, "next message starts");
        assert!(f.message().is_none());
    }
}
