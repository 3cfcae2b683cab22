//! Fairness with pipelining: a guest that keeps all 32 ring slots full of
//! 2048-entry requests gets one bounded turn per round (the service's
//! budget, `backend::service::BUDGET` units: 1 per request plus 1 per
//! entry), and another guest's request, posted while the first is served,
//! is answered in the next round. Rounds are modelled as gpu-dom's loop
//! runs them (`src/domu.rs`, `serve_devices`): every device whose port
//! fired or that had requests left gets one turn per round, which is what
//! `Service::on_event` does, one `Backend::serve` with `BUDGET`; a
//! notification that arrives during a round waits for the next. The guests
//! are [`RawFrontend`]s on a [`Rig`]: the test writes the ring slots itself
//! so that all 32 are full when each turn begins.

use backend::service::BUDGET;
use gpu_dom_tests::{RawFrontend, Rig, BACKEND};
use gpuif::ring::RING_SIZE;
use gpuif::wire::{Entry, Op, RequestBuilder, ENTRIES_PER_DIR_PAGE, MAX_DIR_PAGES};
use gpuif::{Status, MAX_ENTRIES, PAGE_SIZE};
use gtt::{DomId, Limits};

/// The pipelining guest (guest1) and the other one (guest2).
const PIPELINER: DomId = DomId(5);
const OTHER: DomId = DomId(7);
/// Rounds watched.
const ROUNDS: u32 = 12;

/// Requests of one turn at most: a turn stops once `BUDGET` (4096) units
/// are spent, and a 2048-entry request costs 2049. A fixed figure, so that
/// a budget raised out of bounds, or not passed to `serve`, fails the test.
const MAX_PER_TURN: u32 = 2;

/// The pipeliner's requests: 2048 GGTT entries through 8 directory pages,
/// written once and never rewritten (every request in flight names them);
/// returns the pages' grant references.
fn big_request_pages(front: &RawFrontend) -> [u32; MAX_DIR_PAGES] {
    let guest = &front.guest;
    let data: Vec<u32> = guest
        .alloc_pages(16)
        .unwrap()
        .into_iter()
        .map(|gfn| guest.grant(gfn, BACKEND, false).unwrap().0)
        .collect();
    let entries: Vec<Entry> = (0..MAX_ENTRIES)
        .map(|i| Entry { addr: i as u64, gref: data[i % data.len()], read_only: false })
        .collect();
    let mut refs = [0u32; MAX_DIR_PAGES];
    let mut page = [0u8; PAGE_SIZE];
    for (k, chunk) in entries.chunks(ENTRIES_PER_DIR_PAGE).enumerate() {
        let gfn = guest.alloc_pages(1).unwrap()[0];
        RequestBuilder::dir_page(chunk, &mut page).unwrap();
        guest.write(gfn, 0, &page).unwrap();
        refs[k] = guest.grant(gfn, BACKEND, true).unwrap().0;
    }
    refs
}

/// Refills the pipeliner's ring to all 32 slots; returns how many it posted.
fn fill(front: &mut RawFrontend, refs: &[u32; MAX_DIR_PAGES]) -> u32 {
    let mut posted = 0;
    while front.front_ring().free_requests() > 0 {
        let id = front.id();
        let slot = RequestBuilder::indirect(id, Op::GgttMap, 0, MAX_ENTRIES as u16, refs).unwrap();
        front.push(&slot);
        posted += 1;
    }
    posted
}

fn answered(front: &mut RawFrontend, status: Status) -> u32 {
    let mut n = 0;
    while let Some(rsp) = front.take_response() {
        assert_eq!(rsp.status, status, "{rsp:?}");
        n += 1;
    }
    n
}

/// One device's turn, as `Service::on_event` takes it: returns whether
/// requests were left.
fn turn(rig: &mut Rig, fe: usize) -> bool {
    let (conn, page) = rig.frontends[fe].backend_side();
    rig.backend.serve(conn, page, BUDGET).expect("no ring protocol error").more
}

fn limits(ggtt_base: u32, ggtt_len: u32) -> Limits {
    Limits { ggtt_base, ggtt_len, max_contexts: 1, max_pages: 64, max_table_pages: 1 }
}

#[test]
fn a_guest_filling_all_32_slots_gets_one_bounded_turn_per_round_and_the_other_is_served_next_round()
{
    assert_eq!(BUDGET.div_ceil(1 + MAX_ENTRIES as u32), MAX_PER_TURN, "BUDGET is {BUDGET}");
    let mut rig = Rig::new();
    let piper = rig.add_guest(PIPELINER, 64, Some(limits(0, 2048)));
    let other = rig.add_guest(OTHER, 64, Some(limits(2048, 64)));
    let big = big_request_pages(&rig.frontends[piper]);
    let gfn = rig.frontends[other].guest.alloc_pages(1).unwrap()[0];
    let gref = rig.frontends[other].guest.grant(gfn, BACKEND, false).unwrap().0;

    assert_eq!(fill(rig.fe(piper), &big), RING_SIZE);
    let mut other_waiting: Option<u32> = None; // the round it posted in
    let mut served_total = 0;
    for round in 0..ROUNDS {
        // Every slot is full when its turn begins: it could take them all.
        assert_eq!(rig.fe(piper).front_ring().in_flight(), RING_SIZE, "round {round}");
        let more = turn(&mut rig, piper);
        let served = answered(rig.fe(piper), Status::OK);
        assert!(
            (1..=MAX_PER_TURN).contains(&served),
            "round {round}: one turn answered {served} of 32 requests of {MAX_ENTRIES} entries; \
             the budget of {BUDGET} units allows {}",
            MAX_PER_TURN
        );
        assert!(more, "requests were left: the device stays ready for the next round");
        served_total += served;
        // The other guest's request was posted during the last round: it is
        // served in this one, after at most one bounded turn of the pipeliner.
        if let Some(posted) = other_waiting.take() {
            turn(&mut rig, other);
            let rsp =
                rig.fe(other).take_response().expect("served in the round after it was posted");
            assert_eq!((rsp.status, rsp.done), (Status::OK, 1));
            assert_eq!(round, posted + 1);
        }
        // It posts while this round runs (after the pipeliner's turn).
        let e = Entry { addr: u64::from(round % 64), gref, read_only: false };
        let id = rig.fe(other).id();
        let slot = RequestBuilder::inline(id, Op::GgttMap, 0, &[e]).unwrap();
        rig.fe(other).push(&slot);
        other_waiting = Some(round);
        // The pipeliner refills what was answered.
        assert_eq!(fill(rig.fe(piper), &big), served);
    }
    assert_eq!(served_total, ROUNDS * MAX_PER_TURN, "every turn used its whole budget");
}
