//! The GTTMMADR BAR as the driver sees it ([`Mmio`]) and the registers it
//! touches, named as in the PRM and i915.
//!
//! # Sources
//! - Intel PRM, Skylake, Vol. 2c "Registers": "GFX_FLSH_CNTL — Graphics
//!   Flush Control" (MMIO 0x101008; writing 1 invalidates the GGTT TLBs and
//!   flushes posted GGTT writes), the per-engine "TLB Control" registers.
//! - Linux `gt/intel_gt_regs.h` (read at commit `002c6ca75289`; older:
//!   `i915_reg.h`): `GFX_FLSH_CNTL_GEN6` = 0x101008, `GFX_FLSH_CNTL_EN` =
//!   bit 0; `GEN8_RTCR` 0x4260, `GEN8_M1TCR` 0x4264, `GEN8_M2TCR` 0x4268,
//!   `GEN8_BTCR` 0x426c, `GEN8_VTCR` 0x4270; `GEN12_GFX_TLB_INV_CR` 0xced8,
//!   `GEN12_VD_TLB_INV_CR` 0xcedc, `GEN12_VE_TLB_INV_CR` 0xcee0,
//!   `GEN12_BLT_TLB_INV_CR` 0xcee4, `GEN12_COMPCTX_TLB_INV_CR` 0xcf04;
//!   `GEN11_GT_VEBOX_VDBOX_DISABLE` 0x9140 with `GEN11_GT_VDBOX_DISABLE_MASK`
//!   0xff and `GEN11_GT_VEBOX_DISABLE_SHIFT` 16.
//! - Linux `i915_perf_oa_regs.h` (older: `i915_reg.h`): `GEN12_OA_TLB_INV_CR`
//!   0xceec; `gt/intel_gtt.h`: `GEN12_GUC_TLB_INV_CR` 0xcee8.
//! - Linux `i915_reg_defs.h` `_MASKED_BIT_ENABLE(a)`: `(a) << 16 | (a)`
//!   (a masked register only takes the bits whose mask bit, 16 higher, is set).
//! - Linux `gt/intel_ggtt.c` `gen8_ggtt_invalidate` (the flush write),
//!   `gen6_ggtt_invalidate` and `bxt_vtd_ggtt_wa` (the posting read of
//!   `GFX_FLSH_CNTL` after it); `gt/intel_tlb.c` `mmio_invalidate_full` and
//!   `gt/intel_engine_cs.c` `intel_engine_init_tlb_invalidation` (see
//!   [`crate::tlb`]).

/// Uncached access to the GTTMMADR BAR, at byte offsets from its start.
///
/// Reads have effects on real hardware (they complete posted writes), so
/// every method takes `&mut self`. The unikernel implements this with
/// volatile accesses to the BAR mapped uncached; the model in memory.
pub trait Mmio {
    /// 32-bit read at `offset` (4-byte aligned).
    fn read32(&mut self, offset: u32) -> u32;
    /// 32-bit write at `offset` (4-byte aligned).
    fn write32(&mut self, offset: u32, value: u32);
    /// 64-bit read at `offset` (8-byte aligned), one access (`readq`).
    fn read64(&mut self, offset: u32) -> u64;
    /// 64-bit write at `offset` (8-byte aligned), one access (`writeq`).
    fn write64(&mut self, offset: u32, value: u64);
}

/// `GFX_FLSH_CNTL_GEN6`: Graphics Flush Control.
#[doc(alias = "GFX_FLSH_CNTL_GEN6")]
pub const GFX_FLSH_CNTL: u32 = 0x10_1008;
/// `GFX_FLSH_CNTL_EN`: the value that triggers the flush.
pub const GFX_FLSH_CNTL_EN: u32 = 1 << 0;

/// `GEN8_RTCR`: render engine TLB control (Gen8..Gen11).
pub const GEN8_RTCR: u32 = 0x4260;
/// `GEN8_M1TCR`: video decode engine 0 (VCS0) TLB control.
pub const GEN8_M1TCR: u32 = 0x4264;
/// `GEN8_M2TCR`: video decode engine 1 (VCS1, GT3/GT4 only) TLB control.
pub const GEN8_M2TCR: u32 = 0x4268;
/// `GEN8_BTCR`: blitter engine TLB control.
pub const GEN8_BTCR: u32 = 0x426c;
/// `GEN8_VTCR`: video enhancement engine TLB control.
pub const GEN8_VTCR: u32 = 0x4270;
/// Bit 0 of a Gen8 TLB control register: write 1 to invalidate; reads 1 until done.
pub const TLB_INVALIDATE: u32 = 1 << 0;

/// `GEN12_GFX_TLB_INV_CR`: render class TLB invalidation (bit *n*: RCS*n*).
pub const GEN12_GFX_TLB_INV_CR: u32 = 0xced8;
/// `GEN12_VD_TLB_INV_CR`: video decode class (bit *n*: VCS*n*), masked.
pub const GEN12_VD_TLB_INV_CR: u32 = 0xcedc;
/// `GEN12_VE_TLB_INV_CR`: video enhancement class (bit *n*: VECS*n*), masked.
pub const GEN12_VE_TLB_INV_CR: u32 = 0xcee0;
/// `GEN12_BLT_TLB_INV_CR`: copy class (bit *n*: BCS*n*).
pub const GEN12_BLT_TLB_INV_CR: u32 = 0xcee4;
/// `GEN12_COMPCTX_TLB_INV_CR`: compute class. No Gen12 integrated part has a
/// compute engine (`platform_engine_mask`), so the driver never writes it.
pub const GEN12_COMPCTX_TLB_INV_CR: u32 = 0xcf04;
/// `GEN12_GUC_TLB_INV_CR`: the GuC's own TLB, which i915 invalidates in
/// `guc_ggtt_invalidate` when it uses the GuC. This driver loads no GuC
/// firmware and never writes it (see [`crate::ggtt`]).
pub const GEN12_GUC_TLB_INV_CR: u32 = 0xcee8;
/// `GEN12_OA_TLB_INV_CR`: the OA unit's TLB; Wa_2207587034 writes 1 to it
/// after the engines' requests on TGL, RKL, ADL-S and ADL-P.
pub const GEN12_OA_TLB_INV_CR: u32 = 0xceec;
/// `GEN12_OA_TLB_INV_CR_INVALIDATE`.
pub const GEN12_OA_TLB_INV_CR_INVALIDATE: u32 = 1 << 0;

/// `GEN11_GT_VEBOX_VDBOX_DISABLE`: which media engines are fused off.
pub const GEN11_GT_VEBOX_VDBOX_DISABLE: u32 = 0x9140;
/// `GEN11_GT_VDBOX_DISABLE_MASK`: bit *i* set: VCS*i* fused off.
pub const GEN11_GT_VDBOX_DISABLE_MASK: u32 = 0xff;
/// `GEN11_GT_VEBOX_DISABLE_SHIFT`: bits 19:16, bit *i*: VECS*i* fused off.
pub const GEN11_GT_VEBOX_DISABLE_SHIFT: u32 = 16;

/// `_MASKED_BIT_ENABLE(bits)`: the value that sets `bits` (15:0) of a masked
/// register, whose bits 31:16 say which of bits 15:0 the write changes.
pub const fn masked_bit_enable(bits: u32) -> u32 {
    (bits << 16) | bits
}

/// Bytes per GGTT entry (Gen8+: 64-bit).
pub const GGTT_ENTRY_BYTES: u32 = 8;
