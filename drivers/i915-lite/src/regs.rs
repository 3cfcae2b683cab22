//! The GTTMMADR BAR as the driver sees it ([`Mmio`]) and the registers it
//! touches, named as in the PRM and i915.
//!
//! # Sources
//! - Intel PRM, Skylake, Vol. 2c "Registers": "GFX_FLSH_CNTL — Graphics
//!   Flush Control" (MMIO 0x101008; writing 1 invalidates the GGTT TLBs and
//!   flushes posted GGTT writes), the per-engine "TLB Control" registers.
//! - Linux `gt/intel_gt_regs.h` (older: `i915_reg.h`): `GFX_FLSH_CNTL_GEN6`
//!   = 0x101008, `GFX_FLSH_CNTL_EN` = bit 0; `GEN8_RTCR` 0x4260, `GEN8_M1TCR`
//!   0x4264, `GEN8_M2TCR` 0x4268, `GEN8_BTCR` 0x426c, `GEN8_VTCR` 0x4270.
//! - Linux `gt/intel_ggtt.c` `gen8_ggtt_invalidate` (the flush write),
//!   `gen6_ggtt_invalidate` and `bxt_vtd_ggtt_wa` (the posting read of
//!   `GFX_FLSH_CNTL` after it); `gt/intel_tlb.c` `mmio_invalidate_full` and
//!   `gt/intel_engine_cs.c` `intel_engine_init_tlb_invalidation` (Gen8..11:
//!   write 1 to each engine's TLB control register, wait until bit 0 reads 0;
//!   "typical 40us, cap at 1ms").

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

/// `GEN8_RTCR`: render engine TLB control.
pub const GEN8_RTCR: u32 = 0x4260;
/// `GEN8_M1TCR`: video decode engine 0 (VCS0) TLB control.
pub const GEN8_M1TCR: u32 = 0x4264;
/// `GEN8_M2TCR`: video decode engine 1 (VCS1, GT3/GT4 only) TLB control.
pub const GEN8_M2TCR: u32 = 0x4268;
/// `GEN8_BTCR`: blitter engine TLB control.
pub const GEN8_BTCR: u32 = 0x426c;
/// `GEN8_VTCR`: video enhancement engine TLB control.
pub const GEN8_VTCR: u32 = 0x4270;
/// Bit 0 of a TLB control register: write 1 to invalidate; reads 1 until done.
pub const TLB_INVALIDATE: u32 = 1 << 0;

/// The TLB control registers of the engines every Gen8/Gen9 GT has (RCS,
/// VCS0, BCS, VECS); [`GEN8_M2TCR`] is added for parts with VCS1.
pub const TLB_CONTROL_BASE: [u32; 4] = [GEN8_RTCR, GEN8_M1TCR, GEN8_BTCR, GEN8_VTCR];

/// Bytes per GGTT entry (Gen8+: 64-bit).
pub const GGTT_ENTRY_BYTES: u32 = 8;
