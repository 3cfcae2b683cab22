//! The figures of `cargo xtask scale`, read from its serial log: one line
//! per guest (`E2E: scale k=<k> dom=<id> attach_ms=<ms> vgpu_ms=<ms> connect_us=...`),
//! gpu-dom's pools, the next guest's `vgpu attach`, gpu-dom's heap (its
//! `backend built` and `Connected` lines); and the report made of them.
//!
//! Every figure is a QEMU TCG time on a shared host, not a hardware time:
//! the report says so.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One guest's line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guest {
    /// Guests served once this one is Connected (it included).
    pub k: u32,
    pub dom: u32,
    /// `vgpu attach` to Connected, dom0's clock (0.2 s polls).
    pub attach_ms: u64,
    /// Of it, the `vgpu attach` command itself (dom0's clock).
    pub vgpu_ms: u64,
    /// The guest's handshake, its own clock.
    pub connect_us: u64,
    pub map_us: u64,
    pub pages: u64,
    pub verified: u64,
    pub mismatches: u64,
    pub rtt_n: u64,
    pub rtt_median_us: u64,
    pub rtt_mean_us: u64,
    pub rtt_max_us: u64,
}

/// One of gpu-dom's pools (`data/vgpu-pool/<name>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub capacity: u64,
    pub reserved: u64,
    pub used: u64,
}

impl Pool {
    pub fn full(&self) -> bool {
        self.reserved >= self.capacity
    }
}

/// Everything the run measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub guests: Vec<Guest>,
    pub pools: Vec<Pool>,
    /// `vgpu attach` of one guest more: its exit status and first line.
    pub next_exit: i32,
    pub next_says: String,
    /// gpu-dom's heap used at `backend built`, and the largest after a Connected, KiB.
    pub heap_boot_kib: Option<u64>,
    pub heap_connected_kib: Option<u64>,
    /// `xl shutdown` of gpu-dom with every guest attached.
    pub shutdown: Option<String>,
}

/// `key=value` words of `text` (other words ignored).
fn pairs(text: &str) -> BTreeMap<&str, &str> {
    text.split_whitespace().filter_map(|w| w.split_once('=')).collect()
}

fn num(p: &BTreeMap<&str, &str>, key: &str, line: &str) -> Result<u64, String> {
    p.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no number `{key}=` in the scale line `{line}`"))
}

fn guest(line: &str) -> Result<Guest, String> {
    let p = pairs(line);
    let n = |k| num(&p, k, line);
    Ok(Guest {
        k: n("k")? as u32,
        dom: n("dom")? as u32,
        attach_ms: n("attach_ms")?,
        vgpu_ms: n("vgpu_ms")?,
        connect_us: n("connect_us")?,
        map_us: n("map_us")?,
        pages: n("pages")?,
        verified: n("verified")?,
        mismatches: n("mismatches")?,
        rtt_n: n("rtt_n")?,
        rtt_median_us: n("rtt_median_us")?,
        rtt_mean_us: n("rtt_mean_us")?,
        rtt_max_us: n("rtt_max_us")?,
    })
}

/// The `<n> KiB used` figure after `heap ` in a gpu-dom line.
fn heap_kib(line: &str) -> Option<u64> {
    let at = line.find("heap ")? + "heap ".len();
    line[at..].split_whitespace().next()?.parse().ok()
}

/// Reads the figures of a run of `n` guests; an error says what is
/// missing or wrong (a guest line absent or twice, a mismatch, no pools).
pub fn parse(serial: &str, n: u32) -> Result<Figures, String> {
    let mut f = Figures::default();
    let mut next = None;
    for line in serial.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(at) = line.find("E2E: scale k=") {
            f.guests.push(guest(&line[at + "E2E: scale ".len()..])?);
        } else if let Some(at) = line.find("E2E: scale pool ") {
            let rest = &line[at + "E2E: scale pool ".len()..];
            let p = pairs(rest);
            f.pools.push(Pool {
                name: p.get("name").unwrap_or(&"?").to_string(),
                capacity: num(&p, "capacity", line)?,
                reserved: num(&p, "reserved", line)?,
                used: num(&p, "used", line)?,
            });
        } else if let Some(at) = line.find("E2E: scale next guest: exit=") {
            let rest = &line[at + "E2E: scale next guest: exit=".len()..];
            let (code, says) = rest.split_once(' ').unwrap_or((rest, ""));
            next = Some((code.parse::<i32>().unwrap_or(-1), says.trim().to_string()));
        } else if let Some(at) = line.find("E2E: scale shutdown: ") {
            f.shutdown = Some(line[at + "E2E: scale shutdown: ".len()..].to_string());
        } else if line.contains("gpu-dom: backend built:") {
            f.heap_boot_kib = heap_kib(line).or(f.heap_boot_kib);
        } else if line.contains("gpu-dom: vgpu dom") && line.contains(" Connected; heap ") {
            f.heap_connected_kib = f.heap_connected_kib.max(heap_kib(line));
        }
    }
    for k in 1..=n {
        match f.guests.iter().filter(|g| g.k == k).count() {
            1 => {}
            0 => return Err(format!("no line for guest {k} of {n} (`E2E: scale k={k} `)")),
            c => return Err(format!("{c} lines for guest {k}")),
        }
    }
    if let Some(g) = f.guests.iter().find(|g| g.mismatches > 0 || g.verified == 0) {
        return Err(format!(
            "guest {} (domid {}): verified {} mismatches {}",
            g.k, g.dom, g.verified, g.mismatches
        ));
    }
    if f.pools.len() != gpuif::keys::POOLS.len() {
        return Err(format!("{} pool lines, want {}", f.pools.len(), gpuif::keys::POOLS.len()));
    }
    (f.next_exit, f.next_says) = next.ok_or("no `E2E: scale next guest:` line")?;
    Ok(f)
}

/// The groups the report uses, by guests served: 1, 2-3, 4-7, ... 32-63, 64.
pub const GROUPS: [(u32, u32); 7] = [(1, 1), (2, 3), (4, 7), (8, 15), (16, 31), (32, 63), (64, 64)];

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The table of attach time and round trip by number of guests served.
pub fn table(f: &Figures) -> String {
    let mut s = String::from(
        "| guests served | guests | vgpu attach to Connected, median (dom0, ms) | of it the `vgpu attach` command, median (dom0, ms) | handshake, median (guest, ms) | map 256 pages, median (ms) | round trip, median of the guests' medians (us) | slowest round trip (us) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (lo, hi) in GROUPS {
        let g: Vec<&Guest> = f.guests.iter().filter(|g| g.k >= lo && g.k <= hi).collect();
        if g.is_empty() {
            continue;
        }
        let range = if lo == hi { format!("{lo}") } else { format!("{lo}-{hi}") };
        let m = |x: fn(&Guest) -> u64| median(g.iter().map(|g| x(g)).collect());
        let _ = writeln!(
            s,
            "| {range} | {} | {} | {} | {:.0} | {:.1} | {} | {} |",
            g.len(),
            m(|g| g.attach_ms),
            m(|g| g.vgpu_ms),
            m(|g| g.connect_us) as f64 / 1000.0,
            m(|g| g.map_us) as f64 / 1000.0,
            m(|g| g.rtt_median_us),
            g.iter().map(|g| g.rtt_max_us).max().unwrap_or(0),
        );
    }
    s
}

/// The limit that stopped the next guest, in words.
pub fn stopped_by(f: &Figures) -> String {
    let full: Vec<&str> = f.pools.iter().filter(|p| p.full()).map(|p| p.name.as_str()).collect();
    match (f.next_exit, full.is_empty()) {
        (0, _) => "nothing yet: one guest more was attached (and detached again)".into(),
        (_, false) => format!(
            "gpu-dom's pools: {} full (reserved = capacity); `vgpu attach` of one more: {}",
            full.join(", "),
            f.next_says
        ),
        (_, true) => format!("`vgpu attach` of one more refused: {}", f.next_says),
    }
}

/// The whole report (Markdown), for `n` guests of `guest_memory` MiB.
pub fn report(f: &Figures, guest_memory: u32) -> String {
    let n = f.guests.len() as u64;
    let mut s = format!(
        "## `cargo xtask scale --guests {n} --guest-memory {guest_memory}`\n\n\
         QEMU TCG times on a shared 2-core host, not hardware times.\n\n"
    );
    s.push_str(&table(f));
    let pages: u64 = f.guests.iter().map(|g| g.pages).sum();
    let _ = writeln!(
        s,
        "\nGPU-reachable at once: {pages} guest pages = {} MiB, from {n} guests \
         (each mapped its {} pages and read back a sample).",
        (pages * 4096) >> 20,
        f.guests.first().map_or(0, |g| g.pages)
    );
    s.push_str("\n| pool | capacity | reserved | used | free |\n|---|---|---|---|---|\n");
    for p in &f.pools {
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} | {} |",
            p.name,
            if p.full() { " (full)" } else { "" },
            p.capacity,
            p.reserved,
            p.used,
            p.capacity.saturating_sub(p.reserved)
        );
    }
    let _ = writeln!(s, "\nWhat stops the next guest: {}.", stopped_by(f));
    let _ = writeln!(s, "\n{}", other_bounds());
    if let (Some(boot), Some(top)) = (f.heap_boot_kib, f.heap_connected_kib) {
        let grew = top.saturating_sub(boot);
        let _ = writeln!(
            s,
            "gpu-dom's heap: {boot} KiB used when the backend was built, {top} KiB at most \
             after a guest connected ({grew} KiB more for {n} guests, {:.1} KiB per guest).",
            grew as f64 / n.max(1) as f64
        );
    }
    if let Some(sd) = &f.shutdown {
        let _ = writeln!(s, "\n`xl shutdown gpu-dom` with every guest attached: {sd}.");
    }
    s
}

/// The bounds this run does not reach, from the code and Xen's defaults
/// (not measured).
pub fn other_bounds() -> String {
    use unikernel::layout::{GRANT_FRAMES_WANTED as FRAMES_WANTED, WINDOW_FRAMES};
    // Xen 4.17: max_maptrack_frames defaults to 1024, max_grant_frames to
    // 64 (xen/common/grant_table.c, opt_max_*); a maptrack entry is 16
    // bytes (struct grant_mapping), a v1 grant entry 8.
    const MAPTRACK_FRAMES: u64 = 1024;
    const GRANT_FRAMES: u64 = 64;
    format!(
        "Bounds not reached (from the code and Xen 4.17's defaults, not measured): \
         gpu-dom's grant window {WINDOW_FRAMES} frames ({} MiB); gpu-dom's maptrack \
         {MAPTRACK_FRAMES} frames x 256 = {} grant mappings (`max_maptrack_frames`); each \
         test guest's grant table {FRAMES_WANTED} frames x 512 = {} references (Xen allows \
         {GRANT_FRAMES} frames, `max_grant_frames`).",
        (WINDOW_FRAMES * 4096) >> 20,
        MAPTRACK_FRAMES * 256,
        u64::from(FRAMES_WANTED) * 512,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(k: u32, attach: u64, rtt: u64) -> String {
        format!(
            "E2E: scale k={k} dom={} attach_ms={attach} vgpu_ms={} connect_us=900000 map_us=40000 pages=256 \
             verified=32 mismatches=0 rtt_n=32 rtt_median_us={rtt} rtt_mean_us={rtt} rtt_max_us={}\n",
            k + 1,
            attach / 10,
            rtt * 3
        )
    }

    fn log(n: u32) -> String {
        let mut s = String::from(
            "[gpu-dom] gpu-dom: backend built: GPU tables 4608 KiB; heap 8700 KiB used, 6000 KiB free\n",
        );
        for k in 1..=n {
            s.push_str(&line(k, 1000 + 10 * k as u64, 9000 + k as u64));
            s.push_str(&format!(
                "[gpu-dom] gpu-dom: vgpu dom{}/0 Connected; heap {} KiB used, 1 KiB free\n",
                k + 1,
                8700 + k
            ));
        }
        for (p, cap) in
            [("devices", 64), ("ggtt-entries", 65536), ("pages", 16384), ("table-pages", 1024)]
        {
            s.push_str(&format!("E2E: scale pool name={p} capacity={cap} reserved={cap} used=3\n"));
        }
        s.push_str("E2E: scale pool name=contexts capacity=64 reserved=64 used=0\n");
        s.push_str("E2E: scale next guest: exit=1 vgpu: does not fit: the devices pool is full\n");
        s
    }

    #[test]
    fn a_full_run_parses_into_groups_pools_and_the_limit() {
        let f = parse(&log(64), 64).unwrap();
        assert_eq!(f.guests.len(), 64);
        assert_eq!((f.heap_boot_kib, f.heap_connected_kib), (Some(8700), Some(8764)));
        let t = table(&f);
        assert!(t.contains("| 1 | 1 | 1010 | 101 | 900 | 40.0 | 9001 | 27003 |"), "{t}");
        assert!(t.contains("| 32-63 | 32 |"), "{t}");
        assert!(t.contains("| 64 | 1 | 1640 |"), "{t}");
        let why = stopped_by(&f);
        assert!(why.contains("devices, ggtt-entries, pages, table-pages, contexts full"), "{why}");
        assert!(report(&f, 8).contains("GPU-reachable at once: 16384 guest pages = 64 MiB"));
    }

    #[test]
    fn a_missing_or_doubled_guest_line_fails() {
        let short = log(3);
        assert!(parse(&short, 4).unwrap_err().contains("no line for guest 4 of 4"));
        let twice = format!("{}{}", log(3), line(2, 1, 1));
        assert!(parse(&twice, 3).unwrap_err().contains("2 lines for guest 2"));
    }

    #[test]
    fn a_mismatch_or_a_missing_pool_or_next_guest_fails() {
        let bad = log(2).replace(
            "verified=32 mismatches=0 rtt_n=32 rtt_median_us=9002",
            "verified=31 mismatches=1 rtt_n=32 rtt_median_us=9002",
        );
        assert!(parse(&bad, 2).unwrap_err().contains("mismatches 1"));
        let no_pool = log(2).replace("E2E: scale pool name=contexts", "x");
        assert!(parse(&no_pool, 2).unwrap_err().contains("4 pool lines"));
        let no_next = log(2).replace("E2E: scale next guest", "x");
        assert!(parse(&no_next, 2).unwrap_err().contains("next guest"));
        let garbled = log(2).replace("rtt_median_us=9002", "rtt_median_us=x");
        assert!(parse(&garbled, 2).unwrap_err().contains("rtt_median_us"));
        let no_vgpu = log(2).replace("vgpu_ms=102 ", "");
        assert!(parse(&no_vgpu, 2).unwrap_err().contains("vgpu_ms"));
    }

    #[test]
    fn a_run_that_did_not_fill_gpu_dom_says_nothing_stopped_it() {
        let s = log(2).replace("exit=1 vgpu: does not fit: the devices pool is full", "exit=0 ");
        let f = parse(&s, 2).unwrap();
        assert!(stopped_by(&f).starts_with("nothing yet"));
    }
}
