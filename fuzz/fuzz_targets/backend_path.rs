//! The whole backend request path under a hostile frontend: arbitrary bytes
//! become a sequence of steps by one attached guest while a second attached
//! guest holds mappings: raw request slots (any op, any entries, any grant
//! refs), directory-page contents, contexts, grants ended, and GPU work over
//! everything mapped (which fills its TLB, so an unmap before the
//! invalidation is caught). After every step the model's isolation checker
//! must pass (a byte that changes nothing, a context past the limit, a TLB
//! already full, a grant already ended, is no step); at the end the
//! bystander's mappings must still read back its bytes; nothing may panic.
//!
//! The guests are built once per process and every input starts from that
//! same state ([`Rig::checkpoint`], [`Rig::reset`]): building the platform
//! again for each input was most of the time of an execution. The engine
//! is still built anew per input, sized to what the two guests' limits add
//! up to.
#![no_main]

use std::cell::RefCell;

use gpu_dom_tests::{pattern, Checkpoint, PageInfo, Rig, BACKEND};
use gpuif::wire::Entry;
use gpuif::{Op, RequestBuilder, Status, PAGE_SIZE, SLOT_SIZE};
use gtt::{Config, DomId, Limits};
use libfuzzer_sys::fuzz_target;
use platform_model::{Hit, PlatformConfig, Space};

const HOSTILE: DomId = DomId(2);
const BYSTANDER: DomId = DomId(3);
/// The hostile guest's limits: a 64-entry slice, 4 contexts, 48 pages, 32
/// table pages (enough for 4 contexts spread over several 2 MiB regions, few
/// enough that running out is reachable).
const LIMITS_H: Limits =
    Limits { ggtt_base: 0, ggtt_len: 64, max_contexts: 4, max_pages: 48, max_table_pages: 32 };
/// The bystander only maps GGTT entries.
const LIMITS_B: Limits =
    Limits { ggtt_base: 64, ggtt_len: 64, max_contexts: 1, max_pages: 16, max_table_pages: 4 };

/// The rig, its frontends (hostile, bystander), the bystander's pages, and
/// the checkpoint every input starts from.
struct Base {
    rig: Rig,
    h: usize,
    b: usize,
    pages: Vec<PageInfo>,
    start: Checkpoint,
}

/// Sizes fitted to the two guests: the engine is built anew for every input,
/// and `Rig::new`'s 4000 grant slots and 256 table pages cost more to set
/// up than most inputs take to run. Each engine capacity is what the
/// guests' limits add up to (what the toolstack promises); the batch size
/// is the protocol's largest.
fn sizes() -> (PlatformConfig, Config) {
    let table_pages = LIMITS_H.max_table_pages + LIMITS_B.max_table_pages;
    let pcfg = PlatformConfig {
        backend: BACKEND,
        backend_ram_pages: 16 + table_pages,
        table_pool_pages: table_pages,
        window_base_gfn: 0x10_0000,
        window_pages: 256,
        ggtt_entries: 1024,
    };
    let cfg = Config {
        max_guests: 2,
        grant_slots: (LIMITS_H.max_pages + LIMITS_B.max_pages) as usize,
        table_pages: table_pages as usize,
        contexts: usize::from(LIMITS_H.max_contexts + LIMITS_B.max_contexts),
        max_batch: gpuif::MAX_ENTRIES,
    };
    (pcfg, cfg)
}

fn base() -> Base {
    let (pcfg, cfg) = sizes();
    let mut rig = Rig::with_config(pcfg, cfg);
    let h = rig.add_guest(HOSTILE, 96, Some(LIMITS_H));
    let b = rig.add_guest(BYSTANDER, 32, Some(LIMITS_B));
    let pages = rig.fe(b).grant_pages(4, false);
    rig.fe(h).grant_pages(8, false);
    rig.fe(h).grant_pages(4, true);
    let start = rig.checkpoint();
    Base { rig, h, b, pages, start }
}

thread_local! {
    static BASE: RefCell<Base> = RefCell::new(base());
}

fuzz_target!(|data: &[u8]| BASE.with(|base| run(&mut base.borrow_mut(), data)));

fn run(base: &mut Base, data: &[u8]) {
    let Base { rig, h, b, pages, start } = base;
    let (h, b) = (*h, *b);
    rig.reset(start);
    let entries: Vec<Entry> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| Entry { addr: i as u64, gref: p.gref.0, read_only: false })
        .collect();
    assert_eq!(rig.batch(b, Op::GgttMap, 0, &entries).status, Status::OK);

    let mut input = data;
    while let Some((&tag, rest)) = input.split_first() {
        input = rest;
        match tag % 8 {
            // A raw request slot.
            0..=3 => {
                if input.len() < SLOT_SIZE {
                    break;
                }
                let mut slot = [0u8; SLOT_SIZE];
                slot.copy_from_slice(&input[..SLOT_SIZE]);
                input = &input[SLOT_SIZE..];
                if !rig.frontends[h].connected {
                    break;
                }
                rig.fe(h).push(&slot);
                rig.serve(h);
                let _ = rig.fe(h).take_response();
            }
            // Directory page contents.
            4 => {
                let n = input.len().min(PAGE_SIZE);
                let (gfn, _) = rig.frontends[h].dir_pages[(tag as usize / 8) % 8];
                rig.frontends[h].guest.write(gfn, 0, &input[..n]).unwrap();
                input = &input[n..];
            }
            // A context, so PPGTT requests have something to hit: only while
            // the guest is below its limit (a refused create is a raw
            // slot's job). Otherwise nothing happens, and nothing is
            // checked: one-byte steps that did nothing were most of the
            // steps of the corpus.
            5 => {
                let below = rig.backend.engine().contexts(HOSTILE).count()
                    < usize::from(LIMITS_H.max_contexts);
                if !rig.frontends[h].connected || !below {
                    continue;
                }
                let id = rig.fe(h).id();
                let _ = rig.call(h, &RequestBuilder::simple(id, Op::ContextCreate, 0));
            }
            // The GPU runs a workload over everything mapped: every
            // translation is then in its TLB, so a grant unmapped before
            // the TLB is invalidated is caught. If the TLB held them all
            // already, nothing changed: nothing to check.
            6 => {
                if rig.platform.gpu().touch_all() == 0 {
                    continue;
                }
            }
            // The guest ends its grant of one of its pages (Xen refuses
            // while the backend maps it, and nothing changes); later
            // requests naming it fail.
            _ => {
                let Some((&which, rest)) = input.split_first() else { break };
                input = rest;
                let f = &rig.frontends[h];
                let p = f.pages[usize::from(which) % f.pages.len()];
                let live = f.guest.grant_entry(p.gref).is_some_and(|e| e.flags != 0);
                if !live || !f.guest.end_access(p.gref) {
                    continue;
                }
            }
        }
        if let Err(p) = rig.check() {
            panic!("isolation broken: {p:?}");
        }
    }
    for (i, p) in pages.iter().enumerate() {
        let va = u64::from(LIMITS_B.ggtt_base + i as u32) << 12;
        let got = rig.platform.gpu().gpu_read(Space::Ggtt, va, 16);
        let want: Vec<u8> = (0..16).map(|o| pattern(BYSTANDER, p.seq, o)).collect();
        assert_eq!(got, Ok(Hit::Mapped(want)), "bystander disturbed");
    }
}
