//! The GPU gpu-dom drives: a supported Intel GPU found on PCI bus 0
//! (`i915-lite`), or the software GPU when there is none.
//!
//! A PVH domU has no PCI devices (Xen's toolstack refuses passthrough to
//! PVH domUs); an HVM domU has what was passed through to it
//! (`xl-configs/gpu-dom-hvm.cfg`). Either way the choice is made once, at
//! boot, and said in the log; `gtt` drives whichever it is through the same
//! [`GpuTables`] calls.
//!
//! The Intel path is tested against `i915-lite`'s register-level model on
//! the host; it has not run on a real GPU (none exists on the machines this
//! project is tested on).

extern crate alloc;

use alloc::vec::Vec;

use gtt::platform::{GpuCaps, GpuTables, MappingCap, TablePage};
use gtt::{Access, BusAddr, Level};
use i915_lite::{Mmio, PciConfig, TableMemory, I915};
use unikernel::arch::x86_64::mmio;
use unikernel::arch::x86_64::pci_io::PortConfig;
use unikernel::pci::{self, Bdf, ConfigSpace};

use crate::softgpu::{Page, SoftGpu};

/// PCI class code of display controllers (bits 23..16 of the class dword).
const CLASS_DISPLAY: u32 = 0x03;
const VENDOR_INTEL: u16 = 0x8086;

/// One function's configuration space, for the driver.
struct FunctionConfig(Bdf);

impl PciConfig for FunctionConfig {
    fn read32(&mut self, offset: u16) -> u32 {
        match u8::try_from(offset) {
            Ok(o) => PortConfig.read32(self.0, o),
            // Extended configuration space is not reachable through 0xCF8.
            Err(_) => u32::MAX,
        }
    }
    fn write32(&mut self, offset: u16, value: u32) {
        if let Ok(o) = u8::try_from(offset) {
            PortConfig.write32(self.0, o, value);
        }
    }
}

/// GTTMMADR, mapped uncached.
pub struct Bar(mmio::Mmio);

impl Mmio for Bar {
    fn read32(&mut self, offset: u32) -> u32 {
        self.0.read32(offset as u64)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        self.0.write32(offset as u64, value)
    }
    fn read64(&mut self, offset: u32) -> u64 {
        self.0.read64(offset as u64)
    }
    fn write64(&mut self, offset: u32, value: u64) {
        self.0.write64(offset as u64, value)
    }
}

/// PPGTT table pages in gpu-dom's memory; a page's bus address is its
/// guest-physical address (gpu-dom's p2m is what its IOMMU context enforces).
pub struct HeapTables(Vec<Page>);

impl TableMemory for HeapTables {
    fn pages(&self) -> u32 {
        self.0.len() as u32
    }
    fn bus(&self, page: u32) -> u64 {
        self.0.as_ptr() as u64 + page as u64 * 4096
    }
    fn read(&self, page: u32, index: u16) -> u64 {
        self.0[page as usize].0[index as usize]
    }
    fn write(&mut self, page: u32, index: u16, value: u64) {
        self.0[page as usize].0[index as usize] = value;
    }
    fn make_visible(&mut self) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// The Intel driver as gpu-dom instantiates it.
pub type IntelGpu = I915<Bar, HeapTables>;

/// Looks for a supported Intel GPU on bus 0; sets it up and runs its
/// non-destructive self-test. `None` (with the reason logged) otherwise.
pub fn find_intel(ggtt_limit: u32, table_pages: usize) -> Option<IntelGpu> {
    let mut found = None;
    pci::scan_bus0(&mut PortConfig, |f| {
        if found.is_none() && f.vendor == VENDOR_INTEL && f.class >> 16 == CLASS_DISPLAY {
            found = Some(f);
        }
    });
    let f = found?;
    let mut cfg = FunctionConfig(f.bdf);
    let info = match i915_lite::probe(&mut cfg) {
        Ok(info) => info,
        Err(e) => {
            log::warn!("Intel display device {:04x} at {:?}: {e}", f.device, f.bdf);
            return None;
        }
    };
    let bar = match mmio::map_uncached(info.gttmmadr.base, info.gttmmadr.size) {
        Ok(m) => Bar(m),
        Err(e) => {
            log::warn!("cannot map GTTMMADR at {:#x}: {e:?}", info.gttmmadr.base);
            return None;
        }
    };
    let mut pages = Vec::with_capacity(table_pages);
    pages.resize(table_pages, Page([0; 512]));
    let config = i915_lite::Config { ggtt_limit, ..i915_lite::Config::default() };
    let mut gpu = match I915::new(info, bar, HeapTables(pages), config) {
        Ok(g) => g,
        Err(e) => {
            log::warn!("i915-lite could not set up the GPU: {e:?}");
            return None;
        }
    };
    match i915_lite::selftest(&mut gpu) {
        Ok(report) => {
            for line in alloc::format!("{report}").lines() {
                log::info!("{line}");
            }
            Some(gpu)
        }
        Err(e) => {
            log::warn!("GPU self-test failed: {e}");
            None
        }
    }
}

/// Whichever GPU gpu-dom drives.
pub enum Gpu {
    /// A supported Intel GPU (i915-lite).
    Intel(alloc::boxed::Box<IntelGpu>),
    /// Tables in gpu-dom's memory that no device reads.
    Soft(SoftGpu),
}

macro_rules! each {
    ($self:ident, $g:ident => $e:expr) => {
        match $self {
            Gpu::Intel($g) => $e,
            Gpu::Soft($g) => $e,
        }
    };
}

impl GpuTables for Gpu {
    fn caps(&self) -> GpuCaps {
        each!(self, g => g.caps())
    }
    fn ggtt_set(&mut self, cap: &MappingCap, index: u32, page: BusAddr, access: Access) {
        each!(self, g => g.ggtt_set(cap, index, page, access))
    }
    fn ggtt_clear(&mut self, cap: &MappingCap, index: u32) {
        each!(self, g => g.ggtt_clear(cap, index))
    }
    fn table_alloc(&mut self, cap: &MappingCap, level: Level) -> Option<TablePage> {
        each!(self, g => g.table_alloc(cap, level))
    }
    fn table_free(&mut self, cap: &MappingCap, table: TablePage) {
        each!(self, g => g.table_free(cap, table))
    }
    fn table_set_leaf(&mut self, cap: &MappingCap, t: TablePage, i: u16, p: BusAddr, a: Access) {
        each!(self, g => g.table_set_leaf(cap, t, i, p, a))
    }
    fn table_set_dir(&mut self, cap: &MappingCap, t: TablePage, l: Level, i: u16, c: TablePage) {
        each!(self, g => g.table_set_dir(cap, t, l, i, c))
    }
    fn table_clear(&mut self, cap: &MappingCap, table: TablePage, level: Level, index: u16) {
        each!(self, g => g.table_clear(cap, table, level, index))
    }
    fn invalidate(&mut self, cap: &MappingCap) {
        each!(self, g => g.invalidate(cap))
    }
}

impl Gpu {
    /// What the GPU did, in the software GPU's terms (for the exit log).
    pub fn stats(&self) -> crate::softgpu::SoftGpuStats {
        match self {
            Gpu::Soft(g) => g.stats(),
            Gpu::Intel(g) => {
                let s = g.stats();
                crate::softgpu::SoftGpuStats {
                    writes: s.ggtt_writes + s.table_writes,
                    invalidations: s.flushes,
                    tables_in_use: s.tables_in_use,
                    rejected: s.rejected,
                }
            }
        }
    }

    /// Whether every entry points at scratch and no table is in use (the
    /// Intel driver reports table use only; its GGTT is checked by `gtt`).
    pub fn is_idle(&self) -> bool {
        match self {
            Gpu::Soft(g) => g.is_idle(),
            Gpu::Intel(g) => g.stats().tables_in_use == 0,
        }
    }
}
