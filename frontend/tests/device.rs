//! The frontend core's handshake, batching, and teardown against the real
//! backend service on the platform model.

mod support;

use frontend::{EndAccessError, Error, Options};
use gpuif::{Entry, Op, Status};
use gtt::DomId;
use platform_model::DomainState;
use support::{frontend, World};
use xenbus::XenbusState;

const DOM: u16 = 7;

fn state(world: &std::rc::Rc<std::cell::RefCell<World>>, path: &str) -> Option<String> {
    world.borrow().xenstored.read(path)
}

#[test]
fn the_handshake_publishes_ring_port_and_version_in_one_transaction_and_connects() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 128, 100);
    let mut fe = frontend(&world, DOM, 256, Options::default());
    let info = fe.connect().expect("connects");
    assert_eq!(info.ggtt_len, 128);
    assert_eq!(info.max_pages, 100);
    assert_eq!(info.protocol_version, 1);
    let fe_dir = "/local/domain/7/device/vgpu/0";
    assert_eq!(state(&world, &format!("{fe_dir}/state")).unwrap(), "4");
    assert_eq!(state(&world, &format!("{fe_dir}/version")).unwrap(), "1");
    assert!(state(&world, &format!("{fe_dir}/ring-ref")).unwrap().parse::<u32>().unwrap() >= 8);
    assert!(state(&world, &format!("{fe_dir}/event-channel")).is_some());
    assert_eq!(state(&world, "/local/domain/1/backend/vgpu/7/0/state").unwrap(), "4");
    assert_eq!(fe.backend_state(), Some(XenbusState::Connected));
    assert_eq!(fe.max_entries(), 2048);
}

#[test]
fn a_conflicting_transaction_is_retried() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 128, 100);
    world.borrow().conflict_next_commits(DOM, 3);
    let mut fe = frontend(&world, DOM, 256, Options::default());
    fe.connect().expect("connects after retries");
    let counters = world.borrow().xenstored.counters(fe.xs().transport());
    assert_eq!((counters.conflicts, counters.commits), (3, 1));
}

#[test]
fn endless_conflicts_fail_the_connect_and_release_every_grant() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 128, 100);
    world.borrow().conflict_next_commits(DOM, 1000);
    let mut fe = frontend(&world, DOM, 256, Options::default());
    match fe.connect() {
        Err(Error::TransactionConflict { attempts: 16 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!fe.is_connected());
    // The ring and the directory pool were ended; the guest leaves no trace.
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
}

#[test]
fn a_missing_device_is_no_device_and_touches_nothing() {
    let world = World::new(true);
    let mut fe = frontend(&world, DOM, 64, Options::default());
    match fe.connect() {
        Err(e @ Error::NoDevice { .. }) => {
            assert!(e.to_string().contains("vgpu attach"), "says what to do: {e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn batches_beyond_2048_entries_are_split_and_report_whole_batch_indexes() {
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
    let r = fe.batch(Op::GgttMap, 0, &entries).unwrap();
    assert_eq!((r.status, r.done, r.requests, r.first_failure), (Status::OK, 2500, 2, None));
    for i in [0u32, 2047, 2048, 2499] {
        let rsp = fe.readback_ggtt(i).unwrap();
        assert_eq!(rsp.status, Status::OK, "index {i}");
    }
    // A refusal in the second request is reported at its index in the batch.
    let mut bad = entries.clone();
    bad[2100].addr = 5000; // outside the 3000-entry slice
    let r = fe.batch(Op::GgttMap, 0, &bad).unwrap();
    assert_eq!((r.status, r.done, r.first_failure), (Status::INDEX_OUT_OF_SLICE, 2100, Some(2100)));
    assert_eq!(r.value, 5000);
}

#[test]
fn a_grant_the_backend_maps_cannot_be_ended_until_it_is_unmapped() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    let mut fe = frontend(&world, DOM, 256, Options::default());
    fe.connect().unwrap();
    let g = fe.grant_page(false).unwrap();
    let e = Entry { addr: 3, gref: g.gref, read_only: false };
    assert_eq!(fe.call(Op::GgttMap, 0, &[e]).unwrap().status, Status::OK);
    assert_eq!(fe.end_access(&g), Err(EndAccessError::StillMapped { gref: g.gref }));
    let unmap = Entry { addr: 3, gref: 0, read_only: false };
    assert_eq!(fe.call(Op::GgttUnmap, 0, &[unmap]).unwrap().status, Status::OK);
    assert_eq!(fe.end_access(&g), Ok(()));
}

#[test]
fn disconnect_waits_for_closed_then_ends_every_grant_and_the_domain_dies_cleanly() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    let mut fe = frontend(&world, DOM, 256, Options::default());
    fe.connect().unwrap();
    let entries: Vec<Entry> = (0..40)
        .map(|i| Entry { addr: i, gref: fe.grant_page(false).unwrap().gref, read_only: false })
        .collect();
    assert_eq!(fe.batch(Op::GgttMap, 0, &entries).unwrap().done, 40);
    let ctx = fe.context_create().unwrap();
    let e = Entry { addr: 0x20_0000, gref: entries[0].gref, read_only: true };
    assert_eq!(fe.call(Op::PpgttMap, ctx, &[e]).unwrap().status, Status::OK);
    let t = fe.disconnect().unwrap();
    assert!(t.backend_closed);
    assert_eq!(t.still_mapped, Vec::<u32>::new());
    assert_eq!(t.grants_ended, 40 + 8 + 1);
    assert_eq!(state(&world, "/local/domain/7/device/vgpu/0/state").unwrap(), "6");
    assert_eq!(state(&world, "/local/domain/1/backend/vgpu/7/0/state").unwrap(), "6");
    assert!(!fe.is_connected());
    assert!(matches!(fe.call(Op::Barrier, 0, &[]), Err(Error::NotConnected)));
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
}

#[test]
fn a_backend_that_never_closes_is_waited_for_boundedly_and_mapped_grants_are_reported() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    let opts = Options { close_timeout_ms: 2_000, ..Options::default() };
    let mut fe = frontend(&world, DOM, 256, opts);
    fe.connect().unwrap();
    let g = fe.grant_page(false).unwrap();
    let e = Entry { addr: 1, gref: g.gref, read_only: false };
    assert_eq!(fe.call(Op::GgttMap, 0, &[e]).unwrap().status, Status::OK);
    // gpu-dom hangs: nothing serves xenstore any more.
    world.borrow_mut().service = None;
    let t = fe.disconnect().unwrap();
    assert!(!t.backend_closed);
    assert_eq!(world.borrow().clock.get(), 2_000);
    // The ring and the mapped page are still mapped by the (hung) backend.
    assert_eq!(t.still_mapped.len(), 2, "{t:?}");
    assert!(t.still_mapped.contains(&g.gref));
}
