//! Mode `badfe`: a frontend that presents, in xenstore, values the backend
//! must refuse (a few of the kinds `testing/gpu-dom-testing/gpu-dom-tests/tests/availability.rs` covers on
//! the host, here against real xenstore, grants and event channels), one
//! at a time: each after going back to `Initialising` and
//! waiting for the backend's `InitWait`, written with `Initialised` in one
//! transaction as a real frontend does. The backend must refuse each once
//! (its `Closed`, with `error`) and then leave the device alone until the
//! frontend changes its state again; the caller's `settle` checks that
//! between two values. At the end the right values must connect.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use gpuif::keys;
use xenbus::{Transport, TxId, TxOutcome, XenbusState};

use super::Reporter;
use crate::{Frontend, Platform};

/// A grant reference this guest never grants: refs below 8 are reserved
/// for the toolstack (`GNTTAB_NR_RESERVED_ENTRIES`), which uses 0 and 1.
pub const NEVER_GRANTED_GREF: u32 = 6;
/// How long the backend gets to reach each state.
const STATE_WAIT_MS: u64 = 30_000;
/// How often the backend's state is read while waiting.
const POLL_MS: u64 = 250;
/// Attempts at one transaction.
const TX_ATTEMPTS: u32 = 16;

/// The values presented, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// `version = 2` (the backend speaks 1), with a good ring and port.
    Version2,
    /// `ring-ref` of a grant this guest never made ([`NEVER_GRANTED_GREF`]).
    RingRefNeverGranted,
    /// `ring-ref` that is not a number.
    RingRefNotANumber,
    /// `event-channel = 0` (never a port the backend may bind).
    EventChannelZero,
}

impl Bad {
    /// Every value, in the order presented.
    pub const ALL: [Bad; 4] =
        [Bad::Version2, Bad::RingRefNeverGranted, Bad::RingRefNotANumber, Bad::EventChannelZero];

    /// Its name in console lines.
    pub fn name(self) -> &'static str {
        match self {
            Bad::Version2 => "version=2",
            Bad::RingRefNeverGranted => "ring-ref=never-granted",
            Bad::RingRefNotANumber => "ring-ref=not-a-number",
            Bad::EventChannelZero => "event-channel=0",
        }
    }

    /// (`version`, `ring-ref`, `event-channel`) given a good ring grant and
    /// a good port.
    fn values(self, ring: u32, port: u32) -> [String; 3] {
        let (mut v, mut r, mut p) =
            (keys::PROTOCOL_VERSION.to_string(), ring.to_string(), port.to_string());
        match self {
            Bad::Version2 => v = "2".into(),
            Bad::RingRefNeverGranted => r = NEVER_GRANTED_GREF.to_string(),
            Bad::RingRefNotANumber => r = "ring".into(),
            Bad::EventChannelZero => p = "0".into(),
        }
        [v, r, p]
    }
}

/// Mode `badfe`: prints `badfe <value> -> refused: <backend's error>` per
/// value of [`Bad::ALL`] (or `... FAIL <why>`), `badfe good values ->
/// connected`, then `badfe PASS` or `badfe FAIL <what>`. After each refusal
/// `settle(fe, k, value)` runs (`k` counts from 1); an `Err` from it ends
/// the run as a failure. Returns whether everything passed.
pub fn run_badfe<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    mut settle: impl FnMut(&mut Frontend<P, T>, usize, Bad) -> Result<(), String>,
) -> bool {
    match badfe(fe, rep, &mut settle) {
        Ok(failed) if failed.is_empty() => {
            rep.say(format_args!("badfe PASS"));
            true
        }
        Ok(failed) => {
            rep.say(format_args!("badfe FAIL {}", failed.join(",")));
            false
        }
        Err(e) => {
            rep.say(format_args!("badfe FAIL {e}"));
            false
        }
    }
}

fn badfe<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    settle: &mut impl FnMut(&mut Frontend<P, T>, usize, Bad) -> Result<(), String>,
) -> Result<Vec<&'static str>, String> {
    let dev = fe.discover().map_err(|e| format!("discover: {e}"))?;
    let ring = fe.grant_page(false).map_err(|e| format!("grant: {e}"))?;
    let port = fe.platform().alloc_unbound(dev.backend_id).map_err(|e| format!("port: {e}"))?;
    let be_state = format!("{}/{}", dev.backend_dir, keys::STATE);
    let fe_dir = dev.frontend_dir.clone();
    let mut failed = Vec::new();
    for (k, bad) in Bad::ALL.into_iter().enumerate() {
        if k > 0 {
            set_state(fe, &fe_dir, XenbusState::Initialising)?;
        }
        wait_state(fe, &be_state, XenbusState::InitWait)
            .map_err(|e| format!("before {}: {e}", bad.name()))?;
        let [v, r, p] = bad.values(ring.gref, port);
        let nodes = [
            (keys::VERSION, v.as_str()),
            (keys::RING_REF, r.as_str()),
            (keys::EVENT_CHANNEL, p.as_str()),
            (keys::STATE, XenbusState::Initialised.as_str()),
        ];
        publish(fe, &fe_dir, &nodes)?;
        match wait_state(fe, &be_state, XenbusState::Closed) {
            Ok(()) => {
                let error = format!("{}/error", dev.backend_dir);
                let why = fe.xs().read_str(TxId::NONE, &error).map(|s| s.to_string());
                let why = why.unwrap_or_else(|e| format!("(no error node: {e})"));
                rep.say(format_args!("badfe {} -> refused: {why}", bad.name()));
            }
            Err(e) => {
                rep.say(format_args!("badfe {} -> not refused FAIL ({e})", bad.name()));
                failed.push(bad.name());
                return Ok(failed);
            }
        }
        settle(fe, k + 1, bad)?;
    }
    let _ = fe.platform().close_port(port);
    // The right values now: the refusals were of values, not of the guest.
    set_state(fe, &fe_dir, XenbusState::Initialising)?;
    wait_state(fe, &be_state, XenbusState::InitWait).map_err(|e| format!("at last: {e}"))?;
    match fe.connect() {
        Ok(_) => {
            rep.say(format_args!("badfe good values -> connected"));
            super::cleanup(fe, rep);
        }
        Err(e) => {
            rep.say(format_args!("badfe good values -> FAIL {e}"));
            failed.push("good-values");
        }
    }
    Ok(failed)
}

fn set_state<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    fe_dir: &str,
    state: XenbusState,
) -> Result<(), String> {
    let path = format!("{fe_dir}/{}", keys::STATE);
    fe.xs().write_state(TxId::NONE, &path, state).map_err(|e| format!("write {path}: {e}"))
}

/// Polls `path` (the backend's state) until it reads `want`.
fn wait_state<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    path: &str,
    want: XenbusState,
) -> Result<(), String> {
    let start = fe.platform().now_ms();
    let deadline = start.saturating_add(STATE_WAIT_MS);
    loop {
        let now_state = fe.xs().read_state(TxId::NONE, path).ok();
        if now_state == Some(want) {
            return Ok(());
        }
        let now = fe.platform().now_ms();
        if now >= deadline {
            let s = now_state.map_or_else(|| "absent".into(), |s| format!("{s}"));
            return Err(format!("the backend is {s}, not {want}, after {} ms", now - start));
        }
        fe.platform()
            .wait(now.saturating_add(POLL_MS).min(deadline))
            .map_err(|e| format!("wait: {e}"))?;
    }
}

/// Writes `nodes` under `fe_dir` in one transaction (retried on `EAGAIN`).
fn publish<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    fe_dir: &str,
    nodes: &[(&str, &str)],
) -> Result<(), String> {
    for _ in 0..TX_ATTEMPTS {
        let xs = fe.xs();
        let tx = xs.transaction_start().map_err(|e| format!("transaction_start: {e}"))?;
        for (key, value) in nodes {
            let path = format!("{fe_dir}/{key}");
            if let Err(e) = xs.write(tx, &path, value.as_bytes()) {
                let _ = xs.transaction_end(tx, false);
                return Err(format!("write {path}: {e}"));
            }
        }
        match xs.transaction_end(tx, true) {
            Ok(TxOutcome::Committed) => return Ok(()),
            Ok(_) => continue,
            Err(e) => return Err(format!("transaction_end: {e}")),
        }
    }
    Err(format!("the transaction conflicted {TX_ATTEMPTS} times"))
}
