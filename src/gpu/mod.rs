//! The GPU gpu-dom drives, chosen once at boot: a supported Intel GPU found
//! on PCI bus 0 (`intel`, with `i915-lite`), or, when there is none, the
//! software GPU (`soft`: the same Gen8 tables in gpu-dom's memory, read by
//! no device). A PVH domU has no PCI devices (Xen's toolstack refuses
//! passthrough to PVH domUs); an HVM domU has what was passed through to it
//! (`xl-configs/gpu-dom-hvm.cfg`). Either way the choice is said in the log,
//! and `gtt` drives it through the same [`GpuTables`] calls.

#[cfg(target_os = "none")]
mod intel;
pub mod soft;

#[cfg(target_os = "none")]
pub use select::{choose, Gpu};

/// What a GPU did, for the exit log and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Entries written (set or cleared).
    pub writes: u64,
    /// Invalidations (TLB flushes).
    pub invalidations: u64,
    /// Table pages in use now.
    pub tables_in_use: u32,
    /// Calls that named a page, table or index the GPU does not have (gtt
    /// never does this; a non-zero value is a bug).
    pub rejected: u64,
}

#[cfg(target_os = "none")]
mod select {
    extern crate alloc;

    use alloc::boxed::Box;

    use gtt::platform::{GpuCaps, GpuTables, MappingCap, TablePage};
    use gtt::{Access, BusAddr, Level};

    use super::intel::{self, IntelGpu};
    use super::soft::SoftGpu;
    use super::GpuStats;

    /// Whichever GPU gpu-dom drives.
    pub enum Gpu {
        /// A supported Intel GPU (i915-lite).
        Intel(Box<IntelGpu>),
        /// Tables in gpu-dom's memory that no device reads.
        Soft(SoftGpu),
    }

    /// Drives a supported Intel GPU if one is found, else the software GPU,
    /// saying which; returns it and the bytes its tables take.
    pub fn choose(ggtt_entries: u32, table_pages: usize) -> (Gpu, usize) {
        match intel::find_intel(ggtt_entries, table_pages) {
            Some(gpu) => {
                log::info!("driving the Intel GPU above (i915-lite)");
                (Gpu::Intel(Box::new(gpu)), table_pages * 4096)
            }
            None => {
                log::info!(
                    "WARNING: no Intel GPU found (no PCI devices in a PVH domU) -> using the \
                     software GPU ({ggtt_entries} GGTT entries, {table_pages} PPGTT table pages \
                     in gpu-dom memory; guests' mappings are real grant mappings, but no device \
                     reads them)"
                );
                let soft = SoftGpu::new(ggtt_entries, table_pages);
                let footprint = soft.footprint();
                (Gpu::Soft(soft), footprint)
            }
        }
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
        fn table_set_leaf(
            &mut self,
            cap: &MappingCap,
            t: TablePage,
            i: u16,
            p: BusAddr,
            a: Access,
        ) {
            each!(self, g => g.table_set_leaf(cap, t, i, p, a))
        }
        fn table_set_dir(
            &mut self,
            cap: &MappingCap,
            t: TablePage,
            l: Level,
            i: u16,
            c: TablePage,
        ) {
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
        /// What the GPU did.
        pub fn stats(&self) -> GpuStats {
            match self {
                Gpu::Soft(g) => g.stats(),
                Gpu::Intel(g) => g.stats().into(),
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
}
