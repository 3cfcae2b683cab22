//! Xenstore paths: validation before sending, and a fixed-size builder.
//!
//! Rules from `docs/misc/xenstore.txt`: paths are `/`-separated; an absolute
//! path starts with `/`, a relative one is taken relative to
//! `/local/domain/<domid>` (domains only). Characters are ASCII alphanumerics
//! and `-/_@`; doubled slashes and trailing slashes (except the root `/`) are
//! forbidden, and so is the empty path. Absolute paths are at most
//! `XENSTORE_ABS_PATH_MAX` (3072) bytes, relative ones at most
//! `XENSTORE_REL_PATH_MAX` (2048). Watch paths may also be the special
//! `@introduceDomain` and `@releaseDomain` (optionally `@releaseDomain/<domid>`).
//!
//! Checking on our side turns what would be an `EINVAL` round trip (or, for an
//! overlong message, a killed connection) into a typed error that names the
//! offending byte.

use crate::{XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX};
use core::fmt;

/// Why a path was refused before being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The empty path.
    Empty,
    /// Longer than `XENSTORE_ABS_PATH_MAX` (absolute) or `XENSTORE_REL_PATH_MAX` (relative).
    TooLong {
        /// The path's length.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// A byte outside `[A-Za-z0-9-/_@]`.
    BadChar {
        /// The byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// `//` at this offset.
    DoubleSlash {
        /// Offset of the second slash.
        at: usize,
    },
    /// A trailing `/` (only the root may end in one).
    TrailingSlash,
    /// A path component given to [`XsPathBuf::push`] was empty or held a `/`.
    BadComponent,
    /// The path does not fit the builder's fixed capacity.
    Capacity {
        /// The builder's capacity.
        cap: usize,
    },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PathError::Empty => write!(f, "empty xenstore path"),
            PathError::TooLong { len, max } => {
                write!(f, "xenstore path of {len} bytes exceeds {max}")
            }
            PathError::BadChar { byte, at } => write!(
                f,
                "byte {byte:#04x} at offset {at} is not allowed in a xenstore path ([A-Za-z0-9-/_@])"
            ),
            PathError::DoubleSlash { at } => write!(f, "doubled slash at offset {at}"),
            PathError::TrailingSlash => write!(f, "trailing slash in xenstore path"),
            PathError::BadComponent => write!(f, "empty path component or component with '/'"),
            PathError::Capacity { cap } => write!(f, "path longer than the {cap}-byte buffer"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PathError {}

fn allowed(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'/' | b'_' | b'@')
}

/// Checks a path for `READ`, `WRITE`, `WATCH` and the other path requests.
pub fn check_path(path: &str) -> Result<(), PathError> {
    let bytes = path.as_bytes();
    if bytes.is_empty() {
        return Err(PathError::Empty);
    }
    let max = if bytes[0] == b'/' { XENSTORE_ABS_PATH_MAX } else { XENSTORE_REL_PATH_MAX };
    if bytes.len() > max {
        return Err(PathError::TooLong { len: bytes.len(), max });
    }
    for (at, &byte) in bytes.iter().enumerate() {
        if !allowed(byte) {
            return Err(PathError::BadChar { byte, at });
        }
        if byte == b'/' && at > 0 && bytes[at - 1] == b'/' {
            return Err(PathError::DoubleSlash { at });
        }
    }
    if bytes.len() > 1 && bytes[bytes.len() - 1] == b'/' {
        return Err(PathError::TrailingSlash);
    }
    Ok(())
}

/// Whether `path` is absolute.
pub fn is_absolute(path: &str) -> bool {
    path.starts_with('/')
}

/// Capacity of [`XsPathBuf`]: enough for every device and backend path of the
/// conventions in `docs/misc/xenstore-paths.pandoc`, small enough for the stack.
pub const PATH_BUF_CAP: usize = 256;

/// A path built in a fixed buffer, one validated component at a time.
///
/// ```
/// use xenbus::XsPathBuf;
/// let mut p = XsPathBuf::absolute();
/// p.push("local")?.push("domain")?.push_u32(5)?;
/// assert_eq!(p.as_str(), "/local/domain/5");
/// # Ok::<(), xenbus::PathError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct XsPathBuf {
    buf: heapless::String<PATH_BUF_CAP>,
}

impl XsPathBuf {
    /// The root `/`, to which components are appended.
    pub fn absolute() -> XsPathBuf {
        let mut buf = heapless::String::new();
        let _ = buf.push('/');
        XsPathBuf { buf }
    }

    /// An empty relative path (relative to `/local/domain/<own domid>`).
    pub fn relative() -> XsPathBuf {
        XsPathBuf { buf: heapless::String::new() }
    }

    /// Starts from an existing path, after [`check_path`].
    pub fn from_path(path: &str) -> Result<XsPathBuf, PathError> {
        check_path(path)?;
        let mut buf = heapless::String::new();
        buf.push_str(path).map_err(|_| PathError::Capacity { cap: PATH_BUF_CAP })?;
        Ok(XsPathBuf { buf })
    }

    /// Appends `/component` (no slash for the first component of a relative
    /// path or after the root). The component must be non-empty, hold no `/`,
    /// and use the path charset.
    pub fn push(&mut self, component: &str) -> Result<&mut XsPathBuf, PathError> {
        if component.is_empty() || component.contains('/') {
            return Err(PathError::BadComponent);
        }
        if let Some(at) = component.bytes().position(|b| !allowed(b)) {
            let byte = component.as_bytes()[at];
            return Err(PathError::BadChar { byte, at: self.buf.len() + 1 + at });
        }
        let before = self.buf.len();
        let needs_slash = !self.buf.is_empty() && !self.buf.ends_with('/');
        let res = if needs_slash { self.buf.push('/').map_err(|_| ()) } else { Ok(()) }
            .and_then(|()| self.buf.push_str(component).map_err(|_| ()));
        if res.is_err() {
            self.buf.truncate(before);
            return Err(PathError::Capacity { cap: PATH_BUF_CAP });
        }
        Ok(self)
    }

    /// Appends a decimal component (domid, device id).
    pub fn push_u32(&mut self, value: u32) -> Result<&mut XsPathBuf, PathError> {
        let mut digits = heapless::String::<10>::new();
        let _ = fmt::write(&mut digits, format_args!("{value}"));
        self.push(&digits)
    }

    /// A copy with `component` appended, e.g. `dir.join("state")`.
    pub fn join(&self, component: &str) -> Result<XsPathBuf, PathError> {
        let mut p = self.clone();
        p.push(component)?;
        Ok(p)
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.buf
    }
}

impl core::ops::Deref for XsPathBuf {
    type Target = str;
    fn deref(&self) -> &str {
        &self.buf
    }
}

impl AsRef<str> for XsPathBuf {
    fn as_ref(&self) -> &str {
        &self.buf
    }
}

impl fmt::Debug for XsPathBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for XsPathBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths_pass() {
        for p in [
            "/",
            "/local/domain/0/name",
            "device/vgpu/0/state",
            "@releaseDomain",
            "@introduceDomain",
            "/a-b_c@d",
        ] {
            assert_eq!(check_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn invalid_paths_are_refused_with_the_offending_position() {
        assert_eq!(check_path(""), Err(PathError::Empty));
        assert_eq!(check_path("/a//b"), Err(PathError::DoubleSlash { at: 3 }));
        assert_eq!(check_path("/a/"), Err(PathError::TrailingSlash));
        assert_eq!(check_path("/a b"), Err(PathError::BadChar { byte: b' ', at: 2 }));
        assert_eq!(check_path("/a\0b"), Err(PathError::BadChar { byte: 0, at: 2 }));
        assert_eq!(check_path("/a.b"), Err(PathError::BadChar { byte: b'.', at: 2 }));
    }

    #[test]
    fn absolute_and_relative_length_limits_follow_xs_wire_h() {
        let abs = format!("/{}", "a".repeat(XENSTORE_ABS_PATH_MAX - 1));
        assert_eq!(check_path(&abs), Ok(()));
        let abs_long = format!("{abs}a");
        assert_eq!(check_path(&abs_long), Err(PathError::TooLong { len: 3073, max: 3072 }));
        let rel = "a".repeat(XENSTORE_REL_PATH_MAX);
        assert_eq!(check_path(&rel), Ok(()));
        let rel_long = format!("{rel}a");
        assert_eq!(check_path(&rel_long), Err(PathError::TooLong { len: 2049, max: 2048 }));
    }

    #[test]
    fn path_builder_joins_components_and_refuses_slashes() {
        let mut p = XsPathBuf::relative();
        p.push("device").unwrap().push("vgpu").unwrap().push_u32(0).unwrap();
        assert_eq!(p.as_str(), "device/vgpu/0");
        assert_eq!(p.join("state").unwrap().as_str(), "device/vgpu/0/state");
        assert_eq!(p.push("a/b").err(), Some(PathError::BadComponent));
        assert_eq!(p.push("").err(), Some(PathError::BadComponent));
        assert_eq!(check_path(&p), Ok(()));
    }

    #[test]
    fn path_builder_overflow_leaves_path_unchanged() {
        let mut p = XsPathBuf::absolute();
        let big = "x".repeat(PATH_BUF_CAP);
        assert_eq!(p.push(&big).err(), Some(PathError::Capacity { cap: PATH_BUF_CAP }));
        assert_eq!(p.as_str(), "/");
    }
}
