//! Mode `bench`: what a batch costs, on the guest's own clock.
//!
//! For the GGTT, then a PPGTT context, and each batch size of
//! [`BenchConfig::sizes`] (1, 8, 64, 512 and 2048 entries; more than
//! `INLINE_ENTRIES` go through directory pages), one round is:
//! - grant `size` fresh pages (not timed);
//! - `cold`: map them in one request (gpu-dom maps every grant);
//! - `warm`: map the same entries to the same grants again (every grant is
//!   mapped already: no grant hypercall is needed);
//! - `unmap`: clear them in one request (gpu-dom unmaps every grant);
//! - end the grants (not timed; each must end: gpu-dom unmapped them).
//!
//! Sizes up to [`COUNTED_BATCH`] repeat the round ([`rounds`]) and report
//! the median. Before
//! the GGTT rounds, `rtt`: the round trip of an empty request (`AttachInfo`:
//! no entries, no table touched), the floor every request pays. Last, `detach`: the guest maps
//! [`BenchConfig::detach_grants`] fresh grants through the GGTT and the
//! PPGTT both, then disconnects; timed until the backend reached Closed
//! (it revoked every entry and unmapped every grant) and our grants ended.
//!
//! In the first round of [`COUNTED_BATCH`] entries, the guest calls
//! `mark("<table>-cold begin")` before the cold batch and
//! `mark("<kind> end")` after each batch (an end is also the next batch's
//! begin: nothing happens in between). In the test guest, dom0 reads
//! gpu-dom's hypercall counters at each mark (`data/bench-mark`, see the
//! test guest's `bench`) and prints each batch's difference. Marks are never
//! inside a timed interval.
//!
//! Lines (after the reporter's `TESTGUEST dom=<id> `):
//! `bench: kind=<kind> batch=<entries> n=<rounds> median_ns=<m> mean_ns=<a>
//! per_entry_ns=<m / entries>` with kinds `rtt` (batch=0, per_entry_ns = the
//! median), `ggtt-cold`, `ggtt-warm`, `ggtt-unmap`, `ppgtt-cold`,
//! `ppgtt-warm`, `ppgtt-unmap`, `detach` (batch = entries held); then
//! `bench PASS` or `bench FAIL <why>`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use gpuif::wire::{Entry, Op};
use gpuif::{Status, PAGE_SIZE};
use xenbus::Transport;

use super::Reporter;
use crate::{Frontend, Granted, Platform};

/// The batch whose grant hypercalls dom0 counts (one round, marked).
pub const COUNTED_BATCH: u32 = 512;

/// What mode `bench` measures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    /// Batch sizes, in entries.
    pub sizes: Vec<u32>,
    /// Grants held (each through one GGTT and one PPGTT entry) when the
    /// guest detaches; 0 skips `detach`.
    pub detach_grants: u32,
    /// Round trips of the empty request.
    pub rtt_rounds: u32,
    /// GPU virtual address of the first PPGTT entry.
    pub ppgtt_base: u64,
    /// At most this many rounds per size (see [`rounds`]).
    pub max_rounds: u32,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            sizes: alloc::vec![1, 8, 64, 512, 2048],
            detach_grants: 2048,
            rtt_rounds: 16,
            ppgtt_base: 0x1_0000_0000,
            max_rounds: u32::MAX,
        }
    }
}

/// Rounds of a batch of `size` entries: enough to take a median of small
/// batches, three of [`COUNTED_BATCH`] (the first is counted), one above.
pub fn rounds(size: u32) -> u32 {
    match size {
        s if s > COUNTED_BATCH => 1,
        COUNTED_BATCH => 3,
        s => (128 / s.max(1)).clamp(4, 16),
    }
}

/// Times of one kind, in ns of the guest's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    pub n: u32,
    pub median_ns: u64,
    pub mean_ns: u64,
}

/// The upper median and the mean of `times`.
pub fn summarize(times: &mut [u64]) -> Timing {
    if times.is_empty() {
        return Timing::default();
    }
    times.sort_unstable();
    let n = times.len();
    Timing { n: n as u32, median_ns: times[n / 2], mean_ns: times.iter().sum::<u64>() / n as u64 }
}

/// Where the table under test puts entry `i`, and how to clear it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Ggtt,
    Ppgtt { ctx: u16, base: u64 },
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Ggtt => "ggtt",
            Table::Ppgtt { .. } => "ppgtt",
        }
    }
    fn ops(self) -> (Op, Op, u16) {
        match self {
            Table::Ggtt => (Op::GgttMap, Op::GgttUnmap, 0),
            Table::Ppgtt { ctx, .. } => (Op::PpgttMap, Op::PpgttUnmap, ctx),
        }
    }
    fn addr(self, i: usize) -> u64 {
        match self {
            Table::Ggtt => i as u64,
            Table::Ppgtt { base, .. } => base + (i * PAGE_SIZE) as u64,
        }
    }
}

/// The clock and the dom0 marks a bench run uses.
pub struct Hooks<'a, F> {
    /// The guest's clock, in ns.
    pub now_ns: &'a mut dyn FnMut() -> u64,
    /// Called with `"<kind> begin"` and `"<kind> end"` around the counted batches.
    pub mark: &'a mut dyn FnMut(&mut F, &str) -> Result<(), String>,
}

/// Mode `bench` (connects if needed). Prints the lines of the module
/// documentation, then `bench PASS` or `bench FAIL <why>`; the frontend is
/// disconnected at the end when `detach` ran.
pub fn run_bench<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    cfg: &BenchConfig,
    hooks: &mut Hooks<'_, Frontend<P, T>>,
) -> Result<(), String> {
    let r = bench(fe, rep, cfg, hooks);
    match &r {
        Ok(()) => rep.say(format_args!("bench PASS")),
        Err(why) => rep.say(format_args!("bench FAIL {why}")),
    }
    r
}

fn bench<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    cfg: &BenchConfig,
    hooks: &mut Hooks<'_, Frontend<P, T>>,
) -> Result<(), String> {
    if !fe.is_connected() {
        fe.connect().map_err(|e| format!("connect: {e}"))?;
    }
    let largest = cfg.sizes.iter().copied().chain([cfg.detach_grants]).max().unwrap_or(0);
    let (slice, max) = (fe.info().ggtt_len, fe.max_entries());
    if largest as usize > max || largest > slice {
        return Err(format!(
            "batches of {largest} entries do not fit: the backend takes {max} entries per \
             request and the GGTT slice has {slice} (attach with --ggtt-entries {largest})"
        ));
    }
    let mut times = Vec::with_capacity(cfg.rtt_rounds as usize);
    for _ in 0..cfg.rtt_rounds {
        let t0 = (hooks.now_ns)();
        let r = fe.call(Op::AttachInfo, 0, &[]).map_err(|e| format!("empty request: {e}"))?;
        times.push((hooks.now_ns)().saturating_sub(t0));
        expect_ok("empty request", r.status, r.value)?;
    }
    say(rep, "rtt", 0, summarize(&mut times));
    let ctx = fe.context_create().map_err(|e| format!("context: {e}"))?;
    for table in [Table::Ggtt, Table::Ppgtt { ctx, base: cfg.ppgtt_base }] {
        for &size in &cfg.sizes {
            measure(fe, rep, table, (size, rounds(size).min(cfg.max_rounds)), hooks)?;
        }
    }
    if cfg.detach_grants > 0 {
        detach(fe, rep, cfg, ctx, hooks)?;
    }
    Ok(())
}

fn expect_ok(what: &str, status: Status, value: u64) -> Result<(), String> {
    if status == Status::OK {
        Ok(())
    } else {
        Err(format!("{what}: {} value={value:#x}", status.name()))
    }
}

fn say(rep: &mut Reporter<'_>, kind: &str, batch: u32, t: Timing) {
    rep.say(format_args!(
        "bench: kind={kind} batch={batch} n={} median_ns={} mean_ns={} per_entry_ns={}",
        t.n,
        t.median_ns,
        t.mean_ns,
        t.median_ns / batch.max(1) as u64
    ));
}

fn grant_fresh<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    n: u32,
) -> Result<Vec<Granted>, String> {
    (0..n).map(|_| fe.grant_page(false).map_err(|e| format!("grant: {e}"))).collect()
}

fn end_all<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    pages: &[Granted],
) -> Result<(), String> {
    for g in pages {
        fe.end_access(g).map_err(|e| format!("ending grant {} after unmap: {e}", g.gref))?;
    }
    Ok(())
}

/// `n` rounds of `size` entries in `table`: prints its cold, warm and unmap
/// lines. Marks (first counted round): a begin before cold, an end after
/// each step (an end is the next step's begin: nothing happens in between).
fn measure<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    table: Table,
    (size, n): (u32, u32),
    hooks: &mut Hooks<'_, Frontend<P, T>>,
) -> Result<(), String> {
    let (map_op, unmap_op, ctx) = table.ops();
    let mut t: [Vec<u64>; 3] = Default::default();
    for round in 0..n.max(1) {
        let counted = size == COUNTED_BATCH && round == 0;
        let pages = grant_fresh(fe, size)?;
        let map: Vec<Entry> = pages
            .iter()
            .enumerate()
            .map(|(i, g)| Entry { addr: table.addr(i), gref: g.gref, read_only: false })
            .collect();
        let unmap: Vec<Entry> = map.iter().map(|e| Entry { gref: 0, ..*e }).collect();
        let steps = [("cold", map_op, &map), ("warm", map_op, &map), ("unmap", unmap_op, &unmap)];
        for (k, (step, op, entries)) in steps.into_iter().enumerate() {
            let kind = format!("{}-{step}", table.name());
            if counted && k == 0 {
                (hooks.mark)(fe, &format!("{kind} begin"))?;
            }
            let t0 = (hooks.now_ns)();
            let r = fe.call(op, ctx, entries).map_err(|e| format!("{kind} x{size}: {e}"))?;
            t[k].push((hooks.now_ns)().saturating_sub(t0));
            expect_ok(&format!("{kind} x{size}"), r.status, r.value)?;
            if counted {
                (hooks.mark)(fe, &format!("{kind} end"))?;
            }
        }
        end_all(fe, &pages)?;
    }
    for (k, step) in ["cold", "warm", "unmap"].into_iter().enumerate() {
        say(rep, &format!("{}-{step}", table.name()), size, summarize(&mut t[k]));
    }
    Ok(())
}

/// `detach`: map fresh grants through both tables, then disconnect, timed.
fn detach<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    cfg: &BenchConfig,
    ctx: u16,
    hooks: &mut Hooks<'_, Frontend<P, T>>,
) -> Result<(), String> {
    let pages = grant_fresh(fe, cfg.detach_grants)?;
    for table in [Table::Ggtt, Table::Ppgtt { ctx, base: cfg.ppgtt_base }] {
        let (op, _, ctx) = table.ops();
        let entries: Vec<Entry> = pages
            .iter()
            .enumerate()
            .map(|(i, g)| Entry { addr: table.addr(i), gref: g.gref, read_only: false })
            .collect();
        let r = fe.call(op, ctx, &entries).map_err(|e| format!("detach setup: {e}"))?;
        expect_ok("detach setup", r.status, r.value)?;
    }
    let t0 = (hooks.now_ns)();
    let t = fe.disconnect().map_err(|e| format!("disconnect: {e}"))?;
    let took = (hooks.now_ns)().saturating_sub(t0);
    if !t.backend_closed || !t.still_mapped.is_empty() {
        return Err(format!(
            "detach: backend closed={} ({:?}), {} grants still mapped",
            t.backend_closed,
            t.backend_state,
            t.still_mapped.len()
        ));
    }
    let held = cfg.detach_grants * 2;
    say(rep, "detach", held, Timing { n: 1, median_ns: took, mean_ns: took });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_batches_repeat_most_and_larger_than_the_counted_batch_run_once() {
        assert_eq!([1, 8, 64, 512, 2048].map(rounds), [16, 16, 4, 3, 1]);
    }

    #[test]
    fn summary_takes_the_upper_median_and_the_mean() {
        let mut t = [30, 10, 20, 1000];
        assert_eq!(summarize(&mut t), Timing { n: 4, median_ns: 30, mean_ns: 265 });
        assert_eq!(summarize(&mut []), Timing::default());
    }
}
