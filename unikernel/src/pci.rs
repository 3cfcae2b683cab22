//! PCI configuration space, the parts a driver domain needs: find a device
//! on bus 0, decode and size its BARs, turn on memory decoding and bus
//! mastering.
//!
//! The access method is a trait ([`ConfigSpace`]): the image uses the
//! legacy `0xCF8`/`0xCFC` ports (`arch::x86_64::pci_io`), which is what an
//! HVM domU's device model (QEMU) and a PVH dom0's vPCI both emulate; the
//! host tests use a table.
//!
//! # Invariants
//! - BAR sizing runs with memory and I/O decoding off and restores the BAR
//!   and the command register afterwards.
//! - Only dword-aligned offsets below 256 are accessed.
#![forbid(unsafe_code)]

/// Command register offset and bits.
pub const COMMAND: u8 = 0x04;
/// `COMMAND`: respond to I/O space accesses.
pub const CMD_IO: u16 = 1 << 0;
/// `COMMAND`: respond to memory space accesses.
pub const CMD_MEMORY: u16 = 1 << 1;
/// `COMMAND`: the device may master the bus (issue DMA).
pub const CMD_BUS_MASTER: u16 = 1 << 2;
/// First base address register.
pub const BAR0: u8 = 0x10;

/// Bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

impl Bdf {
    /// The `CONFIG_ADDRESS` (port 0xCF8) value for the dword at `offset`.
    pub fn config_address(self, offset: u8) -> u32 {
        0x8000_0000
            | (self.bus as u32) << 16
            | ((self.dev & 0x1f) as u32) << 11
            | ((self.func & 0x7) as u32) << 8
            | (offset & 0xfc) as u32
    }
}

/// Dword access to configuration space.
pub trait ConfigSpace {
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32;
    fn write32(&mut self, bdf: Bdf, offset: u8, value: u32);
}

/// A function found by [`scan_bus0`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    /// Class code, subclass, programming interface (bits 31..8 of dword 2).
    pub class: u32,
}

/// Calls `found` for every function on bus 0, in order (functions 1..7
/// only of multi-function devices).
pub fn scan_bus0<C: ConfigSpace>(cfg: &mut C, mut found: impl FnMut(Function)) {
    for dev in 0..32u8 {
        for func in 0..8u8 {
            let bdf = Bdf { bus: 0, dev, func };
            let id = cfg.read32(bdf, 0);
            if id == 0xffff_ffff || id & 0xffff == 0xffff {
                if func == 0 {
                    break;
                }
                continue;
            }
            let class = cfg.read32(bdf, 8) >> 8;
            found(Function { bdf, vendor: id as u16, device: (id >> 16) as u16, class });
            let header = cfg.read32(bdf, 0x0c) >> 16;
            if func == 0 && header & 0x80 == 0 {
                break;
            }
        }
    }
}

/// A decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// Memory space (32- or 64-bit), at `base`, `size` bytes.
    Memory { base: u64, size: u64, prefetchable: bool, wide: bool },
    /// I/O space.
    Io { base: u32, size: u32 },
    /// Not implemented by the device.
    None,
}

/// Reads the 16-bit command register.
pub fn command<C: ConfigSpace>(cfg: &mut C, bdf: Bdf) -> u16 {
    cfg.read32(bdf, COMMAND) as u16
}

/// Sets `bits` in the command register (the status half is written as 0,
/// which leaves its write-1-to-clear bits alone).
pub fn enable<C: ConfigSpace>(cfg: &mut C, bdf: Bdf, bits: u16) -> u16 {
    let now = command(cfg, bdf) | bits;
    cfg.write32(bdf, COMMAND, now as u32);
    command(cfg, bdf)
}

/// Decodes and sizes BAR `index` (0..=5).
pub fn bar<C: ConfigSpace>(cfg: &mut C, bdf: Bdf, index: u8) -> Bar {
    if index > 5 {
        return Bar::None;
    }
    let off = BAR0 + 4 * index;
    let cmd = command(cfg, bdf);
    cfg.write32(bdf, COMMAND, (cmd & !(CMD_MEMORY | CMD_IO)) as u32);
    let lo = cfg.read32(bdf, off);
    cfg.write32(bdf, off, 0xffff_ffff);
    let lo_mask = cfg.read32(bdf, off);
    cfg.write32(bdf, off, lo);
    let result = if lo & 1 == 1 {
        let size = (!(lo_mask & !0x3)).wrapping_add(1) & 0xffff;
        if lo_mask == 0 || size == 0 {
            Bar::None
        } else {
            Bar::Io { base: lo & !0x3, size }
        }
    } else {
        let wide = (lo >> 1) & 0x3 == 0x2 && index < 5;
        let (hi, hi_mask) = if wide {
            let hi = cfg.read32(bdf, off + 4);
            cfg.write32(bdf, off + 4, 0xffff_ffff);
            let m = cfg.read32(bdf, off + 4);
            cfg.write32(bdf, off + 4, hi);
            (hi, m)
        } else {
            (0, 0xffff_ffff)
        };
        let mask = (hi_mask as u64) << 32 | (lo_mask & !0xf) as u64;
        if lo_mask & !0xf == 0 && (!wide || hi_mask == 0) {
            Bar::None
        } else {
            Bar::Memory {
                base: (hi as u64) << 32 | (lo & !0xf) as u64,
                size: (!mask).wrapping_add(1),
                prefetchable: lo & 0x8 != 0,
                wide,
            }
        }
    };
    cfg.write32(bdf, COMMAND, cmd as u32);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A device's config space with BAR sizing masks.
    #[derive(Default)]
    struct Fake {
        regs: BTreeMap<(Bdf, u8), u32>,
        /// Writable bits of each BAR dword.
        masks: BTreeMap<(Bdf, u8), u32>,
        writes: Vec<(Bdf, u8, u32)>,
    }

    impl ConfigSpace for Fake {
        fn read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
            *self.regs.get(&(bdf, offset)).unwrap_or(&0xffff_ffff)
        }
        fn write32(&mut self, bdf: Bdf, offset: u8, value: u32) {
            self.writes.push((bdf, offset, value));
            let old = self.read32(bdf, offset);
            let v = match self.masks.get(&(bdf, offset)) {
                Some(m) => (value & m) | (old & !m),
                None => value,
            };
            self.regs.insert((bdf, offset), v);
        }
    }

    fn edu_like() -> (Fake, Bdf) {
        let bdf = Bdf { bus: 0, dev: 2, func: 0 };
        let mut f = Fake::default();
        f.regs.insert((Bdf { bus: 0, dev: 0, func: 0 }, 0), 0x1237_8086);
        f.regs.insert((Bdf { bus: 0, dev: 0, func: 0 }, 8), 0x0600_0002);
        f.regs.insert((Bdf { bus: 0, dev: 0, func: 0 }, 0x0c), 0);
        f.regs.insert((bdf, 0), 0x11e8_1234);
        f.regs.insert((bdf, 8), 0x00ff_0010);
        f.regs.insert((bdf, 0x0c), 0);
        f.regs.insert((bdf, COMMAND), 0x0010_0000);
        f.regs.insert((bdf, BAR0), 0xf000_0000); // 32-bit, 1 MiB
        f.masks.insert((bdf, BAR0), 0xfff0_0000);
        f.regs.insert((bdf, BAR0 + 4), 0xe000_000c); // 64-bit prefetchable, 16 MiB
        f.masks.insert((bdf, BAR0 + 4), 0xff00_0000);
        f.regs.insert((bdf, BAR0 + 8), 0x1);
        f.masks.insert((bdf, BAR0 + 8), 0xffff_ffff);
        f.regs.insert((bdf, BAR0 + 12), 0);
        f.masks.insert((bdf, BAR0 + 12), 0);
        (f, bdf)
    }

    #[test]
    fn config_address_encodes_bus_device_function_and_dword() {
        let a = Bdf { bus: 1, dev: 3, func: 2 }.config_address(0x13);
        assert_eq!(a, 0x8000_0000 | 1 << 16 | 3 << 11 | 2 << 8 | 0x10);
    }

    #[test]
    fn scan_finds_every_single_function_device_on_bus0() {
        let (mut f, bdf) = edu_like();
        let mut found = Vec::new();
        scan_bus0(&mut f, |x| found.push(x));
        assert_eq!(found.len(), 2);
        assert_eq!(found[1], Function { bdf, vendor: 0x1234, device: 0x11e8, class: 0x00ff00 });
    }

    #[test]
    fn bars_are_sized_with_decoding_off_then_restored() {
        let (mut f, bdf) = edu_like();
        assert_eq!(
            bar(&mut f, bdf, 0),
            Bar::Memory { base: 0xf000_0000, size: 1 << 20, prefetchable: false, wide: false }
        );
        assert_eq!(
            bar(&mut f, bdf, 1),
            Bar::Memory { base: 0x1_e000_0000, size: 16 << 20, prefetchable: true, wide: true }
        );
        assert_eq!(f.regs[&(bdf, BAR0)], 0xf000_0000);
        assert_eq!(f.regs[&(bdf, BAR0 + 4)], 0xe000_000c);
        assert_eq!(f.regs[&(bdf, COMMAND)] & 0xffff, 0);
        // Every BAR write happened with memory decoding off.
        let first_bar_write = f.writes.iter().position(|w| w.1 == BAR0).unwrap();
        assert_eq!(f.writes[first_bar_write - 1], (bdf, COMMAND, 0));
    }

    #[test]
    fn unimplemented_bars_decode_as_none() {
        let (mut f, bdf) = edu_like();
        assert_eq!(bar(&mut f, bdf, 3), Bar::None);
        assert_eq!(bar(&mut f, bdf, 6), Bar::None);
    }

    #[test]
    fn enable_sets_memory_and_bus_master_and_keeps_other_bits() {
        let (mut f, bdf) = edu_like();
        f.regs.insert((bdf, COMMAND), 0x0010_0400);
        let now = enable(&mut f, bdf, CMD_MEMORY | CMD_BUS_MASTER);
        assert_eq!(now, 0x0406);
    }
}
