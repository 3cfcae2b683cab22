//! The backend domain's physmap and its strict IOMMU context, and the
//! backend's grant mapper.
//!
//! gpu-dom is a PVH (or HVM) domain: its p2m is what the IOMMU enforces for
//! the GPU, so "bus address" = backend gfn << 12. The physmap has two parts:
//! the backend's own RAM (gfns `0..backend_ram_pages`, read-write), and a
//! window of gfns reserved for grant mappings (`window_base_gfn..`), each
//! slot empty or holding one mapped grant with the mapping's access.
//!
//! # Invariants
//! - [`iommu_translate`](crate::Platform::iommu_translate) resolves exactly the
//!   backend's RAM and the window slots currently holding a mapping; a write
//!   through a read-only mapping faults. Nothing else resolves.
//! - A mapping is read-only when mapped with `GNTMAP_readonly`; Xen refuses a
//!   writable map of a `GTF_readonly` grant, so no mapping is wider than its grant.
//! - Before a slot is emptied, the model checks the GPU TLB and every GPU
//!   table for references to it and records a [`Violation`] for each.

use std::collections::BTreeMap;

use gtt::platform::{GrantMapError, GrantMapRequest, GrantMapper, GrantMapping, MappingCap};
use gtt::types::{Access, BusAddr, DomId, GrantRef, PAGE_SHIFT};

use crate::grants::abi::{GNTST_bad_handle, GNTST_general_error};
use crate::memory::{FrameId, Gfn};
use crate::platform::{Platform, World};
use crate::trace::{Event, Violation};

/// Why the IOMMU (or the backend CPU's p2m, which is the same table)
/// refused an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuFault {
    /// Nothing is mapped at this bus address.
    NotMapped { bus: BusAddr },
    /// A write to a page mapped read-only.
    ReadOnly { bus: BusAddr },
}

/// One grant mapped into the backend's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowMapping {
    /// Where the page is in the backend's physmap.
    pub bus: BusAddr,
    /// Xen's `grant_handle_t` for it.
    pub handle: u32,
    /// The granting domain.
    pub dom: DomId,
    /// Its grant reference.
    pub gref: GrantRef,
    /// The granted frame.
    pub frame: FrameId,
    /// What the mapping allows (`ReadOnly` = `GNTMAP_readonly`).
    pub access: Access,
}

#[derive(Clone)]
pub(crate) struct Physmap {
    pub ram_pages: u64,
    pub window_base: u64,
    /// What each window slot holds (the same mapping as in `maptrack`).
    pub slots: Vec<Option<WindowMapping>>,
    pub maptrack: BTreeMap<u32, WindowMapping>,
    pub next_handle: u32,
}

impl Physmap {
    pub fn new(ram_pages: u64, window_base: u64, window_pages: u32) -> Physmap {
        Physmap {
            ram_pages,
            window_base,
            slots: vec![None; window_pages as usize],
            maptrack: BTreeMap::new(),
            next_handle: 0,
        }
    }

    /// The mapping in the window slot holding `gfn`, if any.
    pub fn mapping_at(&self, gfn: u64) -> Option<&WindowMapping> {
        let slot = gfn.checked_sub(self.window_base)?;
        self.slots.get(usize::try_from(slot).ok()?)?.as_ref()
    }
}

impl World {
    /// The IOMMU of the backend domain: resolves `bus` (any offset) to a frame.
    pub(crate) fn iommu_translate(&self, bus: BusAddr, write: bool) -> Result<FrameId, IommuFault> {
        let gfn = bus.0 >> PAGE_SHIFT;
        let page = BusAddr(gfn << PAGE_SHIFT);
        if gfn < self.physmap.ram_pages {
            return self
                .mem
                .frame_of(self.cfg.backend, Gfn(gfn))
                .map_err(|_| IommuFault::NotMapped { bus: page });
        }
        match self.physmap.mapping_at(gfn) {
            Some(m) if write && m.access == Access::ReadOnly => {
                Err(IommuFault::ReadOnly { bus: page })
            }
            Some(m) => Ok(m.frame),
            None => Err(IommuFault::NotMapped { bus: page }),
        }
    }

    fn map_one(&mut self, req: &GrantMapRequest) -> Result<GrantMapping, GrantMapError> {
        let Some(slot) = self.physmap.slots.iter().position(Option::is_none) else {
            return Err(GrantMapError::WindowFull);
        };
        let readonly = req.access == Access::ReadOnly;
        let frame = self
            .xen_pin(self.cfg.backend, req.dom, req.gref, readonly)
            .map_err(GrantMapError::Xen)?;
        let handle = self.physmap.next_handle;
        self.physmap.next_handle += 1;
        let bus = BusAddr((self.physmap.window_base + slot as u64) << PAGE_SHIFT);
        let wm =
            WindowMapping { bus, handle, dom: req.dom, gref: req.gref, frame, access: req.access };
        self.physmap.slots[slot] = Some(wm);
        self.physmap.maptrack.insert(handle, wm);
        Ok(GrantMapping { bus, handle })
    }

    fn unmap_one(&mut self, m: &GrantMapping) -> Result<(), i16> {
        let Some(&wm) = self.physmap.maptrack.get(&m.handle) else {
            return Err(GNTST_bad_handle);
        };
        if wm.bus != m.bus {
            // unmap_common: "Bus address doesn't match gntref".
            return Err(GNTST_general_error);
        }
        self.check_unreferenced(&wm);
        let slot = (wm.bus.frame() - self.physmap.window_base) as usize;
        self.physmap.slots[slot] = None;
        self.physmap.maptrack.remove(&m.handle);
        self.xen_unpin(wm.dom, wm.gref, wm.access == Access::ReadOnly);
        Ok(())
    }

    /// Records a violation for every GPU TLB entry and every GPU table entry
    /// that still reaches the page about to be unmapped.
    fn check_unreferenced(&mut self, wm: &WindowMapping) {
        let gfn = wm.bus.frame();
        let cached: Vec<_> = self.gpu_tlb_refs(gfn);
        for at in cached {
            self.trace.violation(Violation::UnmappedWhileCached {
                dom: wm.dom,
                gref: wm.gref,
                bus: wm.bus,
                cached: at,
            });
        }
        for at in self.gpu_entry_refs(gfn) {
            self.trace.violation(Violation::UnmappedWhileReferenced {
                dom: wm.dom,
                gref: wm.gref,
                bus: wm.bus,
                entry: at,
            });
        }
    }
}

/// The backend's grant mapper over the model (what `unikernel` does with
/// `GNTTABOP_map_grant_ref` into its reserved window).
pub struct ModelMapper {
    pub(crate) platform: Platform,
}

impl GrantMapper for ModelMapper {
    fn map(
        &mut self,
        _cap: &MappingCap,
        reqs: &[GrantMapRequest],
        out: &mut [Result<GrantMapping, GrantMapError>],
    ) {
        let mut w = self.platform.world_mut();
        for (req, slot) in reqs.iter().zip(out.iter_mut()) {
            let r = w.map_one(req);
            match r {
                Ok(m) => {
                    w.trace.counters.grant_maps += 1;
                    w.trace.event(Event::GrantMapped {
                        dom: req.dom,
                        gref: req.gref,
                        bus: m.bus,
                        access: req.access,
                        handle: m.handle,
                    });
                }
                Err(e) => {
                    w.trace.counters.grant_map_failures += 1;
                    w.trace.event(Event::GrantMapFailed { dom: req.dom, gref: req.gref, error: e });
                }
            }
            *slot = r;
        }
    }

    fn unmap(&mut self, _cap: &MappingCap, mappings: &[GrantMapping]) -> usize {
        let mut w = self.platform.world_mut();
        let mut refused = 0;
        for m in mappings {
            let wm = w.physmap.maptrack.get(&m.handle).copied();
            match w.unmap_one(m) {
                Ok(()) => {
                    let wm = wm.expect("unmap_one found it");
                    w.trace.counters.grant_unmaps += 1;
                    w.trace.event(Event::GrantUnmapped {
                        dom: wm.dom,
                        gref: wm.gref,
                        bus: wm.bus,
                        handle: m.handle,
                    });
                }
                Err(status) => {
                    refused += 1;
                    w.trace.counters.grant_unmap_failures += 1;
                    w.trace.event(Event::GrantUnmapFailed { bus: m.bus, handle: m.handle, status });
                    w.trace.violation(Violation::BadUnmap { bus: m.bus, handle: m.handle });
                }
            }
        }
        refused
    }
}
