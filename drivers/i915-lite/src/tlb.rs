//! PPGTT TLB invalidation through MMIO: one request per engine, then a
//! bounded wait for each to report done. A wait that runs out is a
//! [`TlbTimeout`] the caller gets back, never a hang.
//!
//! # What i915 does, and so this module
//! `gt/intel_engine_cs.c` `intel_engine_init_tlb_invalidation` (earlier
//! kernels: the same tables in `gt/intel_gt.c` `intel_gt_invalidate_tlbs`)
//! picks, per engine:
//!
//! | gen | class | register | request | done bit |
//! |---|---|---|---|---|
//! | 8..11 | render | `GEN8_RTCR` | `BIT(0)` | bit 0 |
//! | 8..11 | video decode 0 / 1 | `GEN8_M1TCR` / `GEN8_M2TCR` | `BIT(0)` | bit 0 |
//! | 8..11 | video enhance | `GEN8_VTCR` | `BIT(0)` | bit 0 |
//! | 8..11 | copy | `GEN8_BTCR` | `BIT(0)` | bit 0 |
//! | 12.0 | render | `GEN12_GFX_TLB_INV_CR` | `BIT(inst)` | `BIT(inst)` |
//! | 12.0 | video decode | `GEN12_VD_TLB_INV_CR` | `_MASKED_BIT_ENABLE(BIT(inst))` | `BIT(inst)` |
//! | 12.0 | video enhance | `GEN12_VE_TLB_INV_CR` | `_MASKED_BIT_ENABLE(BIT(inst))` | `BIT(inst)` |
//! | 12.0 | copy | `GEN12_BLT_TLB_INV_CR` | `BIT(inst)` | `BIT(inst)` |
//!
//! (On Gen8..11 `val = instance`, except VCS1, which uses `GEN8_M2TCR` with
//! bit 0; the Gen8/Gen9 engines here have instance 0 or are VCS1, so every
//! Gen8 request is bit 0. From Gen12, video decode, video enhance and
//! compute requests are masked writes.)
//!
//! `gt/intel_tlb.c` `mmio_invalidate_full` then writes every engine's
//! request, writes 1 to `GEN12_OA_TLB_INV_CR` on TGL, DG1, RKL, ADL-S and
//! ADL-P (Wa_2207587034; RPL and ADL-N are subplatforms of the last two), and
//! waits for each engine's done bit to read 0 (`wait_for_invalidate`:
//! "typical invalidation time at 40us ... cap at 1ms", waiting up to 4 ms).
//! This module does the same, with the wait bounded by a number of reads
//! ([`crate::Config::tlb_poll_reads`]) because the driver has no clock.
//!
//! # Not done here
//! i915 invalidates only engines that are awake, holding forcewake. This
//! driver holds no forcewake (nothing here submits work, so engines hold no
//! PPGTT translations gpu-dom made) and asks every engine the device has.

use core::fmt;

use crate::engines::{Engine, EngineClass, Engines, MAX_ENGINES};
use crate::ids::{Gen, Platform};
use crate::regs::*;

/// One engine's TLB invalidation: where to write what, and which bit says done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbInvalidation {
    /// The engine.
    pub engine: Engine,
    /// The register.
    pub reg: u32,
    /// The value written to request the invalidation.
    pub request: u32,
    /// The bit that reads 1 until the invalidation is done.
    pub done: u32,
}

impl TlbInvalidation {
    /// The invalidation of `engine` on `gen`, as i915 sets it up.
    pub const fn of(gen: Gen, engine: Engine) -> TlbInvalidation {
        match gen {
            Gen::Gen8 | Gen::Gen9 => {
                let reg = match engine.class {
                    EngineClass::Render => GEN8_RTCR,
                    EngineClass::VideoDecode if engine.instance == 1 => GEN8_M2TCR,
                    EngineClass::VideoDecode => GEN8_M1TCR,
                    EngineClass::VideoEnhance => GEN8_VTCR,
                    EngineClass::Copy => GEN8_BTCR,
                };
                TlbInvalidation { engine, reg, request: TLB_INVALIDATE, done: TLB_INVALIDATE }
            }
            Gen::Gen12 => {
                let bit = 1 << engine.instance;
                let (reg, request) = match engine.class {
                    EngineClass::Render => (GEN12_GFX_TLB_INV_CR, bit),
                    EngineClass::Copy => (GEN12_BLT_TLB_INV_CR, bit),
                    EngineClass::VideoDecode => (GEN12_VD_TLB_INV_CR, masked_bit_enable(bit)),
                    EngineClass::VideoEnhance => (GEN12_VE_TLB_INV_CR, masked_bit_enable(bit)),
                };
                TlbInvalidation { engine, reg, request, done: bit }
            }
        }
    }
}

/// An engine whose invalidation did not report done in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbTimeout {
    /// The first engine that timed out.
    pub engine: Engine,
    /// Its register.
    pub reg: u32,
    /// The last value read from it.
    pub read: u32,
    /// Reads made.
    pub reads: u32,
    /// How many engines timed out in this invalidation (at least 1).
    pub engines: u32,
}

impl fmt::Display for TlbTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} TLB invalidation did not complete: register {:#x} still read {:#010x} after \
             {} reads ({} engine(s) timed out)",
            self.engine, self.reg, self.read, self.reads, self.engines
        )
    }
}

/// Every engine's invalidation for one device, and whether Wa_2207587034 applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbPlan {
    steps: [TlbInvalidation; MAX_ENGINES],
    len: usize,
    oa_workaround: bool,
}

impl TlbPlan {
    /// The plan for `engines` of a `platform` device.
    pub fn new(platform: Platform, engines: &Engines) -> TlbPlan {
        let gen = platform.gen();
        let mut steps = [TlbInvalidation::of(gen, Engine::RCS0); MAX_ENGINES];
        let mut len = 0;
        for e in engines.iter() {
            steps[len] = TlbInvalidation::of(gen, e);
            len += 1;
        }
        TlbPlan { steps, len, oa_workaround: platform.needs_oa_tlb_invalidation() }
    }

    /// The per-engine invalidations, in engine-id order.
    pub fn steps(&self) -> &[TlbInvalidation] {
        &self.steps[..self.len]
    }

    /// Whether the OA unit's TLB is invalidated too (Wa_2207587034).
    pub fn oa_workaround(&self) -> bool {
        self.oa_workaround
    }

    /// Requests every invalidation, then waits (at most `poll_reads` reads
    /// each) for each to be done. Every engine is waited for even after one
    /// times out; the error names the first.
    pub fn run<M: Mmio>(&self, mmio: &mut M, poll_reads: u32) -> Result<(), TlbTimeout> {
        for s in self.steps() {
            mmio.write32(s.reg, s.request);
        }
        if self.oa_workaround {
            mmio.write32(GEN12_OA_TLB_INV_CR, GEN12_OA_TLB_INV_CR_INVALIDATE);
        }
        let mut first: Option<TlbTimeout> = None;
        let mut timed_out = 0;
        for s in self.steps() {
            let mut read = 0;
            let mut reads = 0;
            let done = (0..poll_reads.max(1)).any(|_| {
                read = mmio.read32(s.reg);
                reads += 1;
                read & s.done == 0
            });
            if !done {
                timed_out += 1;
                first.get_or_insert(TlbTimeout {
                    engine: s.engine,
                    reg: s.reg,
                    read,
                    reads,
                    engines: 0,
                });
            }
        }
        match first {
            Some(t) => Err(TlbTimeout { engines: timed_out, ..t }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen9_requests_are_bit_0_of_each_engines_control_register() {
        let inv = |e| TlbInvalidation::of(Gen::Gen9, e);
        assert_eq!(
            inv(Engine::RCS0),
            TlbInvalidation { engine: Engine::RCS0, reg: 0x4260, request: 1, done: 1 }
        );
        assert_eq!((inv(Engine::VCS0).reg, inv(Engine::VCS1).reg), (0x4264, 0x4268));
        assert_eq!((inv(Engine::BCS0).reg, inv(Engine::VECS0).reg), (0x426c, 0x4270));
        assert!([Engine::VCS1, Engine::VECS0].iter().all(|&e| inv(e).request == 1));
    }

    #[test]
    fn gen12_requests_set_the_instance_bit_masked_for_media_engines() {
        let inv = |e| TlbInvalidation::of(Gen::Gen12, e);
        assert_eq!((inv(Engine::RCS0).reg, inv(Engine::RCS0).request), (0xced8, 1));
        assert_eq!((inv(Engine::BCS0).reg, inv(Engine::BCS0).request), (0xcee4, 1));
        assert_eq!((inv(Engine::VCS0).reg, inv(Engine::VCS0).request), (0xcedc, 0x0001_0001));
        let vcs2 = inv(Engine::VCS2);
        assert_eq!((vcs2.reg, vcs2.request, vcs2.done), (0xcedc, 0x0004_0004, 0x4));
        assert_eq!((inv(Engine::VECS0).reg, inv(Engine::VECS0).request), (0xcee0, 0x0001_0001));
    }

    #[test]
    fn the_oa_workaround_is_for_gen12_only() {
        let e = Engines::new(&[Engine::RCS0]);
        assert!(TlbPlan::new(Platform::TigerLake, &e).oa_workaround());
        assert!(TlbPlan::new(Platform::RaptorLakeP, &e).oa_workaround());
        assert!(!TlbPlan::new(Platform::Skylake, &e).oa_workaround());
    }
}
