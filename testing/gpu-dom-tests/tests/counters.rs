//! The per-device counters the management endpoint exports, on the host:
//! the real `vgpu attach`, the real `Service`, the real frontend (and its
//! hostile hook for a runaway `req_prod`), in the one host world.

use frontend::Options;
use gpu_dom_tests::world::{frontend, World, WorldConfig, GUEST};
use gpuif::wire::Entry;
use gpuif::{Op, Status};

fn result(c: &backend::RequestCounters, status: Status) -> u64 {
    let i = Status::ALL.iter().position(|s| *s == status).unwrap();
    c.by_result[i]
}

#[test]
fn connects_batches_results_ring_errors_and_disconnects_are_counted_per_device() {
    let world = World::with_config(WorldConfig::two_guests());
    assert_eq!(world.borrow().vgpu("attach guest1 --ggtt-entries 64").0, 0);
    world.borrow_mut().pump();
    let mut fe = frontend(&world, GUEST.0, 64, Options::default());
    fe.connect().expect("connects (its last step: one AttachInfo request)");
    let page = fe.grant_page(false).unwrap();
    let good = [Entry { addr: 1, gref: page.gref, read_only: false }];
    let bad = [Entry { addr: 9999, gref: page.gref, read_only: false }];
    for entries in [&good, &good, &bad] {
        fe.call(Op::GgttMap, 0, entries).expect("answered");
    }
    {
        let mut w = world.borrow_mut();
        let dev = w.service().devices().next().unwrap();
        assert_eq!(dev.guest_name.as_str(), "guest1", "vgpu attach wrote the name");
        let r = dev.requests();
        assert_eq!((r.total(), r.batches), (4, 3));
        assert_eq!(result(&r, Status::OK), 3);
        assert_eq!(result(&r, Status::INDEX_OUT_OF_SLICE), 1);
        assert_eq!(
            (dev.counters.connects, dev.counters.disconnects, dev.counters.ring_errors),
            (1, 0, 0)
        );
    }

    // A runaway req_prod: one ring error, one disconnect; the requests stay counted.
    fe.poke_req_prod(1000).expect("pokes");
    let mut w = world.borrow_mut();
    w.step();
    let dev = w.service().devices().next().unwrap();
    assert_eq!(
        (dev.counters.connects, dev.counters.disconnects, dev.counters.ring_errors),
        (1, 1, 1)
    );
    assert_eq!(dev.requests().total(), 4);
    assert!(dev.live.is_none());
}
