//! The management endpoint in the image: a vif (`netfront`), smoltcp and
//! the read-only HTTP endpoint (`mgmt-endpoint`), driven from the main loop
//! with a bounded budget per round, like every other event source.
//!
//! Off unless the domain has a vif (`vif = [...]` in its xl config) whose
//! `ip=` gives the address (libxl writes it into the backend directory as
//! `ip`; `a.b.c.d/prefix`, prefix 24 when absent). It listens on that
//! address only, port [`PORT`]: `GET /metrics`, `GET /healthz`.
//!
//! Markers (read by `cargo xtask net`; keep them stable):
//! - `gpu-dom: mgmt: off (no vif)` / `gpu-dom: mgmt: off (<why>)`
//! - `gpu-dom: mgmt: vif 0 mac=<mac> ip=<a.b.c.d/p> backend=<path>`
//! - `gpu-dom: mgmt: vif connected (<features>)`
//! - `gpu-dom: mgmt: listening on <ip>:<port>; heap <n> KiB used, <m> KiB free`
//! - `gpu-dom: mgmt: vif down (<why>)`
//!
//! # Invariants
//! - Per round: at most [`RX_BUDGET`] frames are taken from the vif and
//!   each connection is worked once (`mgmt_endpoint::server`); nothing the
//!   network sends can make a round longer or keep gpu-dom from its guests.
//! - The endpoint reads the service (`VgpuService`) and changes nothing.
//! - Xenstore is touched only in [`Mgmt::round`], which the loop calls
//!   before it drains watch events.

extern crate alloc;

mod pages;

use alloc::boxed::Box;
use core::fmt::Write as _;

use mgmt_endpoint::metrics::{GuestFigures, PoolFigures};
use mgmt_endpoint::{Limits, NetFigures, Server, Snapshot};
use netfront::handshake::{self, Handshake, Next, FEATURES};
use netfront::phy::NetDevice;
use netfront::Netfront;
use unikernel::xen::events;
use unikernel::Kernel;

use crate::vgpu::VgpuService;
use pages::NetPage;

type Xenstore = crate::domu::Xenstore;

/// The watch token of the vif's backend state.
pub const TOKEN: &str = "mgmt-vif";
/// The endpoint's TCP port.
pub const PORT: u16 = 80;
/// Frames taken from the vif per main-loop round.
pub const RX_BUDGET: u32 = 32;
/// Rx buffers kept posted (one page each).
const RX_BUFFERS: usize = 32;
/// Tx buffers (one page each).
const TX_BUFFERS: usize = 16;
/// Bad backend answers logged one by one before they are only counted.
const BAD_ANSWERS_LOGGED: u64 = 8;

struct Up {
    dev: NetDevice<NetPage>,
    server: Server,
    port: events::Port,
    logged_bad: u64,
}

enum State {
    Off,
    Handshaking,
    Up(Box<Up>),
}

/// What one round asks of the loop.
pub struct Round {
    /// Work is left (budget spent, or responses waiting): do not sleep.
    pub more: bool,
    /// When to come back even if nothing happens (Xen system time, ns).
    pub deadline_ns: Option<u64>,
}

/// The management endpoint (see the module documentation).
pub struct Mgmt {
    state: State,
    hs: Option<Handshake>,
    ip: [u8; 4],
    prefix: u8,
    /// A watch event of [`TOKEN`] arrived (or some were lost).
    pending: bool,
    start_ns: u64,
}

fn fmt_mac(m: [u8; 6]) -> heapless::String<17> {
    let mut s = heapless::String::new();
    let _ =
        write!(s, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
    s
}

impl Mgmt {
    /// The endpoint, off (until [`Mgmt::start`]).
    pub fn off(start_ns: u64) -> Mgmt {
        Mgmt { state: State::Off, hs: None, ip: [0; 4], prefix: 0, pending: false, start_ns }
    }

    /// Reads vif 0's configuration and starts its handshake; off (and
    /// saying why) without a vif, an `ip`, or on a bad value.
    pub fn start(xs: &mut Xenstore, start_ns: u64) -> Mgmt {
        let mut m = Mgmt::off(start_ns);
        let cfg = match handshake::read_config(xs, 0) {
            Ok(Some(cfg)) => cfg,
            Ok(None) => {
                log::info!("mgmt: off (no vif)");
                return m;
            }
            Err(e) => {
                log::warn!("mgmt: off (vif 0: {e})");
                return m;
            }
        };
        let Some(ip) = cfg.ip else {
            log::warn!(
                "mgmt: off (vif 0 has no ip=: give it one in the vif line, e.g. ip=192.0.2.2/24)"
            );
            return m;
        };
        let a = ip.addr;
        log::info!(
            "mgmt: vif 0 mac={} ip={}.{}.{}.{}/{} backend={}",
            fmt_mac(cfg.mac),
            a[0],
            a[1],
            a[2],
            a[3],
            ip.prefix,
            cfg.backend
        );
        (m.ip, m.prefix) = (ip.addr, ip.prefix);
        match Handshake::start(cfg, xs, TOKEN) {
            Ok(hs) => {
                m.hs = Some(hs);
                m.state = State::Handshaking;
                m.pending = true;
            }
            Err(e) => log::warn!("mgmt: off (watch the vif backend: {e})"),
        }
        m
    }

    /// True for the watch token of the vif.
    pub fn is_token(token: &str) -> bool {
        token == TOKEN
    }

    /// A watch event of [`TOKEN`] arrived, or events were lost: the next
    /// round looks at the backend again.
    pub fn on_watch(&mut self) {
        if self.hs.is_some() {
            self.pending = true;
        }
    }

    /// Whether a round must come before the loop sleeps.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// One round: the handshake if the backend moved, then the network.
    pub fn round(&mut self, k: &mut Kernel, xs: &mut Xenstore, svc: &VgpuService) -> Round {
        if core::mem::take(&mut self.pending) {
            self.step_handshake(k, xs);
        }
        let State::Up(up) = &mut self.state else {
            return Round { more: false, deadline_ns: None };
        };
        // The port only wakes the loop: the rings say what happened.
        k.executor.take(up.port);
        let now_ns = k.now_ns();
        let now_ms = now_ns / 1_000_000;
        up.dev.set_rx_budget(RX_BUDGET);
        let net = net_figures(&up.dev);
        let start_ns = self.start_ns;
        let next_ms = up.server.round(now_ms, &mut up.dev, true, &mut |s| {
            fill(s, svc, net, now_ns.saturating_sub(start_ns))
        });
        let _ = up.dev.nic.collect_tx();
        if up.dev.nic.push() {
            let _ = events::send(up.port);
        }
        let bad = up.dev.nic.stats().bad_answers;
        if let Some(b) = up.dev.nic.take_last_bad() {
            if up.logged_bad < BAD_ANSWERS_LOGGED {
                log::warn!("mgmt: netback answered badly: {b:?} (counted, packet dropped)");
                up.logged_bad += 1;
                if up.logged_bad == BAD_ANSWERS_LOGGED {
                    log::warn!("mgmt: further bad answers are only counted ({bad} so far)");
                }
            }
        }
        if let Some(e) = up.dev.error {
            log::warn!("mgmt: vif down ({e}); the endpoint is off");
            self.tear_down(k, xs);
            return Round { more: false, deadline_ns: None };
        }
        let more = up.dev.budget_spent() || up.dev.nic.final_check();
        Round { more, deadline_ns: next_ms.map(|ms| ms.saturating_mul(1_000_000)) }
    }

    fn step_handshake(&mut self, k: &mut Kernel, xs: &mut Xenstore) {
        let Some(hs) = self.hs.as_mut() else { return };
        match hs.poll(xs) {
            Ok(Next::Wait) => {}
            Ok(Next::Publish) => {
                if let Err(why) = self.connect(k, xs) {
                    log::warn!("mgmt: off ({why})");
                    self.tear_down(k, xs);
                }
            }
            Ok(Next::Up) => self.listen(),
            Ok(Next::Down(state)) => {
                log::info!("mgmt: vif down (backend state {state:?}); the endpoint is off");
                self.tear_down(k, xs);
            }
            Err(e) => {
                log::warn!("mgmt: off (vif handshake: {e})");
                self.tear_down(k, xs);
            }
        }
    }

    /// Grants the rings and buffers, allocates the port, publishes.
    fn connect(&mut self, k: &mut Kernel, xs: &mut Xenstore) -> Result<(), &'static str> {
        let hs = self.hs.as_mut().ok_or("no handshake")?;
        let be = hs.cfg.backend_id;
        let gt = k.grant_table.as_ref().ok_or("no grant table")?;
        let err = |e: pages::PageError| {
            log::warn!("mgmt: vif pages: {e}");
            "cannot allocate and grant the vif's pages"
        };
        let tx_ring = pages::granted(gt, be, false).map_err(err)?;
        let rx_ring = pages::granted(gt, be, false).map_err(err)?;
        let rx = pages::granted_n(gt, be, false, RX_BUFFERS).map_err(err)?;
        let tx = pages::granted_n(gt, be, true, TX_BUFFERS).map_err(err)?;
        let nic = Netfront::new(tx_ring, rx_ring, rx, tx).map_err(|_| "bad buffer counts")?;
        let (tx_ref, rx_ref) = nic.ring_refs();
        let port = events::alloc_unbound(be).map_err(|_| "EVTCHNOP_alloc_unbound failed")?;
        if k.executor.watch(port).is_err() {
            let _ = events::close(port);
            return Err("the executor watches too many ports");
        }
        let _ = events::unmask(port);
        let mut dev = NetDevice::new(nic);
        // The rx buffers are visible before the backend connects.
        dev.nic.push();
        let now_ms = k.now_ns() / 1_000_000;
        let limits = Limits { port: PORT, ..Limits::default() };
        let mac = hs.cfg.mac;
        let server = Server::new(&mut dev, mac, self.ip, self.prefix, limits, now_ms, k.now_ns());
        hs.publish(xs, tx_ref, rx_ref, port).map_err(|e| {
            log::warn!("mgmt: publishing the vif: {e}");
            "the vif handshake transaction failed"
        })?;
        self.state = State::Up(Box::new(Up { dev, server, port, logged_bad: 0 }));
        Ok(())
    }

    fn listen(&self) {
        let mut features = heapless::String::<160>::new();
        for (name, v) in FEATURES {
            let _ = write!(features, "{}{name}={v}", if features.is_empty() { "" } else { " " });
        }
        log::info!("mgmt: vif connected ({features})");
        let (used, free, _) = unikernel::arch::x86_64::alloc::stats();
        let a = self.ip;
        log::info!(
            "mgmt: listening on {}.{}.{}.{}:{PORT}; heap {} KiB used, {} KiB free",
            a[0],
            a[1],
            a[2],
            a[3],
            used / 1024,
            free / 1024
        );
    }

    /// Closes the vif and gives its pages back (the endpoint stays off).
    fn tear_down(&mut self, k: &mut Kernel, xs: &mut Xenstore) {
        if let Some(mut hs) = self.hs.take() {
            let _ = hs.close(xs);
        }
        if let State::Up(up) = core::mem::replace(&mut self.state, State::Off) {
            k.executor.unwatch(up.port);
            let _ = events::close(up.port);
            if let Some(gt) = k.grant_table.as_ref() {
                let leaked = pages::release(gt, up.dev.nic.into_buffers());
                if leaked > 0 {
                    log::warn!("mgmt: {leaked} vif pages are still mapped by the backend: kept");
                }
            }
        }
        self.pending = false;
    }
}

fn net_figures(dev: &NetDevice<NetPage>) -> NetFigures {
    let s = dev.nic.stats();
    NetFigures {
        rx_packets: s.rx_packets,
        rx_bytes: s.rx_bytes,
        tx_packets: s.tx_packets,
        tx_bytes: s.tx_bytes,
        backend_errors: s.rx_errors + s.tx_errors,
        backend_protocol_errors: s.bad_answers,
        tx_dropped: dev.tx_dropped + s.tx_no_buffer,
    }
}

// Every device gpu-dom serves has its place in a snapshot.
const _: () = assert!(mgmt_endpoint::metrics::MAX_GUESTS >= backend::service::MAX_DEVICES);

/// Copies what `/metrics` shows out of the service.
fn fill(s: &mut Snapshot, svc: &VgpuService, net: NetFigures, uptime_ns: u64) {
    let engine = svc.engine();
    s.uptime_ns = uptime_ns;
    s.net = net;
    let (used, free, _) = unikernel::arch::x86_64::alloc::stats();
    (s.heap_used_bytes, s.heap_free_bytes) = (used, free);
    s.pools.clear();
    for (pool, u) in engine.pools() {
        let p = PoolFigures {
            name: pool.name(),
            capacity: u.capacity,
            reserved: u.reserved,
            used: u.used,
        };
        let _ = s.pools.push(p);
    }
    let calls = engine.mapper().hypercalls();
    s.hypercalls.clear();
    let _ = s.hypercalls.push(("map_grant_ref", calls.map));
    let _ = s.hypercalls.push(("unmap_grant_ref", calls.unmap));
    s.guests.clear();
    for dev in svc.devices() {
        let mut g = GuestFigures {
            domid: dev.fe.0,
            devid: dev.devid,
            connected: dev.live.is_some(),
            ring_errors: dev.counters.ring_errors,
            connects: dev.counters.connects,
            disconnects: dev.counters.disconnects,
            ..Default::default()
        };
        let _ = g.name.push_str(&dev.guest_name);
        let r = dev.requests();
        g.batches = r.batches;
        for (i, n) in r.by_result.iter().enumerate() {
            if *n > 0 || i == 0 {
                let _ = g.results.push((backend::result_name(i), *n));
            }
        }
        if let (Some(st), Some(l)) = (engine.guest_stats(dev.fe), engine.guest_limits(dev.fe)) {
            g.ggtt_entries = st.ggtt_entries as u64;
            g.ppgtt_entries = st.ppgtt_entries as u64;
            g.grants_mapped = st.pages as u64;
            g.refusals = st.refused;
            for pool in gtt::Pool::ALL {
                let used = match pool {
                    gtt::Pool::Devices => 1,
                    gtt::Pool::GgttEntries => st.ggtt_entries as u64,
                    gtt::Pool::Pages => st.pages as u64,
                    gtt::Pool::TablePages => st.table_pages as u64,
                    gtt::Pool::Contexts => st.contexts as u64,
                };
                let _ = g.limits.push((pool.name(), pool.of(&l), used));
            }
        }
        if s.guests.push(g).is_err() {
            break;
        }
    }
}
