//! A small model of the `edu` device for host tests: the registers the
//! driver uses, and a DMA engine that completes at once over a [`Bus`]
//! (which decides, like an IOMMU, whether an access gets through).

use super::{cmd, regs, BUFFER, ID_VALUE};

/// Memory as the device sees it (bus addresses).
pub trait Bus {
    /// Fills `out` from `addr`; false when the access was blocked (then
    /// `out` is left as it was, as a blocked DMA read delivers nothing).
    fn read(&mut self, addr: u64, out: &mut [u8]) -> bool;
    /// Writes `data` at `addr`; false when the access was blocked.
    fn write(&mut self, addr: u64, data: &[u8]) -> bool;
}

/// The model device.
pub struct EduModel<B> {
    pub bus: B,
    pub buffer: [u8; 4096],
    pub id: u32,
    /// The liveness register does not invert.
    pub dead: bool,
    /// Transfers never complete.
    pub stuck: bool,
    pub src: u64,
    pub dst: u64,
    pub cnt: u64,
    pub last_cmd: u64,
    running: bool,
    liveness: u32,
    /// Transfers started.
    pub started: u32,
}

impl<B: Bus> EduModel<B> {
    pub fn new(bus: B) -> Self {
        EduModel {
            bus,
            buffer: [0; 4096],
            id: ID_VALUE,
            dead: false,
            stuck: false,
            src: 0,
            dst: 0,
            cnt: 0,
            last_cmd: 0,
            running: false,
            liveness: 0,
            started: 0,
        }
    }

    fn start(&mut self, bits: u64) {
        self.last_cmd = bits;
        self.started += 1;
        self.running = true;
        if self.stuck {
            return;
        }
        let n = self.cnt as usize;
        if bits & cmd::TO_RAM != 0 {
            let o = (self.src - BUFFER) as usize;
            let data = self.buffer[o..o + n].to_vec();
            self.bus.write(self.dst, &data);
        } else {
            let o = (self.dst - BUFFER) as usize;
            let mut tmp = self.buffer[o..o + n].to_vec();
            if self.bus.read(self.src, &mut tmp) {
                self.buffer[o..o + n].copy_from_slice(&tmp);
            }
        }
        self.running = false;
    }
}

impl<B: Bus> super::Mmio for EduModel<B> {
    fn read32(&mut self, offset: u64) -> u32 {
        match offset {
            regs::ID => self.id,
            regs::LIVENESS if self.dead => self.liveness,
            regs::LIVENESS => !self.liveness,
            _ => self.read64(offset) as u32,
        }
    }
    fn write32(&mut self, offset: u64, value: u32) {
        if offset == regs::LIVENESS {
            self.liveness = value;
        }
    }
    fn read64(&mut self, offset: u64) -> u64 {
        match offset {
            regs::DMA_SRC => self.src,
            regs::DMA_DST => self.dst,
            regs::DMA_CNT => self.cnt,
            regs::DMA_CMD => {
                self.last_cmd & !cmd::START | if self.running { cmd::START } else { 0 }
            }
            _ => 0,
        }
    }
    fn write64(&mut self, offset: u64, value: u64) {
        match offset {
            regs::DMA_SRC => self.src = value,
            regs::DMA_DST => self.dst = value,
            regs::DMA_CNT => self.cnt = value,
            regs::DMA_CMD if value & cmd::START != 0 && !self.running => self.start(value),
            _ => {}
        }
    }
}
