//! Decoding what xenstored sends: replies, errors and watch events.
//!
//! Payload syntax per `docs/misc/xenstore.txt`, checked against what the C
//! xenstored sends (`send_reply`, `send_ack` = `"OK\0"`, `send_error` =
//! `"E...\0"`, `send_event` = `"<path>\0<token>\0"`; `READ` values carry no NUL).

use super::error::XsError;
use super::parse_decimal_u32;
use super::perm::PermList;
use super::{Error, Message, MsgType};
use core::fmt;

/// A transaction id: `tx_id` of the header; 0 means "no transaction".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TxId(pub u32);

impl TxId {
    /// Outside any transaction.
    pub const NONE: TxId = TxId(0);

    /// Whether this names a transaction.
    pub const fn is_some(self) -> bool {
        self.0 != 0
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx {}", self.0)
    }
}

/// A validated list of NUL-terminated strings (`<string>|*`): `DIRECTORY`
/// children, `GET_PERMS` entries, watch event fields.
///
/// Validation happens once in [`NulList::parse`]: the payload is empty or ends
/// with a NUL, and it is UTF-8; iteration cannot fail afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NulList<'a> {
    /// The payload without its final NUL; empty for an empty list.
    body: &'a str,
    count: usize,
}

impl<'a> NulList<'a> {
    /// Validates a `<string>|*` payload of a `ty` message.
    pub fn parse(payload: &'a [u8], ty: MsgType) -> Result<NulList<'a>, Error> {
        let text = core::str::from_utf8(payload).map_err(|_| Error::NotText { ty })?;
        if text.is_empty() {
            return Ok(NulList { body: text, count: 0 });
        }
        let body = text.strip_suffix('\0').ok_or(Error::Unterminated { ty })?;
        let count = body.bytes().filter(|&b| b == 0).count() + 1;
        Ok(NulList { body, count })
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the list has no string.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The strings, without their NULs.
    pub fn iter(&self) -> NulListIter<'a> {
        NulListIter { rest: (self.count > 0).then_some(self.body) }
    }

    /// Whether `name` is one of the strings.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|s| s == name)
    }
}

impl<'a> IntoIterator for NulList<'a> {
    type Item = &'a str;
    type IntoIter = NulListIter<'a>;
    fn into_iter(self) -> NulListIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`NulList`].
#[derive(Debug, Clone)]
pub struct NulListIter<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for NulListIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.split_once('\0') {
            Some((item, tail)) => {
                self.rest = Some(tail);
                Some(item)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// A `WATCH_EVENT`: `<epath>|<token>|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchEvent<'a> {
    /// The path that changed (relative iff the watch was set with a relative path).
    pub path: &'a str,
    /// The token given to `WATCH`.
    pub token: &'a str,
}

impl<'a> WatchEvent<'a> {
    /// Parses a `WATCH_EVENT` payload: exactly two NUL-terminated strings.
    pub fn parse(payload: &'a [u8]) -> Result<WatchEvent<'a>, Error> {
        let list = NulList::parse(payload, MsgType::WatchEvent)?;
        let mut it = list.iter();
        match (it.next(), it.next(), list.len()) {
            (Some(path), Some(token), 2) => Ok(WatchEvent { path, token }),
            _ => Err(Error::WrongStringCount {
                ty: MsgType::WatchEvent,
                expected: 2,
                found: list.len(),
            }),
        }
    }
}

/// A payload that must be one string: an optional final NUL, no other NUL.
fn single_string(payload: &[u8], ty: MsgType) -> Result<&str, Error> {
    let body = payload.strip_suffix(b"\0").unwrap_or(payload);
    if let Some(at) = body.iter().position(|&b| b == 0) {
        return Err(Error::EmbeddedNul { ty, at });
    }
    core::str::from_utf8(body).map_err(|_| Error::NotText { ty })
}

/// A decoded message from xenstored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `"OK"` acknowledging a request of this type (`WRITE`, `MKDIR`, `RM`,
    /// `SET_PERMS`, `WATCH`, `UNWATCH`, `TRANSACTION_END`, ...).
    Ack(MsgType),
    /// `READ`: the value, binary, without a trailing NUL.
    Read(&'a [u8]),
    /// `DIRECTORY`: the children's leaf names.
    Directory(NulList<'a>),
    /// `GET_PERMS`: the permission entries, owner first.
    Perms(PermList<'a>),
    /// `TRANSACTION_START`: the new transaction's id.
    TransactionStarted(TxId),
    /// `GET_DOMAIN_PATH`: e.g. `/local/domain/5`.
    DomainPath(&'a str),
    /// `IS_DOMAIN_INTRODUCED`: `T` or `F`.
    IsIntroduced(bool),
    /// `WATCH_EVENT`: an unsolicited event (req_id and tx_id are 0).
    WatchEvent(WatchEvent<'a>),
    /// `ERROR`: the request failed with this errno name.
    Error(XsError),
    /// A type this crate does not interpret (`CONTROL`, `DIRECTORY_PART`,
    /// feature and quota requests), with its raw payload.
    Other(MsgType, &'a [u8]),
}

impl<'a> Reply<'a> {
    /// Decodes the payload of a checked message according to its type.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(msg: &Message<&'a T>) -> Result<Reply<'a>, Error> {
        let ty = msg.msg_type()?;
        Reply::parse_payload(ty, msg.payload())
    }

    /// Decodes a `ty` payload.
    pub fn parse_payload(ty: MsgType, payload: &'a [u8]) -> Result<Reply<'a>, Error> {
        Ok(match ty {
            MsgType::Read => Reply::Read(payload),
            MsgType::Directory => Reply::Directory(NulList::parse(payload, ty)?),
            MsgType::GetPerms => Reply::Perms(PermList::parse(payload)?),
            MsgType::TransactionStart => {
                let text = single_string(payload, ty)?;
                let id = parse_decimal_u32(text.as_bytes())
                    .filter(|&v| v != 0)
                    .ok_or(Error::BadNumber { ty })?;
                Reply::TransactionStarted(TxId(id))
            }
            MsgType::GetDomainPath => Reply::DomainPath(single_string(payload, ty)?),
            MsgType::IsDomainIntroduced => match single_string(payload, ty)? {
                "T" => Reply::IsIntroduced(true),
                "F" => Reply::IsIntroduced(false),
                _ => return Err(Error::NotOk { ty }),
            },
            MsgType::WatchEvent => Reply::WatchEvent(WatchEvent::parse(payload)?),
            MsgType::Error => Reply::Error(XsError::from_name(single_string(payload, ty)?)),
            MsgType::Write
            | MsgType::Mkdir
            | MsgType::Rm
            | MsgType::SetPerms
            | MsgType::Watch
            | MsgType::Unwatch
            | MsgType::TransactionEnd
            | MsgType::Introduce
            | MsgType::Release
            | MsgType::Resume
            | MsgType::SetTarget
            | MsgType::ResetWatches => match single_string(payload, ty)? {
                "OK" => Reply::Ack(ty),
                _ => return Err(Error::NotOk { ty }),
            },
            MsgType::Control
            | MsgType::DirectoryPart
            | MsgType::GetFeature
            | MsgType::SetFeature
            | MsgType::GetQuota
            | MsgType::SetQuota => Reply::Other(ty, payload),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_directory_payload_is_an_empty_list() {
        let list = NulList::parse(b"", MsgType::Directory).unwrap();
        assert!(list.is_empty());
        assert_eq!(list.iter().next(), None);
    }

    #[test]
    fn nul_list_yields_each_string_including_empty_ones() {
        let list = NulList::parse(b"a\0\0bc\0", MsgType::Directory).unwrap();
        assert_eq!(list.len(), 3);
        let items: Vec<&str> = list.iter().collect();
        assert_eq!(items, ["a", "", "bc"]);
        assert!(list.contains("bc"));
        assert!(!list.contains("b"));
    }

    #[test]
    fn nul_list_without_final_nul_or_not_utf8_is_rejected() {
        let ty = MsgType::Directory;
        assert_eq!(NulList::parse(b"a\0b", ty), Err(Error::Unterminated { ty }));
        assert_eq!(NulList::parse(b"\xff\0", ty), Err(Error::NotText { ty }));
    }

    #[test]
    fn watch_event_needs_exactly_path_and_token() {
        assert_eq!(WatchEvent::parse(b"/a\0tok\0"), Ok(WatchEvent { path: "/a", token: "tok" }));
        let wrong =
            |found| Err(Error::WrongStringCount { ty: MsgType::WatchEvent, expected: 2, found });
        assert_eq!(WatchEvent::parse(b"/a\0"), wrong(1));
        assert_eq!(WatchEvent::parse(b"/a\0t\0x\0"), wrong(3));
        assert_eq!(WatchEvent::parse(b""), wrong(0));
    }

    #[test]
    fn transaction_id_must_be_nonzero_u32_decimal() {
        let ty = MsgType::TransactionStart;
        assert_eq!(
            Reply::parse_payload(ty, b"4294967295\0"),
            Ok(Reply::TransactionStarted(TxId(u32::MAX)))
        );
        for bad in [&b"0\0"[..], b"4294967296\0", b"\0", b"12a\0", b"-1\0"] {
            assert_eq!(Reply::parse_payload(ty, bad), Err(Error::BadNumber { ty }), "{bad:?}");
        }
        assert_eq!(Reply::parse_payload(ty, b"1\x002\0"), Err(Error::EmbeddedNul { ty, at: 1 }));
    }

    #[test]
    fn ack_must_say_ok() {
        assert_eq!(Reply::parse_payload(MsgType::Write, b"OK\0"), Ok(Reply::Ack(MsgType::Write)));
        assert_eq!(Reply::parse_payload(MsgType::Rm, b"OK"), Ok(Reply::Ack(MsgType::Rm)));
        assert_eq!(
            Reply::parse_payload(MsgType::Mkdir, b"NO\0"),
            Err(Error::NotOk { ty: MsgType::Mkdir })
        );
    }

    #[test]
    fn is_domain_introduced_is_t_or_f() {
        let ty = MsgType::IsDomainIntroduced;
        assert_eq!(Reply::parse_payload(ty, b"T\0"), Ok(Reply::IsIntroduced(true)));
        assert_eq!(Reply::parse_payload(ty, b"F\0"), Ok(Reply::IsIntroduced(false)));
        assert_eq!(Reply::parse_payload(ty, b"X\0"), Err(Error::NotOk { ty }));
    }
}
