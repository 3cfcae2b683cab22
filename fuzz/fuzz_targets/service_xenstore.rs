//! The backend `Service` under a hostile frontend's xenstore values, state
//! orders and event orders, on the model xenstored, with a good guest
//! attached beside it.
//!
//! gpu-dom (domid 1) runs the real `Service` over a real `xenbus::Client`;
//! the toolstack attached both guests with the real `vgpu attach`; the good
//! guest (domid 5) completed the handshake. Bytes then become actions of the
//! hostile guest (domid 7) and of the event loop:
//!
//! - the hostile guest writes `version`, `ring-ref`, `event-channel` or
//!   `state` (values: empty, not a number, 2^32, 0, a ring never granted,
//!   granted read-only, granted to another domain, the real ring; ports
//!   never allocated or allocated for another domain; raw bytes), removes
//!   them or its whole directory, fills its ring with raw slots, runs its
//!   producer index away, or dies; the toolstack takes its device offline;
//! - watch events are delivered as gpu-dom's loop does (rounds of queued
//!   events, one rescan per round), one at a time, or lost (a rescan);
//!   the hostile guest's port is notified.
//!
//! Up to 32 actions per input; after every action:
//! - the model's isolation checker passes, given whom the engine serves
//!   (a guest it does not serve is gone: nothing of it may remain);
//! - the good guest is still served: its device is Connected in xenstore
//!   and a request on its ring is answered `OK` (checked after the actions
//!   that run service code: only they can change it);
//! - the watch events gpu-dom processed stay within a budget of 16 per
//!   write by another domain (the hostile guest, the toolstack): gpu-dom's
//!   own writes must not keep firing its own watches (a device refused for
//!   a frontend value must not be probed again until the frontend changes
//!   something). At the end, the events still queued are delivered under
//!   the same budget, and the good guest's mapping still reads back its
//!   bytes through the GPU.
//!
//! With `SERVICE_XENSTORE_TRACE` set, an input that passes prints what
//! happened to the devices.
//!
//! The platform and the store are built once per process and restored for
//! every input; the service and its engine are built anew (`start`, then the
//! good guest's handshake), so every input starts from the same state.
#![no_main]

use std::cell::RefCell;

use backend::service::Rescan;
use backend::{Backend, Change, Service};
use gpu_dom_tests::channels::{EventChannels, StrictConnector};
use gpu_dom_tests::{engine_views, pattern, GuestRingPage, ModelCpu, BACKEND};
use gpuif::ring::FrontRing;
use gpuif::wire::Entry;
use gpuif::{Op, RequestBuilder, Response, Slot, Status, PAGE_SIZE, SLOT_SIZE};
use gtt::{Config, DomId, Engine, GrantRef};
use libfuzzer_sys::fuzz_target;
use platform_model::{check_isolation, Gfn, Guest, Hit, ModelGpu, ModelMapper, Platform};
use platform_model::{PlatformConfig, Space};
use xenbus::Client;
use xenstored_model::tree::Op as XsOp;
use xenstored_model::{Conn, Xenstored};

/// gpu-dom's service on the model, binding only ports Xen would bind.
type ModelService = Service<ModelMapper, ModelGpu, ModelCpu, StrictConnector>;

const GOOD: DomId = DomId(5);
const HOSTILE: DomId = DomId(7);
/// The unbound ports the guests allocated: the good guest's for gpu-dom;
/// the hostile guest's for gpu-dom, and one for the good guest.
const GOOD_PORT: u32 = 9;
const HOSTILE_PORT: u32 = 11;
const HOSTILE_PORT_OTHER: u32 = 12;
/// Watch events (and rescans) each write by another domain may cost
/// gpu-dom: the write's own event, and what gpu-dom's reaction to it fires
/// (a handshake step takes 2). Past the budget, gpu-dom is reacting to its
/// own writes.
const EVENTS_PER_WRITE: u64 = 16;
/// Actions per input. Most actions are one or two bytes and a rescan costs
/// some forty xenstore requests: without a cap, the fuzzer's longer inputs
/// are hundreds of rescans, and depth comes from orders, not repetition.
const MAX_ACTIONS: usize = 32;

const HOSTILE_FE: &str = "/local/domain/7/device/vgpu/0";
const GOOD_BE: &str = "/local/domain/1/backend/vgpu/5/0";

/// One guest's side: its memory, its ring, its grants.
#[derive(Clone)]
struct Front {
    guest: Guest,
    ring: GuestRingPage,
    front: FrontRing,
    next_id: u64,
}

impl Front {
    fn new(platform: &Platform, dom: DomId) -> Front {
        let guest = platform.create_guest(dom, 8).expect("guest memory");
        let gfn = guest.alloc_pages(1).expect("ring page")[0];
        let mut ring = GuestRingPage { guest: guest.clone(), gfn };
        let front = FrontRing::init(&mut ring);
        Front { guest, ring, front, next_id: 1 }
    }

    fn grant_ring(&self, to: DomId, readonly: bool) -> GrantRef {
        self.guest.grant(self.ring.gfn, to, readonly).expect("grant")
    }

    fn send(&mut self, slot: &Slot) {
        if self.front.put_request(&mut self.ring, slot).is_ok() {
            self.front.push_requests(&mut self.ring);
        }
    }
}

/// Everything built once, and the state every input starts from.
struct Base {
    platform: Platform,
    xs: Xenstored,
    platform_start: platform_model::Snapshot,
    xs_start: xenstored_model::Snapshot,
    channels: EventChannels,
    cfg: Config,
    good: Front,
    hostile: Front,
    /// The good guest's data page: mapped at GGTT entry 0 of its slice.
    good_page: (Gfn, GrantRef),
    /// The hostile guest's ring: granted writable to gpu-dom, read-only to
    /// gpu-dom, and to the good guest (grant refs 8, 9, 10).
    hostile_ring: [GrantRef; 3],
}

fn vgpu(xs: &Xenstored, line: &str) {
    let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let xs2 = xs.clone();
    let code = vgpu::main_with(
        &args,
        move || Ok(vgpu::Store::new(Client::new(xs2.connect(0)))),
        &mut out,
        &mut err,
    );
    assert_eq!(code, 0, "vgpu {line}: {}", String::from_utf8_lossy(&err));
}

fn base() -> Base {
    let pcfg = PlatformConfig {
        backend: BACKEND,
        backend_ram_pages: 64,
        table_pool_pages: 36,
        window_base_gfn: 0x10_0000,
        window_pages: 128,
        ggtt_entries: 1024,
    };
    // What the two guests' limits add up to (see the attach lines below).
    let cfg = Config {
        max_guests: 2,
        grant_slots: 16 + 48,
        table_pages: 4 + 32,
        contexts: 1 + 4,
        max_batch: gpuif::MAX_ENTRIES,
    };
    let platform = Platform::new(pcfg).expect("model configuration");
    let good = Front::new(&platform, GOOD);
    let hostile = Front::new(&platform, HOSTILE);
    let gfn = good.guest.alloc_pages(1).expect("data page")[0];
    let bytes: Vec<u8> = (0..PAGE_SIZE).map(|o| pattern(GOOD, 0, o)).collect();
    good.guest.write(gfn, 0, &bytes).expect("fill");
    let good_page = (gfn, good.guest.grant(gfn, BACKEND, false).expect("grant"));
    let good_ring = good.grant_ring(BACKEND, false);
    let hostile_ring = [
        hostile.grant_ring(BACKEND, false),
        hostile.grant_ring(BACKEND, true),
        hostile.grant_ring(GOOD, false),
    ];
    // Pages the hostile guest can name in requests (grant refs 11 to 13).
    for readonly in [false, false, true] {
        let gfn = hostile.guest.alloc_pages(1).expect("data page")[0];
        hostile.guest.grant(gfn, BACKEND, readonly).expect("grant");
    }
    let mut channels = EventChannels::new(100);
    channels.alloc_unbound(GOOD, GOOD_PORT, BACKEND);
    channels.alloc_unbound(HOSTILE, HOSTILE_PORT, BACKEND);
    channels.alloc_unbound(HOSTILE, HOSTILE_PORT_OTHER, GOOD);

    let xs = Xenstored::new();
    for (id, name) in [(0, "Domain-0"), (1, "gpu-dom"), (5, "good"), (7, "hostile")] {
        xs.add_domain(id, name);
    }
    xs.write(1, "/local/domain/1/data/vgpu-ggtt-entries", "1024");
    vgpu(&xs, "attach good --ggtt-entries 64 --contexts 1 --max-pages 16 --max-table-pages 4");
    vgpu(&xs, "attach hostile --ggtt-entries 64 --contexts 4 --max-pages 48 --max-table-pages 32");
    let fe = "/local/domain/5/device/vgpu/0";
    xs.write(5, &format!("{fe}/version"), "1");
    xs.write(5, &format!("{fe}/ring-ref"), &good_ring.0.to_string());
    xs.write(5, &format!("{fe}/event-channel"), &GOOD_PORT.to_string());
    xs.write(5, &format!("{fe}/state"), "3");
    Base {
        platform_start: platform.snapshot(),
        xs_start: xs.snapshot(),
        platform,
        xs,
        channels,
        cfg,
        good,
        hostile,
        good_page,
        hostile_ring,
    }
}

thread_local! {
    static BASE: RefCell<Base> = RefCell::new(base());
}

fuzz_target!(|data: &[u8]| BASE.with(|b| Run::start(&b.borrow()).play(data)));

/// One input's run: gpu-dom's service and client, the guests' sides.
struct Run<'a> {
    base: &'a Base,
    client: Client<Conn>,
    service: ModelService,
    changes: Vec<Change>,
    good: Front,
    hostile: Front,
    good_port: u32,
    /// Watch events gpu-dom may still process: [`EVENTS_PER_WRITE`] more
    /// for every write by the hostile guest or the toolstack.
    event_budget: u64,
    /// Events processed and writes made, for the report.
    events: u64,
    writes: u64,
    /// Service code ran since the good guest was last checked (only then
    /// can its service have changed).
    service_ran: bool,
    /// The last watch events delivered (path and token), for the report.
    recent: std::collections::VecDeque<String>,
}

/// A hostile value for `version`, `ring-ref` or `event-channel`.
fn value(base: &Base, v: u8) -> Vec<u8> {
    let s = match v % 16 {
        0 => String::new(),
        1 => "abc".into(),
        2 => "4294967296".into(),
        3 => "0".into(),
        4 => "1".into(),
        5 => "2".into(),
        6 => base.hostile_ring[0].0.to_string(),
        7 => "777".into(),
        8 => base.hostile_ring[1].0.to_string(),
        9 => base.hostile_ring[2].0.to_string(),
        10 => HOSTILE_PORT.to_string(),
        11 => HOSTILE_PORT_OTHER.to_string(),
        12 => GOOD_PORT.to_string(),
        13 => "-1".into(),
        14 => " 1".into(),
        _ => "01".into(),
    };
    s.into_bytes()
}

/// A hostile `state`: every xenbus state, and garbage.
fn state(v: u8) -> Vec<u8> {
    match v % 12 {
        s @ 0..=8 => s.to_string().into_bytes(),
        9 => Vec::new(),
        10 => b"Connected".to_vec(),
        _ => b"4294967299".to_vec(),
    }
}

const NODES: [&str; 4] = ["version", "ring-ref", "event-channel", "state"];

impl<'a> Run<'a> {
    /// Restores the platform and the store, starts a new service, and lets
    /// it finish the good guest's handshake.
    fn start(base: &'a Base) -> Run<'a> {
        base.platform.restore(&base.platform_start);
        base.xs.restore(&base.xs_start);
        let p = &base.platform;
        let engine = Engine::new(base.cfg, p.mapper(), p.gpu());
        let backend = Backend::new(engine, ModelCpu(p.clone()));
        let connector = StrictConnector::new(p.clone(), base.channels.clone());
        let mut run = Run {
            base,
            client: Client::new(base.xs.connect(1)),
            service: ModelService::new(backend, connector),
            changes: Vec::new(),
            good: base.good.clone(),
            hostile: base.hostile.clone(),
            good_port: 0,
            event_budget: 0,
            events: 0,
            writes: 0,
            service_ran: false,
            recent: Default::default(),
        };
        let mut changes = Vec::new();
        run.service.start(&mut run.client, &mut |c| changes.push(c)).expect("service start");
        run.changes = changes;
        run.event_budget = u64::MAX;
        run.drain();
        run.good_port = run.port_of(GOOD).expect("the good guest connects");
        // The good guest maps its page at entry 0 of its slice.
        let gref = base.good_page.1;
        let entry = Entry { addr: 0, gref: gref.0, read_only: false };
        run.good_call(Op::GgttMap, &[entry]);
        run.events = 0;
        run.event_budget = EVENTS_PER_WRITE;
        run
    }

    fn play(mut self, data: &[u8]) {
        let mut input = data;
        let mut actions = 0;
        while let Some((&tag, rest)) = input.split_first() {
            input = rest;
            actions += 1;
            if actions > MAX_ACTIONS {
                break;
            }
            let arg = |input: &mut &[u8]| -> u8 {
                let (&b, rest) = input.split_first().unwrap_or((&0, &[]));
                *input = rest;
                b
            };
            match tag % 16 {
                t @ 0..=2 => {
                    let v = value(self.base, arg(&mut input));
                    self.hostile_write(NODES[t as usize], &v);
                }
                3 => {
                    let v = state(arg(&mut input));
                    self.hostile_write("state", &v);
                }
                4 => {
                    // Raw bytes into one node.
                    let node = NODES[arg(&mut input) as usize % 4];
                    let n = (arg(&mut input) as usize % 24).min(input.len());
                    let (v, rest) = input.split_at(n);
                    input = rest;
                    self.hostile_write(node, v);
                }
                5 => {
                    let which = arg(&mut input) as usize % 5;
                    let path = match NODES.get(which) {
                        Some(node) => format!("{HOSTILE_FE}/{node}"),
                        None => HOSTILE_FE.to_string(),
                    };
                    self.hostile_op(XsOp::Rm(path));
                }
                6 => {
                    // The whole handshake at once, with chosen values.
                    let (v, r, e) = (arg(&mut input), arg(&mut input), arg(&mut input));
                    let (v, r, e) = (value(self.base, v), value(self.base, r), value(self.base, e));
                    self.hostile_write("version", &v);
                    self.hostile_write("ring-ref", &r);
                    self.hostile_write("event-channel", &e);
                    self.hostile_write("state", b"3");
                }
                7 | 8 => self.drain(),
                9 => self.deliver_one(),
                // The client dropped events (as if its queue had been
                // full): a rescan the input asks for, not one gpu-dom's
                // writes caused, so it costs no budget.
                10 => self.rescan_for_lost_events(),
                11 => self.notify_hostile(),
                12 => {
                    if input.len() < SLOT_SIZE {
                        break;
                    }
                    let mut slot = [0u8; SLOT_SIZE];
                    slot.copy_from_slice(&input[..SLOT_SIZE]);
                    input = &input[SLOT_SIZE..];
                    self.hostile.send(&slot);
                }
                13 => {
                    // A runaway producer index.
                    let by = u32::from(arg(&mut input)) * 3;
                    let mut idx = [0u8; 4];
                    let _ = self.hostile.guest.read(self.hostile.ring.gfn, 0, &mut idx);
                    let prod = u32::from_le_bytes(idx).wrapping_add(by);
                    let _ = self.hostile.guest.write(self.hostile.ring.gfn, 0, &prod.to_le_bytes());
                }
                14 => {
                    // The hostile guest dies: the toolstack removes its home.
                    let _ = self.base.xs.with(|m| m.rm(0, "/local/domain/7"));
                    self.base.platform.destroy_domain(HOSTILE);
                    self.external_write();
                }
                _ => {
                    // The toolstack takes the hostile device offline (the
                    // first step of `vgpu detach`).
                    let be = "/local/domain/1/backend/vgpu/7/0";
                    let _ = self.base.xs.with(|m| m.write(0, &format!("{be}/online"), "0"));
                    self.external_write();
                }
            }
            self.check_all();
        }
        self.drain();
        self.service_ran = true;
        self.check_all();
        if std::env::var_os("SERVICE_XENSTORE_TRACE").is_some() {
            // To see what an input did: every change, and the hostile's state.
            for c in &self.changes {
                eprintln!("{c:?}");
            }
            let rsp = self.hostile.front.take_response(&self.hostile.ring);
            eprintln!("hostile: first response {rsp:?}");
            eprintln!("{:#?}", self.base.xs.dump("/local/domain/1/backend/vgpu/7"));
        }
        let got = self.base.platform.gpu().gpu_read(Space::Ggtt, 0, 16);
        let want: Vec<u8> = (0..16).map(|o| pattern(GOOD, 0, o)).collect();
        assert_eq!(got, Ok(Hit::Mapped(want)), "the good guest's page no longer reads back");
    }

    fn hostile_write(&mut self, node: &str, v: &[u8]) {
        self.hostile_op(XsOp::Write(format!("{HOSTILE_FE}/{node}"), v.to_vec()));
    }

    /// A xenstore operation by the hostile guest (refused ones too).
    fn hostile_op(&mut self, op: XsOp) {
        let _ = self.base.xs.with(|m| m.apply(HOSTILE.0, op));
        self.external_write();
    }

    /// Another domain wrote: gpu-dom may process a few more events.
    fn external_write(&mut self) {
        self.writes += 1;
        self.event_budget = self.event_budget.saturating_add(EVENTS_PER_WRITE);
    }

    fn port_of(&self, fe: DomId) -> Option<u32> {
        self.changes.iter().rev().find_map(|c| match c {
            Change::Connected { fe: f, port, .. } if *f == fe => Some(*port),
            _ => None,
        })
    }

    /// One more watch event (or rescan: `what`) processed; panics past the
    /// bound.
    fn count_event(&mut self, what: String) {
        self.events += 1;
        if self.recent.len() == 8 {
            self.recent.pop_front();
        }
        self.recent.push_back(what);
        if self.event_budget == 0 {
            let last: Vec<&Change> = self.changes.iter().rev().take(6).collect();
            panic!(
                "watch loop: {} watch events for {} writes by other domains (at most \
                 {EVENTS_PER_WRITE} each): gpu-dom keeps firing its own watches; last events: \
                 {:?}; last changes, latest first: {last:?}",
                self.events, self.writes, self.recent
            );
        }
        self.event_budget -= 1;
    }

    fn on_watches(&mut self, rescan: &Rescan) {
        self.service_ran = true;
        let mut changes = Vec::new();
        self.service.on_watches(&mut self.client, rescan, &mut |c| changes.push(c));
        self.changes.extend(changes);
    }

    /// Delivers events as gpu-dom's loop does: every queued event, then
    /// one look at each device they named (or a full rescan), until a
    /// round finds none.
    fn drain(&mut self) {
        loop {
            let mut rescan = Rescan::default();
            while let Ok(Some(ev)) = self.client.poll_event() {
                self.count_event(format!("{} {}", ev.path(), ev.token()));
                rescan.add(ev.token(), ev.path());
            }
            if self.client.take_lost_events() > 0 {
                self.count_event("(lost events: rescan)".into());
                self.rescan_for_lost_events();
            } else if !rescan.is_empty() {
                self.on_watches(&rescan);
            } else {
                return;
            }
        }
    }

    /// Delivers the oldest event alone, as a test pump does.
    fn deliver_one(&mut self) {
        if let Ok(Some(ev)) = self.client.poll_event() {
            self.count_event(format!("{} {}", ev.path(), ev.token()));
            let mut rescan = Rescan::default();
            rescan.add(ev.token(), ev.path());
            self.on_watches(&rescan);
        }
    }

    fn rescan_for_lost_events(&mut self) {
        self.service_ran = true;
        let mut changes = Vec::new();
        self.service.on_lost_events(&mut self.client, &mut |c| changes.push(c));
        self.changes.extend(changes);
    }

    fn notify_hostile(&mut self) {
        if let Some(port) = self.port_of(HOSTILE) {
            self.service_ran = true;
            let mut changes = Vec::new();
            self.service.on_event(&mut self.client, port, &mut |c| changes.push(c));
            self.changes.extend(changes);
        }
    }

    /// The good guest remaps its page (a refcount only): must be answered OK.
    fn good_request(&mut self) {
        let gref = self.base.good_page.1;
        self.good_call(Op::GgttMap, &[Entry { addr: 0, gref: gref.0, read_only: false }]);
    }

    fn good_call(&mut self, op: Op, entries: &[Entry]) {
        let id = self.good.next_id;
        self.good.next_id += 1;
        let slot = RequestBuilder::inline(id, op, 0, entries).expect("inline request");
        self.good.send(&slot);
        let mut changes = Vec::new();
        self.service.on_event(&mut self.client, self.good_port, &mut |c| changes.push(c));
        self.changes.extend(changes);
        let rsp = self.good.front.take_response(&self.good.ring);
        let rsp = match rsp {
            Ok(Some(s)) => Response::parse(&s),
            other => panic!("the good guest's request {id} was not answered: {other:?}"),
        };
        assert_eq!((rsp.id, rsp.status), (id, Status::OK), "the good guest was refused: {rsp:?}");
    }

    /// The isolation checker; and, if service code ran since the last time,
    /// the good guest's device state and a request of its.
    fn check_all(&mut self) {
        let views = engine_views(self.service.engine(), &[GOOD, HOSTILE]);
        if let Err(p) = check_isolation(&self.base.platform, &views) {
            panic!("isolation broken: {p:?}");
        }
        if !std::mem::take(&mut self.service_ran) {
            return;
        }
        let state = self.base.xs.read(&format!("{GOOD_BE}/state"));
        assert_eq!(state.as_deref(), Some("4"), "the good guest's device is no longer Connected");
        self.good_request();
    }
}
