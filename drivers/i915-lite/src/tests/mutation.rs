//! Deliberately broken drivers, and proof that the shared scenarios of
//! `engine` catch each break on each generation.
//!
//! A [`Mutation`] sits between the driver and the model ([`MutantBar`],
//! [`MutantMemory`]) and changes what the driver does the way a bug in it
//! would: an LM bit in a Gen12 entry, an RW bit in a GGTT entry, a skipped
//! TLB invalidation, a skipped flush... The driver itself is unchanged;
//! what reaches the model is not.

use std::collections::BTreeMap;

use super::engine::{clearing_batches, slice_confinement, walk_access, Finding, Reach};
use super::Kind;
use crate::engines::Engine;
use crate::model::{BarViolation, ModelBar, ModelMemory, Walk};
use crate::ppgtt::TableMemory;
use crate::pte::{gen12, EntryFault, PRESENT, RW};
use crate::regs::*;

/// One way to break the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mutation {
    /// No break: the honest driver.
    None,
    /// Bit 1 set in every GGTT entry written: an RW bit, which the Gen9
    /// GGTT ignores and the Gen12 GGTT reads as local memory (LM).
    GgttBit1,
    /// Gen12's PPGTT LM bit (11) set in every table entry written.
    PpgttLocalMemory,
    /// Meteor Lake's PAT3 (bit 62) set in every table entry written.
    PpgttPat3,
    /// RW set in every table entry written (read-only leaves become writable).
    PpgttAlwaysWritable,
    /// Table writes never made visible (`make_visible` dropped).
    NoMakeVisible,
    /// TLB invalidation requests dropped (the polls still read "done").
    NoTlbInvalidation,
    /// Gen12 media TLB requests written without their mask bits.
    UnmaskedTlbRequests,
    /// `GFX_FLSH_CNTL` writes dropped.
    NoFlushControl,
    /// No read reaches the device but the TLB polls: GGTT and register
    /// reads are answered from what was written (no posting read).
    NoPostingRead,
}

const GGTT_HALF: u32 = 8 << 20;

fn is_tlb_reg(offset: u32) -> bool {
    [
        GEN8_RTCR,
        GEN8_M1TCR,
        GEN8_M2TCR,
        GEN8_BTCR,
        GEN8_VTCR,
        GEN12_GFX_TLB_INV_CR,
        GEN12_VD_TLB_INV_CR,
        GEN12_VE_TLB_INV_CR,
        GEN12_BLT_TLB_INV_CR,
        GEN12_OA_TLB_INV_CR,
    ]
    .contains(&offset)
}

/// The model BAR behind a mutation.
pub(crate) struct MutantBar {
    bar: ModelBar,
    m: Mutation,
    regs: BTreeMap<u32, u32>,
    ggtt: BTreeMap<u32, u64>,
}

impl MutantBar {
    pub(crate) fn new(bar: ModelBar, m: Mutation) -> MutantBar {
        MutantBar { bar, m, regs: BTreeMap::new(), ggtt: BTreeMap::new() }
    }
}

impl Mmio for MutantBar {
    fn read32(&mut self, offset: u32) -> u32 {
        if self.m == Mutation::NoPostingRead && !is_tlb_reg(offset) {
            return match self.ggtt.get(&(offset & !7)) {
                Some(&v) if offset >= GGTT_HALF => (v >> ((offset & 4) * 8)) as u32,
                _ => self.regs.get(&offset).copied().unwrap_or(0),
            };
        }
        self.bar.read32(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        let value = match self.m {
            Mutation::NoTlbInvalidation if is_tlb_reg(offset) => return,
            Mutation::NoFlushControl if offset == GFX_FLSH_CNTL => return,
            Mutation::UnmaskedTlbRequests
                if offset == GEN12_VD_TLB_INV_CR || offset == GEN12_VE_TLB_INV_CR =>
            {
                value & 0xffff
            }
            _ => value,
        };
        self.regs.insert(offset, value);
        self.bar.write32(offset, value);
    }
    fn read64(&mut self, offset: u32) -> u64 {
        if self.m == Mutation::NoPostingRead {
            return self.ggtt.get(&offset).copied().unwrap_or(0);
        }
        self.bar.read64(offset)
    }
    fn write64(&mut self, offset: u32, value: u64) {
        let value = match self.m {
            Mutation::GgttBit1 if offset >= GGTT_HALF => value | RW,
            _ => value,
        };
        self.ggtt.insert(offset, value);
        self.bar.write64(offset, value);
    }
}

/// The model's table memory behind a mutation.
pub(crate) struct MutantMemory {
    mem: ModelMemory,
    m: Mutation,
}

impl MutantMemory {
    pub(crate) fn new(mem: ModelMemory, m: Mutation) -> MutantMemory {
        MutantMemory { mem, m }
    }
}

impl TableMemory for MutantMemory {
    fn pages(&self) -> u32 {
        self.mem.pages()
    }
    fn bus(&self, page: u32) -> u64 {
        self.mem.bus(page)
    }
    fn read(&self, page: u32, index: u16) -> u64 {
        self.mem.read(page, index)
    }
    fn write(&mut self, page: u32, index: u16, value: u64) {
        let add = match self.m {
            Mutation::PpgttLocalMemory => gen12::PPGTT_LM,
            Mutation::PpgttPat3 => gen12::PPGTT_PAT3,
            Mutation::PpgttAlwaysWritable => RW,
            _ => 0,
        };
        let value = if value & PRESENT != 0 { value | add } else { value };
        self.mem.write(page, index, value);
    }
    fn make_visible(&mut self) {
        if self.m != Mutation::NoMakeVisible {
            self.mem.make_visible();
        }
    }
}

/// What the three shared scenarios find on a `kind` device broken by `m`.
fn findings(kind: Kind, m: Mutation) -> Vec<Finding> {
    let mut f = clearing_batches(kind, m);
    f.extend(slice_confinement(kind, m));
    f.extend(walk_access(kind, m));
    f
}

fn ggtt_fault(f: &[Finding], want: EntryFault) -> bool {
    f.iter().any(|x| {
        matches!(x, Finding::Violation(BarViolation::GgttEntry { fault, .. }) if *fault == want)
    })
}

fn walk_fault(f: &[Finding], want: EntryFault) -> bool {
    f.iter().any(|x| matches!(x, Finding::Walk(_, Walk::Fault(_, _, fault)) if *fault == want))
}

fn tlb_reach(f: &[Finding]) -> Option<Engine> {
    f.iter().find_map(|x| match x {
        Finding::UnmappedTooEarly(_, Reach::Tlb(e)) => Some(*e),
        _ => None,
    })
}

per_gen! {
    fn an_rw_bit_in_the_ggtt_is_caught_and_on_gen12_it_is_local_memory(k: Kind) {
        let f = findings(k, Mutation::GgttBit1);
        let want = match k {
            Kind::Gen9 => EntryFault::UnknownBits(RW),
            Kind::Gen12 => EntryFault::LocalMemory,
        };
        assert!(ggtt_fault(&f, want), "{f:?}");
    }

    fn a_ppgtt_local_memory_bit_is_caught(k: Kind) {
        let f = findings(k, Mutation::PpgttLocalMemory);
        let want = match k {
            Kind::Gen9 => EntryFault::UnknownBits(gen12::PPGTT_LM),
            Kind::Gen12 => EntryFault::LocalMemory,
        };
        assert!(walk_fault(&f, want), "{f:?}");
    }

    fn a_meteor_lake_pat3_bit_is_caught(k: Kind) {
        let f = findings(k, Mutation::PpgttPat3);
        assert!(walk_fault(&f, EntryFault::UnknownBits(gen12::PPGTT_PAT3)), "{f:?}");
    }

    fn a_writable_read_only_leaf_is_caught(k: Kind) {
        let f = findings(k, Mutation::PpgttAlwaysWritable);
        let writable_walk = |x: &Finding| matches!(x, Finding::Walk(_, Walk::Page { writable: true, .. }));
        assert!(f.iter().any(writable_walk), "{f:?}");
    }

    fn table_writes_never_made_visible_are_caught(k: Kind) {
        let f = findings(k, Mutation::NoMakeVisible);
        assert!(f.iter().any(|x| matches!(x, Finding::TablesNotVisible(_))), "{f:?}");
        assert!(f.iter().any(|x| matches!(x, Finding::UnmappedTooEarly(_, Reach::Unflushed))));
    }

    fn a_skipped_tlb_invalidation_is_caught(k: Kind) {
        let f = findings(k, Mutation::NoTlbInvalidation);
        assert_eq!(tlb_reach(&f), Some(Engine::RCS0), "{f:?}");
    }

    fn unmasked_media_tlb_requests_are_caught_on_gen12_and_harmless_on_gen9(k: Kind) {
        let f = findings(k, Mutation::UnmaskedTlbRequests);
        match k {
            // Gen8 TLB control registers are not masked: the request is bit 0.
            Kind::Gen9 => assert_eq!(f, []),
            Kind::Gen12 => assert_eq!(tlb_reach(&f), Some(Engine::VCS0), "{f:?}"),
        }
    }

    fn a_skipped_flush_control_is_caught_on_gen9_and_not_needed_on_gen12(k: Kind) {
        let f = findings(k, Mutation::NoFlushControl);
        match k {
            Kind::Gen9 => assert!(f.iter().any(|x| matches!(x, Finding::NotFlushed(_))), "{f:?}"),
            // gen8_ggtt_invalidate writes nothing on an uncached (Gen11+) GGTT.
            Kind::Gen12 => assert_eq!(f, []),
        }
    }

    fn a_skipped_posting_read_is_caught(k: Kind) {
        let f = findings(k, Mutation::NoPostingRead);
        assert!(f.iter().any(|x| matches!(x, Finding::NotFlushed(_))), "{f:?}");
        assert!(f.iter().any(|x| matches!(x, Finding::UnmappedTooEarly(..))), "{f:?}");
    }
}
