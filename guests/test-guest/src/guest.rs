//! The guest's life: bring the Xen interface up, join xenstore, run the
//! mode's scenario, then stay until the toolstack asks for a shutdown
//! (handled like gpu-dom does: acknowledge, disconnect cleanly, power off).

use alloc::boxed::Box;

use frontend::scenario::{self, Control, GoodConfig, Reporter, SteadyEnd};
use frontend::{Frontend, Happening, Options, Platform};
use unikernel::control::{self, SHUTDOWN_PATH};
use unikernel::xen::page::OwnPage;
use unikernel::xen::xenstore::XenstorePage;
use unikernel::xen::{console, crash, events, logger};
use unikernel::Kernel;
use xen_abi::sched::SHUTDOWN_POWEROFF;
use xenbus::{Client, RingTransport, TxId};

use crate::platform::GuestPlatform;

type Xs = RingTransport<XenstorePage>;
pub(crate) type Fe = Frontend<GuestPlatform, Xs>;

/// How long one xenstore round trip may take before the guest gives up.
const XENSTORE_TIMEOUT_NS: u64 = 30_000_000_000;
const TOKEN_SHUTDOWN: &str = "shutdown";
/// Mode `good`: re-verification period once everything is mapped.
const REVERIFY_MS: u64 = 5_000;
/// Mode `unattached`: how long the backend gets to reach InitWait.
const UNATTACHED_WAIT_MS: u64 = 10_000;
/// Idle wake-up period (only to re-check for lost watch events).
const IDLE_MS: u64 = 60_000;
/// Longest wait for one response. The test runs share 2 emulated CPUs with
/// other QEMU runs: gpu-dom taking another guest up (or coming back after a
/// restart) has kept a response waiting for more than the default 10 s.
const RESPONSE_TIMEOUT_MS: u64 = 30_000;
/// Mode `bench`: longest wait for one response.
const BENCH_RESPONSE_TIMEOUT_MS: u64 = 120_000;
/// Mode batches: batches kept in flight unless `depth=` says otherwise.
const BATCHES_DEPTH: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Good,
    Hostile,
    Unattached,
    Busy,
    Batches,
    BadFe,
    Scale,
    Bench,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "good" => Mode::Good,
            "hostile" => Mode::Hostile,
            "unattached" => Mode::Unattached,
            "busy" => Mode::Busy,
            "batches" => Mode::Batches,
            "badfe" => Mode::BadFe,
            "scale" => Mode::Scale,
            "bench" => Mode::Bench,
            _ => return None,
        })
    }
}

/// A `SHUTDOWN_*` reason and its name.
type Shutdown = (u32, &'static str);

pub(crate) fn console_line(line: &str) {
    let mut bytes = alloc::vec::Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    console::write(&bytes);
}

fn connect_xenstore(k: &Kernel) -> (Box<Client<Xs>>, u32) {
    let (gfn, port) = k.xenstore().unwrap_or_else(|e| panic!("no xenstore ring: {e}"));
    if let Err(e) = events::unmask(port) {
        log::warn!("cannot unmask the xenstore port {port}: {e}");
    }
    let page = XenstorePage::new(gfn, port, XENSTORE_TIMEOUT_NS)
        .unwrap_or_else(|| panic!("xenstore ring gfn {gfn:#x} is above 4 GiB"));
    (Box::new(Client::new(page.into_transport())), port)
}

/// Takes a `control/shutdown` request (acknowledged), as gpu-dom does.
fn shutdown_request(xs: &mut Client<Xs>) -> Option<Shutdown> {
    match control::take_request(xs) {
        Ok(r) => r.map(|r| (r.reason, r.name)),
        Err(e) => {
            log::warn!("cannot read {SHUTDOWN_PATH}: {e}");
            None
        }
    }
}

/// A shutdown request among the queued watch events (or lost ones).
fn pending_shutdown(fe: &mut Fe) -> Option<Shutdown> {
    let mut asked = fe.take_lost_events() > 0;
    while let Some(ev) = fe.take_event() {
        asked |= ev.token() == TOKEN_SHUTDOWN;
    }
    if asked {
        shutdown_request(fe.xs())
    } else {
        None
    }
}

/// Disconnects (if still connected) and shuts the domain down.
fn finish(fe: &mut Fe, rep: &mut Reporter<'_>, (reason, name): Shutdown) -> ! {
    log::info!("shutdown requested ({name})");
    if fe.is_connected() {
        scenario::cleanup(fe, rep);
    }
    log::info!("bye");
    crash::shutdown(reason)
}

/// Waits for a shutdown request, forever.
fn idle(fe: &mut Fe, rep: &mut Reporter<'_>) -> ! {
    loop {
        if let Some(s) = pending_shutdown(fe) {
            finish(fe, rep, s);
        }
        let deadline = fe.platform().now_ms().saturating_add(IDLE_MS);
        match fe.idle(deadline) {
            Ok(Happening::Event(ev)) => fe.requeue_event(*ev),
            Ok(Happening::BackendClosed(_)) => {
                rep.say(format_args!("backend closed"));
                scenario::cleanup(fe, rep);
            }
            Ok(Happening::Timeout) => {}
            Err(e) => {
                log::warn!("waiting: {e}");
                // Do not spin on a persistent error.
                let until = fe.platform().now_ms().saturating_add(1_000);
                let _ = fe.platform().wait(until);
            }
        }
    }
}

/// The image's main function.
pub fn run(mut k: Kernel) -> ! {
    logger::set_prefix("test-guest");
    if let Err(e) = k.bring_up() {
        panic!("bring-up failed: {e}");
    }
    let (mut xs, xs_port) = connect_xenstore(&k);
    let dom = match xs.read_str(TxId::NONE, "domid") {
        Ok(s) => s.trim().parse::<u16>().unwrap_or(0),
        Err(e) => panic!("xenstore read domid: {e}"),
    };
    let args = k.args();
    let mode_name = args.value("mode").unwrap_or("good");
    // `cargo xtask iommu` only: check what gpu-dom's test device wrote.
    let k_dma_check = args.flag("dma-check");
    let pages = args.value("pages").and_then(|p| p.parse::<u32>().ok()).unwrap_or(300);
    let bench = crate::bench::config(&args);
    // Mode batches: requests kept in flight (a pipeline; 1 = one at a time).
    let depth = args.value("depth").and_then(|p| p.parse::<u32>().ok()).unwrap_or(BATCHES_DEPTH);
    for feature in ["control/feature-poweroff", "control/feature-reboot"] {
        if let Err(e) = xs.write(TxId::NONE, feature, b"1") {
            log::warn!("cannot write {feature}: {e}");
        }
    }
    if let Err(e) = xs.watch(SHUTDOWN_PATH, TOKEN_SHUTDOWN) {
        panic!("xenstore watch {SHUTDOWN_PATH}: {e}");
    }
    log::info!("domid={dom} up mode={mode_name} pages={pages}");

    let mut console = console_line;
    let mut rep = Reporter::new("TESTGUEST", dom, &mut console);
    let Some(mode) = Mode::parse(mode_name) else {
        rep.say(format_args!(
            "{mode_name} FAIL unknown mode (good, hostile, unattached, busy, batches, badfe, scale, bench)"
        ));
        crash::shutdown(SHUTDOWN_POWEROFF)
    };
    let mut opts = Options { response_timeout_ms: RESPONSE_TIMEOUT_MS, ..Options::default() };
    if mode == Mode::Unattached {
        opts.handshake_timeout_ms = UNATTACHED_WAIT_MS;
    }
    if mode == Mode::Bench {
        // A measurement, not a liveness check: a starved emulated machine
        // has kept one response for more than 30 s.
        opts.response_timeout_ms = BENCH_RESPONSE_TIMEOUT_MS;
    }
    // dma-check: a page of ours at a high frame number (above gpu-dom's
    // RAM), filled with known bytes and never granted.
    let far = if k_dma_check { k.take_spare_page() } else { None };
    let platform = match GuestPlatform::new(k, xs_port) {
        Ok(p) => p,
        Err(e) => panic!("platform: {e}"),
    };
    let mut fe = Frontend::new(platform, xs, opts);
    match mode {
        Mode::Good => good(&mut fe, &mut rep, pages, k_dma_check, far),
        Mode::Hostile => {
            scenario::run_hostile(&mut fe, &mut rep);
        }
        Mode::Unattached => {
            scenario::run_unattached(&mut fe, &mut rep);
        }
        Mode::BadFe => {
            scenario::run_badfe(&mut fe, &mut rep, crate::sync::badfe_settle);
        }
        Mode::Scale => crate::scale::run(&mut fe, &mut rep, crate::scale::config(&args, pages)),
        Mode::Bench => {
            crate::bench::run(&mut fe, &mut rep, &bench);
        }
        Mode::Busy | Mode::Batches => {
            let mut asked = None;
            let check = |fe: &mut Fe| {
                asked = pending_shutdown(fe);
                if asked.is_some() {
                    Control::Stop
                } else {
                    Control::Continue
                }
            };
            if mode == Mode::Busy {
                scenario::run_busy(&mut fe, &mut rep, pages, check);
            } else {
                scenario::run_batches(&mut fe, &mut rep, pages, depth, check);
            }
            if let Some(s) = asked {
                finish(&mut fe, &mut rep, s);
            }
        }
    }
    idle(&mut fe, &mut rep)
}

/// Mode `good`; then, with `dma_check`, the check of what gpu-dom's test
/// device did (`far`: the spare page for its far-frame check, if one was free).
fn good(fe: &mut Fe, rep: &mut Reporter<'_>, pages: u32, dma_check: bool, far: Option<OwnPage>) {
    let cfg = GoodConfig { pages, ..GoodConfig::default() };
    let Ok(mapped) = scenario::run_good(fe, rep, &cfg) else {
        if fe.is_connected() {
            scenario::cleanup(fe, rep);
        }
        return;
    };
    if dma_check {
        crate::dma_check::run(fe, rep, pages, far);
    }
    crate::sync::watch_fairness(fe);
    let dom = rep.dom();
    let mut asked: Option<Shutdown> = None;
    let end = scenario::steady(fe, rep, &mapped, REVERIFY_MS, |fe, ev| {
        if ev.token() == TOKEN_SHUTDOWN {
            asked = shutdown_request(fe.xs());
        }
        if ev.token() == crate::sync::TOKEN_FAIRNESS {
            crate::sync::on_fairness(fe, dom);
        }
        if asked.is_some() {
            Control::Stop
        } else {
            Control::Continue
        }
    });
    if let (SteadyEnd::Stopped, Some(s)) = (&end, asked) {
        // `steady` already disconnected.
        finish(fe, rep, s);
    }
}
