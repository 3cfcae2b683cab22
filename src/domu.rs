//! The domU path: bring the Xen interface up, join xenstore, announce
//! readiness, and serve until the toolstack asks for a shutdown.
//!
//! Markers (read by `cargo xtask` from the console logs; keep them stable):
//! - `gpu-dom: started as domU`
//! - `gpu-dom: xenstore name=<name> domid=<domid>`
//! - `gpu-dom: ready` (after writing `data/gpu-dom-ready = "1"`)
//! - `gpu-dom: watching backend/vgpu`
//! - `gpu-dom: shutdown requested (<reason>)`, then `SCHEDOP_shutdown`

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::String;
use unikernel::xen::events;
use unikernel::xen::xenstore::XenstorePage;
use unikernel::Kernel;
use xen_abi::sched::{SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};
use xenbus::{Client, ClientError, OwnedWatchEvent, RingError, RingTransport, TxId};

type Xenstore = Client<RingTransport<XenstorePage>>;

/// How long one xenstore round trip may take before the domain gives up.
const XENSTORE_TIMEOUT_NS: u64 = 30_000_000_000;
const TOKEN_VGPU: &str = "vgpu";
const TOKEN_SHUTDOWN: &str = "shutdown";
const BACKEND_PATH: &str = "backend/vgpu";
const SHUTDOWN_PATH: &str = "control/shutdown";

fn xs_fail(what: &str, e: ClientError<RingError>) -> ! {
    panic!("xenstore {what}: {e}")
}

/// Connects to xenstore over the ring Xen set up for this domain.
fn connect(k: &Kernel) -> Box<Xenstore> {
    let (gfn, port) = k.xenstore().unwrap_or_else(|e| panic!("no xenstore ring: {e}"));
    if let Err(e) = events::unmask(port) {
        log::warn!("cannot unmask the xenstore port {port}: {e}");
    }
    let page = XenstorePage::new(gfn, port, XENSTORE_TIMEOUT_NS)
        .unwrap_or_else(|| panic!("xenstore ring gfn {gfn:#x} is above 4 GiB"));
    Box::new(Client::new(page.into_transport()))
}

/// Reads `name` and `domid` from our own node (relative paths resolve
/// against `/local/domain/<domid>`).
fn identity(xs: &mut Xenstore) -> (String, u16) {
    let domid = match xs.read_str(TxId::NONE, "domid") {
        Ok(s) => s
            .trim()
            .parse::<u16>()
            .unwrap_or_else(|_| panic!("xenstore domid {s:?} is not a domain id")),
        Err(e) => xs_fail("read domid", e),
    };
    let name = match xs.read_str(TxId::NONE, "name") {
        Ok(s) => String::from(s),
        Err(e) => xs_fail("read name", e),
    };
    (name, domid)
}

/// Handles a `control/shutdown` event: returns the `SHUTDOWN_*` reason to
/// shut down with, after acknowledging (clearing the node, as Linux does).
fn shutdown_request(xs: &mut Xenstore) -> Option<(u32, &'static str)> {
    let reason = match xs.read_str(TxId::NONE, SHUTDOWN_PATH) {
        Ok("poweroff") => (SHUTDOWN_POWEROFF, "poweroff"),
        Ok("halt") => (SHUTDOWN_POWEROFF, "halt"),
        Ok("reboot") => (SHUTDOWN_REBOOT, "reboot"),
        Ok("") => return None,
        Ok(other) => {
            log::warn!("unsupported shutdown request {other:?}: ignored");
            return None;
        }
        Err(e) if e.is_not_found() => return None,
        Err(e) => xs_fail("read control/shutdown", e),
    };
    if let Err(e) = xs.write(TxId::NONE, SHUTDOWN_PATH, b"") {
        log::warn!("cannot acknowledge the shutdown request: {e}");
    }
    Some(reason)
}

fn handle_event(k: &Kernel, xs: &mut Xenstore, ev: &OwnedWatchEvent) {
    match ev.token() {
        TOKEN_SHUTDOWN => {
            if let Some((reason, name)) = shutdown_request(xs) {
                log::info!("shutdown requested ({name})");
                k.shutdown(reason);
            }
        }
        TOKEN_VGPU => log::info!("backend/vgpu changed: {}", ev.path()),
        other => log::warn!("watch event with unknown token {other:?} on {}", ev.path()),
    }
}

/// Runs gpu-dom as a domU.
pub fn run(mut k: Kernel) -> ! {
    log::info!("started as domU");
    if let Err(e) = k.bring_up() {
        panic!("bring-up failed: {e}");
    }
    let mut xs = connect(&k);
    let (name, domid) = identity(&mut xs);
    log::info!("xenstore name={name} domid={domid}");

    for feature in ["control/feature-poweroff", "control/feature-reboot"] {
        if let Err(e) = xs.write(TxId::NONE, feature, b"1") {
            log::warn!("cannot write {feature}: {e}");
        }
    }
    if let Err(e) = xs.write(TxId::NONE, "data/gpu-dom-ready", b"1") {
        xs_fail("write data/gpu-dom-ready", e);
    }
    log::info!("ready");
    if let Err(e) = xs.watch(SHUTDOWN_PATH, TOKEN_SHUTDOWN) {
        xs_fail("watch control/shutdown", e);
    }
    if let Err(e) = xs.watch(BACKEND_PATH, TOKEN_VGPU) {
        xs_fail("watch backend/vgpu", e);
    }
    log::info!("watching backend/vgpu");

    let port = xs.transport().page().port();
    if k.executor.watch(port).is_err() {
        panic!("executor cannot watch the xenstore port");
    }
    loop {
        loop {
            match xs.poll_event() {
                Ok(Some(ev)) => handle_event(&k, &mut xs, &ev),
                Ok(None) => break,
                Err(e) => xs_fail("event", e),
            }
        }
        if xs.take_lost_events() > 0 {
            log::warn!("xenstore watch events were lost: rechecking control/shutdown");
            if let Some((reason, name)) = shutdown_request(&mut xs) {
                log::info!("shutdown requested ({name})");
                k.shutdown(reason);
            }
        }
        if let Err(e) = k.executor.wait(None) {
            panic!("executor: {e}");
        }
        k.executor.take(port);
    }
}
