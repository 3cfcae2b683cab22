//! The domU path: bring the Xen interface up, join xenstore, announce
//! readiness, and serve until the toolstack asks for a shutdown.
//!
//! # The main loop and its bounds
//! One round does, in order: serve the devices, run the management
//! endpoint, handle xenstore, sleep.
//! Every event source is a budgeted producer: nothing in a round runs
//! "until empty" on anything a guest can fill.
//! - **Devices**: every device whose port fired, or that had requests left
//!   in the last round, is served once per round, for at most
//!   [`backend::service::BUDGET`] units of work per turn (4096: a request
//!   costs 1 plus the entries it named or applied, and the request that crosses the
//!   budget is finished, so a turn is at most 4096 + 2048 units),
//!   round-robin from a start that moves by one device each round.
//!   Notifying a port more often gives a guest nothing: a port that fired
//!   any number of times is one turn.
//! - **Management endpoint** (when gpu-dom has a vif): at most
//!   [`crate::mgmt::RX_BUDGET`] frames from the vif and one step of each
//!   connection (see `mgmt`).
//! - **xenstore**: at most [`XS_EVENTS_PER_ROUND`] watch events per round;
//!   the service's events among them are coalesced: each device they name
//!   is looked at once (`backend::service::Rescan`), or, if any event names
//!   no device (or events were dropped), everything once. Events left over
//!   wait for the next round.
//! - **Sleeping**: the loop sleeps only after a round in which no device
//!   had requests left, the endpoint had nothing left and xenstore had
//!   nothing; otherwise it looks for fired ports without sleeping and goes
//!   on.
//!
//! So a request that a guest posted and notified is answered within two
//! rounds (its port is taken in the round after the notification, or its
//! turn comes in the next one), and a round costs at most, per other
//! device, one turn of at most 4096 + 2048 units, plus the endpoint's
//! budget, [`XS_EVENTS_PER_ROUND`] watch events and one rescan: neither a guest
//! flooding its ring and event channel nor one storming xenstore can
//! delay the others beyond that. (Looking at a named device costs the same
//! whatever the number of devices; a full rescan, taken only when an
//! event names no device or events were dropped, grows with the number of
//! devices, not with any guest's input: see the README's "Availability".)
//!
//! Markers (read by `cargo xtask` from the console logs; keep them stable):
//! - `gpu-dom: started as domU`
//! - `gpu-dom: xenstore name=<name> domid=<domid>`
//! - `gpu-dom: watching backend/vgpu` (the backend service's watches are set)
//! - `gpu-dom: backend ready` (the service started: `data/vgpu-ggtt-entries`
//!   written, existing devices served)
//! - `gpu-dom: ready` (after writing `data/gpu-dom-ready = "1"`)
//! - the service's markers (see `vgpu`)
//! - `gpu-dom: WARN: vgpu dom<F>: one turn took <ms> ms (the other devices
//!   waited)` and `gpu-dom: WARN: xenstore's turn took <ms> ms (the devices
//!   waited): <n> sends, <ms> ms waiting for xenstored`, for a turn of a
//!   second or more
//! - `gpu-dom: shutdown requested (<reason>)`, `gpu-dom: main loop: <n>
//!   rounds, longest round <us> us, longest device turn <us> us (dom<F>)`
//!   (Xen system time; a round that ends in a shutdown is not counted),
//!   then every guest is revoked
//!   (`closed (backend shutting down)` per device), `gpu-dom: backend
//!   stopped: every guest revoked`, then `SCHEDOP_shutdown`

extern crate alloc;

use crate::hypercall_pub::{self, Publisher, Step};
use crate::iommu_test::{self, IommuTest};
use crate::mgmt::Mgmt;
use crate::vgpu::{self, Ports, VgpuService};
use crate::xs_meter::Metered;
use alloc::boxed::Box;
use alloc::string::String;
use unikernel::control::{self, SHUTDOWN_PATH};
use unikernel::xen::xenstore::XenstorePage;
use unikernel::xen::{events, timer};
use unikernel::Kernel;
use xenbus::{Client, ClientError, RingError, RingTransport, TxId};

pub(crate) type Xenstore = Client<Metered<RingTransport<XenstorePage>>>;

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
    Box::new(Client::new(Metered::new(page.into_transport())))
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

/// Watch events handled per round (see the module documentation).
pub const XS_EVENTS_PER_ROUND: usize = 32;
/// A device's (or xenstore's) turn this long is logged (the others waited
/// that long).
const SLOW_TURN_NS: u64 = 1_000_000_000;

/// gpu-dom as a domU: the backend service plus what the main loop needs
/// to drive it (named apart from `backend::Backend`, which the service holds).
struct Domu {
    svc: VgpuService,
    ports: Ports,
    /// Ports whose device had requests left when its budget ran out.
    busy: heapless::Vec<u32, { backend::service::MAX_DEVICES }>,
    /// Where the next round's round-robin starts (an index into `ports`).
    next_first: usize,
    /// How long rounds and turns took (printed when gpu-dom stops).
    stats: LoopStats,
    /// The IOMMU test mode (`gpu-dom.iommu-test`, CI only).
    iommu: Option<IommuTest>,
    /// The management endpoint (off without a vif).
    mgmt: Mgmt,
    /// The deliberate crash of `gpu-dom.fault=<kind>-after=<N>` (CI only).
    fault: Option<vgpu::FaultPlan>,
    /// The grant hypercall counters as published for dom0.
    calls: Publisher,
}

/// What the main loop measured: the bounds of the module documentation,
/// as they came out (Xen system time).
#[derive(Default)]
struct LoopStats {
    rounds: u64,
    longest_round_ns: u64,
    /// The longest one device's turn took, and whose it was.
    longest_turn_ns: u64,
    longest_turn_dom: u16,
}

impl LoopStats {
    fn turn(&mut self, ns: u64, dom: u16) {
        if ns > self.longest_turn_ns {
            self.longest_turn_ns = ns;
            self.longest_turn_dom = dom;
        }
    }

    fn round(&mut self, ns: u64) {
        self.rounds += 1;
        self.longest_round_ns = self.longest_round_ns.max(ns);
    }
}

/// Runs gpu-dom as a domU: joins xenstore, starts the service, then serves
/// until the toolstack asks for a shutdown.
pub fn run(mut k: Kernel) -> ! {
    log::info!("started as domU");
    if let Err(e) = k.bring_up() {
        panic!("bring-up failed: {e}");
    }
    let start_ns = k.now_ns();
    let mut xs = connect(&k);
    join(&mut xs);
    let domu = Domu::start(&mut k, &mut xs, start_ns);
    domu.serve(k, &mut xs)
}

/// Says who we are, offers poweroff and reboot, and watches
/// `control/shutdown`.
fn join(xs: &mut Xenstore) {
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
}

impl Domu {
    /// Builds and starts the service (its watches, existing devices), the
    /// test modes the command line asked for and the management endpoint,
    /// then announces readiness (`data/gpu-dom-ready`).
    fn start(k: &mut Kernel, xs: &mut Xenstore, start_ns: u64) -> Domu {
        let iommu = if iommu_test::requested(k) { IommuTest::start(k) } else { None };
        let mut svc = vgpu::build(k);
        if let Err(e) = svc.start(xs, &mut vgpu::print_change) {
            xs_fail("start the vgpu backend (data/vgpu-ggtt-entries, watches)", e);
        }
        if let Some(t) = &iommu {
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
        let mgmt = Mgmt::start(xs, start_ns);
        Domu {
            svc,
            ports: Ports::default(),
            busy: heapless::Vec::new(),
            next_first: 0,
            stats: LoopStats::default(),
            iommu,
            mgmt,
            fault: vgpu::FaultPlan::from_options(k),
            calls: Publisher::default(),
        }
    }

    /// The main loop. Each round: serve the devices, run the endpoint,
    /// handle xenstore, then sleep unless one of them had work left (see the
    /// module documentation). Nothing talks to xenstore between a round that
    /// found nothing and the sleep, so no watch event waits in the client's
    /// queue while the domain sleeps (the transport consumes the port's
    /// pending bit while it waits for a reply, and serving writes
    /// statistics).
    fn serve(mut self, mut k: Kernel, xs: &mut Xenstore) -> ! {
        let port = xs.transport().inner().page().port();
        if k.executor.watch(port).is_err() {
            panic!("executor cannot watch the xenstore port");
        }
        loop {
            let deadline = self.round(&mut k, xs);
            if let Err(e) = k.executor.wait(deadline) {
                panic!("executor: {e}");
            }
            k.executor.take(port);
        }
    }

    /// One round of the main loop. Returns how long the loop may sleep:
    /// `Some(0)` when a source had work left (look for events, go on), else
    /// the endpoint's next timer or the counters' next publication, if any.
    fn round(&mut self, k: &mut Kernel, xs: &mut Xenstore) -> Option<u64> {
        let t0 = timer::now_ns();
        let rings_left = self.serve_devices(k, xs);
        if let Some(f) = &self.fault {
            f.check(&self.svc);
        }
        let net = self.mgmt.round(k, xs, &self.svc);
        let calls_at = self.publish_hypercalls(xs);
        let xenstore_left = self.timed_xenstore_round(k, xs);
        self.ports.sync(&mut k.executor, &self.svc);
        self.stats.round(timer::now_ns().saturating_sub(t0));
        let net_left = net.more || self.mgmt.pending();
        if rings_left || xenstore_left || net_left {
            Some(0)
        } else {
            [net.deadline_ns, calls_at].into_iter().flatten().min()
        }
    }

    /// Writes the grant hypercall counters to `data/vgpu-hypercalls` if they
    /// changed (see `hypercall_pub`); returns when to look again if the write
    /// had to wait.
    fn publish_hypercalls(&mut self, xs: &mut Xenstore) -> Option<u64> {
        let c = self.svc.engine().mapper().hypercalls();
        let (now, now_ns) = ((c.map, c.unmap), timer::now_ns());
        match self.calls.poll(now, now_ns) {
            Step::Idle => None,
            Step::Later(at) => Some(at),
            Step::Write(map, unmap) => {
                let mut v: heapless::String<48> = heapless::String::new();
                let _ = hypercall_pub::value(map, unmap, &mut v);
                match xs.write(TxId::NONE, hypercall_pub::NODE, v.as_bytes()) {
                    Ok(()) => self.calls.written(now, now_ns),
                    Err(e) => log::warn!("cannot write {}: {e}", hypercall_pub::NODE),
                }
                None
            }
        }
    }

    /// Serves every device whose port fired or that had requests left, one
    /// turn each (the service's budget of requests), round-robin: the first
    /// device served moves by one each round, so no device is always first.
    /// Returns whether some device had requests left.
    fn serve_devices(&mut self, k: &mut Kernel, xs: &mut Xenstore) -> bool {
        let mut ports: heapless::Vec<u32, { backend::service::MAX_DEVICES }> = heapless::Vec::new();
        for port in self.ports.iter() {
            let _ = ports.push(port);
        }
        let first = if ports.is_empty() { 0 } else { self.next_first % ports.len() };
        self.next_first = first.wrapping_add(1);
        ports.rotate_left(first);
        // Which ports fired is taken for all of them before any is served: a
        // notification that arrives while others are served waits for the next
        // round (it is collected when the loop next looks for events).
        let mut ready: heapless::Vec<u32, { backend::service::MAX_DEVICES }> = heapless::Vec::new();
        for port in ports {
            if k.executor.take(port) || self.busy.contains(&port) {
                let _ = ready.push(port);
            }
        }
        self.busy.clear();
        for port in ready {
            self.device_turn(xs, port);
        }
        !self.busy.is_empty()
    }

    /// One device's turn: its requests up to the service's budget, timed.
    fn device_turn(&mut self, xs: &mut Xenstore, port: u32) {
        let dom = self.svc.devices().find(|d| d.live.as_ref().is_some_and(|l| l.port == port));
        let dom = dom.map_or(0, |d| d.fe.0);
        let t0 = timer::now_ns();
        if self.svc.on_event(xs, port, &mut vgpu::print_change) {
            let _ = self.busy.push(port);
        }
        let took = timer::now_ns().saturating_sub(t0);
        if took >= SLOW_TURN_NS {
            // At most one line per SLOW_TURN_NS of one device's service.
            log::warn!(
                "vgpu dom{dom}: one turn took {} ms (the other devices waited)",
                took / 1_000_000
            );
        }
        self.stats.turn(took, dom);
    }

    /// [`Self::xenstore_round`], with a warning when its turn was slow.
    fn timed_xenstore_round(&mut self, k: &Kernel, xs: &mut Xenstore) -> bool {
        let (t0, m0) = (timer::now_ns(), xs.transport().meter());
        let left = self.xenstore_round(k, xs);
        let took = timer::now_ns().saturating_sub(t0);
        if took >= SLOW_TURN_NS {
            let m = xs.transport().meter().since(m0);
            log::warn!(
                "xenstore's turn took {} ms (the devices waited): {} sends, {} ms waiting for xenstored",
                took / 1_000_000,
                m.sends,
                m.wait_ns / 1_000_000
            );
        }
        left
    }

    /// One round of xenstore: handles at most [`XS_EVENTS_PER_ROUND`] watch
    /// events (queued in the client, or waiting on the ring). The service's
    /// events are coalesced: each device they name is looked at once;
    /// events the client had to drop (its queue is short) count as a service
    /// event plus a shutdown check. Returns whether xenstore may have more:
    /// events were left over, or this round's requests (the rescan's writes
    /// fire our own watches) may have queued new ones. Only a round that found
    /// nothing at all lets the loop sleep.
    fn xenstore_round(&mut self, k: &Kernel, xs: &mut Xenstore) -> bool {
        // The devices the service's events named (a full rescan if any event
        // named none: see `backend::service::Rescan`).
        let mut rescan = backend::service::Rescan::default();
        let mut taken = 0;
        while taken < XS_EVENTS_PER_ROUND {
            let ev = match xs.poll_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => xs_fail("event", e),
            };
            taken += 1;
            match ev.token() {
                TOKEN_SHUTDOWN => {
                    if let Some((reason, name)) = shutdown_request(xs) {
                        self.shut_down(k, xs, reason, name);
                    }
                }
                t if vgpu::is_service_token(t) => {
                    rescan.add(t, ev.path());
                }
                t if Mgmt::is_token(t) => self.mgmt.on_watch(),
                iommu_test::TOKEN if self.iommu.is_some() => {
                    if let Some(t) = self.iommu.as_mut() {
                        t.on_request(xs, &self.svc);
                    }
                }
                other => log::warn!("watch event with unknown token {other:?} on {}", ev.path()),
            }
        }
        if xs.take_lost_events() > 0 {
            log::debug!("xenstore watch events were dropped: rechecking shutdown and devices");
            self.mgmt.on_watch();
            if let Some((reason, name)) = shutdown_request(xs) {
                self.shut_down(k, xs, reason, name);
            }
            self.svc.on_lost_events(xs, &mut vgpu::print_change);
            return true;
        }
        if !rescan.is_empty() {
            self.svc.on_watches(xs, &rescan, &mut vgpu::print_change);
        }
        taken > 0
    }

    /// Revokes every guest (they see Closed), then shuts the domain down.
    fn shut_down(&mut self, k: &Kernel, xs: &mut Xenstore, reason: u32, name: &str) -> ! {
        log::info!("shutdown requested ({name})");
        let st = &self.stats;
        log::info!(
            "main loop: {} rounds, longest round {} us, longest device turn {} us (dom{})",
            st.rounds,
            st.longest_round_ns / 1000,
            st.longest_turn_ns / 1000,
            st.longest_turn_dom
        );
        self.svc.shutdown(xs, &mut vgpu::print_change);
        let gpu = self.svc.engine().gpu();
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
}
