//! Mapping other domains' grants into our own physmap
//! (`GNTTABOP_map_grant_ref` with `GNTMAP_host_map`, `host_addr` = GFN << 12;
//! `xen/include/public/grant_table.h`). Two regions of the reserved physmap
//! area (`layout.rs`), two types:
//!
//! - [`GrantWindow`]: the **foreign-grant window**. With a PVH/HVM driver
//!   domain the physmap is what the IOMMU enforces, so a window GFN << 12 is
//!   also the page's bus address for the device gpu-dom owns: mapping here
//!   makes a guest page GPU-reachable. [`GrantWindow::map`] and `unmap`
//!   need the [`WindowToken`], which gpu-dom's platform edge keeps inside
//!   its one `gtt::GrantMapper` (so only `gtt` maps here).
//! - [`CpuPages`]: pages the backend's CPU needs mapped (the frontends'
//!   rings, the self-tests), in their own GFN range, so that no address
//!   `gtt` writes into a GPU table can name one. They are still in the
//!   physmap, as all shared memory must be, hence reachable by the device
//!   like gpu-dom's own RAM (`../shared/DESIGN.md` says why).
//!
//! A batch is one hypercall: the request array is built in a buffer
//! allocated at init for the longest batch (Xen preempts long batches with
//! a continuation, transparently for the caller).
//!
//! # Invariants
//! - A GFN holds at most one mapping; a GFN whose unmap Xen refused stays
//!   reserved (never reused while something may be mapped there).
//! - A failed map leaves nothing mapped and its GFN free.

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::window::{Window, WindowToken};
use xen_abi::grant_table::*;
use xen_abi::xen::DomId;

/// One grant to map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    /// The granting domain.
    pub dom: DomId,
    /// Its grant ref.
    pub gref: GrantRef,
    /// Map with `GNTMAP_readonly`.
    pub readonly: bool,
}

/// A mapped grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The GFN it occupies.
    pub gfn: u64,
    /// Xen's handle, for the unmap.
    pub handle: GrantHandle,
}

/// Why one grant was not mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Xen's `GNTST_*` status for the entry (or the hypercall's rc if it failed whole).
    Xen(i16),
    /// The region is full.
    WindowFull,
}

/// Hypercalls made, by kind (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapHypercalls {
    /// `GNTTABOP_map_grant_ref` calls.
    pub map: u64,
    /// `GNTTABOP_unmap_grant_ref` calls.
    pub unmap: u64,
}

/// A region of GFNs that foreign grants are mapped into, and the scratch
/// arrays of one batch.
pub(super) struct Frames {
    window: Window,
    map_ops: Vec<GnttabMapGrantRef>,
    /// `map_ops[k]` answers `reqs[slot[k]]`.
    slot: Vec<usize>,
    unmap_ops: Vec<GnttabUnmapGrantRef>,
    map_calls: AtomicU64,
    unmap_calls: AtomicU64,
}

impl Frames {
    fn new(base_gfn: u64, frames: u64, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        Frames {
            window: Window::new(base_gfn, frames),
            map_ops: Vec::with_capacity(max_batch),
            slot: Vec::with_capacity(max_batch),
            unmap_ops: Vec::with_capacity(max_batch),
            map_calls: AtomicU64::new(0),
            unmap_calls: AtomicU64::new(0),
        }
    }

    /// Maps `reqs`, one hypercall per `max_batch` of them; `out[i]` gets
    /// the outcome of `reqs[i]`.
    pub(super) fn map(&mut self, reqs: &[MapRequest], out: &mut [Result<Mapped, MapError>]) {
        let batch = self.map_ops.capacity();
        for (reqs, out) in reqs.chunks(batch).zip(out.chunks_mut(batch)) {
            self.map_ops.clear();
            self.slot.clear();
            for (i, r) in reqs.iter().enumerate() {
                let Some(gfn) = self.window.take() else {
                    out[i] = Err(MapError::WindowFull);
                    continue;
                };
                self.map_ops.push(GnttabMapGrantRef {
                    host_addr: gfn << 12,
                    flags: GNTMAP_HOST_MAP | if r.readonly { GNTMAP_READONLY } else { 0 },
                    ref_: r.gref,
                    dom: r.dom,
                    ..Default::default()
                });
                self.slot.push(i);
            }
            if self.map_ops.is_empty() {
                continue;
            }
            self.map_calls.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `map_ops` holds `len` initialised map requests, alive
            // and not moved across the call; Xen writes their status/handle.
            let rc = unsafe {
                xen_abi::hypercall::grant_table_op(
                    GNTTABOP_MAP_GRANT_REF,
                    self.map_ops.as_mut_ptr().cast(),
                    self.map_ops.len() as u32,
                )
            };
            for (op, &i) in self.map_ops.iter().zip(&self.slot) {
                let gfn = op.host_addr >> 12;
                let res = if rc < 0 {
                    Err(MapError::Xen(GNTST_GENERAL_ERROR))
                } else if op.status != GNTST_OKAY {
                    Err(MapError::Xen(op.status))
                } else {
                    Ok(Mapped { gfn, handle: op.handle })
                };
                if res.is_err() {
                    self.window.release(gfn);
                }
                out[i] = res;
            }
        }
    }

    /// Unmaps `maps`, one hypercall per `max_batch`; returns how many Xen
    /// refused (their GFNs stay reserved) or were not ours.
    pub(super) fn unmap(&mut self, maps: &[Mapped]) -> usize {
        let mut refused = 0;
        for chunk in maps.chunks(self.unmap_ops.capacity()) {
            self.unmap_ops.clear();
            for m in chunk.iter().filter(|m| self.window.contains(m.gfn)) {
                self.unmap_ops.push(GnttabUnmapGrantRef {
                    host_addr: m.gfn << 12,
                    dev_bus_addr: 0,
                    handle: m.handle,
                    status: 0,
                });
            }
            refused += chunk.len() - self.unmap_ops.len();
            if self.unmap_ops.is_empty() {
                continue;
            }
            self.unmap_calls.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `unmap_ops` holds `len` initialised unmap requests,
            // alive and not moved across the call; Xen writes their status.
            let rc = unsafe {
                xen_abi::hypercall::grant_table_op(
                    GNTTABOP_UNMAP_GRANT_REF,
                    self.unmap_ops.as_mut_ptr().cast(),
                    self.unmap_ops.len() as u32,
                )
            };
            for op in &self.unmap_ops {
                if rc >= 0 && op.status == GNTST_OKAY {
                    self.window.release(op.host_addr >> 12);
                } else {
                    refused += 1;
                }
            }
        }
        refused
    }

    fn hypercalls(&self) -> MapHypercalls {
        MapHypercalls {
            map: self.map_calls.load(Ordering::Relaxed),
            unmap: self.unmap_calls.load(Ordering::Relaxed),
        }
    }
}

/// The foreign-grant window: guest pages mapped here are GPU-reachable.
pub struct GrantWindow {
    frames: Frames,
}

impl GrantWindow {
    /// The window over `frames` GFNs from `base_gfn` (identity-mapped),
    /// with its token; `max_batch` grants go in one hypercall.
    pub(crate) fn new(base_gfn: u64, frames: u64, max_batch: usize) -> (Self, WindowToken) {
        (GrantWindow { frames: Frames::new(base_gfn, frames, max_batch) }, WindowToken::new())
    }

    /// Maps `reqs` into the window; `out[i]` gets the outcome of `reqs[i]`.
    pub fn map(
        &mut self,
        _token: &WindowToken,
        reqs: &[MapRequest],
        out: &mut [Result<Mapped, MapError>],
    ) {
        self.frames.map(reqs, out)
    }

    /// Unmaps `maps`; returns how many Xen refused (their GFNs stay reserved).
    pub fn unmap(&mut self, _token: &WindowToken, maps: &[Mapped]) -> usize {
        self.frames.unmap(maps)
    }

    /// Window GFNs in use.
    pub fn in_use(&self) -> u64 {
        self.frames.window.in_use()
    }

    /// Hypercalls made so far, by kind.
    pub fn hypercalls(&self) -> MapHypercalls {
        self.frames.hypercalls()
    }

    /// A reader of the window's frames for the CPU.
    pub fn reader(&self) -> WindowReader {
        let (base_gfn, frames) = self.frames.window.range();
        WindowReader { base_gfn, frames }
    }
}

/// Reads window frames through the CPU (`DebugReadback`, tests). It maps
/// nothing: a frame whose grant was unmapped reads as Xen's filler for an
/// empty GFN, never as another page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowReader {
    base_gfn: u64,
    frames: u64,
}

impl WindowReader {
    /// True when `gfn` is inside the window.
    pub fn contains(&self, gfn: u64) -> bool {
        gfn.checked_sub(self.base_gfn).is_some_and(|s| s < self.frames)
    }

    /// Copies window frame `gfn` into `buf`; false (nothing read) outside the window.
    pub fn read(&self, gfn: u64, buf: &mut [u8; 4096]) -> bool {
        if !self.contains(gfn) {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `gfn` is a window GFN (checked), identity-mapped in the
            // reserved region (`paging::map_gigabyte`); reading an unmapped
            // GFN there gives Xen's filler, never another page.
            *b = unsafe { core::ptr::read_volatile(((gfn << 12) + i as u64) as *const u8) };
        }
        true
    }
}

/// Pages mapped for the backend CPU (rings, self-tests), outside the
/// window (`page.rs` maps and unmaps them).
pub struct CpuPages {
    pub(super) frames: Frames,
}

impl CpuPages {
    /// `frames` GFNs from `base_gfn` (identity-mapped), one page per call.
    pub(crate) fn new(base_gfn: u64, frames: u64) -> Self {
        CpuPages { frames: Frames::new(base_gfn, frames, 1) }
    }

    /// GFNs in use.
    pub fn in_use(&self) -> u64 {
        self.frames.window.in_use()
    }
}
