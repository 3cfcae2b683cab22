//! Option `dma-check` of mode `good` (`cargo xtask iommu` only): after
//! `good PASS`, the guest checks in its *own* view of its pages what
//! gpu-dom's passed-through test device did by DMA (see gpu-dom's
//! `iommu_test`):
//! - the last GGTT page (`seq = pages - 1`, writable) must now start with
//!   the device's test signature (`edu::test_signature`) and keep the rest
//!   of its bytes;
//! - the first read-only page (`seq = pages`, behind PPGTT entry 7) must be
//!   unchanged: the device's write to it was blocked.
//!
//! It publishes `data/dma-check-gfn` (the writable page's frame number) and
//! `data/dma-check-far-gfn` (a page of its RAM at a high frame number, never
//! granted, holding `edu::far_page_signature`), for gpu-dom's "a guest frame
//! number is not a bus address" checks, and waits, bounded, for the write. Lines: `dma-check rw ... PASS|FAIL`,
//! `dma-check ro ... PASS|FAIL`, `dma-check PASS|FAIL`.

use alloc::format;

use frontend::scenario::{pattern, Reporter};
use frontend::Platform;
use gpuif::PAGE_SIZE;
use unikernel::xen::page::OwnPage;
use xenbus::TxId;

use crate::guest::Fe;

/// How long the device's write may take to show.
const WAIT_MS: u64 = 300_000;
const XFER: usize = edu::MAX_TRANSFER as usize;

/// Runs the check; returns whether it passed.
pub fn run(fe: &mut Fe, rep: &mut Reporter<'_>, pages: u32, far: Option<OwnPage>) -> bool {
    let dom = rep.dom();
    let (Some(rw), Some(ro)) =
        (fe.granted().get(pages as usize - 1).copied(), fe.granted().get(pages as usize).copied())
    else {
        rep.say(format_args!("dma-check FAIL fewer than {} granted pages", pages + 1));
        return false;
    };
    let gfn = fe.platform().gfn(rw.id).unwrap_or(0);
    if let Err(e) = fe.xs().write(TxId::NONE, "data/dma-check-gfn", format!("{gfn:#x}").as_bytes())
    {
        rep.say(format_args!("dma-check FAIL cannot write data/dma-check-gfn: {e}"));
        return false;
    }
    let Some(mut far) = far else {
        rep.say(format_args!("dma-check FAIL no spare RAM page for the far-frame check"));
        return false;
    };
    let mut sig = [0u8; XFER];
    edu::far_page_signature(dom, &mut sig);
    far.write(0, &sig);
    let far_gfn = far.gfn();
    core::mem::forget(far); // kept for good: gpu-dom may still aim the device at it
    if let Err(e) =
        fe.xs().write(TxId::NONE, "data/dma-check-far-gfn", format!("{far_gfn:#x}").as_bytes())
    {
        rep.say(format_args!("dma-check FAIL cannot write data/dma-check-far-gfn: {e}"));
        return false;
    }
    rep.say(format_args!(
        "dma-check waiting: rw page seq={} gfn={gfn:#x}, ro page seq={pages}, far page gfn={far_gfn:#x}",
        pages - 1
    ));
    let mut page = [0u8; PAGE_SIZE];
    let deadline = fe.platform().now_ms().saturating_add(WAIT_MS);
    loop {
        fe.read_page(&rw, 0, &mut page);
        if &page[..8] == b"IOMMUDMA" {
            break;
        }
        let now = fe.platform().now_ms();
        if now >= deadline {
            rep.say(format_args!(
                "dma-check FAIL the device's write never showed in {} s",
                WAIT_MS / 1000
            ));
            return false;
        }
        let _ = fe.platform().wait(now + 200);
    }
    let mut sig = [0u8; XFER];
    edu::test_signature(dom, pages - 1, &mut sig);
    let mut want = [0u8; PAGE_SIZE];
    pattern(dom, pages - 1, &mut want);
    want[..XFER].copy_from_slice(&sig);
    let rw_ok = page == want;
    rep.say(format_args!(
        "dma-check rw seq={} gfn={gfn:#x}: the device's write is in my page ({} of {PAGE_SIZE} bytes as expected) {}",
        pages - 1,
        page.iter().zip(want.iter()).filter(|(a, b)| a == b).count(),
        if rw_ok { "PASS" } else { "FAIL" }
    ));
    fe.read_page(&ro, 0, &mut page);
    pattern(dom, pages, &mut want);
    let ro_ok = page == want;
    rep.say(format_args!(
        "dma-check ro seq={pages}: my read-only page is {} {}",
        if ro_ok { "unchanged" } else { "CHANGED" },
        if ro_ok { "PASS" } else { "FAIL" }
    ));
    let ok = rw_ok && ro_ok;
    rep.say(format_args!("dma-check {}", if ok { "PASS" } else { "FAIL" }));
    ok
}
