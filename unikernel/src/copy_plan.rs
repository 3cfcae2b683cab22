//! How to copy whole granted pages into a buffer of ours with
//! `GNTTABOP_copy`, whose segments may not cross a page boundary on either
//! side: each 4 KiB source page becomes one segment if its destination is
//! page aligned, else two (up to the next destination page boundary, then
//! the rest).
//!
//! Pure arithmetic over addresses, so it is tested on the host; the
//! hypercall lives in `xen::grant_copy`.
//!
//! # Invariants
//! - The segments of one source page cover its 4096 bytes exactly once, in
//!   order, and the destination range `dest..dest + 4096` exactly once.
//! - No segment crosses a page boundary on the source or the destination side.
#![forbid(unsafe_code)]

/// Bytes per page on both sides.
pub const PAGE: u64 = 4096;

/// One `GNTTABOP_copy` segment of a source page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset in the source page.
    pub src_offset: u16,
    /// Destination GFN (our own frame).
    pub dest_gfn: u64,
    /// Offset in the destination frame.
    pub dest_offset: u16,
    /// Bytes.
    pub len: u16,
}

/// The segments that copy one whole source page to the destination address
/// `dest` (a physical address of ours): one or two.
pub fn page_segments(dest: u64) -> ([Segment; 2], usize) {
    let off = dest % PAGE;
    let first = Segment {
        src_offset: 0,
        dest_gfn: dest / PAGE,
        dest_offset: off as u16,
        len: (PAGE - off) as u16,
    };
    if off == 0 {
        return ([first, first], 1);
    }
    let second = Segment {
        src_offset: (PAGE - off) as u16,
        dest_gfn: dest / PAGE + 1,
        dest_offset: 0,
        len: off as u16,
    };
    ([first, second], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(dest: u64) -> Vec<(u64, u64)> {
        let (segs, n) = page_segments(dest);
        segs[..n]
            .iter()
            .map(|s| (s.src_offset as u64, s.dest_gfn * PAGE + s.dest_offset as u64))
            .collect()
    }

    #[test]
    fn an_aligned_destination_is_one_whole_page_segment() {
        let (segs, n) = page_segments(0x1234_5000);
        assert_eq!(n, 1);
        assert_eq!(
            segs[0],
            Segment { src_offset: 0, dest_gfn: 0x12345, dest_offset: 0, len: 4096 }
        );
    }

    #[test]
    fn an_unaligned_destination_splits_at_its_page_boundary() {
        let (segs, n) = page_segments(0x1234_5010);
        assert_eq!(n, 2);
        assert_eq!(
            segs[0],
            Segment { src_offset: 0, dest_gfn: 0x12345, dest_offset: 0x10, len: 4096 - 0x10 }
        );
        assert_eq!(
            segs[1],
            Segment { src_offset: 4096 - 0x10, dest_gfn: 0x12346, dest_offset: 0, len: 0x10 }
        );
        assert_eq!(covered(0x1234_5010), vec![(0, 0x1234_5010), (4096 - 0x10, 0x1234_6000)]);
    }

    #[test]
    fn segments_cover_the_page_once_and_never_cross_a_boundary() {
        for off in [0u64, 1, 7, 8, 2048, 4088, 4095] {
            let dest = 0x40_0000 + off;
            let (segs, n) = page_segments(dest);
            let total: u64 = segs[..n].iter().map(|s| s.len as u64).sum();
            assert_eq!(total, PAGE, "offset {off}");
            let mut src = 0;
            let mut at = dest;
            for s in &segs[..n] {
                assert_eq!(s.src_offset as u64, src);
                assert_eq!(s.dest_gfn * PAGE + s.dest_offset as u64, at);
                assert!(s.src_offset as u64 + s.len as u64 <= PAGE);
                assert!(s.dest_offset as u64 + s.len as u64 <= PAGE);
                src += s.len as u64;
                at += s.len as u64;
            }
        }
    }
}
