//! The Gen12 (Xe-LP integrated: Tiger Lake .. Raptor Lake) 64-bit entry.
//!
//! # Sources
//! - Linux `gt/intel_gtt.h`: `GEN8_PAGE_PRESENT` (bit 0), `GEN8_PAGE_RW` (bit 1),
//!   `GEN12_GGTT_PTE_LM` = `BIT_ULL(1)`, `GEN12_GGTT_PTE_ADDR_MASK` =
//!   `GENMASK_ULL(45, 12)`, `GEN12_PPGTT_PTE_LM` = `BIT_ULL(11)`,
//!   `GEN12_PPGTT_PTE_PAT0/1/2` = bits 3, 4, 7, `GEN12_PPGTT_PTE_PAT3` =
//!   `BIT_ULL(62)` and `MTL_GGTT_PTE_PAT0/1` = bits 52, 53 (the last three
//!   are Meteor Lake's: i915 uses them only from IP 12.70).
//! - Linux `gt/intel_ggtt.c` `gen8_ggtt_pte_encode`: `addr |
//!   GEN8_PAGE_PRESENT`, plus `GEN12_GGTT_PTE_LM` for local-memory pages
//!   (`PTE_LM`, which only a discrete part's objects have). No RW bit: "gen8+
//!   do not support RO in the GGTT" (`ggtt_bind_vma`), so [`Gen12Pte::ggtt`]
//!   takes no access and `gtt` is told GGTT entries cannot be read-only.
//! - Linux `gt/gen8_ppgtt.c` `gen12_pte_encode`: `addr | GEN8_PAGE_PRESENT |
//!   GEN8_PAGE_RW`, RW cleared for `PTE_READ_ONLY`, `GEN12_PPGTT_PTE_LM` for
//!   `PTE_LM`, PAT index bits 0..2 into `GEN12_PPGTT_PTE_PAT0..2`;
//!   `gen8_pde_encode` (directories: present, RW, `PPAT_CACHED_PDE` = 0) is
//!   shared with Gen8.
//! - Linux `i915_pci.c`: `GEN8_FEATURES` sets `dma_mask_size = 39`, which
//!   `GEN9_FEATURES`, `GEN11_FEATURES` and `GEN12_FEATURES` keep and
//!   `adl_s_info`/`adl_p_info` restate: i915 never gives an integrated Gen12
//!   part an address at or above 2^39. The 12th Generation Core datasheet,
//!   Vol. 2 (Intel doc. 767626), GTTMMADR register of device 2: "the base
//!   address is defined by bits \[38:24\]" — the same 39-bit space.
//! - Linux `i915_pci.c` `TGL_CACHELEVEL`: `I915_CACHE_NONE` -> PAT index 3,
//!   `I915_CACHE_LLC` -> 0 (what [`super::Format::scratch_pat`] and
//!   [`super::Format::leaf_pat`] return for Gen12).
//!
//! # Address width
//! The field is bits 12..=45, but the device reaches 39 bits: the encoders
//! refuse an address at or above 2^39 (as for Gen8/Gen9, so a guest page can
//! never be named by an address the platform would not route to it), and
//! [`Gen12Pte::addr`] decodes all of 12..=45 so that an entry naming such an
//! address is seen as one ([`EntryFault::BeyondDma`]).
//!
//! # Invariants
//! - An encoder never sets an LM bit (integrated parts have no local
//!   memory), a Meteor Lake PAT bit, or an address bit at or above 39.

use super::{check_addr, AddrError, EntryFault, Ppat, PAT, PCD, PRESENT, PWT, RW};

/// `GEN12_GGTT_PTE_LM` (bit 1 of a GGTT entry): the page is in local memory.
#[doc(alias = "GEN12_GGTT_PTE_LM")]
pub const GGTT_LM: u64 = 1 << 1;
/// `GEN12_PPGTT_PTE_LM` (bit 11 of a PPGTT entry): the page is in local memory.
#[doc(alias = "GEN12_PPGTT_PTE_LM")]
pub const PPGTT_LM: u64 = 1 << 11;
/// `GEN12_PPGTT_PTE_PAT3` (bit 62): PAT index bit 3, Meteor Lake and later.
#[doc(alias = "GEN12_PPGTT_PTE_PAT3")]
pub const PPGTT_PAT3: u64 = 1 << 62;
/// `MTL_GGTT_PTE_PAT0` (bit 52): Meteor Lake's GGTT PAT index bit 0.
#[doc(alias = "MTL_GGTT_PTE_PAT0")]
pub const MTL_GGTT_PAT0: u64 = 1 << 52;
/// `MTL_GGTT_PTE_PAT1` (bit 53): Meteor Lake's GGTT PAT index bit 1.
#[doc(alias = "MTL_GGTT_PTE_PAT1")]
pub const MTL_GGTT_PAT1: u64 = 1 << 53;
/// `GEN12_GGTT_PTE_ADDR_MASK`: the address field, bits 12..=45.
#[doc(alias = "GEN12_GGTT_PTE_ADDR_MASK")]
pub const ADDR_MASK: u64 = ((1 << 46) - 1) & !0xfff;
/// The first address an integrated Gen12 part cannot reach (`dma_mask_size = 39`).
pub const DMA_LIMIT: u64 = 1 << 39;
/// Every bit the GGTT encoder may set.
pub const GGTT_BITS: u64 = PRESENT | ADDR_MASK;
/// Every bit the PPGTT encoders may set.
pub const PPGTT_BITS: u64 = PRESENT | RW | PWT | PCD | PAT | ADDR_MASK;

/// One Gen12 64-bit GGTT or PPGTT entry. See the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gen12Pte(u64);

impl core::fmt::Debug for Gen12Pte {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Gen12Pte({:#018x})", self.0)
    }
}

impl Gen12Pte {
    /// Any raw value, as read from a table.
    pub const fn from_bits(bits: u64) -> Gen12Pte {
        Gen12Pte(bits)
    }

    /// The raw value.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// A GGTT entry for the 4 KiB page at `addr` in system memory: present,
    /// never LM (`gen8_ggtt_pte_encode` without `PTE_LM`).
    pub const fn ggtt(addr: u64) -> Result<Gen12Pte, AddrError> {
        match check_addr(addr, DMA_LIMIT) {
            Ok(a) => Ok(Gen12Pte(a | PRESENT)),
            Err(e) => Err(e),
        }
    }

    /// A PPGTT leaf for the page at `addr`: present, RW unless `writable` is
    /// false, PAT index `pat` in bits 3, 4, 7 (`gen12_pte_encode`, never LM).
    pub const fn leaf(addr: u64, writable: bool, pat: Ppat) -> Result<Gen12Pte, AddrError> {
        match check_addr(addr, DMA_LIMIT) {
            Ok(a) => Ok(Gen12Pte(a | PRESENT | if writable { RW } else { 0 } | pat.pte_bits())),
            Err(e) => Err(e),
        }
    }

    /// A PPGTT directory entry for the table at `addr`: present, RW, PAT
    /// index 0 (`gen8_pde_encode`).
    pub const fn dir(addr: u64) -> Result<Gen12Pte, AddrError> {
        match check_addr(addr, DMA_LIMIT) {
            Ok(a) => Ok(Gen12Pte(a | PRESENT | RW)),
            Err(e) => Err(e),
        }
    }

    /// Whether the entry translates.
    pub const fn present(self) -> bool {
        self.0 & PRESENT != 0
    }

    /// The address, as Gen12 hardware reads the field (bits 12..=45).
    pub const fn addr(self) -> u64 {
        self.0 & ADDR_MASK
    }

    /// What is wrong with this as a GGTT entry: the LM bit (bit 1, which
    /// is *not* a read/write bit here), any bit but present and the
    /// address, or an address beyond the device's reach.
    pub const fn ggtt_fault(self) -> Option<EntryFault> {
        if self.0 & GGTT_LM != 0 {
            Some(EntryFault::LocalMemory)
        } else if self.0 & !GGTT_BITS != 0 {
            Some(EntryFault::UnknownBits(self.0 & !GGTT_BITS))
        } else if self.addr() >= DMA_LIMIT {
            Some(EntryFault::BeyondDma(self.addr()))
        } else {
            None
        }
    }

    /// What is wrong with this as a PPGTT entry: the LM bit (bit 11), any
    /// bit the encoders never set (PAT3 at 62 among them), or an address
    /// beyond the device's reach.
    pub const fn ppgtt_fault(self) -> Option<EntryFault> {
        if self.0 & PPGTT_LM != 0 {
            Some(EntryFault::LocalMemory)
        } else if self.0 & !PPGTT_BITS != 0 {
            Some(EntryFault::UnknownBits(self.0 & !PPGTT_BITS))
        } else if self.addr() >= DMA_LIMIT {
            Some(EntryFault::BeyondDma(self.addr()))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_positions_match_i915s_gen12_definitions() {
        assert_eq!(GGTT_LM, 0x2);
        assert_eq!(PPGTT_LM, 0x800);
        assert_eq!(PPGTT_PAT3, 0x4000_0000_0000_0000);
        assert_eq!((MTL_GGTT_PAT0, MTL_GGTT_PAT1), (1 << 52, 1 << 53));
        assert_eq!(ADDR_MASK, 0x0000_3fff_ffff_f000, "GENMASK_ULL(45, 12)");
    }

    #[test]
    fn ggtt_entry_is_present_and_address_only_never_local_memory() {
        let e = Gen12Pte::ggtt(0x7f_ffff_f000).unwrap();
        assert_eq!(e.bits(), 0x7f_ffff_f001);
        assert_eq!(e.bits() & GGTT_LM, 0);
        assert_eq!(e.ggtt_fault(), None);
    }

    #[test]
    fn leaves_carry_rw_and_the_pat_index_in_bits_3_4_7() {
        let rw_wb = Gen12Pte::leaf(0x1234_5000, true, Ppat::GEN12_WB).unwrap();
        assert_eq!(rw_wb.bits(), 0x1234_5003);
        let ro_uc = Gen12Pte::leaf(0x1234_5000, false, Ppat::GEN12_UC).unwrap();
        assert_eq!(ro_uc.bits(), 0x1234_5019);
        let all = Gen12Pte::leaf(0x1000, true, Ppat::new(7).unwrap()).unwrap();
        assert_eq!(all.bits(), 0x1000 | 0x1 | 0x2 | 0x8 | 0x10 | 0x80);
        for e in [rw_wb, ro_uc, all] {
            assert_eq!((e.ppgtt_fault(), e.bits() & (PPGTT_LM | PPGTT_PAT3)), (None, 0));
        }
        assert_eq!(Gen12Pte::dir(0x8000).unwrap().bits(), 0x8003);
    }

    #[test]
    fn addresses_at_or_above_2_39_are_refused_and_seen_when_read() {
        let too_wide = DMA_LIMIT;
        assert_eq!(Gen12Pte::ggtt(too_wide), Err(AddrError::TooWide(too_wide)));
        assert_eq!(
            Gen12Pte::leaf(too_wide, true, Ppat::GEN12_WB),
            Err(AddrError::TooWide(too_wide))
        );
        assert_eq!(Gen12Pte::dir(1 << 45), Err(AddrError::TooWide(1 << 45)));
        assert_eq!(Gen12Pte::ggtt(0x1001), Err(AddrError::Unaligned(0x1001)));
        // Bit 40 is an address bit to Gen12 (not ignored as on Gen9).
        let read = Gen12Pte::from_bits((1 << 40) | 0x5000 | PRESENT);
        assert_eq!(read.addr(), (1 << 40) | 0x5000);
        assert_eq!(read.ggtt_fault(), Some(EntryFault::BeyondDma((1 << 40) | 0x5000)));
    }

    #[test]
    fn local_memory_and_meteor_lake_bits_are_faults() {
        let page = Gen12Pte::ggtt(0x5000).unwrap().bits();
        assert_eq!(Gen12Pte(page | GGTT_LM).ggtt_fault(), Some(EntryFault::LocalMemory));
        assert_eq!(
            Gen12Pte(page | MTL_GGTT_PAT0).ggtt_fault(),
            Some(EntryFault::UnknownBits(MTL_GGTT_PAT0))
        );
        let leaf = Gen12Pte::leaf(0x5000, true, Ppat::GEN12_WB).unwrap().bits();
        assert_eq!(Gen12Pte(leaf | PPGTT_LM).ppgtt_fault(), Some(EntryFault::LocalMemory));
        assert_eq!(
            Gen12Pte(leaf | PPGTT_PAT3).ppgtt_fault(),
            Some(EntryFault::UnknownBits(PPGTT_PAT3))
        );
        // RW is a PPGTT bit, not a fault there.
        assert_eq!(Gen12Pte(leaf).ppgtt_fault(), None);
    }
}
