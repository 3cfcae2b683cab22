//! The backend service on the host, as dom0 and gpu-dom see it: the real
//! toolstack code (`vgpu` as a library, as dom0), the real `Service` (as
//! gpu-dom, domid 1) on the model xenstored, frontends written by hand in
//! the guests' memory, and the platform model underneath (grant tables,
//! strict IOMMU, model GPU). Used by `tests/service.rs`,
//! `tests/availability.rs` and the fuzz targets.

use crate::{BusRingPage, GuestRingPage, ModelCpu, ModelRings, BACKEND};
use backend::device::Connector;
use backend::{Backend, Change, Service};

use gpuif::ring::FrontRing;
use gpuif::Response;
use gtt::{Config, DomId, Engine};
use platform_model::{Guest, ModelGpu, ModelMapper, Platform, PlatformConfig};
use xenbus::Client;
use xenstored_model::{Conn, Xenstored};

pub const GUEST: DomId = DomId(5);

/// Ring mapping and event channels on the model.
pub struct ModelConnector {
    pub platform: Platform,
    pub rings: ModelRings,
    pub next_port: u32,
    /// Every local port notified, in order.
    pub notified: Vec<u32>,
}

impl Connector for ModelConnector {
    type Ring = BusRingPage;
    fn map_ring(&mut self, dom: DomId, gref: u32) -> Result<BusRingPage, i16> {
        self.rings.map(dom, gref)
    }

    fn unmap_ring(&mut self, _: DomId, ring: BusRingPage) {
        assert!(self.rings.unmap(ring), "a ring we mapped");
    }

    fn bind(&mut self, _: DomId, remote: u32) -> Result<u32, i32> {
        // Port 0 is never an unbound port, and 2-level event channels end
        // at 4095 (`xen/include/public/event_channel.h`): Xen says EINVAL.
        if remote == 0 || remote > 4095 {
            return Err(-22);
        }
        self.next_port += 1;
        Ok(self.next_port)
    }
    fn unbind(&mut self, _: u32) {}
    fn notify(&mut self, port: u32) {
        self.notified.push(port);
    }
}

pub type TestService = Service<ModelMapper, ModelGpu, ModelCpu, ModelConnector>;

/// dom0 (the toolstack), gpu-dom (domid 1) running the service, and two
/// guests (`guest1` = domid 5, `guest2` = domid 7) on one model xenstored.
pub struct World {
    pub xs: Xenstored,
    pub platform: Platform,
    pub service: TestService,
    /// gpu-dom's xenstore connection.
    pub client: Client<Conn>,
    /// Every change the service reported, in order.
    pub changes: Vec<Change>,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        World::with_guests(0)
    }

    /// [`World::new`] plus `n` more guests, domids `10..10 + n`, named
    /// `g<domid>` ([`World::many_guest`]); the engine serves them all.
    pub fn with_guests(n: u16) -> World {
        let xs = Xenstored::new();
        for (id, name) in [(0, "Domain-0"), (1, "gpu-dom"), (5, "guest1"), (7, "guest2")] {
            xs.add_domain(id, name);
        }
        for id in 10..10 + n {
            xs.add_domain(id, &format!("g{id}"));
        }
        let pcfg =
            PlatformConfig { backend: BACKEND, window_pages: 4096, ..PlatformConfig::default() };
        let platform = Platform::new(pcfg).unwrap();
        let cfg = Config {
            max_guests: 8 + n,
            grant_slots: 4000,
            table_pages: 256,
            contexts: 16 + n as usize,
            max_batch: 2048,
        };
        let engine = Engine::new(cfg, platform.mapper(), platform.gpu());
        let backend = Backend::new(engine, ModelCpu(platform.clone()));
        let connector = ModelConnector {
            platform: platform.clone(),
            rings: ModelRings::new(platform.clone()),
            next_port: 100,
            notified: Vec::new(),
        };
        let mut w = World {
            client: Client::new(xs.connect(1)),
            xs,
            service: Service::new(backend, connector),
            platform,
            changes: Vec::new(),
        };
        let mut changes = Vec::new();
        w.service.start(&mut w.client, &mut |c| changes.push(c)).unwrap();
        w.changes = changes;
        w
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
        for n in 0..max {
            match self.client.poll_event() {
                Ok(Some(ev)) => {
                    let (token, path) = (ev.token().to_string(), ev.path().to_string());
                    let mut changes = Vec::new();
                    self.service
                        .on_watch_event(&mut self.client, &token, &path, &mut |c| changes.push(c));
                    self.changes.extend(changes);
                }
                _ => return Some(n),
            }
        }
        None
    }

    /// How many `Refused` changes device `fe`/0 had so far.
    pub fn refusals(&self, fe: DomId) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c, Change::Refused { fe: f, .. } if *f == fe))
            .count()
    }

    /// `vgpu <line>` as dom0.
    pub fn vgpu(&self, line: &str) -> (u8, String, String) {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let xs = self.xs.clone();
        let code = vgpu::main_with(
            &args,
            move || Ok(vgpu::Store::new(Client::new(xs.connect(0)))),
            &mut out,
            &mut err,
        );
        (code, String::from_utf8_lossy(&out).into(), String::from_utf8_lossy(&err).into())
    }

    /// The name of guest `id` of [`World::with_guests`].
    pub fn many_guest(id: u16) -> String {
        format!("g{id}")
    }

    pub fn be_state(&self, fe: u16) -> Option<String> {
        self.xs.read(&format!("/local/domain/1/backend/vgpu/{fe}/0/state"))
    }
}

/// The guest's side: a ring in its memory, granted, and the handshake keys.
pub struct Front {
    pub guest: Guest,
    pub ring: GuestRingPage,
    pub front: FrontRing,
    pub next_id: u64,
}

impl Front {
    pub fn connect(w: &mut World, dom: DomId) -> Front {
        let guest = w.platform.create_guest(dom, 64).unwrap();
        let gfn = guest.alloc_pages(1).unwrap()[0];
        let mut ring = GuestRingPage { guest: guest.clone(), gfn };
        let front = FrontRing::init(&mut ring);
        let gref = guest.grant(gfn, BACKEND, false).unwrap();
        let fe = format!("/local/domain/{}/device/vgpu/0", dom.0);
        w.xs.write(dom.0, &format!("{fe}/version"), "1");
        w.xs.write(dom.0, &format!("{fe}/ring-ref"), &gref.0.to_string());
        w.xs.write(dom.0, &format!("{fe}/event-channel"), "9");
        w.xs.write(dom.0, &format!("{fe}/state"), "3");
        Front { guest, ring, front, next_id: 1 }
    }

    pub fn send(&mut self, slot: &gpuif::Slot) {
        self.front.put_request(&mut self.ring, slot).unwrap();
        self.front.push_requests(&mut self.ring);
    }

    pub fn response(&mut self) -> Option<Response> {
        self.front.take_response(&self.ring).unwrap().map(|s| Response::parse(&s))
    }
}

pub fn port_of(w: &World, fe: DomId) -> u32 {
    w.changes
        .iter()
        .rev()
        .find_map(|c| match c {
            Change::Connected { fe: f, port, .. } if *f == fe => Some(*port),
            _ => None,
        })
        .expect("connected")
}
