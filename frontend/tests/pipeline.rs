//! The pipeline against the real backend service on the platform model:
//! several requests in flight within the limit, responses matched by id
//! (anything else stops the pipeline), the same results and the same record
//! as the one-at-a-time path, and a backend that dies with requests in
//! flight.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use frontend::{Abandoned, BatchOutcome, BatchResult, Error, Options, Pipeline, Platform, Ticket};
use gpuif::ring::RING_SIZE;
use gpuif::wire::Request;
use gpuif::{Entry, Op, Response, RingError, Status, SLOT_SIZE};
use gtt::DomId;
use platform_model::DomainState;
use proptest::prelude::*;
use support::world::TestFrontend;
use support::{frontend, World};

const DOM: u16 = 7;
/// The domain id of the re-created gpu-dom.
const NEW: u16 = 12;
/// Where the ring's `rsp_prod` and first slot are (`gpuif::ring`).
const RSP_PROD: usize = 8;
const SLOTS: usize = 64;

type W = Rc<RefCell<World>>;

/// A connected frontend with `pages` granted pages; GGTT slice of `slice`.
fn connected(slice: u32, pages: usize) -> (W, TestFrontend, Vec<u32>) {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, slice, 200);
    let mut fe = frontend(&world, DOM, 1024, Options::default());
    fe.connect().expect("connects");
    let grefs = (0..pages).map(|_| fe.grant_page(false).unwrap().gref).collect();
    (world, fe, grefs)
}

/// Batch `b` maps `n` (at most 20) GGTT indexes from `b * 20` to the pages in turn.
fn map_batch(b: usize, n: usize, grefs: &[u32]) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            addr: (b * 20 + i) as u64,
            gref: grefs[(b + i) % grefs.len()],
            read_only: false,
        })
        .collect()
}

/// Drives `p` by hand as `finish` does, checking after every step that no
/// more than `depth` requests are in flight on the ring. Returns the
/// outcomes, the most seen in flight, and how many were in flight when
/// the last step began.
fn drive(p: &mut Pipeline, fe: &mut TestFrontend, depth: u32) -> (Result<(), String>, u32, u32) {
    let (mut peak, mut last) = (0, 0);
    for _ in 0..10_000 {
        if let Err(e) = p.pump(fe) {
            return (Err(e.to_string()), peak, last);
        }
        let now = fe.ring_in_flight();
        assert!(now <= depth, "{now} requests in flight, the limit is {depth}");
        peak = peak.max(now);
        last = now;
        if p.is_idle() {
            return (Ok(()), peak, last);
        }
        let t = fe.platform().now_ms() + 1_000;
        fe.platform().wait(t).unwrap();
    }
    panic!("the pipeline did not finish");
}

fn all(p: &mut Pipeline) -> Vec<(Ticket, BatchOutcome)> {
    std::iter::from_fn(|| p.take_next()).collect()
}

#[test]
fn no_more_requests_are_in_flight_than_the_depth_and_the_depth_is_reached() {
    for depth in [1, 4, 8, RING_SIZE] {
        let (world, mut fe, grefs) = connected(4096, 32);
        let mut p = Pipeline::new(depth);
        // 40 batches of 3 (inline) and 40 of 20 entries (one directory page each).
        let tickets: Vec<Ticket> = (0..80)
            .map(|b| {
                p.queue(Op::GgttMap, 0, &map_batch(b, if b % 2 == 0 { 3 } else { 20 }, &grefs))
            })
            .collect();
        let (r, peak, _) = drive(&mut p, &mut fe, depth);
        r.unwrap();
        assert_eq!(peak, depth, "the pipeline kept {depth} in flight");
        let out = all(&mut p);
        assert_eq!(out.iter().map(|(t, _)| *t).collect::<Vec<_>>(), tickets, "submission order");
        for (_, o) in out {
            assert_eq!(o.unwrap().status, Status::OK);
        }
        assert_eq!(fe.record().entries(), 40 * 3 + 40 * 20);
        let t = fe.disconnect().unwrap();
        assert!(t.still_mapped.is_empty());
        assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
    }
}

#[test]
fn results_can_be_taken_by_ticket_in_any_order() {
    let (_world, mut fe, grefs) = connected(256, 8);
    let mut p = Pipeline::new(8);
    let a = p.queue(Op::GgttMap, 0, &map_batch(0, 4, &grefs));
    let bad = Entry { addr: 9999, gref: grefs[0], read_only: false };
    let b = p.queue(Op::GgttMap, 0, &[bad]);
    p.wait_until(&mut fe, 0).unwrap();
    let rb = p.take(b).unwrap().unwrap();
    assert_eq!((rb.status, rb.done, rb.first_failure), (Status::INDEX_OUT_OF_SLICE, 0, Some(0)));
    assert_eq!(p.take(a).unwrap().unwrap().done, 4);
    assert_eq!(p.take(a), None, "taken once");
}

/// Writes a response with `id` into the ring's next response slot and
/// publishes it, as a broken backend would.
fn forge_response(fe: &mut TestFrontend, id: u64) {
    let ring = fe.ring_page().expect("connected");
    let mut b = [0u8; 4];
    fe.platform().read(ring, RSP_PROD, &mut b);
    let prod = u32::from_le_bytes(b);
    let slot = Response { done: 0, ..Response::new(id, Op::GgttMap as u8, Status::OK) }.emit();
    let at = SLOTS + (prod & (RING_SIZE - 1)) as usize * SLOT_SIZE;
    fe.platform().write(ring, at, &slot);
    fe.platform().write(ring, RSP_PROD, &prod.wrapping_add(1).to_le_bytes());
}

/// The id of the request at ring index `req_prod - back`.
fn sent_id(fe: &mut TestFrontend, back: u32) -> u64 {
    let ring = fe.ring_page().expect("connected");
    let mut b = [0u8; 4];
    fe.platform().read(ring, 0, &mut b);
    let index = u32::from_le_bytes(b).wrapping_sub(back);
    let mut slot = [0u8; SLOT_SIZE];
    fe.platform().read(ring, SLOTS + (index & (RING_SIZE - 1)) as usize * SLOT_SIZE, &mut slot);
    Request::raw_id(&slot)
}

/// Queues two batches and sends them (the backend does not run: nothing
/// here waits); returns their request ids.
fn two_in_flight(p: &mut Pipeline, fe: &mut TestFrontend, grefs: &[u32]) -> (u64, u64) {
    p.queue(Op::GgttMap, 0, &map_batch(0, 2, grefs));
    p.queue(Op::GgttMap, 0, &map_batch(1, 2, grefs));
    assert_eq!(p.pump(fe).unwrap(), 0);
    assert_eq!(fe.ring_in_flight(), 2);
    (sent_id(fe, 2), sent_id(fe, 1))
}

fn assert_stopped_by(
    p: &mut Pipeline,
    fe: &mut TestFrontend,
    world: &W,
    got: u64,
    expected: Option<u64>,
) {
    let want = RingError::UnexpectedResponse { got, expected };
    match p.pump(fe) {
        Err(Error::Ring(e)) => assert_eq!(e, want),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.broken(), Some(want));
    // Every unfinished batch says why; nothing more is sent, now or later.
    for (_, o) in all(p) {
        assert_eq!(o, Err(Abandoned::Broken(want)));
    }
    let in_flight = fe.ring_in_flight();
    let t = p.queue(Op::GgttUnmap, 0, &[Entry { addr: 0, gref: 0, read_only: false }]);
    assert_eq!(p.take(t), Some(Err(Abandoned::Broken(want))));
    assert!(matches!(p.pump(fe), Err(Error::Ring(_))));
    assert_eq!(fe.ring_in_flight(), in_flight, "a stopped pipeline sends nothing");
    // The frontend closes the device cleanly (no panic, every grant ends).
    let t = fe.disconnect().unwrap();
    assert!(t.still_mapped.is_empty(), "{t:?}");
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
}

#[test]
fn a_response_out_of_order_is_refused_and_stops_the_pipeline() {
    let (world, mut fe, grefs) = connected(256, 8);
    let mut p = Pipeline::new(8);
    let (first, second) = two_in_flight(&mut p, &mut fe, &grefs);
    forge_response(&mut fe, second);
    assert_stopped_by(&mut p, &mut fe, &world, second, Some(first));
}

#[test]
fn a_response_with_an_unknown_id_is_refused_and_stops_the_pipeline() {
    let (world, mut fe, grefs) = connected(256, 8);
    let mut p = Pipeline::new(8);
    let (first, _) = two_in_flight(&mut p, &mut fe, &grefs);
    forge_response(&mut fe, 0xdead_beef);
    assert_stopped_by(&mut p, &mut fe, &world, 0xdead_beef, Some(first));
}

#[test]
fn a_duplicate_response_is_refused_and_stops_the_pipeline() {
    let (world, mut fe, grefs) = connected(256, 8);
    let mut p = Pipeline::new(8);
    p.queue(Op::GgttMap, 0, &map_batch(0, 2, &grefs));
    let done = p.finish(&mut fe).unwrap();
    assert_eq!(done[0].1.unwrap().done, 2);
    let answered = sent_id(&mut fe, 1);
    p.queue(Op::GgttMap, 0, &map_batch(1, 2, &grefs));
    p.pump(&mut fe).unwrap();
    let next = sent_id(&mut fe, 1);
    forge_response(&mut fe, answered);
    assert_stopped_by(&mut p, &mut fe, &world, answered, Some(next));
}

/// Calls `reconnect` until it connects (bounded).
fn until_reconnected(fe: &mut TestFrontend) -> frontend::Reconnected {
    for _ in 0..200 {
        let deadline = fe.platform().now_ms() + 1_000;
        if let Some(r) = fe.reconnect(deadline).expect("reconnect") {
            return r;
        }
    }
    panic!("no reconnect within 200 s");
}

#[test]
fn a_backend_that_dies_with_requests_in_flight_fails_them_and_the_answered_ones_come_back() {
    let (world, mut fe, _) = connected(1024, 32);
    let mut p = Pipeline::new(8);
    let batches = 24;
    let batch = |fe: &TestFrontend, b: usize| {
        let grefs: Vec<u32> = fe.granted().iter().map(|g| g.gref).collect();
        map_batch(b, 10, &grefs)
    };
    let tickets: Vec<Ticket> =
        (0..batches).map(|b| p.queue(Op::GgttMap, 0, &batch(&fe, b))).collect();
    // gpu-dom dies once it has answered 8 of them (plus AttachInfo), with
    // the next 8 already on the ring.
    let before = world.borrow().service.as_ref().unwrap().backend.stats().requests;
    world.borrow_mut().kill_if = Some(Box::new(move |w| {
        w.service.as_ref().is_some_and(|s| s.backend.stats().requests >= before + 8)
    }));
    let (r, peak, at_death) = drive(&mut p, &mut fe, 8);
    assert!(r.unwrap_err().contains("directory is gone"));
    assert_eq!((peak, at_death), (8, 8), "8 requests were in flight when gpu-dom died");
    let out = all(&mut p);
    assert_eq!(out.iter().map(|(t, _)| *t).collect::<Vec<_>>(), tickets);
    let answered: Vec<usize> = (0..batches).filter(|&b| out[b].1.is_ok()).collect();
    assert_eq!(answered, (0..8).collect::<Vec<_>>());
    assert!(out[8..].iter().all(|(_, o)| *o == Err(Abandoned::Lost)));
    // The record holds what was answered, not what was in flight.
    assert_eq!(fe.record().entries(), 80);
    assert!(fe.record().ggtt().all(|(i, _)| i < 8 * 20));
    assert!(p.is_idle());

    fe.release().unwrap();
    let now = world.borrow().clock.get();
    world.borrow_mut().later.push((
        now + 1_000,
        Box::new(|w| {
            w.start_backend(NEW);
            w.restore(DOM);
        }),
    ));
    let r = until_reconnected(&mut fe);
    assert_eq!((r.backend_id, r.ggtt), (NEW, 80), "the answered batches were replayed");
    // The lost batches go again, with the new grants, through the same pipeline.
    let again: Vec<Ticket> =
        (8..batches).map(|b| p.queue(Op::GgttMap, 0, &batch(&fe, b))).collect();
    let out = p.finish(&mut fe).unwrap();
    assert_eq!(out.iter().map(|(t, _)| *t).collect::<Vec<_>>(), again);
    assert!(out.iter().all(|(_, o)| o.unwrap().status == Status::OK));
    let v = frontend::scenario::verify_record(&mut fe).unwrap();
    assert_eq!((v.ok, v.bad), (240, 0));
    let t = fe.disconnect().unwrap();
    assert!(t.still_mapped.is_empty());
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
}

/// One batch of the property: an op and its entries as (index, page or a
/// gref that is not ours, read-only).
#[derive(Clone, Debug)]
struct Spec {
    unmap: bool,
    entries: Vec<(u64, Option<usize>, bool)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let entry = (0u64..70, prop::option::weighted(0.95, 0usize..12), any::<bool>());
    (any::<bool>(), prop::collection::vec(entry, 0..40))
        .prop_map(|(unmap, entries)| Spec { unmap: unmap && entries.len() % 3 == 0, entries })
}

fn entries_of(s: &Spec, grefs: &[u32]) -> Vec<Entry> {
    s.entries
        .iter()
        .map(|&(addr, page, ro)| Entry {
            addr,
            gref: if s.unmap { 0 } else { page.map_or(60_000, |p| grefs[p]) },
            read_only: ro && !s.unmap,
        })
        .collect()
}

/// Runs `specs` one way or the other on a fresh world; returns the batch
/// results, the record, and what the backend reads back at every index.
fn run(
    specs: &[Spec],
    per_request: usize,
    depth: Option<u32>,
) -> (Vec<BatchResult>, frontend::record::Record, Vec<(Status, u64)>) {
    let (_world, mut fe, grefs) = connected(64, 12);
    fe.limit_entries_per_request(per_request);
    let results = match depth {
        None => specs
            .iter()
            .map(|s| {
                let op = if s.unmap { Op::GgttUnmap } else { Op::GgttMap };
                fe.batch(op, 0, &entries_of(s, &grefs)).unwrap()
            })
            .collect(),
        Some(d) => {
            let mut p = Pipeline::new(d);
            for s in specs {
                let op = if s.unmap { Op::GgttUnmap } else { Op::GgttMap };
                p.queue(op, 0, &entries_of(s, &grefs));
            }
            p.finish(&mut fe).unwrap().into_iter().map(|(_, o)| o.unwrap()).collect()
        }
    };
    let gpu = (0..64).map(|i| fe.readback_ggtt(i).map(|r| (r.status, r.value)).unwrap()).collect();
    (results, fe.record().clone(), gpu)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pipelined_batches_give_the_results_record_and_tables_of_one_at_a_time(
        specs in prop::collection::vec(spec(), 1..12),
        per_request in prop::sample::select(vec![2usize, 7, 16, 2048]),
        depth in prop::sample::select(vec![2u32, 8, 32]),
    ) {
        let one = run(&specs, per_request, None);
        let piped = run(&specs, per_request, Some(depth));
        prop_assert_eq!(&one.0, &piped.0, "batch results");
        prop_assert_eq!(&one.1, &piped.1, "the frontend's record");
        prop_assert_eq!(&one.2, &piped.2, "what the GPU tables hold");
    }
}

#[test]
fn the_pipeline_measurement_remaps_good_modes_entries_and_leaves_them_as_they_were() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 128, 200);
    let mut fe = frontend(&world, DOM, 1024, Options::default());
    let lines = support::Lines::default();
    let mut console = lines.console();
    let mut rep = frontend::scenario::Reporter::new("TESTGUEST", DOM, &mut console);
    let cfg = frontend::scenario::GoodConfig { pages: 64, ..Default::default() };
    frontend::scenario::run_good(&mut fe, &mut rep, &cfg).unwrap();
    let before = fe.record().clone();
    // A clock that advances 10 us per look: the two runs take the same
    // number of looks, so neither is faster here; the figure is the guest's.
    let mut t = 0;
    let mut now_us = || {
        t += 10;
        t
    };
    let b = frontend::scenario::measure_pipeline(&mut fe, 40, 8, &mut now_us).unwrap();
    assert_eq!((b.batches, b.entries, b.depth), (40, 64, 8));
    assert!(b.one_us > 0 && b.piped_us > 0, "{b:?}");
    assert_eq!(fe.record(), &before, "the entries were mapped again to the same pages");
    let v = frontend::scenario::verify_record(&mut fe).unwrap();
    assert_eq!((v.ok, v.bad), (64 + 512, 0));
}
