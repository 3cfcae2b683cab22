//! Pipelining, measured from a good guest: the time of `batches` GGTT
//! batches sent one at a time, then the same batches through a
//! [`Pipeline`] of depth `depth`, on the guest's own clock. The batches map
//! entries again to the pages already there (as [`super::measure_rtt`]
//! does), so the guest's mappings do not change.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use gpuif::wire::{Entry, Op};
use gpuif::Status;
use xenbus::Transport;

use crate::{Frontend, Pipeline, Platform};

/// Entries per measured batch (one request, one directory page).
pub const BENCH_ENTRIES: usize = 64;

/// The two timings, in microseconds of the guest's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeBench {
    /// Batches per run.
    pub batches: u32,
    /// Entries per batch.
    pub entries: u32,
    /// The pipelined run's depth.
    pub depth: u32,
    /// All batches with one request in flight.
    pub one_us: u64,
    /// All batches with up to `depth` in flight.
    pub piped_us: u64,
}

impl PipeBench {
    /// `one_us / piped_us`, in hundredths (250 = 2.5 times faster).
    pub fn speedup_x100(&self) -> u64 {
        (self.one_us * 100).checked_div(self.piped_us).unwrap_or(0)
    }
}

/// Runs `batches` batches of [`BENCH_ENTRIES`] GGTT entries (the first
/// writable pages granted, at indexes `0..`, as mode `good` maps them) at
/// depth 1, then at depth `depth`, timing each run with `now_us`. Every
/// batch must come back `OK`.
pub fn measure_pipeline<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    batches: u32,
    depth: u32,
    now_us: &mut dyn FnMut() -> u64,
) -> Result<PipeBench, String> {
    let entries: Vec<Entry> = fe
        .granted()
        .iter()
        .filter(|g| !g.read_only)
        .take(BENCH_ENTRIES)
        .enumerate()
        .map(|(i, g)| Entry { addr: i as u64, gref: g.gref, read_only: false })
        .collect();
    if entries.len() < BENCH_ENTRIES {
        return Err(format!("{} writable pages granted, want {BENCH_ENTRIES}", entries.len()));
    }
    let mut run = |d: u32| -> Result<u64, String> {
        let mut p = Pipeline::new(d);
        let t0 = now_us();
        for _ in 0..batches {
            p.queue(Op::GgttMap, 0, &entries);
        }
        let out = p.finish(fe).map_err(|e| format!("depth {d}: {e}"))?;
        let took = now_us().saturating_sub(t0);
        for (_, o) in out {
            match o {
                Ok(r) if r.status == Status::OK => {}
                Ok(r) => return Err(format!("depth {d}: {}", r.status.name())),
                Err(why) => return Err(format!("depth {d}: {why:?}")),
            }
        }
        Ok(took)
    };
    let one_us = run(1)?;
    let piped_us = run(depth)?;
    Ok(PipeBench { batches, entries: BENCH_ENTRIES as u32, depth, one_us, piped_us })
}
