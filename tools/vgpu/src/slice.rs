//! GGTT slices: the range of GGTT entries a guest may use.
//!
//! The toolstack gives each guest of a backend a disjoint slice of the GGTT
//! the backend manages. This module decides where a new slice goes.
//!
//! ## Invariants
//!
//! - A placed or accepted slice is non-empty, lies within `0..total`, and
//!   overlaps none of the slices given as already attached.
//! - Arithmetic is done in `u64`: no slice near `u32::MAX` wraps.

use std::fmt;

/// `len` GGTT entries starting at entry `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slice {
    /// First entry.
    pub base: u32,
    /// Number of entries.
    pub len: u32,
}

impl Slice {
    /// One past the last entry.
    pub fn end(&self) -> u64 {
        u64::from(self.base) + u64::from(self.len)
    }

    /// Whether the two share at least one entry.
    pub fn overlaps(&self, other: &Slice) -> bool {
        self.len > 0
            && other.len > 0
            && u64::from(self.base) < other.end()
            && u64::from(other.base) < self.end()
    }
}

/// Printed as `base+len`, the form `vgpu list` and `vgpu attach` show.
impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.base, self.len)
    }
}

/// Where a slice cannot go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused<'a, T> {
    /// It ends past `total`.
    OutOfRange,
    /// It overlaps this attached slice, owned by `T`.
    Overlaps(Slice, &'a T),
    /// No free range of this length; the largest free range has this many entries.
    NoRoom {
        /// The largest free range.
        largest_free: u32,
    },
}

/// Checks an explicit slice against the GGTT size and the attached slices.
pub fn check<'a, T>(
    wanted: Slice,
    total: u32,
    attached: &'a [(Slice, T)],
) -> Result<(), Refused<'a, T>> {
    if wanted.end() > u64::from(total) {
        return Err(Refused::OutOfRange);
    }
    match attached.iter().find(|(s, _)| s.overlaps(&wanted)) {
        Some((s, owner)) => Err(Refused::Overlaps(*s, owner)),
        None => Ok(()),
    }
}

/// The lowest base at which `len` entries fit in `0..total` without
/// overlapping any attached slice.
pub fn place_lowest<T>(
    len: u32,
    total: u32,
    attached: &[(Slice, T)],
) -> Result<Slice, Refused<'_, T>> {
    let mut taken: Vec<Slice> = attached.iter().map(|(s, _)| *s).filter(|s| s.len > 0).collect();
    taken.sort();
    let mut cursor: u64 = 0;
    let mut largest_free: u64 = 0;
    for s in taken.iter().chain(std::iter::once(&Slice { base: total, len: 0 })) {
        let gap_end = u64::from(s.base).min(u64::from(total));
        if gap_end > cursor {
            let gap = gap_end - cursor;
            if gap >= u64::from(len) {
                // cursor < gap_end <= total <= u32::MAX.
                return Ok(Slice { base: cursor as u32, len });
            }
            largest_free = largest_free.max(gap);
        }
        cursor = cursor.max(s.end());
    }
    Err(Refused::NoRoom { largest_free: largest_free.min(u64::from(u32::MAX)) as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(base: u32, len: u32) -> (Slice, &'static str) {
        (Slice { base, len }, "x")
    }

    #[test]
    fn first_slice_goes_at_zero() {
        assert_eq!(place_lowest::<()>(4096, 65536, &[]), Ok(Slice { base: 0, len: 4096 }));
    }

    #[test]
    fn placement_takes_the_lowest_gap_that_fits() {
        let attached = [s(0, 4096), s(6144, 4096), s(16384, 4096)];
        // The 2048-entry gap at 4096 is too small for 4096 entries.
        assert_eq!(place_lowest(4096, 65536, &attached), Ok(Slice { base: 10240, len: 4096 }));
        assert_eq!(place_lowest(2048, 65536, &attached), Ok(Slice { base: 4096, len: 2048 }));
    }

    #[test]
    fn unsorted_and_overlapping_attached_slices_are_handled() {
        let attached = [s(8192, 4096), s(0, 4096), s(2048, 4096)];
        assert_eq!(place_lowest(2048, 65536, &attached), Ok(Slice { base: 6144, len: 2048 }));
    }

    #[test]
    fn full_ggtt_reports_the_largest_free_range() {
        let attached = [s(0, 60000), s(61000, 4000)];
        assert_eq!(
            place_lowest(4096, 65536, &attached),
            Err(Refused::NoRoom { largest_free: 1000 })
        );
        assert_eq!(place_lowest(1000, 65536, &attached), Ok(Slice { base: 60000, len: 1000 }));
        let attached = [s(0, 60000), s(60000, 5000)];
        assert_eq!(place_lowest(536, 65536, &attached), Ok(Slice { base: 65000, len: 536 }));
    }

    #[test]
    fn explicit_slices_must_fit_and_not_overlap() {
        let attached = [s(4096, 4096)];
        assert_eq!(check(Slice { base: 0, len: 4096 }, 65536, &attached), Ok(()));
        assert_eq!(
            check(Slice { base: 4095, len: 2 }, 65536, &attached),
            Err(Refused::Overlaps(Slice { base: 4096, len: 4096 }, &"x"))
        );
        assert_eq!(
            check(Slice { base: 65535, len: 2 }, 65536, &attached),
            Err(Refused::OutOfRange)
        );
        assert_eq!(
            check(Slice { base: u32::MAX, len: u32::MAX }, u32::MAX, &attached),
            Err(Refused::OutOfRange)
        );
    }
}
