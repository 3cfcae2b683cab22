//! A rig put back to a checkpoint behaves exactly as it did the first time:
//! what a fuzz target relies on to start every input from the same state
//! without building the platform again.

use gpu_dom_tests::{limits, Rig};
use gpuif::wire::Entry;
use gpuif::{Op, RequestBuilder, Response};
use gtt::DomId;
use platform_model::Event;

const A: DomId = DomId(2);
const B: DomId = DomId(3);

/// GGTT maps, a context, PPGTT maps and a ring violation by `a`: every
/// response, and what the platform saw.
fn run(rig: &mut Rig, a: usize) -> (Vec<Option<Response>>, Vec<Event>) {
    let pages = rig.frontends[a].pages.clone();
    let mut out = Vec::new();
    let ggtt: Vec<Entry> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| Entry { addr: i as u64 * 3, gref: p.gref.0, read_only: p.read_only })
        .collect();
    let (slot, _) = rig.fe(a).request(Op::GgttMap, 0, &ggtt);
    out.push(rig.call(a, &slot));
    out.push(Some(rig.create_context(a)));
    let ctx = rig.frontends[a].contexts[0].0;
    let ppgtt: Vec<Entry> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| Entry { addr: (1 << 30) + i as u64 * 4096, gref: p.gref.0, read_only: true })
        .collect();
    let (slot, _) = rig.fe(a).request(Op::PpgttMap, ctx, &ppgtt);
    out.push(rig.call(a, &slot));
    let id = rig.fe(a).id();
    out.push(rig.call(a, &RequestBuilder::simple(id, Op::ContextCreate, 0)));
    rig.check().expect("isolation");
    // A runaway producer index: the backend disconnects the guest.
    rig.fe(a).poke(0, &1000u32.to_le_bytes());
    rig.serve(a);
    rig.check().expect("isolation after the disconnect");
    (out, rig.platform.trace())
}

#[test]
fn reset_to_a_checkpoint_replays_exactly_and_leaves_nothing_of_the_run_before() {
    let mut rig = Rig::new();
    let a = rig.add_guest(A, 64, Some(limits(0, 64, 48)));
    let b = rig.add_guest(B, 32, Some(limits(64, 64, 48)));
    rig.fe(a).grant_pages(8, false);
    rig.fe(a).grant_pages(4, true);
    rig.fe(b).grant_pages(2, false);
    let cp = rig.checkpoint();

    let first = run(&mut rig, a);
    assert!(!rig.frontends[a].connected, "the runaway index disconnected it");
    rig.reset(&cp);
    assert!(rig.frontends[a].connected);
    assert!(rig.gone.is_empty());
    assert!(rig.backend.engine().guest_stats(A).is_some(), "attached again");
    let gpu = rig.platform.gpu();
    assert_eq!(gpu.ggtt_entry(0), gpu.ggtt_entry(1000), "GGTT entry 0 is scratch again");
    assert_eq!(gpu.tlb_len(), 0);
    assert!(rig.platform.gpu().live_tables().is_empty());
    rig.check().expect("isolation at the checkpoint");
    let second = run(&mut rig, a);
    assert_eq!(first, second, "same responses, same platform events");
}

#[test]
#[should_panic(expected = "already served")]
fn checkpoint_after_the_backend_served_is_refused() {
    let mut rig = Rig::new();
    let a = rig.add_guest(A, 16, Some(limits(0, 64, 48)));
    rig.create_context(a);
    rig.checkpoint();
}
