//! The whole backend request path under a hostile frontend: arbitrary bytes
//! become a sequence of raw request slots (any op, any entries, any grant
//! refs), directory-page contents and grants, sent by one attached guest
//! while a second attached guest holds mappings. After every step the model's
//! isolation checker must pass and the bystander's mappings must still read
//! back its bytes; nothing may panic.
#![no_main]

use gpu_dom_tests::{limits, Rig};
use gpuif::wire::Entry;
use gpuif::{Op, RequestBuilder, Status, PAGE_SIZE, SLOT_SIZE};
use gtt::DomId;
use libfuzzer_sys::fuzz_target;
use platform_model::{Hit, Space};

const HOSTILE: DomId = DomId(2);
const BYSTANDER: DomId = DomId(3);

fuzz_target!(|data: &[u8]| {
    let mut rig = Rig::new();
    let h = rig.add_guest(HOSTILE, 96, Some(limits(0, 64, 48)));
    let b = rig.add_guest(BYSTANDER, 32, Some(limits(64, 64, 48)));
    let pages = rig.fe(b).grant_pages(4, false);
    let entries: Vec<Entry> =
        pages.iter().enumerate().map(|(i, p)| Entry { addr: i as u64, gref: p.gref.0, read_only: false }).collect();
    assert_eq!(rig.batch(b, Op::GgttMap, 0, &entries).status, Status::OK);
    rig.fe(h).grant_pages(8, false);
    rig.fe(h).grant_pages(4, true);

    let mut input = data;
    while let Some((&tag, rest)) = input.split_first() {
        input = rest;
        match tag % 4 {
            // A raw request slot.
            0 | 1 => {
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
            2 => {
                let n = input.len().min(PAGE_SIZE);
                let (gfn, _) = rig.frontends[h].dir_pages[(tag as usize / 4) % 8];
                rig.frontends[h].guest.write(gfn, 0, &input[..n]).unwrap();
                input = &input[n..];
            }
            // A context, so PPGTT requests have something to hit.
            _ => {
                if rig.frontends[h].connected {
                    let id = rig.fe(h).id();
                    let _ = rig.call(h, &RequestBuilder::simple(id, Op::ContextCreate, 0));
                }
            }
        }
        if let Err(p) = rig.check() {
            panic!("isolation broken: {p:?}");
        }
    }
    for (i, p) in pages.iter().enumerate() {
        let got = rig.platform.gpu().gpu_read(Space::Ggtt, (64 + i as u64) << 12, 16);
        assert_eq!(got, Ok(Hit::Mapped(rig.frontends[b].expected(p)[..16].to_vec())), "bystander disturbed");
    }
});
