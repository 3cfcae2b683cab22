//! The host world the frontend runs in: the platform model (a guest's
//! memory and grant table, gpu-dom's physmap and IOMMU, a GPU), the real
//! backend service (`backend::Service`) with a model connector, an
//! in-memory xenstored, and event channels. The frontend's platform steps
//! the backend whenever the frontend waits, and a fake clock jumps to the
//! deadline when nothing is left to do, so timeouts take no time.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use backend::{Backend, Change, Connector, Service};
use frontend::{EndAccessError, Frontend, Granted, Options, PageId, Platform};
use gpu_dom_tests::{BusRingPage, ModelCpu};
use gpuif::ring::SharedPage;
use gtt::platform::{testing_cap, GrantMapRequest, GrantMapper, GrantMapping};
use gtt::{Access, Config, DomId, Engine, GrantRef};
use platform_model::{Gfn, Guest, ModelGpu, ModelMapper, Platform as Model, PlatformConfig};
use xenbus::{Access as XsAccess, Client, Perm};

use super::xenstored::{Xenstored, XsConn};

/// gpu-dom's domain id (the first one: a restarted gpu-dom gets another).
pub const BACKEND: u16 = 1;
/// Watch events and port services [`World::step`] allows before it calls
/// the backend stuck.
pub const MAX_WORK: u32 = 5000;

struct Chan {
    fe_dom: u16,
    fe_port: u32,
    remote: u16,
    be_port: Option<u32>,
    fe_pending: bool,
    be_pending: bool,
    closed: bool,
}

/// Event channels between frontends and the backend.
#[derive(Default)]
pub struct Evtchns {
    chans: Vec<Chan>,
}

impl Evtchns {
    fn by_fe(&mut self, dom: u16, port: u32) -> Option<&mut Chan> {
        self.chans.iter_mut().find(|c| c.fe_dom == dom && c.fe_port == port && !c.closed)
    }
    fn by_be(&mut self, port: u32) -> Option<&mut Chan> {
        self.chans.iter_mut().find(|c| c.be_port == Some(port) && !c.closed)
    }
}

/// The backend's mapping of a frontend's ring.
pub struct MappedRing {
    page: BusRingPage,
    mapping: GrantMapping,
}

impl SharedPage for MappedRing {
    fn read_u32(&self, offset: usize) -> u32 {
        self.page.read_u32(offset)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.page.write_u32(offset, value)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.page.read(offset, buf)
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.page.write(offset, data)
    }
    fn fence(&self) {}
}

/// The backend's ring mapping and event channels, on the model.
pub struct ModelConnector {
    model: Model,
    ev: Rc<RefCell<Evtchns>>,
    backend: u16,
}

impl Connector for ModelConnector {
    type Ring = MappedRing;

    fn map_ring(&mut self, dom: DomId, gref: u32) -> Result<MappedRing, i16> {
        let mut out = [Err(gtt::GrantMapError::WindowFull)];
        let req = GrantMapRequest { dom, gref: GrantRef(gref), access: Access::ReadWrite };
        self.model.mapper().map(&testing_cap(), &[req], &mut out);
        match out[0] {
            Ok(mapping) => Ok(MappedRing {
                page: BusRingPage {
                    platform: self.model.clone(),
                    bus: mapping.bus,
                    slot_reads: Cell::new(0),
                },
                mapping,
            }),
            Err(gtt::GrantMapError::Xen(st)) => Err(st),
            Err(_) => Err(-1),
        }
    }

    fn unmap_ring(&mut self, _dom: DomId, ring: MappedRing) {
        self.model.mapper().unmap(&testing_cap(), &[ring.mapping]);
    }

    fn bind(&mut self, dom: DomId, remote_port: u32) -> Result<u32, i32> {
        let mut ev = self.ev.borrow_mut();
        let n = ev.chans.len() as u32;
        let c = ev.by_fe(dom.0, remote_port).ok_or(-22)?;
        if c.remote != self.backend || c.be_port.is_some() {
            return Err(-22);
        }
        c.be_port = Some(100 + n + remote_port);
        Ok(100 + n + remote_port)
    }

    fn unbind(&mut self, local_port: u32) {
        if let Some(c) = self.ev.borrow_mut().by_be(local_port) {
            c.be_port = None;
        }
    }

    fn notify(&mut self, local_port: u32) {
        if let Some(c) = self.ev.borrow_mut().by_be(local_port) {
            c.fe_pending = true;
        }
    }
}

/// The backend service on the model.
pub type ModelService = Service<ModelMapper, ModelGpu, ModelCpu, ModelConnector>;

/// A condition on the world, checked each time the backend would run.
pub type Trigger = Box<dyn Fn(&World) -> bool>;

/// Everything but the frontends.
pub struct World {
    pub model: Model,
    pub xenstored: Xenstored,
    pub service: Option<ModelService>,
    pub backend_xs: Client<XsConn>,
    pub ev: Rc<RefCell<Evtchns>>,
    pub clock: Rc<Cell<u64>>,
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
}

/// Something done to the world at a given time.
pub type Action = Box<dyn FnOnce(&mut World)>;

impl World {
    /// A world with gpu-dom running (`serve`) or not.
    pub fn new(serve: bool) -> Rc<RefCell<World>> {
        let pcfg = PlatformConfig {
            backend: DomId(BACKEND),
            window_pages: 8192,
            ..PlatformConfig::default()
        };
        let model = Model::new(pcfg).expect("model config");
        let xenstored = Xenstored::default();
        let ev = Rc::new(RefCell::new(Evtchns::default()));
        let backend_xs = Client::new(xenstored.connect(BACKEND));
        let world = Rc::new(RefCell::new(World {
            model,
            xenstored,
            service: None,
            backend_xs,
            ev,
            clock: Rc::new(Cell::new(0)),
            changes: Vec::new(),
            shutdown_at: None,
            backend: BACKEND,
            kill_if: None,
            limits: BTreeMap::new(),
            later: Vec::new(),
        }));
        if serve {
            world.borrow_mut().serve();
        }
        world
    }

    fn engine_config(&self) -> Config {
        Config {
            max_guests: 8,
            grant_slots: 8000,
            table_pages: self.model.config().table_pool_pages as usize,
            contexts: 32,
            max_batch: gpuif::MAX_ENTRIES,
        }
    }

    /// gpu-dom (domain `self.backend`) starts serving: a fresh engine.
    fn serve(&mut self) {
        let engine = Engine::new(self.engine_config(), self.model.mapper(), self.model.gpu());
        let mut backend = Backend::new(engine, ModelCpu(self.model.clone()));
        backend.enable_debug_readback(true);
        let connector = ModelConnector {
            model: self.model.clone(),
            ev: self.ev.clone(),
            backend: self.backend,
        };
        let mut s = Service::new(backend, connector);
        let changes = &mut self.changes;
        s.start(&mut self.backend_xs, &mut |c| changes.push(c)).expect("service starts");
        self.service = Some(s);
    }

    /// gpu-dom dies: nothing of it runs any more, Xen releases its grant
    /// mappings (unless `preserved`: a crashed domain kept for debugging),
    /// its event channels close, and the toolstack removes its home (which
    /// fires the guests' watches) and `@releaseDomain` fires.
    pub fn kill_backend(&mut self, preserved: bool) {
        self.service = None;
        self.model.kill_backend(preserved);
        let old = self.backend;
        for c in self.ev.borrow_mut().chans.iter_mut().filter(|c| c.remote == old) {
            c.be_port = None;
        }
        if !preserved {
            self.xenstored.rm(&format!("/local/domain/{old}"));
            self.xenstored.fire_special("@releaseDomain");
        }
    }

    /// `xl destroy` of a gpu-dom that `kill_backend(true)` kept.
    pub fn reap_backend(&mut self) {
        self.model.reap_backend();
        self.xenstored.rm(&format!("/local/domain/{}", self.backend));
        self.xenstored.fire_special("@releaseDomain");
    }

    /// A new gpu-dom, domain `dom`, starts and serves (what is under its
    /// `backend/vgpu` when it starts, and what the toolstack adds).
    pub fn start_backend(&mut self, dom: u16) {
        self.model.start_backend(DomId(dom)).expect("a fresh domain id");
        self.backend = dom;
        self.backend_xs = Client::new(self.xenstored.connect(dom));
        self.serve();
    }

    /// What `vgpu detach --force` does for guest `fe`'s device 0.
    pub fn detach(&self, fe: u16) {
        self.xenstored.rm(&format!("/local/domain/{fe}/device/vgpu/0"));
        self.xenstored.rm(&format!("/local/domain/{}/backend/vgpu/{fe}/0", self.backend));
    }

    /// What `vgpu restore` does for guest `fe`: the device directory of the
    /// current backend, with the limits the guest was attached with, and
    /// the frontend's `backend`/`backend-id` pointing at it (one write each).
    pub fn restore(&self, fe: u16) {
        let [base, len, pages] = self.limits[&fe];
        self.write_device(fe, base, len, pages, false);
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
            let pending: Vec<u32> = {
                let mut e = self.ev.borrow_mut();
                e.chans
                    .iter_mut()
                    .filter(|c| c.be_pending && !c.closed)
                    .filter_map(|c| {
                        c.be_pending = false;
                        c.be_port
                    })
                    .collect()
            };
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

    /// What `vgpu attach` writes for guest `fe`, device 0.
    pub fn attach(&mut self, fe: u16, ggtt_base: u32, ggtt_len: u32, max_pages: u32) {
        self.limits.insert(fe, [ggtt_base, ggtt_len, max_pages]);
        self.write_device(fe, ggtt_base, ggtt_len, max_pages, true);
    }

    fn write_device(&self, fe: u16, ggtt_base: u32, ggtt_len: u32, max_pages: u32, new: bool) {
        let b = self.backend;
        let be = format!("/local/domain/{b}/backend/vgpu/{fe}/0");
        let fd = format!("/local/domain/{fe}/device/vgpu/0");
        let xs = &self.xenstored;
        let be_perms =
            [Perm { dom: b, access: XsAccess::None }, Perm { dom: fe, access: XsAccess::Read }];
        let fe_perms =
            [Perm { dom: fe, access: XsAccess::None }, Perm { dom: b, access: XsAccess::Read }];
        let dom0 = [
            Perm { dom: 0, access: XsAccess::None },
            Perm { dom: b, access: XsAccess::Read },
            Perm { dom: fe, access: XsAccess::Read },
        ];
        if new {
            xs.write(&format!("/local/domain/{fe}/domid"), &fe.to_string(), &fe_perms);
            xs.write(&fd, "", &fe_perms);
        }
        // The backend's directory first, then the pointers to it (`vgpu
        // restore` writes all of it in one transaction).
        xs.write(&format!("{be}/limits"), "", &dom0);
        for (k, v) in [
            ("ggtt-base", ggtt_base),
            ("ggtt-entries", ggtt_len),
            ("max-contexts", 4),
            ("max-pages", max_pages),
            ("max-table-pages", 64),
        ] {
            xs.write(&format!("{be}/limits/{k}"), &v.to_string(), &dom0);
        }
        xs.write(&be, "", &be_perms);
        xs.write(&format!("{be}/frontend"), &fd, &be_perms);
        xs.write(&format!("{be}/frontend-id"), &fe.to_string(), &be_perms);
        xs.write(&format!("{be}/online"), "1", &be_perms);
        xs.write(&format!("{be}/state"), "1", &be_perms);
        xs.write(&format!("{fd}/backend"), &be, &fe_perms);
        xs.write(&format!("{fd}/backend-id"), &b.to_string(), &fe_perms);
        if new {
            xs.write(&format!("{fd}/state"), "1", &fe_perms);
        }
    }
}

/// The frontend's platform: the guest's pages and grants on the model, its
/// ports, and the world to step when it waits.
pub struct TestPlatform {
    pub world: Rc<RefCell<World>>,
    pub guest: Guest,
    /// Our pages: the frame, and the grant while there is one.
    pages: BTreeMap<usize, (Gfn, Option<GrantRef>)>,
    next_page: usize,
    next_port: u32,
    xs_output: Rc<dyn Fn() -> bool>,
    /// Calls to `wait`.
    pub waits: u64,
    /// Calls to `notify`.
    pub notifies: u64,
}

impl Platform for TestPlatform {
    type Error = String;

    fn grant_page(&mut self, to: u16, read_only: bool) -> Result<Granted, String> {
        let gfn = self.guest.alloc_pages(1).map_err(|e| format!("{e:?}"))?[0];
        let gref = self.guest.grant(gfn, DomId(to), read_only).map_err(|e| format!("{e:?}"))?;
        self.next_page += 1;
        self.pages.insert(self.next_page, (gfn, Some(gref)));
        Ok(Granted { id: PageId(self.next_page), gref: gref.0, read_only })
    }

    fn end_access(&mut self, page: PageId) -> Result<(), EndAccessError> {
        self.end_grant(page)?;
        self.pages.remove(&page.0);
        Ok(())
    }

    fn end_grant(&mut self, page: PageId) -> Result<(), EndAccessError> {
        let entry = self.pages.get_mut(&page.0).ok_or(EndAccessError::UnknownPage(page))?;
        if let Some(gref) = entry.1 {
            if !self.guest.end_access(gref) {
                return Err(EndAccessError::StillMapped { gref: gref.0 });
            }
            entry.1 = None;
        }
        Ok(())
    }

    fn regrant(&mut self, page: PageId, to: u16, read_only: bool) -> Result<Granted, String> {
        self.end_grant(page).map_err(|e| e.to_string())?;
        let entry = self.pages.get_mut(&page.0).ok_or("not our page")?;
        let gref = self.guest.grant(entry.0, DomId(to), read_only).map_err(|e| format!("{e:?}"))?;
        entry.1 = Some(gref);
        Ok(Granted { id: page, gref: gref.0, read_only })
    }

    fn read(&self, page: PageId, offset: usize, buf: &mut [u8]) {
        let (gfn, _) = self.pages[&page.0];
        self.guest.read(gfn, offset, buf).expect("our page");
    }

    fn write(&mut self, page: PageId, offset: usize, data: &[u8]) {
        let (gfn, _) = self.pages[&page.0];
        self.guest.write(gfn, offset, data).expect("our page");
    }

    fn fence(&self) {}

    fn alloc_unbound(&mut self, remote: u16) -> Result<u32, String> {
        self.next_port += 1;
        let w = self.world.borrow();
        w.ev.borrow_mut().chans.push(Chan {
            fe_dom: self.guest.dom().0,
            fe_port: self.next_port,
            remote,
            be_port: None,
            fe_pending: false,
            be_pending: false,
            closed: false,
        });
        Ok(self.next_port)
    }

    fn notify(&mut self, port: u32) -> Result<(), String> {
        self.notifies += 1;
        let w = self.world.borrow();
        let mut ev = w.ev.borrow_mut();
        let c = ev.by_fe(self.guest.dom().0, port).ok_or("notify: no such port")?;
        c.be_pending = true;
        Ok(())
    }

    fn close_port(&mut self, port: u32) -> Result<(), String> {
        let w = self.world.borrow();
        let mut ev = w.ev.borrow_mut();
        let c = ev.by_fe(self.guest.dom().0, port).ok_or("close: no such port")?;
        c.closed = true;
        Ok(())
    }

    fn now_ms(&mut self) -> u64 {
        self.world.borrow().clock.get()
    }

    fn wait(&mut self, deadline_ms: u64) -> Result<(), String> {
        self.waits += 1;
        assert!(self.waits < 200_000, "the frontend waits forever (clock {deadline_ms} ms)");
        let progressed = self.world.borrow_mut().step();
        let dom = self.guest.dom().0;
        let w = self.world.borrow();
        let fired = {
            let mut ev = w.ev.borrow_mut();
            let mut any = false;
            for c in ev.chans.iter_mut().filter(|c| c.fe_dom == dom && c.fe_pending) {
                c.fe_pending = false;
                any = true;
            }
            any
        };
        if !progressed && !fired && !(self.xs_output)() {
            // Nothing will happen by itself: time passes, up to the deadline
            // or the next thing scheduled, whichever comes first.
            let next = w.later.iter().map(|(t, _)| *t).min().unwrap_or(u64::MAX);
            w.clock.set(w.clock.get().max(deadline_ms.min(next)));
        }
        Ok(())
    }
}

/// The test frontend type.
pub type TestFrontend = Frontend<TestPlatform, XsConn>;

/// A guest `dom` with `pages` pages of RAM and a frontend (not connected).
pub fn frontend(world: &Rc<RefCell<World>>, dom: u16, pages: u32, opts: Options) -> TestFrontend {
    let (guest, conn) = {
        let w = world.borrow();
        (w.model.create_guest(DomId(dom), pages).expect("guest"), w.xenstored.connect(dom))
    };
    let store = world.borrow().xenstored.clone();
    let probe = store.connect_probe(&conn);
    let platform = TestPlatform {
        world: world.clone(),
        guest,
        pages: BTreeMap::new(),
        next_page: 0,
        next_port: 0,
        xs_output: probe,
        waits: 0,
        notifies: 0,
    };
    Frontend::new(platform, Box::new(Client::new(conn)), opts)
}
