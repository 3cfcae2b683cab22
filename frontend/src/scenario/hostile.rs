//! Mode `hostile`: requests the backend must refuse, each with the status it
//! must answer, then a ring protocol violation it must disconnect us for.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use gpuif::wire::{Entry, Op, ENTRY_SIZE};
use gpuif::{Status, PAGE_SIZE, RING_SIZE};
use xenbus::Transport;

use super::{pattern, Reporter};
use crate::device::Happening;
use crate::{FrontError, Frontend, Granted, Platform};

/// A grant reference this guest never grants: refs below 8 are reserved for
/// the toolstack (`GNTTAB_NR_RESERVED_ENTRIES`), and 5 is none of the ones
/// it uses (0: console, 1: xenstore).
pub const FOREIGN_GREF: u32 = 5;
/// A PPGTT context id no guest gets (ids are small, per guest).
const UNKNOWN_CONTEXT: u16 = 999;
/// How long the backend gets to disconnect a runaway ring.
const RUNAWAY_WAIT_MS: u64 = 10_000;

/// One hostile request: sends it and returns the response's status.
type Send<P, T> = dyn Fn(&mut Frontend<P, T>) -> Result<Status, FrontError<P, T>>;

fn ggtt(addr: u64, gref: u32) -> Entry {
    Entry { addr, gref, read_only: false }
}

/// Mode `hostile` after the frontend connected. Prints one line per case and
/// `hostile PASS` or `hostile FAIL <cases>`; returns whether every case passed.
pub fn run_hostile<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
) -> bool {
    match hostile(fe, rep) {
        Ok(failed) if failed.is_empty() => {
            rep.say(format_args!("hostile PASS"));
            true
        }
        Ok(failed) => {
            rep.say(format_args!("hostile FAIL {}", failed.join(",")));
            false
        }
        Err(e) => {
            rep.say(format_args!("hostile FAIL {e}"));
            false
        }
    }
}

fn hostile<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
) -> Result<Vec<&'static str>, String> {
    if !fe.is_connected() {
        fe.connect().map_err(|e| format!("connect: {e}"))?;
    }
    let pages = Pages::grant(fe, rep.dom())?;
    let mut failed = refused_requests(fe, rep, &pages)?;
    if runaway_disconnects(fe)? {
        rep.say(format_args!("hostile runaway -> disconnected PASS"));
    } else {
        rep.say(format_args!("hostile runaway -> still connected FAIL"));
        failed.push("runaway");
    }
    super::cleanup(fe, rep);
    Ok(failed)
}

/// The pages the cases name: one granted writable (holding the pattern),
/// one granted read-only, one granted and then revoked.
struct Pages {
    good: Granted,
    ro: Granted,
    victim: Granted,
}

impl Pages {
    /// Every grant first: a revoked ref may be handed out again by the next grant.
    fn grant<P: Platform, T: Transport>(
        fe: &mut Frontend<P, T>,
        dom: u16,
    ) -> Result<Pages, String> {
        let err = |e: FrontError<P, T>| format!("{e}");
        let mut bytes = [0u8; PAGE_SIZE];
        pattern(dom, 0, &mut bytes);
        let good = fe.grant_page(false).map_err(err)?;
        fe.write_page(&good, 0, &bytes);
        let ro = fe.grant_page(true).map_err(err)?;
        let victim = fe.grant_page(false).map_err(err)?;
        fe.end_access(&victim).map_err(|e| format!("revoking grant {}: {e}", victim.gref))?;
        Ok(Pages { good, ro, victim })
    }
}

/// Sends each request the backend must refuse; returns the cases whose
/// status was not the one expected.
fn refused_requests<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    pages: &Pages,
) -> Result<Vec<&'static str>, String> {
    let (slice, good) = (fe.info().ggtt_len, pages.good.gref);
    let mut failed = Vec::new();
    let mut case = |fe: &mut Frontend<P, T>,
                    name: &'static str,
                    want: Status,
                    send: &Send<P, T>|
     -> Result<(), String> {
        let got = send(fe).map_err(|e| format!("{name}: {e}"))?;
        let verdict = if got == want { "PASS" } else { "FAIL" };
        rep.say(format_args!("hostile {name} -> {} {verdict}", got.name()));
        if got != want {
            failed.push(name);
        }
        Ok(())
    };
    let map = |op: Op, ctx: u16, e: Entry| {
        move |fe: &mut Frontend<P, T>| fe.call(op, ctx, &[e]).map(|r| r.status)
    };
    let refused = Status::GRANT_MAP_FAILED;
    case(fe, "foreign-gref", refused, &map(Op::GgttMap, 0, ggtt(0, FOREIGN_GREF)))?;
    case(fe, "revoked-gref", refused, &map(Op::GgttMap, 0, ggtt(1, pages.victim.gref)))?;
    case(fe, "readonly-as-writable", refused, &map(Op::GgttMap, 0, ggtt(2, pages.ro.gref)))?;
    let outside = map(Op::GgttMap, 0, ggtt(slice as u64, good));
    case(fe, "out-of-slice", Status::INDEX_OUT_OF_SLICE, &outside)?;
    case(fe, "garbage-directory", Status::BAD_ENTRY, &move |fe: &mut Frontend<P, T>| {
        let entries: Vec<Entry> = (3..13).map(|i| ggtt(i, good)).collect();
        let rsp = fe.call_indirect(Op::GgttMap, 0, &entries, |i, page| {
            if i == 0 {
                // Entries 6.. get flag bits no entry may have.
                for e in page[6 * ENTRY_SIZE..10 * ENTRY_SIZE].chunks_exact_mut(ENTRY_SIZE) {
                    e[12..16].copy_from_slice(&0xa5a5_a5a5u32.to_le_bytes());
                }
            }
        })?;
        Ok(rsp.status)
    })?;
    let e = Entry { addr: 0x1000, gref: good, read_only: false };
    case(fe, "unknown-context", Status::UNKNOWN_CONTEXT, &map(Op::PpgttMap, UNKNOWN_CONTEXT, e))?;
    Ok(failed)
}

/// Sets `req_prod` three rings ahead; true if the backend disconnected us
/// within [`RUNAWAY_WAIT_MS`]. Events for others are put back.
fn runaway_disconnects<P: Platform, T: Transport>(fe: &mut Frontend<P, T>) -> Result<bool, String> {
    let err = |e: FrontError<P, T>| format!("{e}");
    fe.poke_req_prod(3 * RING_SIZE).map_err(err)?;
    let deadline = fe.platform().now_ms().saturating_add(RUNAWAY_WAIT_MS);
    let mut deferred = Vec::new();
    let disconnected = loop {
        match fe.idle(deadline).map_err(err)? {
            Happening::BackendClosed(_) => break true,
            Happening::Timeout => break false,
            // Not ours: the caller handles it after the scenario.
            Happening::Event(ev) => deferred.push(*ev),
        }
    };
    for ev in deferred.into_iter().rev() {
        fe.requeue_event(ev);
    }
    Ok(disconnected)
}
