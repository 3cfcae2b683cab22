//! Admission control: what gpu-dom has, what its guests were promised, and
//! what they use.
//!
//! Every guest's [`Limits`] are *reserved* from the engine's pools when it is
//! attached and given back when it is detached. `attach` refuses a guest
//! whose limits do not fit in what is left ([`Refusal::DoesNotFit`], naming
//! the pool and the numbers), so a guest that stays within its own limits
//! can never make another guest's request fail for lack of room.
//!
//! # Invariants
//! - For every pool, the sum of the attached guests' limits is at most the
//!   pool's capacity ([`Engine::pools`] shows it, the tests check it).
//! - Hence `GrantWindowFull`, `TablePoolExhausted` and `ContextPoolExhausted`
//!   cannot happen to a guest within its limits: they remain only as
//!   defences against a driver pool smaller than the engine was told.

use crate::engine::{Config, Engine, Limits};
use crate::error::Refusal;
use crate::platform::{GpuTables, GrantMapper};

/// One of gpu-dom's finite resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Guests served at once (each also holds one ring page in the window).
    Devices,
    /// GGTT entries (each guest's slice is its own).
    GgttEntries,
    /// Grant mappings at once: the GPU-reachable window's frames.
    Pages,
    /// PPGTT table pages.
    TablePages,
    /// PPGTT contexts.
    Contexts,
}

impl Pool {
    /// Every pool, in the order [`Engine::pools`] reports them.
    pub const ALL: [Pool; 5] =
        [Pool::Devices, Pool::GgttEntries, Pool::Pages, Pool::TablePages, Pool::Contexts];

    /// The pool's name in xenstore (`data/vgpu-capacity/<name>`), logs and tools.
    pub const fn name(self) -> &'static str {
        match self {
            Pool::Devices => "devices",
            Pool::GgttEntries => "ggtt-entries",
            Pool::Pages => "pages",
            Pool::TablePages => "table-pages",
            Pool::Contexts => "contexts",
        }
    }

    /// What one guest with `l` takes from this pool.
    pub const fn of(self, l: &Limits) -> u64 {
        match self {
            Pool::Devices => 1,
            Pool::GgttEntries => l.ggtt_len as u64,
            Pool::Pages => l.max_pages as u64,
            Pool::TablePages => l.max_table_pages as u64,
            Pool::Contexts => l.max_contexts as u64,
        }
    }

    /// The pool's size in an engine built with `config`, whose GPU offers
    /// `ggtt_entries`.
    pub const fn capacity(self, config: &Config, ggtt_entries: u32) -> u64 {
        match self {
            Pool::Devices => config.max_guests as u64,
            Pool::GgttEntries => ggtt_entries as u64,
            Pool::Pages => config.grant_slots as u64,
            Pool::TablePages => config.table_pages as u64,
            Pool::Contexts => config.contexts as u64,
        }
    }
}

impl core::fmt::Display for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One pool's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// What gpu-dom has.
    pub capacity: u64,
    /// The sum of the attached guests' limits.
    pub reserved: u64,
    /// What the guests hold right now (at most `reserved`).
    pub used: u64,
}

impl PoolUse {
    /// What a new guest can still be promised.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.reserved)
    }
}

impl<M: GrantMapper, W: GpuTables> Engine<M, W> {
    /// Capacity, reservation and use of `pool`.
    pub fn pool(&self, pool: Pool) -> PoolUse {
        let guests = self.guests.iter().flatten();
        let reserved = guests.clone().map(|g| pool.of(&g.limits)).sum();
        let used = match pool {
            Pool::Devices => guests.count() as u64,
            Pool::GgttEntries => guests.map(|g| g.stats.ggtt_entries as u64).sum(),
            Pool::Pages => guests.map(|g| g.stats.pages as u64).sum(),
            Pool::TablePages => guests.map(|g| g.stats.table_pages as u64).sum(),
            Pool::Contexts => guests.map(|g| g.stats.contexts as u64).sum(),
        };
        PoolUse { capacity: pool.capacity(&self.config, self.caps.ggtt_entries), reserved, used }
    }

    /// Every pool, in [`Pool::ALL`] order.
    pub fn pools(&self) -> [(Pool, PoolUse); 5] {
        Pool::ALL.map(|p| (p, self.pool(p)))
    }

    /// Whether a guest with `l` fits beside the attached ones: the first
    /// pool it does not fit in, as a refusal.
    pub(crate) fn check_fits(&self, l: &Limits) -> Result<(), Refusal> {
        for pool in Pool::ALL {
            let u = self.pool(pool);
            let requested = pool.of(l);
            if requested > u.free() {
                return Err(Refusal::DoesNotFit {
                    pool,
                    requested,
                    free: u.free(),
                    capacity: u.capacity,
                });
            }
        }
        Ok(())
    }
}
