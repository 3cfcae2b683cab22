//! Mode `good`: map pages through the GGTT and a PPGTT context, and prove
//! with `DebugReadback` that each entry resolves to exactly its own bytes.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use gpuif::wire::{Entry, Op, GGTT_CONTEXT};
use gpuif::{Status, PAGE_SIZE};
use xenbus::Transport;

use super::{pattern, pattern_hash, Reporter};
use crate::{FrontError, Frontend, Granted, Platform};

/// What mode `good` maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoodConfig {
    /// Writable pages, mapped at GGTT indexes `0..pages` (first 5 one per
    /// request, the rest in one batch through directory pages).
    pub pages: u32,
    /// Read-only pages, used by every 8th PPGTT entry.
    pub ro_pages: u32,
    /// PPGTT entries, mapped in one batch.
    pub ppgtt_entries: u32,
    /// GPU virtual address of the first PPGTT entry (entries are 4 KiB apart).
    pub ppgtt_base: u64,
}

impl Default for GoodConfig {
    fn default() -> Self {
        GoodConfig { pages: 300, ro_pages: 64, ppgtt_entries: 512, ppgtt_base: 0x1_0000_0000 }
    }
}

/// What was mapped, with the hash each entry must read back as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapped {
    /// (slice index, expected hash).
    pub ggtt: Vec<(u32, u64)>,
    /// The PPGTT context.
    pub ctx: u16,
    /// (GPU virtual address, expected hash).
    pub ppgtt: Vec<(u64, u64)>,
}

/// Entries mapped one by one before the big GGTT batch.
const SINGLE_GGTT: usize = 5;

struct Verified {
    ok: u32,
    bad: u32,
    first_bad: Option<String>,
}

fn verify<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    ctx: u16,
    entries: impl Iterator<Item = (u64, u64)>,
) -> Result<Verified, FrontError<P, T>> {
    let mut v = Verified { ok: 0, bad: 0, first_bad: None };
    for (addr, want) in entries {
        let rsp = fe.readback(ctx, addr)?;
        if rsp.status == Status::OK && rsp.value == want {
            v.ok += 1;
            continue;
        }
        v.bad += 1;
        if v.first_bad.is_none() {
            v.first_bad = Some(if rsp.status == Status::OK {
                format!("{addr:#x} reads back {:#018x}, want {want:#018x}", rsp.value)
            } else {
                format!("{addr:#x} readback {}", rsp.status.name())
            });
        }
    }
    Ok(v)
}

fn grant_patterned<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    dom: u16,
    first_seq: u32,
    n: u32,
    read_only: bool,
) -> Result<Vec<(Granted, u64)>, FrontError<P, T>> {
    let mut out = Vec::with_capacity(n as usize);
    let mut page = [0u8; PAGE_SIZE];
    for seq in first_seq..first_seq + n {
        let g = fe.grant_page(read_only)?;
        pattern(dom, seq, &mut page);
        fe.write_page(&g, 0, &page);
        out.push((g, pattern_hash(dom, seq)));
    }
    Ok(out)
}

/// Mode `good` after the frontend connected. Prints the `ggtt`, `ppgtt` and
/// `good PASS|FAIL` lines; returns what was mapped for [`super::steady`].
pub fn run_good<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    cfg: &GoodConfig,
) -> Result<Mapped, String> {
    let result = good(fe, rep, cfg);
    match &result {
        Ok(_) => rep.say(format_args!("good PASS")),
        Err(why) => rep.say(format_args!("good FAIL {why}")),
    }
    result
}

fn good<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    cfg: &GoodConfig,
) -> Result<Mapped, String> {
    let dom = rep.dom();
    if !fe.is_connected() {
        fe.connect().map_err(|e| format!("connect: {e}"))?;
    }
    let info = fe.info();
    if cfg.pages == 0 || cfg.pages > info.ggtt_len {
        return Err(format!(
            "pages={} does not fit the GGTT slice of {}",
            cfg.pages, info.ggtt_len
        ));
    }
    let rw = grant_patterned(fe, dom, 0, cfg.pages, false).map_err(|e| format!("grant: {e}"))?;
    let ro = grant_patterned(fe, dom, cfg.pages, cfg.ro_pages, true)
        .map_err(|e| format!("grant: {e}"))?;

    // GGTT: the first entries one per request, the rest in one batch.
    let entries: Vec<Entry> = rw
        .iter()
        .enumerate()
        .map(|(i, (g, _))| Entry { addr: i as u64, gref: g.gref, read_only: false })
        .collect();
    let mut mapped = 0;
    let mut failure = None;
    let (single, rest) = entries.split_at(SINGLE_GGTT.min(entries.len()));
    for chunk in single.chunks(1).chain(core::iter::once(rest)).filter(|c| !c.is_empty()) {
        let r = fe.batch(Op::GgttMap, 0, chunk).map_err(|e| format!("GGTT map: {e}"))?;
        mapped += r.done;
        if r.status != Status::OK {
            failure = Some(format!("GGTT map: {} value={:#x}", r.status.name(), r.value));
            break;
        }
    }
    let ggtt: Vec<(u32, u64)> =
        rw.iter().enumerate().take(mapped as usize).map(|(i, (_, h))| (i as u32, *h)).collect();
    let v = verify(fe, GGTT_CONTEXT, ggtt.iter().map(|(i, h)| (*i as u64, *h)))
        .map_err(|e| format!("GGTT readback: {e}"))?;
    rep.say(format_args!("ggtt mapped={mapped} verified={} mismatches={}", v.ok, v.bad));
    if let Some(f) = failure {
        return Err(f);
    }
    if v.ok != cfg.pages {
        return Err(format!("GGTT {}", v.first_bad.unwrap_or_default()));
    }

    // PPGTT: one context, every entry in one batch, every 8th read-only.
    let ctx = fe.context_create().map_err(|e| format!("context: {e}"))?;
    let mut ppgtt = Vec::with_capacity(cfg.ppgtt_entries as usize);
    let entries: Vec<Entry> = (0..cfg.ppgtt_entries as usize)
        .map(|i| {
            let ((g, h), read_only) = if i % 8 == 7 && !ro.is_empty() {
                (ro[(i / 8) % ro.len()], true)
            } else {
                (rw[i % rw.len()], false)
            };
            let addr = cfg.ppgtt_base + (i as u64) * PAGE_SIZE as u64;
            ppgtt.push((addr, h));
            Entry { addr, gref: g.gref, read_only }
        })
        .collect();
    let r = fe.batch(Op::PpgttMap, ctx, &entries).map_err(|e| format!("PPGTT map: {e}"))?;
    ppgtt.truncate(r.done as usize);
    let v = verify(fe, ctx, ppgtt.iter().copied()).map_err(|e| format!("PPGTT readback: {e}"))?;
    rep.say(format_args!("ppgtt mapped={} verified={} mismatches={}", r.done, v.ok, v.bad));
    if r.status != Status::OK {
        return Err(format!("PPGTT map: {} value={:#x}", r.status.name(), r.value));
    }
    if v.ok != cfg.ppgtt_entries {
        return Err(format!("PPGTT {}", v.first_bad.unwrap_or_default()));
    }
    Ok(Mapped { ggtt, ctx, ppgtt })
}

/// Entries of each table re-read per round.
const SAMPLE: usize = 8;

/// Re-reads a rotating sample of `mapped` (round `round`); returns the
/// number of entries that no longer read back as their own bytes.
pub fn reverify<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    mapped: &Mapped,
    round: u32,
) -> Result<u32, FrontError<P, T>> {
    let pick = |len: usize, k: usize| (round as usize * SAMPLE + k * 37) % len.max(1);
    let mut bad = 0;
    if !mapped.ggtt.is_empty() {
        let it = (0..SAMPLE).map(|k| mapped.ggtt[pick(mapped.ggtt.len(), k)]);
        bad += verify(fe, GGTT_CONTEXT, it.map(|(i, h)| (i as u64, h)))?.bad;
    }
    if !mapped.ppgtt.is_empty() {
        let it = (0..SAMPLE).map(|k| mapped.ppgtt[pick(mapped.ppgtt.len(), k)]);
        bad += verify(fe, mapped.ctx, it)?.bad;
    }
    Ok(bad)
}
