//! Client requests: what [`Request::emit`] puts on the wire.
//!
//! Payloads, per `docs/misc/xenstore.txt` (`|` is a NUL byte):
//!
//! | request | payload |
//! |---|---|
//! | `READ`, `MKDIR`, `RM`, `DIRECTORY`, `GET_PERMS` | `<path>\|` |
//! | `WRITE` | `<path>\|<value>` (the value carries no NUL of its own) |
//! | `SET_PERMS` | `<path>\|<perm>\|+` |
//! | `WATCH`, `UNWATCH` | `<wpath>\|<token>\|` |
//! | `TRANSACTION_START` | `\|` (header `tx_id` must be 0) |
//! | `TRANSACTION_END` | `T\|` (commit) or `F\|` (abort) |
//! | `GET_DOMAIN_PATH` | `<domid>\|` |

use super::perm::Perm;
use super::{Header, MsgType, HEADER_LEN};
use crate::path::{check_path, PathError};
use crate::{DomId, XENSTORE_PAYLOAD_MAX};
use core::fmt;

/// Why a request was refused before being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// A path broke the rules of [`crate::path`].
    Path(PathError),
    /// A watch token contains a NUL at this offset (it would split the payload).
    TokenHasNul {
        /// Offset of the NUL in the token.
        at: usize,
    },
    /// `SET_PERMS` needs at least the owner entry.
    NoPerms,
    /// The payload would be `len` bytes, more than `XENSTORE_PAYLOAD_MAX`
    /// (xenstored would kill the connection).
    PayloadTooLong {
        /// The payload length the request would have.
        len: usize,
    },
    /// The output buffer holds `have` bytes; the message needs `need`.
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// `TRANSACTION_START` may not be sent inside a transaction.
    NestedTransaction,
    /// `TRANSACTION_END` needs the transaction's id in `tx_id`.
    NotInTransaction,
}

impl From<PathError> for RequestError {
    fn from(e: PathError) -> Self {
        RequestError::Path(e)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RequestError::Path(e) => write!(f, "invalid path: {e}"),
            RequestError::TokenHasNul { at } => write!(f, "watch token has a NUL at offset {at}"),
            RequestError::NoPerms => write!(f, "SET_PERMS needs at least the owner entry"),
            RequestError::PayloadTooLong { len } => write!(
                f,
                "request payload of {len} bytes exceeds XENSTORE_PAYLOAD_MAX ({XENSTORE_PAYLOAD_MAX})"
            ),
            RequestError::BufferTooSmall { need, have } => {
                write!(f, "buffer of {have} bytes, message needs {need}")
            }
            RequestError::NestedTransaction => {
                write!(f, "TRANSACTION_START sent with a non-zero tx_id")
            }
            RequestError::NotInTransaction => write!(f, "TRANSACTION_END sent with tx_id 0"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RequestError {}

/// A request this client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `XS_READ`: the value at `path`.
    #[doc(alias = "XS_READ")]
    Read {
        /// Node.
        path: &'a str,
    },
    /// `XS_WRITE`: store `value` at `path`, creating missing parents.
    #[doc(alias = "XS_WRITE")]
    Write {
        /// Node.
        path: &'a str,
        /// Value (octets; conventionally printable ASCII without NUL).
        value: &'a [u8],
    },
    /// `XS_MKDIR`: make `path` exist.
    #[doc(alias = "XS_MKDIR")]
    Mkdir {
        /// Node.
        path: &'a str,
    },
    /// `XS_RM`: remove `path` and its children.
    #[doc(alias = "XS_RM")]
    Rm {
        /// Node.
        path: &'a str,
    },
    /// `XS_DIRECTORY`: the children of `path`.
    #[doc(alias = "XS_DIRECTORY")]
    Directory {
        /// Node.
        path: &'a str,
    },
    /// `XS_GET_PERMS`: the permissions of `path`.
    #[doc(alias = "XS_GET_PERMS")]
    GetPerms {
        /// Node.
        path: &'a str,
    },
    /// `XS_SET_PERMS`: replace the permissions of `path`; `perms[0]` is the owner.
    #[doc(alias = "XS_SET_PERMS")]
    SetPerms {
        /// Node.
        path: &'a str,
        /// Entries, owner first.
        perms: &'a [Perm],
    },
    /// `XS_WATCH`: watch `path` and its children; events carry `token`.
    #[doc(alias = "XS_WATCH")]
    Watch {
        /// Watched path, or `@introduceDomain` / `@releaseDomain`.
        path: &'a str,
        /// Opaque token echoed in every event of this watch.
        token: &'a str,
    },
    /// `XS_UNWATCH`: remove the watch set with the same `path` and `token`.
    #[doc(alias = "XS_UNWATCH")]
    Unwatch {
        /// Watched path.
        path: &'a str,
        /// Token of the watch.
        token: &'a str,
    },
    /// `XS_TRANSACTION_START`.
    #[doc(alias = "XS_TRANSACTION_START")]
    TransactionStart,
    /// `XS_TRANSACTION_END`: `T` commits, `F` discards.
    #[doc(alias = "XS_TRANSACTION_END")]
    TransactionEnd {
        /// Commit (`true`) or abort.
        commit: bool,
    },
    /// `XS_GET_DOMAIN_PATH`: `/local/domain/<domid>`.
    #[doc(alias = "XS_GET_DOMAIN_PATH")]
    GetDomainPath {
        /// The domain.
        domid: DomId,
    },
}

/// Writes payload pieces one after the other; `buf` was sized by `payload_len`.
struct Cursor<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    fn put_str0(&mut self, s: &str) {
        self.put(s.as_bytes());
        self.put(b"\0");
    }
}

impl Request<'_> {
    /// The header `type` of this request.
    pub const fn msg_type(&self) -> MsgType {
        match self {
            Request::Read { .. } => MsgType::Read,
            Request::Write { .. } => MsgType::Write,
            Request::Mkdir { .. } => MsgType::Mkdir,
            Request::Rm { .. } => MsgType::Rm,
            Request::Directory { .. } => MsgType::Directory,
            Request::GetPerms { .. } => MsgType::GetPerms,
            Request::SetPerms { .. } => MsgType::SetPerms,
            Request::Watch { .. } => MsgType::Watch,
            Request::Unwatch { .. } => MsgType::Unwatch,
            Request::TransactionStart => MsgType::TransactionStart,
            Request::TransactionEnd { .. } => MsgType::TransactionEnd,
            Request::GetDomainPath { .. } => MsgType::GetDomainPath,
        }
    }

    /// Checks paths, token and permissions, and that the payload fits
    /// `XENSTORE_PAYLOAD_MAX`.
    pub fn check(&self) -> Result<(), RequestError> {
        match *self {
            Request::Read { path }
            | Request::Mkdir { path }
            | Request::Rm { path }
            | Request::Directory { path }
            | Request::GetPerms { path }
            | Request::Write { path, .. } => check_path(path)?,
            Request::SetPerms { path, perms } => {
                check_path(path)?;
                if perms.is_empty() {
                    return Err(RequestError::NoPerms);
                }
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                check_path(path)?;
                if let Some(at) = token.bytes().position(|b| b == 0) {
                    return Err(RequestError::TokenHasNul { at });
                }
            }
            Request::TransactionStart
            | Request::TransactionEnd { .. }
            | Request::GetDomainPath { .. } => {}
        }
        let len = self.payload_len();
        if len > XENSTORE_PAYLOAD_MAX {
            return Err(RequestError::PayloadTooLong { len });
        }
        Ok(())
    }

    /// Payload bytes this request emits.
    pub fn payload_len(&self) -> usize {
        match *self {
            Request::Read { path }
            | Request::Mkdir { path }
            | Request::Rm { path }
            | Request::Directory { path }
            | Request::GetPerms { path } => path.len() + 1,
            Request::Write { path, value } => path.len() + 1 + value.len(),
            Request::SetPerms { path, perms } => {
                path.len() + 1 + perms.iter().map(|p| p.to_wire().len() + 1).sum::<usize>()
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                path.len() + 1 + token.len() + 1
            }
            Request::TransactionStart => 1,
            Request::TransactionEnd { .. } => 2,
            Request::GetDomainPath { domid } => decimal_len(u32::from(domid)) + 1,
        }
    }

    /// Emits header and payload into `buf` after [`Request::check`]; returns the
    /// message length.
    pub fn emit(&self, req_id: u32, tx_id: u32, buf: &mut [u8]) -> Result<usize, RequestError> {
        self.check()?;
        match self {
            Request::TransactionStart if tx_id != 0 => return Err(RequestError::NestedTransaction),
            Request::TransactionEnd { .. } if tx_id == 0 => {
                return Err(RequestError::NotInTransaction)
            }
            _ => {}
        }
        let header =
            Header { msg_type: self.msg_type(), req_id, tx_id, payload_len: self.payload_len() };
        let mut msg = header.emit(buf)?;
        let mut out = Cursor { buf: msg.payload_mut(), at: 0 };
        match *self {
            Request::Read { path }
            | Request::Mkdir { path }
            | Request::Rm { path }
            | Request::Directory { path }
            | Request::GetPerms { path } => out.put_str0(path),
            Request::Write { path, value } => {
                out.put_str0(path);
                out.put(value);
            }
            Request::SetPerms { path, perms } => {
                out.put_str0(path);
                for p in perms {
                    out.put_str0(&p.to_wire());
                }
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                out.put_str0(path);
                out.put_str0(token);
            }
            Request::TransactionStart => out.put(b"\0"),
            Request::TransactionEnd { commit } => out.put(if commit { b"T\0" } else { b"F\0" }),
            Request::GetDomainPath { domid } => {
                let mut digits = heapless::String::<5>::new();
                let _ = fmt::write(&mut digits, format_args!("{domid}"));
                out.put_str0(&digits);
            }
        }
        Ok(HEADER_LEN + header.payload_len)
    }
}

fn decimal_len(mut v: u32) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::super::{Access, Message, MAX_MESSAGE_LEN};
    use super::*;

    fn emit(req: Request<'_>, req_id: u32, tx_id: u32) -> Vec<u8> {
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let n = req.emit(req_id, tx_id, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn payload(bytes: &[u8]) -> &[u8] {
        Message::new_checked(bytes).unwrap().payload()
    }

    #[test]
    fn read_request_is_header_then_nul_terminated_path() {
        let bytes = emit(Request::Read { path: "/vm" }, 0x11, 0);
        assert_eq!(
            bytes,
            [
                2, 0, 0, 0, // XS_READ
                0x11, 0, 0, 0, // req_id
                0, 0, 0, 0, // tx_id
                4, 0, 0, 0, // len
                b'/', b'v', b'm', 0,
            ]
        );
    }

    #[test]
    fn write_value_carries_no_trailing_nul() {
        let bytes = emit(Request::Write { path: "state", value: b"4" }, 1, 3);
        let msg = Message::new_checked(&bytes[..]).unwrap();
        assert_eq!(msg.msg_type(), Ok(MsgType::Write));
        assert_eq!(msg.tx_id(), 3);
        assert_eq!(msg.payload(), b"state\x004");
    }

    #[test]
    fn set_perms_lists_owner_first() {
        let perms = [Perm::new(0, Access::None), Perm::new(5, Access::Read)];
        let bytes = emit(Request::SetPerms { path: "/a", perms: &perms }, 1, 0);
        assert_eq!(payload(&bytes), b"/a\0n0\0r5\0");
    }

    #[test]
    fn watch_transaction_and_domain_path_payloads() {
        let w = emit(Request::Watch { path: "backend/vgpu", token: "be" }, 1, 0);
        assert_eq!(payload(&w), b"backend/vgpu\0be\0");
        assert_eq!(payload(&emit(Request::TransactionStart, 1, 0)), b"\0");
        assert_eq!(payload(&emit(Request::TransactionEnd { commit: true }, 1, 9)), b"T\0");
        assert_eq!(payload(&emit(Request::TransactionEnd { commit: false }, 1, 9)), b"F\0");
        assert_eq!(payload(&emit(Request::GetDomainPath { domid: 65535 }, 1, 0)), b"65535\0");
        assert_eq!(payload(&emit(Request::GetDomainPath { domid: 0 }, 1, 0)), b"0\0");
    }

    #[test]
    fn oversize_write_is_refused_before_emitting() {
        let value = [b'x'; XENSTORE_PAYLOAD_MAX];
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        assert_eq!(
            Request::Write { path: "/a", value: &value }.emit(1, 0, &mut buf),
            Err(RequestError::PayloadTooLong { len: 4099 })
        );
        let fits = [b'x'; XENSTORE_PAYLOAD_MAX - 3];
        let n = Request::Write { path: "/a", value: &fits }.emit(1, 0, &mut buf).unwrap();
        assert_eq!(n, MAX_MESSAGE_LEN);
    }

    #[test]
    fn invalid_arguments_are_refused() {
        let mut buf = [0u8; 64];
        let bad = |r: Request<'_>, buf: &mut [u8]| r.emit(1, 0, buf).err();
        assert_eq!(
            bad(Request::Rm { path: "/a/" }, &mut buf),
            Some(RequestError::Path(PathError::TrailingSlash))
        );
        assert_eq!(
            bad(Request::Watch { path: "/a", token: "t\0k" }, &mut buf),
            Some(RequestError::TokenHasNul { at: 1 })
        );
        assert_eq!(
            bad(Request::SetPerms { path: "/a", perms: &[] }, &mut buf),
            Some(RequestError::NoPerms)
        );
        assert_eq!(
            Request::TransactionStart.emit(1, 4, &mut buf).err(),
            Some(RequestError::NestedTransaction)
        );
        assert_eq!(
            Request::TransactionEnd { commit: true }.emit(1, 0, &mut buf).err(),
            Some(RequestError::NotInTransaction)
        );
        assert_eq!(
            bad(Request::Read { path: "/abcdef" }, &mut buf[..20]),
            Some(RequestError::BufferTooSmall { need: 24, have: 20 })
        );
    }

    #[test]
    fn decimal_len_counts_digits() {
        assert_eq!(decimal_len(0), 1);
        assert_eq!(decimal_len(9), 1);
        assert_eq!(decimal_len(10), 2);
        assert_eq!(decimal_len(u32::MAX), 10);
    }
}
