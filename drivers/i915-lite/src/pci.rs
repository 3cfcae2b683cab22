//! The GPU as a PCI function: identification, BAR0 (GTTMMADR), GGC, and
//! enabling memory decoding and bus mastering, over [`PciConfig`].
//!
//! # Sources
//! - PCI Local Bus Specification 3.0, 6.2 "Configuration Space Functions"
//!   (vendor/device at 0x00, command at 0x04 with bit 1 Memory Space and bit 2
//!   Bus Master, class code at 0x09..0x0b, a 64-bit memory BAR's type bits
//!   2:1 = `10b`, BAR sizing by writing all ones) .
//! - Intel PRM, Skylake, Vol. 2c: "GTTMMADR — Graphics Translation Table,
//!   Memory Mapped Range Address" (BAR0, 64-bit, 16 MiB: registers in the
//!   lower half, the GGTT in the upper half), "GGC" (see [`crate::ggc`]);
//!   for Gen12, the 12th Generation Core datasheet Vol. 2 (Intel doc.
//!   767626), "GTTMMADR0_0_2_0_PCI – Offset 10": the same 16 MiB BAR with
//!   the GGTT at +8 MiB.
//! - Linux `gt/intel_ggtt.c` `ggtt_probe_common`: the GGTT starts at
//!   BAR0 + BAR0 length / 2.
//!
//! # Invariants
//! - [`probe`] leaves memory decoding and bus mastering on only when it
//!   returns `Ok`; BAR sizing is done with memory decoding off and restores
//!   the BAR.
//! - The command register is written with the status half zero (the status
//!   bits are write-one-to-clear).

use crate::ggc::{Ggc, GgcError, GgcInfo, GGC_OFFSET};
use crate::ids::{self, Device, IdError};

/// 32-bit access to the GPU's PCI configuration space (the unikernel
/// implements it with the 0xcf8/0xcfc ports or ECAM; the model in memory).
pub trait PciConfig {
    /// Reads the dword at `offset` (4-byte aligned).
    fn read32(&mut self, offset: u16) -> u32;
    /// Writes the dword at `offset` (4-byte aligned).
    fn write32(&mut self, offset: u16, value: u32);
}

/// Configuration-space offsets (PCI 3.0 type 0 header).
pub mod cfg {
    /// Vendor ID (15:0) and device ID (31:16).
    pub const ID: u16 = 0x00;
    /// Command (15:0) and status (31:16).
    pub const COMMAND: u16 = 0x04;
    /// Revision ID (7:0) and class code (31:8).
    pub const CLASS_REV: u16 = 0x08;
    /// BAR0 = GTTMMADR, low dword; the high dword follows.
    pub const BAR0: u16 = 0x10;
    /// Command bit 1: respond to memory space accesses.
    pub const CMD_MEMORY: u16 = 1 << 1;
    /// Command bit 2: the device may master the bus (DMA).
    pub const CMD_BUS_MASTER: u16 = 1 << 2;
    /// The base class of a display controller.
    pub const CLASS_DISPLAY: u8 = 0x03;
}

/// A memory BAR as assigned by the firmware (or the toolstack, passed through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Bus address of the BAR.
    pub base: u64,
    /// Its length in bytes (a power of two).
    pub size: u64,
}

/// Everything the probe learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device (ID, platform, GT, name).
    pub device: &'static Device,
    /// The revision ID.
    pub revision: u8,
    /// BAR0: registers in the lower half, GGTT in the upper half.
    pub gttmmadr: Bar,
    /// The raw GGC value.
    pub ggc: Ggc,
    /// GGC decoded for this device's generation.
    pub ggc_info: GgcInfo,
}

impl DeviceInfo {
    /// BAR offset of GGTT entry 0 (half of BAR0).
    pub const fn ggtt_offset(&self) -> u64 {
        self.gttmmadr.size / 2
    }
}

/// Why the probe refused the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// Not a supported device.
    Id(IdError),
    /// A supported ID but not a display controller (the class code read).
    NotDisplay(u32),
    /// GGC says there is no GGTT.
    Ggc(GgcError),
    /// BAR0 is not a 64-bit memory BAR (the raw low dword).
    Bar0NotMem64(u32),
    /// BAR0 has no address assigned (zero base).
    Bar0Unassigned,
    /// BAR0's size is not a power of two of at least 2 MiB (the size read).
    Bar0Size(u64),
    /// The GGTT that GGC announces does not fit in the upper half of BAR0.
    GgttTooBig {
        /// GGTT bytes from GGC.
        ggtt_bytes: u32,
        /// BAR0 bytes.
        bar_size: u64,
    },
    /// The command register did not keep memory + bus-master on (value read).
    EnableFailed(u16),
}

impl core::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ProbeError::Id(e) => e.fmt(f),
            ProbeError::NotDisplay(c) => write!(f, "class code {c:#08x} is not a display controller"),
            ProbeError::Ggc(e) => e.fmt(f),
            ProbeError::Bar0NotMem64(raw) => {
                write!(f, "BAR0 {raw:#010x} is not a 64-bit memory BAR (GTTMMADR expected)")
            }
            ProbeError::Bar0Unassigned => {
                write!(f, "BAR0 (GTTMMADR) has no address: check the pci= passthrough config")
            }
            ProbeError::Bar0Size(s) => write!(f, "BAR0 size {s:#x} is not a GTTMMADR size"),
            ProbeError::GgttTooBig { ggtt_bytes, bar_size } => write!(
                f,
                "GGTT of {ggtt_bytes:#x} bytes does not fit in the upper half of a {bar_size:#x}-byte BAR0"
            ),
            ProbeError::EnableFailed(cmd) => {
                write!(f, "command register reads {cmd:#06x} after enabling memory + bus master")
            }
        }
    }
}

impl From<IdError> for ProbeError {
    fn from(e: IdError) -> Self {
        ProbeError::Id(e)
    }
}

fn read_command<P: PciConfig>(pci: &mut P) -> u16 {
    pci.read32(cfg::COMMAND) as u16
}

fn write_command<P: PciConfig>(pci: &mut P, cmd: u16) {
    // Status (31:16) written as zero: its bits are RW1C.
    pci.write32(cfg::COMMAND, u32::from(cmd));
}

/// Reads BAR0 and sizes it (all-ones write, PCI 3.0 6.2.5.1) with memory
/// decoding off, then restores it.
fn read_bar0<P: PciConfig>(pci: &mut P) -> Result<Bar, ProbeError> {
    let lo = pci.read32(cfg::BAR0);
    // Bit 0: I/O space; bits 2:1 = 10b: 64-bit memory.
    if lo & 1 != 0 || (lo >> 1) & 0b11 != 0b10 {
        return Err(ProbeError::Bar0NotMem64(lo));
    }
    let hi = pci.read32(cfg::BAR0 + 4);
    let cmd = read_command(pci);
    write_command(pci, cmd & !cfg::CMD_MEMORY);
    pci.write32(cfg::BAR0, u32::MAX);
    pci.write32(cfg::BAR0 + 4, u32::MAX);
    let mask = (u64::from(pci.read32(cfg::BAR0 + 4)) << 32) | u64::from(pci.read32(cfg::BAR0));
    pci.write32(cfg::BAR0, lo);
    pci.write32(cfg::BAR0 + 4, hi);
    write_command(pci, cmd);
    let size = (!(mask & !0xf)).wrapping_add(1);
    if !size.is_power_of_two() || size < (2 << 20) {
        return Err(ProbeError::Bar0Size(size));
    }
    let base = (u64::from(hi) << 32) | u64::from(lo & !0xf);
    if base == 0 {
        return Err(ProbeError::Bar0Unassigned);
    }
    Ok(Bar { base, size })
}

/// Identifies the GPU, reads GGC and BAR0, and turns on memory decoding and
/// bus mastering. Nothing is enabled when it fails, and a device that is not
/// supported (unknown, or a refused family: [`IdError::Refused`]) is not
/// written to at all.
pub fn probe<P: PciConfig>(pci: &mut P) -> Result<DeviceInfo, ProbeError> {
    let id = pci.read32(cfg::ID);
    let device = ids::lookup(id as u16, (id >> 16) as u16)?;
    let class_rev = pci.read32(cfg::CLASS_REV);
    if (class_rev >> 24) as u8 != cfg::CLASS_DISPLAY {
        return Err(ProbeError::NotDisplay(class_rev >> 8));
    }
    let ggc = Ggc(pci.read32(GGC_OFFSET) as u16);
    let ggc_info = ggc.decode(device.gen()).map_err(ProbeError::Ggc)?;
    let gttmmadr = read_bar0(pci)?;
    if u64::from(ggc_info.ggtt_bytes) > gttmmadr.size / 2 {
        return Err(ProbeError::GgttTooBig {
            ggtt_bytes: ggc_info.ggtt_bytes,
            bar_size: gttmmadr.size,
        });
    }
    let want = cfg::CMD_MEMORY | cfg::CMD_BUS_MASTER;
    let cmd = read_command(pci);
    write_command(pci, cmd | want);
    let now = read_command(pci);
    if now & want != want {
        write_command(pci, cmd);
        return Err(ProbeError::EnableFailed(now));
    }
    Ok(DeviceInfo { device, revision: class_rev as u8, gttmmadr, ggc, ggc_info })
}
