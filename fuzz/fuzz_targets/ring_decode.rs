//! The backend's view of a hostile frontend's ring page: arbitrary bytes as
//! the shared page (indexes included). Taking requests and decoding them and
//! their entries must never panic, and must never take more than RING_SIZE
//! requests before a response is pushed.
#![no_main]

use gpuif::ring::{BackRing, LocalPage};
use gpuif::wire::{Entries, Entry, Request, ENTRY_SIZE};
use gpuif::{PAGE_SIZE, RING_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut page = LocalPage::default();
    let n = data.len().min(PAGE_SIZE);
    page.0[..n].copy_from_slice(&data[..n]);
    let mut ring = BackRing::attach(&page);
    let mut taken = 0;
    while let Ok(Some(slot)) = ring.take_request(&page) {
        taken += 1;
        assert!(taken <= RING_SIZE, "took more requests than the ring holds");
        if let Ok(req) = Request::parse(&slot) {
            if let Entries::Inline(b) = req.entries {
                assert_eq!(b.len(), req.nr as usize * ENTRY_SIZE);
                for (i, e) in b.chunks_exact(ENTRY_SIZE).enumerate() {
                    let _ = Entry::parse(e, req.op, i as u32);
                }
            }
            let _ = req.entries.directory_refs().count();
        }
    }
});
