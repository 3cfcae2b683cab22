//! PCI configuration mechanism #1: `CONFIG_ADDRESS` at port 0xCF8,
//! `CONFIG_DATA` at 0xCFC. An HVM domU's device model (QEMU, which forwards
//! a passed-through device's registers to Xen's pciback/QEMU emulation) and
//! a PVH dom0's vPCI both trap these ports. The port accesses are the
//! `x86_64` crate's `Port<u32>`.

use x86_64::instructions::port::Port;

use crate::pci::{Bdf, ConfigSpace};

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

fn outl(port: u16, val: u32) {
    // SAFETY: ports 0xCF8/0xCFC are the PCI configuration ports, which the
    // hypervisor/device model emulates; an I/O write does not touch memory.
    unsafe { Port::<u32>::new(port).write(val) }
}

fn inl(port: u16) -> u32 {
    // SAFETY: as in `outl`; an I/O read does not touch memory.
    unsafe { Port::<u32>::new(port).read() }
}

/// Configuration space through ports 0xCF8/0xCFC (one vCPU, so the
/// address/data pair is never interleaved with another access).
#[derive(Clone, Copy, Debug, Default)]
pub struct PortConfig;

impl ConfigSpace for PortConfig {
    fn read32(&mut self, bdf: Bdf, offset: u8) -> u32 {
        outl(CONFIG_ADDRESS, bdf.config_address(offset));
        inl(CONFIG_DATA)
    }

    fn write32(&mut self, bdf: Bdf, offset: u8, value: u32) {
        outl(CONFIG_ADDRESS, bdf.config_address(offset));
        outl(CONFIG_DATA, value);
    }
}
