//! The model's PCI configuration space of an integrated GPU at 0:2.0: IDs, class,
//! command register, BAR0 (GTTMMADR, 64-bit memory, sizing by all-ones
//! writes) and GGC, with the write rules of PCI 3.0 6.2 and the PRM's GGC
//! lock (GGCLCK makes GGC read-only).

use alloc::vec::Vec;

use crate::ggc::{Ggc, GGC_OFFSET};
use crate::ids::INTEL_VENDOR;
use crate::pci::{cfg, PciConfig};

/// Command bits the model lets software set: I/O, memory, bus master,
/// INTx disable.
const COMMAND_WRITABLE: u16 = 0b111 | (1 << 10);
/// BAR0 type bits: memory, 64-bit (bits 2:1 = 10b), not prefetchable.
const BAR0_TYPE: u32 = 0b0100;

/// A broken rule the model saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciViolation {
    /// BAR0 was written while memory decoding was on (the value).
    BarWrittenWhileDecoding(u32),
    /// An unaligned or out-of-range config offset.
    BadOffset(u16),
}

/// The configuration space. See the module documentation.
#[derive(Clone, Debug)]
pub struct ModelPci {
    space: [u32; 64],
    bar0_size: u64,
    /// Every write, in order.
    pub writes: Vec<(u16, u32)>,
    /// Rules broken.
    pub violations: Vec<PciViolation>,
}

impl ModelPci {
    /// A GPU with the `device` ID, `ggc`, BAR0 of 16 MiB at `bar0_base`,
    /// revision 7, VGA class, decoding off.
    pub fn new(device: u16, ggc: Ggc, bar0_base: u64) -> Self {
        let mut space = [0u32; 64];
        space[0] = u32::from(INTEL_VENDOR) | (u32::from(device) << 16);
        space[2] = 0x0300_0007;
        space[4] = (bar0_base as u32 & !0xf) | BAR0_TYPE;
        space[5] = (bar0_base >> 32) as u32;
        space[usize::from(GGC_OFFSET / 4)] = u32::from(ggc.0);
        ModelPci { space, bar0_size: 16 << 20, writes: Vec::new(), violations: Vec::new() }
    }

    /// Sets a dword directly (fault injection: another vendor, a 32-bit BAR…).
    pub fn poke(&mut self, offset: u16, value: u32) {
        self.space[usize::from(offset / 4)] = value;
    }

    /// Makes BAR0 `size` bytes (a power of two).
    pub fn set_bar0_size(&mut self, size: u64) {
        self.bar0_size = size;
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.space[1] as u16
    }

    /// BAR0 as the device decodes it.
    pub fn bar0(&self) -> u64 {
        (u64::from(self.space[5]) << 32) | u64::from(self.space[4] & !0xf)
    }
}

impl PciConfig for ModelPci {
    fn read32(&mut self, offset: u16) -> u32 {
        if !offset.is_multiple_of(4) || offset >= 256 {
            self.violations.push(PciViolation::BadOffset(offset));
            return u32::MAX;
        }
        self.space[usize::from(offset / 4)]
    }

    fn write32(&mut self, offset: u16, value: u32) {
        self.writes.push((offset, value));
        if !offset.is_multiple_of(4) || offset >= 256 {
            self.violations.push(PciViolation::BadOffset(offset));
            return;
        }
        let i = usize::from(offset / 4);
        match offset {
            cfg::ID | cfg::CLASS_REV => {}
            // Status (31:16) is RW1C and never set in the model.
            cfg::COMMAND => self.space[i] = u32::from(value as u16 & COMMAND_WRITABLE),
            o if o == cfg::BAR0 || o == cfg::BAR0 + 4 => {
                if self.command() & cfg::CMD_MEMORY != 0 {
                    self.violations.push(PciViolation::BarWrittenWhileDecoding(value));
                }
                let mask = !(self.bar0_size - 1);
                self.space[i] = if o == cfg::BAR0 {
                    (value & mask as u32 & !0xf) | BAR0_TYPE
                } else {
                    value & (mask >> 32) as u32
                };
            }
            // GGCLCK (bit 0) locks the register.
            GGC_OFFSET if self.space[i] & 1 == 0 => self.space[i] = value & 0xffff,
            GGC_OFFSET => {}
            _ => self.space[i] = value,
        }
    }
}
