//! Plain values that cross the `gtt` interface.

/// A Xen domain id (`domid_t` in `xen/include/public/xen.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomId(pub u16);

/// A grant reference (`grant_ref_t` in `xen/include/public/grant_table.h`),
/// an index into the granting domain's grant table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantRef(pub u32);

/// A page-aligned address on the backend's side of the IOMMU: the address at
/// which the GPU reaches a page through gpu-dom's own IOMMU context. For a PVH
/// or HVM driver domain this is its guest-physical address (the p2m is what the
/// IOMMU enforces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BusAddr(pub u64);

impl BusAddr {
    /// The 4 KiB frame number of this address.
    pub const fn frame(self) -> u64 {
        self.0 >> PAGE_SHIFT
    }
}

/// log2 of the GPU and CPU page size handled here (4 KiB).
pub const PAGE_SHIFT: u32 = 12;
/// The GPU and CPU page size handled here (4 KiB).
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// What the GPU may do with a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// The GPU may read the page only.
    ReadOnly,
    /// The GPU may read and write the page.
    ReadWrite,
}

impl Access {
    /// True when `self` grants no more than `limit` does.
    pub const fn within(self, limit: Access) -> bool {
        matches!((self, limit), (Access::ReadOnly, _) | (_, Access::ReadWrite))
    }
}

/// A guest's PPGTT context, numbered per guest (0 .. `max_contexts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextId(pub u16);

/// Levels of a Gen8+ 4-level PPGTT (48-bit GPU virtual addresses), named as
/// in Linux i915 (`gt/intel_gtt.h`: PML4, PDP, PD, PT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Level 4: the context's root; entries point at PDP tables (512 GiB each).
    Pml4,
    /// Level 3: entries point at page directories (1 GiB each).
    Pdp,
    /// Level 2: entries point at page tables (2 MiB each).
    Pd,
    /// Level 1: entries point at 4 KiB pages (the leaves).
    Pt,
}

impl Level {
    /// Root first, leaf level last.
    pub const ALL: [Level; 4] = [Level::Pml4, Level::Pdp, Level::Pd, Level::Pt];

    /// Bit position of this level's 9-bit index in a GPU virtual address.
    pub const fn shift(self) -> u32 {
        match self {
            Level::Pml4 => 39,
            Level::Pdp => 30,
            Level::Pd => 21,
            Level::Pt => 12,
        }
    }

    /// This level's index (0..512) in `va`.
    pub const fn index(self, va: u64) -> u16 {
        ((va >> self.shift()) & 0x1ff) as u16
    }

    /// The level below, or `None` for the leaf level.
    pub const fn below(self) -> Option<Level> {
        match self {
            Level::Pml4 => Some(Level::Pdp),
            Level::Pdp => Some(Level::Pd),
            Level::Pd => Some(Level::Pt),
            Level::Pt => None,
        }
    }
}

/// Entries per PPGTT table page (4096 / 8).
pub const ENTRIES_PER_TABLE: usize = 512;
/// Width of a PPGTT GPU virtual address (4-level, Gen8+).
pub const PPGTT_VA_BITS: u32 = 48;
