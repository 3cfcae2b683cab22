//! A supported Intel GPU found on PCI bus 0, driven with `i915-lite`: PCI
//! configuration through port I/O, GTTMMADR mapped uncached, PPGTT table
//! pages in gpu-dom's memory, the driver's self-test at boot.
//!
//! Tested against `i915-lite`'s register-level model on the host; it has
//! not run on a real GPU (none exists on the machines this project is
//! tested on).

extern crate alloc;

use alloc::vec::Vec;

use i915_lite::{Mmio, PciConfig, TableMemory, I915};
use unikernel::arch::x86_64::mmio;
use unikernel::arch::x86_64::pci_io::PortConfig;
use unikernel::pci::{self, Bdf, ConfigSpace};

use super::soft::Page;
use super::GpuStats;

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

impl From<i915_lite::Stats> for GpuStats {
    fn from(s: i915_lite::Stats) -> Self {
        GpuStats {
            writes: s.ggtt_writes + s.table_writes,
            invalidations: s.flushes,
            tables_in_use: s.tables_in_use,
            rejected: s.rejected,
        }
    }
}
