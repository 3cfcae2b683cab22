//! The model's engine TLBs and their invalidation registers.
//!
//! # Rules, and what each follows
//! - Gen8/Gen9: `GEN8_RTCR`, `GEN8_M1TCR`, `GEN8_M2TCR`, `GEN8_BTCR`,
//!   `GEN8_VTCR`, one per engine (RCS0, VCS0, VCS1, BCS0, VECS0). Writing
//!   bit 0 requests an invalidation; bit 0 reads 1 until it is done (PRM
//!   Skylake Vol. 2c, the engines' "TLB Control" registers; Linux
//!   `intel_engine_init_tlb_invalidation` `gen8_regs` and
//!   `mmio_invalidate_full`'s wait for the bit to read 0).
//! - Gen12: `GEN12_GFX_TLB_INV_CR` (render), `GEN12_BLT_TLB_INV_CR` (copy),
//!   `GEN12_VD_TLB_INV_CR` (video decode), `GEN12_VE_TLB_INV_CR` (video
//!   enhance), `GEN12_COMPCTX_TLB_INV_CR` (compute), one per class; bit *n*
//!   is instance *n*, and reads 1 until that engine's invalidation is done.
//!   The video decode and enhance registers are masked: a bit changes only
//!   if its mask bit (16 higher) is set in the same write (Linux: i915 writes
//!   `_MASKED_BIT_ENABLE(BIT(instance))` to them from `GRAPHICS_VER` 12,
//!   plain `BIT(instance)` to render and copy). `GEN12_OA_TLB_INV_CR` is
//!   counted (Wa_2207587034, `mmio_invalidate_full`); nothing waits on it.
//! - A request stays pending for `busy_reads` reads of its register, then
//!   reads as done. An invalidation counts as complete only when a read
//!   showed it done: i915 waits for the bit (`wait_for_invalidate`), and a
//!   driver that does not look cannot know. Stricter than hardware, which
//!   finishes in its own time.
//! - A request for an engine the device does not have (absent on the
//!   platform, or fused off) is a violation and never completes: i915 only
//!   invalidates engines it found (`for_each_engine` after
//!   `init_engine_mask`), so no source says what hardware does; the model
//!   refuses it.
//! - Each engine remembers the table-memory epoch (see
//!   [`super::MemState::epoch`]) of its last complete invalidation: it may
//!   still hold any translation the tables stopped giving after that.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::engines::{Engine, EngineClass, Engines};
use crate::ids::Gen;
use crate::regs::*;

use super::BarViolation;

/// One engine's TLB.
#[derive(Clone, Debug)]
struct EngineTlb {
    engine: Engine,
    reg: u32,
    bit: u32,
    busy: u32,
    pending: Option<u64>,
    clean_at: u64,
}

/// Every engine TLB of the model device.
#[derive(Debug)]
pub struct TlbModel {
    gen: Gen,
    tlbs: Vec<EngineTlb>,
    /// Reads a request stays pending.
    pub busy_reads: u32,
    /// Invalidations requested, per engine.
    pub requests: BTreeMap<Engine, u32>,
    /// Invalidations seen complete, per engine.
    pub completed: BTreeMap<Engine, u32>,
    /// `GEN12_OA_TLB_INV_CR` writes of 1 (Gen12).
    pub oa_invalidations: u32,
    /// Every write to a TLB invalidation or OA register, in order.
    pub log: Vec<(u32, u32)>,
}

/// The register and bit of `e`'s invalidation on `gen` (hardware's view;
/// the driver's is [`crate::tlb::TlbInvalidation`]).
fn reg_bit(gen: Gen, e: Engine) -> (u32, u32) {
    match gen {
        Gen::Gen8 | Gen::Gen9 => {
            let reg = match (e.class, e.instance) {
                (EngineClass::Render, _) => GEN8_RTCR,
                (EngineClass::VideoDecode, 1) => GEN8_M2TCR,
                (EngineClass::VideoDecode, _) => GEN8_M1TCR,
                (EngineClass::Copy, _) => GEN8_BTCR,
                (EngineClass::VideoEnhance, _) => GEN8_VTCR,
            };
            (reg, 1)
        }
        Gen::Gen12 => (class_reg_gen12(e.class), 1 << e.instance),
    }
}

const fn class_reg_gen12(class: EngineClass) -> u32 {
    match class {
        EngineClass::Render => GEN12_GFX_TLB_INV_CR,
        EngineClass::Copy => GEN12_BLT_TLB_INV_CR,
        EngineClass::VideoDecode => GEN12_VD_TLB_INV_CR,
        EngineClass::VideoEnhance => GEN12_VE_TLB_INV_CR,
    }
}

const GEN8_REGS: [u32; 5] = [GEN8_RTCR, GEN8_M1TCR, GEN8_M2TCR, GEN8_BTCR, GEN8_VTCR];
const GEN12_REGS: [u32; 5] = [
    GEN12_GFX_TLB_INV_CR,
    GEN12_VD_TLB_INV_CR,
    GEN12_VE_TLB_INV_CR,
    GEN12_BLT_TLB_INV_CR,
    GEN12_COMPCTX_TLB_INV_CR,
];

impl TlbModel {
    /// The TLBs of `engines` on a `gen` device.
    pub fn new(gen: Gen, engines: &Engines) -> TlbModel {
        let tlbs = engines
            .iter()
            .map(|engine| {
                let (reg, bit) = reg_bit(gen, engine);
                EngineTlb { engine, reg, bit, busy: 0, pending: None, clean_at: 0 }
            })
            .collect();
        TlbModel {
            gen,
            tlbs,
            busy_reads: 2,
            requests: BTreeMap::new(),
            completed: BTreeMap::new(),
            oa_invalidations: 0,
            log: Vec::new(),
        }
    }

    /// Whether `reg` is one of the registers this model implements.
    pub fn owns(&self, reg: u32) -> bool {
        match self.gen {
            Gen::Gen8 | Gen::Gen9 => GEN8_REGS.contains(&reg),
            Gen::Gen12 => GEN12_REGS.contains(&reg) || reg == GEN12_OA_TLB_INV_CR,
        }
    }

    /// The instance bits a write of `value` to `reg` requests.
    fn requested_bits(&self, reg: u32, value: u32) -> u32 {
        match self.gen {
            Gen::Gen8 | Gen::Gen9 => value & 1,
            Gen::Gen12 if reg == GEN12_VD_TLB_INV_CR || reg == GEN12_VE_TLB_INV_CR => {
                value & (value >> 16) & 0xffff
            }
            Gen::Gen12 => value & 0xffff,
        }
    }

    /// A write of `value` to `reg` (an owned register) at table epoch `epoch`.
    pub fn write(&mut self, reg: u32, value: u32, epoch: u64, violations: &mut Vec<BarViolation>) {
        self.log.push((reg, value));
        if self.gen == Gen::Gen12 && reg == GEN12_OA_TLB_INV_CR {
            if value & GEN12_OA_TLB_INV_CR_INVALIDATE != 0 {
                self.oa_invalidations += 1;
            }
            return;
        }
        let bits = self.requested_bits(reg, value);
        for bit in (0..16).map(|i| 1u32 << i).filter(|b| bits & b != 0) {
            match self.tlbs.iter_mut().find(|t| t.reg == reg && t.bit == bit) {
                Some(t) => {
                    t.pending = Some(epoch);
                    t.busy = self.busy_reads;
                    *self.requests.entry(t.engine).or_insert(0) += 1;
                }
                None => violations.push(BarViolation::TlbNoSuchEngine { reg, bit }),
            }
        }
    }

    /// A read of `reg`: the bits of pending invalidations; one read closer
    /// to done for each.
    pub fn read(&mut self, reg: u32) -> u32 {
        let mut value = 0;
        for t in self.tlbs.iter_mut().filter(|t| t.reg == reg) {
            let Some(epoch) = t.pending else { continue };
            if t.busy > 0 {
                t.busy -= 1;
                value |= t.bit;
            } else {
                t.pending = None;
                t.clean_at = epoch;
                *self.completed.entry(t.engine).or_insert(0) += 1;
            }
        }
        value
    }

    /// An engine that may still hold a translation the tables stopped
    /// giving at epoch `removed_at`: one whose last complete invalidation
    /// was requested before that.
    pub fn may_hold(&self, removed_at: u64) -> Option<Engine> {
        self.tlbs.iter().find(|t| t.clean_at < removed_at).map(|t| t.engine)
    }

    /// The engines the model device has.
    pub fn engines(&self) -> impl Iterator<Item = Engine> + '_ {
        self.tlbs.iter().map(|t| t.engine)
    }

    /// Forgets the counters and the log (keeps what the TLBs may hold).
    pub fn clear_logs(&mut self) {
        self.requests.clear();
        self.completed.clear();
        self.oa_invalidations = 0;
        self.log.clear();
    }
}
