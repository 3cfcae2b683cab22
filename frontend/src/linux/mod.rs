//! The frontend in Linux user space (dom0 or a PV/PVH domU with the Xen
//! devices): pages from `/dev/xen/gntalloc` (allocated and granted in one
//! ioctl, mapped with `mmap`), the event channel from `/dev/xen/evtchn`
//! (`IOCTL_EVTCHN_BIND_UNBOUND_PORT` for the backend, notified by ioctl,
//! waited for with `poll`/`read`), and xenstore over xenstored's socket or
//! `/dev/xen/xenbus`, non-blocking so that one `poll` covers both.
//!
//! Limitation: Linux ends a `gntalloc` grant by itself when the page is
//! deallocated and unmapped, deferring it while the grantee still maps the
//! page; user space cannot see that, so [`Platform::end_access`] never
//! reports `StillMapped` here. For the same reason a `gntalloc` page cannot
//! be granted to another domain: [`Platform::end_grant`] keeps a copy of
//! the page's bytes and gives the page back, and [`Platform::regrant`]
//! allocates a new page for the new backend with those bytes.

mod sys;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use xenbus::std_io::{Endpoint, Stream};
use xenbus::{Client, Transport};

use crate::platform::{EndAccessError, Granted, PageId, Platform, Port};
use crate::{Frontend, Options};

/// The grant-allocation device.
pub const GNTALLOC: &str = "/dev/xen/gntalloc";
/// The event-channel device.
pub const EVTCHN: &str = "/dev/xen/evtchn";
/// Longest wait for xenstored's reply to one request.
const XS_REPLY_TIMEOUT_MS: i32 = 30_000;

/// A system call failed.
#[derive(Debug)]
pub struct SysError {
    /// What was being done.
    pub what: &'static str,
    /// The OS error.
    pub error: io::Error,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.error)
    }
}

impl std::error::Error for SysError {}

fn sys(what: &'static str) -> impl FnOnce(io::Error) -> SysError {
    move |error| SysError { what, error }
}

enum Page {
    /// Allocated and granted by `gntalloc`, mapped here.
    Live { index: u64, map: sys::MappedPage },
    /// Grant ended: the bytes, kept for [`Platform::regrant`].
    Kept(Box<[u8; 4096]>),
}

impl Page {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        match self {
            Page::Live { map, .. } => map.read(offset, buf),
            Page::Kept(bytes) => buf.copy_from_slice(&bytes[offset..offset + buf.len()]),
        }
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        match self {
            Page::Live { map, .. } => map.write(offset, data),
            Page::Kept(bytes) => bytes[offset..offset + data.len()].copy_from_slice(data),
        }
    }
}

/// Pages, grants and event channels through the Xen devices.
pub struct LinuxPlatform {
    gntalloc: File,
    evtchn: File,
    xs_fd: RawFd,
    pages: BTreeMap<usize, Page>,
    next: usize,
    start: Instant,
}

impl LinuxPlatform {
    /// Opens the devices; `xs_fd` is the xenstore connection to poll too.
    pub fn open(xs_fd: RawFd) -> Result<LinuxPlatform, SysError> {
        let rw = |p: &str| OpenOptions::new().read(true).write(true).open(p);
        let gntalloc = rw(GNTALLOC).map_err(sys("open /dev/xen/gntalloc (load xen-gntalloc)"))?;
        let evtchn = rw(EVTCHN).map_err(sys("open /dev/xen/evtchn (load xen-evtchn)"))?;
        sys::set_nonblocking(&evtchn).map_err(sys("evtchn O_NONBLOCK"))?;
        Ok(LinuxPlatform {
            gntalloc,
            evtchn,
            xs_fd,
            pages: BTreeMap::new(),
            next: 0,
            start: Instant::now(),
        })
    }

    fn page(&self, id: PageId) -> &Page {
        self.pages.get(&id.0).expect("the frontend names only pages it was given")
    }

    /// A new `gntalloc` page granted to `to`, mapped.
    fn alloc(&mut self, to: u16, read_only: bool) -> Result<(Page, u32), SysError> {
        let (index, gref) =
            sys::gntalloc_alloc(&self.gntalloc, to, !read_only).map_err(sys("gntalloc alloc"))?;
        match sys::MappedPage::map(&self.gntalloc, index) {
            Ok(map) => Ok((Page::Live { index, map }, gref)),
            Err(e) => {
                let _ = sys::gntalloc_dealloc(&self.gntalloc, index);
                Err(sys("mmap gntalloc page")(e))
            }
        }
    }

    /// Gives a page back to `gntalloc` (the kernel ends the grant).
    fn dealloc(&mut self, page: Page) {
        if let Page::Live { index, map } = page {
            drop(map); // munmap first: the kernel frees the grant when both are done
            if let Err(e) = sys::gntalloc_dealloc(&self.gntalloc, index) {
                log::warn!("gntalloc dealloc of offset {index:#x}: {e}");
            }
        }
    }

    /// Takes fired ports from the evtchn device and unmasks them.
    fn drain_events(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            match self.evtchn.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.evtchn.write_all(&buf[..n - n % 4])?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Platform for LinuxPlatform {
    type Error = SysError;

    fn grant_page(&mut self, to: u16, read_only: bool) -> Result<Granted, SysError> {
        let (page, gref) = self.alloc(to, read_only)?;
        self.next += 1;
        self.pages.insert(self.next, page);
        Ok(Granted { id: PageId(self.next), gref, read_only })
    }

    fn end_access(&mut self, page: PageId) -> Result<(), EndAccessError> {
        let p = self.pages.remove(&page.0).ok_or(EndAccessError::UnknownPage(page))?;
        self.dealloc(p);
        Ok(())
    }

    fn end_grant(&mut self, page: PageId) -> Result<(), EndAccessError> {
        let p = self.pages.get_mut(&page.0).ok_or(EndAccessError::UnknownPage(page))?;
        if let Page::Live { .. } = p {
            let mut bytes = Box::new([0u8; 4096]);
            p.read(0, &mut bytes[..]);
            let live = std::mem::replace(p, Page::Kept(bytes));
            self.dealloc(live);
        }
        Ok(())
    }

    fn regrant(&mut self, page: PageId, to: u16, read_only: bool) -> Result<Granted, SysError> {
        let bytes = match self.pages.get(&page.0) {
            Some(Page::Kept(b)) => b.clone(),
            Some(p @ Page::Live { .. }) => {
                let mut b = Box::new([0u8; 4096]);
                p.read(0, &mut b[..]);
                b
            }
            None => {
                return Err(SysError {
                    what: "grant again",
                    error: io::Error::new(io::ErrorKind::NotFound, "not one of our pages"),
                })
            }
        };
        let (mut new, gref) = self.alloc(to, read_only)?;
        new.write(0, &bytes[..]);
        if let Some(old) = self.pages.insert(page.0, new) {
            self.dealloc(old);
        }
        Ok(Granted { id: page, gref, read_only })
    }

    fn read(&self, page: PageId, offset: usize, buf: &mut [u8]) {
        self.page(page).read(offset, buf);
    }

    fn write(&mut self, page: PageId, offset: usize, data: &[u8]) {
        self.pages.get_mut(&page.0).expect("our page").write(offset, data);
    }

    fn read_u32(&self, page: PageId, offset: usize) -> u32 {
        match self.page(page) {
            Page::Live { map, .. } => map.read_u32(offset),
            p => {
                let mut b = [0u8; 4];
                p.read(offset, &mut b);
                u32::from_le_bytes(b)
            }
        }
    }

    fn write_u32(&mut self, page: PageId, offset: usize, value: u32) {
        match self.pages.get_mut(&page.0).expect("our page") {
            Page::Live { map, .. } => map.write_u32(offset, value),
            p => p.write(offset, &value.to_le_bytes()),
        }
    }

    fn fence(&self) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }

    fn alloc_unbound(&mut self, remote: u16) -> Result<Port, SysError> {
        sys::evtchn_alloc_unbound(&self.evtchn, remote).map_err(sys("evtchn bind unbound port"))
    }

    fn notify(&mut self, port: Port) -> Result<(), SysError> {
        sys::evtchn_notify(&self.evtchn, port).map_err(sys("evtchn notify"))
    }

    fn close_port(&mut self, port: Port) -> Result<(), SysError> {
        sys::evtchn_unbind(&self.evtchn, port).map_err(sys("evtchn unbind"))
    }

    fn now_ms(&mut self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn wait(&mut self, deadline_ms: u64) -> Result<(), SysError> {
        let left = deadline_ms.saturating_sub(self.now_ms()).min(i32::MAX as u64) as i32;
        let fds = [self.evtchn.as_raw_fd(), self.xs_fd];
        sys::poll_readable(&fds, left).map_err(sys("poll"))?;
        self.drain_events().map_err(sys("evtchn read"))
    }
}

/// Xenstore over xenstored's socket or `/dev/xen/xenbus` (the shared
/// [`Stream`] of `xenbus::std_io`), non-blocking: `recv` returns 0 when
/// nothing is there, `wait` polls (bounded).
pub struct XsStream {
    stream: Stream,
}

impl XsStream {
    /// Connects to the first of `endpoints` that opens.
    pub fn connect(endpoints: &[Endpoint]) -> Result<XsStream, SysError> {
        let stream = Stream::open_first(endpoints)
            .map_err(|e| SysError { what: "connect to xenstored", error: io::Error::other(e) })?;
        sys::set_nonblocking(&stream).map_err(sys("xenstore O_NONBLOCK"))?;
        Ok(XsStream { stream })
    }

    /// Where it is connected.
    pub fn endpoint(&self) -> &Endpoint {
        self.stream.endpoint()
    }
}

impl AsRawFd for XsStream {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

impl Transport for XsStream {
    type Error = io::Error;

    fn send(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            match self.stream.write(data) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !sys::poll_writable(self.as_raw_fd(), XS_REPLY_TIMEOUT_MS)? {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("xenstored takes no data ({})", self.endpoint()),
                        ));
                    }
                }
                other => return other,
            }
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The stream retries interrupted reads and calls the end an error.
        match self.stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            other => other,
        }
    }

    fn wait(&mut self) -> io::Result<()> {
        match sys::poll_readable(&[self.as_raw_fd()], XS_REPLY_TIMEOUT_MS)? {
            0 => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no reply from xenstored within {XS_REPLY_TIMEOUT_MS} ms ({})",
                    self.endpoint()
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// A frontend on this Linux system, over the default xenstore endpoints.
pub fn open(opts: Options) -> Result<Frontend<LinuxPlatform, XsStream>, SysError> {
    let xs = XsStream::connect(&Endpoint::defaults())?;
    let platform = LinuxPlatform::open(xs.as_raw_fd())?;
    Ok(Frontend::new(platform, Box::new(Client::new(xs)), opts))
}
