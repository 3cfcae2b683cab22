//! # mgmt-http — the HTTP/1.1 of gpu-dom's management endpoint
//!
//! Just enough HTTP/1.1 (RFC 9112) for a read-only endpoint that answers one
//! request per connection and closes it: a strict parser for the request
//! head ([`parse`]), the routing of the endpoint's two resources
//! ([`route`]), and response heads ([`write_head`]).
//!
//! # Invariants
//! - The parser reads at most [`MAX_HEAD`] bytes and never allocates; any
//!   input gives `Ok(None)` (need more), a [`Request`], or an [`HttpError`]
//!   with the status to answer. It never panics (fuzzed: `fuzz/fuzz_targets/http_request.rs`).
//! - Only `GET` and `HEAD` are served; a request with a body is refused,
//!   so no request can carry data into gpu-dom beyond its head.
//! - Every response closes the connection (`Connection: close`).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

/// The longest request head accepted (request line + headers + CRLF CRLF).
pub const MAX_HEAD: usize = 2048;
/// The most header fields accepted.
pub const MAX_HEADERS: usize = 32;

/// A request method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Any other syntactically valid method (answered 405 or 404).
    Other,
}

/// The HTTP version of the request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A parsed request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The target's path (origin-form, before any `?`).
    pub path: &'a str,
    pub version: Version,
    /// Bytes of the head, terminator included.
    pub head_len: usize,
}

/// Why a request is refused, with the status it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// 400: malformed request line, header field, line ending, or framing.
    BadRequest(&'static str),
    /// 431: the head is longer than [`MAX_HEAD`] or has too many fields.
    HeadTooLarge,
    /// 505: a well-formed version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl HttpError {
    /// The status code to answer with.
    pub fn status(self) -> Status {
        match self {
            HttpError::BadRequest(_) => Status::BadRequest,
            HttpError::HeadTooLarge => Status::HeadTooLarge,
            HttpError::VersionNotSupported => Status::VersionNotSupported,
        }
    }
}

/// The statuses the endpoint answers with. (A client too slow to send its
/// head gets no answer: its connection is reset at the deadline.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeadTooLarge,
    Unavailable,
    VersionNotSupported,
}

impl Status {
    /// Every status, in code order.
    pub const ALL: [Status; 7] = [
        Status::Ok,
        Status::BadRequest,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::HeadTooLarge,
        Status::Unavailable,
        Status::VersionNotSupported,
    ];

    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::HeadTooLarge => 431,
            Status::Unavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::HeadTooLarge => "Request Header Fields Too Large",
            Status::Unavailable => "Service Unavailable",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Field value bytes: visible ASCII, space, tab, obs-text.
fn is_field_value(b: u8) -> bool {
    b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// The end of the head (index just past CRLF CRLF), if present.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn bad(why: &'static str) -> HttpError {
    HttpError::BadRequest(why)
}

/// Parses a request head from the start of `buf` (what a client sent so far).
///
/// `Ok(None)`: incomplete, read more. A bare LF, a NUL or any other byte
/// that cannot appear is an error as soon as it is seen, so a client cannot
/// keep the connection by sending garbage slowly.
pub fn parse(buf: &[u8]) -> Result<Option<Request<'_>>, HttpError> {
    let limit = buf.len().min(MAX_HEAD);
    let end = head_end(&buf[..limit]);
    let scan = end.unwrap_or(limit);
    for (i, &b) in buf[..scan].iter().enumerate() {
        let lf_ok = b != b'\n' || (i > 0 && buf[i - 1] == b'\r');
        let cr_ok = b != b'\r' || buf.get(i + 1).map_or(true, |&n| n == b'\n');
        if !lf_ok || !cr_ok {
            return Err(bad("a bare CR or LF"));
        }
        if b != b'\r' && b != b'\n' && !is_field_value(b) {
            return Err(bad("a control character"));
        }
    }
    let Some(end) = end else {
        return if buf.len() >= MAX_HEAD { Err(HttpError::HeadTooLarge) } else { Ok(None) };
    };
    let head = &buf[..end - 4];
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().ok_or(bad("no request line"))?;
    let (method, path, version) = request_line(line)?;
    let mut hosts = 0;
    let mut fields = 0;
    for l in lines {
        fields += 1;
        if fields > MAX_HEADERS {
            return Err(HttpError::HeadTooLarge);
        }
        let (name, value) = field(l)?;
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if value != b"0" {
                return Err(bad("a request body"));
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(bad("a request body"));
        }
    }
    if hosts > 1 || (version == Version::Http11 && hosts == 0) {
        return Err(bad("not exactly one Host field"));
    }
    Ok(Some(Request { method, path, version, head_len: end }))
}

/// `method SP request-target SP HTTP-version`.
fn request_line(line: &[u8]) -> Result<(Method, &str, Version), HttpError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(m), Some(target), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("a request line that is not three words"));
    };
    if m.is_empty() || !m.iter().all(|&b| is_tchar(b)) {
        return Err(bad("a method that is not a token"));
    }
    let method = match m {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    if target.first() != Some(&b'/') || !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(bad("a target that is not an absolute path"));
    }
    let version = match v {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', d1, b'.', d2]
            if d1.is_ascii_digit() && d2.is_ascii_digit() =>
        {
            return Err(HttpError::VersionNotSupported)
        }
        _ => return Err(bad("not an HTTP version")),
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    // Visible ASCII only (checked above): always UTF-8.
    let path = core::str::from_utf8(path).map_err(|_| bad("a target that is not ASCII"))?;
    Ok((method, path, version))
}

/// `field-name ":" OWS field-value OWS`; no obs-fold, no space before ':'.
fn field(line: &[u8]) -> Result<(&[u8], &[u8]), HttpError> {
    let colon = line.iter().position(|&b| b == b':').ok_or(bad("a field without ':'"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad("a field name that is not a token (or obs-fold)"));
    }
    let value = value.trim_ascii();
    Ok((name, value))
}

/// The endpoint's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `/metrics`: the Prometheus text exposition.
    Metrics,
    /// `/healthz`: 200 while gpu-dom serves guests, 503 otherwise.
    Health,
}

/// What to answer to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Serve this resource (`head_only` for `HEAD`).
    Serve { resource: Resource, head_only: bool },
    /// An error status (404, 405) with a short body.
    Error(Status),
}

/// Routes a parsed request: `GET`/`HEAD` of `/metrics` or `/healthz`;
/// another method on them is 405, any other path 404.
pub fn route(req: &Request<'_>) -> Route {
    let resource = match req.path {
        "/metrics" => Resource::Metrics,
        "/healthz" => Resource::Health,
        _ => return Route::Error(Status::NotFound),
    };
    match req.method {
        Method::Get => Route::Serve { resource, head_only: false },
        Method::Head => Route::Serve { resource, head_only: true },
        Method::Other => Route::Error(Status::MethodNotAllowed),
    }
}

/// `Content-Type` of `/metrics` (text exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of everything else.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A byte sink of fixed capacity (a response buffer allocated at init).
pub struct Sink<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> Sink<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Sink { buf, len: 0, overflow: false }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// True if something did not fit (what was written is incomplete).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    pub fn push(&mut self, data: &[u8]) {
        match self.buf.get_mut(self.len..self.len + data.len()) {
            Some(dst) => {
                dst.copy_from_slice(data);
                self.len += data.len();
            }
            None => self.overflow = true,
        }
    }
}

impl core::fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes());
        if self.overflow {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// Writes a response head: status line, `Content-Type`, `Content-Length`,
/// `Connection: close`, `Cache-Control: no-store`, and for 405 `Allow`.
pub fn write_head(out: &mut Sink<'_>, status: Status, content_type: &str, content_length: usize) {
    use core::fmt::Write as _;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {content_length}\r\n\
         Connection: close\r\nCache-Control: no-store\r\n",
        status.code(),
        status.reason()
    );
    if status == Status::MethodNotAllowed {
        out.push(b"Allow: GET, HEAD\r\n");
    }
    out.push(b"\r\n");
}

#[cfg(test)]
mod tests;
