//! The GGTT: 64-bit Gen8 PTEs in the upper half of GTTMMADR, written one
//! `writeq` at a time, made visible to the GPU by a flush.
//!
//! # Sources
//! - Intel PRM, Skylake, Vol. 5 "Memory Views", "Global Graphics
//!   Translation Table (GGTT)": one 64-bit entry per 4 KiB page of the
//!   global graphics address space, in the GTTMMADR range.
//! - Linux `gt/intel_ggtt.c`: `ggtt_probe_common` (entries at BAR0 + len/2),
//!   `gen8_set_pte` (`writeq`), `gen8_ggtt_clear_range` (scratch entries),
//!   `init_ggtt` (the last page stays bound to scratch: a guard against
//!   prefetch past the end), and the flush sequence (see `Ggtt::flush`).
//!
//! # Invariants
//! - Only entries `0..managed` and the reserved last entry are ever written.
//! - An entry is written only with an encoder's output or the scratch entry.
//! - After `Ggtt::flush`, every earlier write was read back (posting
//!   read), flushed with `GFX_FLSH_CNTL`, and that write was read back too.

use crate::pte::Gen8Pte;
use crate::regs::{Mmio, GFX_FLSH_CNTL, GFX_FLSH_CNTL_EN, GGTT_ENTRY_BYTES};

/// What a flush found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushOutcome {
    /// The last written entry read back as written (`true` when nothing
    /// was written since the previous flush).
    pub readback_ok: bool,
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
    scratch: Gen8Pte,
    /// The last entry written since the last flush, and its value.
    last_write: Option<(u32, u64)>,
}

impl Ggtt {
    /// A GGTT of `total` entries at BAR offset `base`, of which `gtt` gets
    /// `managed` (`managed < total`: the last entry is the driver's).
    pub(crate) fn new(base: u32, total: u32, managed: u32, scratch: Gen8Pte) -> Self {
        debug_assert!(managed < total);
        Ggtt { base, total, managed, scratch, last_write: None }
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
    pub fn scratch(&self) -> Gen8Pte {
        self.scratch
    }

    fn offset(&self, index: u32) -> u32 {
        self.base + index * GGTT_ENTRY_BYTES
    }

    /// Writes entry `index` (the caller checked it is managed or reserved).
    pub(crate) fn write<M: Mmio>(&mut self, mmio: &mut M, index: u32, pte: Gen8Pte) {
        mmio.write64(self.offset(index), pte.bits());
        self.last_write = Some((index, pte.bits()));
    }

    /// Reads entry `index` back through the BAR.
    pub(crate) fn read<M: Mmio>(&self, mmio: &mut M, index: u32) -> Gen8Pte {
        Gen8Pte::from_bits(mmio.read64(self.offset(index)))
    }

    /// Writes the scratch entry to `0..managed` and to the reserved entry.
    pub(crate) fn clear_all<M: Mmio>(&mut self, mmio: &mut M) {
        for i in 0..self.managed {
            self.write(mmio, i, self.scratch);
        }
        self.write(mmio, self.reserved(), self.scratch);
    }

    /// Makes earlier writes visible and drops the GPU's cached GGTT
    /// translations, in i915's order:
    /// 1. read back the last entry written (the posting read older i915 did
    ///    in `gen8_ggtt_insert_entries`: GGTT writes are posted, a read
    ///    completes them), and check it holds what was written;
    /// 2. write `GFX_FLSH_CNTL_EN` to `GFX_FLSH_CNTL` (`gen8_ggtt_invalidate`);
    /// 3. read `GFX_FLSH_CNTL` back (`gen6_ggtt_invalidate`, `bxt_vtd_ggtt_wa`):
    ///    the flush write itself is posted until a read completes it.
    pub(crate) fn flush<M: Mmio>(&mut self, mmio: &mut M) -> FlushOutcome {
        let readback_ok = match self.last_write.take() {
            Some((index, bits)) => mmio.read64(self.offset(index)) == bits,
            None => true,
        };
        mmio.write32(GFX_FLSH_CNTL, GFX_FLSH_CNTL_EN);
        let _ = mmio.read32(GFX_FLSH_CNTL);
        FlushOutcome { readback_ok }
    }
}
