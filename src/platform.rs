//! The backend's platform in the image: the traits `gtt` and `backend`
//! drive, implemented over the unikernel's Xen layer.
//!
//! - [`WindowMapper`] (`gtt::GrantMapper`): guests' grants into the
//!   foreign-grant window, the only way a guest page becomes GPU-reachable.
//! - [`XenConnector`] (`backend::Connector`): the frontend's ring page mapped
//!   into the same window for the CPU ([`RingPage`]: volatile accesses, real
//!   fences), event channels bound, closed and notified.
//! - [`XenCpu`] (`backend::CpuAccess`): directory pages fetched with
//!   `GNTTABOP_copy` (never mapped), and CPU reads of window pages for
//!   `DebugReadback`.
//!
//! The three share one [`ForeignMapper`] (one window, one bitmap of its
//! frames): a frame holds one mapping, whoever asked for it.
//!
//! # Invariants
//! - The ring mapping is CPU-side only: no code here writes a GPU table.
//! - `read_bus` reads only frames inside the window.
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::rc::Rc;
use core::cell::RefCell;

use backend::{Connector, CpuAccess};
use gpuif::ring::SharedPage;
use gtt::platform::{GrantMapError, GrantMapRequest, GrantMapper, GrantMapping, MappingCap};
use gtt::{BusAddr, DomId};
use unikernel::xen::events;
use unikernel::xen::foreign_page::ForeignPage;
use unikernel::xen::gnttab::{ForeignMapper, MapError, Mapped};
use unikernel::xen::grant_copy::{self, CopyError};
use xen_abi::grant_table::GNTST_GENERAL_ERROR;

/// The foreign-grant window, shared by the engine's mapper, the ring
/// mappings and the CPU reads (one vCPU, no interrupt touches it).
pub type SharedWindow = Rc<RefCell<ForeignMapper>>;

/// `gtt`'s grant mapper: the unikernel's window mapper, shared.
pub struct WindowMapper(pub SharedWindow);

impl GrantMapper for WindowMapper {
    fn map(
        &mut self,
        cap: &MappingCap,
        reqs: &[GrantMapRequest],
        out: &mut [Result<GrantMapping, GrantMapError>],
    ) {
        GrantMapper::map(&mut *self.0.borrow_mut(), cap, reqs, out)
    }

    fn unmap(&mut self, cap: &MappingCap, mappings: &[GrantMapping]) -> usize {
        GrantMapper::unmap(&mut *self.0.borrow_mut(), cap, mappings)
    }
}

/// A frontend's ring page, mapped writable for the backend CPU.
pub struct RingPage(ForeignPage);

impl SharedPage for RingPage {
    fn read_u32(&self, offset: usize) -> u32 {
        self.0.read_u32(offset)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.0.write_u32(offset, value)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.0.read(offset, buf)
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.0.write(offset, data)
    }
    fn fence(&self) {
        self.0.fence()
    }
}

/// Ring mappings and event channels for the xenbus devices.
pub struct XenConnector {
    pub window: SharedWindow,
}

impl Connector for XenConnector {
    type Ring = RingPage;

    fn map_ring(&mut self, dom: DomId, gref: u32) -> Result<RingPage, i16> {
        match self.window.borrow_mut().map_page(dom.0, gref) {
            Ok(p) => Ok(RingPage(p)),
            Err(MapError::Xen(st)) => Err(st),
            Err(MapError::WindowFull) => Err(GNTST_GENERAL_ERROR),
        }
    }

    fn unmap_ring(&mut self, dom: DomId, ring: RingPage) {
        let gfn = ring.0.mapped().gfn;
        if !self.window.borrow_mut().unmap_page(ring.0) {
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
    pub window: SharedWindow,
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
        // `ForeignMapper::read` refuses frames outside the window.
        self.window.borrow().read(&Mapped { gfn: bus.frame(), handle: 0 }, out)
    }
}
