//! Unit tests of the model itself, by idea.

mod checker;
mod gpu;
mod grants;
mod iommu;
mod snapshot;

use gtt::platform::{
    testing_cap, GpuTables, GrantMapError, GrantMapRequest, GrantMapper, GrantMapping, TablePage,
};
use gtt::types::{Access, BusAddr, DomId, GrantRef, Level};

use crate::{Gfn, Guest, ModelGpu, ModelMapper, Platform, PlatformConfig};

pub(crate) const BACKEND: DomId = DomId(1);
pub(crate) const A: DomId = DomId(5);
pub(crate) const B: DomId = DomId(6);

/// A small platform with guests `A` and `B` (8 pages each).
pub(crate) struct Rig {
    pub p: Platform,
    pub mapper: ModelMapper,
    pub gpu: ModelGpu,
    pub a: Guest,
    pub b: Guest,
}

pub(crate) fn small_config() -> PlatformConfig {
    PlatformConfig {
        backend: BACKEND,
        backend_ram_pages: 64,
        table_pool_pages: 32,
        window_base_gfn: 0x1000,
        window_pages: 16,
        ggtt_entries: 64,
    }
}

pub(crate) fn rig() -> Rig {
    let p = Platform::new(small_config()).unwrap();
    let a = p.create_guest(A, 8).unwrap();
    let b = p.create_guest(B, 8).unwrap();
    Rig { mapper: p.mapper(), gpu: p.gpu(), p, a, b }
}

impl Rig {
    /// Maps one grant through the `GrantMapper` trait.
    pub fn map(
        &mut self,
        dom: DomId,
        gref: GrantRef,
        access: Access,
    ) -> Result<GrantMapping, GrantMapError> {
        let mut out = [Err(GrantMapError::WindowFull)];
        let req = GrantMapRequest { dom, gref, access };
        self.mapper.map(&testing_cap(), &[req], &mut out);
        out[0]
    }

    /// Unmaps through the trait; returns how many were refused.
    pub fn unmap(&mut self, m: GrantMapping) -> usize {
        self.mapper.unmap(&testing_cap(), &[m])
    }

    /// Guest `g` grants page `gfn` (filled with `fill`) to the backend; the
    /// backend maps it with `access`.
    pub fn grant_and_map(
        &mut self,
        dom: DomId,
        gfn: u64,
        fill: u8,
        access: Access,
    ) -> (GrantRef, GrantMapping) {
        let g = self.p.guest(dom);
        g.fill(Gfn(gfn), fill).unwrap();
        let gref = g.grant(Gfn(gfn), BACKEND, access == Access::ReadOnly).unwrap();
        (gref, self.map(dom, gref, access).unwrap())
    }

    /// A 4-level PPGTT with one leaf: `va` -> `page`. Returns the tables,
    /// root first.
    pub fn ppgtt_with_leaf(&mut self, va: u64, page: BusAddr, access: Access) -> [TablePage; 4] {
        let cap = testing_cap();
        let t = Level::ALL.map(|l| self.gpu.table_alloc(&cap, l).unwrap());
        for i in 0..3 {
            let level = Level::ALL[i];
            self.gpu.table_set_dir(&cap, t[i], level, level.index(va), t[i + 1]);
        }
        self.gpu.table_set_leaf(&cap, t[3], Level::Pt.index(va), page, access);
        t
    }
}
