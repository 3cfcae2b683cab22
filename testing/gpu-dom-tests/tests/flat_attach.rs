//! Flat attach: what gpu-dom asks xenstore for when one device changes does
//! not grow with the number of devices it serves, and nothing is missed.
//! The real `vgpu`, the real `Service`, the model xenstored counting
//! gpu-dom's requests (`Counters::requests`).

use backend::service::TOKEN_BACKEND;
use backend::Change;
use gpu_dom_tests::service_world::{Front, World};
use gtt::DomId;

/// Small limits, so that many guests fit the world's pools.
const LIMITS: &str = "--ggtt-entries 16 --contexts 1 --max-pages 8 --max-table-pages 1";

/// A world with `n` guests attached and Connected.
fn served(n: u16) -> World {
    let mut w = World::with_guests(n);
    for id in 10..10 + n {
        let (code, _, err) = w.vgpu(&format!("attach {} {LIMITS}", World::many_guest(id)));
        assert_eq!(code, 0, "{err}");
        w.pump();
        Front::connect(&mut w, DomId(id));
        w.pump();
        assert_eq!(w.be_state(id).as_deref(), Some("4"), "g{id} Connected");
    }
    w
}

/// gpu-dom's xenstore requests while `f` runs and the events it caused are delivered.
fn requests(w: &mut World, f: impl FnOnce(&mut World)) -> u32 {
    let before = w.xs.counters(w.client.transport()).requests;
    f(w);
    w.pump();
    w.xs.counters(w.client.transport()).requests - before
}

/// The toolstack touches one node of device `fe`'s backend directory.
fn touch(w: &mut World, fe: u16) {
    w.xs.write(0, &format!("/local/domain/1/backend/vgpu/{fe}/0/guest-name"), "renamed");
}

#[test]
fn a_backend_event_costs_as_many_requests_with_32_devices_as_with_1() {
    let (mut one, mut many) = (served(1), served(32));
    let small = requests(&mut one, |w| touch(w, 10));
    let large = requests(&mut many, |w| touch(w, 25));
    eprintln!("one backend event: {small} requests with 1 device, {large} with 32");
    assert!(small > 0, "the event was handled");
    assert_eq!(small, large);
    // What a full rescan (the old answer to every such event) costs.
    let full = |w: &mut World| {
        let before = w.xs.counters(w.client.transport()).requests;
        w.service.on_watch(&mut w.client, TOKEN_BACKEND, &mut |_| {});
        w.xs.counters(w.client.transport()).requests - before
    };
    let (full1, full32) = (full(&mut one), full(&mut many));
    eprintln!("a full rescan: {full1} requests with 1 device, {full32} with 32");
    assert!(full32 > 10 * small, "a full rescan grows with the devices: {full32}");
}

#[test]
fn attaching_and_connecting_one_more_guest_costs_the_same_with_32_devices_as_with_1() {
    let cost = |w: &mut World, id: u16| {
        let attach = requests(w, |w| {
            assert_eq!(w.vgpu(&format!("attach {} {LIMITS}", World::many_guest(id))).0, 0);
        });
        let connect = requests(w, |w| {
            Front::connect(w, DomId(id));
        });
        assert_eq!(w.be_state(id).as_deref(), Some("4"));
        (attach, connect)
    };
    // The 2nd guest of a 2-guest world against the 33rd of a 33-guest one.
    let (a1, c1) = cost(&mut served_with_room(1), 11);
    let (a32, c32) = cost(&mut served_with_room(32), 42);
    eprintln!("attach + connect: {a1} + {c1} requests with 1 device served, {a32} + {c32} with 32");
    assert_eq!((a1, c1), (a32, c32));
}

/// `n` guests served in a world with room (domains, pools) for one more.
fn served_with_room(n: u16) -> World {
    let mut w = World::with_guests(n + 1);
    for id in 10..10 + n {
        assert_eq!(w.vgpu(&format!("attach {} {LIMITS}", World::many_guest(id))).0, 0);
        w.pump();
        Front::connect(&mut w, DomId(id));
        w.pump();
    }
    w
}

#[test]
fn a_device_removed_or_added_among_32_is_noticed_and_the_others_stay_connected() {
    let mut w = served_with_room(32);
    let gone = 20u16;
    let (code, _, err) = w.vgpu(&format!("detach {} --force", World::many_guest(gone)));
    assert_eq!(code, 0, "{err}");
    w.pump();
    assert!(
        w.changes.iter().any(|c| matches!(c, Change::Closed { fe, .. } if fe.0 == gone)),
        "the removed device was revoked"
    );
    assert!(w.service.devices().all(|d| d.fe.0 != gone), "and forgotten");
    assert_eq!(w.vgpu(&format!("attach {} {LIMITS}", World::many_guest(42))).0, 0);
    w.pump();
    assert_eq!(w.be_state(42).as_deref(), Some("2"), "the new device reached InitWait");
    Front::connect(&mut w, DomId(42));
    w.pump();
    assert_eq!(w.be_state(42).as_deref(), Some("4"));
    for id in (10..42).filter(|&id| id != gone) {
        assert_eq!(w.be_state(id).as_deref(), Some("4"), "g{id} still Connected");
    }
}

#[test]
fn a_device_removed_while_its_events_were_lost_is_noticed_by_the_full_rescan() {
    let mut w = served(8);
    assert_eq!(w.vgpu(&format!("detach {} --force", World::many_guest(12))).0, 0);
    // The client's queue overflowed: the events are gone.
    while let Ok(Some(_)) = w.client.poll_event() {}
    let mut changes = Vec::new();
    w.service.on_lost_events(&mut w.client, &mut |c| changes.push(c));
    assert!(changes.iter().any(|c| matches!(c, Change::Closed { fe, .. } if fe.0 == 12)));
    assert!(w.service.devices().all(|d| d.fe.0 != 12));
}
