//! The backend service's xenbus handshake, end to end on the host, in the
//! one host world (`gpu_dom_tests::world`): the real toolstack code (`vgpu`
//! as a library, as dom0), the real `Service` (as gpu-dom, domid 1) on the
//! model xenstored, guests running the real `frontend` crate, and the
//! platform model underneath (grant tables, strict IOMMU, model GPU). A
//! ring overrun is the frontend's own hostile hook (`poke_req_prod`); bad
//! limits are dom0's writes by hand.

use backend::Change;
use frontend::Options;
use gpu_dom_tests::world::{frontend, World, WorldConfig, GUEST};
use gpuif::wire::Entry;
use gpuif::{Op, Status, PAGE_SIZE};
use gtt::DomId;
use platform_model::{DomainState, Hit, Space};
use xenbus::{Client, Perm};

/// guest2 of the world.
const GUEST2: DomId = DomId(7);

/// GGTT entry `index` of guest `fe`'s slice, as the model GPU reads it.
fn ggtt_read(w: &World, fe: u16, index: u32) -> Hit<Vec<u8>> {
    let base = format!("/local/domain/1/backend/vgpu/{fe}/0/limits/ggtt-base");
    let base: u32 = w.xenstored.read(&base).unwrap().parse().unwrap();
    w.model.gpu().gpu_read(Space::Ggtt, ((base + index) as u64) << 12, 8).unwrap()
}

#[test]
fn attach_connect_serve_and_close_follow_the_xenbus_handshake() {
    let world = World::with_config(WorldConfig::two_guests());
    {
        let mut w = world.borrow_mut();
        assert_eq!(
            w.xenstored.read("/local/domain/1/data/vgpu-ggtt-entries").as_deref(),
            Some("4096")
        );
        let (code, out, err) =
            w.vgpu("attach guest1 --ggtt-entries 64 --max-pages 32 --max-table-pages 16");
        assert_eq!(code, 0, "{out}{err}");
        w.pump();
        assert_eq!(w.be_state(5).as_deref(), Some("2"), "InitWait after validation");
        assert_eq!(
            w.xenstored.read("/local/domain/1/backend/vgpu/5/0/versions").as_deref(),
            Some("1")
        );
        assert!(w.changes.contains(&Change::InitWait { fe: GUEST, devid: 0 }));
    }

    let mut fe = frontend(&world, GUEST.0, 64, Options::default());
    let info = fe.connect().expect("the real frontend connects");
    assert_eq!((info.ggtt_len, info.max_pages), (64, 32));
    assert_eq!(world.borrow().be_state(5).as_deref(), Some("4"), "Connected");
    let port = world.borrow().port_of(GUEST);

    // Map a page through the GGTT and read it back through the model GPU.
    let page = fe.grant_page(false).unwrap();
    fe.write_page(&page, 0, &[0x5a; PAGE_SIZE]);
    let rsp = fe.call(Op::GgttMap, 0, &[Entry { addr: 3, gref: page.gref, read_only: false }]);
    assert_eq!(rsp.map(|r| (r.status, r.done)).unwrap(), (Status::OK, 1));
    {
        let mut w = world.borrow_mut();
        assert!(w.service().connector.notified.contains(&port), "the guest was notified");
        assert_eq!(ggtt_read(&w, 5, 3), Hit::Mapped(vec![0x5a; 8]));
        assert_eq!(w.xenstored.read("/local/domain/1/data/vgpu/5/0/pages").as_deref(), Some("1"));
        let (_, list, _) = w.vgpu("list");
        assert!(list.contains("Connected"), "{list}");
    }

    // The guest closes: everything is revoked before the backend says Closed,
    // so the guest can end every grant.
    let teardown = fe.disconnect().expect("disconnects");
    assert!(teardown.backend_closed && teardown.still_mapped.is_empty(), "{teardown:?}");
    let w = world.borrow();
    assert_eq!(w.be_state(5).as_deref(), Some("6"));
    assert!(w
        .changes
        .iter()
        .any(|c| matches!(c, Change::Closed { why: "frontend closed", grants_unmapped: 1, .. })));
    assert_eq!(ggtt_read(&w, 5, 3), Hit::Scratch);
    assert_eq!(w.model.destroy_domain(GUEST), Some(DomainState::Dead));
}

#[test]
fn limits_writable_by_the_guest_are_refused_and_nothing_is_served() {
    let mut w = World::build(WorldConfig::two_guests());
    assert_eq!(w.vgpu("attach guest1").0, 0);
    // Simulate a toolstack bug: the guest may write its own limits.
    w.xenstored.with(|m| {
        m.set_perms(
            0,
            "/local/domain/1/backend/vgpu/5/0/limits/max-pages",
            &[
                Perm::new(0, xenbus::Access::None),
                Perm::new(1, xenbus::Access::Read),
                Perm::new(5, xenbus::Access::Both),
            ],
        )
        .unwrap()
    });
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("6"), "Closed, not served");
    let err = w.xenstored.read("/local/domain/1/backend/vgpu/5/0/error").unwrap();
    assert!(err.contains("limits/max-pages is writable by the guest"), "{err}");
    assert!(w.service().backend.engine().guest_stats(GUEST).is_none(), "never attached to gtt");
}

#[test]
fn limits_the_backend_cannot_read_are_refused_with_a_clear_reason() {
    let mut w = World::build(WorldConfig::two_guests());
    assert_eq!(w.vgpu("attach guest1").0, 0);
    w.xenstored.with(|m| {
        m.set_perms(
            0,
            "/local/domain/1/backend/vgpu/5/0/limits/max-pages",
            &[Perm::new(0, xenbus::Access::None)],
        )
        .unwrap()
    });
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("6"));
    let err = w.xenstored.read("/local/domain/1/backend/vgpu/5/0/error").unwrap();
    assert!(err.contains("limits/max-pages is not readable by gpu-dom"), "{err}");
}

#[test]
fn limits_that_turn_guest_writable_after_attach_end_service_and_a_fix_restores_it() {
    let world = World::with_config(WorldConfig::two_guests());
    assert_eq!(world.borrow().vgpu("attach guest1 --ggtt-entries 64").0, 0);
    world.borrow_mut().pump();
    let mut fe = frontend(&world, GUEST.0, 64, Options::default());
    fe.connect().expect("connects");
    let mut w = world.borrow_mut();
    assert_eq!(w.be_state(5).as_deref(), Some("4"));
    let node = "/local/domain/1/backend/vgpu/5/0/limits/max-pages";
    let (n0, r1) = (Perm::new(0, xenbus::Access::None), Perm::new(1, xenbus::Access::Read));
    w.xenstored
        .with(|m| m.set_perms(0, node, &[n0, r1, Perm::new(5, xenbus::Access::Both)]).unwrap());
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("6"), "served no more");
    assert!(w.service().backend.engine().guest_stats(GUEST).is_none(), "revoked");
    // The toolstack fixes the permissions: served again (the frontend,
    // not running here, still offers its ring, so the backend goes through InitWait to Connected).
    w.xenstored
        .with(|m| m.set_perms(0, node, &[n0, r1, Perm::new(5, xenbus::Access::Read)]).unwrap());
    w.pump();
    let inits = w.changes.iter().filter(|c| matches!(c, Change::InitWait { .. })).count();
    assert_eq!(inits, 2, "validated and attached a second time");
    assert_eq!(w.be_state(5).as_deref(), Some("4"), "connected again");
}

#[test]
fn a_device_without_limits_is_refused() {
    let mut w = World::build(WorldConfig::two_guests());
    assert_eq!(w.vgpu("attach guest1").0, 0);
    w.xenstored.with(|m| m.rm(0, "/local/domain/1/backend/vgpu/5/0/limits/ggtt-entries").unwrap());
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("6"));
    assert!(w
        .xenstored
        .read("/local/domain/1/backend/vgpu/5/0/error")
        .unwrap()
        .contains("limits/ggtt-entries is missing"));
}

#[test]
fn guest_death_revokes_everything_and_other_guests_keep_their_mappings() {
    let world = World::with_config(WorldConfig::two_guests());
    assert_eq!(world.borrow().vgpu("attach guest1 --ggtt-entries 64").0, 0);
    assert_eq!(world.borrow().vgpu("attach guest2 --ggtt-entries 64").0, 0);
    world.borrow_mut().pump();
    for dom in [GUEST, GUEST2] {
        let mut fe = frontend(&world, dom.0, 64, Options::default());
        fe.connect().expect("connects");
        let page = fe.grant_page(false).unwrap();
        let rsp = fe.call(Op::GgttMap, 0, &[Entry { addr: 0, gref: page.gref, read_only: false }]);
        assert_eq!(rsp.unwrap().status, Status::OK);
    }
    let mut w = world.borrow_mut();
    // The guest dies: the toolstack removes its xenstore home.
    w.xenstored.with(|m| m.rm(0, "/local/domain/5").unwrap());
    w.pump();
    assert!(w
        .changes
        .iter()
        .any(|c| matches!(c, Change::Closed { fe, why: "guest gone", .. } if *fe == GUEST)));
    assert!(w.service().backend.engine().guest_stats(GUEST).is_none());
    assert_eq!(w.model.destroy_domain(GUEST), Some(DomainState::Dead), "no zombie");
    assert!(w.service().backend.engine().guest_stats(GUEST2).is_some());
    assert_eq!(w.be_state(7).as_deref(), Some("4"), "guest2 still connected");
    assert!(matches!(ggtt_read(&w, 7, 0), Hit::Mapped(_)), "guest2's mapping stays");
    let (_, list, _) = w.vgpu("list");
    assert!(list.contains("stale") || list.contains("no longer exists"), "{list}");
}

#[test]
fn a_ring_overrun_disconnects_only_that_guest() {
    let world = World::with_config(WorldConfig::two_guests());
    assert_eq!(world.borrow().vgpu("attach guest1 --ggtt-entries 64").0, 0);
    assert_eq!(world.borrow().vgpu("attach guest2 --ggtt-entries 64").0, 0);
    world.borrow_mut().pump();
    let mut a = frontend(&world, GUEST.0, 64, Options::default());
    let mut b = frontend(&world, GUEST2.0, 64, Options::default());
    a.connect().expect("guest1 connects");
    b.connect().expect("guest2 connects");
    // The frontend's hostile hook: `req_prod` 1000 slots ahead, notified.
    a.poke_req_prod(1000).expect("pokes");
    let mut w = world.borrow_mut();
    w.step();
    assert_eq!(w.be_state(5).as_deref(), Some("6"));
    assert!(w
        .changes
        .iter()
        .any(|c| matches!(c, Change::Closed { why: "ring protocol violation", .. })));
    assert_eq!(w.be_state(7).as_deref(), Some("4"));
}

#[test]
fn toolstack_detach_waits_for_the_backend_to_revoke_and_close() {
    let world = World::with_config(WorldConfig::two_guests());
    assert_eq!(world.borrow().vgpu("attach guest1 --ggtt-entries 64").0, 0);
    world.borrow_mut().pump();
    let mut fe = frontend(&world, GUEST.0, 64, Options::default());
    fe.connect().expect("connects");
    let mut w = world.borrow_mut();
    assert_eq!(w.be_state(5).as_deref(), Some("4"));
    // vgpu detach blocks until Closed: run it on a thread, serve here.
    let xs = w.xenstored.clone();
    let t = std::thread::spawn(move || {
        let args: Vec<String> =
            "detach guest1 --timeout 5".split_whitespace().map(str::to_string).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = vgpu::main_with(
            &args,
            move || Ok(vgpu::Store::new(Client::new(xs.connect(0)))),
            &mut out,
            &mut err,
        );
        (code, String::from_utf8_lossy(&out).into_owned() + &String::from_utf8_lossy(&err))
    });
    let t0 = std::time::Instant::now();
    while !t.is_finished() && t0.elapsed() < std::time::Duration::from_secs(10) {
        w.pump();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (code, out) = t.join().unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(w.changes.iter().any(|c| matches!(c, Change::Closed { why: "toolstack detach", .. })));
    assert!(w.xenstored.read("/local/domain/1/backend/vgpu/5/0").is_none(), "directories removed");
    w.pump();
    assert_eq!(w.service().devices().count(), 0);
}
