//! The one host world: dom0's toolstack, gpu-dom running the real backend
//! service (`backend::Service`), and guests, on the platform model (guest
//! memory and grant tables, gpu-dom's physmap and strict IOMMU, a GPU), the
//! model xenstored (`xenstored-model`: permissions and transactions as C
//! xenstored) and Xen's event channels ([`crate::channels`]).
//!
//! A guest runs the real `frontend` crate on a [`TestPlatform`]
//! ([`frontend`]); a hostile test may instead write a guest's xenstore
//! values by hand (`w.xenstored.write(domid, ..)`, as that guest). The
//! toolstack is the real `vgpu` ([`World::vgpu`]) or its writes by hand
//! ([`World::attach`] and the others in `toolstack.rs`).
//!
//! Time is a fake clock: the frontend's platform steps the backend whenever
//! the frontend waits, and the clock jumps to the deadline (or the next
//! [`World::later`] action) when nothing is left to do, so timeouts take no
//! time.
//!
//! How a test gets a world:
//! - `World::new(serve)` gives an `Rc<RefCell<World>>` of the default
//!   sizes, what [`frontend`] takes to put a real frontend in a guest
//!   (`frontend(&world, domid, pages, options)`); gpu-dom serves at once if
//!   `serve`, else it is up but has not started its service;
//! - `World::with_config(config)` the same with other sizes or guests
//!   ([`WorldConfig::two_guests`] is the toolstack tests' setting: `vgpu
//!   attach guest1` works there);
//! - `World::build(config)` a plain `World`, for tests without a real
//!   frontend that drive the service by hand ([`World::pump`],
//!   [`World::on_event`]).

mod guest;
mod toolstack;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use backend::{Backend, Change, Service};
use gtt::{Config, DomId, Engine};
use platform_model::{ModelGpu, ModelMapper, Platform as Model, PlatformConfig};
use xenbus::Client;
use xenstored_model::{Conn, Xenstored};

use crate::channels::{EventChannels, StrictConnector};
use crate::ModelCpu;

pub use guest::{frontend, TestFrontend, TestPlatform};

/// gpu-dom's domain id (the first one: a restarted gpu-dom gets another).
pub const BACKEND: u16 = 1;
/// Watch events and port services [`World::step`] allows before it calls
/// the backend stuck.
pub const MAX_WORK: u32 = 5000;
/// `guest1` of [`WorldConfig::two_guests`] (`guest2` is domain 7).
pub const GUEST: DomId = DomId(5);
/// The first local port Xen gives gpu-dom's bindings in this world.
pub const FIRST_LOCAL_PORT: u32 = 100;

/// The backend service on the model.
pub type ModelService = Service<ModelMapper, ModelGpu, ModelCpu, StrictConnector>;

/// A condition on the world, checked each time the backend would run.
pub type Trigger = Box<dyn Fn(&World) -> bool>;

/// Something done to the world at a given time.
pub type Action = Box<dyn FnOnce(&mut World)>;

/// The sizes of a world and who is there from the start.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// gpu-dom serves from the start (else it is up but not serving).
    pub serve: bool,
    /// Pages of gpu-dom's grant window.
    pub window_pages: u32,
    /// gpu-dom's engine sizes (`table_pages` 0: the model's whole pool).
    pub engine: Config,
    /// `DebugReadback` answered.
    pub debug_readback: bool,
    /// Guests with a home in xenstore from the start (`vgpu attach` finds
    /// them by name), as `(domid, name)`.
    pub guests: Vec<(u16, &'static str)>,
}

impl Default for WorldConfig {
    /// The frontend tests' world: room for several reconnects' grants.
    fn default() -> Self {
        WorldConfig {
            serve: true,
            window_pages: 8192,
            engine: Config {
                max_guests: 8,
                grant_slots: 8000,
                table_pages: 0,
                contexts: 32,
                max_batch: gpuif::MAX_ENTRIES,
            },
            debug_readback: true,
            guests: Vec::new(),
        }
    }
}

impl WorldConfig {
    /// The toolstack tests' world: gpu-dom with 4000 grant slots, 256
    /// table pages and 16 contexts, and two guests, `guest1` (domid 5) and
    /// `guest2` (domid 7), for `vgpu attach`.
    pub fn two_guests() -> WorldConfig {
        WorldConfig {
            serve: true,
            window_pages: 4096,
            engine: Config {
                max_guests: 8,
                grant_slots: 4000,
                table_pages: 256,
                contexts: 16,
                max_batch: 2048,
            },
            debug_readback: false,
            guests: vec![(5, "guest1"), (7, "guest2")],
        }
    }
}

/// Everything but the frontends.
pub struct World {
    pub model: Model,
    pub xenstored: Xenstored,
    /// gpu-dom's service while it runs.
    pub service: Option<ModelService>,
    /// gpu-dom's xenstore connection.
    pub backend_xs: Client<Conn>,
    /// Xen's event channels, shared by the guests and gpu-dom's connector.
    pub channels: Rc<RefCell<EventChannels>>,
    pub clock: Rc<Cell<u64>>,
    /// Every change the service reported, in order.
    pub changes: Vec<Change>,
    /// When the clock reaches this, gpu-dom shuts down (all devices Closed).
    pub shutdown_at: Option<u64>,
    /// gpu-dom's domain id now.
    pub backend: u16,
    /// When this holds, gpu-dom dies (`xl destroy`), before serving anything.
    pub kill_if: Option<Trigger>,
    /// Limits each guest was attached with (what `vgpu restore` keeps).
    pub limits: BTreeMap<u16, [u32; 3]>,
    /// What happens when the clock reaches a time (the toolstack's doing).
    pub later: Vec<(u64, Action)>,
    config: WorldConfig,
}

impl World {
    /// The frontend tests' world ([`WorldConfig::default`]), with gpu-dom
    /// serving (`serve`) or not, shared with the frontends' platforms.
    pub fn new(serve: bool) -> Rc<RefCell<World>> {
        Rc::new(RefCell::new(World::build(WorldConfig { serve, ..WorldConfig::default() })))
    }

    /// A world as `config` says, shared with the frontends' platforms.
    pub fn with_config(config: WorldConfig) -> Rc<RefCell<World>> {
        Rc::new(RefCell::new(World::build(config)))
    }

    /// A world as `config` says.
    pub fn build(config: WorldConfig) -> World {
        let pcfg = PlatformConfig {
            backend: DomId(BACKEND),
            window_pages: config.window_pages,
            ..PlatformConfig::default()
        };
        let model = Model::new(pcfg).expect("model config");
        let xenstored = Xenstored::new();
        for (id, name) in [(0, "Domain-0"), (BACKEND, "gpu-dom")] {
            xenstored.add_domain(id, name);
        }
        for &(id, name) in &config.guests {
            xenstored.add_domain(id, name);
        }
        let backend_xs = Client::new(xenstored.connect(BACKEND));
        let mut world = World {
            model,
            xenstored,
            service: None,
            backend_xs,
            channels: Rc::new(RefCell::new(EventChannels::new(FIRST_LOCAL_PORT))),
            clock: Rc::new(Cell::new(0)),
            changes: Vec::new(),
            shutdown_at: None,
            backend: BACKEND,
            kill_if: None,
            limits: BTreeMap::new(),
            later: Vec::new(),
            config,
        };
        if world.config.serve {
            world.serve();
        }
        world
    }

    fn engine_config(&self) -> Config {
        let mut cfg = self.config.engine;
        if cfg.table_pages == 0 {
            cfg.table_pages = self.model.config().table_pool_pages as usize;
        }
        cfg
    }

    /// gpu-dom (domain `self.backend`) starts serving: a fresh engine.
    fn serve(&mut self) {
        let engine = Engine::new(self.engine_config(), self.model.mapper(), self.model.gpu());
        let mut backend = Backend::new(engine, ModelCpu(self.model.clone()));
        backend.enable_debug_readback(self.config.debug_readback);
        let connector = StrictConnector::shared(self.model.clone(), self.channels.clone());
        let mut s = Service::new(backend, connector);
        let changes = &mut self.changes;
        s.start(&mut self.backend_xs, &mut |c| changes.push(c)).expect("service starts");
        self.service = Some(s);
    }

    /// gpu-dom's running service.
    ///
    /// # Panics
    /// If gpu-dom is dead or has not started serving.
    pub fn service(&mut self) -> &mut ModelService {
        self.service.as_mut().expect("gpu-dom is not serving in this world")
    }

    /// gpu-dom dies: nothing of it runs any more, Xen releases its grant
    /// mappings (unless `preserved`: a crashed domain kept for debugging),
    /// its event channels close, and the toolstack removes its home (which
    /// fires the guests' watches, and `@releaseDomain`).
    pub fn kill_backend(&mut self, preserved: bool) {
        self.service = None;
        self.model.kill_backend(preserved);
        self.channels.borrow_mut().backend_died(DomId(self.backend));
        if !preserved {
            // The model fires `@releaseDomain` when a domain's home goes.
            self.toolstack_rm(&format!("/local/domain/{}", self.backend));
        }
    }

    /// `xl destroy` of a gpu-dom that `kill_backend(true)` kept.
    pub fn reap_backend(&mut self) {
        self.model.reap_backend();
        self.toolstack_rm(&format!("/local/domain/{}", self.backend));
    }

    /// A new gpu-dom, domain `dom`, starts and serves (what is under its
    /// `backend/vgpu` when it starts, and what the toolstack adds).
    pub fn start_backend(&mut self, dom: u16) {
        self.model.start_backend(DomId(dom)).expect("a fresh domain id");
        self.backend = dom;
        self.xenstored.add_domain(dom, "gpu-dom");
        self.backend_xs = Client::new(self.xenstored.connect(dom));
        self.serve();
    }

    /// Runs the backend until it has nothing to do; returns whether it did
    /// anything.
    pub fn step(&mut self) -> bool {
        if self.shutdown_at.is_some_and(|t| self.clock.get() >= t) {
            self.shutdown_at = None;
            self.shutdown_backend();
        }
        if self.kill_if.as_ref().is_some_and(|f| f(self)) {
            self.kill_if = None;
            self.kill_backend(false);
        }
        let now = self.clock.get();
        let (due, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.later).into_iter().partition(|(t, _)| *t <= now);
        self.later = rest;
        for (_, act) in due {
            act(self);
        }
        let Some(service) = self.service.as_mut() else { return false };
        let mut progressed = false;
        let mut work = 0u32;
        loop {
            let mut did = false;
            while let Ok(Some(ev)) = self.backend_xs.poll_event() {
                let (token, path) = (ev.token().to_string(), ev.path().to_string());
                service.on_watch_event(&mut self.backend_xs, &token, &path, &mut |c| {
                    self.changes.push(c)
                });
                did = true;
                work += 1;
                // A backend that keeps finding work with nobody else acting
                // is in a loop with itself (e.g. reacting to its own writes).
                assert!(work < MAX_WORK, "the backend did not settle after {MAX_WORK} watch events: {} changes, the last {:?}", self.changes.len(), self.changes.last());
            }
            let pending = self.channels.borrow_mut().take_backend_pending();
            for port in pending {
                while service.on_event(&mut self.backend_xs, port, &mut |c| self.changes.push(c)) {}
                did = true;
            }
            if !did {
                return progressed;
            }
            progressed = true;
        }
    }

    /// gpu-dom shuts down: every device revoked and Closed.
    pub fn shutdown_backend(&mut self) {
        if let Some(s) = self.service.as_mut() {
            s.shutdown(&mut self.backend_xs, &mut |c| self.changes.push(c));
        }
    }

    /// Delivers pending watch events to the service, as gpu-dom's loop
    /// does (each looks again only at the device its path names), until
    /// none is left. The service must reach that fixed point:
    /// its own writes fire its watches, and a step that writes every time
    /// would loop forever under a real xenstored.
    pub fn pump(&mut self) {
        assert!(
            self.pump_at_most(50).is_some(),
            "watch loop: the service keeps firing its own watches"
        );
    }

    /// Delivers at most `max` watch events; returns how many it took to
    /// reach the fixed point, or `None` if there was none within `max`.
    pub fn pump_at_most(&mut self, max: usize) -> Option<usize> {
        let service = self.service.as_mut().expect("gpu-dom is not serving in this world");
        for n in 0..max {
            match self.backend_xs.poll_event() {
                Ok(Some(ev)) => {
                    let (token, path) = (ev.token().to_string(), ev.path().to_string());
                    service.on_watch_event(&mut self.backend_xs, &token, &path, &mut |c| {
                        self.changes.push(c)
                    });
                }
                _ => return Some(n),
            }
        }
        None
    }

    /// The service handles one event on its local `port` (one turn);
    /// returns whether it has more to do.
    pub fn on_event(&mut self, port: u32) -> bool {
        let service = self.service.as_mut().expect("gpu-dom is not serving in this world");
        service.on_event(&mut self.backend_xs, port, &mut |c| self.changes.push(c))
    }

    /// How many `Refused` changes device `fe`/0 had so far.
    pub fn refusals(&self, fe: DomId) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c, Change::Refused { fe: f, .. } if *f == fe))
            .count()
    }

    /// gpu-dom's local port for `fe`'s device, from its last `Connected`.
    ///
    /// # Panics
    /// If the device never connected.
    pub fn port_of(&self, fe: DomId) -> u32 {
        self.changes
            .iter()
            .rev()
            .find_map(|c| match c {
                Change::Connected { fe: f, port, .. } if *f == fe => Some(*port),
                _ => None,
            })
            .expect("connected")
    }
}
