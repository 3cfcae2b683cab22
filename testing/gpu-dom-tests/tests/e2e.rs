//! End to end on the host: guests running the real frontend (xenbus
//! handshake, grants, inline and directory-page batches) in the one host
//! world, the real backend service (`gpuif` ring and decoder, `gtt`,
//! directory pages by grant copy) on the model platform, and the model GPU
//! reading through the shadow tables and the strict IOMMU. The guests that
//! must do what the real frontend never does (an unattached guest's ring
//! the backend serves anyway, hostile slots) are the `Rig`'s raw frontends.

use std::cell::RefCell;
use std::rc::Rc;

use frontend::{Granted, Options};
use gpu_dom_tests::world::{frontend, TestFrontend, World};
use gpu_dom_tests::{engine_views, limits, pattern, PageInfo, Rig};
use gpuif::wire::Entry;
use gpuif::{fnv1a64, Op, RequestBuilder, Status, NO_FAILURE, PAGE_SIZE, RING_SIZE};
use gtt::{BusAddr, ContextId, DomId};
use platform_model::{check_isolation, DomainState, GpuFault, Hit, Space};

const A: DomId = DomId(2);
const B: DomId = DomId(3);
const SLICE: u32 = 1024;

fn ggtt_entry(index: u32, p: &PageInfo) -> Entry {
    Entry { addr: index as u64, gref: p.gref.0, read_only: false }
}

/// A page a real frontend filled with `pattern(dom, seq, ..)` and granted.
#[derive(Clone, Copy)]
struct Page {
    granted: Granted,
    seq: u32,
}

impl Page {
    fn entry(&self, addr: u64) -> Entry {
        Entry { addr, gref: self.granted.gref, read_only: self.granted.read_only }
    }
}

/// What a guest mapped, to check through the GPU afterwards.
struct Mapped {
    dom: DomId,
    ggtt: Vec<(u32, Page)>,
    root: BusAddr,
    ppgtt: Vec<(u64, Page)>,
}

fn expected(dom: DomId, p: &Page) -> Vec<u8> {
    (0..PAGE_SIZE).map(|o| pattern(dom, p.seq, o)).collect()
}

/// `n` pages granted by `fe` (read-only if asked), each filled with its pattern.
fn grant_pages(fe: &mut TestFrontend, dom: DomId, first_seq: u32, n: u32, ro: bool) -> Vec<Page> {
    (first_seq..first_seq + n)
        .map(|seq| {
            let granted = fe.grant_page(ro).expect("grant");
            let bytes: Vec<u8> = (0..PAGE_SIZE).map(|o| pattern(dom, seq, o)).collect();
            fe.write_page(&granted, 0, &bytes);
            Page { granted, seq }
        })
        .collect()
}

/// Guest `dom`'s real frontend maps 200 GGTT entries (5 batches of 1, then
/// one of 195, through directory pages) and 512 PPGTT entries in one batch
/// (every 8th page read-only).
fn populate(world: &Rc<RefCell<World>>, fe: &mut TestFrontend, dom: DomId) -> Mapped {
    let rw = grant_pages(fe, dom, 0, 256, false);
    let ro = grant_pages(fe, dom, 256, 44, true);
    let mut ggtt = Vec::new();
    for (i, p) in rw.iter().take(5).enumerate() {
        let rsp = fe.call(Op::GgttMap, 0, &[p.entry(i as u64)]).expect("answered");
        assert_eq!((rsp.status, rsp.done), (Status::OK, 1), "{dom:?} single GGTT map");
        ggtt.push((i as u32, *p));
    }
    let big: Vec<(u32, Page)> =
        rw.iter().enumerate().skip(5).take(195).map(|(i, p)| (i as u32, *p)).collect();
    let entries: Vec<Entry> = big.iter().map(|(i, p)| p.entry(*i as u64)).collect();
    let rsp = fe.call(Op::GgttMap, 0, &entries).expect("answered");
    assert_eq!((rsp.status, rsp.done, rsp.first_failure), (Status::OK, 195, NO_FAILURE));
    ggtt.extend(big);

    let ctx = fe.context_create().expect("a context");
    let root = {
        let mut w = world.borrow_mut();
        w.service().backend.engine().context_root(dom, ContextId(ctx)).unwrap()
    };
    let ppgtt: Vec<(u64, Page)> = (0..512u64)
        .map(|i| {
            let p = if i % 8 == 7 {
                ro[(i / 8) as usize % ro.len()]
            } else {
                rw[i as usize % rw.len()]
            };
            (0x7f00_0000_0000 + i * 4096, p)
        })
        .collect();
    let entries: Vec<Entry> = ppgtt.iter().map(|(va, p)| p.entry(*va)).collect();
    let rsp = fe.call(Op::PpgttMap, ctx, &entries).expect("answered");
    assert_eq!((rsp.status, rsp.done), (Status::OK, 512), "{rsp:?}");
    Mapped { dom, ggtt, root, ppgtt }
}

fn gpu_read(w: &World, space: Space, va: u64) -> Result<Hit<Vec<u8>>, GpuFault> {
    w.model.gpu().gpu_read(space, va, 4096)
}

fn assert_resolves_to_own_bytes(w: &World, base: u32, m: &Mapped) {
    for (i, p) in &m.ggtt {
        let got = gpu_read(w, Space::Ggtt, ((base + i) as u64) << 12);
        assert_eq!(got, Ok(Hit::Mapped(expected(m.dom, p))), "{:?} GGTT index {i}", m.dom);
    }
    for (va, p) in &m.ppgtt {
        let got = gpu_read(w, Space::Ppgtt { root: m.root }, *va);
        assert_eq!(got, Ok(Hit::Mapped(expected(m.dom, p))), "{:?} PPGTT {va:#x}", m.dom);
        if p.granted.read_only {
            let wr = w.model.gpu().gpu_write(Space::Ppgtt { root: m.root }, *va, &[0xee]);
            assert!(
                matches!(wr, Err(GpuFault::ReadOnlyEntry { .. })),
                "write through a read-only grant: {wr:?}"
            );
        }
    }
}

/// The isolation checker on the world, from the engine's account of whom it serves.
fn check(world: &Rc<RefCell<World>>) -> platform_model::CheckStats {
    let mut w = world.borrow_mut();
    let views = engine_views(w.service().backend.engine(), &[A, B]);
    check_isolation(&w.model, &views).expect("isolation invariants hold")
}

#[test]
fn two_guests_read_exactly_their_own_bytes_and_detach_revokes_only_one() {
    let world = World::new(true);
    world.borrow_mut().attach(A.0, 0, SLICE, 1000);
    world.borrow_mut().attach(B.0, SLICE, SLICE, 1000);
    let mut fa = frontend(&world, A.0, 1024, Options::default());
    let mut fb = frontend(&world, B.0, 1024, Options::default());
    fa.connect().expect("A connects");
    fb.connect().expect("B connects");
    let ma = populate(&world, &mut fa, A);
    let mb = populate(&world, &mut fb, B);
    assert_resolves_to_own_bytes(&world.borrow(), 0, &ma);
    assert_resolves_to_own_bytes(&world.borrow(), SLICE, &mb);
    let stats = check(&world);
    assert_eq!(stats.ggtt_mapped, 400);
    assert_eq!(stats.ppgtt_leaves, 1024);

    // Every request slot was read from shared memory exactly once:
    // AttachInfo at connect, 5 single maps, one of 195, the context, the PPGTT batch.
    for dom in [A, B] {
        let mut w = world.borrow_mut();
        let dev = w.service().devices().find(|d| d.fe == dom).expect("a device");
        let reads = dev.live.as_ref().expect("connected").ring.slot_reads.get();
        assert_eq!((reads, dev.requests().total()), (9, 9), "{dom:?}");
    }

    // The backend itself confirms, through the CPU, what an entry maps.
    let (va, p) = ma.ppgtt[3];
    let ctx = fa.record().contexts().next().expect("A's context");
    let rsp = fa.readback(ctx, va).expect("answered");
    assert_eq!((rsp.status, rsp.value), (Status::OK, fnv1a64(&expected(A, &p))));
    let rsp = fb.readback_ggtt(7).expect("answered");
    assert_eq!((rsp.status, rsp.value), (Status::OK, fnv1a64(&expected(B, &mb.ggtt[7].1))));

    // The toolstack detaches A: nothing of it resolves any more; B is untouched.
    world.borrow().detach(A.0);
    world.borrow_mut().step();
    let w = world.borrow();
    for (i, _) in &ma.ggtt {
        assert_eq!(
            gpu_read(&w, Space::Ggtt, (*i as u64) << 12),
            Ok(Hit::Scratch),
            "A's GGTT index {i} after detach"
        );
    }
    for (va, _) in &ma.ppgtt {
        assert!(
            !matches!(gpu_read(&w, Space::Ppgtt { root: ma.root }, *va), Ok(Hit::Mapped(_))),
            "A's {va:#x} after detach"
        );
    }
    assert_resolves_to_own_bytes(&w, SLICE, &mb);
    drop(w);
    check(&world);
    // Nothing of A is mapped by the backend: its domain dies cleanly.
    assert_eq!(world.borrow().model.destroy_domain(A), Some(DomainState::Dead));
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
