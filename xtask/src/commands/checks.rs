//! Host-side checks: bounded fuzzing (`cargo xtask fuzz`), the instruction
//! count of the 512-entry batch (`cargo xtask bench`), and the whole test
//! run (`cargo xtask test`) that CI and the README use.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::harness::host::{self, Tool};
use crate::paths::Paths;
use crate::progress::Progress;

/// The cargo-fuzz targets in `fuzz/`, each with a checked-in seed corpus.
pub const FUZZ_TARGETS: [&str; 5] =
    ["ring_decode", "backend_path", "xenstore_decode", "service_xenstore", "http_request"];

const VALGRIND: Tool = Tool { program: "valgrind", package: "valgrind" };

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Installs cargo-fuzz into ~/.cargo/bin if `cargo fuzz` is not available.
fn ensure_cargo_fuzz(log: &Path) -> Result<()> {
    let have =
        cargo().args(["fuzz", "--version"]).output().map(|o| o.status.success()).unwrap_or(false);
    if have {
        return Ok(());
    }
    host::run_logged(
        cargo().args(["install", "cargo-fuzz", "--locked", "--version", "^0.13"]),
        log,
        Duration::from_secs(900),
    )
}

/// How far `cargo xtask fuzz` runs each target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuzzRun {
    /// Stop after this many seconds (libFuzzer's `-max_total_time`).
    pub seconds: Option<u64>,
    /// Stop after this many executions, the corpus's own included
    /// (libFuzzer's `-runs`).
    pub runs: Option<u64>,
    /// Only this target; every one of [`FUZZ_TARGETS`] when `None`.
    pub target: Option<String>,
}

/// What one target's run did, from libFuzzer's final statistics and the
/// corpus directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuzzStats {
    pub runs: u64,
    pub seconds: u64,
    pub execs_per_sec: u64,
    /// Coverage counters hit (libFuzzer's `cov:`).
    pub cov: u64,
    /// Files (and bytes) in the kept corpus after the run.
    pub corpus_files: u64,
    pub corpus_bytes: u64,
}

impl FuzzStats {
    /// Reads `Done N runs in S second(s)`, `stat::average_exec_per_sec:`
    /// and the last `cov:` from a libFuzzer log.
    fn parse(log: &str) -> FuzzStats {
        let mut s = FuzzStats::default();
        for line in log.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["Done", runs, "runs", "in", secs, ..] => {
                    s.runs = runs.parse().unwrap_or(0);
                    s.seconds = secs.parse().unwrap_or(0);
                }
                ["stat::average_exec_per_sec:", n] => s.execs_per_sec = n.parse().unwrap_or(0),
                _ => {}
            }
            if let Some(at) = words.iter().position(|w| *w == "cov:") {
                s.cov = words.get(at + 1).and_then(|n| n.parse().ok()).unwrap_or(s.cov);
            }
        }
        s
    }
}

/// CI's fuzzing (`cargo xtask test`): every target for `seconds`.
pub fn fuzz(paths: &Paths, seconds: u64) -> Result<()> {
    fuzz_run(paths, &FuzzRun { seconds: Some(seconds), runs: None, target: None }).map(|_| ())
}

/// Runs every target (or the one named) as far as `run` says. Each starts
/// from its kept corpus, `target/fuzz/corpus/<target>`, plus the checked-in
/// seeds, `fuzz/corpus/<target>` (read, never written); what it finds new is
/// added to the kept corpus, so the next run goes on from there (remove the
/// directory to start over). A crash fails with the log and the
/// reproducer's path in `target/fuzz/artifacts/<target>/`. The figures of
/// every target are also written to `target/fuzz/last-run.txt`.
pub fn fuzz_run(paths: &Paths, run: &FuzzRun) -> Result<Vec<(String, FuzzStats)>> {
    let work = paths.target.join("fuzz");
    let targets: Vec<&str> = FUZZ_TARGETS
        .into_iter()
        .filter(|t| run.target.as_deref().is_none_or(|only| only == *t))
        .collect();
    let mut p = Progress::new("fuzz", 1 + targets.len());
    p.step("cargo-fuzz (installs it if missing)", |_| {
        ensure_cargo_fuzz(&work.join("install.log"))
    })?;
    let bound = match (run.seconds, run.runs) {
        (Some(s), Some(r)) => format!("for {s} s or {r} runs"),
        (Some(s), None) => format!("for {s} s"),
        (None, Some(r)) => format!("for {r} runs"),
        (None, None) => "until stopped".into(),
    };
    let mut all = Vec::new();
    for t in targets {
        let stats = p.step(format!("{t} {bound}"), |p| fuzz_target(paths, &work, t, run, p))?;
        all.push((t.to_string(), stats));
    }
    let summary: String = all
        .iter()
        .map(|(t, s)| {
            format!(
                "{t}: {} runs in {} s ({}/s), cov {}, corpus {} files ({} bytes)\n",
                s.runs, s.seconds, s.execs_per_sec, s.cov, s.corpus_files, s.corpus_bytes
            )
        })
        .collect();
    host::write(&work.join("last-run.txt"), summary)?;
    Ok(all)
}

fn fuzz_target(
    paths: &Paths,
    work: &Path,
    t: &str,
    run: &FuzzRun,
    p: &mut Progress,
) -> Result<FuzzStats> {
    let corpus = work.join("corpus").join(t);
    let artifacts = work.join("artifacts").join(t);
    host::mkdirs(&corpus)?;
    host::mkdirs(&artifacts)?;
    let seeds = paths.root.join("fuzz/corpus").join(t);
    if !seeds.is_dir() {
        return Err(Error::Boot {
            stage: format!("fuzz {t}"),
            reason: format!("the seed corpus {} is missing", paths.show(&seeds)),
            log: seeds.clone(),
            hint: "restore it from git (`git checkout -- fuzz/corpus`)".into(),
        });
    }
    let log = work.join(format!("{t}.log"));
    let _ = fs::remove_file(&log);
    let mut cmd = cargo();
    // Stable toolchain: no sanitizer (the fuzzed crates forbid `unsafe`;
    // panics and debug assertions are what we look for). New inputs go to
    // the first directory, the kept corpus.
    cmd.current_dir(paths.root.join("fuzz"))
        .args(["fuzz", "run", "--sanitizer", "none", t])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1");
    if let Some(s) = run.seconds {
        cmd.arg(format!("-max_total_time={s}"));
    }
    if let Some(r) = run.runs {
        cmd.arg(format!("-runs={r}"));
    }
    // Building takes a while the first time; the run itself is bounded.
    let limit = Duration::from_secs(run.seconds.unwrap_or(7 * 24 * 3600) + 900);
    let r = host::run_logged(&mut cmd, &log, limit);
    let text = fs::read_to_string(&log).unwrap_or_default();
    r.map_err(|_| Error::Boot {
        stage: format!("fuzz {t}"),
        reason: "the fuzzer stopped with an error (a crash, or a build failure: see the log)"
            .into(),
        log: log.clone(),
        hint: format!(
            "reproduce with: cd fuzz && cargo fuzz run --sanitizer none {t} {}/<crash-file>",
            paths.show(&artifacts)
        ),
    })?;
    let mut stats = FuzzStats::parse(&text);
    for e in fs::read_dir(&corpus).map_err(|e| Error::io("reading", &corpus, e))?.flatten() {
        stats.corpus_files += 1;
        stats.corpus_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    p.note(format!(
        "{t}: {} runs in {} s ({}/s), cov {}; corpus kept in {}: {} files, {} bytes",
        stats.runs,
        stats.seconds,
        stats.execs_per_sec,
        stats.cov,
        paths.show(&corpus),
        stats.corpus_files,
        stats.corpus_bytes
    ));
    Ok(stats)
}

/// What is counted, as the counting example names it: (variant, what,
/// the function callgrind counts, the bar in instructions per entry). The
/// counts repeat exactly; each bar is the figure measured when it was set
/// plus a few percent, except `existing`, whose bar of 200 is the project's.
const VARIANTS: [(&str, &str, &str, f64); 4] = [
    ("existing", "512 new grants into existing leaf tables", "*Bench*map_batch*", 200.0),
    (
        "fresh",
        "512 new grants into a fresh 2 MiB region (allocates PDP, PD, PT)",
        "*Bench*map_batch*",
        235.0,
    ),
    (
        "unmap",
        "512 entries unmapped (clear, invalidate, grant unmap)",
        "*Bench*unmap_request*",
        300.0,
    ),
    ("revoke", "detach of a guest holding 512 entries", "*Bench*revoke_guest*", 275.0),
];
const BATCHES: u64 = 20;
const ENTRIES: u64 = 512;

/// Counts the instructions per entry of each [`VARIANTS`] request (decode ->
/// validate -> grant map or unmap with a no-op mapper -> shadow writes)
/// under callgrind and fails if one is over its bar; with `criterion`, also
/// runs the criterion benchmark.
pub fn bench(paths: &Paths, criterion: bool) -> Result<Vec<(String, f64)>> {
    let dir = paths.target.join("bench");
    let mut p = Progress::new("bench", 3 + criterion as usize);
    p.step("valgrind (installs it if missing)", |_| {
        host::ensure_tools(&[VALGRIND], &dir.join("apt.log")).map(|_| ())
    })?;
    let exe = p.step("building examples/ppgtt_batch_count (release)", |_| {
        host::run_logged(
            cargo().current_dir(&paths.root).args([
                "build",
                "--release",
                "-p",
                "backend",
                "--example",
                "ppgtt_batch_count",
            ]),
            &dir.join("build.log"),
            Duration::from_secs(900),
        )?;
        Ok(cargo_target_dir(paths).join("release/examples/ppgtt_batch_count"))
    })?;
    let results = p.step("callgrind instruction counts", |p| {
        let mut out = Vec::new();
        for (variant, what, counted, bar) in VARIANTS {
            let log = dir.join(format!("callgrind-{variant}.log"));
            let data = dir.join(format!("callgrind-{variant}.out"));
            let mut cmd = Command::new("valgrind");
            cmd.args([
                "--tool=callgrind",
                "--collect-atstart=no",
            ])
            .arg(format!("--toggle-collect={counted}"))
            .arg(format!("--callgrind-out-file={}", data.display()))
            .arg(&exe)
            .args([variant, &BATCHES.to_string()]);
            host::run_logged(&mut cmd, &log, Duration::from_secs(600))?;
            let text = fs::read_to_string(&log).map_err(|e| Error::io("reading", &log, e))?;
            let total = collected(&text).ok_or_else(|| Error::Boot {
                stage: "bench".into(),
                reason: "no `Collected :` line in callgrind's output".into(),
                log: log.clone(),
                hint: "check that valgrind runs on this machine".into(),
            })?;
            let per_entry = total as f64 / (BATCHES * ENTRIES) as f64;
            p.note(format!(
                "{what}: {per_entry:.1} instructions per entry ({total} for {BATCHES} batches; bar {bar})"
            ));
            if per_entry > bar {
                return Err(Error::Boot {
                    stage: format!("bench {variant}"),
                    reason: format!(
                        "{what}: {per_entry:.1} instructions per entry, over the bar of {bar}"
                    ),
                    log: data.clone(),
                    hint: format!(
                        "find what the change added to that path: `callgrind_annotate {}`",
                        data.display()
                    ),
                });
            }
            out.push((variant.to_string(), per_entry));
        }
        let summary: String = out.iter().map(|(v, n)| format!("{v} {n:.1}\n")).collect();
        host::write(&dir.join("instructions_per_entry.txt"), summary)?;
        Ok(out)
    })?;
    if criterion {
        p.step("criterion (cargo bench -p backend)", |_| {
            host::run_visible(
                cargo().current_dir(&paths.root).args(["bench", "-p", "backend"]),
                Duration::from_secs(1800),
            )
        })?;
    }
    Ok(results)
}

/// callgrind's `Collected : N` (the events counted while collection was on).
fn collected(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (_, rest) = l.split_once("Collected :")?;
        rest.trim().replace(',', "").parse().ok()
    })
}

fn cargo_target_dir(paths: &Paths) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| paths.target.clone())
}

/// The host part of `cargo xtask test`: format, lints, the workspace tests.
pub fn host_tests(paths: &Paths) -> Result<()> {
    let mut p = Progress::new("test", 3);
    let dir = paths.target.join("test-logs");
    p.step("cargo fmt --check", |_| {
        host::run_logged(
            cargo().current_dir(&paths.root).args(["fmt", "--all", "--", "--check"]),
            &dir.join("fmt.log"),
            Duration::from_secs(300),
        )
    })?;
    p.step("cargo clippy --workspace --all-targets -D warnings", |_| {
        host::run_logged(
            cargo().current_dir(&paths.root).args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            &dir.join("clippy.log"),
            Duration::from_secs(1800),
        )
    })?;
    p.step("cargo test --workspace", |_| {
        host::run_visible(
            cargo().current_dir(&paths.root).args(["test", "--workspace"]),
            Duration::from_secs(2400),
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{collected, FuzzStats};

    #[test]
    fn reads_libfuzzers_final_statistics() {
        let log = "#2\tINITED cov: 12 ft: 13 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #58300\tDONE   cov: 1036 ft: 3492 corp: 337/481Kb lim: 4210 exec/s: 2776 rss: 33Mb\n\
                   Done 58300 runs in 21 second(s)\n\
                   stat::number_executed_units: 58300\n\
                   stat::average_exec_per_sec:     2776\n";
        let s = FuzzStats::parse(log);
        assert_eq!((s.runs, s.seconds, s.execs_per_sec, s.cov), (58300, 21, 2776, 1036));
        assert_eq!(FuzzStats::parse("nothing"), FuzzStats::default());
    }

    #[test]
    fn reads_callgrinds_collected_line() {
        let log = "==1== Events    : Ir\n==1== Collected : 1,017,420\n==1==\n==1== I   refs:      1,017,420\n";
        assert_eq!(collected(log), Some(1_017_420));
        assert_eq!(collected("nothing here"), None);
    }
}
