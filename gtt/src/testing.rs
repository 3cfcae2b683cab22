//! Test support (feature `testing`; the gpu-dom image never enables it):
//! the one fake grant mapper the drivers', the software GPU's and the
//! benchmarks' tests share. `gtt`'s own unit tests use a recording mapper
//! with a grant table of its own (`tests.rs`); the full model of Xen's grant
//! tables and the IOMMU is `platform-model`.

use crate::platform::{GrantMapError, GrantMapRequest, GrantMapper, GrantMapping, MappingCap};
use crate::types::BusAddr;

/// Grant `gref` of any domain maps at `base + (gref << 12)` (its handle is
/// `gref`); every map and unmap succeeds, and each unmapped mapping is
/// first shown to `on_unmap` (a test can check there that the GPU can no
/// longer reach it).
pub struct FixedMapper<F = fn(&GrantMapping)> {
    base: u64,
    on_unmap: F,
}

impl FixedMapper {
    /// Mappings from `base`, unmaps unobserved.
    pub fn new(base: u64) -> Self {
        FixedMapper { base, on_unmap: |_| {} }
    }
}

impl<F: FnMut(&GrantMapping)> FixedMapper<F> {
    /// Mappings from `base`, each unmap shown to `on_unmap` first.
    pub fn with_unmap_hook(base: u64, on_unmap: F) -> Self {
        FixedMapper { base, on_unmap }
    }

    /// Where grant `gref` maps.
    pub fn bus_of(&self, gref: u32) -> BusAddr {
        BusAddr(self.base + ((gref as u64) << 12))
    }
}

impl<F: FnMut(&GrantMapping)> GrantMapper for FixedMapper<F> {
    fn map(
        &mut self,
        _: &MappingCap,
        reqs: &[GrantMapRequest],
        out: &mut [Result<GrantMapping, GrantMapError>],
    ) {
        for (r, o) in reqs.iter().zip(out.iter_mut()) {
            *o = Ok(GrantMapping { bus: self.bus_of(r.gref.0), handle: r.gref.0 });
        }
    }

    fn unmap(&mut self, _: &MappingCap, mappings: &[GrantMapping]) -> usize {
        mappings.iter().for_each(&mut self.on_unmap);
        0
    }
}
