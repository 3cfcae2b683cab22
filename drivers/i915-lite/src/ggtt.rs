//! The GGTT: 64-bit entries in the upper half of GTTMMADR, written one
//! `writeq` at a time, made visible to the GPU by a flush whose sequence
//! depends on the generation ([`GgttSync`]).
//!
//! # Sources
//! - Intel PRM, Skylake, Vol. 5 "Memory Views", "Global Graphics
//!   Translation Table (GGTT)": one 64-bit entry per 4 KiB page of the
//!   global graphics address space, in the GTTMMADR range.
//! - 12th Generation Intel Core Processor Datasheet, Vol. 2 (Intel doc.
//!   767626), device 2 "GTTMMADR0_0_2_0_PCI – Offset 10": 16 MiB, MMIO in
//!   the first 2 MiB, the GGTT from +8 MiB; software writes PTEs through this
//!   alias only, and "the device snoops writes to this region in order to
//!   invalidate any cached translations within the various TLBs".
//! - Linux `gt/intel_ggtt.c`: `ggtt_probe_common` (entries at BAR0 + len/2,
//!   `gen6_gttadr_offset`), `gen8_set_pte` (`writeq`), `gen8_ggtt_clear_range`
//!   (scratch entries), `init_ggtt` (the last page stays bound to scratch: a
//!   guard against prefetch past the end), and the flush (see [`GgttSync`]).
//!
//! # Invariants
//! - Only entries `0..managed` and the reserved last entry are ever written.
//! - An entry is written only with an encoder's output or the scratch entry.
//! - After [`Ggtt::flush`], every earlier write was read back (posting
//!   read); on Gen8/Gen9 it was also flushed with `GFX_FLSH_CNTL`, and that
//!   write was read back too.

use crate::ids::Gen;
use crate::pte::Entry;
use crate::regs::{Mmio, GFX_FLSH_CNTL, GFX_FLSH_CNTL_EN, GGTT_ENTRY_BYTES};

/// How GGTT writes are made visible to the GPU.
///
/// # Gen8/Gen9: [`GgttSync::FlushControl`]
/// i915 maps their GGTT write-combined and, after the writes,
/// `gen8_ggtt_invalidate` writes `GFX_FLSH_CNTL_EN` to `GFX_FLSH_CNTL_GEN6`
/// ("as an uncached mmio write, this will flush the WCB of the writes into
/// the GGTT before it triggers the invalidate"); `gen6_ggtt_invalidate` and
/// `bxt_vtd_ggtt_wa` read the register back. This driver does all three:
/// read back the last entry written (the posting read older i915 did in
/// `gen8_ggtt_insert_entries`, and a check), the flush write, its read-back.
///
/// # Gen12: [`GgttSync::PostingRead`]
/// i915 maps the GGTT of Gen9 LP and of every part from Gen11 on *uncached*
/// (`ggtt_probe_common`, `needs_wc_ggtt_mapping()` false: "On BXT+/ICL+
/// writes larger than 64 bit to the GTT pagetable range will be dropped"),
/// and since commit 7d7a328d0e8d "drm/i915: Flush WC GGTT only on required
/// platforms" (Linux 6.7, in stable from 6.2) its non-GuC invalidation,
/// `gen8_ggtt_invalidate`, writes `GFX_FLSH_CNTL` only when the mapping is
/// WC: on Gen12 it writes nothing ("there are no reference in HW docs that
/// forces us to use this on non-WC backed GGTT"; before that commit it was
/// written on Gen12 too). The hardware side is the datasheet's: the device
/// snoops writes to the GGTT range and invalidates its TLBs itself. What
/// remains is to make the uncached, posted writes reach the device: a read
/// through the BAR returns only after them (PCI ordering: a read does not
/// pass posted writes), so the flush is the read-back of the last entry
/// written, which also checks it ("the WC issue is easily caught by the
/// readback check"). The BAR is mapped uncached by the image.
///
/// `guc_ggtt_invalidate`, i915's invalidation when it runs the GuC, adds a
/// write of `GEN12_GUC_TLB_INV_CR` for the GuC's own TLB; this driver loads
/// no GuC firmware, so it follows the non-GuC path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgttSync {
    /// Read-back, `GFX_FLSH_CNTL` write, its read-back (Gen8/Gen9).
    FlushControl,
    /// Read-back of the last written entry only (Gen12).
    PostingRead,
}

impl GgttSync {
    /// The sequence `gen` needs.
    pub const fn of(gen: Gen) -> GgttSync {
        match gen {
            Gen::Gen8 | Gen::Gen9 => GgttSync::FlushControl,
            Gen::Gen12 => GgttSync::PostingRead,
        }
    }
}

/// What a flush found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushOutcome {
    /// The last entry written since the previous flush, if it did not read
    /// back as written: its index, what was written, what was read.
    pub mismatch: Option<(u32, u64, u64)>,
}

/// The GGTT of one device. See the module documentation.
#[derive(Debug)]
pub struct Ggtt {
    /// BAR offset of entry 0.
    base: u32,
    /// Entries the device has.
    total: u32,
    /// Entries handed to `gtt`: `0..managed`.
    managed: u32,
    /// The scratch entry.
    scratch: Entry,
    /// How writes are made visible.
    sync: GgttSync,
    /// The last entry written since the last flush, and its value.
    last_write: Option<(u32, u64)>,
}

impl Ggtt {
    /// A GGTT of `total` entries at BAR offset `base`, of which `gtt` gets
    /// `managed` (`managed < total`: the last entry is the driver's).
    pub(crate) fn new(base: u32, total: u32, managed: u32, scratch: Entry, sync: GgttSync) -> Self {
        debug_assert!(managed < total);
        Ggtt { base, total, managed, scratch, sync, last_write: None }
    }

    /// Entries the device has.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Entries `gtt` manages (`0..managed`).
    pub fn managed(&self) -> u32 {
        self.managed
    }

    /// The entry the driver keeps for itself (the last one): the guard page
    /// i915 keeps, and the self-test's slot.
    pub fn reserved(&self) -> u32 {
        self.total - 1
    }

    /// The scratch entry.
    pub fn scratch(&self) -> Entry {
        self.scratch
    }

    /// How writes are made visible to the GPU.
    pub fn sync(&self) -> GgttSync {
        self.sync
    }

    /// BAR offset of entry `index`.
    pub(crate) fn offset(&self, index: u32) -> u32 {
        self.base + index * GGTT_ENTRY_BYTES
    }

    /// Writes entry `index` (the caller checked it is managed or reserved).
    pub(crate) fn write<M: Mmio>(&mut self, mmio: &mut M, index: u32, e: Entry) {
        mmio.write64(self.offset(index), e.bits());
        self.last_write = Some((index, e.bits()));
    }

    /// Reads entry `index` back through the BAR.
    pub(crate) fn read<M: Mmio>(&self, mmio: &mut M, index: u32) -> Entry {
        Entry::from_bits(mmio.read64(self.offset(index)))
    }

    /// Writes the scratch entry to `0..managed` and to the reserved entry.
    pub(crate) fn clear_all<M: Mmio>(&mut self, mmio: &mut M) {
        for i in 0..self.managed {
            self.write(mmio, i, self.scratch);
        }
        self.write(mmio, self.reserved(), self.scratch);
    }

    /// Makes earlier writes visible and drops the GPU's cached GGTT
    /// translations, as [`GgttSync`] says for this generation.
    pub(crate) fn flush<M: Mmio>(&mut self, mmio: &mut M) -> FlushOutcome {
        let mismatch = self.last_write.take().and_then(|(index, bits)| {
            let read = mmio.read64(self.offset(index));
            (read != bits).then_some((index, bits, read))
        });
        if self.sync == GgttSync::FlushControl {
            mmio.write32(GFX_FLSH_CNTL, GFX_FLSH_CNTL_EN);
            let _ = mmio.read32(GFX_FLSH_CNTL);
        }
        FlushOutcome { mismatch }
    }
}
