//! The lines of `cargo xtask bench --xen` in a serial log, and the table made
//! of them.
//!
//! Two kinds of lines, wherever they are in a line (guest consoles are copied
//! into the serial log as `[bench] TESTGUEST dom=<id> ...`):
//! - the bench guest's `bench: kind=<kind> batch=<n> n=<rounds>
//!   median_ns=<m> mean_ns=<a> per_entry_ns=<e>` (`frontend::scenario::bench`);
//! - dom0's `E2E: hypercalls kind=<kind> batch=<n> map=<m> unmap=<u>`: gpu-dom's
//!   own `GNTTABOP_map_grant_ref` and `GNTTABOP_unmap_grant_ref` counters
//!   (`data/vgpu-hypercalls`) read before and after one marked batch.
//!
//! A line that starts like one but does not parse is an error (not skipped):
//! a changed format must not look like a missing figure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Batch sizes the bench guest measures.
pub const SIZES: [u32; 5] = [1, 8, 64, 512, 2048];
/// The batch size whose hypercalls are counted.
pub const COUNTED: u32 = 512;
/// Kinds timed per size, and (the same) kinds whose 512-entry batch is counted.
pub const KINDS: [&str; 6] =
    ["ggtt-cold", "ggtt-warm", "ggtt-unmap", "ppgtt-cold", "ppgtt-warm", "ppgtt-unmap"];

const GUEST_TAG: &str = "bench: kind=";
const DOM0_TAG: &str = "E2E: hypercalls kind=";

/// One timed kind and size, in ns of the guest's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timed {
    pub n: u32,
    pub median_ns: u64,
    pub mean_ns: u64,
}

/// Grant hypercalls of one counted batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    pub batch: u32,
    pub map: u64,
    pub unmap: u64,
}

/// Everything a serial log says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// (kind, batch) -> times (kinds `rtt`, `detach` and [`KINDS`]).
    pub timed: BTreeMap<(String, u32), Timed>,
    /// kind -> hypercalls of its counted batch.
    pub counted: BTreeMap<String, Counted>,
}

/// `key=value` fields of `text`, in order.
fn fields(text: &str) -> BTreeMap<&str, &str> {
    text.split_whitespace().filter_map(|f| f.split_once('=')).collect()
}

fn num<T: std::str::FromStr>(f: &BTreeMap<&str, &str>, key: &str, line: &str) -> Result<T, String> {
    f.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no number `{key}=` in the bench line `{}`", line.trim()))
}

/// Reads every bench and hypercall line of `log`.
pub fn parse(log: &str) -> Result<Figures, String> {
    let mut out = Figures::default();
    for line in log.lines() {
        if let Some(at) = line.find(GUEST_TAG) {
            let f = fields(&line[at + "bench: ".len()..]);
            let kind = f.get("kind").copied().unwrap_or_default().to_string();
            let t = Timed {
                n: num(&f, "n", line)?,
                median_ns: num(&f, "median_ns", line)?,
                mean_ns: num(&f, "mean_ns", line)?,
            };
            out.timed.insert((kind, num(&f, "batch", line)?), t);
        } else if let Some(at) = line.find(DOM0_TAG) {
            let f = fields(&line[at + "E2E: hypercalls ".len()..]);
            let kind = f.get("kind").copied().unwrap_or_default().to_string();
            let c = Counted {
                batch: num(&f, "batch", line)?,
                map: num(&f, "map", line)?,
                unmap: num(&f, "unmap", line)?,
            };
            out.counted.insert(kind, c);
        }
    }
    Ok(out)
}

impl Figures {
    /// What the table needs and the log did not say, by name.
    pub fn missing(&self) -> Vec<String> {
        let mut want: Vec<(String, u32)> = vec![("rtt".into(), 0)];
        for kind in KINDS {
            want.extend(SIZES.iter().map(|s| (kind.to_string(), *s)));
        }
        let mut missing: Vec<String> = want
            .into_iter()
            .filter(|k| !self.timed.contains_key(k))
            .map(|(kind, b)| format!("bench: kind={kind} batch={b}"))
            .collect();
        if !self.timed.keys().any(|(k, _)| k == "detach") {
            missing.push("bench: kind=detach".into());
        }
        for kind in KINDS {
            if self.counted.get(kind).is_none_or(|c| c.batch != COUNTED) {
                missing.push(format!("E2E: hypercalls kind={kind} batch={COUNTED}"));
            }
        }
        missing
    }

    fn median(&self, kind: &str, batch: u32) -> u64 {
        self.timed.get(&(kind.to_string(), batch)).map_or(0, |t| t.median_ns)
    }

    /// The per-entry cost at batch 1 over the one at batch [`COUNTED`].
    pub fn ratio(&self, kind: &str) -> f64 {
        let one = self.median(kind, 1) as f64;
        let big = self.median(kind, COUNTED) as f64 / COUNTED as f64;
        if big > 0.0 {
            one / big
        } else {
            0.0
        }
    }

    /// The tables (Markdown), once nothing is [`Figures::missing`].
    pub fn table(&self) -> String {
        let mut s = String::new();
        let head: String = SIZES.iter().map(|b| format!(" {b} |")).collect();
        let rule: String = SIZES.iter().map(|_| "---:|").collect();
        let _ =
            writeln!(s, "Per request (median, ms), by batch size:\n\n| kind |{head}\n|---|{rule}");
        for kind in KINDS {
            let cells: String = SIZES
                .iter()
                .map(|b| format!(" {:.2} |", self.median(kind, *b) as f64 / 1e6))
                .collect();
            let _ = writeln!(s, "| {kind} |{cells}");
        }
        let _ = writeln!(
            s,
            "\nPer entry (median per request / entries, us), and what batching saves:\n\n\
             | kind |{head} batch 1 / batch {COUNTED} |\n|---|{rule}---:|"
        );
        for kind in KINDS {
            let cells: String = SIZES
                .iter()
                .map(|b| format!(" {:.1} |", self.median(kind, *b) as f64 / 1e3 / *b as f64))
                .collect();
            let _ = writeln!(s, "| {kind} |{cells} {:.0}x |", self.ratio(kind));
        }
        let rtt = self.timed.get(&("rtt".to_string(), 0));
        let (n, rtt_us) = rtt.map_or((0, 0.0), |t| (t.n, t.median_ns as f64 / 1e3));
        let _ = writeln!(
            s,
            "\nFloor: an empty request's round trip, {:.2} ms (median of {n}).",
            rtt_us / 1e3
        );
        if let Some(((_, held), t)) = self.timed.iter().find(|((k, _), _)| k == "detach") {
            let _ = writeln!(
                s,
                "Detach of a guest holding {held} entries: {:.1} ms until gpu-dom reached Closed.",
                t.median_ns as f64 / 1e6
            );
        }
        let _ = writeln!(
            s,
            "\nGrant hypercalls per {COUNTED}-entry batch (gpu-dom's counters):\n\n\
             | batch | map_grant_ref | unmap_grant_ref |\n|---|---:|---:|"
        );
        for kind in KINDS {
            if let Some(c) = self.counted.get(kind) {
                let _ = writeln!(s, "| {kind} | {} | {} |", c.map, c.unmap);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete_log() -> String {
        let mut log = String::from(
            "[bench] TESTGUEST dom=3 bench: kind=rtt batch=0 n=32 median_ns=90000 mean_ns=95000 per_entry_ns=90000\n",
        );
        for kind in KINDS {
            for b in SIZES {
                // 100 us a request plus 1 us an entry.
                let m = 100_000 + 1_000 * b as u64;
                log.push_str(&format!(
                    "[bench] TESTGUEST dom=3 bench: kind={kind} batch={b} n=1 median_ns={m} mean_ns={m} per_entry_ns={}\n",
                    m / b as u64
                ));
            }
            log.push_str(&format!("E2E: hypercalls kind={kind} batch=512 map=16 unmap=0\n"));
        }
        log.push_str("[bench] TESTGUEST dom=3 bench: kind=detach batch=4096 n=1 median_ns=250000000 mean_ns=250000000 per_entry_ns=61035\n");
        log
    }

    #[test]
    fn a_complete_log_has_nothing_missing_and_its_ratio_is_batch_1_over_batch_512_per_entry() {
        let f = parse(&complete_log()).unwrap();
        assert!(f.missing().is_empty(), "{:?}", f.missing());
        // 101 us per entry at 1; 612 us / 512 = 1.195 us at 512.
        let r = f.ratio("ggtt-cold");
        assert!((r - 101.0 / (612.0 / 512.0)).abs() < 1e-9, "{r}");
        assert_eq!(f.counted["ppgtt-unmap"], Counted { batch: 512, map: 16, unmap: 0 });
    }

    #[test]
    fn the_table_shows_times_per_request_and_entry_the_ratio_the_floor_detach_and_hypercalls() {
        let t = parse(&complete_log()).unwrap().table();
        assert!(t.contains("| ggtt-cold | 0.10 | 0.11 | 0.16 | 0.61 | 2.15 |"), "{t}");
        assert!(t.contains("| ggtt-cold | 101.0 | 13.5 | 2.6 | 1.2 | 1.0 | 84x |"), "{t}");
        assert!(t.contains("Floor: an empty request's round trip, 0.09 ms (median of 32)."), "{t}");
        assert!(t.contains("Detach of a guest holding 4096 entries: 250.0 ms"), "{t}");
        assert!(t.contains("| ppgtt-warm | 16 | 0 |"), "{t}");
    }

    #[test]
    fn every_absent_line_is_named() {
        let log: String = complete_log()
            .lines()
            .filter(|l| !l.contains("kind=ppgtt-warm batch=2048") && !l.contains("kind=detach"))
            .filter(|l| !l.contains("hypercalls kind=ggtt-unmap"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            parse(&log).unwrap().missing(),
            [
                "bench: kind=ppgtt-warm batch=2048",
                "bench: kind=detach",
                "E2E: hypercalls kind=ggtt-unmap batch=512"
            ]
        );
        assert_eq!(parse("").unwrap().missing().len(), 1 + 6 * 5 + 1 + 6);
    }

    #[test]
    fn a_bench_line_that_does_not_parse_is_an_error_not_a_gap() {
        let e = parse("TESTGUEST dom=3 bench: kind=rtt batch=0 n=x median_ns=1 mean_ns=1\n");
        assert!(e.unwrap_err().contains("no number `n=`"));
        let e = parse("E2E: hypercalls kind=ggtt-cold batch=512 map=16\n");
        assert!(e.unwrap_err().contains("no number `unmap=`"));
    }
}
