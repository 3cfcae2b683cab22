//! The driver object: one probed GPU, its BAR ([`Mmio`]) and its table
//! memory ([`TableMemory`]), set up so that every GGTT entry it manages and
//! every scratch table points at the scratch page before `gtt` sees it.
//!
//! # What is out of scope
//! Command submission is not here: no context image, no ring, no ELSP
//! (execlist submit port) writes, no forcewake, no private PAT
//! (`GEN8_PRIVATE_PAT_LO/HI`) programming and no GPU reset. The driver
//! exposes what a context needs from it ([`I915::pml4_pointer`]: the value of
//! a 4-level context's `PDP0` register pair, i915's `ASSIGN_CTX_PML4`), and
//! the PPGTT TLB invalidation it does (per-engine TLB control registers) is
//! only meaningful once engines run such contexts, which need forcewake.

use gtt::{BusAddr, Level};

use crate::ggtt::Ggtt;
use crate::pci::DeviceInfo;
use crate::ppgtt::{PoolError, TableMemory, TablePool, FIRST_TABLE, SCRATCH_PAGE};
use crate::pte::{AddrError, Gen8Pte};
use crate::regs::{Mmio, GEN8_M2TCR, TLB_CONTROL_BASE, TLB_INVALIDATE};

/// Choices the image makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most GGTT entries handed to `gtt` (the device's count minus the
    /// reserved last entry is the other bound). Clearing 1 Mi entries
    /// through MMIO at init takes a while; a smaller GGTT share boots faster.
    pub ggtt_limit: u32,
    /// Reads of an engine's TLB control register before giving up on it
    /// (i915 waits up to 4 ms; counted in [`Stats::tlb_timeouts`]).
    pub tlb_poll_reads: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config { ggtt_limit: u32::MAX, tlb_poll_reads: 4096 }
    }
}

/// What the driver did, for the log and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// GGTT entries written (set or cleared), init included.
    pub ggtt_writes: u64,
    /// PPGTT table entries written (table fills excluded).
    pub table_writes: u64,
    /// GGTT flushes (`GFX_FLSH_CNTL` + posting read).
    pub flushes: u64,
    /// Flushes whose read-back of the last written entry differed.
    pub readback_mismatches: u64,
    /// PPGTT TLB invalidations (all engines).
    pub tlb_invalidations: u64,
    /// Engine TLB invalidations that did not report done in time.
    pub tlb_timeouts: u64,
    /// Calls that broke the `GpuTables` contract or named an address a
    /// Gen8/Gen9 entry cannot hold (the entry was set to scratch instead).
    pub rejected: u64,
    /// Table pages in use now.
    pub tables_in_use: u32,
}

/// Why the driver could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The table memory cannot hold the scratch set, or a page is unusable.
    Pool(PoolError),
    /// The GGTT lies beyond 4 GiB into the BAR (its offset).
    GgttOffset(u64),
    /// The GGTT has fewer than two entries (nothing to manage beside the
    /// reserved one).
    GgttTooSmall(u32),
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            InitError::Pool(PoolError::TooFewPages(n)) => {
                write!(f, "table memory has {n} pages; the scratch set needs 4 plus one table")
            }
            InitError::Pool(PoolError::Unencodable(p, AddrError::Unaligned(a))) => {
                write!(f, "table page {p} is at {a:#x}, not 4 KiB aligned")
            }
            InitError::Pool(PoolError::Unencodable(p, AddrError::TooWide(a))) => {
                write!(f, "table page {p} is at {a:#x}, above what a Gen9 PTE holds (2^39)")
            }
            InitError::GgttOffset(o) => write!(f, "GGTT at BAR offset {o:#x} is out of reach"),
            InitError::GgttTooSmall(n) => write!(f, "GGTT of {n} entries is too small"),
        }
    }
}

/// The root pointer of a 4-level PPGTT, as a context image holds it
/// (`CTX_PDP0_UDW`/`CTX_PDP0_LDW`, i915 `ASSIGN_CTX_PML4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pml4Pointer {
    /// Bus address of the PML4 page.
    pub addr: u64,
}

impl Pml4Pointer {
    /// The upper dword (`PDP0_UDW`).
    pub const fn udw(self) -> u32 {
        (self.addr >> 32) as u32
    }
    /// The lower dword (`PDP0_LDW`).
    pub const fn ldw(self) -> u32 {
        self.addr as u32
    }
}

/// One Gen8/Gen9 GPU, driven. See the module documentation.
pub struct I915<M, T> {
    pub(crate) info: DeviceInfo,
    pub(crate) mmio: M,
    pub(crate) mem: T,
    pub(crate) ggtt: Ggtt,
    pub(crate) pool: TablePool,
    tlb_regs: [u32; 5],
    tlb_count: usize,
    tlb_poll_reads: u32,
    pub(crate) ppgtt_dirty: bool,
    pub(crate) stats: Stats,
}

impl<M: Mmio, T: TableMemory> I915<M, T> {
    /// Sets the driver up on a probed device: scratch page and tables in
    /// `mem`, every managed GGTT entry and the reserved one at scratch,
    /// then a flush.
    pub fn new(info: DeviceInfo, mmio: M, mut mem: T, config: Config) -> Result<Self, InitError> {
        let pool = TablePool::new(&mut mem).map_err(InitError::Pool)?;
        let scratch = Gen8Pte::ggtt(mem.bus(SCRATCH_PAGE))
            .map_err(|e| InitError::Pool(PoolError::Unencodable(SCRATCH_PAGE, e)))?;
        let base = info.ggtt_offset();
        let base = u32::try_from(base).map_err(|_| InitError::GgttOffset(base))?;
        let total = info.ggc_info.ggtt_entries();
        if total < 2 {
            return Err(InitError::GgttTooSmall(total));
        }
        let managed = config.ggtt_limit.min(total - 1);
        let mut tlb_regs = [0; 5];
        tlb_regs[..4].copy_from_slice(&TLB_CONTROL_BASE);
        let tlb_count = if info.device.gt.has_vcs1() {
            tlb_regs[4] = GEN8_M2TCR;
            5
        } else {
            4
        };
        let mut d = I915 {
            info,
            mmio,
            mem,
            ggtt: Ggtt::new(base, total, managed, scratch),
            pool,
            tlb_regs,
            tlb_count,
            tlb_poll_reads: config.tlb_poll_reads.max(1),
            ppgtt_dirty: false,
            stats: Stats::default(),
        };
        d.ggtt.clear_all(&mut d.mmio);
        d.stats.ggtt_writes += u64::from(managed) + 1;
        d.invalidate_all();
        Ok(d)
    }

    /// What the probe found.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Counters, with the current table count.
    pub fn stats(&self) -> Stats {
        Stats { tables_in_use: self.pool.in_use(), ..self.stats }
    }

    /// The GGTT geometry (total, managed, reserved entry).
    pub fn ggtt(&self) -> &Ggtt {
        &self.ggtt
    }

    /// The BAR accessor (tests look at the model through it).
    pub fn mmio(&self) -> &M {
        &self.mmio
    }

    /// The table memory (tests walk the model's tables through it).
    pub fn table_memory(&self) -> &T {
        &self.mem
    }

    /// Bus address of the scratch page every unset entry resolves to.
    pub fn scratch_page(&self) -> BusAddr {
        self.pool.scratch_page(&self.mem)
    }

    /// The scratch entry of a `level` table.
    pub fn scratch_entry(&self, level: Level) -> Gen8Pte {
        self.pool.scratch_entry(level)
    }

    /// Reads GGTT entry `index` back through the BAR (`None` past the end).
    pub fn read_ggtt(&mut self, index: u32) -> Option<Gen8Pte> {
        (index < self.ggtt.total()).then(|| self.ggtt.read(&mut self.mmio, index))
    }

    /// The context root pointer for the PPGTT whose PML4 is the live table
    /// at `root` (what `gtt::Engine::context_root` returns), or `None` if
    /// `root` is not a live PML4 of this driver.
    pub fn pml4_pointer(&self, root: BusAddr) -> Option<Pml4Pointer> {
        let live_pml4 = |p| self.pool.live(&self.mem, p, root) == Some(Level::Pml4);
        (FIRST_TABLE..self.mem.pages()).any(live_pml4).then_some(Pml4Pointer { addr: root.0 })
    }

    /// Takes the driver apart (the BAR and the table memory).
    pub fn into_parts(self) -> (M, T) {
        (self.mmio, self.mem)
    }

    /// Table writes visible, GGTT flushed, and (after PPGTT writes) every
    /// engine's TLB invalidated.
    pub(crate) fn invalidate_all(&mut self) {
        self.mem.make_visible();
        let out = self.ggtt.flush(&mut self.mmio);
        self.stats.flushes += 1;
        if !out.readback_ok {
            self.stats.readback_mismatches += 1;
        }
        if self.ppgtt_dirty {
            self.ppgtt_dirty = false;
            self.stats.tlb_invalidations += 1;
            for &reg in &self.tlb_regs[..self.tlb_count] {
                self.mmio.write32(reg, TLB_INVALIDATE);
            }
            for &reg in &self.tlb_regs[..self.tlb_count] {
                let done =
                    (0..self.tlb_poll_reads).any(|_| self.mmio.read32(reg) & TLB_INVALIDATE == 0);
                if !done {
                    self.stats.tlb_timeouts += 1;
                }
            }
        }
    }
}
