//! Mode `scale`: one of many small guests on one gpu-dom (`cargo xtask
//! scale`). It connects (timed on its own clock), maps its pages through
//! the GGTT in one batch, verifies a sample of them with `DebugReadback`,
//! then times round trips of a small request, and prints all of it on one
//! machine-readable line:
//!
//! `scale result connect_us=<n> map_us=<n> pages=<n> verified=<n>
//! mismatches=<n> rtt_n=<n> rtt_median_us=<n> rtt_mean_us=<n> rtt_max_us=<n>`
//!
//! followed by `scale PASS`, or `scale FAIL <why>` alone. The pages stay
//! mapped afterwards (the run adds up what every guest made GPU-reachable
//! at once), and the guest sends nothing more.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use gpuif::wire::{Entry, Op, GGTT_CONTEXT};
use gpuif::{Status, PAGE_SIZE};
use xenbus::Transport;

use super::fairness::{measure_rtt, Rtt};
use super::{pattern, pattern_hash, Reporter};
use crate::{Frontend, Platform};

/// What mode `scale` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleConfig {
    /// Writable pages, mapped at GGTT slice indexes `0..pages` in one batch.
    pub pages: u32,
    /// Entries read back (spread evenly over the pages, first and last included).
    pub verify: u32,
    /// Round trips timed (a 4-entry GGTT remap each).
    pub rounds: u32,
    /// The round trips stop once this much of the guest's time passed.
    pub rounds_limit_us: u64,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        ScaleConfig { pages: 256, verify: 32, rounds: 32, rounds_limit_us: 30_000_000 }
    }
}

/// What one scale guest measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScaleReport {
    /// From the start of the handshake to Connected, on the guest's clock.
    pub connect_us: u64,
    /// Granting and mapping every page (one request).
    pub map_us: u64,
    /// Pages mapped.
    pub pages: u32,
    /// Entries that read back their own bytes, and those that did not.
    pub verified: u32,
    pub mismatches: u32,
    /// The timed round trips.
    pub rtt: Rtt,
}

/// The slice indexes [`run_scale`] reads back: `verify` of `0..pages`,
/// evenly spread, the first and the last always among them.
pub fn sample(pages: u32, verify: u32) -> Vec<u32> {
    let k = verify.min(pages);
    match k {
        0 => Vec::new(),
        1 => alloc::vec![0],
        _ => (0..k).map(|i| (i as u64 * (pages as u64 - 1) / (k as u64 - 1)) as u32).collect(),
    }
}

/// Mode `scale` (see the module doc). Prints its lines; returns what it
/// measured, or why it failed.
pub fn run_scale<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    cfg: &ScaleConfig,
    now_us: &mut dyn FnMut() -> u64,
) -> Result<ScaleReport, String> {
    let result = scale(fe, rep.dom(), cfg, now_us);
    match &result {
        Ok(r) => {
            rep.say(format_args!(
                "scale result connect_us={} map_us={} pages={} verified={} mismatches={} \
                 rtt_n={} rtt_median_us={} rtt_mean_us={} rtt_max_us={}",
                r.connect_us,
                r.map_us,
                r.pages,
                r.verified,
                r.mismatches,
                r.rtt.n,
                r.rtt.median_us,
                r.rtt.mean_us,
                r.rtt.max_us
            ));
            rep.say(format_args!("scale PASS"));
        }
        Err(why) => rep.say(format_args!("scale FAIL {why}")),
    }
    result
}

fn scale<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    dom: u16,
    cfg: &ScaleConfig,
    now_us: &mut dyn FnMut() -> u64,
) -> Result<ScaleReport, String> {
    let t0 = now_us();
    if !fe.is_connected() {
        fe.connect().map_err(|e| format!("connect: {e}"))?;
    }
    let connect_us = now_us().saturating_sub(t0);
    let info = fe.info();
    if cfg.pages == 0 || cfg.pages > info.ggtt_len {
        return Err(format!(
            "pages={} does not fit the GGTT slice of {}",
            cfg.pages, info.ggtt_len
        ));
    }
    let t1 = now_us();
    let mut hashes = Vec::with_capacity(cfg.pages as usize);
    let mut entries = Vec::with_capacity(cfg.pages as usize);
    let mut page = [0u8; PAGE_SIZE];
    for seq in 0..cfg.pages {
        let g = fe.grant_page(false).map_err(|e| format!("grant page {seq}: {e}"))?;
        pattern(dom, seq, &mut page);
        fe.write_page(&g, 0, &page);
        hashes.push(pattern_hash(dom, seq));
        entries.push(Entry { addr: seq as u64, gref: g.gref, read_only: false });
    }
    let r = fe.batch(Op::GgttMap, 0, &entries).map_err(|e| format!("GGTT map: {e}"))?;
    let map_us = now_us().saturating_sub(t1);
    if r.status != Status::OK || r.done != cfg.pages {
        return Err(format!(
            "GGTT map of {} pages: {} after {} value={:#x}",
            cfg.pages,
            r.status.name(),
            r.done,
            r.value
        ));
    }
    let (mut verified, mut mismatches, mut first_bad) = (0, 0, None);
    for i in sample(cfg.pages, cfg.verify) {
        let rsp = fe.readback(GGTT_CONTEXT, i as u64).map_err(|e| format!("readback: {e}"))?;
        if rsp.status == Status::OK && rsp.value == hashes[i as usize] {
            verified += 1;
        } else {
            mismatches += 1;
            first_bad.get_or_insert(format!(
                "entry {i}: {} value={:#018x}",
                rsp.status.name(),
                rsp.value
            ));
        }
    }
    if let Some(bad) = first_bad {
        return Err(format!("{mismatches} entries did not read back their own bytes, first {bad}"));
    }
    let rtt = measure_rtt(fe, cfg.rounds, cfg.rounds_limit_us, now_us)?;
    if rtt.n == 0 {
        return Err("no round trip within the time limit".into());
    }
    Ok(ScaleReport { connect_us, map_us, pages: cfg.pages, verified, mismatches, rtt })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_spreads_over_the_pages_with_the_first_and_last() {
        assert_eq!(sample(256, 4), [0, 85, 170, 255]);
        assert_eq!(sample(3, 32), [0, 1, 2]);
        assert_eq!(sample(10, 1), [0]);
        assert!(sample(10, 0).is_empty());
        let s = sample(256, 32);
        assert_eq!(s.len(), 32);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((s[0], s[31]), (0, 255));
    }
}
