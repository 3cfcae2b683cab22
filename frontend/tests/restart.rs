//! gpu-dom dies and comes back: the frontend core notices at every protocol
//! state (and in the middle of a batch), ends the grants Xen released,
//! reconnects to the backend the toolstack names, and replays its mappings,
//! against the real backend service on the platform model.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use frontend::{Error, Options, Platform, Reconnected};
use gpuif::{Entry, Op, Status, PAGE_SIZE};
use gtt::DomId;
use platform_model::DomainState;
use support::world::TestFrontend;
use support::{frontend, World};
use xenbus::XenbusState;

const DOM: u16 = 7;
/// The domain id of the re-created gpu-dom.
const NEW: u16 = 12;

type W = Rc<RefCell<World>>;

fn read(world: &W, path: &str) -> Option<String> {
    world.borrow().xenstored.read(path)
}

/// The supervisor: gpu-dom comes back as `NEW` at `at` ms and the device is moved.
fn bring_back_at(world: &W, at: u64) {
    world.borrow_mut().later.push((
        at,
        Box::new(|w| {
            w.start_backend(NEW);
            w.restore(DOM);
        }),
    ));
}

/// Calls `reconnect` until it connects (bounded).
fn until_reconnected(fe: &mut TestFrontend) -> Reconnected {
    for _ in 0..200 {
        let deadline = fe.platform().now_ms() + 1_000;
        match fe.reconnect(deadline) {
            Ok(Some(r)) => return r,
            Ok(None) => {}
            Err(e) => panic!("reconnect: {e}"),
        }
    }
    panic!("no reconnect within 200 s");
}

/// Pages filled with distinct bytes; their hashes.
fn patterned(fe: &mut TestFrontend, n: usize, read_only: bool) -> Vec<(frontend::Granted, u64)> {
    let mut out = Vec::new();
    for i in 0..n {
        let g = fe.grant_page(read_only).unwrap();
        let mut page = [0u8; PAGE_SIZE];
        frontend::scenario::pattern(
            DOM,
            (out.len() + i * 1000 + read_only as usize) as u32,
            &mut page,
        );
        fe.write_page(&g, 0, &page);
        out.push((g, gpuif::fnv1a64(&page)));
    }
    out
}

fn assert_all_verified(fe: &mut TestFrontend, entries: usize) {
    let v = frontend::scenario::verify_record(fe).unwrap();
    assert_eq!((v.ok as usize, v.bad), (entries, 0), "{:?}", v.first_bad);
}

fn assert_clean_end(world: &W, fe: &mut TestFrontend) {
    let t = fe.disconnect().unwrap();
    assert!(t.still_mapped.is_empty(), "{t:?}");
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
}

#[test]
fn a_backend_that_dies_before_initwait_ends_the_handshake_at_once_and_the_next_one_serves() {
    let world = World::new(false); // gpu-dom is up but has not taken the device up yet
    world.borrow_mut().attach(DOM, 0, 64, 100);
    world.borrow_mut().later.push((2_000, Box::new(|w| w.kill_backend(false))));
    let mut fe = frontend(&world, DOM, 256, Options::default());
    match fe.connect() {
        Err(Error::BackendClosed { state: None }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(world.borrow().clock.get(), 2_000, "not the 30 s handshake timeout");
    bring_back_at(&world, 5_000);
    let r = until_reconnected(&mut fe);
    assert_eq!((r.backend_id, r.regranted, r.ggtt, r.requests), (NEW, 0, 0, 0));
    assert_eq!(fe.info().ggtt_len, 64);
    assert_eq!(fe.device().unwrap().backend_id, NEW);
    assert_eq!(read(&world, "/local/domain/12/backend/vgpu/7/0/state").unwrap(), "4");
    assert_clean_end(&world, &mut fe);
}

#[test]
fn a_backend_that_dies_at_initwait_after_we_said_initialised_ends_the_connect() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    world.borrow_mut().kill_if = Some(Box::new(|w| {
        w.xenstored.read("/local/domain/7/device/vgpu/0/state").as_deref() == Some("3")
            && w.xenstored.read("/local/domain/1/backend/vgpu/7/0/state").as_deref() == Some("2")
    }));
    let mut fe = frontend(&world, DOM, 256, Options::default());
    match fe.connect() {
        Err(Error::BackendClosed { state: None }) => {}
        other => panic!("{other:?}"),
    }
    assert!(world.borrow().service.is_none(), "gpu-dom died in the handshake");
    // The failed connect ended the ring's and the directory pool's grants:
    // Xen had released the dead backend's mappings.
    assert_eq!(fe.granted_pages(), 0);
    bring_back_at(&world, 4_000);
    let r = until_reconnected(&mut fe);
    assert_eq!(r.backend_id, NEW);
    assert!(fe.is_connected());
    assert_clean_end(&world, &mut fe);
}

#[test]
fn a_connected_guest_notices_releases_reconnects_and_gets_every_mapping_back_with_its_context_ids()
{
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 256, 200);
    let mut fe = frontend(&world, DOM, 1024, Options::default());
    fe.connect().unwrap();
    let rw = patterned(&mut fe, 40, false);
    let ro = patterned(&mut fe, 8, true);
    let ggtt: Vec<Entry> = rw
        .iter()
        .enumerate()
        .map(|(i, (g, _))| Entry { addr: 3 * i as u64, gref: g.gref, read_only: false })
        .collect();
    assert_eq!(fe.batch(Op::GgttMap, 0, &ggtt).unwrap().done, 40);
    // Contexts 0, 1, 2; 1 is destroyed: 0 and 2 must keep their ids.
    let ctxs: Vec<u16> = (0..3).map(|_| fe.context_create().unwrap()).collect();
    assert_eq!(ctxs, [0, 1, 2]);
    fe.context_destroy(1).unwrap();
    for ctx in [0u16, 2] {
        let entries: Vec<Entry> = (0..100u64)
            .map(|i| {
                let (g, _) = if i % 4 == 3 { ro[i as usize % 8] } else { rw[i as usize % 40] };
                Entry { addr: 0x4000_0000 + i * 0x1000, gref: g.gref, read_only: i % 4 == 3 }
            })
            .collect();
        assert_eq!(fe.batch(Op::PpgttMap, ctx, &entries).unwrap().done, 100);
    }
    assert_eq!(fe.record().entries(), 240);
    assert_all_verified(&mut fe, 240);

    world.borrow_mut().kill_backend(false);
    let t0 = world.borrow().clock.get();
    match fe.idle(t0 + 60_000).unwrap() {
        frontend::Happening::BackendClosed(None) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(world.borrow().clock.get(), t0, "noticed at once, from the watch");
    let r = fe.release().unwrap();
    assert_eq!((r.grants_ended, r.still_mapped.len(), r.pages_kept), (48 + 8 + 1, 0, 48));
    assert_eq!(read(&world, "/local/domain/7/device/vgpu/0/state").unwrap(), "6");
    match fe.barrier() {
        Err(Error::NotConnected) => {}
        other => panic!("requests end with an error while the backend is gone: {other:?}"),
    }
    bring_back_at(&world, t0 + 4_000);
    let r = until_reconnected(&mut fe);
    assert_eq!((r.backend_id, r.regranted, r.contexts, r.ggtt, r.ppgtt), (NEW, 48, 2, 40, 200));
    assert_eq!(r.outage_ms, 4_000);
    assert_eq!(fe.record().contexts().collect::<Vec<_>>(), [0, 2]);
    assert_eq!(fe.record().entries(), 240);
    // gpu-dom kept nothing: every entry is served again by the new one.
    assert_all_verified(&mut fe, 240);
    // New grants, to the new backend; read-only ones stay read-only.
    let grants: Vec<u32> = fe.granted().iter().map(|g| g.gref).collect();
    for gref in grants {
        let e = fe.platform().guest.grant_entry(gtt::GrantRef(gref)).unwrap();
        assert_eq!(e.domid, NEW);
    }
    let rsp = fe.readback(2, 0x4000_0000 + 3 * 0x1000).unwrap();
    assert_eq!(rsp.status, Status::OK);
    assert_clean_end(&world, &mut fe);
}

#[test]
fn a_backend_that_dies_in_the_middle_of_a_batch_fails_it_and_the_applied_part_comes_back() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 3000, 2600);
    let mut fe = frontend(&world, DOM, 4096, Options::default());
    fe.connect().unwrap();
    let pages: Vec<_> = (0..2500).map(|_| fe.grant_page(false).unwrap()).collect();
    let entries: Vec<Entry> = pages
        .iter()
        .enumerate()
        .map(|(i, g)| Entry { addr: i as u64, gref: g.gref, read_only: false })
        .collect();
    // Two requests (2048 + 452): gpu-dom dies after answering the first.
    world.borrow_mut().kill_if =
        Some(Box::new(|w| w.service.as_ref().is_some_and(|s| s.backend.stats().requests >= 2)));
    match fe.batch(Op::GgttMap, 0, &entries) {
        Err(e @ Error::BackendClosed { state: None }) => assert!(e.is_backend_closed()),
        other => panic!("{other:?}"),
    }
    assert_eq!(fe.record().entries(), 2048, "what the first response confirmed");
    let r = fe.release().unwrap();
    assert!(r.still_mapped.is_empty());
    let now = world.borrow().clock.get();
    bring_back_at(&world, now + 1_000);
    let r = until_reconnected(&mut fe);
    assert_eq!((r.ggtt, r.requests), (2048, 1));
    // The batch is sent again, whole, with the new grants.
    let again: Vec<Entry> = fe
        .granted()
        .iter()
        .enumerate()
        .map(|(i, g)| Entry { addr: i as u64, gref: g.gref, read_only: false })
        .collect();
    let r = fe.batch(Op::GgttMap, 0, &again).unwrap();
    assert_eq!((r.status, r.done), (Status::OK, 2500));
    for i in [0u32, 2047, 2048, 2499] {
        assert_eq!(fe.readback_ggtt(i).unwrap().status, Status::OK, "index {i}");
    }
    assert_clean_end(&world, &mut fe);
}

#[test]
fn a_backend_that_dies_while_we_close_counts_as_closed_and_every_grant_ends() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    let mut fe = frontend(&world, DOM, 256, Options::default());
    fe.connect().unwrap();
    let g = fe.grant_page(false).unwrap();
    let e = Entry { addr: 1, gref: g.gref, read_only: false };
    assert_eq!(fe.call(Op::GgttMap, 0, &[e]).unwrap().status, Status::OK);
    world.borrow_mut().kill_if = Some(Box::new(|w| {
        w.xenstored.read("/local/domain/7/device/vgpu/0/state").as_deref() == Some("5")
    }));
    let t = fe.disconnect().unwrap();
    assert!(world.borrow().service.is_none(), "gpu-dom died while we closed");
    assert!(t.backend_closed && t.still_mapped.is_empty(), "{t:?}");
    assert_eq!(t.backend_state, None);
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
}

#[test]
fn a_crashed_gpu_dom_kept_by_preserve_holds_the_grants_until_it_is_destroyed() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    let opts = Options { response_timeout_ms: 2_000, ..Options::default() };
    let mut fe = frontend(&world, DOM, 256, opts);
    fe.connect().unwrap();
    let g = fe.grant_page(false).unwrap();
    let e = Entry { addr: 1, gref: g.gref, read_only: false };
    assert_eq!(fe.call(Op::GgttMap, 0, &[e]).unwrap().status, Status::OK);
    // on_crash = "preserve": the domain stays, its xenstore too, its mappings too.
    world.borrow_mut().kill_backend(true);
    match fe.barrier() {
        Err(Error::NoResponse { .. }) => {}
        other => panic!("a preserved gpu-dom answers nothing, and says nothing: {other:?}"),
    }
    let r = fe.release().unwrap();
    assert_eq!(r.still_mapped.len(), 2, "the ring and the mapped page: {r:?}");
    assert_eq!(fe.grants_held(), 2);
    // Destroying the guest now would leave a zombie: the page is mapped.
    assert_eq!(fe.platform().guest.map_count(gtt::GrantRef(g.gref)), 1);
    // `xl destroy gpu-dom`: Xen releases the mappings; the guest ends them.
    let now = world.borrow().clock.get();
    world.borrow_mut().later.push((now + 1_000, Box::new(|w| w.reap_backend())));
    bring_back_at(&world, now + 3_000);
    let r = until_reconnected(&mut fe);
    assert_eq!((r.regranted, r.ggtt), (1, 1));
    assert_eq!(fe.grants_held(), 0);
    assert_all_verified(&mut fe, 1);
}

#[test]
fn a_device_detached_while_the_backend_is_gone_frees_every_page() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    let mut fe = frontend(&world, DOM, 256, Options::default());
    fe.connect().unwrap();
    let pages = patterned(&mut fe, 10, false);
    let entries: Vec<Entry> = pages
        .iter()
        .enumerate()
        .map(|(i, (g, _))| Entry { addr: i as u64, gref: g.gref, read_only: false })
        .collect();
    fe.batch(Op::GgttMap, 0, &entries).unwrap();
    world.borrow_mut().kill_backend(false);
    fe.release().unwrap();
    world.borrow().detach(DOM);
    let deadline = fe.platform().now_ms() + 1_000;
    match fe.reconnect(deadline) {
        Err(Error::NoDevice { .. }) => {}
        other => panic!("{other:?}"),
    }
    let t = fe.disconnect().unwrap();
    assert_eq!((t.grants_ended, t.still_mapped.len()), (10, 0), "{t:?}");
    assert_eq!(fe.granted_pages(), 0);
    assert!(read(&world, "/local/domain/7/device/vgpu/0/state").is_none(), "not written back");
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
}

#[test]
fn the_guest_keeps_its_state_closed_until_a_new_backend_appears_and_never_reconnects_to_the_dead_one(
) {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    let mut fe = frontend(&world, DOM, 256, Options::default());
    fe.connect().unwrap();
    world.borrow_mut().kill_backend(false);
    fe.release().unwrap();
    // Nothing new for a minute: reconnect keeps saying "not yet", boundedly.
    for _ in 0..60 {
        let deadline = fe.platform().now_ms() + 1_000;
        assert!(fe.reconnect(deadline).unwrap().is_none());
    }
    assert_eq!(read(&world, "/local/domain/7/device/vgpu/0/state").unwrap(), "6");
    assert_eq!(fe.lost().unwrap().backend_id, 1);
    bring_back_at(&world, fe.platform().now_ms() + 500);
    let r = until_reconnected(&mut fe);
    assert_eq!(r.backend_id, NEW);
    assert_eq!(fe.backend_state(), Some(XenbusState::Connected));
    assert!(fe.lost().is_none());
    assert_clean_end(&world, &mut fe);
}
