//! Mode `busy`: flood the ring and the event channel (the load
//! the other guests must be served fairly against; also for destroying the
//! guest, or the backend, in the middle of a batch).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use gpuif::wire::{Entry, Op, ENTRIES_PER_DIR_PAGE, MAX_DIR_PAGES};
use xenbus::Transport;

use super::{Control, Reporter};
use crate::{Flood, Frontend, Platform};

/// Responses between two heartbeat lines.
const HEARTBEAT: u64 = 100;
/// Flood rounds between two looks at watch events.
const EVENTS_EVERY: u32 = 16;
/// How long a round that could do nothing sleeps (unless an event comes).
const IDLE_WAIT_MS: u64 = 1;
/// Entries per request: half the directory pool, so that the map and the
/// unmap request each have pages of their own (a flood never rewrites them).
pub const BUSY_MAX_ENTRIES: u32 = (MAX_DIR_PAGES / 2 * ENTRIES_PER_DIR_PAGE) as u32;

/// Mode `busy` after the frontend connected: a flood (`crate::flood`) of
/// two requests in turn, one mapping `pages` GGTT entries (at most
/// [`BUSY_MAX_ENTRIES`]) and one unmapping them, as many in flight as the
/// ring holds, the port notified on every round, sleeping only when the
/// ring is full and nothing was answered (for 1 ms, or until an event). Prints
/// `busy batches=<n>` every 100 responses. Every 16 rounds, and whenever
/// nothing moved, it looks at watch events and lets `check` see the
/// frontend; it returns when `check` says stop, or the flood fails (e.g.
/// the backend closed), and cleans up. Returns the responses taken.
pub fn run_busy<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    pages: u32,
    mut check: impl FnMut(&mut Frontend<P, T>) -> Control,
) -> u64 {
    super::run_looping(fe, rep, "busy stopped batches", |fe, rep, n| {
        busy(fe, rep, pages, n, &mut check)
    })
}

fn busy<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    pages: u32,
    batches: &mut u64,
    check: &mut impl FnMut(&mut Frontend<P, T>) -> Control,
) -> String {
    let n = pages.min(fe.info().ggtt_len).min(BUSY_MAX_ENTRIES).min(fe.max_entries() as u32);
    let n = n.max(1);
    let mut map = Vec::with_capacity(n as usize);
    for i in 0..n {
        match fe.grant_page(false) {
            Ok(g) => map.push(Entry { addr: i as u64, gref: g.gref, read_only: false }),
            Err(e) => return format!("grant: {e}"),
        }
    }
    let unmap = super::unmap_of(&map);
    let mut flood = Flood::default();
    for (op, entries) in [(Op::GgttMap, &map), (Op::GgttUnmap, &unmap)] {
        if let Err(e) = fe.flood_stage(&mut flood, op, 0, entries) {
            return format!("staging {op:?}: {e}");
        }
    }
    rep.say(format_args!("busy connected pages={n}"));
    let mut rounds = 0u32;
    loop {
        let r = match fe.flood_round(&mut flood) {
            Ok(r) => r,
            Err(e) => return format!("flood: {e}"),
        };
        for k in (*batches / HEARTBEAT + 1)..=(flood.answered / HEARTBEAT) {
            rep.say(format_args!("busy batches={}", k * HEARTBEAT));
        }
        *batches = flood.answered;
        if let Some(status) = flood.first_failure {
            return format!(
                "a response was {} ({} of {})",
                status.name(),
                flood.failed,
                flood.answered
            );
        }
        rounds = rounds.wrapping_add(1);
        let idle = r.posted == 0 && r.answered == 0;
        if idle || rounds % EVENTS_EVERY == 0 {
            if let Err(e) = fe.poll_events() {
                return format!("watch events: {e}");
            }
            if check(fe) == Control::Stop {
                return String::from("asked to stop");
            }
        }
        if idle {
            // The ring is full and nothing was answered yet: sleep until an
            // event or for a millisecond, then flood on (a spin would only
            // add VM exits: under QEMU's emulation of SVM, a guest spinning
            // on rdtsc and hypercalls triple-faulted right after one).
            let until = fe.platform().now_ms().saturating_add(IDLE_WAIT_MS);
            if let Err(e) = fe.platform().wait(until) {
                return format!("wait: {e}");
            }
        }
    }
}
