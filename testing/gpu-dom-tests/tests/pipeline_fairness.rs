//! Fairness with pipelining: a guest that keeps all 32 ring slots full of
//! 2048-entry requests gets one bounded turn per round (the service's
//! budget, `backend::service::BUDGET` units: 1 per request plus 1 per
//! entry), and another guest's request, posted while the first is served,
//! is answered in the next round. Rounds are modelled as gpu-dom's loop
//! runs them (`src/domu.rs`, `serve_devices`): every device whose port
//! fired or that had requests left gets one `Service::on_event` per round;
//! a notification that arrives during a round waits for the next.

use backend::service::BUDGET;
use gpu_dom_tests::service_world::{port_of, Front, World};
use gpu_dom_tests::BACKEND;
use gpuif::ring::RING_SIZE;
use gpuif::wire::{Entry, Op, RequestBuilder, ENTRIES_PER_DIR_PAGE, MAX_DIR_PAGES};
use gpuif::{Status, MAX_ENTRIES, PAGE_SIZE};
use gtt::DomId;

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
fn big_request_pages(guest: &Front) -> [u32; MAX_DIR_PAGES] {
    let data: Vec<u32> = guest
        .guest
        .alloc_pages(16)
        .unwrap()
        .into_iter()
        .map(|gfn| guest.guest.grant(gfn, BACKEND, false).unwrap().0)
        .collect();
    let entries: Vec<Entry> = (0..MAX_ENTRIES)
        .map(|i| Entry { addr: i as u64, gref: data[i % data.len()], read_only: false })
        .collect();
    let mut refs = [0u32; MAX_DIR_PAGES];
    let mut page = [0u8; PAGE_SIZE];
    for (k, chunk) in entries.chunks(ENTRIES_PER_DIR_PAGE).enumerate() {
        let gfn = guest.guest.alloc_pages(1).unwrap()[0];
        RequestBuilder::dir_page(chunk, &mut page).unwrap();
        guest.guest.write(gfn, 0, &page).unwrap();
        refs[k] = guest.guest.grant(gfn, BACKEND, true).unwrap().0;
    }
    refs
}

/// Refills the pipeliner's ring to all 32 slots; returns how many it posted.
fn fill(front: &mut Front, refs: &[u32; MAX_DIR_PAGES]) -> u32 {
    let mut posted = 0;
    while front.front.free_requests() > 0 {
        let id = front.next_id;
        let slot = RequestBuilder::indirect(id, Op::GgttMap, 0, MAX_ENTRIES as u16, refs).unwrap();
        front.next_id += 1;
        front.send(&slot);
        posted += 1;
    }
    posted
}

fn answered(front: &mut Front, status: Status) -> u32 {
    let mut n = 0;
    while let Some(rsp) = front.response() {
        assert_eq!(rsp.status, status, "{rsp:?}");
        n += 1;
    }
    n
}

#[test]
fn a_guest_filling_all_32_slots_gets_one_bounded_turn_per_round_and_the_other_is_served_next_round()
{
    assert_eq!(BUDGET.div_ceil(1 + MAX_ENTRIES as u32), MAX_PER_TURN, "BUDGET is {BUDGET}");
    let mut w = World::new();
    let (code, out, err) = w.vgpu("attach guest1 --ggtt-entries 2048");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(w.vgpu("attach guest2 --ggtt-entries 64").0, 0);
    w.pump();
    let mut piper = Front::connect(&mut w, PIPELINER);
    let mut other = Front::connect(&mut w, OTHER);
    w.pump();
    let (pport, oport) = (port_of(&w, PIPELINER), port_of(&w, OTHER));
    let big = big_request_pages(&piper);
    let gfn = other.guest.alloc_pages(1).unwrap()[0];
    let gref = other.guest.grant(gfn, BACKEND, false).unwrap().0;

    assert_eq!(fill(&mut piper, &big), RING_SIZE);
    let mut other_waiting: Option<u32> = None; // the round it posted in
    let mut served_total = 0;
    for round in 0..ROUNDS {
        // Every slot is full when its turn begins: it could take them all.
        assert_eq!(piper.front.in_flight(), RING_SIZE, "round {round}");
        let more = w.service.on_event(&mut w.client, pport, &mut |_| {});
        let served = answered(&mut piper, Status::OK);
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
            w.service.on_event(&mut w.client, oport, &mut |_| {});
            let rsp = other.response().expect("served in the round after it was posted");
            assert_eq!((rsp.status, rsp.done), (Status::OK, 1));
            assert_eq!(round, posted + 1);
        }
        // It posts while this round runs (after the pipeliner's turn).
        let e = Entry { addr: u64::from(round % 64), gref, read_only: false };
        let slot = RequestBuilder::inline(other.next_id, Op::GgttMap, 0, &[e]).unwrap();
        other.next_id += 1;
        other.send(&slot);
        other_waiting = Some(round);
        // The pipeliner refills what was answered.
        assert_eq!(fill(&mut piper, &big), served);
    }
    assert_eq!(served_total, ROUNDS * MAX_PER_TURN, "every turn used its whole budget");
}
