//! What the test guest agrees on with the e2e script in dom0, through
//! nodes of its own `data/` directory (writable by the guest and by dom0).
//!
//! - Mode `badfe`: after the backend refused value `k`, the guest writes
//!   `data/badfe-refused = "<k> <value>"` and waits (bounded) until dom0,
//!   having counted gpu-dom's refusal lines, writes `data/badfe-go = "<k>"`.
//! - Mode `good`: when dom0 writes `data/fairness = "<phase>"` (lowercase
//!   letters), the guest measures its request round trip
//!   (`frontend::scenario::measure_rtt`) on Xen's system time, prints
//!   `TESTGUEST dom=<id> rtt phase=<phase> n=<n> median_us=<m> mean_us=<a>
//!   max_us=<x>` and writes `data/fairness-<phase> = "<m> <a> <x>"` (or
//!   `FAIL <why>`), once per phase. Phase `pipeline` measures pipelining
//!   instead (`frontend::scenario::measure_pipeline`: the same GGTT batches
//!   with one request in flight, then with up to 8), prints `TESTGUEST
//!   dom=<id> pipeline batches=<k> entries=<n> depth1_us=<a> depth8_us=<b>
//!   speedup=<a/b>` and writes `data/fairness-pipeline = "<a> <b> <k>"`.

use alloc::format;
use alloc::string::{String, ToString};

use frontend::scenario::{self, Bad, Reporter};
use frontend::Platform;
use unikernel::xen::timer;
use xenbus::TxId;

use crate::guest::{console_line, Fe};

/// How long dom0 gets to count a refusal.
const GO_WAIT_MS: u64 = 120_000;
/// How often `data/badfe-go` is read meanwhile.
const GO_POLL_MS: u64 = 500;
/// Watch token of `data/fairness`.
pub const TOKEN_FAIRNESS: &str = "fairness";
/// Round trips per measurement, and the time they may take at most.
const RTT_ROUNDS: u32 = 30;
const RTT_LIMIT_US: u64 = 30_000_000;
/// Phase `pipeline`: batches per run, and the pipelined run's depth.
const PIPE_BATCHES: u32 = 50;
const PIPE_DEPTH: u32 = 8;

/// Mode `badfe`'s `settle`: says which value was refused, waits for dom0.
pub fn badfe_settle(fe: &mut Fe, k: usize, bad: Bad) -> Result<(), String> {
    let refused = format!("{k} {}", bad.name());
    fe.xs()
        .write(TxId::NONE, "data/badfe-refused", refused.as_bytes())
        .map_err(|e| format!("write data/badfe-refused: {e}"))?;
    let want = k.to_string();
    let start = fe.platform().now_ms();
    loop {
        if fe.xs().read_str(TxId::NONE, "data/badfe-go").is_ok_and(|v| v == want) {
            return Ok(());
        }
        let now = fe.platform().now_ms();
        if now >= start + GO_WAIT_MS {
            return Err(format!("dom0 did not write data/badfe-go = {k} within {GO_WAIT_MS} ms"));
        }
        fe.platform().wait(now + GO_POLL_MS).map_err(|e| format!("wait: {e}"))?;
    }
}

/// Watches `data/fairness` (mode `good`, once connected and verified).
pub fn watch_fairness(fe: &mut Fe) {
    if let Err(e) = fe.xs().watch("data/fairness", TOKEN_FAIRNESS) {
        log::warn!("cannot watch data/fairness: {e}");
    }
}

/// `data/fairness` changed: measures the phase it names, once.
pub fn on_fairness(fe: &mut Fe, dom: u16) {
    let phase = match fe.xs().read_str(TxId::NONE, "data/fairness") {
        Ok(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()) => p.to_string(),
        _ => return,
    };
    let result = format!("data/fairness-{phase}");
    if fe.xs().read(TxId::NONE, &result).is_ok() {
        return; // measured already
    }
    let mut now_us = || timer::now_ns() / 1_000;
    let value = if phase == "pipeline" {
        pipeline(fe, dom, &mut now_us)
    } else {
        rtt(fe, dom, &phase, &mut now_us)
    };
    if let Err(e) = fe.xs().write(TxId::NONE, &result, value.as_bytes()) {
        log::warn!("cannot write {result}: {e}");
    }
}

/// Phase `pipeline`: the figures, or `FAIL <why>`.
fn pipeline(fe: &mut Fe, dom: u16, now_us: &mut dyn FnMut() -> u64) -> String {
    let mut console = console_line;
    let mut rep = Reporter::new("TESTGUEST", dom, &mut console);
    match scenario::measure_pipeline(fe, PIPE_BATCHES, PIPE_DEPTH, now_us) {
        Ok(b) => {
            let x = b.speedup_x100();
            rep.say(format_args!(
                "pipeline batches={} entries={} depth1_us={} depth{}_us={} speedup={}.{:02}",
                b.batches,
                b.entries,
                b.one_us,
                b.depth,
                b.piped_us,
                x / 100,
                x % 100
            ));
            format!("{} {} {}", b.one_us, b.piped_us, b.batches)
        }
        Err(e) => {
            rep.say(format_args!("pipeline FAIL {e}"));
            format!("FAIL {e}")
        }
    }
}

/// A round-trip phase: `"<median> <mean> <max>"`, or `FAIL <why>`.
fn rtt(fe: &mut Fe, dom: u16, phase: &str, now_us: &mut dyn FnMut() -> u64) -> String {
    match scenario::measure_rtt(fe, RTT_ROUNDS, RTT_LIMIT_US, now_us) {
        Ok(r) => {
            let mut console = console_line;
            let mut rep = Reporter::new("TESTGUEST", dom, &mut console);
            rep.say(format_args!(
                "rtt phase={phase} n={} median_us={} mean_us={} max_us={}",
                r.n, r.median_us, r.mean_us, r.max_us
            ));
            format!("{} {} {}", r.median_us, r.mean_us, r.max_us)
        }
        Err(e) => {
            let mut console = console_line;
            let mut rep = Reporter::new("TESTGUEST", dom, &mut console);
            rep.say(format_args!("rtt phase={phase} FAIL {e}"));
            format!("FAIL {e}")
        }
    }
}
