//! The netfront's pages in the image: heap pages of our own
//! (`unikernel::xen::page::OwnPage`), granted to the backend in our grant table,
//! seen by `netfront` as `gpuif::SharedPage`s.
//!
//! # Invariants
//! - Rx buffers and the rings are granted writable, tx buffers read-only.
//! - A page is freed only after its grant ended; one the backend still maps
//!   is leaked, never returned to the heap.
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use netfront::Buffer;
use unikernel::xen::gnttab::{GrantError, GrantTable};
use unikernel::xen::page::OwnPage;

/// One of our pages, shared with netback (a `gpuif::SharedPage`).
pub type NetPage = OwnPage;

/// Why the buffers could not be made.
#[derive(Clone, Copy, Debug)]
pub enum PageError {
    NoMemory,
    Grant(GrantError),
}

impl core::fmt::Display for PageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PageError::NoMemory => write!(f, "out of memory"),
            PageError::Grant(e) => write!(f, "grant: {e:?}"),
        }
    }
}

/// A zeroed page granted to `backend` (read-only if `readonly`).
pub fn granted(
    gt: &GrantTable,
    backend: u16,
    readonly: bool,
) -> Result<Buffer<NetPage>, PageError> {
    let page = OwnPage::alloc().ok_or(PageError::NoMemory)?;
    let gref = gt.grant(backend, page.gfn(), readonly).map_err(PageError::Grant)?;
    Ok(Buffer { page, gref })
}

/// `n` granted pages.
pub fn granted_n(
    gt: &GrantTable,
    backend: u16,
    readonly: bool,
    n: usize,
) -> Result<Vec<Buffer<NetPage>>, PageError> {
    (0..n).map(|_| granted(gt, backend, readonly)).collect()
}

/// Ends the grants of `pages` and frees them; returns how many the backend
/// still maps (those are leaked).
pub fn release(gt: &GrantTable, pages: impl Iterator<Item = Buffer<NetPage>>) -> usize {
    let mut leaked = 0;
    for b in pages {
        match gt.end_grant(b.gref) {
            Ok(()) => drop(b),
            Err(_) => {
                leaked += 1;
                core::mem::forget(b);
            }
        }
    }
    leaked
}
