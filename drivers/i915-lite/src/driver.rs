//! The driver object: one probed GPU, its BAR ([`Mmio`]) and its table
//! memory ([`TableMemory`]), set up so that every GGTT entry it manages and
//! every scratch table points at the scratch page before `gtt` sees it.
//!
//! What differs between generations is data chosen once in [`I915::new`]:
//! the entry [`Format`], the GGTT flush sequence ([`GgttSync`]) and the TLB
//! invalidation plan ([`TlbPlan`], over the device's [`Engines`]; on Gen12
//! minus the media engines fused off, read from
//! `GEN11_GT_VEBOX_VDBOX_DISABLE` as i915's `init_engine_mask` does).
//!
//! # Failing closed
//! [`I915::try_invalidate`] returns an [`InvalidateError`] when a GGTT entry did
//! not read back as written or an engine's TLB invalidation did not report
//! done within [`Config::tlb_poll_reads`] reads. Under `gtt` (whose
//! `invalidate` returns nothing) the first such error is kept
//! ([`I915::fault`]) and from then on the driver creates no new GPU-visible
//! mapping: `ggtt_set` and `table_set_leaf` write the scratch entry instead
//! (counted in [`Stats::rejected`]); clears still clear. A GPU whose TLBs
//! cannot be shown clean must not be handed more pages.
//!
//! # What is out of scope
//! Command submission is not here: no context image, no ring, no ELSP
//! (execlist submit port) writes, no forcewake, no private PAT
//! (`GEN8_PRIVATE_PAT_LO/HI`, `GEN12_PAT_INDEX`) programming, no GuC and no
//! GPU reset. The driver exposes what a context needs from it
//! ([`I915::pml4_pointer`]: the value of a 4-level context's `PDP0` register
//! pair, i915's `ASSIGN_CTX_PML4`), and the PPGTT TLB invalidation it does
//! (per-engine registers) is only meaningful once engines run such
//! contexts, which need forcewake.

use core::fmt;

use gtt::{BusAddr, Level};

use crate::engines::Engines;
use crate::ggtt::{Ggtt, GgttSync};
use crate::ids::Gen;
use crate::pci::DeviceInfo;
use crate::ppgtt::{PoolError, TableMemory, TablePool, FIRST_TABLE, SCRATCH_PAGE};
use crate::pte::{AddrError, Entry, Format};
use crate::regs::{Mmio, GEN11_GT_VEBOX_VDBOX_DISABLE};
use crate::tlb::{TlbPlan, TlbTimeout};

/// Choices the image makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most GGTT entries handed to `gtt` (the device's count minus the
    /// reserved last entry is the other bound). Clearing 1 Mi entries
    /// through MMIO at init takes a while; a smaller GGTT share boots faster.
    pub ggtt_limit: u32,
    /// Reads of an engine's TLB invalidation register before giving up on it
    /// (i915 waits up to 4 ms; a timeout is an [`InvalidateError::Tlb`]).
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
    /// GGTT flushes (see [`GgttSync`]).
    pub flushes: u64,
    /// Flushes whose read-back of the last written entry differed.
    pub readback_mismatches: u64,
    /// PPGTT TLB invalidations (all engines).
    pub tlb_invalidations: u64,
    /// Engine TLB invalidations that did not report done in time.
    pub tlb_timeouts: u64,
    /// Calls that broke the `GpuTables` contract, named an address an entry
    /// cannot hold, or asked for a mapping after a fault (the entry was set
    /// to scratch instead, or nothing was written).
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

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InitError::Pool(PoolError::TooFewPages(n)) => {
                write!(f, "table memory has {n} pages; the scratch set needs 4 plus one table")
            }
            InitError::Pool(PoolError::Unencodable(p, AddrError::Unaligned(a))) => {
                write!(f, "table page {p} is at {a:#x}, not 4 KiB aligned")
            }
            InitError::Pool(PoolError::Unencodable(p, AddrError::TooWide(a))) => {
                write!(f, "table page {p} is at {a:#x}, above what the GPU addresses (2^39)")
            }
            InitError::GgttOffset(o) => write!(f, "GGTT at BAR offset {o:#x} is out of reach"),
            InitError::GgttTooSmall(n) => write!(f, "GGTT of {n} entries is too small"),
        }
    }
}

/// Why an invalidation could not be shown complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidateError {
    /// The last GGTT entry written did not read back as written.
    GgttReadBack {
        /// The entry.
        index: u32,
        /// What was written.
        wrote: u64,
        /// What was read.
        read: u64,
    },
    /// An engine's TLB invalidation did not report done in time.
    Tlb(TlbTimeout),
}

impl fmt::Display for InvalidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidateError::GgttReadBack { index, wrote, read } => {
                write!(f, "GGTT[{index}] wrote {wrote:#018x}, read back {read:#018x}")
            }
            InvalidateError::Tlb(t) => t.fmt(f),
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

/// One supported GPU, driven. See the module documentation.
pub struct I915<M, T> {
    pub(crate) info: DeviceInfo,
    pub(crate) mmio: M,
    pub(crate) mem: T,
    pub(crate) format: Format,
    pub(crate) ggtt: Ggtt,
    pub(crate) pool: TablePool,
    engines: Engines,
    media_fuse: Option<u32>,
    tlb: TlbPlan,
    tlb_poll_reads: u32,
    pub(crate) ppgtt_dirty: bool,
    pub(crate) fault: Option<InvalidateError>,
    pub(crate) stats: Stats,
}

impl<M: Mmio, T: TableMemory> I915<M, T> {
    /// Sets the driver up on a probed device: scratch page and tables in
    /// `mem`, every managed GGTT entry and the reserved one at scratch,
    /// the engines (Gen12: minus the fused-off ones), then a flush.
    pub fn new(
        info: DeviceInfo,
        mut mmio: M,
        mut mem: T,
        config: Config,
    ) -> Result<Self, InitError> {
        let gen = info.device.gen();
        let format = Format::of(gen);
        let pool = TablePool::new(&mut mem, format).map_err(InitError::Pool)?;
        let scratch = format
            .ggtt(mem.bus(SCRATCH_PAGE))
            .map_err(|e| InitError::Pool(PoolError::Unencodable(SCRATCH_PAGE, e)))?;
        let base = info.ggtt_offset();
        let base = u32::try_from(base).map_err(|_| InitError::GgttOffset(base))?;
        let total = info.ggc_info.ggtt_entries();
        if total < 2 {
            return Err(InitError::GgttTooSmall(total));
        }
        let managed = config.ggtt_limit.min(total - 1);
        let platform_engines = Engines::of(info.device);
        let (engines, media_fuse) = match gen {
            Gen::Gen12 => {
                let fuse = mmio.read32(GEN11_GT_VEBOX_VDBOX_DISABLE);
                (platform_engines.without_fused_off(fuse), Some(fuse))
            }
            Gen::Gen8 | Gen::Gen9 => (platform_engines, None),
        };
        let mut d = I915 {
            info,
            mmio,
            mem,
            format,
            ggtt: Ggtt::new(base, total, managed, scratch, GgttSync::of(gen)),
            pool,
            engines,
            media_fuse,
            tlb: TlbPlan::new(info.device.platform, &engines),
            tlb_poll_reads: config.tlb_poll_reads.max(1),
            ppgtt_dirty: false,
            fault: None,
            stats: Stats::default(),
        };
        d.ggtt.clear_all(&mut d.mmio);
        d.stats.ggtt_writes += u64::from(managed) + 1;
        if let Err(e) = d.try_invalidate() {
            d.fault.get_or_insert(e);
        }
        Ok(d)
    }

    /// What the probe found.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The entry format of this device.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The engines whose TLBs are invalidated.
    pub fn engines(&self) -> &Engines {
        &self.engines
    }

    /// The value read from `GEN11_GT_VEBOX_VDBOX_DISABLE` (Gen12 only).
    pub fn media_fuse(&self) -> Option<u32> {
        self.media_fuse
    }

    /// The TLB invalidation plan.
    pub fn tlb_plan(&self) -> &TlbPlan {
        &self.tlb
    }

    /// The first invalidation that failed, if any: from then on no new
    /// mapping is written (see the module documentation).
    pub fn fault(&self) -> Option<InvalidateError> {
        self.fault
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
    pub fn scratch_entry(&self, level: Level) -> Entry {
        self.pool.scratch_entry(level)
    }

    /// Reads GGTT entry `index` back through the BAR (`None` past the end).
    pub fn read_ggtt(&mut self, index: u32) -> Option<Entry> {
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

    /// Makes every table write visible, flushes the GGTT and (after PPGTT
    /// writes) invalidates every engine's TLB, waiting a bounded time for
    /// each. The error says what could not be shown complete; the caller
    /// decides (under `gtt`, the driver fails closed).
    pub fn try_invalidate(&mut self) -> Result<(), InvalidateError> {
        self.mem.make_visible();
        let out = self.ggtt.flush(&mut self.mmio);
        self.stats.flushes += 1;
        let mut result = Ok(());
        if let Some((index, wrote, read)) = out.mismatch {
            self.stats.readback_mismatches += 1;
            result = Err(InvalidateError::GgttReadBack { index, wrote, read });
        }
        if self.ppgtt_dirty {
            self.ppgtt_dirty = false;
            self.stats.tlb_invalidations += 1;
            if let Err(t) = self.tlb.run(&mut self.mmio, self.tlb_poll_reads) {
                self.stats.tlb_timeouts += u64::from(t.engines);
                result = result.and(Err(InvalidateError::Tlb(t)));
            }
        }
        result
    }
}
