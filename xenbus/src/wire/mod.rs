//! The xenstore wire format: `struct xsd_sockmsg` and its payloads.
//!
//! Source: `xen/include/public/io/xs_wire.h`; payload syntax and semantics:
//! `docs/misc/xenstore.txt`. Every message, in either direction and on either
//! transport (ring or socket), is a 16-byte header followed by `len` payload
//! bytes. Fields are native-endian `uint32_t`; every Xen target (x86, Arm) is
//! little-endian, so this crate reads and writes little-endian.
//!
//! In the style of smoltcp's `wire`: [`Message`] is a view over a byte buffer,
//! [`Message::new_checked`] validates the header's length field once, so that no
//! accessor can panic afterwards; [`Header`] is the parsed header; [`Request`]
//! emits client requests and [`Reply`] decodes what xenstored sends.

mod error;
mod perm;
mod reply;
mod request;

pub use error::{ErrName, XsError, ERR_NAME_MAX};
pub use perm::{Access, Perm, PermList};
pub use reply::{NulList, NulListIter, Reply, TxId, WatchEvent};
pub use request::{Request, RequestError};

use crate::XENSTORE_PAYLOAD_MAX;
use core::fmt;

/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;

/// Largest whole message: header plus `XENSTORE_PAYLOAD_MAX` payload bytes.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + XENSTORE_PAYLOAD_MAX;

/// Field offsets of `struct xsd_sockmsg`.
mod field {
    pub type Field = core::ops::Range<usize>;
    /// `uint32_t type;  /* XS_??? */`
    pub const TYPE: Field = 0..4;
    /// `uint32_t req_id; /* Request identifier, echoed in daemon's response. */`
    pub const REQ_ID: Field = 4..8;
    /// `uint32_t tx_id; /* Transaction id (0 if not related to a transaction). */`
    pub const TX_ID: Field = 8..12;
    /// `uint32_t len;   /* Length of data following this. */`
    pub const LEN: Field = 12..16;
    pub const PAYLOAD: usize = 16;
}

const _: () = assert!(field::PAYLOAD == HEADER_LEN);

/// Parses an unsigned decimal of at most `max_digits` (<= 19) digits: no sign,
/// no spaces, not empty.
pub(crate) fn parse_decimal(text: &[u8], max_digits: usize) -> Option<u64> {
    if text.is_empty() || text.len() > max_digits.min(19) {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0')))
}

/// Parses a decimal `u32` (as xenstored prints transaction ids and states).
pub(crate) fn parse_decimal_u32(text: &[u8]) -> Option<u32> {
    parse_decimal(text, 10).and_then(|v| u32::try_from(v).ok())
}

/// What went wrong decoding bytes that came from the other side.
///
/// Framing errors ([`Error::Truncated`], [`Error::PayloadTooLong`]) leave a byte
/// stream desynchronised; payload errors describe one message only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer holds `have` bytes but the header (or its `len`) needs `need`.
    Truncated {
        /// Bytes available.
        have: usize,
        /// Bytes the message needs.
        need: usize,
    },
    /// The header's `len` exceeds `XENSTORE_PAYLOAD_MAX`.
    PayloadTooLong {
        /// The `len` field as received.
        len: u32,
    },
    /// The `type` field is not a known `enum xsd_sockmsg_type` value.
    UnknownType {
        /// The `type` field as received.
        raw: u32,
    },
    /// A string of a `ty` payload was not NUL-terminated where the syntax needs it.
    Unterminated {
        /// Message type whose payload was malformed.
        ty: MsgType,
    },
    /// A `ty` payload holds a NUL inside a value that must be a single string.
    EmbeddedNul {
        /// Message type whose payload was malformed.
        ty: MsgType,
        /// Offset of the NUL in the payload.
        at: usize,
    },
    /// Text where the protocol needs text (paths, names, numbers) was not UTF-8.
    NotText {
        /// Message type whose payload was malformed.
        ty: MsgType,
    },
    /// A `ty` payload had `found` strings where the syntax has `expected`.
    WrongStringCount {
        /// Message type whose payload was malformed.
        ty: MsgType,
        /// Strings the syntax requires.
        expected: usize,
        /// Strings found.
        found: usize,
    },
    /// An acknowledgement payload was not `OK`.
    NotOk {
        /// Message type of the acknowledgement.
        ty: MsgType,
    },
    /// A permission string did not start with one of `n`, `r`, `w`, `b`.
    BadAccess {
        /// The offending first byte (0 for an empty string).
        letter: u8,
    },
    /// A decimal number (domid, transaction id) was empty, not decimal, or out of range.
    BadNumber {
        /// Message type whose payload was malformed.
        ty: MsgType,
    },
    /// A GET_PERMS reply listed no permission at all (the owner entry is mandatory).
    NoPerms,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { have, need } => {
                write!(f, "message truncated: {have} bytes, need {need}")
            }
            Error::PayloadTooLong { len } => write!(
                f,
                "payload length {len} exceeds XENSTORE_PAYLOAD_MAX ({XENSTORE_PAYLOAD_MAX})"
            ),
            Error::UnknownType { raw } => write!(f, "unknown message type {raw}"),
            Error::Unterminated { ty } => write!(f, "{ty} payload is not NUL-terminated"),
            Error::EmbeddedNul { ty, at } => write!(f, "{ty} payload has a NUL at offset {at}"),
            Error::NotText { ty } => write!(f, "{ty} payload is not UTF-8 text"),
            Error::WrongStringCount { ty, expected, found } => {
                write!(f, "{ty} payload has {found} strings, expected {expected}")
            }
            Error::NotOk { ty } => write!(f, "{ty} acknowledgement is not \"OK\""),
            Error::BadAccess { letter } => {
                write!(f, "permission letter {letter:#04x} is not one of n, r, w, b")
            }
            Error::BadNumber { ty } => write!(f, "{ty} payload holds a malformed number"),
            Error::NoPerms => write!(f, "GET_PERMS reply lists no permission"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// `enum xsd_sockmsg_type`.
///
/// `XS_RESTRICT` (20) was removed from the protocol and is rejected like any
/// unknown value; `XS_INVALID` (0xffff) is "guaranteed to remain an invalid type".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(missing_docs)] // The names are the header's; see docs/misc/xenstore.txt.
pub enum MsgType {
    #[doc(alias = "XS_CONTROL")]
    #[doc(alias = "XS_DEBUG")]
    Control = 0,
    #[doc(alias = "XS_DIRECTORY")]
    Directory = 1,
    #[doc(alias = "XS_READ")]
    Read = 2,
    #[doc(alias = "XS_GET_PERMS")]
    GetPerms = 3,
    #[doc(alias = "XS_WATCH")]
    Watch = 4,
    #[doc(alias = "XS_UNWATCH")]
    Unwatch = 5,
    #[doc(alias = "XS_TRANSACTION_START")]
    TransactionStart = 6,
    #[doc(alias = "XS_TRANSACTION_END")]
    TransactionEnd = 7,
    #[doc(alias = "XS_INTRODUCE")]
    Introduce = 8,
    #[doc(alias = "XS_RELEASE")]
    Release = 9,
    #[doc(alias = "XS_GET_DOMAIN_PATH")]
    GetDomainPath = 10,
    #[doc(alias = "XS_WRITE")]
    Write = 11,
    #[doc(alias = "XS_MKDIR")]
    Mkdir = 12,
    #[doc(alias = "XS_RM")]
    Rm = 13,
    #[doc(alias = "XS_SET_PERMS")]
    SetPerms = 14,
    #[doc(alias = "XS_WATCH_EVENT")]
    WatchEvent = 15,
    #[doc(alias = "XS_ERROR")]
    Error = 16,
    #[doc(alias = "XS_IS_DOMAIN_INTRODUCED")]
    IsDomainIntroduced = 17,
    #[doc(alias = "XS_RESUME")]
    Resume = 18,
    #[doc(alias = "XS_SET_TARGET")]
    SetTarget = 19,
    #[doc(alias = "XS_RESET_WATCHES")]
    ResetWatches = 21,
    #[doc(alias = "XS_DIRECTORY_PART")]
    DirectoryPart = 22,
    #[doc(alias = "XS_GET_FEATURE")]
    GetFeature = 23,
    #[doc(alias = "XS_SET_FEATURE")]
    SetFeature = 24,
    #[doc(alias = "XS_GET_QUOTA")]
    GetQuota = 25,
    #[doc(alias = "XS_SET_QUOTA")]
    SetQuota = 26,
}

impl MsgType {
    /// Every known type, in wire order.
    pub const ALL: [MsgType; 26] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
        MsgType::GetFeature,
        MsgType::SetFeature,
        MsgType::GetQuota,
        MsgType::SetQuota,
    ];

    /// The header's name for this type, e.g. `"XS_READ"`.
    pub const fn name(self) -> &'static str {
        match self {
            MsgType::Control => "XS_CONTROL",
            MsgType::Directory => "XS_DIRECTORY",
            MsgType::Read => "XS_READ",
            MsgType::GetPerms => "XS_GET_PERMS",
            MsgType::Watch => "XS_WATCH",
            MsgType::Unwatch => "XS_UNWATCH",
            MsgType::TransactionStart => "XS_TRANSACTION_START",
            MsgType::TransactionEnd => "XS_TRANSACTION_END",
            MsgType::Introduce => "XS_INTRODUCE",
            MsgType::Release => "XS_RELEASE",
            MsgType::GetDomainPath => "XS_GET_DOMAIN_PATH",
            MsgType::Write => "XS_WRITE",
            MsgType::Mkdir => "XS_MKDIR",
            MsgType::Rm => "XS_RM",
            MsgType::SetPerms => "XS_SET_PERMS",
            MsgType::WatchEvent => "XS_WATCH_EVENT",
            MsgType::Error => "XS_ERROR",
            MsgType::IsDomainIntroduced => "XS_IS_DOMAIN_INTRODUCED",
            MsgType::Resume => "XS_RESUME",
            MsgType::SetTarget => "XS_SET_TARGET",
            MsgType::ResetWatches => "XS_RESET_WATCHES",
            MsgType::DirectoryPart => "XS_DIRECTORY_PART",
            MsgType::GetFeature => "XS_GET_FEATURE",
            MsgType::SetFeature => "XS_SET_FEATURE",
            MsgType::GetQuota => "XS_GET_QUOTA",
            MsgType::SetQuota => "XS_SET_QUOTA",
        }
    }
}

impl TryFrom<u32> for MsgType {
    type Error = Error;

    fn try_from(raw: u32) -> Result<Self, Error> {
        MsgType::ALL.iter().copied().find(|t| *t as u32 == raw).ok_or(Error::UnknownType { raw })
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A view of one xenstore message (`struct xsd_sockmsg` and its payload) in a buffer.
///
/// Build it with [`Message::new_checked`]; after that no accessor panics. The
/// buffer may be longer than the message: trailing bytes are ignored.
#[derive(Debug, Clone, Copy)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

fn read_u32(bytes: &[u8], field: field::Field) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[field]);
    u32::from_le_bytes(raw)
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wraps a buffer without checking it. Accessors panic if the buffer is
    /// shorter than the header or than the length it declares; use
    /// [`Message::new_checked`] for anything that came from outside.
    pub const fn new_unchecked(buffer: T) -> Message<T> {
        Message { buffer }
    }

    /// Wraps a buffer after [`Message::check_len`].
    pub fn new_checked(buffer: T) -> Result<Message<T>, Error> {
        let msg = Message::new_unchecked(buffer);
        msg.check_len()?;
        Ok(msg)
    }

    /// Checks that the buffer holds a whole header, that `len` is at most
    /// `XENSTORE_PAYLOAD_MAX` and that the buffer holds `len` payload bytes.
    pub fn check_len(&self) -> Result<(), Error> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated { have, need: HEADER_LEN });
        }
        let len = read_u32(self.buffer.as_ref(), field::LEN);
        if len as usize > XENSTORE_PAYLOAD_MAX {
            return Err(Error::PayloadTooLong { len });
        }
        let need = HEADER_LEN + len as usize;
        if have < need {
            return Err(Error::Truncated { have, need });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The `type` field as received.
    pub fn msg_type_raw(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::TYPE)
    }

    /// The `type` field, if it is a known [`MsgType`].
    pub fn msg_type(&self) -> Result<MsgType, Error> {
        MsgType::try_from(self.msg_type_raw())
    }

    /// The `req_id` field: chosen by the client, echoed in the reply; 0 in watch events.
    pub fn req_id(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REQ_ID)
    }

    /// The `tx_id` field: the transaction, or 0.
    pub fn tx_id(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::TX_ID)
    }

    /// The `len` field: payload bytes following the header.
    pub fn payload_len(&self) -> usize {
        read_u32(self.buffer.as_ref(), field::LEN) as usize
    }

    /// Header plus payload.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// The whole message (header and payload) without any trailing bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Message<&'a T> {
    /// The payload, borrowed for as long as the underlying buffer.
    pub fn payload(&self) -> &'a [u8] {
        let len = self.payload_len();
        &self.buffer.as_ref()[field::PAYLOAD..field::PAYLOAD + len]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    fn write_u32(&mut self, field: field::Field, value: u32) {
        self.buffer.as_mut()[field].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets the `type` field.
    pub fn set_msg_type(&mut self, ty: MsgType) {
        self.write_u32(field::TYPE, ty as u32);
    }

    /// Sets the `req_id` field.
    pub fn set_req_id(&mut self, req_id: u32) {
        self.write_u32(field::REQ_ID, req_id);
    }

    /// Sets the `tx_id` field.
    pub fn set_tx_id(&mut self, tx_id: u32) {
        self.write_u32(field::TX_ID, tx_id);
    }

    /// Sets the `len` field. Panics if `len > XENSTORE_PAYLOAD_MAX` (a bug of the
    /// emitter, never of input); [`Header::emit`] checks first.
    pub fn set_payload_len(&mut self, len: usize) {
        assert!(len <= XENSTORE_PAYLOAD_MAX, "payload length {len} too long");
        self.write_u32(field::LEN, len as u32);
    }

    /// The payload, as long as the `len` field says.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.payload_len();
        &mut self.buffer.as_mut()[field::PAYLOAD..field::PAYLOAD + len]
    }
}

/// A parsed `struct xsd_sockmsg` header with a known type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `type`.
    pub msg_type: MsgType,
    /// `req_id`.
    pub req_id: u32,
    /// `tx_id`.
    pub tx_id: u32,
    /// `len`.
    pub payload_len: usize,
}

impl Header {
    /// Parses the header of a checked message.
    pub fn parse<T: AsRef<[u8]>>(msg: &Message<T>) -> Result<Header, Error> {
        Ok(Header {
            msg_type: msg.msg_type()?,
            req_id: msg.req_id(),
            tx_id: msg.tx_id(),
            payload_len: msg.payload_len(),
        })
    }

    /// Writes this header at the start of `buf` and returns a message view of
    /// `buf` whose payload (not yet written) is `payload_len` bytes long.
    pub fn emit<'b>(&self, buf: &'b mut [u8]) -> Result<Message<&'b mut [u8]>, RequestError> {
        if self.payload_len > XENSTORE_PAYLOAD_MAX {
            return Err(RequestError::PayloadTooLong { len: self.payload_len });
        }
        let need = HEADER_LEN + self.payload_len;
        if buf.len() < need {
            return Err(RequestError::BufferTooSmall { need, have: buf.len() });
        }
        let mut msg = Message::new_unchecked(&mut buf[..need]);
        msg.set_msg_type(self.msg_type);
        msg.set_req_id(self.req_id);
        msg.set_tx_id(self.tx_id);
        msg.set_payload_len(self.payload_len);
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_round_trips_through_u32() {
        for ty in MsgType::ALL {
            assert_eq!(MsgType::try_from(ty as u32), Ok(ty));
        }
    }

    #[test]
    fn removed_restrict_and_invalid_types_are_rejected() {
        assert_eq!(MsgType::try_from(20), Err(Error::UnknownType { raw: 20 }));
        assert_eq!(MsgType::try_from(0xffff), Err(Error::UnknownType { raw: 0xffff }));
        assert_eq!(MsgType::try_from(27), Err(Error::UnknownType { raw: 27 }));
    }

    #[test]
    fn new_checked_rejects_short_header() {
        let bytes = [0u8; 15];
        assert_eq!(
            Message::new_checked(&bytes[..]).err(),
            Some(Error::Truncated { have: 15, need: 16 })
        );
    }

    #[test]
    fn new_checked_rejects_len_beyond_payload_max_before_looking_at_payload() {
        let mut bytes = [0u8; 16];
        bytes[12..16].copy_from_slice(&4097u32.to_le_bytes());
        assert_eq!(
            Message::new_checked(&bytes[..]).err(),
            Some(Error::PayloadTooLong { len: 4097 })
        );
        bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Message::new_checked(&bytes[..]).err(),
            Some(Error::PayloadTooLong { len: u32::MAX })
        );
    }

    #[test]
    fn new_checked_rejects_buffer_shorter_than_declared_len() {
        let mut bytes = [0u8; 20];
        bytes[12..16].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(
            Message::new_checked(&bytes[..]).err(),
            Some(Error::Truncated { have: 20, need: 21 })
        );
    }

    #[test]
    fn header_emit_then_parse_round_trips() {
        let mut buf = [0xAAu8; 32];
        let hdr = Header { msg_type: MsgType::Write, req_id: 7, tx_id: 9, payload_len: 3 };
        hdr.emit(&mut buf).unwrap().payload_mut().copy_from_slice(b"a\0b");
        let msg = Message::new_checked(&buf[..]).unwrap();
        assert_eq!(Header::parse(&msg), Ok(hdr));
        assert_eq!(msg.payload(), b"a\0b");
        assert_eq!(msg.as_bytes().len(), 19);
    }

    #[test]
    fn header_emit_refuses_small_buffer_and_long_payload() {
        let mut buf = [0u8; 18];
        let mut hdr = Header { msg_type: MsgType::Read, req_id: 1, tx_id: 0, payload_len: 3 };
        assert_eq!(
            hdr.emit(&mut buf).err(),
            Some(RequestError::BufferTooSmall { need: 19, have: 18 })
        );
        hdr.payload_len = 4097;
        assert_eq!(hdr.emit(&mut buf).err(), Some(RequestError::PayloadTooLong { len: 4097 }));
    }
}
