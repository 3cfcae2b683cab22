//! Riding out the backend's death: what the test guest's good and busy
//! modes do when gpu-dom goes away (`cargo xtask restart`), on top of
//! [`Frontend::release`] and [`Frontend::reconnect`].
//!
//! Lines (after the mode's own `backend closed` or failed batch):
//! - `backend gone (<why>): grants_ended=<n> still_mapped=<m> pages_kept=<k>`
//! - `backend gone: still_mapped=<m>` whenever that number changes (a
//!   crashed gpu-dom kept by `on_crash = "preserve"` holds them)
//! - `reconnect failed: <error>` (the attempt is retried)
//! - `reconnected to backend <id> after <ms> ms: regranted=<n> contexts=<c> ggtt=<g> ppgtt=<p> requests=<r>`
//! - `reverified entries=<n> mismatches=<m>` (every recorded entry, read
//!   back through the new gpu-dom; `first mismatch: ...` after it if any)
//! - `detached while the backend was gone` then the cleanup line

use alloc::format;
use alloc::string::String;

use gpuif::wire::GGTT_CONTEXT;
use gpuif::{Status, PAGE_SIZE};
use xenbus::{Transport, XenbusState};

use super::{Control, Reporter};
use crate::{Error, FrontError, Frontend, Platform};

/// How long one [`Frontend::reconnect`] call waits before the caller looks
/// at its own watch events again.
const SLICE_MS: u64 = 1_000;

/// How [`ride_out`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Connected to a new backend; every entry replayed and read back.
    Reconnected { mismatches: u32 },
    /// The toolstack removed the device meanwhile; everything was freed.
    Detached,
    /// The caller's `on_event` said stop (the pages are still held: call
    /// `cleanup`).
    Stopped,
    /// Something failed (printed).
    Failed(String),
}

/// Why the backend was lost, for the `backend gone` line.
fn why<P: Platform, T: Transport>(fe: &Frontend<P, T>) -> &'static str {
    match fe.lost().and_then(|l| l.state) {
        None => "its directory is gone",
        Some(XenbusState::Closed | XenbusState::Closing) => "it closed the device",
        Some(_) => "it stopped serving",
    }
}

/// After the backend went away: releases, waits for a new backend (as long
/// as it takes, letting `check` look at the frontend, e.g. at its queued
/// watch events, every second), reconnects, replays, and reads every entry
/// back.
pub fn ride_out<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    mut check: impl FnMut(&mut Frontend<P, T>) -> Control,
) -> Outcome {
    let r = match fe.release() {
        Ok(r) => r,
        Err(e) => return failed(rep, format!("release: {e}")),
    };
    rep.say(format_args!(
        "backend gone ({}): grants_ended={} still_mapped={} pages_kept={}",
        why(fe),
        r.grants_ended,
        r.still_mapped.len(),
        r.pages_kept
    ));
    let mut held = r.still_mapped.len();
    loop {
        if check(fe) == Control::Stop {
            return Outcome::Stopped;
        }
        let deadline = fe.platform().now_ms().saturating_add(SLICE_MS);
        match fe.reconnect(deadline) {
            Ok(Some(done)) => {
                rep.say(format_args!(
                    "reconnected to backend {} after {} ms: regranted={} contexts={} ggtt={} ppgtt={} requests={}",
                    done.backend_id,
                    done.outage_ms,
                    done.regranted,
                    done.contexts,
                    done.ggtt,
                    done.ppgtt,
                    done.requests
                ));
                return match verify_record(fe) {
                    Ok(v) => {
                        rep.say(format_args!(
                            "reverified entries={} mismatches={}",
                            v.ok + v.bad,
                            v.bad
                        ));
                        if let Some(first) = v.first_bad {
                            rep.say(format_args!("first mismatch: {first}"));
                        }
                        Outcome::Reconnected { mismatches: v.bad }
                    }
                    Err(e) if e.is_backend_closed() => {
                        rep.say(format_args!("backend closed"));
                        return ride_out(fe, rep, check);
                    }
                    Err(e) => failed(rep, format!("reverify: {e}")),
                };
            }
            Ok(None) => {
                let still = fe.grants_held();
                if still != held {
                    rep.say(format_args!("backend gone: still_mapped={still}"));
                    held = still;
                }
            }
            Err(Error::NoDevice { .. }) => {
                rep.say(format_args!("detached while the backend was gone"));
                super::cleanup(fe, rep);
                return Outcome::Detached;
            }
            Err(e @ (Error::Replay { .. } | Error::ReplayContext { .. })) => {
                return failed(rep, format!("replay: {e}"));
            }
            Err(e) => rep.say(format_args!("reconnect failed: {e}")),
        }
    }
}

fn failed(rep: &mut Reporter<'_>, why: String) -> Outcome {
    rep.say(format_args!("survive FAIL {why}"));
    Outcome::Failed(why)
}

/// Every recorded entry read back.
pub struct Verified {
    /// Entries that read back as their own page's bytes.
    pub ok: u32,
    /// Entries that did not.
    pub bad: u32,
    /// The first that did not, said.
    pub first_bad: Option<String>,
}

/// Reads back, through the backend (`DebugReadback`), every entry of the
/// frontend's record, and compares each with the hash of the page's bytes
/// as the guest sees them.
pub fn verify_record<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
) -> Result<Verified, FrontError<P, T>> {
    let mut v = Verified { ok: 0, bad: 0, first_bad: None };
    let mut todo: alloc::vec::Vec<(u16, u64, crate::PageId)> =
        fe.record().ggtt().map(|(i, m)| (GGTT_CONTEXT, u64::from(i), m.page)).collect();
    let contexts: alloc::vec::Vec<u16> = fe.record().contexts().collect();
    for ctx in contexts {
        todo.extend(fe.record().ppgtt(ctx).map(|(a, m)| (ctx, a, m.page)));
    }
    let mut page = [0u8; PAGE_SIZE];
    for (ctx, addr, id) in todo {
        let Some(g) = fe.granted_page(id) else { continue };
        fe.read_page(&g, 0, &mut page);
        let want = gpuif::fnv1a64(&page);
        let rsp = fe.readback(ctx, addr)?;
        if rsp.status == Status::OK && rsp.value == want {
            v.ok += 1;
            continue;
        }
        v.bad += 1;
        if v.first_bad.is_none() {
            v.first_bad = Some(format!(
                "context {ctx} entry {addr:#x}: {} {:#018x}, want {want:#018x}",
                rsp.status.name(),
                rsp.value
            ));
        }
    }
    Ok(v)
}
