//! The Gen8/Gen9 64-bit page-table entry, as used by the GGTT and by PPGTT
//! leaf and directory entries on Gen8 (Broadwell) and Gen9 (Skylake .. Comet
//! Lake). Gen12 has its own module ([`super::gen12`]).
//!
//! # Sources
//! - Intel PRM, Gen9 ("Skylake"), Vol. 5 "Memory Views", sections "Global
//!   Graphics Translation Table (GGTT)" and "Per-Process GTT (PPGTT)": the
//!   64-bit PTE and the four-level 48-bit PPGTT (PML4, PDP, PD, PT).
//! - Linux i915 `drivers/gpu/drm/i915/gt/intel_gtt.h`: `GEN8_PAGE_PRESENT`,
//!   `GEN8_PAGE_RW`, `PPAT_UNCACHED`, `PPAT_CACHED_PDE`, `PPAT_CACHED`,
//!   `PPAT_DISPLAY_ELLC` (built from the x86 `_PAGE_PWT`, `_PAGE_PCD`,
//!   `_PAGE_PAT` bit positions 3, 4 and 7), `GEN12_GGTT_PTE_ADDR_MASK`.
//! - Linux i915 `gt/gen8_ppgtt.c`: `gen8_pte_encode` (leaf: present + RW,
//!   RW cleared for `PTE_READ_ONLY`, a PPAT index from the cache level) and
//!   `gen8_pde_encode` (directory: present + RW + `PPAT_CACHED_PDE`);
//!   `gt/intel_ggtt.c`: `gen8_ggtt_pte_encode` (present only: the Gen8/Gen9
//!   GGTT has no RW bit and ignores the cache bits).
//!
//! # Layout
//! | bits | field | |
//! |---|---|---|
//! | 0 | present | `GEN8_PAGE_PRESENT` |
//! | 1 | read/write (PPGTT only; ignored by the Gen8/Gen9 GGTT) | `GEN8_PAGE_RW` |
//! | 3 | PPAT index bit 0 | `_PAGE_PWT` |
//! | 4 | PPAT index bit 1 | `_PAGE_PCD` |
//! | 7 | PPAT index bit 2 (leaves; page size on a PDE, never set here) | `_PAGE_PAT` |
//! | 12..=38 | physical page address | [`ADDR_MASK`] |
//!
//! ## Address width
//! Gen8 and Gen9 translate to a 39-bit physical address, so the address field
//! is bits 12..=38. Later parts widen it (Gen12: `GEN12_GGTT_PTE_ADDR_MASK =
//! GENMASK_ULL(45, 12)`, and GVT-g's `gvt/gtt.c` decodes with a 46-bit
//! `GTT_HAW` so one decoder serves every generation). This module is for
//! Gen8/Gen9 only: the encoders refuse an address that does not fit in
//! 12..=38, so no entry can alias a lower page because the hardware ignores
//! its high bits, and [`Gen8Pte::addr`] decodes exactly the bits the
//! hardware uses. Bits above 38 show up in [`Gen8Pte::unknown_bits`].
//!
//! # Invariants
//! - Every entry built by an encoder has only bits of the table above set.
//! - Decoding never fails: any `u64` is a `Gen8Pte` (it is read from memory the
//!   hardware walks), and [`Gen8Pte::addr`] returns what a Gen8/Gen9 GPU would use.

use super::{check_addr, AddrError, EntryFault, Ppat, PAT, PCD, PRESENT, PWT, RW};

/// The physical page address, bits 12..=38 (39-bit physical on Gen8/Gen9).
pub const ADDR_MASK: u64 = ((1 << 39) - 1) & !0xfff;
/// Every bit an encoder here may set.
pub const KNOWN_BITS: u64 = PRESENT | RW | PWT | PCD | PAT | ADDR_MASK;

/// One Gen8+ 64-bit GGTT or PPGTT entry. See the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gen8Pte(u64);

impl core::fmt::Debug for Gen8Pte {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Gen8Pte({:#018x})", self.0)
    }
}

impl Gen8Pte {
    /// An entry that does not translate (all zero).
    pub const NOT_PRESENT: Gen8Pte = Gen8Pte(0);

    /// Any raw value, as read from a table.
    pub const fn from_bits(bits: u64) -> Gen8Pte {
        Gen8Pte(bits)
    }

    /// The raw value, as written to a table (little endian in memory).
    pub const fn bits(self) -> u64 {
        self.0
    }

    const fn check(addr: u64) -> Result<u64, AddrError> {
        check_addr(addr, ADDR_MASK + 0x1000)
    }

    /// A PPGTT leaf (PT entry) for the 4 KiB page at `addr`: present, RW
    /// unless `writable` is false, and the PPAT index `ppat`
    /// (i915 `gen8_pte_encode`).
    pub const fn leaf(addr: u64, writable: bool, ppat: Ppat) -> Result<Gen8Pte, AddrError> {
        match Self::check(addr) {
            Ok(a) => Ok(Gen8Pte(a | PRESENT | if writable { RW } else { 0 } | ppat.pte_bits())),
            Err(e) => Err(e),
        }
    }

    /// A PPGTT directory entry (PML4E, PDPE or PDE) pointing at the table at
    /// `addr`: present, RW, `PPAT_CACHED_PDE` (i915 `gen8_pde_encode`).
    /// Directory RW is always set: permission is decided at the leaf.
    pub const fn dir(addr: u64) -> Result<Gen8Pte, AddrError> {
        match Self::check(addr) {
            Ok(a) => Ok(Gen8Pte(a | PRESENT | RW | Ppat::CACHED_PDE.pte_bits())),
            Err(e) => Err(e),
        }
    }

    /// A GGTT entry for the 4 KiB page at `addr`: present only
    /// (i915 `gen8_ggtt_pte_encode`). The Gen8/Gen9 GGTT cannot make a page
    /// read-only: a read-only page must be enforced elsewhere (the IOMMU).
    pub const fn ggtt(addr: u64) -> Result<Gen8Pte, AddrError> {
        match Self::check(addr) {
            Ok(a) => Ok(Gen8Pte(a | PRESENT)),
            Err(e) => Err(e),
        }
    }

    /// Whether the entry translates (bit 0).
    pub const fn present(self) -> bool {
        self.0 & PRESENT != 0
    }

    /// The page or table address, as a Gen8/Gen9 GPU uses it (bits 12..=38).
    pub const fn addr(self) -> u64 {
        self.0 & ADDR_MASK
    }

    /// Whether the RW bit is set. Meaningful for PPGTT entries only.
    pub const fn writable(self) -> bool {
        self.0 & RW != 0
    }

    /// The PPAT index of a leaf.
    pub const fn ppat(self) -> Ppat {
        Ppat::from_pte_bits(self.0)
    }

    /// Bits set outside [`KNOWN_BITS`]: never set by an encoder here, and
    /// ignored (or reserved) on Gen8/Gen9. Non-zero means someone other than
    /// this module built the entry.
    pub const fn unknown_bits(self) -> u64 {
        self.0 & !KNOWN_BITS
    }

    /// What is wrong with this as a GGTT entry: any bit but present and the
    /// address (bit 1, RW, is ignored by the Gen8/Gen9 GGTT and never set
    /// by [`Gen8Pte::ggtt`]).
    pub const fn ggtt_fault(self) -> Option<EntryFault> {
        match self.0 & !(PRESENT | ADDR_MASK) {
            0 => None,
            bits => Some(EntryFault::UnknownBits(bits)),
        }
    }

    /// What is wrong with this as a PPGTT entry: any bit outside [`KNOWN_BITS`].
    pub const fn ppgtt_fault(self) -> Option<EntryFault> {
        match self.unknown_bits() {
            0 => None,
            bits => Some(EntryFault::UnknownBits(bits)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_positions_match_i915() {
        assert_eq!(PRESENT, 0x1);
        assert_eq!(RW, 0x2);
        assert_eq!(PWT, 0x8);
        assert_eq!(PCD, 0x10);
        assert_eq!(PAT, 0x80);
        assert_eq!(ADDR_MASK, 0x0000_007f_ffff_f000);
    }

    #[test]
    fn writable_cached_leaf_has_known_value() {
        let pte = Gen8Pte::leaf(0x1234_5000, true, Ppat::CACHED).unwrap();
        assert_eq!(pte.bits(), 0x1234_5083);
    }

    #[test]
    fn read_only_uncached_leaf_has_known_value() {
        let pte = Gen8Pte::leaf(0x7f_ffff_f000, false, Ppat::UNCACHED).unwrap();
        assert_eq!(pte.bits(), 0x7f_ffff_f019);
        assert!(!pte.writable());
    }

    #[test]
    fn directory_entry_has_known_value() {
        assert_eq!(Gen8Pte::dir(0x8000).unwrap().bits(), 0x8003);
    }

    #[test]
    fn ggtt_entry_is_present_only() {
        let pte = Gen8Pte::ggtt(0x10_0000_0000).unwrap();
        assert_eq!(pte.bits(), 0x10_0000_0001);
        assert!(!pte.writable());
    }

    #[test]
    fn leaf_round_trips() {
        for addr in [0, 0x1000, 0xdead_b000, ADDR_MASK] {
            for writable in [false, true] {
                for i in 0..8 {
                    let ppat = Ppat::new(i).unwrap();
                    let pte = Gen8Pte::leaf(addr, writable, ppat).unwrap();
                    let back = Gen8Pte::from_bits(pte.bits());
                    assert!(back.present());
                    assert_eq!(back.addr(), addr);
                    assert_eq!(back.writable(), writable);
                    assert_eq!(back.ppat(), ppat);
                    assert_eq!(back.unknown_bits(), 0);
                }
            }
        }
    }

    #[test]
    fn dir_and_ggtt_round_trip_the_address() {
        for addr in [0x1000, 0x42_0000_0000, ADDR_MASK] {
            assert_eq!(Gen8Pte::dir(addr).unwrap().addr(), addr);
            assert_eq!(Gen8Pte::ggtt(addr).unwrap().addr(), addr);
        }
    }

    #[test]
    fn unaligned_address_is_refused() {
        assert_eq!(Gen8Pte::leaf(0x1001, true, Ppat::CACHED), Err(AddrError::Unaligned(0x1001)));
        assert_eq!(Gen8Pte::dir(0x800), Err(AddrError::Unaligned(0x800)));
        assert_eq!(Gen8Pte::ggtt(0xfff), Err(AddrError::Unaligned(0xfff)));
    }

    #[test]
    fn address_above_39_bits_is_refused_not_truncated() {
        let too_wide = 1u64 << 39;
        assert_eq!(Gen8Pte::leaf(too_wide, true, Ppat::CACHED), Err(AddrError::TooWide(too_wide)));
        assert_eq!(Gen8Pte::dir(too_wide), Err(AddrError::TooWide(too_wide)));
        assert_eq!(
            Gen8Pte::ggtt(0x8000_0000_0000_1000),
            Err(AddrError::TooWide(0x8000_0000_0000_1000))
        );
    }

    #[test]
    fn decoding_ignores_bits_a_gen9_gpu_ignores() {
        // Bit 40 (an address bit on Gen12) and bit 63: the Gen9 address is
        // still bits 12..=38, and both show up as unknown.
        let raw = (1u64 << 63) | (1 << 40) | 0x5000 | PRESENT;
        let pte = Gen8Pte::from_bits(raw);
        assert_eq!(pte.addr(), 0x5000);
        assert_eq!(pte.unknown_bits(), (1 << 63) | (1 << 40));
    }

    #[test]
    fn zero_is_not_present() {
        assert!(!Gen8Pte::NOT_PRESENT.present());
        assert!(!Gen8Pte::from_bits(0x5002).present());
    }
}
