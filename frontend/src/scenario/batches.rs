//! Mode `batches`: map and unmap large batches forever (for destroying the
//! guest, or the backend, in the middle of a batch). A backend that goes
//! away is ridden out ([`super::ride_out`]); the batches then go on.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use gpuif::wire::{Entry, Op};
use gpuif::Status;
use xenbus::Transport;

use super::{pattern, Control, Outcome, Reporter};
use crate::{Frontend, Pipeline, Platform};

/// Batches between two heartbeat lines.
const HEARTBEAT: u64 = 100;

/// Mode `batches` after the frontend connected: alternately maps `pages` GGTT
/// entries and unmaps them, one batch (one request) each, through a
/// [`Pipeline`] keeping `depth` of them in flight (the first batch alone,
/// then read back), printing `batches sent=<n>` every 100 batches answered.
/// Between waits `check` sees the frontend (to look at watch events); it
/// returns when `check` says stop, or a batch fails, and cleans up. A
/// backend that goes away fails the batches in flight; after the ride-out
/// they start over with a map batch. Returns the batches answered `OK`.
pub fn run_batches<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    pages: u32,
    depth: u32,
    mut check: impl FnMut(&mut Frontend<P, T>) -> Control,
) -> u64 {
    super::run_looping(fe, rep, "batches stopped sent", |fe, rep, n| {
        batches_loop(fe, rep, pages, depth, n, &mut check)
    })
}

fn batches_loop<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    pages: u32,
    depth: u32,
    batches: &mut u64,
    check: &mut impl FnMut(&mut Frontend<P, T>) -> Control,
) -> String {
    let n = pages.min(fe.info().ggtt_len).max(1);
    let mut page = [0u8; gpuif::PAGE_SIZE];
    for seq in 0..n {
        match fe.grant_page(false) {
            Ok(g) => {
                pattern(rep.dom(), seq, &mut page);
                fe.write_page(&g, 0, &page);
            }
            Err(e) => return format!("grant: {e}"),
        }
    }
    // Our pages' current grants (they change when a new backend takes over).
    let entries = |fe: &Frontend<P, T>| -> Vec<Entry> {
        let g = fe.granted();
        (0..n as usize)
            .filter_map(|i| {
                g.get(i).map(|g| Entry { addr: i as u64, gref: g.gref, read_only: false })
            })
            .collect()
    };
    let mut map = entries(fe);
    let unmap = super::unmap_of(&map);
    rep.say(format_args!("batches connected pages={n} depth={depth}"));
    let mut p = Pipeline::new(depth);
    // The first batch alone: what it mapped is read back before any other
    // batch changes it.
    let mut next = Op::GgttMap;
    let mut first = *batches == 0;
    loop {
        // Keep `depth` batches queued: map and unmap, one request each.
        while p.pending() < p.depth() as usize && !(first && p.pending() > 0) {
            p.queue(next, 0, if next == Op::GgttMap { &map } else { &unmap });
            next = if next == Op::GgttMap { Op::GgttUnmap } else { Op::GgttMap };
        }
        let waited = p.wait_until(fe, p.pending() - 1);
        while let Some((_, outcome)) = p.take_next() {
            match outcome {
                Ok(r) if r.status == Status::OK => {
                    *batches += 1;
                    if *batches % HEARTBEAT == 0 {
                        rep.say(format_args!("batches sent={batches}"));
                    }
                }
                Ok(r) => return format!("batch: {}", r.status.name()),
                Err(_) => {} // abandoned: `waited` says why
            }
        }
        match waited {
            Ok(()) => {}
            Err(e) if e.is_backend_closed() => {
                rep.say(format_args!("batches failed: {e}"));
                match super::ride_out(fe, rep, &mut *check) {
                    Outcome::Reconnected { .. } => {
                        map = entries(fe);
                        next = Op::GgttMap; // start over with a map batch
                        rep.say(format_args!("batches resumed"));
                        continue;
                    }
                    Outcome::Detached => return String::from("detached"),
                    Outcome::Stopped => return String::from("asked to stop"),
                    Outcome::Failed(why) => return why,
                }
            }
            Err(e) => return format!("{e}"),
        }
        if first && *batches == 1 {
            first = false;
            if let Err(why) = verify_first(fe, rep) {
                return why;
            }
        }
        if check(fe) == Control::Stop {
            // Let what is in flight be answered before disconnecting.
            let _ = p.finish(fe);
            return String::from("asked to stop");
        }
    }
}

/// What the first batch mapped, read back through the backend.
fn verify_first<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
) -> Result<(), String> {
    match super::verify_record(fe) {
        Ok(v) => {
            let entries = v.ok + v.bad;
            rep.say(format_args!("batches verified entries={entries} mismatches={}", v.bad));
            Ok(())
        }
        // Lost meanwhile: the next batch fails and rides it out.
        Err(e) if e.is_backend_closed() => Ok(()),
        Err(e) => Err(format!("verify: {e}")),
    }
}
