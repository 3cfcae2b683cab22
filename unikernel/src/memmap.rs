//! The domain's memory map, and where the heap may go.
//!
//! Memory comes only from the map Xen hands over: the `hvm_start_info`
//! memmap (version >= 1, entries > 0), or else the E820 table that
//! `XENMEM_memory_map` returns (what `docs/misc/pvh.pandoc` documents for
//! guests without a start-info map). This module parses both formats from
//! bytes and answers "which RAM is free", given the ranges already in use
//! (the image, the start info and everything it points at, ring pages).
//!
//! # Invariants
//! - A returned free range lies inside one RAM entry, outside every reserved
//!   range and every non-RAM entry (entries may overlap; non-RAM wins), and is
//!   page aligned.
//! - Parsing never panics: a table longer than [`MAX_REGIONS`] is truncated
//!   and reported.
#![forbid(unsafe_code)]

use xen_abi::start_info::{E820_ENTRY_SIZE, XEN_HVM_MEMMAP_TYPE_RAM};

/// Most memory-map entries kept.
pub const MAX_REGIONS: usize = 128;
const PAGE: u64 = 4096;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// `[start, start + len)`, saturating at `u64::MAX`.
    pub const fn new(start: u64, len: u64) -> Self {
        Range { start, end: start.saturating_add(len) }
    }
    /// Bytes in the range.
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    /// True when the range holds no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    /// True when the two ranges share a byte.
    pub const fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }
    /// The smallest page-aligned range covering `self`.
    pub const fn page_cover(&self) -> Range {
        Range { start: self.start & !(PAGE - 1), end: align_up(self.end, PAGE) }
    }
}

/// `x` rounded up to a multiple of `align` (a power of two), saturating.
pub const fn align_up(x: u64, align: u64) -> u64 {
    match x.checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => !(align - 1),
    }
}

/// One memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Region {
    /// The address range.
    pub range: Range,
    /// `XEN_HVM_MEMMAP_TYPE_*` (the ACPI/E820 type numbers).
    pub kind: u32,
}

impl Region {
    /// True for usable RAM.
    pub const fn is_ram(&self) -> bool {
        self.kind == XEN_HVM_MEMMAP_TYPE_RAM
    }
}

/// Where the map came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `hvm_start_info.memmap_paddr` (version >= 1).
    StartInfo,
    /// `XENMEM_memory_map` (E820 format).
    XenmemMemoryMap,
}

/// A parsed memory map.
#[derive(Clone, Debug)]
pub struct MemoryMap {
    regions: [Region; MAX_REGIONS],
    len: usize,
    /// Entries dropped because the table held more than [`MAX_REGIONS`].
    pub truncated: usize,
    /// Where it came from.
    pub source: Source,
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

impl MemoryMap {
    fn empty(source: Source) -> Self {
        MemoryMap { regions: [Region::default(); MAX_REGIONS], len: 0, truncated: 0, source }
    }

    fn push(&mut self, r: Region) {
        if r.range.is_empty() {
            return;
        }
        if self.len == MAX_REGIONS {
            self.truncated += 1;
        } else {
            self.regions[self.len] = r;
            self.len += 1;
        }
    }

    /// Parses `hvm_memmap_table_entry` records (24 bytes each: addr, size,
    /// type, reserved); a trailing partial record is ignored.
    pub fn from_start_info_bytes(bytes: &[u8]) -> Self {
        let mut m = Self::empty(Source::StartInfo);
        for e in bytes.chunks_exact(24) {
            let start = le_u64(&e[0..]);
            m.push(Region { range: Range::new(start, le_u64(&e[8..])), kind: le_u32(&e[16..]) });
        }
        m
    }

    /// Parses packed E820 records (20 bytes each: addr, size, type).
    pub fn from_e820_bytes(bytes: &[u8]) -> Self {
        let mut m = Self::empty(Source::XenmemMemoryMap);
        for e in bytes.chunks_exact(E820_ENTRY_SIZE) {
            let start = le_u64(&e[0..]);
            m.push(Region { range: Range::new(start, le_u64(&e[8..])), kind: le_u32(&e[16..]) });
        }
        m
    }

    /// The entries, in table order.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.len]
    }

    /// Total bytes of RAM.
    pub fn ram_bytes(&self) -> u64 {
        self.regions().iter().filter(|r| r.is_ram()).map(|r| r.range.len()).sum()
    }

    /// One past the highest RAM byte (0 if there is no RAM).
    pub fn ram_top(&self) -> u64 {
        self.regions().iter().filter(|r| r.is_ram()).map(|r| r.range.end).max().unwrap_or(0)
    }

    /// True when `r` overlaps any entry of the map (RAM or not).
    pub fn touches(&self, r: &Range) -> bool {
        self.regions().iter().any(|e| e.range.overlaps(r))
    }

    /// The largest page-aligned range of RAM inside `[min, max)` that avoids
    /// every non-RAM entry and every range in `reserved`.
    pub fn largest_free(&self, min: u64, max: u64, reserved: &[Range]) -> Option<Range> {
        let mut best: Option<Range> = None;
        for ram in self.regions().iter().filter(|r| r.is_ram()) {
            let clipped = Range {
                start: align_up(ram.range.start.max(min), PAGE),
                end: ram.range.end.min(max) & !(PAGE - 1),
            };
            // Holes punched by non-RAM entries and reserved ranges.
            let holes = self
                .regions()
                .iter()
                .filter(|r| !r.is_ram())
                .map(|r| r.range.page_cover())
                .chain(reserved.iter().map(|r| r.page_cover()));
            let mut cursor = clipped.start;
            loop {
                // The first hole that starts at or after `cursor`... is found
                // by scanning: the free piece from `cursor` ends at the lowest
                // hole start above it, and a hole covering `cursor` moves it.
                let mut piece_end = clipped.end;
                let mut moved = false;
                for h in holes.clone() {
                    if h.start <= cursor && cursor < h.end {
                        cursor = h.end;
                        moved = true;
                    } else if h.start > cursor && h.start < piece_end {
                        piece_end = h.start;
                    }
                }
                if moved {
                    if cursor >= clipped.end {
                        break;
                    }
                    continue;
                }
                let piece = Range { start: cursor, end: piece_end };
                if !piece.is_empty() && best.is_none_or(|b| piece.len() > b.len()) {
                    best = Some(piece);
                }
                if piece_end >= clipped.end {
                    break;
                }
                cursor = piece_end;
            }
        }
        best
    }

    /// The highest 4 KiB page of RAM that ends at or below `max` and overlaps
    /// no non-RAM entry and no range in `reserved`.
    pub fn highest_free_page(&self, max: u64, reserved: &[Range]) -> Option<u64> {
        let holes = || {
            self.regions()
                .iter()
                .filter(|r| !r.is_ram())
                .map(|r| r.range.page_cover())
                .chain(reserved.iter().map(|r| r.page_cover()))
        };
        let mut best: Option<u64> = None;
        for ram in self.regions().iter().filter(|r| r.is_ram()) {
            let floor = align_up(ram.range.start, PAGE);
            let mut top = ram.range.end.min(max) & !(PAGE - 1);
            // Walk down from the top: a page that meets a hole moves below it.
            while top >= floor.saturating_add(PAGE) && best.is_none_or(|b| top - PAGE > b) {
                let page = Range::new(top - PAGE, PAGE);
                match holes().filter(|h| h.overlaps(&page)).map(|h| h.start).min() {
                    None => {
                        best = Some(page.start);
                        break;
                    }
                    Some(start) => top = start & !(PAGE - 1),
                }
            }
        }
        best
    }

    /// The lowest `align`-aligned range of `len` bytes at or above `min` that
    /// overlaps no entry of the map and ends at or below `limit`.
    pub fn find_gap(&self, min: u64, len: u64, align: u64, limit: u64) -> Option<Range> {
        let mut start = align_up(min, align);
        loop {
            let cand = Range::new(start, len);
            if cand.end > limit || cand.len() != len {
                return None;
            }
            match self
                .regions()
                .iter()
                .filter(|e| e.range.overlaps(&cand))
                .map(|e| e.range.end)
                .max()
            {
                None => return Some(cand),
                Some(end) => start = align_up(end, align),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn si_entry(addr: u64, size: u64, kind: u32) -> [u8; 24] {
        let mut e = [0u8; 24];
        e[0..8].copy_from_slice(&addr.to_le_bytes());
        e[8..16].copy_from_slice(&size.to_le_bytes());
        e[16..20].copy_from_slice(&kind.to_le_bytes());
        e
    }

    /// A PVH dom0-like map: low RAM, a reserved BIOS area, RAM from 1 MiB to
    /// 256 MiB, ACPI tables, the reserved top of the 4 GiB hole.
    fn dom0_like() -> MemoryMap {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&si_entry(0, 0x9f000, 1));
        bytes.extend_from_slice(&si_entry(0xf0000, 0x10000, 2));
        bytes.extend_from_slice(&si_entry(0x10_0000, 0xff0_0000, 1));
        bytes.extend_from_slice(&si_entry(0xfff_0000, 0x1_0000, 3));
        bytes.extend_from_slice(&si_entry(0xfffc_0000, 0x4_0000, 2));
        MemoryMap::from_start_info_bytes(&bytes)
    }

    #[test]
    fn start_info_entries_parse_in_order() {
        let m = dom0_like();
        assert_eq!(m.regions().len(), 5);
        assert_eq!(
            m.regions()[2],
            Region { range: Range { start: 0x10_0000, end: 0x1000_0000 }, kind: 1 }
        );
        assert_eq!(m.ram_top(), 0x1000_0000);
        assert_eq!(m.source, Source::StartInfo);
    }

    #[test]
    fn e820_records_are_twenty_bytes_packed() {
        let mut bytes = Vec::new();
        for (a, s, t) in
            [(0u64, 0xa0000u64, 1u32), (0x10_0000, 0x3ff0_0000, 1), (0xfeff_c000, 0x4000, 2)]
        {
            bytes.extend_from_slice(&a.to_le_bytes());
            bytes.extend_from_slice(&s.to_le_bytes());
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        bytes.extend_from_slice(&[0xff; 7]); // partial trailing record: ignored
        let m = MemoryMap::from_e820_bytes(&bytes);
        assert_eq!(m.regions().len(), 3);
        assert_eq!(m.regions()[1].range, Range { start: 0x10_0000, end: 0x4000_0000 });
        assert_eq!(m.regions()[2].kind, 2);
        assert_eq!(m.ram_bytes(), 0xa0000 + 0x3ff0_0000);
    }

    #[test]
    fn largest_free_avoids_the_image_and_start_info() {
        let m = dom0_like();
        let image = Range::new(0x100_0000, 0x20_0000); // 16 MiB .. 18 MiB
        let si = Range::new(0x120_0123, 0x40); // inside the image's next page
        let free = m.largest_free(0x10_0000, 1 << 32, &[image, si]).unwrap();
        assert_eq!(free, Range { start: 0x120_1000, end: 0xfff_0000 });
        assert!(!free.overlaps(&image) && !free.overlaps(&si.page_cover()));
    }

    #[test]
    fn largest_free_respects_non_ram_entries_overlapping_ram() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&si_entry(0x10_0000, 0x100_0000, 1));
        bytes.extend_from_slice(&si_entry(0x80_0000, 0x1000, 2)); // hole inside RAM
        let m = MemoryMap::from_start_info_bytes(&bytes);
        let free = m.largest_free(0, u64::MAX, &[]).unwrap();
        assert_eq!(free, Range { start: 0x80_1000, end: 0x110_0000 });
    }

    #[test]
    fn largest_free_clips_to_the_window() {
        let m = dom0_like();
        assert_eq!(
            m.largest_free(0x10_0000, 0x20_0000, &[]),
            Some(Range { start: 0x10_0000, end: 0x20_0000 })
        );
        assert_eq!(m.largest_free(0x1000_0000, 1 << 32, &[]), None);
    }

    #[test]
    fn highest_free_page_is_below_the_top_and_every_hole() {
        let m = dom0_like();
        // RAM 1 MiB..255 MiB (ACPI at 255 MiB), reserved top of the 4 GiB hole.
        assert_eq!(m.highest_free_page(1 << 32, &[]), Some(0xffe_f000));
        let heap = Range { start: 0xf00_0000, end: 0xfff_0000 };
        let spare = Range::new(0xeff_f000, 4096);
        assert_eq!(m.highest_free_page(1 << 32, &[heap]), Some(0xeff_f000));
        assert_eq!(m.highest_free_page(1 << 32, &[heap, spare]), Some(0xeff_e000));
        // `max` clips; a reserved range's partial page counts as taken.
        assert_eq!(m.highest_free_page(0x20_0800, &[]), Some(0x1f_f000));
        let odd = Range::new(0x1f_fff0, 0x20);
        assert_eq!(m.highest_free_page(0x20_1000, &[odd]), Some(0x1f_e000));
        // Below 640 KiB when nothing above is free.
        let all_high = Range { start: 0x10_0000, end: 0x1000_0000 };
        assert_eq!(m.highest_free_page(1 << 32, &[all_high]), Some(0x9e_000));
        assert_eq!(m.highest_free_page(0x1000, &[]), Some(0));
        assert_eq!(m.highest_free_page(0xfff, &[]), None);
    }

    #[test]
    fn find_gap_skips_every_entry_and_honours_the_limit() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&si_entry(0x1_0000_0000, 0x4000_0000, 1)); // RAM 4..5 GiB
        bytes.extend_from_slice(&si_entry(0x1_4000_0000, 0x1000, 2)); // reserved at 5 GiB
        let m = MemoryMap::from_start_info_bytes(&bytes);
        let g = m.find_gap(1 << 32, 1 << 30, 1 << 30, 1 << 40).unwrap();
        assert_eq!(g, Range::new(0x1_8000_0000, 1 << 30));
        assert_eq!(m.find_gap(1 << 32, 1 << 30, 1 << 30, 0x1_8000_0000), None);
    }

    #[test]
    fn oversized_tables_are_truncated_not_overflowed() {
        let mut bytes = Vec::new();
        for i in 0..(MAX_REGIONS as u64 + 5) {
            bytes.extend_from_slice(&si_entry(i << 20, 4096, 1));
        }
        let m = MemoryMap::from_start_info_bytes(&bytes);
        assert_eq!(m.regions().len(), MAX_REGIONS);
        assert_eq!(m.truncated, 5);
    }

    #[test]
    fn zero_sized_and_wrapping_entries_are_harmless() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&si_entry(0x1000, 0, 1));
        bytes.extend_from_slice(&si_entry(u64::MAX - 10, 100, 1));
        let m = MemoryMap::from_start_info_bytes(&bytes);
        assert_eq!(m.regions().len(), 1);
        assert_eq!(m.regions()[0].range.end, u64::MAX);
        let _ = m.largest_free(0, u64::MAX, &[]);
    }
}
