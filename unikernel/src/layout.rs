//! Where gpu-dom puts the frames Xen maps into its physmap on request: the
//! shared-info page, the grant-table frames, the CPU pages (frontends' rings
//! mapped for the backend's CPU) and the window into which foreign grants
//! are mapped for the GPU (whose GFNs become GPU bus addresses).
//!
//! All four live in one *reserved region*: an aligned, empty stretch of
//! guest-physical space that no memory-map entry touches, placed well above
//! RAM and the 4 GiB hole so that firmware (hvmloader puts 64-bit PCI BARs just
//! above RAM) is unlikely to use it either.
//!
//! # Invariants
//! - The region overlaps no memory-map entry and ends at or below the limit
//!   (CPU physical address bits, one 512 GiB PML4 slot, what the IOMMU covers).
//! - The four parts are disjoint and inside the region; the window is last,
//!   so no address past a CPU page is a window address.
#![forbid(unsafe_code)]

use crate::memmap::{align_up, MemoryMap, Range};

/// Region size: one 1 GiB directory of 2 MiB pages.
pub const REGION_BYTES: u64 = 1 << 30;
/// Distance kept above RAM / the 4 GiB boundary.
pub const CLEARANCE: u64 = 16 << 30;
/// Grant-table frames reserved (v1: 512 refs each).
pub const GRANT_FRAMES_MAX: u64 = 64;
/// Starts the boot line that says what the image mapped read-only
/// (`arch::x86_64::paging::protect_boot_state`): its code range and its
/// hypercall page, which `cargo xtask` reads to tell QEMU's emulation
/// faults from the image's (`xtask/src/harness/triple_fault.rs`).
pub const READ_ONLY_LINE: &str = "read-only:";
/// Grant-table frames a domain sets up (v1: 512 refs each): 4096 refs,
/// enough for a guest that grants 2048 fresh pages for one batch besides its
/// ring and directory pages (`cargo xtask bench --xen`; 4 frames were not).
/// Here rather than in `xen::gnttab` so that host tools can read it.
pub const GRANT_FRAMES_WANTED: u32 = 8;
/// Frames for CPU pages (rings: one per device; self-tests).
pub const CPU_PAGE_FRAMES: u64 = 256;
/// Frames of the foreign-grant window.
pub const WINDOW_FRAMES: u64 = 65536;
/// Longest batch mapped into the window by one hypercall (`gpuif`'s
/// `MAX_ENTRIES`, the longest request).
pub const MAX_MAP_BATCH: usize = 2048;

const PAGE_SHIFT: u32 = 12;

/// The frame numbers of each part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The whole reserved region.
    pub region: Range,
    /// GFN of the shared-info page.
    pub shared_info_gfn: u64,
    /// First GFN of the grant-table frames (`GRANT_FRAMES_MAX` of them).
    pub grant_frames_gfn: u64,
    /// First GFN of the CPU pages (`CPU_PAGE_FRAMES` of them).
    pub cpu_pages_gfn: u64,
    /// First GFN of the foreign-grant window (`WINDOW_FRAMES` of them).
    pub window_gfn: u64,
}

/// Why no layout fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// No empty aligned region below `limit`.
    NoRoom {
        /// The lowest start tried.
        from: u64,
        /// The limit.
        limit: u64,
    },
}

/// Plans the reserved region for `map`, below `limit` (exclusive).
pub fn plan(map: &MemoryMap, limit: u64) -> Result<Layout, LayoutError> {
    let from = align_up(map.ram_top().max(1 << 32), REGION_BYTES) + CLEARANCE;
    let region = map
        .find_gap(from, REGION_BYTES, REGION_BYTES, limit)
        .ok_or(LayoutError::NoRoom { from, limit })?;
    let base = region.start >> PAGE_SHIFT;
    Ok(Layout {
        region,
        shared_info_gfn: base,
        grant_frames_gfn: base + 16,
        cpu_pages_gfn: base + 512,
        window_gfn: base + 1024,
    })
}

const _: () = assert!(16 + GRANT_FRAMES_MAX <= 512);
const _: () = assert!(GRANT_FRAMES_WANTED as u64 <= GRANT_FRAMES_MAX);
const _: () = assert!(512 + CPU_PAGE_FRAMES <= 1024);
const _: () = assert!((1024 + WINDOW_FRAMES) << PAGE_SHIFT <= REGION_BYTES);

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(u64, u64, u32)]) -> MemoryMap {
        let mut b = Vec::new();
        for &(a, s, t) in entries {
            b.extend_from_slice(&a.to_le_bytes());
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        }
        MemoryMap::from_start_info_bytes(&b)
    }

    #[test]
    fn region_sits_above_ram_and_the_hole_with_clearance() {
        let m = map(&[(0x10_0000, 0x1000_0000, 1), (0xfee0_0000, 0x1000, 2)]);
        let l = plan(&m, 1 << 40).unwrap();
        assert_eq!(l.region.start, (4 << 30) + CLEARANCE);
        assert_eq!(l.shared_info_gfn, l.region.start >> 12);
        assert!(l.grant_frames_gfn + GRANT_FRAMES_MAX <= l.cpu_pages_gfn);
        assert!(l.cpu_pages_gfn + CPU_PAGE_FRAMES <= l.window_gfn);
        assert!((l.window_gfn + WINDOW_FRAMES) << 12 <= l.region.end);
    }

    #[test]
    fn high_ram_and_reserved_entries_push_the_region_up() {
        // RAM up to 6 GiB + 5 bytes: the first candidate is 7 GiB + clearance,
        // and a reserved entry inside it pushes the region one GiB further.
        let m = map(&[(1 << 32, (2 << 30) + 5, 1), ((7 << 30) + CLEARANCE + 5, 4096, 2)]);
        let l = plan(&m, 1 << 40).unwrap();
        assert_eq!(l.region.start, (8u64 << 30) + CLEARANCE);
        assert!(!m.touches(&l.region));
    }

    #[test]
    fn a_too_small_physical_space_is_an_error() {
        let m = map(&[(0, 1 << 30, 1)]);
        assert_eq!(
            plan(&m, 1 << 34),
            Err(LayoutError::NoRoom { from: (4 << 30) + CLEARANCE, limit: 1 << 34 })
        );
    }
}
