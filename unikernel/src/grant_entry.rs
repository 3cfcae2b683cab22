//! Grant-table v1 entry encoding and the bookkeeping of our own grant refs.
//!
//! A v1 entry (`grant_table.h`, `struct grant_entry_v1`) is 8 bytes: `flags`
//! (u16), `domid` (u16), `frame` (u32). To grant, a domain writes `domid` and
//! `frame`, issues a write barrier, then writes `flags`; to revoke, it clears
//! `flags` with a compare-exchange that fails while Xen has the grant mapped
//! (`GTF_reading`/`GTF_writing` set).
//!
//! # Invariants
//! - [`RefAllocator`] never hands out the reserved refs `0..8`, nor a ref twice
//!   before it is freed.
//! - [`encode_permit`] refuses frames that do not fit the v1 32-bit field.
#![forbid(unsafe_code)]

use xen_abi::grant_table::{
    GrantRef, GNTTAB_NR_RESERVED_ENTRIES, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING,
};
use xen_abi::DomId;

/// The three fields of a v1 entry, before they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermitEntry {
    /// `GTF_permit_access`, plus `GTF_readonly` if read-only.
    pub flags: u16,
    /// The grantee.
    pub domid: DomId,
    /// The granted GFN.
    pub frame: u32,
}

/// Why an entry cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The GFN does not fit the 32-bit v1 `frame` field.
    FrameTooHigh(u64),
}

/// The entry that lets `domid` map `gfn` (read-only when `readonly`).
pub fn encode_permit(domid: DomId, gfn: u64, readonly: bool) -> Result<PermitEntry, EncodeError> {
    let frame = u32::try_from(gfn).map_err(|_| EncodeError::FrameTooHigh(gfn))?;
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    Ok(PermitEntry { flags, domid, frame })
}

/// True when Xen still has the grant mapped (flags show a reader or writer):
/// the entry may not be revoked yet.
pub const fn in_use(flags: u16) -> bool {
    flags & (GTF_READING | GTF_WRITING) != 0
}

/// Allocates grant refs `8..capacity` from a bitmap.
#[derive(Clone, Debug)]
pub struct RefAllocator<const WORDS: usize> {
    used: [u64; WORDS],
    capacity: u32,
    next: u32,
}

impl<const WORDS: usize> RefAllocator<WORDS> {
    /// An allocator for refs below `capacity` (clamped to `WORDS * 64`).
    pub fn new(capacity: u32) -> Self {
        let capacity = capacity.min((WORDS * 64) as u32);
        let mut a = RefAllocator { used: [0; WORDS], capacity, next: GNTTAB_NR_RESERVED_ENTRIES };
        for r in 0..GNTTAB_NR_RESERVED_ENTRIES.min(capacity) {
            a.used[r as usize / 64] |= 1 << (r % 64);
        }
        a
    }

    /// A free ref, now marked used.
    pub fn alloc(&mut self) -> Option<GrantRef> {
        for i in 0..self.capacity {
            let r = (self.next + i) % self.capacity;
            let (w, b) = (r as usize / 64, r % 64);
            if self.used[w] & (1 << b) == 0 {
                self.used[w] |= 1 << b;
                self.next = (r + 1) % self.capacity;
                return Some(r);
            }
        }
        None
    }

    /// Returns `r` to the pool (reserved or out-of-range refs are ignored).
    pub fn free(&mut self, r: GrantRef) {
        if r >= GNTTAB_NR_RESERVED_ENTRIES && r < self.capacity {
            self.used[r as usize / 64] &= !(1 << (r % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permit_entry_sets_type_and_readonly() {
        assert_eq!(
            encode_permit(3, 0x1234, false),
            Ok(PermitEntry { flags: GTF_PERMIT_ACCESS, domid: 3, frame: 0x1234 })
        );
        assert_eq!(encode_permit(3, 0x1234, true).unwrap().flags, GTF_PERMIT_ACCESS | GTF_READONLY);
    }

    #[test]
    fn frames_beyond_32_bits_are_refused() {
        assert_eq!(encode_permit(0, 1 << 32, false), Err(EncodeError::FrameTooHigh(1 << 32)));
    }

    #[test]
    fn mapped_grants_are_in_use() {
        assert!(in_use(GTF_PERMIT_ACCESS | GTF_READING));
        assert!(in_use(GTF_PERMIT_ACCESS | GTF_WRITING));
        assert!(!in_use(GTF_PERMIT_ACCESS | GTF_READONLY));
    }

    #[test]
    fn ref_allocator_skips_reserved_and_never_doubles() {
        let mut a = RefAllocator::<1>::new(12);
        let got: Vec<_> = core::iter::from_fn(|| a.alloc()).collect();
        assert_eq!(got, vec![8, 9, 10, 11]);
        a.free(9);
        a.free(2); // reserved: ignored
        assert_eq!(a.alloc(), Some(9));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn ref_allocator_clamps_capacity_to_its_bitmap() {
        let mut a = RefAllocator::<1>::new(1000);
        assert_eq!(core::iter::from_fn(|| a.alloc()).count(), 64 - 8);
    }
}
