//! The frontend's [`Platform`] in a PVH unikernel: pages from the heap
//! (`unikernel::xen::page::OwnPage`), grants in our own grant table,
//! `EVTCHNOP_alloc_unbound` ports, Xen system time, and the executor's
//! `SCHEDOP_poll` sleep on the xenstore and ring ports.
//!
//! # Invariants
//! - A page is freed only after its grant ended; a page whose grant the
//!   backend still maps stays allocated and granted.
//! - `wait` sleeps on exactly the xenstore port and our ring ports, plus the
//!   one-shot timer for the deadline: no busy loop.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use frontend::{EndAccessError, Granted, PageId, Platform, Port};
use unikernel::xen::gnttab::GrantError;
use unikernel::xen::page::OwnPage;
use unikernel::xen::{events, timer, XenError};
use unikernel::Kernel;

/// What can fail in the guest's platform.
#[derive(Clone, Copy, Debug)]
pub enum GuestError {
    /// A hypercall failed.
    Xen(XenError),
    /// Granting failed.
    Grant(GrantError),
    /// The heap is exhausted.
    NoMemory,
    /// The grant table was not set up.
    NoGrantTable,
    /// More ports than the executor can sleep on.
    TooManyPorts,
    /// Not one of our pages.
    UnknownPage(usize),
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestError::Xen(e) => write!(f, "{e}"),
            GuestError::Grant(e) => write!(f, "grant: {e:?}"),
            GuestError::NoMemory => write!(f, "out of memory (give the guest more)"),
            GuestError::NoGrantTable => write!(f, "no grant table"),
            GuestError::TooManyPorts => write!(f, "too many event channels"),
            GuestError::UnknownPage(id) => write!(f, "page {id} is not ours"),
        }
    }
}

impl From<XenError> for GuestError {
    fn from(e: XenError) -> Self {
        GuestError::Xen(e)
    }
}

struct Page {
    page: OwnPage,
    /// `None` once the grant ended and the page was kept (`end_grant`).
    gref: Option<u32>,
}

/// The unikernel's platform.
pub struct GuestPlatform {
    k: Kernel,
    xs_port: Port,
    ports: Vec<Port>,
    pages: BTreeMap<usize, Page>,
    next: usize,
}

impl GuestPlatform {
    /// The platform; `xs_port` is the xenstore ring's event channel.
    pub fn new(mut k: Kernel, xs_port: Port) -> Result<GuestPlatform, GuestError> {
        k.executor.watch(xs_port).map_err(|_| GuestError::TooManyPorts)?;
        Ok(GuestPlatform { k, xs_port, ports: Vec::new(), pages: BTreeMap::new(), next: 0 })
    }

    fn page(&self, id: PageId) -> Option<&Page> {
        self.pages.get(&id.0)
    }

    /// The guest frame number of one of our pages.
    pub fn gfn(&self, id: PageId) -> Option<u64> {
        self.page(id).map(|p| p.page.gfn())
    }
}

impl Platform for GuestPlatform {
    type Error = GuestError;

    fn grant_page(&mut self, to: u16, read_only: bool) -> Result<Granted, GuestError> {
        let gt = self.k.grant_table.as_ref().ok_or(GuestError::NoGrantTable)?;
        let page = OwnPage::alloc().ok_or(GuestError::NoMemory)?;
        let gref = gt.grant(to, page.gfn(), read_only).map_err(GuestError::Grant)?;
        self.next += 1;
        self.pages.insert(self.next, Page { page, gref: Some(gref) });
        Ok(Granted { id: PageId(self.next), gref, read_only })
    }

    fn end_access(&mut self, id: PageId) -> Result<(), EndAccessError> {
        self.end_grant(id)?;
        self.pages.remove(&id.0); // freed: the grant has ended
        Ok(())
    }

    fn end_grant(&mut self, id: PageId) -> Result<(), EndAccessError> {
        let Some(gref) = self.page(id).ok_or(EndAccessError::UnknownPage(id))?.gref else {
            return Ok(()); // ended before
        };
        let gt = self.k.grant_table.as_ref().ok_or(EndAccessError::UnknownPage(id))?;
        match gt.end_grant(gref) {
            Ok(()) => {
                if let Some(p) = self.pages.get_mut(&id.0) {
                    p.gref = None;
                }
                Ok(())
            }
            Err(GrantError::InUse(_)) => Err(EndAccessError::StillMapped { gref }),
            Err(_) => Err(EndAccessError::UnknownPage(id)),
        }
    }

    fn regrant(&mut self, id: PageId, to: u16, read_only: bool) -> Result<Granted, GuestError> {
        let gt = self.k.grant_table.as_ref().ok_or(GuestError::NoGrantTable)?;
        let p = self.pages.get_mut(&id.0).ok_or(GuestError::UnknownPage(id.0))?;
        if let Some(old) = p.gref {
            // Still granted (to the old backend): end it first.
            gt.end_grant(old).map_err(GuestError::Grant)?;
            p.gref = None;
        }
        let gref = gt.grant(to, p.page.gfn(), read_only).map_err(GuestError::Grant)?;
        p.gref = Some(gref);
        Ok(Granted { id, gref, read_only })
    }

    fn read(&self, id: PageId, offset: usize, buf: &mut [u8]) {
        match self.page(id) {
            Some(p) => p.page.read(offset, buf),
            None => buf.fill(0),
        }
    }

    fn write(&mut self, id: PageId, offset: usize, data: &[u8]) {
        if let Some(p) = self.pages.get_mut(&id.0) {
            p.page.write(offset, data);
        }
    }

    fn read_u32(&self, id: PageId, offset: usize) -> u32 {
        self.page(id).map_or(0, |p| p.page.read_u32(offset))
    }

    fn write_u32(&mut self, id: PageId, offset: usize, value: u32) {
        if let Some(p) = self.pages.get_mut(&id.0) {
            p.page.write_u32(offset, value);
        }
    }

    fn fence(&self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }

    fn alloc_unbound(&mut self, remote: u16) -> Result<Port, GuestError> {
        let port = events::alloc_unbound(remote)?;
        if self.k.executor.watch(port).is_err() {
            let _ = events::close(port);
            return Err(GuestError::TooManyPorts);
        }
        if let Err(e) = events::unmask(port) {
            log::warn!("cannot unmask port {port}: {e}");
        }
        self.ports.push(port);
        Ok(port)
    }

    fn notify(&mut self, port: Port) -> Result<(), GuestError> {
        Ok(events::send(port)?)
    }

    fn close_port(&mut self, port: Port) -> Result<(), GuestError> {
        self.k.executor.unwatch(port);
        self.ports.retain(|p| *p != port);
        Ok(events::close(port)?)
    }

    fn now_ms(&mut self) -> u64 {
        timer::now_ns() / 1_000_000
    }

    fn wait(&mut self, deadline_ms: u64) -> Result<(), GuestError> {
        self.k.executor.wait(Some(deadline_ms.saturating_mul(1_000_000)))?;
        self.k.executor.take(self.xs_port);
        for &p in &self.ports {
            self.k.executor.take(p);
        }
        Ok(())
    }
}
