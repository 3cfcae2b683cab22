//! The per-device counters the management endpoint exports, on the host:
//! the real `vgpu attach`, the real `Service`, a frontend by hand.

use gpu_dom_tests::service_world::{port_of, Front, World, GUEST};
use gpu_dom_tests::BACKEND;
use gpuif::wire::Entry;
use gpuif::{Op, RequestBuilder, Status};

fn result(c: &backend::RequestCounters, status: Status) -> u64 {
    let i = Status::ALL.iter().position(|s| *s == status).unwrap();
    c.by_result[i]
}

#[test]
fn connects_batches_results_ring_errors_and_disconnects_are_counted_per_device() {
    let mut w = World::new();
    assert_eq!(w.vgpu("attach guest1 --ggtt-entries 64").0, 0);
    w.pump();
    let mut f = Front::connect(&mut w, GUEST);
    w.pump();
    let port = port_of(&w, GUEST);
    let gfn = f.guest.alloc_pages(1).unwrap()[0];
    let gref = f.guest.grant(gfn, BACKEND, false).unwrap();
    let good = [Entry { addr: 1, gref: gref.0, read_only: false }];
    let bad = [Entry { addr: 9999, gref: gref.0, read_only: false }];
    for (i, entries) in [&good, &good, &bad].into_iter().enumerate() {
        f.send(&RequestBuilder::inline(10 + i as u64, Op::GgttMap, 0, entries).unwrap());
    }
    f.send(&RequestBuilder::inline(20, Op::AttachInfo, 0, &[]).unwrap());
    w.service.on_event(&mut w.client, port, &mut |_| {});
    let dev = w.service.devices().next().unwrap();
    assert_eq!(dev.guest_name.as_str(), "guest1", "vgpu attach wrote the name");
    let r = dev.requests();
    assert_eq!((r.total(), r.batches), (4, 3));
    assert_eq!(result(&r, Status::OK), 3);
    assert_eq!(result(&r, Status::INDEX_OUT_OF_SLICE), 1);
    assert_eq!(
        (dev.counters.connects, dev.counters.disconnects, dev.counters.ring_errors),
        (1, 0, 0)
    );

    // A runaway req_prod: one ring error, one disconnect; the requests stay counted.
    f.guest.write(f.ring.gfn, 0, &1000u32.to_le_bytes()).unwrap();
    w.service.on_event(&mut w.client, port, &mut |_| {});
    let dev = w.service.devices().next().unwrap();
    assert_eq!(
        (dev.counters.connects, dev.counters.disconnects, dev.counters.ring_errors),
        (1, 1, 1)
    );
    assert_eq!(dev.requests().total(), 4);
    assert!(dev.live.is_none());
}
