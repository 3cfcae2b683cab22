//! dom0 transports (feature `std`): the xenstored Unix socket and `/dev/xen/xenbus`.
//!
//! Both carry the same byte stream of whole messages as the ring: the socket
//! is served by xenstored itself, the character device by the Linux kernel's
//! xenbus driver (which forwards to xenstored over its own ring; writes may be
//! split, reads return at most what is queued). [`Client::open_default`] tries,
//! in order: `$XENSTORED_PATH` if set (as libxenstore does), the sockets
//! `/run/xenstored/socket` and `/var/run/xenstored/socket`, then the device.

use crate::client::Client;
use crate::transport::Transport;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// The xenstored socket of current Xen tools.
pub const SOCKET_PATH: &str = "/run/xenstored/socket";
/// The socket path of older installations.
pub const OLD_SOCKET_PATH: &str = "/var/run/xenstored/socket";
/// The Linux xenbus character device.
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";
/// Environment variable naming another socket or device (libxenstore's).
pub const ENV_XENSTORED_PATH: &str = "XENSTORED_PATH";

/// How to reach xenstored at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// A Unix stream socket served by xenstored.
    Socket,
    /// A character device (`/dev/xen/xenbus`) read and written with messages.
    Device,
}

/// A place where xenstored may be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Socket or device.
    pub kind: EndpointKind,
    /// Its path.
    pub path: PathBuf,
}

impl Endpoint {
    /// A Unix socket at `path`.
    pub fn socket(path: impl Into<PathBuf>) -> Endpoint {
        Endpoint { kind: EndpointKind::Socket, path: path.into() }
    }

    /// A character device at `path`.
    pub fn device(path: impl Into<PathBuf>) -> Endpoint {
        Endpoint { kind: EndpointKind::Device, path: path.into() }
    }

    /// The endpoints [`Client::open_default`] tries, in order.
    pub fn defaults() -> Vec<Endpoint> {
        let mut list = Vec::new();
        if let Some(custom) = std::env::var_os(ENV_XENSTORED_PATH) {
            let path = PathBuf::from(custom);
            list.push(if path.starts_with("/dev") {
                Endpoint::device(path)
            } else {
                Endpoint::socket(path)
            });
        }
        list.push(Endpoint::socket(SOCKET_PATH));
        list.push(Endpoint::socket(OLD_SOCKET_PATH));
        list.push(Endpoint::device(XENBUS_DEVICE));
        list
    }

    /// Opens this endpoint as a blocking transport.
    pub fn connect(&self) -> io::Result<StdTransport> {
        Ok(StdTransport { stream: Stream::open(self)? })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EndpointKind::Socket => "socket",
            EndpointKind::Device => "device",
        };
        write!(f, "{kind} {}", self.path.display())
    }
}

#[derive(Debug)]
enum Io {
    Socket(UnixStream),
    Device(File),
}

/// An open connection to xenstored, the socket or the device, and where it
/// leads: the byte stream every std transport reads and writes (the
/// blocking [`StdTransport`] here, the Linux frontend's non-blocking one).
/// Reading the end of the stream is an error that names the endpoint.
#[derive(Debug)]
pub struct Stream {
    io: Io,
    endpoint: Endpoint,
}

impl Stream {
    /// Opens `endpoint` (blocking; see [`AsRawFd`] to change that).
    pub fn open(endpoint: &Endpoint) -> io::Result<Stream> {
        let io = match endpoint.kind {
            EndpointKind::Socket => Io::Socket(UnixStream::connect(&endpoint.path)?),
            EndpointKind::Device => {
                Io::Device(OpenOptions::new().read(true).write(true).open(&endpoint.path)?)
            }
        };
        Ok(Stream { io, endpoint: endpoint.clone() })
    }

    /// Opens the first of `endpoints` that opens; says why each failed if none does.
    pub fn open_first(endpoints: &[Endpoint]) -> Result<Stream, OpenError> {
        let mut tried = Vec::new();
        for endpoint in endpoints {
            match Stream::open(endpoint) {
                Ok(stream) => {
                    log::debug!("xenbus: connected to xenstored via {endpoint}");
                    return Ok(stream);
                }
                Err(err) => tried.push((endpoint.clone(), err)),
            }
        }
        Err(OpenError { tried })
    }

    /// A stream over an already connected socket (e.g. a test's socket pair).
    pub fn from_socket(socket: UnixStream, endpoint: Endpoint) -> Stream {
        Stream { io: Io::Socket(socket), endpoint }
    }

    /// Where this stream is connected.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Bounds each blocking read to `timeout` (`None`: wait indefinitely);
    /// a read that times out fails with `WouldBlock` or `TimedOut`. Only the
    /// socket supports it; the device answers `Unsupported`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.io {
            Io::Socket(s) => s.set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1)))),
            Io::Device(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("read timeouts are not supported on {}", self.endpoint),
            )),
        }
    }

    fn io(&mut self) -> &mut dyn ReadWrite {
        match &mut self.io {
            Io::Socket(s) => s,
            Io::Device(f) => f,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<S: Read + Write> ReadWrite for S {}

impl Read for Stream {
    /// Reads what is there, retrying an interrupted read; the end of the
    /// stream (xenstored went away) is `UnexpectedEof`, naming the endpoint.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.io().read(buf) {
                Ok(0) if !buf.is_empty() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("xenstored closed the connection ({})", self.endpoint),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.io().write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.io().flush()
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match &self.io {
            Io::Socket(s) => s.as_raw_fd(),
            Io::Device(f) => f.as_raw_fd(),
        }
    }
}

/// A [`Transport`] over the xenstored socket or the xenbus device. Blocking:
/// `recv` waits for data and reports end of stream as an error.
#[derive(Debug)]
pub struct StdTransport {
    stream: Stream,
}

impl StdTransport {
    /// A transport over an already connected socket (e.g. a test's socket pair).
    pub fn from_socket(socket: UnixStream, endpoint: Endpoint) -> StdTransport {
        StdTransport { stream: Stream::from_socket(socket, endpoint) }
    }

    /// Where this transport is connected.
    pub fn endpoint(&self) -> &Endpoint {
        self.stream.endpoint()
    }

    /// Bounds each blocking `recv` to `timeout` (`None`: wait indefinitely).
    /// A `recv` that times out fails with `WouldBlock` or `TimedOut`, the
    /// client returns that as [`crate::ClientError::Transport`] and stays usable.
    /// Only the socket supports it; the device answers `Unsupported` (callers
    /// then poll instead of blocking).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }
}

impl Transport for StdTransport {
    type Error = io::Error;

    fn send(&mut self, data: &[u8]) -> io::Result<usize> {
        self.stream.write_all(data)?;
        Ok(data.len())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

/// No endpoint could be opened; says which were tried and why each failed.
#[derive(Debug)]
pub struct OpenError {
    /// Each endpoint tried, with its error, in order.
    pub tried: Vec<(Endpoint, io::Error)>,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cannot reach xenstored; tried:")?;
        for (endpoint, err) in &self.tried {
            writeln!(f, "  {endpoint}: {err}")?;
        }
        write!(
            f,
            "Run this in dom0 (or a domain with {XENBUS_DEVICE}) with xenstored running, \
             as root; or set {ENV_XENSTORED_PATH} to the socket to use."
        )
    }
}

impl std::error::Error for OpenError {}

impl<const EVENTS: usize> Client<StdTransport, EVENTS> {
    /// Connects to xenstored through the first of [`Endpoint::defaults`] that opens.
    pub fn open_default() -> Result<Self, OpenError> {
        Self::open(&Endpoint::defaults())
    }

    /// Connects through the first of `endpoints` that opens.
    pub fn open(endpoints: &[Endpoint]) -> Result<Self, OpenError> {
        Ok(Client::new(StdTransport { stream: Stream::open_first(endpoints)? }))
    }
}

/// A transport whose blocking reads can be bounded (so a dom0 tool never
/// hangs on xenstored).
pub trait Bounded: Transport {
    /// Bounds every later blocking read to `timeout` (`None`: unbounded).
    /// Returns `false` if this transport cannot (then callers poll).
    fn set_timeout(&mut self, timeout: Option<Duration>) -> bool;
    /// Whether `err` is a read that timed out.
    fn is_timeout(err: &Self::Error) -> bool;
    /// `err` for a person.
    fn describe(err: &Self::Error) -> String;
}

impl Bounded for StdTransport {
    fn set_timeout(&mut self, timeout: Option<Duration>) -> bool {
        self.set_read_timeout(timeout).is_ok()
    }
    fn is_timeout(err: &io::Error) -> bool {
        matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
    }
    fn describe(err: &io::Error) -> String {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Header, MsgType, HEADER_LEN};
    use crate::{Framer, TxId};
    use std::os::unix::net::UnixListener;

    fn temp_socket(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xenbus-{}-{name}.sock", std::process::id()))
    }

    #[test]
    fn open_names_every_endpoint_it_tried() {
        let a = temp_socket("absent-a");
        let b = PathBuf::from("/nonexistent/xenbus-test-device");
        let err = match Client::<StdTransport>::open(&[Endpoint::socket(&a), Endpoint::device(&b)])
        {
            Err(e) => e,
            Ok(_) => panic!("nothing listens there"),
        };
        assert_eq!(err.tried.len(), 2);
        let text = err.to_string();
        assert!(text.contains(&format!("socket {}", a.display())), "{text}");
        assert!(text.contains(&format!("device {}", b.display())), "{text}");
        assert!(text.contains(ENV_XENSTORED_PATH), "{text}");
    }

    #[test]
    fn default_endpoints_try_both_sockets_then_the_device() {
        let list = Endpoint::defaults();
        let tail: Vec<String> = list[list.len() - 3..].iter().map(|e| e.to_string()).collect();
        assert_eq!(
            tail,
            [
                "socket /run/xenstored/socket",
                "socket /var/run/xenstored/socket",
                "device /dev/xen/xenbus"
            ]
        );
    }

    #[test]
    fn socket_read_timeout_bounds_a_silent_xenstored() {
        let path = temp_socket("silent");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let mut xs = Client::<StdTransport>::open(&[Endpoint::socket(&path)]).unwrap();
        let (_conn, _) = listener.accept().unwrap();
        xs.transport_mut().set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let err = xs.read(TxId::NONE, "/x").unwrap_err();
        assert!(
            matches!(err, crate::ClientError::Transport(ref e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
            "{err:?}"
        );
        let _ = std::fs::remove_file(&path);
    }

    /// A one-request xenstored on a real Unix socket: answers READ with a value.
    #[test]
    fn client_reads_through_the_unix_socket() {
        let path = temp_socket("read");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut framer = Framer::new();
            let mut chunk = [0u8; 64];
            let (req_id, path) = loop {
                let n = conn.read(&mut chunk).unwrap();
                let mut input = &chunk[..n];
                if let Some(m) = framer.feed(&mut input).unwrap() {
                    assert_eq!(m.msg_type(), Ok(MsgType::Read));
                    break (m.req_id(), m.payload().to_vec());
                }
            };
            assert_eq!(path, b"/local/domain/0/name\0");
            let value = b"Domain-0";
            let mut out = vec![0u8; HEADER_LEN + value.len()];
            Header { msg_type: MsgType::Read, req_id, tx_id: 0, payload_len: value.len() }
                .emit(&mut out)
                .unwrap()
                .payload_mut()
                .copy_from_slice(value);
            conn.write_all(&out).unwrap();
        });
        let mut xs = Client::<StdTransport>::open(&[Endpoint::socket(&path)]).unwrap();
        assert_eq!(xs.transport().endpoint(), &Endpoint::socket(&path));
        assert_eq!(xs.read(TxId::NONE, "/local/domain/0/name").unwrap(), b"Domain-0");
        server.join().unwrap();
        let err = xs.read(TxId::NONE, "/x").unwrap_err();
        assert!(
            matches!(err, crate::ClientError::Transport(ref e) if e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::BrokenPipe),
            "{err:?}"
        );
        let _ = std::fs::remove_file(&path);
    }
}
