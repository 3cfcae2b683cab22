//! What the frontend needs from the system it runs on.
//!
//! Three platforms implement [`Platform`]: the test guest (a PVH unikernel:
//! its own grant table, `EVTCHNOP_alloc_unbound`, `SCHEDOP_poll`), Linux user
//! space (feature `std`: `/dev/xen/gntalloc`, `/dev/xen/evtchn`), and the host
//! tests (the platform model, with the real backend stepped whenever the
//! frontend waits). Xenstore is not part of it: the frontend talks to it
//! through a [`xenbus::Client`] over any [`xenbus::Transport`].
//!
//! Pages are allocated and granted in one step ([`Platform::grant_page`]),
//! because that is what `gntalloc` offers, and they are given back in one step
//! ([`Platform::end_access`]), which fails while the grantee still maps the
//! page (`gnttab_end_foreign_access`); the page then stays allocated.
//!
//! When the backend domain dies, Xen releases its mappings of our grants;
//! the frontend then ends each grant but keeps the page and its contents
//! ([`Platform::end_grant`]), and grants the same page to the new backend
//! ([`Platform::regrant`]): the page keeps its [`PageId`], its grant
//! reference may change.

use core::fmt;

/// A Xen domain id.
pub type DomId = u16;
/// An event channel port.
pub type Port = u32;

/// The platform's name for one of its granted pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageId(pub usize);

/// A page allocated by the platform and granted to a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    /// The platform's handle.
    pub id: PageId,
    /// The grant reference the backend maps.
    pub gref: u32,
    /// Granted read-only.
    pub read_only: bool,
}

/// Why a grant could not be ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndAccessError {
    /// The grantee still has the page mapped; the page stays allocated and
    /// granted (freeing it would hand memory the backend can reach to
    /// someone else).
    StillMapped { gref: u32 },
    /// Not a page of this platform (already ended, or never granted).
    UnknownPage(PageId),
}

impl fmt::Display for EndAccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndAccessError::StillMapped { gref } => {
                write!(f, "grant {gref} is still mapped by the backend")
            }
            EndAccessError::UnknownPage(id) => write!(f, "page {} is not granted", id.0),
        }
    }
}

/// Pages, grants, event channels, time and sleeping.
///
/// Page offsets and lengths passed by the frontend always lie inside the
/// 4096-byte page. Page reads and writes of the ring are concurrent with the
/// backend, so implementations use volatile (or otherwise non-elided)
/// accesses.
pub trait Platform {
    /// What can go wrong in the platform (a hypercall, an ioctl).
    type Error: fmt::Debug + fmt::Display;

    /// Allocates a zeroed page and grants it to `to` (read-only if asked).
    fn grant_page(&mut self, to: DomId, read_only: bool) -> Result<Granted, Self::Error>;

    /// Ends the grant of `page` and frees it; fails, keeping the page, while
    /// the grantee still maps it.
    fn end_access(&mut self, page: PageId) -> Result<(), EndAccessError>;

    /// Ends the grant of `page` but keeps the page and its contents (to
    /// grant it again to another backend with [`Platform::regrant`]);
    /// fails, keeping the grant, while the grantee still maps it. A page
    /// whose grant ended is freed by [`Platform::end_access`].
    fn end_grant(&mut self, page: PageId) -> Result<(), EndAccessError>;

    /// Grants `page`, whose grant [`Platform::end_grant`] ended, to `to`
    /// (read-only if asked). The page keeps its id and its contents; the
    /// returned grant reference may differ from the old one.
    fn regrant(&mut self, page: PageId, to: DomId, read_only: bool)
        -> Result<Granted, Self::Error>;

    /// Copies bytes out of one of our pages.
    fn read(&self, page: PageId, offset: usize, buf: &mut [u8]);

    /// Copies bytes into one of our pages.
    fn write(&mut self, page: PageId, offset: usize, data: &[u8]);

    /// Reads an aligned `u32` (a ring index) in one access.
    fn read_u32(&self, page: PageId, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(page, offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Writes an aligned `u32` (a ring index) in one access.
    fn write_u32(&mut self, page: PageId, offset: usize, value: u32) {
        self.write(page, offset, &value.to_le_bytes());
    }

    /// A full memory barrier (orders page accesses as `xen_mb`).
    fn fence(&self);

    /// Allocates an event channel port that `remote` may bind.
    fn alloc_unbound(&mut self, remote: DomId) -> Result<Port, Self::Error>;

    /// Notifies the other end of `port`.
    fn notify(&mut self, port: Port) -> Result<(), Self::Error>;

    /// Closes `port`.
    fn close_port(&mut self, port: Port) -> Result<(), Self::Error>;

    /// A monotonic clock, in milliseconds.
    fn now_ms(&mut self) -> u64;

    /// Sleeps until one of our event channels fired, xenstore has something
    /// to read, or the clock reaches `deadline_ms`. May return early
    /// (spuriously); callers re-check what they wait for.
    fn wait(&mut self, deadline_ms: u64) -> Result<(), Self::Error>;
}

/// The shared ring page seen through a [`Platform`] (a `gpuif::SharedPage`).
pub(crate) struct RingPage<'a, P: Platform> {
    pub platform: &'a mut P,
    pub page: PageId,
}

impl<P: Platform> gpuif::SharedPage for RingPage<'_, P> {
    fn read_u32(&self, offset: usize) -> u32 {
        self.platform.read_u32(self.page, offset)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.platform.write_u32(self.page, offset, value);
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.platform.read(self.page, offset, buf);
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.platform.write(self.page, offset, data);
    }
    fn fence(&self) {
        self.platform.fence();
    }
}
