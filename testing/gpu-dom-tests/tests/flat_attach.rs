//! Flat attach: what gpu-dom asks xenstore for when one device changes does
//! not grow with the number of devices it serves, and nothing is missed.
//! The real `vgpu`, the real `Service`, real frontends, the model xenstored
//! counting gpu-dom's requests (`Counters::requests`).

use std::cell::RefCell;
use std::rc::Rc;

use backend::service::TOKEN_BACKEND;
use backend::Change;
use frontend::Options;
use gpu_dom_tests::world::{frontend, TestFrontend, World, WorldConfig};
use gtt::Config;

/// Small limits, so that many guests fit the world's pools.
const LIMITS: &str = "--ggtt-entries 16 --contexts 1 --max-pages 8 --max-table-pages 1";

/// Guests' domids start here; guest `id` is named `guest<id>`.
const FIRST: u16 = 10;

/// A world with `n` guests attached and Connected (their frontends kept
/// alive), with room (domains, pools) for `room` guests.
struct Served {
    world: Rc<RefCell<World>>,
    fronts: Vec<TestFrontend>,
}

impl Served {
    fn new(n: u16, room: u16) -> Served {
        let config = WorldConfig {
            window_pages: 4096,
            engine: Config {
                max_guests: 8 + room,
                grant_slots: 4000,
                table_pages: 256,
                contexts: 16 + room as usize,
                max_batch: 2048,
            },
            debug_readback: false,
            ..WorldConfig::default()
        };
        let mut s = Served { world: World::with_config(config), fronts: Vec::new() };
        for id in FIRST..FIRST + room {
            s.world.borrow().ensure_domain(id);
        }
        for id in FIRST..FIRST + n {
            s.attach(id);
            s.connect(id);
        }
        s
    }

    fn attach(&mut self, id: u16) {
        let (code, _, err) = self.world.borrow().vgpu(&format!("attach guest{id} {LIMITS}"));
        assert_eq!(code, 0, "{err}");
        self.world.borrow_mut().pump();
    }

    fn connect(&mut self, id: u16) {
        let mut fe = frontend(&self.world, id, 16, Options::default());
        fe.connect().expect("the real frontend connects");
        self.fronts.push(fe);
        self.world.borrow_mut().pump();
        assert_eq!(self.be_state(id).as_deref(), Some("4"), "guest{id} Connected");
    }

    fn be_state(&self, id: u16) -> Option<String> {
        self.world.borrow().be_state(id)
    }

    /// gpu-dom's xenstore requests so far.
    fn count(&self) -> u32 {
        let w = self.world.borrow();
        w.xenstored.counters(w.backend_xs.transport()).requests
    }

    /// gpu-dom's xenstore requests while `f` runs and the events it caused
    /// are delivered.
    fn requests(&mut self, f: impl FnOnce(&mut Served)) -> u32 {
        let before = self.count();
        f(self);
        self.world.borrow_mut().pump();
        self.count() - before
    }

    /// The toolstack touches one node of device `fe`'s backend directory.
    fn touch(&mut self, fe: u16) {
        self.world.borrow().xenstored.write(
            0,
            &format!("/local/domain/1/backend/vgpu/{fe}/0/guest-name"),
            "renamed",
        );
    }

    /// What a full rescan (the old answer to every such event) costs.
    fn full_rescan(&mut self) -> u32 {
        let before = self.count();
        {
            let w = &mut *self.world.borrow_mut();
            let svc = w.service.as_mut().expect("serving");
            svc.on_watch(&mut w.backend_xs, TOKEN_BACKEND, &mut |_| {});
        }
        self.count() - before
    }
}

#[test]
fn a_backend_event_costs_as_many_requests_with_32_devices_as_with_1() {
    let (mut one, mut many) = (Served::new(1, 1), Served::new(32, 32));
    let small = one.requests(|s| s.touch(FIRST));
    let large = many.requests(|s| s.touch(FIRST + 15));
    eprintln!("one backend event: {small} requests with 1 device, {large} with 32");
    assert!(small > 0, "the event was handled");
    assert_eq!(small, large);
    let (full1, full32) = (one.full_rescan(), many.full_rescan());
    eprintln!("a full rescan: {full1} requests with 1 device, {full32} with 32");
    assert!(full32 > 10 * small, "a full rescan grows with the devices: {full32}");
}

#[test]
fn attaching_and_connecting_one_more_guest_costs_the_same_with_32_devices_as_with_1() {
    let cost = |s: &mut Served, id: u16| {
        let attach = s.requests(|s| s.attach(id));
        let connect = s.requests(|s| s.connect(id));
        (attach, connect)
    };
    // The 2nd guest of a 2-guest world against the 33rd of a 33-guest one.
    let (a1, c1) = cost(&mut Served::new(1, 2), FIRST + 1);
    let (a32, c32) = cost(&mut Served::new(32, 33), FIRST + 32);
    eprintln!("attach + connect: {a1} + {c1} requests with 1 device served, {a32} + {c32} with 32");
    assert_eq!((a1, c1), (a32, c32));
}

#[test]
fn a_device_removed_or_added_among_32_is_noticed_and_the_others_stay_connected() {
    let mut s = Served::new(32, 33);
    let gone = FIRST + 10;
    let (code, _, err) = s.world.borrow().vgpu(&format!("detach guest{gone} --force"));
    assert_eq!(code, 0, "{err}");
    s.world.borrow_mut().pump();
    {
        let mut w = s.world.borrow_mut();
        assert!(
            w.changes.iter().any(|c| matches!(c, Change::Closed { fe, .. } if fe.0 == gone)),
            "the removed device was revoked"
        );
        assert!(w.service().devices().all(|d| d.fe.0 != gone), "and forgotten");
    }
    let new = FIRST + 32;
    s.attach(new);
    assert_eq!(s.be_state(new).as_deref(), Some("2"), "the new device reached InitWait");
    s.connect(new);
    for id in (FIRST..new).filter(|&id| id != gone) {
        assert_eq!(s.be_state(id).as_deref(), Some("4"), "guest{id} still Connected");
    }
}

#[test]
fn a_device_removed_while_its_events_were_lost_is_noticed_by_the_full_rescan() {
    let s = Served::new(8, 8);
    let gone = FIRST + 2;
    assert_eq!(s.world.borrow().vgpu(&format!("detach guest{gone} --force")).0, 0);
    let w = &mut *s.world.borrow_mut();
    // The client's queue overflowed: the events are gone.
    while let Ok(Some(_)) = w.backend_xs.poll_event() {}
    let mut changes = Vec::new();
    let svc = w.service.as_mut().expect("serving");
    svc.on_lost_events(&mut w.backend_xs, &mut |c| changes.push(c));
    assert!(changes.iter().any(|c| matches!(c, Change::Closed { fe, .. } if fe.0 == gone)));
    assert!(svc.devices().all(|d| d.fe.0 != gone));
}
