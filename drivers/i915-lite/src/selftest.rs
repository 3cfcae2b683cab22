//! The hardware self-test the image runs when it finds a supported GPU:
//! what the probe learned (device, BAR, GGC, the engines and how GGTT
//! updates are synchronised on this generation), and one GGTT
//! write/read-back/restore round trip
//! through the BAR on the entry the driver reserved (the last one), so no
//! entry `gtt` manages is touched.
//!
//! The test pattern points at the driver's own scratch PT page: even if a
//! GPU engine walked the entry in that window, it would read a page of
//! scratch entries, nothing of any guest.

use core::fmt;

use crate::driver::I915;
use crate::engines::Engines;
use crate::ggtt::GgttSync;
use crate::ids::{Gen, Gt, Platform};
use crate::pci::Bar;
use crate::ppgtt::TableMemory;
use crate::regs::Mmio;

/// The pool page whose address the pattern carries (the scratch PT).
const PATTERN_PAGE: u32 = 1;

/// What the self-test found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfTestReport {
    /// Device name from the ID table.
    pub name: &'static str,
    /// PCI device ID.
    pub device_id: u16,
    /// PCI revision.
    pub revision: u8,
    /// Platform.
    pub platform: Platform,
    /// Generation.
    pub gen: Gen,
    /// GT level.
    pub gt: Gt,
    /// BAR0.
    pub gttmmadr: Bar,
    /// Raw GGC.
    pub ggc: u16,
    /// GGTT bytes (GGMS).
    pub ggtt_bytes: u32,
    /// GGTT entries the device has.
    pub ggtt_entries: u32,
    /// GGTT entries handed to `gtt`.
    pub ggtt_managed: u32,
    /// The reserved entry tested.
    pub slot: u32,
    /// Stolen memory bytes (GMS), `None` if reserved encoding.
    pub stolen_bytes: Option<u64>,
    /// The engines whose TLBs the driver invalidates.
    pub engines: Engines,
    /// `GEN11_GT_VEBOX_VDBOX_DISABLE` as read (Gen12).
    pub media_fuse: Option<u32>,
    /// How GGTT writes are made visible.
    pub ggtt_sync: GgttSync,
    /// The slot held the scratch entry before the test (as init left it).
    pub slot_was_scratch: bool,
    /// The pattern written.
    pub pattern: u64,
    /// The pattern as read back (64-bit read).
    pub read_back: u64,
}

/// Why the self-test failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTestError {
    /// The pattern did not read back (64-bit read, or its low dword by a
    /// 32-bit read).
    ReadBack {
        /// GGTT index.
        index: u32,
        /// What was written.
        wrote: u64,
        /// What the 64-bit read returned.
        read: u64,
        /// What the 32-bit read of the low dword returned.
        read_low: u32,
    },
    /// The scratch entry did not read back after the restore.
    Restore {
        /// GGTT index.
        index: u32,
        /// What was written (the scratch entry).
        wrote: u64,
        /// What was read.
        read: u64,
    },
}

impl fmt::Display for SelfTestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SelfTestError::ReadBack { index, wrote, read, read_low } => write!(
                f,
                "GGTT[{index}] wrote {wrote:#018x}, read {read:#018x} (low dword {read_low:#010x}): \
                 the BAR is not mapped uncached at the right address, or the GPU is not decoding memory"
            ),
            SelfTestError::Restore { index, wrote, read } => {
                write!(f, "GGTT[{index}] restore wrote {wrote:#018x}, read {read:#018x}")
            }
        }
    }
}

impl fmt::Display for SelfTestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: u64 = 1 << 20;
        writeln!(
            f,
            "i915-lite: {} [8086:{:04x}] rev {:#04x} ({:?}, {:?}, {:?})",
            self.name, self.device_id, self.revision, self.gen, self.platform, self.gt
        )?;
        writeln!(
            f,
            "i915-lite: GTTMMADR {:#x} size {} MiB, GGC {:#06x}: GGTT {} MiB = {} entries ({} for guests), stolen {}",
            self.gttmmadr.base,
            self.gttmmadr.size / MIB,
            self.ggc,
            u64::from(self.ggtt_bytes) / MIB,
            self.ggtt_entries,
            self.ggtt_managed,
            StolenFmt(self.stolen_bytes)
        )?;
        write!(f, "i915-lite: TLB invalidation for {}", self.engines)?;
        if let Some(fuse) = self.media_fuse {
            write!(f, " (media fuse {fuse:#010x})")?;
        }
        let sync = match self.ggtt_sync {
            GgttSync::FlushControl => "read-back + GFX_FLSH_CNTL + posting read",
            GgttSync::PostingRead => "read-back (posting read; the GPU snoops GGTT writes)",
        };
        writeln!(f, "; GGTT updates: {sync}")?;
        write!(
            f,
            "i915-lite: self-test GGTT[{}] wrote {:#018x} read {:#018x}, restored to scratch: ok",
            self.slot, self.pattern, self.read_back
        )
    }
}

struct StolenFmt(Option<u64>);

impl fmt::Display for StolenFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(b) => write!(f, "{} MiB", b >> 20),
            None => f.write_str("reserved GMS encoding"),
        }
    }
}

/// Runs the self-test on a set-up driver. The reserved slot ends at scratch
/// (flushed) whether or not the test passes.
pub fn selftest<M: Mmio, T: TableMemory>(
    d: &mut I915<M, T>,
) -> Result<SelfTestReport, SelfTestError> {
    let slot = d.ggtt.reserved();
    let scratch = d.ggtt.scratch();
    let before = d.ggtt.read(&mut d.mmio, slot);
    // Pool pages were checked encodable at init.
    let pattern = d.format.ggtt(d.mem.bus(PATTERN_PAGE)).unwrap_or(scratch);
    d.ggtt.write(&mut d.mmio, slot, pattern);
    d.stats.ggtt_writes += 1;
    sync(d);
    let read = d.ggtt.read(&mut d.mmio, slot).bits();
    let low_offset = d.ggtt.offset(slot);
    let read_low = d.mmio.read32(low_offset);
    d.ggtt.write(&mut d.mmio, slot, scratch);
    d.stats.ggtt_writes += 1;
    sync(d);
    if read != pattern.bits() || read_low != pattern.bits() as u32 {
        return Err(SelfTestError::ReadBack { index: slot, wrote: pattern.bits(), read, read_low });
    }
    let restored = d.ggtt.read(&mut d.mmio, slot).bits();
    if restored != scratch.bits() {
        return Err(SelfTestError::Restore { index: slot, wrote: scratch.bits(), read: restored });
    }
    let info = d.info;
    Ok(SelfTestReport {
        name: info.device.name,
        device_id: info.device.id,
        revision: info.revision,
        platform: info.device.platform,
        gen: info.device.gen(),
        gt: info.device.gt,
        gttmmadr: info.gttmmadr,
        ggc: info.ggc.0,
        ggtt_bytes: info.ggc_info.ggtt_bytes,
        ggtt_entries: d.ggtt.total(),
        ggtt_managed: d.ggtt.managed(),
        slot,
        stolen_bytes: info.ggc_info.stolen_bytes,
        engines: *d.engines(),
        media_fuse: d.media_fuse(),
        ggtt_sync: d.ggtt.sync(),
        slot_was_scratch: before == scratch,
        pattern: pattern.bits(),
        read_back: read,
    })
}

/// The driver's flush; a read-back mismatch is reported by the test itself.
fn sync<M: Mmio, T: TableMemory>(d: &mut I915<M, T>) {
    if let Err(e) = d.try_invalidate() {
        d.fault.get_or_insert(e);
    }
}
