//! Availability isolation on the host: no frontend value, state order or
//! toolstack mistake about one device makes the service loop or stop
//! serving the others (`../shared/DESIGN.md`, "Availability invariants").
//! The real `Service`, the real `vgpu` and the model xenstored in the one
//! host world, as in `service.rs`: the good guest runs the real frontend;
//! the hostile one writes its values by hand.

use backend::Change;
use std::cell::RefCell;
use std::rc::Rc;

use frontend::Options;
use gpu_dom_tests::world::{frontend, TestFrontend, World, WorldConfig, GUEST};
use gpu_dom_tests::{limits, Rig, BACKEND};
use gpuif::wire::Entry;
use gpuif::{Op, Status};
use gtt::DomId;
use platform_model::{Hit, Space};

const GOOD: DomId = DomId(7);
const FE: &str = "/local/domain/5/device/vgpu/0";

/// Watch events one refusal may take to settle: the refusal's own writes
/// (error, state) and the events already queued. A loop takes unboundedly many.
const SETTLE: usize = 8;

/// A hostile frontend value: what the guest writes, and what gpu-dom must say.
struct Case {
    what: &'static str,
    /// (node, value) written by the guest before `state = 3`; `GRANTED_*`
    /// placeholders are replaced by real grant refs.
    nodes: &'static [(&'static str, &'static str)],
    error: &'static str,
}

const GRANTED_RW: &str = "<a writable grant to gpu-dom>";
const GRANTED_RO: &str = "<a read-only grant to gpu-dom>";
const GRANTED_ELSEWHERE: &str = "<a grant to domain 7>";

const CASES: &[Case] = &[
    Case {
        what: "version 2",
        nodes: &[("version", "2"), ("ring-ref", GRANTED_RW), ("event-channel", "9")],
        error: "no common protocol version",
    },
    Case {
        what: "non-numeric ring-ref",
        nodes: &[("version", "1"), ("ring-ref", "abc"), ("event-channel", "9")],
        error: "ring-ref = \"abc\" is not valid",
    },
    Case {
        what: "empty ring-ref",
        nodes: &[("version", "1"), ("ring-ref", ""), ("event-channel", "9")],
        error: "ring-ref = \"\" is not valid",
    },
    Case {
        what: "ring-ref 2^32",
        nodes: &[("version", "1"), ("ring-ref", "4294967296"), ("event-channel", "9")],
        error: "ring-ref = \"4294967296\" is not valid",
    },
    Case {
        what: "ring-ref 0",
        nodes: &[("version", "1"), ("ring-ref", "0"), ("event-channel", "9")],
        error: "cannot map the ring grant",
    },
    Case {
        what: "ring-ref never granted",
        nodes: &[("version", "1"), ("ring-ref", "4000"), ("event-channel", "9")],
        error: "cannot map the ring grant",
    },
    Case {
        what: "ring-ref granted read-only",
        nodes: &[("version", "1"), ("ring-ref", GRANTED_RO), ("event-channel", "9")],
        error: "cannot map the ring grant",
    },
    Case {
        what: "ring-ref granted to another domain",
        nodes: &[("version", "1"), ("ring-ref", GRANTED_ELSEWHERE), ("event-channel", "9")],
        error: "cannot map the ring grant",
    },
    Case {
        what: "non-numeric event-channel",
        nodes: &[("version", "1"), ("ring-ref", GRANTED_RW), ("event-channel", "x")],
        error: "event-channel = \"x\" is not valid",
    },
    Case {
        what: "event-channel 0",
        nodes: &[("version", "1"), ("ring-ref", GRANTED_RW), ("event-channel", "0")],
        error: "cannot bind the event channel",
    },
    Case {
        what: "missing event-channel",
        nodes: &[("version", "1"), ("ring-ref", GRANTED_RW)],
        error: "event-channel is missing",
    },
];

/// Both guests attached; the good one connected (the real frontend).
fn world_with_a_good_guest() -> (Rc<RefCell<World>>, TestFrontend) {
    let world = World::with_config(WorldConfig::two_guests());
    assert_eq!(world.borrow().vgpu("attach guest1 --ggtt-entries 64").0, 0);
    assert_eq!(world.borrow().vgpu("attach guest2 --ggtt-entries 64").0, 0);
    world.borrow_mut().pump();
    let mut good = frontend(&world, GOOD.0, 64, Options::default());
    good.connect().expect("the good guest connects");
    (world, good)
}

/// The good guest maps a fresh page at GGTT index `index` of its slice and
/// the model GPU reads the page's bytes there.
fn good_guest_is_served(world: &Rc<RefCell<World>>, good: &mut TestFrontend, index: u32) {
    let page = good.grant_page(false).unwrap();
    good.write_page(&page, 0, &[index as u8 + 1; gpuif::PAGE_SIZE]);
    let entry = Entry { addr: index as u64, gref: page.gref, read_only: false };
    let rsp = good.call(Op::GgttMap, 0, &[entry]).expect("the good guest got its answer");
    assert_eq!((rsp.status, rsp.done), (Status::OK, 1));
    let w = world.borrow();
    let base: u32 = w
        .xenstored
        .read("/local/domain/1/backend/vgpu/7/0/limits/ggtt-base")
        .unwrap()
        .parse()
        .unwrap();
    let bus = ((base + index) as u64) << 12;
    let got = w.model.gpu().gpu_read(Space::Ggtt, bus, 4).unwrap();
    assert_eq!(got, Hit::Mapped(vec![index as u8 + 1; 4]));
}

/// The hostile guest writes `case`'s nodes, then Initialised.
fn present(w: &mut World, case: &Case) {
    let hostile = w.model.create_guest(GUEST, 16).unwrap();
    let pages = hostile.alloc_pages(3).unwrap();
    // Port 9 is open for gpu-dom, as a guest would make it: only the
    // case's own values are wrong.
    w.channels.borrow_mut().alloc_unbound(GUEST, 9, BACKEND);
    for &(node, value) in case.nodes {
        let value = match value {
            GRANTED_RW => hostile.grant(pages[0], BACKEND, false).unwrap().0.to_string(),
            GRANTED_RO => hostile.grant(pages[1], BACKEND, true).unwrap().0.to_string(),
            GRANTED_ELSEWHERE => hostile.grant(pages[2], GOOD, false).unwrap().0.to_string(),
            v => v.to_string(),
        };
        w.xenstored.write(5, &format!("{FE}/{node}"), &value);
    }
    w.xenstored.write(5, &format!("{FE}/state"), "3");
}

#[test]
fn each_refused_frontend_value_is_refused_once_and_the_other_guest_keeps_being_served() {
    for case in CASES {
        let (world, mut good) = world_with_a_good_guest();
        good_guest_is_served(&world, &mut good, 0);
        let mut w = world.borrow_mut();
        present(&mut w, case);
        let events = w.pump_at_most(200);
        assert!(events.is_some_and(|n| n <= SETTLE), "{}: no fixed point: {events:?}", case.what);
        assert_eq!(w.refusals(GUEST), 1, "{}: {:?}", case.what, w.changes);
        let err = w.xenstored.read("/local/domain/1/backend/vgpu/5/0/error").unwrap();
        assert!(err.contains(case.error), "{}: {err}", case.what);
        assert_eq!(w.be_state(5).as_deref(), Some("6"), "{}: Closed", case.what);
        assert!(w.service().backend.engine().guest_stats(GUEST).is_none(), "{}", case.what);
        // More events about anything (here: the toolstack touching another
        // device, and the hostile guest rewriting the same values) bring no
        // second refusal while its frontend does not start over.
        w.xenstored.write(0, "/local/domain/1/backend/vgpu/7/0/online", "1");
        w.xenstored.write(5, &format!("{FE}/state"), "3");
        w.pump();
        assert_eq!(w.refusals(GUEST), 1, "{}: refused again without a restart", case.what);
        drop(w);
        good_guest_is_served(&world, &mut good, 1);
        let w = world.borrow();
        assert_eq!(w.be_state(7).as_deref(), Some("4"), "{}: good guest connected", case.what);
    }
}

#[test]
fn a_refused_frontend_that_starts_over_with_good_values_is_served() {
    let (world, mut good) = world_with_a_good_guest();
    let mut w = world.borrow_mut();
    present(&mut w, &CASES[0]);
    w.pump();
    assert_eq!(w.refusals(GUEST), 1);
    // Back to Initialising (as a frontend does after its backend closed):
    // gpu-dom takes the device up again, and the good values connect it.
    w.xenstored.write(5, &format!("{FE}/state"), "1");
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("2"), "InitWait again");
    let inits =
        w.changes.iter().filter(|c| matches!(c, Change::InitWait { fe, .. } if *fe == GUEST));
    assert_eq!(inits.count(), 2);
    w.xenstored.write(5, &format!("{FE}/version"), "1");
    w.xenstored.write(5, &format!("{FE}/state"), "3");
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("4"), "Connected after starting over");
    assert_eq!(w.refusals(GUEST), 1);
    drop(w);
    good_guest_is_served(&world, &mut good, 2);
}

#[test]
fn a_state_storm_from_one_frontend_costs_one_step_per_change_and_no_writes() {
    let (world, mut good) = world_with_a_good_guest();
    let mut w = world.borrow_mut();
    present(&mut w, &CASES[1]);
    w.pump();
    let writes_before = w.xenstored.counters(w.backend_xs.transport()).ops_outside_tx;
    for i in 0..100 {
        // Garbage and repeated Initialised states, no restart.
        let v = if i % 2 == 0 { "3" } else { "junk" };
        w.xenstored.write(5, &format!("{FE}/state"), v);
        w.pump();
    }
    assert_eq!(w.refusals(GUEST), 1);
    assert_eq!(
        w.xenstored.counters(w.backend_xs.transport()).ops_outside_tx,
        writes_before,
        "gpu-dom wrote nothing more"
    );
    drop(w);
    good_guest_is_served(&world, &mut good, 3);
}

#[test]
fn limits_that_do_not_fit_gpu_dom_are_refused_once_even_when_the_toolstack_skips_the_check() {
    let mut w = World::build(WorldConfig::two_guests());
    // The host World's gpu-dom has 4000 grant slots: two devices of 1800
    // fit, a third does not. A toolstack that does not check (or raced)
    // writes it anyway: gpu-dom refuses it once, and waits for a change.
    for guest in ["guest1", "guest2"] {
        assert_eq!(w.vgpu(&format!("attach {guest} --ggtt-entries 64 --max-pages 1800")).0, 0);
    }
    w.pump();
    w.xenstored.add_domain(9, "guest3");
    w.xenstored.write(0, "/local/domain/1/data/vgpu-pool/pages/capacity", "999999");
    let (code, out, err) = w.vgpu("attach guest3 --ggtt-entries 64 --max-pages 1800");
    assert_eq!(code, 0, "{out}{err}");
    w.pump();
    assert_eq!(w.refusals(DomId(9)), 1, "{:?}", w.changes);
    let msg = w.xenstored.read("/local/domain/1/backend/vgpu/9/0/error").unwrap();
    assert!(msg.contains("does not fit: 1800 pages asked, 400 of 4000 free"), "{msg}");
    w.xenstored.write(0, "/local/domain/1/backend/vgpu/5/0/online", "1");
    w.pump();
    assert_eq!(w.refusals(DomId(9)), 1, "no retry without a change of the toolstack's side");
    // The toolstack lowers the limit: served.
    w.xenstored.write(0, "/local/domain/1/backend/vgpu/9/0/limits/max-pages", "400");
    w.pump();
    assert_eq!(w.be_state(9).as_deref(), Some("2"), "InitWait once it fits");
}

#[test]
fn gpu_dom_publishes_its_pools_and_vgpu_list_shows_them() {
    let (world, mut good) = world_with_a_good_guest();
    good_guest_is_served(&world, &mut good, 0);
    let w = world.borrow();
    let pool = |w: &World, p: &str, k: &str| {
        w.xenstored.read(&format!("/local/domain/1/data/vgpu-pool/{p}/{k}")).unwrap()
    };
    assert_eq!(pool(&w, "pages", "capacity"), "4000");
    assert_eq!(pool(&w, "pages", "reserved"), "2048", "two default guests");
    assert_eq!(pool(&w, "pages", "used"), "1");
    assert_eq!(pool(&w, "devices", "reserved"), "2");
    let (_, list, _) = w.vgpu("list");
    assert!(list.contains("POOL"), "{list}");
    let pages = list.lines().find(|l| l.starts_with("pages")).unwrap();
    assert_eq!(
        pages.split_whitespace().collect::<Vec<_>>(),
        ["pages", "4000", "2048", "1", "1952"]
    );
}

#[test]
fn a_turn_is_bounded_by_the_entries_served_not_by_the_requests_queued() {
    // A guest queues four 512-entry requests; a turn of 1024 units serves
    // two (513 units each), says more is left, and the next turn the rest.
    let mut rig = Rig::new();
    let h = rig.add_guest(DomId(2), 700, Some(limits(0, 1024, 1024)));
    let pages = rig.fe(h).grant_pages(512, false);
    let entries: Vec<Entry> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| Entry { addr: i as u64, gref: p.gref.0, read_only: false })
        .collect();
    let (slot, _) = rig.fe(h).request(Op::GgttMap, 0, &entries);
    for _ in 0..4 {
        rig.fe(h).push(&slot);
    }
    let (conn, page) = rig.frontends[h].backend_side();
    let first = rig.backend.serve(conn, page, 1024).unwrap();
    assert_eq!((first.requests, first.more), (2, true));
    let (conn, page) = rig.frontends[h].backend_side();
    let second = rig.backend.serve(conn, page, 1024).unwrap();
    assert_eq!((second.requests, second.more), (2, true), "budget spent exactly: look again");
    let (conn, page) = rig.frontends[h].backend_side();
    let third = rig.backend.serve(conn, page, 1024).unwrap();
    assert_eq!((third.requests, third.more), (0, false));
    for _ in 0..4 {
        let rsp = rig.fe(h).take_response().expect("answered");
        assert_eq!((rsp.status, rsp.done), (Status::OK, 512));
    }
}

#[test]
fn refused_entries_cost_a_turn_as_much_as_applied_ones() {
    // Four 512-entry requests naming grants nobody made: every entry is
    // refused, yet each costs 513 units, so a 1024-unit turn serves two.
    let mut rig = Rig::new();
    let h = rig.add_guest(DomId(2), 64, Some(limits(0, 1024, 64)));
    let entries: Vec<Entry> = (0..512)
        .map(|i| Entry { addr: i as u64, gref: 3000 + i as u32, read_only: false })
        .collect();
    let (slot, _) = rig.fe(h).request(Op::GgttMap, 0, &entries);
    for _ in 0..4 {
        rig.fe(h).push(&slot);
    }
    let (conn, page) = rig.frontends[h].backend_side();
    let turn = rig.backend.serve(conn, page, 1024).unwrap();
    assert_eq!((turn.requests, turn.more), (2, true));
    let rsp = rig.fe(h).take_response().expect("answered");
    assert_eq!(rsp.done, 0, "{rsp:?}");
}
