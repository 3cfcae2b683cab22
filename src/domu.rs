//! The domU path: bring the Xen interface up, join xenstore, announce
//! readiness, and serve until the toolstack asks for a shutdown.
//!
//! Markers (read by `cargo xtask` from the console logs; keep them stable):
//! - `gpu-dom: started as domU`
//! - `gpu-dom: xenstore name=<name> domid=<domid>`
//! - `gpu-dom: watching backend/vgpu` (the backend service's watches are set)
//! - `gpu-dom: backend ready` (the service started: `data/vgpu-ggtt-entries`
//!   written, existing devices served)
//! - `gpu-dom: ready` (after writing `data/gpu-dom-ready = "1"`)
//! - the service's markers (see `vgpu`)
//! - `gpu-dom: shutdown requested (<reason>)`, then every guest is revoked
//!   (`closed (backend shutting down)` per device), `gpu-dom: backend
//!   stopped: every guest revoked`, then `SCHEDOP_shutdown`

extern crate alloc;

use crate::iommu_test::{self, IommuTest};
use crate::vgpu::{self, Ports, VgpuService};
use alloc::boxed::Box;
use alloc::string::String;
use unikernel::control::{self, SHUTDOWN_PATH};
use unikernel::xen::events;
use unikernel::xen::xenstore::XenstorePage;
use unikernel::Kernel;
use xenbus::{Client, ClientError, RingError, RingTransport, TxId};

type Xenstore = Client<RingTransport<XenstorePage>>;

/// How long one xenstore round trip may take before the domain gives up.
const XENSTORE_TIMEOUT_NS: u64 = 30_000_000_000;
const TOKEN_SHUTDOWN: &str = "shutdown";
const BACKEND_PATH: &str = "backend/vgpu";

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

/// Takes a `control/shutdown` request (acknowledged), as (reason, word).
fn shutdown_request(xs: &mut Xenstore) -> Option<(u32, &'static str)> {
    match control::take_request(xs) {
        Ok(r) => r.map(|r| (r.reason, r.name)),
        Err(e) => xs_fail("read control/shutdown", e),
    }
}

/// The service plus what the loop needs to drive it.
struct Backend {
    svc: VgpuService,
    ports: Ports,
    /// Ports whose device had requests left when its budget ran out.
    busy: heapless::Vec<u32, { backend::service::MAX_DEVICES }>,
    /// The IOMMU test mode (`gpu-dom.iommu-test`, CI only).
    iommu: Option<IommuTest>,
}

/// Revokes every guest (they see Closed), then shuts the domain down.
fn shut_down(k: &Kernel, xs: &mut Xenstore, be: &mut Backend, reason: u32, name: &str) -> ! {
    log::info!("shutdown requested ({name})");
    be.svc.shutdown(xs, &mut vgpu::print_change);
    let gpu = be.svc.backend.engine().gpu();
    let s = gpu.stats();
    log::info!(
        "backend stopped: every guest revoked; software GPU {} ({} entry writes, {} invalidations, {} rejected calls)",
        if gpu.is_idle() { "idle: every entry scratch" } else { "NOT idle" },
        s.writes,
        s.invalidations,
        s.rejected
    );
    k.shutdown(reason)
}

/// Handles watch events until none is queued in the client or waiting on
/// the ring. Service events are coalesced into one rescan per round (a
/// rescan looks at everything); events the client had to drop (its queue is
/// short) count as a service event plus a shutdown check. A rescan's own
/// requests can queue new events, hence the rounds.
fn drain_xenstore(k: &Kernel, xs: &mut Xenstore, be: &mut Backend) {
    loop {
        let mut rescan = false;
        loop {
            let ev = match xs.poll_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => xs_fail("event", e),
            };
            match ev.token() {
                TOKEN_SHUTDOWN => {
                    if let Some((reason, name)) = shutdown_request(xs) {
                        shut_down(k, xs, be, reason, name);
                    }
                }
                t if vgpu::is_service_token(t) => rescan = true,
                iommu_test::TOKEN if be.iommu.is_some() => {
                    if let Some(t) = be.iommu.as_mut() {
                        t.on_request(xs, &be.svc);
                    }
                }
                other => log::warn!("watch event with unknown token {other:?} on {}", ev.path()),
            }
        }
        if xs.take_lost_events() > 0 {
            log::debug!("xenstore watch events were dropped: rechecking shutdown and devices");
            if let Some((reason, name)) = shutdown_request(xs) {
                shut_down(k, xs, be, reason, name);
            }
            be.svc.on_lost_events(xs, &mut vgpu::print_change);
        } else if rescan {
            be.svc.on_watch(xs, backend::service::TOKEN_BACKEND, &mut vgpu::print_change);
        } else {
            return;
        }
    }
}

/// Serves every device whose port fired or that had requests left, once
/// each (a device with more work waits for the others' turn).
fn serve_devices(k: &mut Kernel, xs: &mut Xenstore, be: &mut Backend) {
    let mut ready: heapless::Vec<u32, { backend::service::MAX_DEVICES }> = heapless::Vec::new();
    for port in be.ports.iter() {
        if k.executor.take(port) || be.busy.contains(&port) {
            let _ = ready.push(port);
        }
    }
    be.busy.clear();
    for port in ready {
        if be.svc.on_event(xs, port, &mut vgpu::print_change) {
            let _ = be.busy.push(port);
        }
    }
}

/// Runs gpu-dom as a domU.
pub fn run(mut k: Kernel) -> ! {
    log::info!("started as domU");
    if let Err(e) = k.bring_up() {
        panic!("bring-up failed: {e}");
    }
    let mut xs_box = connect(&k);
    let xs: &mut Xenstore = &mut xs_box;
    let (name, domid) = identity(xs);
    log::info!("xenstore name={name} domid={domid}");

    for feature in ["control/feature-poweroff", "control/feature-reboot"] {
        if let Err(e) = xs.write(TxId::NONE, feature, b"1") {
            log::warn!("cannot write {feature}: {e}");
        }
    }
    if let Err(e) = xs.watch(SHUTDOWN_PATH, TOKEN_SHUTDOWN) {
        xs_fail("watch control/shutdown", e);
    }
    let iommu = if iommu_test::requested(&k) { IommuTest::start(&k) } else { None };
    let mut be = Backend {
        svc: vgpu::build(&mut k),
        ports: Ports::default(),
        busy: heapless::Vec::new(),
        iommu,
    };
    if let Err(e) = be.svc.start(xs, &mut vgpu::print_change) {
        xs_fail("start the vgpu backend (data/vgpu-ggtt-entries, watches)", e);
    }
    if let Some(t) = &be.iommu {
        if let Err(e) = t.watch(xs) {
            xs_fail("watch data/iommu-test", e);
        }
    }
    log::info!("watching {BACKEND_PATH}");
    log::info!("backend ready");
    if let Err(e) = xs.write(TxId::NONE, "data/gpu-dom-ready", b"1") {
        xs_fail("write data/gpu-dom-ready", e);
    }
    log::info!("ready");

    let fault = vgpu::FaultPlan::from_options(&k);
    let port = xs.transport().page().port();
    if k.executor.watch(port).is_err() {
        panic!("executor cannot watch the xenstore port");
    }
    // Each round: serve the devices that fired, then handle xenstore, then
    // sleep. Nothing talks to xenstore between the drain and the sleep, so
    // no watch event waits in the client's queue while the domain sleeps
    // (the transport consumes the port's pending bit while it waits for a
    // reply, and serving writes statistics).
    loop {
        serve_devices(&mut k, xs, &mut be);
        if let Some(f) = &fault {
            f.check(&be.svc);
        }
        drain_xenstore(&k, xs, &mut be);
        be.ports.sync(&mut k.executor, &be.svc);
        // Requests left over: look for events without sleeping, then go on.
        let deadline = if be.busy.is_empty() { None } else { Some(0) };
        if let Err(e) = k.executor.wait(deadline) {
            panic!("executor: {e}");
        }
        k.executor.take(port);
    }
}
