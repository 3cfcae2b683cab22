//! Mode `bench` (`frontend::scenario::run_bench`) on Xen's system time, with
//! its marks agreed on with dom0 through the guest's `data/` directory: the
//! guest writes `data/bench-mark = "<k> <kind> begin|end"` (k = 1, 2, ...)
//! and waits (bounded) until dom0, having read gpu-dom's hypercall counters,
//! writes `data/bench-ack = "<k>"`. Without dom0 (no ack within
//! [`ACK_WAIT_MS`]) the run fails rather than count the wrong batch.

use alloc::format;
use alloc::string::{String, ToString};

use frontend::scenario::{self, BenchConfig, Hooks, Reporter};
use frontend::Platform;
use unikernel::xen::timer;
use xenbus::TxId;

use crate::guest::Fe;

/// How long dom0 gets to read the counters and acknowledge a mark.
const ACK_WAIT_MS: u64 = 120_000;
/// How often `data/bench-ack` is read meanwhile.
const ACK_POLL_MS: u64 = 100;

/// The bench's configuration from the command line: `sizes=<n>,<n>,...`
/// (default 1,8,64,512,2048), `detach=<grants>` (default 2048; 0 skips
/// it), `rounds=<n>` (at most n rounds per size) and `rtt=<n>` (round trips
/// of the empty request, default 16). `cargo xtask e2e` runs `sizes=512
/// detach=0 rounds=1 rtt=0`: only the counted batches.
pub fn config(args: &unikernel::boot_options::Cmdline<'_>) -> BenchConfig {
    let (sizes, detach) = (args.value("sizes"), args.value("detach"));
    let mut cfg = BenchConfig::default();
    if let Some(n) = args.value("rounds").and_then(|n| n.parse().ok()) {
        cfg.max_rounds = n;
    }
    if let Some(n) = args.value("rtt").and_then(|n| n.parse().ok()) {
        cfg.rtt_rounds = n;
    }
    if let Some(s) = sizes {
        cfg.sizes = s.split(',').filter_map(|n| n.parse().ok()).collect();
    }
    if let Some(d) = detach.and_then(|d| d.parse().ok()) {
        cfg.detach_grants = d;
    }
    cfg
}

/// Runs the bench; returns whether it passed (the frontend is disconnected
/// when it did and `detach` ran: it is the last measurement).
pub fn run(fe: &mut Fe, rep: &mut Reporter<'_>, cfg: &BenchConfig) -> bool {
    let mut k = 0u32;
    let mut mark = |fe: &mut Fe, what: &str| {
        k += 1;
        mark(fe, k, what)
    };
    let mut now_ns = timer::now_ns;
    let mut hooks = Hooks { now_ns: &mut now_ns, mark: &mut mark };
    scenario::run_bench(fe, rep, cfg, &mut hooks).is_ok()
}

fn mark(fe: &mut Fe, k: u32, what: &str) -> Result<(), String> {
    let value = format!("{k} {what}");
    fe.xs()
        .write(TxId::NONE, "data/bench-mark", value.as_bytes())
        .map_err(|e| format!("write data/bench-mark: {e}"))?;
    let want = k.to_string();
    let start = fe.platform().now_ms();
    loop {
        if fe.xs().read_str(TxId::NONE, "data/bench-ack").is_ok_and(|v| v == want) {
            return Ok(());
        }
        let now = fe.platform().now_ms();
        if now >= start + ACK_WAIT_MS {
            return Err(format!(
                "dom0 did not acknowledge mark {k} ({what}) in data/bench-ack within {ACK_WAIT_MS} ms"
            ));
        }
        fe.platform().wait(now + ACK_POLL_MS).map_err(|e| format!("wait: {e}"))?;
    }
}
