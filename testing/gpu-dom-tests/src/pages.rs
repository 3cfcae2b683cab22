//! The model's memory seen through gpu-dom's traits: the ring page from both
//! sides, and the backend CPU's grant copies and bus reads.

use std::cell::Cell;

use backend::CpuAccess;
use gpuif::ring::SharedPage;
use gpuif::PAGE_SIZE;
use gtt::{BusAddr, DomId, GrantRef};
use platform_model::{Gfn, Guest, Platform};

/// The frontend's view of its ring: a page of its own RAM.
#[derive(Clone)]
pub struct GuestRingPage {
    pub guest: Guest,
    pub gfn: Gfn,
}

impl SharedPage for GuestRingPage {
    fn read_u32(&self, offset: usize) -> u32 {
        let mut b = [0; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.write(offset, &value.to_le_bytes());
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.guest.read(self.gfn, offset, buf).expect("ring page in guest RAM");
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.guest.write(self.gfn, offset, data).expect("ring page in guest RAM");
    }
    fn fence(&self) {}
}

/// The backend's view of a frontend's ring: the grant-mapped page at `bus`.
/// Reads of a page that is no longer mapped see zeros (as after an unmap).
#[derive(Clone)]
pub struct BusRingPage {
    pub platform: Platform,
    pub bus: BusAddr,
    /// Reads of slot bytes so far (instrumentation: proves that the backend
    /// reads each request slot exactly once).
    pub slot_reads: Cell<u64>,
}

impl SharedPage for BusRingPage {
    fn read_u32(&self, offset: usize) -> u32 {
        let mut b = [0; 4];
        let _ = self.platform.bus_read(BusAddr(self.bus.0 + offset as u64), &mut b);
        u32::from_le_bytes(b)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        let _ = self.platform.bus_write(BusAddr(self.bus.0 + offset as u64), &value.to_le_bytes());
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        if offset >= gpuif::ring::HEADER_SIZE {
            self.slot_reads.set(self.slot_reads.get() + 1);
        }
        buf.fill(0);
        let _ = self.platform.bus_read(BusAddr(self.bus.0 + offset as u64), buf);
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        let _ = self.platform.bus_write(BusAddr(self.bus.0 + offset as u64), data);
    }
    fn fence(&self) {}
}

/// The backend CPU: `GNTTABOP_copy` for directory pages, bus reads for
/// `DebugReadback`.
pub struct ModelCpu(pub Platform);

impl CpuAccess for ModelCpu {
    fn copy_granted(
        &mut self,
        dom: DomId,
        grefs: &[u32],
        out: &mut [u8],
    ) -> Result<(), (usize, i16)> {
        for (i, (g, page)) in grefs.iter().zip(out.chunks_exact_mut(PAGE_SIZE)).enumerate() {
            self.0.copy_from_grant(dom, GrantRef(*g), 0, page).map_err(|st| (i, st))?;
        }
        Ok(())
    }

    fn read_bus(&mut self, bus: BusAddr, out: &mut [u8; PAGE_SIZE]) -> bool {
        self.0.bus_read(bus, out).is_ok()
    }
}

/// Frontends' rings mapped for the backend on the model (the test
/// connectors' shared half): through the model's grant mapper, as the
/// unikernel maps them into its CPU pages.
pub struct ModelRings {
    platform: Platform,
    live: std::collections::HashMap<u64, gtt::GrantMapping>,
}

impl ModelRings {
    pub fn new(platform: Platform) -> Self {
        ModelRings { platform, live: Default::default() }
    }

    /// Maps `dom`'s grant `gref` writable; `Err` is the `GNTST_*` status
    /// (`GNTST_no_device_space`, -7, when the window is full).
    pub fn map(&mut self, dom: DomId, gref: u32) -> Result<BusRingPage, i16> {
        use gtt::platform::{testing_cap, GrantMapRequest, GrantMapper};
        let mut out = [Err(gtt::GrantMapError::WindowFull)];
        let req = GrantMapRequest { dom, gref: GrantRef(gref), access: gtt::Access::ReadWrite };
        self.platform.mapper().map(&testing_cap(), &[req], &mut out);
        match out[0] {
            Ok(m) => {
                self.live.insert(m.bus.0, m);
                Ok(BusRingPage {
                    platform: self.platform.clone(),
                    bus: m.bus,
                    slot_reads: Default::default(),
                })
            }
            Err(gtt::GrantMapError::Xen(s)) => Err(s),
            Err(gtt::GrantMapError::WindowFull) => Err(-7),
        }
    }

    /// Unmaps a ring from [`ModelRings::map`]; false if it was not one.
    pub fn unmap(&mut self, ring: BusRingPage) -> bool {
        use gtt::platform::{testing_cap, GrantMapper};
        match self.live.remove(&ring.bus.0) {
            Some(m) => {
                self.platform.mapper().unmap(&testing_cap(), &[m]);
                true
            }
            None => false,
        }
    }
}
