//! `XS_ERROR` replies: errno *names* sent as strings (`struct xsd_errors` in xs_wire.h).

use core::fmt;

/// Longest unknown error name kept verbatim; longer names are truncated.
pub const ERR_NAME_MAX: usize = 24;

/// An error name xenstored sent that this crate does not know, kept as text.
pub type ErrName = heapless::String<ERR_NAME_MAX>;

/// The error a `XS_ERROR` reply carries.
///
/// xenstored sends the errno's *name* (`"ENOENT\0"`), taken from the
/// `xsd_errors[]` table of `xs_wire.h`; newer daemons may add names at the end
/// of that table, which arrive here as [`XsError::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XsError {
    /// Invalid argument (bad path, bad request syntax).
    #[doc(alias = "EINVAL")]
    Invalid,
    /// Permission denied by the node's permissions.
    #[doc(alias = "EACCES")]
    AccessDenied,
    /// Already exists (e.g. a duplicate watch).
    #[doc(alias = "EEXIST")]
    Exists,
    /// Is a directory.
    #[doc(alias = "EISDIR")]
    IsDirectory,
    /// No such node (or its parent is missing, for `RM`).
    #[doc(alias = "ENOENT")]
    NotFound,
    /// xenstored is out of memory, or the domain's memory quota is used up.
    #[doc(alias = "ENOMEM")]
    OutOfMemory,
    /// A quota (nodes, watches, transactions, permissions) is exhausted.
    #[doc(alias = "ENOSPC")]
    NoSpace,
    /// I/O error inside xenstored.
    #[doc(alias = "EIO")]
    Io,
    /// Directory not empty.
    #[doc(alias = "ENOTEMPTY")]
    NotEmpty,
    /// The request type is not implemented by this xenstored.
    #[doc(alias = "ENOSYS")]
    NotImplemented,
    /// Read-only (e.g. writing through a read-only socket).
    #[doc(alias = "EROFS")]
    ReadOnly,
    /// Busy; try again later.
    #[doc(alias = "EBUSY")]
    Busy,
    /// A transaction conflicted with another write: retry the whole transaction.
    #[doc(alias = "EAGAIN")]
    Again,
    /// Already connected (e.g. `INTRODUCE` of an introduced domain).
    #[doc(alias = "EISCONN")]
    AlreadyConnected,
    /// Argument list or reply too long (a reply would exceed `XENSTORE_PAYLOAD_MAX`).
    #[doc(alias = "E2BIG")]
    TooBig,
    /// Operation not permitted.
    #[doc(alias = "EPERM")]
    NotPermitted,
    /// A name not in this crate's copy of `xsd_errors[]`, as sent (truncated to
    /// [`ERR_NAME_MAX`] bytes).
    Unknown(ErrName),
}

/// `xsd_errors[]`: wire name, variant, and the Linux errno number.
const TABLE: [(&str, XsError, i32); 16] = [
    ("EINVAL", XsError::Invalid, 22),
    ("EACCES", XsError::AccessDenied, 13),
    ("EEXIST", XsError::Exists, 17),
    ("EISDIR", XsError::IsDirectory, 21),
    ("ENOENT", XsError::NotFound, 2),
    ("ENOMEM", XsError::OutOfMemory, 12),
    ("ENOSPC", XsError::NoSpace, 28),
    ("EIO", XsError::Io, 5),
    ("ENOTEMPTY", XsError::NotEmpty, 39),
    ("ENOSYS", XsError::NotImplemented, 38),
    ("EROFS", XsError::ReadOnly, 30),
    ("EBUSY", XsError::Busy, 16),
    ("EAGAIN", XsError::Again, 11),
    ("EISCONN", XsError::AlreadyConnected, 106),
    ("E2BIG", XsError::TooBig, 7),
    ("EPERM", XsError::NotPermitted, 1),
];

impl XsError {
    /// Maps an error name as sent on the wire (without its NUL).
    pub fn from_name(name: &str) -> XsError {
        if let Some((_, err, _)) = TABLE.iter().find(|(n, _, _)| *n == name) {
            return err.clone();
        }
        let mut kept = ErrName::new();
        for c in name.chars() {
            if kept.push(c).is_err() {
                break;
            }
        }
        XsError::Unknown(kept)
    }

    /// The wire name, e.g. `"ENOENT"`.
    pub fn name(&self) -> &str {
        match self {
            XsError::Unknown(name) => name.as_str(),
            known => TABLE.iter().find(|(_, e, _)| e == known).map_or("", |(n, _, _)| n),
        }
    }

    /// The Linux errno value of a known name, for tools that report errno numbers.
    pub fn linux_errno(&self) -> Option<i32> {
        TABLE.iter().find(|(_, e, _)| e == self).map(|(_, _, errno)| *errno)
    }

    /// `true` for `EAGAIN`: the transaction must be retried from the start.
    pub fn is_retry(&self) -> bool {
        *self == XsError::Again
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            XsError::Invalid => "invalid argument",
            XsError::AccessDenied => "permission denied",
            XsError::Exists => "already exists",
            XsError::IsDirectory => "is a directory",
            XsError::NotFound => "no such node",
            XsError::OutOfMemory => "out of memory or memory quota",
            XsError::NoSpace => "quota exhausted",
            XsError::Io => "I/O error",
            XsError::NotEmpty => "not empty",
            XsError::NotImplemented => "request not implemented by xenstored",
            XsError::ReadOnly => "read-only connection",
            XsError::Busy => "busy",
            XsError::Again => "transaction conflict, retry",
            XsError::AlreadyConnected => "already connected",
            XsError::TooBig => "too big for one message",
            XsError::NotPermitted => "not permitted",
            XsError::Unknown(_) => "unknown error",
        };
        write!(f, "xenstored: {} ({what})", self.name())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for XsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_of_xsd_errors_maps_to_its_variant_and_back() {
        for (name, err, _) in TABLE.iter() {
            assert_eq!(XsError::from_name(name), *err);
            assert_eq!(err.name(), *name);
        }
    }

    #[test]
    fn unknown_error_name_is_kept_and_truncated() {
        let e = XsError::from_name("ENOTSUP");
        assert_eq!(e.name(), "ENOTSUP");
        assert_eq!(e.linux_errno(), None);
        let long = "E".repeat(40);
        assert_eq!(XsError::from_name(&long).name().len(), ERR_NAME_MAX);
    }

    #[test]
    fn eagain_is_the_only_retry() {
        assert!(XsError::Again.is_retry());
        assert!(!XsError::Busy.is_retry());
        assert_eq!(XsError::Again.linux_errno(), Some(11));
    }
}
