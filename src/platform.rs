//! The backend's platform in the image: the traits `gtt` and `backend`
//! drive, implemented over the unikernel's Xen layer. This is the image's
//! platform edge: the one place where `gtt`'s types meet the unikernel's.
//!
//! - [`WindowMapper`] (`gtt::GrantMapper`): guests' grants into the
//!   foreign-grant window, the only way a guest page becomes GPU-reachable.
//!   It is the only `GrantMapper` in the image and holds the unikernel's one
//!   `WindowToken` privately: its methods need `gtt`'s `MappingCap`, so only
//!   `gtt` can map into the window.
//! - [`XenConnector`] (`backend::Connector`): the frontend's ring page mapped
//!   for the CPU, in the unikernel's CPU pages (never the window: a
//!   `ForeignPage`, volatile accesses, real fences), event channels bound,
//!   closed and notified.
//! - [`XenCpu`] (`backend::CpuAccess`): directory pages fetched with
//!   `GNTTABOP_copy` (never mapped), and CPU reads of window frames for
//!   `DebugReadback` (a [`WindowReader`]: reads, never maps).
//!
//! # Invariants
//! - Only [`WindowMapper`] maps into the window; it does so only when `gtt` calls it.
//! - The ring mapping is CPU-side only: no code here writes a GPU table.
//! - `read_bus` reads only frames inside the window.
#![forbid(unsafe_code)]

extern crate alloc;

use backend::{Connector, CpuAccess};
use gtt::platform::{GrantMapError, GrantMapRequest, GrantMapper, GrantMapping, MappingCap};
use gtt::{Access, BusAddr, DomId};
use unikernel::window::WindowToken;
use unikernel::xen::events;
use unikernel::xen::foreign::{CpuPages, GrantWindow, MapError, MapRequest, Mapped, WindowReader};
use unikernel::xen::grant_copy::{self, CopyError};
use unikernel::xen::page::ForeignPage;
use xen_abi::grant_table::GNTST_GENERAL_ERROR;

/// `gtt`'s grant mapper: the grant window, its token, and the conversion
/// buffers between `gtt`'s types and the unikernel's (allocated at build).
pub struct WindowMapper {
    window: GrantWindow,
    token: WindowToken,
    reqs: alloc::vec::Vec<MapRequest>,
    out: alloc::vec::Vec<Result<Mapped, MapError>>,
    maps: alloc::vec::Vec<Mapped>,
}

impl WindowMapper {
    /// Hypercalls the window made so far, by kind (read-only, for metrics).
    pub fn hypercalls(&self) -> unikernel::xen::foreign::MapHypercalls {
        self.window.hypercalls()
    }

    /// The mapper over the unikernel's window, for batches of up to `max_batch`.
    pub fn new(window: GrantWindow, token: WindowToken, max_batch: usize) -> Self {
        WindowMapper {
            window,
            token,
            reqs: alloc::vec::Vec::with_capacity(max_batch),
            out: alloc::vec![Err(MapError::WindowFull); max_batch],
            maps: alloc::vec::Vec::with_capacity(max_batch),
        }
    }
}

impl GrantMapper for WindowMapper {
    fn map(
        &mut self,
        _cap: &MappingCap,
        reqs: &[GrantMapRequest],
        out: &mut [Result<GrantMapping, GrantMapError>],
    ) {
        // gtt's batches are at most `max_batch` long; a longer one is
        // mapped in pieces rather than refused.
        for (reqs, out) in reqs.chunks(self.out.len()).zip(out.chunks_mut(self.out.len())) {
            self.reqs.clear();
            self.reqs.extend(reqs.iter().map(|r| MapRequest {
                dom: r.dom.0,
                gref: r.gref.0,
                readonly: r.access == Access::ReadOnly,
            }));
            let res = &mut self.out[..reqs.len()];
            self.window.map(&self.token, &self.reqs, res);
            for (o, r) in out.iter_mut().zip(res.iter()) {
                *o = match *r {
                    Ok(m) => Ok(GrantMapping { bus: BusAddr(m.gfn << 12), handle: m.handle }),
                    Err(MapError::Xen(st)) => Err(GrantMapError::Xen(st)),
                    Err(MapError::WindowFull) => Err(GrantMapError::WindowFull),
                };
            }
        }
    }

    fn unmap(&mut self, _cap: &MappingCap, mappings: &[GrantMapping]) -> usize {
        let mut refused = 0;
        for chunk in mappings.chunks(self.out.len()) {
            self.maps.clear();
            self.maps.extend(chunk.iter().map(|g| Mapped { gfn: g.bus.frame(), handle: g.handle }));
            refused += self.window.unmap(&self.token, &self.maps);
        }
        refused
    }
}

/// Ring mappings and event channels for the xenbus devices.
pub struct XenConnector {
    pub pages: CpuPages,
}

impl Connector for XenConnector {
    type Ring = ForeignPage;

    fn map_ring(&mut self, dom: DomId, gref: u32) -> Result<ForeignPage, i16> {
        match self.pages.map_page(dom.0, gref) {
            Ok(p) => Ok(p),
            Err(MapError::Xen(st)) => Err(st),
            Err(MapError::WindowFull) => Err(GNTST_GENERAL_ERROR),
        }
    }

    fn unmap_ring(&mut self, dom: DomId, ring: ForeignPage) {
        let gfn = ring.mapped().gfn;
        if !self.pages.unmap_page(ring) {
            log::warn!("vgpu dom{}: Xen refused to unmap the ring at gfn {gfn:#x}", dom.0);
        }
    }

    fn bind(&mut self, dom: DomId, remote_port: u32) -> Result<u32, i32> {
        let port = events::bind_interdomain(dom.0, remote_port).map_err(|e| e.rc as i32)?;
        // The executor polls pending bits; unmasking also lets the upcall
        // scan see the port.
        if let Err(e) = events::unmask(port) {
            log::warn!("vgpu dom{}: cannot unmask port {port}: {e}", dom.0);
        }
        Ok(port)
    }

    fn unbind(&mut self, local_port: u32) {
        if let Err(e) = events::close(local_port) {
            log::warn!("cannot close event channel {local_port}: {e}");
        }
    }

    fn notify(&mut self, local_port: u32) {
        if let Err(e) = events::send(local_port) {
            log::warn!("cannot notify through event channel {local_port}: {e}");
        }
    }
}

/// The backend CPU's own accesses to guest memory.
pub struct XenCpu {
    pub window: WindowReader,
}

impl CpuAccess for XenCpu {
    fn copy_granted(
        &mut self,
        dom: DomId,
        grefs: &[u32],
        out: &mut [u8],
    ) -> Result<(), (usize, i16)> {
        grant_copy::copy_in(dom.0, grefs, out).map_err(|e| match e {
            CopyError::Xen { index, status } => (index, status),
            CopyError::Buffer => (0, GNTST_GENERAL_ERROR),
        })
    }

    fn read_bus(&mut self, bus: BusAddr, out: &mut [u8; gpuif::PAGE_SIZE]) -> bool {
        // `WindowReader::read` refuses frames outside the window.
        self.window.read(bus.frame(), out)
    }
}
