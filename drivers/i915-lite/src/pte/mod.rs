//! GGTT and PPGTT entries: the Gen8/Gen9 format ([`Gen8Pte`]), the Gen12
//! format ([`Gen12Pte`]), and [`Format`], which builds and reads an [`Entry`]
//! the way one device's hardware does.
//!
//! | bit | Gen8/Gen9 GGTT | Gen8/Gen9 PPGTT | Gen12 GGTT | Gen12 PPGTT |
//! |---|---|---|---|---|
//! | 0 | present | present | present | present |
//! | 1 | ignored (RW) | RW | **LM** (local memory) | RW |
//! | 3, 4, 7 | ignored | PPAT index | ignored | PAT index 0..2 |
//! | 11 | ignored | ignored | ignored | LM (local memory) |
//! | 12.. | address, 12..=38 | address, 12..=38 | address, 12..=45 | address, 12..=45 |
//! | 52, 53 | | | PAT (Meteor Lake) | |
//! | 62 | | | | PAT3 (Meteor Lake) |
//!
//! Sources are in each format's module. What this driver writes on every
//! generation: present, the address (below 2^39), RW on writable PPGTT
//! entries, a PAT index on PPGTT leaves; never an LM bit, never a Meteor Lake
//! PAT bit. [`Format::check_ggtt`] and [`Format::check_ppgtt`] say what is
//! wrong with an entry that has anything else (the model uses them to catch
//! a driver that writes one).

pub mod gen12;
mod gen8;

pub use gen12::Gen12Pte;
pub use gen8::{Gen8Pte, ADDR_MASK, KNOWN_BITS};

use crate::ids::Gen;

/// `GEN8_PAGE_PRESENT` (bit 0): the entry translates.
#[doc(alias = "GEN8_PAGE_PRESENT")]
pub const PRESENT: u64 = 1 << 0;
/// `GEN8_PAGE_RW` (bit 1): PPGTT writes allowed. The Gen8/Gen9 GGTT ignores
/// it; in a Gen12 GGTT entry bit 1 is [`gen12::GGTT_LM`] instead.
#[doc(alias = "GEN8_PAGE_RW")]
pub const RW: u64 = 1 << 1;
/// `_PAGE_PWT` (bit 3): PPAT index bit 0 (Gen12: `GEN12_PPGTT_PTE_PAT0`).
#[doc(alias = "_PAGE_PWT")]
pub const PWT: u64 = 1 << 3;
/// `_PAGE_PCD` (bit 4): PPAT index bit 1 (Gen12: `GEN12_PPGTT_PTE_PAT1`).
#[doc(alias = "_PAGE_PCD")]
pub const PCD: u64 = 1 << 4;
/// `_PAGE_PAT` (bit 7): PPAT index bit 2 (Gen12: `GEN12_PPGTT_PTE_PAT2`).
#[doc(alias = "_PAGE_PAT")]
pub const PAT: u64 = 1 << 7;

/// An index (0..8) into the private PAT (Gen8/Gen9: `GEN8_PRIVATE_PAT_LO/HI`;
/// Gen12: `GEN12_PAT_INDEX(0..8)`), spread over bits 3, 4 and 7 of a PPGTT
/// entry on both. What each index means is programmed by the driver (i915's
/// `bdw_setup_private_ppat`, `tgl_setup_private_ppat`); the names below are
/// i915's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ppat(u8);

impl Ppat {
    /// `PPAT_CACHED_PDE` (index 0): write-back LLC; what directories use.
    #[doc(alias = "PPAT_CACHED_PDE")]
    pub const CACHED_PDE: Ppat = Ppat(0);
    /// `PPAT_DISPLAY_ELLC` (index 2, `_PAGE_PCD`): write-through eLLC.
    #[doc(alias = "PPAT_DISPLAY_ELLC")]
    pub const DISPLAY_ELLC: Ppat = Ppat(2);
    /// `PPAT_UNCACHED` (index 3, `_PAGE_PWT | _PAGE_PCD`).
    #[doc(alias = "PPAT_UNCACHED")]
    pub const UNCACHED: Ppat = Ppat(3);
    /// `PPAT_CACHED` (index 4, `_PAGE_PAT`): write-back LLC and eLLC; what
    /// i915 uses for ordinary cached buffers.
    #[doc(alias = "PPAT_CACHED")]
    pub const CACHED: Ppat = Ppat(4);
    /// Gen12 index 0, write-back: what i915 uses for cached buffers on Gen12
    /// (`i915_pci.c` `TGL_CACHELEVEL`: `I915_CACHE_LLC` -> 0).
    pub const GEN12_WB: Ppat = Ppat(0);
    /// Gen12 index 3, uncached (`TGL_CACHELEVEL`: `I915_CACHE_NONE` -> 3):
    /// the same bits as [`Ppat::UNCACHED`].
    pub const GEN12_UC: Ppat = Ppat(3);

    /// The PPAT index `index`, or `None` if it is not below 8.
    pub const fn new(index: u8) -> Option<Ppat> {
        if index < 8 {
            Some(Ppat(index))
        } else {
            None
        }
    }

    /// This index (0..8).
    pub const fn index(self) -> u8 {
        self.0
    }

    /// The PTE bits that carry this index.
    pub const fn pte_bits(self) -> u64 {
        let i = self.0 as u64;
        (if i & 1 != 0 { PWT } else { 0 })
            | (if i & 2 != 0 { PCD } else { 0 })
            | (if i & 4 != 0 { PAT } else { 0 })
    }

    /// The index carried by the PPAT bits of `pte`.
    pub const fn from_pte_bits(pte: u64) -> Ppat {
        let mut i = 0;
        if pte & PWT != 0 {
            i |= 1;
        }
        if pte & PCD != 0 {
            i |= 2;
        }
        if pte & PAT != 0 {
            i |= 4;
        }
        Ppat(i)
    }
}

/// Why an address cannot be put in an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrError {
    /// Not 4 KiB aligned (the value given).
    Unaligned(u64),
    /// Above what the device can address: 2^39 on every supported part
    /// (Gen8/Gen9: the PTE's address field; Gen12: i915's `dma_mask_size`).
    TooWide(u64),
}

/// A raw 64-bit table entry as the hardware holds it, of any format.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry(u64);

impl core::fmt::Debug for Entry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Entry({:#018x})", self.0)
    }
}

impl Entry {
    /// An entry that does not translate (all zero).
    pub const NOT_PRESENT: Entry = Entry(0);

    /// Any raw value, as read from a table.
    pub const fn from_bits(bits: u64) -> Entry {
        Entry(bits)
    }

    /// The raw value, as written to a table.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether the entry translates (bit 0 in every format).
    pub const fn present(self) -> bool {
        self.0 & PRESENT != 0
    }
}

impl From<Gen8Pte> for Entry {
    fn from(p: Gen8Pte) -> Entry {
        Entry(p.bits())
    }
}

impl From<Gen12Pte> for Entry {
    fn from(p: Gen12Pte) -> Entry {
        Entry(p.bits())
    }
}

/// What is wrong with an entry, for the hardware of one format: something no
/// encoder here produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryFault {
    /// A Gen12 LM bit: the address would be taken as local memory (VRAM),
    /// which an integrated part does not have.
    LocalMemory,
    /// An address above what the device can reach (2^39).
    BeyondDma(u64),
    /// Bits no encoder of this format sets (ignored, reserved, or a later
    /// generation's, like Meteor Lake's PAT bits).
    UnknownBits(u64),
}

/// The entry format of one generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Gen8 and Gen9 ([`Gen8Pte`]).
    Gen8,
    /// Gen12 integrated ([`Gen12Pte`]).
    Gen12,
}

impl Format {
    /// The format of `gen`.
    pub const fn of(gen: Gen) -> Format {
        match gen {
            Gen::Gen8 | Gen::Gen9 => Format::Gen8,
            Gen::Gen12 => Format::Gen12,
        }
    }

    /// A GGTT entry for the page at `addr`: present only.
    pub fn ggtt(self, addr: u64) -> Result<Entry, AddrError> {
        match self {
            Format::Gen8 => Gen8Pte::ggtt(addr).map(Entry::from),
            Format::Gen12 => Gen12Pte::ggtt(addr).map(Entry::from),
        }
    }

    /// A PPGTT leaf for the page at `addr`.
    pub fn leaf(self, addr: u64, writable: bool, pat: Ppat) -> Result<Entry, AddrError> {
        match self {
            Format::Gen8 => Gen8Pte::leaf(addr, writable, pat).map(Entry::from),
            Format::Gen12 => Gen12Pte::leaf(addr, writable, pat).map(Entry::from),
        }
    }

    /// A PPGTT directory entry for the table at `addr`.
    pub fn dir(self, addr: u64) -> Result<Entry, AddrError> {
        match self {
            Format::Gen8 => Gen8Pte::dir(addr).map(Entry::from),
            Format::Gen12 => Gen12Pte::dir(addr).map(Entry::from),
        }
    }

    /// The PAT index of guest pages (cached write-back): Gen8/Gen9
    /// `PPAT_CACHED` (4), Gen12 index 0 (`TGL_CACHELEVEL`).
    pub const fn leaf_pat(self) -> Ppat {
        match self {
            Format::Gen8 => Ppat::CACHED,
            Format::Gen12 => Ppat::GEN12_WB,
        }
    }

    /// The PAT index of the scratch page (uncached, index 3 on both: i915's
    /// `I915_CACHE_NONE`).
    pub const fn scratch_pat(self) -> Ppat {
        match self {
            Format::Gen8 => Ppat::UNCACHED,
            Format::Gen12 => Ppat::GEN12_UC,
        }
    }

    /// The address a GGTT entry names, as this hardware reads it.
    pub const fn ggtt_addr(self, e: Entry) -> u64 {
        match self {
            Format::Gen8 => Gen8Pte::from_bits(e.0).addr(),
            Format::Gen12 => Gen12Pte::from_bits(e.0).addr(),
        }
    }

    /// The address a PPGTT entry names, as this hardware reads it.
    pub const fn ppgtt_addr(self, e: Entry) -> u64 {
        self.ggtt_addr(e)
    }

    /// Whether a PPGTT entry allows writes (bit 1 in both formats).
    pub const fn writable(self, e: Entry) -> bool {
        e.0 & RW != 0
    }

    /// The PAT index of a PPGTT leaf.
    pub const fn pat(self, e: Entry) -> Ppat {
        Ppat::from_pte_bits(e.0)
    }

    /// What is wrong with a present GGTT entry, if anything.
    pub const fn check_ggtt(self, e: Entry) -> Result<(), EntryFault> {
        if !e.present() {
            return Ok(());
        }
        let fault = match self {
            Format::Gen8 => Gen8Pte::from_bits(e.0).ggtt_fault(),
            Format::Gen12 => Gen12Pte::from_bits(e.0).ggtt_fault(),
        };
        match fault {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// What is wrong with a present PPGTT entry, if anything.
    pub const fn check_ppgtt(self, e: Entry) -> Result<(), EntryFault> {
        if !e.present() {
            return Ok(());
        }
        let fault = match self {
            Format::Gen8 => Gen8Pte::from_bits(e.0).ppgtt_fault(),
            Format::Gen12 => Gen12Pte::from_bits(e.0).ppgtt_fault(),
        };
        match fault {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

/// 4 KiB aligned and below `limit`, or why not.
const fn check_addr(addr: u64, limit: u64) -> Result<u64, AddrError> {
    if addr & 0xfff != 0 {
        Err(AddrError::Unaligned(addr))
    } else if addr >= limit {
        Err(AddrError::TooWide(addr))
    } else {
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppat_names_match_i915_bits() {
        // PPAT_UNCACHED = _PAGE_PWT | _PAGE_PCD, PPAT_CACHED = _PAGE_PAT,
        // PPAT_DISPLAY_ELLC = _PAGE_PCD, PPAT_CACHED_PDE = 0.
        assert_eq!(Ppat::UNCACHED.pte_bits(), PWT | PCD);
        assert_eq!(Ppat::CACHED.pte_bits(), PAT);
        assert_eq!(Ppat::DISPLAY_ELLC.pte_bits(), PCD);
        assert_eq!(Ppat::CACHED_PDE.pte_bits(), 0);
        // GEN12_PPGTT_PTE_PAT0/1/2 are bits 3, 4, 7.
        assert_eq!((Ppat::GEN12_WB.pte_bits(), Ppat::GEN12_UC.pte_bits()), (0, 0x18));
    }

    #[test]
    fn ppat_index_round_trips_through_pte_bits() {
        for i in 0..8 {
            let p = Ppat::new(i).unwrap();
            assert_eq!(Ppat::from_pte_bits(p.pte_bits()), p);
            assert_eq!(p.index(), i);
        }
        assert_eq!(Ppat::new(8), None);
    }

    #[test]
    fn both_formats_agree_on_what_the_driver_writes_below_bit_12() {
        for f in [Format::Gen8, Format::Gen12] {
            assert_eq!(f.dir(0x8000).unwrap().bits(), 0x8003);
            assert_eq!(f.ggtt(0x8000).unwrap().bits(), 0x8001);
            let scratch = f.leaf(0x1000, false, f.scratch_pat()).unwrap();
            assert_eq!(scratch.bits(), 0x1019, "present, read-only, uncached");
        }
        assert_eq!(
            Format::Gen8.leaf(0x1000, true, Format::Gen8.leaf_pat()).unwrap().bits(),
            0x1083
        );
        assert_eq!(
            Format::Gen12.leaf(0x1000, true, Format::Gen12.leaf_pat()).unwrap().bits(),
            0x1003
        );
    }

    #[test]
    fn bit_1_of_a_ggtt_entry_is_ignored_on_gen9_and_local_memory_on_gen12() {
        let e = Entry::from_bits(0x5000 | RW | PRESENT);
        assert_eq!(Format::Gen8.check_ggtt(e), Err(EntryFault::UnknownBits(RW)));
        assert_eq!(Format::Gen12.check_ggtt(e), Err(EntryFault::LocalMemory));
        let fine = Entry::from_bits(0x5000 | PRESENT);
        assert_eq!(
            (Format::Gen8.check_ggtt(fine), Format::Gen12.check_ggtt(fine)),
            (Ok(()), Ok(()))
        );
        assert_eq!(Format::Gen12.check_ggtt(Entry::from_bits(RW)), Ok(()), "not present: not used");
    }
}
