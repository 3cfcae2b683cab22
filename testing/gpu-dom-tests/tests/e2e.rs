//! End to end on the host: frontends in guest memory, the real backend
//! (`gpuif` ring and decoder, `gtt`, directory pages by grant copy) on the
//! model platform, and the model GPU reading through the shadow tables and
//! the strict IOMMU.

use gpu_dom_tests::{limits, PageInfo, Rig};
use gpuif::wire::{Entry, GGTT_CONTEXT};
use gpuif::{fnv1a64, Op, RequestBuilder, Status, NO_FAILURE, RING_SIZE};
use gtt::{BusAddr, DomId};
use platform_model::{DomainState, GpuFault, Hit, Space};

const A: DomId = DomId(2);
const B: DomId = DomId(3);
const SLICE: u32 = 1024;

fn ggtt_entry(index: u32, p: &PageInfo) -> Entry {
    Entry { addr: index as u64, gref: p.gref.0, read_only: false }
}

fn ppgtt_entry(va: u64, p: &PageInfo) -> Entry {
    Entry { addr: va, gref: p.gref.0, read_only: p.read_only }
}

/// What a guest mapped, to check through the GPU afterwards.
struct Mapped {
    ggtt: Vec<(u32, PageInfo)>,
    root: BusAddr,
    ppgtt: Vec<(u64, PageInfo)>,
}

/// Guest `fe` maps 200 GGTT entries (5 batches of 1, then one of 195) and
/// 512 PPGTT entries in one batch (every 8th page read-only).
fn populate(rig: &mut Rig, fe: usize, dom: DomId) -> Mapped {
    let rw = rig.fe(fe).grant_pages(256, false);
    let ro = rig.fe(fe).grant_pages(44, true);
    let mut ggtt = Vec::new();
    for (i, p) in rw.iter().take(5).enumerate() {
        let rsp = rig.batch(fe, Op::GgttMap, 0, &[ggtt_entry(i as u32, p)]);
        assert_eq!((rsp.status, rsp.done), (Status::OK, 1), "{dom:?} single GGTT map");
        ggtt.push((i as u32, *p));
    }
    let big: Vec<(u32, PageInfo)> =
        rw.iter().enumerate().skip(5).take(195).map(|(i, p)| (i as u32, *p)).collect();
    let entries: Vec<Entry> = big.iter().map(|(i, p)| ggtt_entry(*i, p)).collect();
    let rsp = rig.batch(fe, Op::GgttMap, 0, &entries);
    assert_eq!((rsp.status, rsp.done, rsp.first_failure), (Status::OK, 195, NO_FAILURE));
    ggtt.extend(big);

    let rsp = rig.create_context(fe);
    assert_eq!(rsp.status, Status::OK);
    let ctx = rig.fe(fe).contexts[0];
    let root = rig.backend.engine().context_root(dom, ctx).unwrap();
    let ppgtt: Vec<(u64, PageInfo)> = (0..512u64)
        .map(|i| {
            let p = if i % 8 == 7 {
                ro[(i / 8) as usize % ro.len()]
            } else {
                rw[i as usize % rw.len()]
            };
            (0x7f00_0000_0000 + i * 4096, p)
        })
        .collect();
    let entries: Vec<Entry> = ppgtt.iter().map(|(va, p)| ppgtt_entry(*va, p)).collect();
    let rsp = rig.batch(fe, Op::PpgttMap, ctx.0, &entries);
    assert_eq!((rsp.status, rsp.done), (Status::OK, 512), "{rsp:?}");
    Mapped { ggtt, root, ppgtt }
}

fn read(rig: &Rig, space: Space, va: u64) -> Result<Hit<Vec<u8>>, GpuFault> {
    rig.platform.gpu().gpu_read(space, va, 4096)
}

fn assert_resolves_to_own_bytes(rig: &Rig, fe: usize, base: u32, m: &Mapped) {
    let f = &rig.frontends[fe];
    for (i, p) in &m.ggtt {
        let got = read(rig, Space::Ggtt, ((base + i) as u64) << 12);
        assert_eq!(got, Ok(Hit::Mapped(f.expected(p))), "{:?} GGTT index {i}", f.dom);
    }
    for (va, p) in &m.ppgtt {
        let got = read(rig, Space::Ppgtt { root: m.root }, *va);
        assert_eq!(got, Ok(Hit::Mapped(f.expected(p))), "{:?} PPGTT {va:#x}", f.dom);
        if p.read_only {
            let w = rig.platform.gpu().gpu_write(Space::Ppgtt { root: m.root }, *va, &[0xee]);
            assert!(
                matches!(w, Err(GpuFault::ReadOnlyEntry { .. })),
                "write through a read-only grant: {w:?}"
            );
        }
    }
}

#[test]
fn two_guests_read_exactly_their_own_bytes_and_detach_revokes_only_one() {
    let mut rig = Rig::new();
    let a = rig.add_guest(A, 1024, Some(limits(0, SLICE, 1000)));
    let b = rig.add_guest(B, 1024, Some(limits(SLICE, SLICE, 1000)));
    let ma = populate(&mut rig, a, A);
    let mb = populate(&mut rig, b, B);
    assert_resolves_to_own_bytes(&rig, a, 0, &ma);
    assert_resolves_to_own_bytes(&rig, b, SLICE, &mb);
    let stats = rig.check().expect("isolation invariants hold");
    assert_eq!(stats.ggtt_mapped, 400);
    assert_eq!(stats.ppgtt_leaves, 1024);

    // Every request slot was read from shared memory exactly once.
    for fe in [a, b] {
        let requests = 5 + 1 + 1 + 1;
        assert_eq!(rig.frontends[fe].backend_slot_reads(), requests, "{:?}", rig.frontends[fe].dom);
    }

    // The backend itself confirms, through the CPU, what an entry maps.
    let (va, p) = ma.ppgtt[3];
    let id = rig.fe(a).id();
    let ctx = rig.frontends[a].contexts[0].0;
    let slot = RequestBuilder::inline(
        id,
        Op::DebugReadback,
        ctx,
        &[Entry { addr: va, gref: 0, read_only: false }],
    )
    .unwrap();
    let rsp = rig.call(a, &slot).unwrap();
    assert_eq!((rsp.status, rsp.value), (Status::OK, fnv1a64(&rig.frontends[a].expected(&p))));
    let slot = RequestBuilder::inline(
        rig.fe(b).id(),
        Op::DebugReadback,
        GGTT_CONTEXT,
        &[Entry { addr: 7, gref: 0, read_only: false }],
    )
    .unwrap();
    let rsp = rig.call(b, &slot).unwrap();
    assert_eq!(rsp.value, fnv1a64(&rig.frontends[b].expected(&mb.ggtt[7].1)));

    // A detaches: nothing of it resolves any more; B is untouched.
    rig.disconnect(a);
    for (i, _) in &ma.ggtt {
        assert_eq!(
            read(&rig, Space::Ggtt, (*i as u64) << 12),
            Ok(Hit::Scratch),
            "A's GGTT index {i} after detach"
        );
    }
    for (va, _) in &ma.ppgtt {
        assert!(
            !matches!(read(&rig, Space::Ppgtt { root: ma.root }, *va), Ok(Hit::Mapped(_))),
            "A's {va:#x} after detach"
        );
    }
    assert_resolves_to_own_bytes(&rig, b, SLICE, &mb);
    rig.check().expect("invariants hold after detach");
    // Nothing of A is mapped by the backend: its domain dies cleanly.
    assert_eq!(rig.platform.destroy_domain(A), Some(DomainState::Dead));
}

#[test]
fn a_guest_nobody_attached_gets_nothing_and_its_grants_are_not_touched() {
    let mut rig = Rig::new();
    let a = rig.add_guest(A, 64, Some(limits(0, 64, 100)));
    let c = rig.add_guest(DomId(9), 64, None);
    let pages = rig.fe(c).grant_pages(8, false);
    let entries: Vec<Entry> =
        pages.iter().enumerate().map(|(i, p)| ggtt_entry(i as u32, p)).collect();
    let rsp = rig.batch(c, Op::GgttMap, 0, &entries);
    assert_eq!((rsp.status, rsp.done), (Status::NOT_ATTACHED, 0));
    assert_eq!(rig.create_context(c).status, Status::NOT_ATTACHED);
    for p in &pages {
        assert_eq!(rig.frontends[c].guest.map_count(p.gref), 0);
    }
    assert_eq!(
        rig.platform.counters().grant_copies,
        0,
        "no directory page of an unattached guest was read"
    );
    let _ = a;
    rig.check().unwrap();
}

#[test]
fn hostile_requests_get_errors_and_the_other_guest_keeps_working() {
    let mut rig = Rig::new();
    let a = rig.add_guest(A, 256, Some(limits(0, 64, 100)));
    let h = rig.add_guest(B, 256, Some(limits(64, 64, 100)));
    let good = rig.fe(a).grant_pages(4, false);
    assert_eq!(rig.batch(a, Op::GgttMap, 0, &[ggtt_entry(0, &good[0])]).status, Status::OK);

    // A's grant ref, named by the hostile guest: it means H's own grant table
    // entry of that number, which H never filled, so Xen refuses.
    let rsp =
        rig.batch(h, Op::GgttMap, 0, &[Entry { addr: 0, gref: good[1].gref.0, read_only: false }]);
    assert_eq!(rsp.status, Status::GRANT_MAP_FAILED);
    // Out of its slice.
    let own = rig.fe(h).grant_pages(2, false);
    let rsp = rig.batch(h, Op::GgttMap, 0, &[ggtt_entry(64, &own[0])]);
    assert_eq!((rsp.status, rsp.value), (Status::INDEX_OUT_OF_SLICE, 64));
    // A read-only grant asked writable.
    let ro = rig.fe(h).grant_pages(1, true);
    let rsp = rig.batch(h, Op::GgttMap, 0, &[ggtt_entry(1, &ro[0])]);
    assert_eq!((rsp.status, rsp.detail), (Status::GRANT_MAP_FAILED, -1));
    // Read-only in the GGTT, which has no read-only entries.
    let rsp =
        rig.batch(h, Op::GgttMap, 0, &[Entry { addr: 1, gref: ro[0].gref.0, read_only: true }]);
    assert_eq!(rsp.status, Status::READ_ONLY_UNSUPPORTED);
    // A revoked grant.
    assert!(rig.frontends[h].guest.end_access(own[1].gref));
    let rsp = rig.batch(h, Op::GgttMap, 0, &[ggtt_entry(2, &own[1])]);
    assert_eq!(rsp.status, Status::GRANT_MAP_FAILED);
    // Garbage in a directory page: the decoded prefix is applied, the
    // undecodable entry and everything after it are refused.
    let entries: Vec<Entry> = (0..10).map(|i| ggtt_entry(3 + i, &own[0])).collect();
    let (slot, dirs) = rig.fe(h).request(Op::GgttMap, 0, &entries);
    let garbage = [0xa5u8; 16 * 4];
    rig.frontends[h].guest.write(dirs[0].0, 16 * 6, &garbage).unwrap();
    let rsp = rig.call(h, &slot).unwrap();
    assert_eq!((rsp.status, rsp.done, rsp.first_failure), (Status::BAD_ENTRY, 6, 6));
    assert!(rig.backend.engine().ggtt_lookup(B, 3 + 5).is_some());
    assert!(rig.backend.engine().ggtt_lookup(B, 3 + 6).is_none());
    // A directory page that is not granted.
    let slot =
        RequestBuilder::indirect(rig.fe(h).id(), Op::GgttMap, 0, 300, &[4000, 4001]).unwrap();
    let rsp = rig.call(h, &slot).unwrap();
    assert_eq!((rsp.status, rsp.value), (Status::BAD_DIRECTORY, 4000));
    // Malformed slots.
    let mut slot = RequestBuilder::simple(rig.fe(h).id(), Op::Barrier, 0);
    slot[8] = 0x77;
    assert_eq!(rig.call(h, &slot).unwrap().status, Status::BAD_OP);
    rig.check().expect("invariants hold after hostile requests");

    // A runaway req_prod: the backend disconnects H and revokes all it had.
    let reqs = rig.frontends[h].front_ring().in_flight();
    assert_eq!(reqs, 0);
    rig.fe(h).poke(0, &(RING_SIZE * 3).to_le_bytes());
    rig.serve(h);
    assert!(!rig.frontends[h].connected, "overrun must disconnect");
    assert!(rig.backend.engine().guest_stats(B).is_none());
    assert_eq!(rig.platform.destroy_domain(B), Some(DomainState::Dead));

    // A is untouched and still served.
    assert_eq!(read_ggtt(&rig, 0), rig.frontends[a].expected(&good[0]));
    assert_eq!(rig.batch(a, Op::GgttMap, 0, &[ggtt_entry(1, &good[1])]).status, Status::OK);
    rig.check().expect("invariants hold after the disconnect");
}

fn read_ggtt(rig: &Rig, index: u32) -> Vec<u8> {
    match rig.platform.gpu().gpu_read(Space::Ggtt, (index as u64) << 12, 4096) {
        Ok(Hit::Mapped(b)) => b,
        other => panic!("GGTT {index}: {other:?}"),
    }
}
