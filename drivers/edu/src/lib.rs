//! # edu — QEMU's `edu` **test** device
//!
//! `edu` (PCI `1234:11e8`, QEMU's `hw/misc/edu.c`, documented in QEMU's
//! `docs/specs/edu.rst`) is an educational device, not a GPU. gpu-dom uses it
//! only in CI: it is a bus master whose DMA engine can be aimed at any bus
//! address, which is exactly what is needed to prove, under real Xen with a
//! real (emulated) IOMMU, that a device passed through to gpu-dom reaches only
//! the pages gpu-dom grant-mapped (`cargo xtask iommu`).
//!
//! The driver is register data plus a bounded DMA routine, driven through
//! the [`Mmio`] trait (the unikernel maps BAR0 uncached; the host tests use
//! [`model::EduModel`]).
//!
//! Facts of QEMU 7.2's device this relies on (measured, see the project's
//! reference notes):
//! - a transfer must stay *strictly* inside the 4 KiB buffer at device
//!   address [`BUFFER`]: `edu_check_range` has an off-by-one that aborts
//!   QEMU for a transfer ending exactly at `0x41000`. [`MAX_TRANSFER`] is
//!   2048 bytes;
//! - the buffer is not readable through MMIO: data comes back with a second
//!   DMA (device -> RAM);
//! - the device masks DMA addresses with its `dma_mask` property (28 bits by
//!   default): CI raises it (`-device edu,dma_mask=...`), since gpu-dom's
//!   grant window sits above 4 GiB.
//!
//! # Invariants
//! - No transfer is started outside `BUFFER..BUFFER + MAX_TRANSFER`, nor
//!   while the previous one is still running.
//! - Every wait is bounded ([`Edu::dma`] polls at most `max_polls` times).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "model"))]
pub mod model;

/// PCI vendor ID (QEMU's test vendor).
pub const VENDOR_ID: u16 = 0x1234;
/// PCI device ID of `edu`.
pub const DEVICE_ID: u16 = 0x11e8;
/// Device address of the DMA buffer.
pub const BUFFER: u64 = 0x40000;
/// Largest transfer (QEMU 7.2's range check is off by one at 4096).
pub const MAX_TRANSFER: u64 = 2048;
/// What the identification register reads: `0xRRrr00edu` (major 1, minor 0).
pub const ID_VALUE: u32 = 0x0100_00ed;

/// BAR0 register offsets (`docs/specs/edu.rst`).
pub mod regs {
    /// Identification (RO): `0x010000ed`.
    pub const ID: u64 = 0x00;
    /// Card liveness check (RW): reads back the bitwise inverse of what was written.
    pub const LIVENESS: u64 = 0x04;
    /// DMA source address (RW, 64-bit).
    pub const DMA_SRC: u64 = 0x80;
    /// DMA destination address (RW, 64-bit).
    pub const DMA_DST: u64 = 0x88;
    /// DMA transfer count in bytes (RW, 64-bit).
    pub const DMA_CNT: u64 = 0x90;
    /// DMA command (RW): [`super::cmd`] bits.
    pub const DMA_CMD: u64 = 0x98;
}

/// `DMA_CMD` bits.
pub mod cmd {
    /// Start the transfer; reads 1 while it runs.
    pub const START: u64 = 1 << 0;
    /// Direction: 0 = RAM -> device buffer, 1 = device buffer -> RAM.
    pub const TO_RAM: u64 = 1 << 1;
    /// Raise an interrupt when done (never used here: the driver polls).
    pub const IRQ: u64 = 1 << 2;
}

/// The bytes an IOMMU test writes into a page by DMA (`MAX_TRANSFER` of
/// them): `b"IOMMUDMA"`, the page owner's domain id and the entry index
/// (little endian), then a byte sequence. The owner of the page recognises
/// the write by comparing with this (gpu-dom writes it, the test guest
/// checks its own page).
pub fn test_signature(dom: u16, index: u32, out: &mut [u8; MAX_TRANSFER as usize]) {
    out[..8].copy_from_slice(b"IOMMUDMA");
    out[8..10].copy_from_slice(&dom.to_le_bytes());
    out[10..14].copy_from_slice(&index.to_le_bytes());
    out[14..16].copy_from_slice(&[0x5a, 0xa5]);
    for (i, b) in out[16..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7) ^ (index as u8);
    }
}

/// The bytes the test guest keeps in its never-granted "far" page (a frame
/// number above gpu-dom's RAM): `b"FARFRAME"`, the owner's domain id, then a
/// byte sequence. gpu-dom compares what a DMA at that frame number as a bus
/// address returned with this: it must never match.
pub fn far_page_signature(dom: u16, out: &mut [u8; MAX_TRANSFER as usize]) {
    out[..8].copy_from_slice(b"FARFRAME");
    out[8..10].copy_from_slice(&dom.to_le_bytes());
    for (i, b) in out[10..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(13).wrapping_add(3) ^ (dom as u8);
    }
}

/// Register access to BAR0. Implementations must not reorder accesses
/// (volatile, uncached MMIO in the image).
pub trait Mmio {
    fn read32(&mut self, offset: u64) -> u32;
    fn write32(&mut self, offset: u64, value: u32);
    fn read64(&mut self, offset: u64) -> u64;
    fn write64(&mut self, offset: u64, value: u64);
}

/// Which way a transfer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Bus address (RAM) -> device buffer: the device *reads* memory.
    ToDevice,
    /// Device buffer -> bus address (RAM): the device *writes* memory.
    ToRam,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EduError {
    /// The identification register read `found`, not [`ID_VALUE`].
    NotEdu { found: u32 },
    /// The liveness register did not invert `wrote` (read `read`).
    Dead { wrote: u32, read: u32 },
    /// `len` is 0 or above [`MAX_TRANSFER`].
    BadLength { len: u64 },
    /// A transfer is still running (the `START` bit is set).
    Busy,
    /// The `START` bit stayed set for `polls` polls.
    Timeout { polls: u32 },
}

impl core::fmt::Display for EduError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            EduError::NotEdu { found } => {
                write!(f, "identification register reads {found:#x}, want {ID_VALUE:#x}: not an edu device")
            }
            EduError::Dead { wrote, read } => {
                write!(
                    f,
                    "liveness register: wrote {wrote:#x}, read {read:#x} (want {:#x})",
                    !wrote
                )
            }
            EduError::BadLength { len } => {
                write!(f, "transfer of {len} bytes (1..={MAX_TRANSFER} allowed)")
            }
            EduError::Busy => write!(f, "a DMA transfer is still running"),
            EduError::Timeout { polls } => {
                write!(f, "DMA did not complete within {polls} status polls")
            }
        }
    }
}

/// The device, through its BAR0.
pub struct Edu<M: Mmio> {
    mmio: M,
    max_polls: u32,
}

impl<M: Mmio> Edu<M> {
    /// Checks the identification and liveness registers. `max_polls`
    /// bounds every wait for a transfer.
    pub fn probe(mut mmio: M, max_polls: u32) -> Result<Self, EduError> {
        let found = mmio.read32(regs::ID);
        if found != ID_VALUE {
            return Err(EduError::NotEdu { found });
        }
        let wrote = 0x5a5a_1234;
        mmio.write32(regs::LIVENESS, wrote);
        let read = mmio.read32(regs::LIVENESS);
        if read != !wrote {
            return Err(EduError::Dead { wrote, read });
        }
        Ok(Edu { mmio, max_polls })
    }

    /// The register access (for tests and diagnostics).
    pub fn mmio(&mut self) -> &mut M {
        &mut self.mmio
    }

    /// Moves `len` bytes between bus address `bus` and the start of the
    /// device buffer, and waits (bounded) until the engine is idle again.
    /// Returns the number of status polls it took.
    ///
    /// Completion says nothing about whether the IOMMU let the access
    /// through: a blocked DMA completes too (reads deliver no data, writes
    /// are dropped). Callers compare data.
    pub fn dma(&mut self, dir: Direction, bus: u64, len: u64) -> Result<u32, EduError> {
        if len == 0 || len > MAX_TRANSFER {
            return Err(EduError::BadLength { len });
        }
        if self.mmio.read64(regs::DMA_CMD) & cmd::START != 0 {
            return Err(EduError::Busy);
        }
        let (src, dst, bits) = match dir {
            Direction::ToDevice => (bus, BUFFER, cmd::START),
            Direction::ToRam => (BUFFER, bus, cmd::START | cmd::TO_RAM),
        };
        self.mmio.write64(regs::DMA_SRC, src);
        self.mmio.write64(regs::DMA_DST, dst);
        self.mmio.write64(regs::DMA_CNT, len);
        self.mmio.write64(regs::DMA_CMD, bits);
        for polls in 1..=self.max_polls {
            if self.mmio.read64(regs::DMA_CMD) & cmd::START == 0 {
                return Ok(polls);
            }
            core::hint::spin_loop();
        }
        Err(EduError::Timeout { polls: self.max_polls })
    }
}

#[cfg(test)]
mod tests {
    use super::model::EduModel;
    use super::*;
    use std::collections::BTreeMap;

    /// A bus of 4 KiB pages; absent pages read as nothing (the model's
    /// IOMMU blocks them) and drop writes.
    #[derive(Default)]
    struct Bus {
        pages: BTreeMap<u64, [u8; 4096]>,
        faults: Vec<(u64, bool)>,
    }

    impl model::Bus for Bus {
        fn read(&mut self, addr: u64, out: &mut [u8]) -> bool {
            match self.pages.get(&(addr >> 12)) {
                Some(p) if (addr & 0xfff) as usize + out.len() <= 4096 => {
                    let o = (addr & 0xfff) as usize;
                    out.copy_from_slice(&p[o..o + out.len()]);
                    true
                }
                _ => {
                    self.faults.push((addr, false));
                    false
                }
            }
        }
        fn write(&mut self, addr: u64, data: &[u8]) -> bool {
            match self.pages.get_mut(&(addr >> 12)) {
                Some(p) if (addr & 0xfff) as usize + data.len() <= 4096 => {
                    let o = (addr & 0xfff) as usize;
                    p[o..o + data.len()].copy_from_slice(data);
                    true
                }
                _ => {
                    self.faults.push((addr, true));
                    false
                }
            }
        }
    }

    fn edu_with(pages: &[(u64, u8)]) -> Edu<EduModel<Bus>> {
        let mut bus = Bus::default();
        for &(pfn, fill) in pages {
            bus.pages.insert(pfn, [fill; 4096]);
        }
        Edu::probe(EduModel::new(bus), 100).unwrap()
    }

    #[test]
    fn probe_accepts_the_device_and_refuses_other_ids() {
        let mut m = EduModel::new(Bus::default());
        m.id = 0x1234;
        assert_eq!(Edu::probe(m, 10).err(), Some(EduError::NotEdu { found: 0x1234 }));
        let mut m = EduModel::new(Bus::default());
        m.dead = true;
        assert!(matches!(Edu::probe(m, 10).err(), Some(EduError::Dead { .. })));
    }

    #[test]
    fn a_round_trip_copies_ram_through_the_device_buffer() {
        let mut edu = edu_with(&[(0x10, 0xab), (0x20, 0x00)]);
        edu.dma(Direction::ToDevice, 0x10_000, MAX_TRANSFER).unwrap();
        edu.dma(Direction::ToRam, 0x20_000, MAX_TRANSFER).unwrap();
        let bus = &edu.mmio().bus;
        assert!(bus.pages[&0x20][..2048].iter().all(|&b| b == 0xab));
        assert!(bus.pages[&0x20][2048..].iter().all(|&b| b == 0));
        assert!(bus.faults.is_empty());
    }

    #[test]
    fn a_blocked_read_completes_but_leaves_the_buffer_unchanged() {
        let mut edu = edu_with(&[(0x10, 0x11), (0x20, 0)]);
        edu.dma(Direction::ToDevice, 0x10_000, 2048).unwrap();
        edu.dma(Direction::ToDevice, 0x99_000, 2048).unwrap();
        edu.dma(Direction::ToRam, 0x20_000, 2048).unwrap();
        let bus = &edu.mmio().bus;
        assert!(bus.pages[&0x20][..2048].iter().all(|&b| b == 0x11));
        assert_eq!(bus.faults, [(0x99_000, false)]);
    }

    #[test]
    fn transfers_longer_than_the_safe_limit_or_empty_are_refused() {
        let mut edu = edu_with(&[]);
        for len in [0, MAX_TRANSFER + 1, 4096] {
            assert_eq!(edu.dma(Direction::ToRam, 0, len), Err(EduError::BadLength { len }));
        }
        assert_eq!(edu.mmio().started, 0);
    }

    #[test]
    fn a_transfer_that_never_completes_times_out_after_the_poll_bound() {
        let mut edu = edu_with(&[(0x10, 0)]);
        edu.mmio().stuck = true;
        assert_eq!(
            edu.dma(Direction::ToDevice, 0x10_000, 8),
            Err(EduError::Timeout { polls: 100 })
        );
        assert_eq!(edu.dma(Direction::ToDevice, 0x10_000, 8), Err(EduError::Busy));
    }

    #[test]
    fn far_page_signatures_differ_per_owner_and_from_dma_signatures() {
        let (mut a, mut b, mut t) = ([0u8; 2048], [0u8; 2048], [0u8; 2048]);
        far_page_signature(2, &mut a);
        far_page_signature(3, &mut b);
        test_signature(2, 0, &mut t);
        assert_ne!(a, b);
        assert_ne!(a, t);
        assert_eq!(&a[..8], b"FARFRAME");
    }

    #[test]
    fn test_signatures_differ_per_owner_and_index() {
        let mut a = [0; MAX_TRANSFER as usize];
        let mut b = [0; MAX_TRANSFER as usize];
        test_signature(5, 1, &mut a);
        test_signature(5, 2, &mut b);
        assert_eq!(&a[..8], b"IOMMUDMA");
        assert_ne!(a, b);
        test_signature(6, 1, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn registers_are_programmed_as_the_device_documents() {
        let mut edu = edu_with(&[(0x20, 0)]);
        edu.dma(Direction::ToRam, 0x20_100, 16).unwrap();
        let m = edu.mmio();
        assert_eq!((m.src, m.dst, m.cnt), (BUFFER, 0x20_100, 16));
        assert_eq!(m.last_cmd, cmd::START | cmd::TO_RAM);
    }
}
