//! The backend service's xenbus handshake, end to end on the host: the real
//! toolstack code (`vgpu` as a library, as dom0), the real `Service` (as
//! gpu-dom, domid 1) on the model xenstored, a frontend written by hand in
//! the guest's memory, and the platform model underneath (grant tables,
//! strict IOMMU, model GPU).

use backend::Change;
use gpu_dom_tests::service_world::{port_of, Front, World, GUEST};
use gpu_dom_tests::BACKEND;
use gpuif::wire::Entry;
use gpuif::{Op, RequestBuilder, Status};
use gtt::DomId;
use platform_model::{DomainState, Hit, Space};
use xenbus::{Client, Perm};

#[test]
fn attach_connect_serve_and_close_follow_the_xenbus_handshake() {
    let mut w = World::new();
    assert_eq!(w.xs.read("/local/domain/1/data/vgpu-ggtt-entries").as_deref(), Some("4096"));
    let (code, out, err) =
        w.vgpu("attach guest1 --ggtt-entries 64 --max-pages 32 --max-table-pages 16");
    assert_eq!(code, 0, "{out}{err}");
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("2"), "InitWait after validation");
    assert_eq!(w.xs.read("/local/domain/1/backend/vgpu/5/0/versions").as_deref(), Some("1"));
    assert!(w.changes.contains(&Change::InitWait { fe: GUEST, devid: 0 }));

    let mut f = Front::connect(&mut w, GUEST);
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("4"), "Connected");
    let port = port_of(&w, GUEST);

    // Map a page through the GGTT and read it back through the model GPU.
    let gfn = f.guest.alloc_pages(1).unwrap()[0];
    f.guest.fill(gfn, 0x5a).unwrap();
    let gref = f.guest.grant(gfn, BACKEND, false).unwrap();
    let slot = RequestBuilder::inline(
        f.next_id,
        Op::GgttMap,
        0,
        &[Entry { addr: 3, gref: gref.0, read_only: false }],
    )
    .unwrap();
    f.next_id += 1;
    f.send(&slot);
    let more = w.service.on_event(&mut w.client, port, &mut |_| {});
    assert!(!more);
    let rsp = f.response().expect("a response");
    assert_eq!((rsp.status, rsp.done), (Status::OK, 1));
    assert!(w.service.connector.notified.contains(&port));
    let base: u32 =
        w.xs.read("/local/domain/1/backend/vgpu/5/0/limits/ggtt-base").unwrap().parse().unwrap();
    let got = w.platform.gpu().gpu_read(Space::Ggtt, ((base + 3) as u64) << 12, 8).unwrap();
    assert_eq!(got, Hit::Mapped(vec![0x5a; 8]));
    assert_eq!(w.xs.read("/local/domain/1/data/vgpu/5/0/pages").as_deref(), Some("1"));
    let (_, list, _) = w.vgpu("list");
    assert!(list.contains("Connected"), "{list}");

    // The guest closes: everything is revoked before the backend says Closed.
    w.xs.write(5, "/local/domain/5/device/vgpu/0/state", "5");
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("6"));
    assert!(matches!(
        w.changes.last(),
        Some(Change::Closed { why: "frontend closed", grants_unmapped: 1, .. })
    ));
    assert_eq!(
        w.platform.gpu().gpu_read(Space::Ggtt, ((base + 3) as u64) << 12, 8),
        Ok(Hit::Scratch)
    );
    assert!(f.guest.end_access(gref), "no mapping of the guest's page remains");
    assert_eq!(w.platform.destroy_domain(GUEST), Some(DomainState::Dead));
}

#[test]
fn limits_writable_by_the_guest_are_refused_and_nothing_is_served() {
    let mut w = World::new();
    assert_eq!(w.vgpu("attach guest1").0, 0);
    // Simulate a toolstack bug: the guest may write its own limits.
    w.xs.with(|m| {
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
    let err = w.xs.read("/local/domain/1/backend/vgpu/5/0/error").unwrap();
    assert!(err.contains("limits/max-pages is writable by the guest"), "{err}");
    assert!(w.service.backend.engine().guest_stats(GUEST).is_none(), "never attached to gtt");
}

#[test]
fn limits_the_backend_cannot_read_are_refused_with_a_clear_reason() {
    let mut w = World::new();
    assert_eq!(w.vgpu("attach guest1").0, 0);
    w.xs.with(|m| {
        m.set_perms(
            0,
            "/local/domain/1/backend/vgpu/5/0/limits/max-pages",
            &[Perm::new(0, xenbus::Access::None)],
        )
        .unwrap()
    });
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("6"));
    let err = w.xs.read("/local/domain/1/backend/vgpu/5/0/error").unwrap();
    assert!(err.contains("limits/max-pages is not readable by gpu-dom"), "{err}");
}

#[test]
fn limits_that_turn_guest_writable_after_attach_end_service_and_a_fix_restores_it() {
    let mut w = World::new();
    assert_eq!(w.vgpu("attach guest1 --ggtt-entries 64").0, 0);
    w.pump();
    let _f = Front::connect(&mut w, GUEST);
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("4"));
    let node = "/local/domain/1/backend/vgpu/5/0/limits/max-pages";
    let (n0, r1) = (Perm::new(0, xenbus::Access::None), Perm::new(1, xenbus::Access::Read));
    w.xs.with(|m| m.set_perms(0, node, &[n0, r1, Perm::new(5, xenbus::Access::Both)]).unwrap());
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("6"), "served no more");
    assert!(w.service.backend.engine().guest_stats(GUEST).is_none(), "revoked");
    // The toolstack fixes the permissions: served again (this frontend
    // still offers its ring, so the backend goes through InitWait to Connected).
    w.xs.with(|m| m.set_perms(0, node, &[n0, r1, Perm::new(5, xenbus::Access::Read)]).unwrap());
    w.pump();
    let inits = w.changes.iter().filter(|c| matches!(c, Change::InitWait { .. })).count();
    assert_eq!(inits, 2, "validated and attached a second time");
    assert_eq!(w.be_state(5).as_deref(), Some("4"), "connected again");
}

#[test]
fn a_device_without_limits_is_refused() {
    let mut w = World::new();
    assert_eq!(w.vgpu("attach guest1").0, 0);
    w.xs.with(|m| m.rm(0, "/local/domain/1/backend/vgpu/5/0/limits/ggtt-entries").unwrap());
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("6"));
    assert!(w
        .xs
        .read("/local/domain/1/backend/vgpu/5/0/error")
        .unwrap()
        .contains("limits/ggtt-entries is missing"));
}

#[test]
fn guest_death_revokes_everything_and_other_guests_keep_their_mappings() {
    let mut w = World::new();
    assert_eq!(w.vgpu("attach guest1 --ggtt-entries 64").0, 0);
    assert_eq!(w.vgpu("attach guest2 --ggtt-entries 64").0, 0);
    w.pump();
    let mut a = Front::connect(&mut w, GUEST);
    let mut b = Front::connect(&mut w, DomId(7));
    w.pump();
    let (pa, pb) = (port_of(&w, GUEST), port_of(&w, DomId(7)));
    for (f, port) in [(&mut a, pa), (&mut b, pb)] {
        let gfn = f.guest.alloc_pages(1).unwrap()[0];
        let gref = f.guest.grant(gfn, BACKEND, false).unwrap();
        let slot = RequestBuilder::inline(
            1,
            Op::GgttMap,
            0,
            &[Entry { addr: 0, gref: gref.0, read_only: false }],
        )
        .unwrap();
        f.send(&slot);
        w.service.on_event(&mut w.client, port, &mut |_| {});
        assert_eq!(f.response().unwrap().status, Status::OK);
    }
    // The guest dies: the toolstack removes its xenstore home.
    w.xs.with(|m| m.rm(0, "/local/domain/5").unwrap());
    w.pump();
    assert!(w
        .changes
        .iter()
        .any(|c| matches!(c, Change::Closed { fe, why: "guest gone", .. } if *fe == GUEST)));
    assert!(w.service.backend.engine().guest_stats(GUEST).is_none());
    assert_eq!(w.platform.destroy_domain(GUEST), Some(DomainState::Dead), "no zombie");
    assert!(w.service.backend.engine().guest_stats(DomId(7)).is_some());
    assert_eq!(w.be_state(7).as_deref(), Some("4"), "guest2 still connected");
    let (_, list, _) = w.vgpu("list");
    assert!(list.contains("stale") || list.contains("no longer exists"), "{list}");
}

#[test]
fn a_ring_overrun_disconnects_only_that_guest() {
    let mut w = World::new();
    assert_eq!(w.vgpu("attach guest1 --ggtt-entries 64").0, 0);
    assert_eq!(w.vgpu("attach guest2 --ggtt-entries 64").0, 0);
    w.pump();
    let mut a = Front::connect(&mut w, GUEST);
    let _b = Front::connect(&mut w, DomId(7));
    w.pump();
    let pa = port_of(&w, GUEST);
    a.guest.write(a.ring.gfn, 0, &1000u32.to_le_bytes()).unwrap();
    w.service.on_event(&mut w.client, pa, &mut |c| w.changes.push(c));
    assert_eq!(w.be_state(5).as_deref(), Some("6"));
    assert!(w
        .changes
        .iter()
        .any(|c| matches!(c, Change::Closed { why: "ring protocol violation", .. })));
    assert_eq!(w.be_state(7).as_deref(), Some("4"));
    let _ = a.response();
}

#[test]
fn toolstack_detach_waits_for_the_backend_to_revoke_and_close() {
    let mut w = World::new();
    assert_eq!(w.vgpu("attach guest1 --ggtt-entries 64").0, 0);
    w.pump();
    let _f = Front::connect(&mut w, GUEST);
    w.pump();
    assert_eq!(w.be_state(5).as_deref(), Some("4"));
    // vgpu detach blocks until Closed: run it on a thread, serve here.
    let xs = w.xs.clone();
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
    assert!(w.xs.read("/local/domain/1/backend/vgpu/5/0").is_none(), "directories removed");
    w.pump();
    assert_eq!(w.service.devices().count(), 0);
}
