//! Reading a boot's serial log: what the lines mean, when to stop QEMU, and
//! whether a stage passed.
//!
//! Markers are searched *inside* lines, not at their start: Xen may prefix a
//! guest's output (`(d1) `), and the dom0 `/init` prefixes copied console logs.

use std::time::Duration;

/// One `SELFTEST` line printed by the image as PVH dom0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelfTest {
    /// `SELFTEST <name> ok`
    Ok { name: String },
    /// `SELFTEST <name> FAIL <reason>`
    Fail { name: String, reason: String },
    /// `SELFTEST done passed=<n> failed=<m>`
    Done { passed: u32, failed: u32 },
}

/// Parses the `SELFTEST` marker in `line`, if any.
pub fn parse_selftest(line: &str) -> Option<SelfTest> {
    let at = line.find("SELFTEST ")?;
    let mut words = line[at + "SELFTEST ".len()..].split_whitespace();
    let first = words.next()?;
    if first == "done" {
        let (mut passed, mut failed) = (None, None);
        for w in words {
            if let Some(v) = w.strip_prefix("passed=") {
                passed = v.parse().ok();
            } else if let Some(v) = w.strip_prefix("failed=") {
                failed = v.parse().ok();
            }
        }
        return Some(SelfTest::Done { passed: passed?, failed: failed? });
    }
    let name = first.to_string();
    match words.next()? {
        "ok" => Some(SelfTest::Ok { name }),
        "FAIL" => Some(SelfTest::Fail { name, reason: words.collect::<Vec<_>>().join(" ") }),
        _ => None,
    }
}

/// A line that means something went badly wrong, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fatal {
    pub what: &'static str,
    pub line: String,
}

/// Patterns that end a run early, with what they mean.
const FATAL_PATTERNS: &[(&str, &str)] = &[
    ("Panic on CPU", "Xen panicked"),
    ("Manual reset required", "Xen panicked"),
    ("Kernel panic", "the Linux kernel panicked"),
    ("Dom0 crashed", "dom0 crashed"),
    ("PANIC:", "the image panicked"),
    ("EXCEPTION", "the image took a CPU exception"),
    ("Triple fault", "an HVM/PVH domain triple-faulted (Xen's register dump follows)"),
];

/// Xen's messages when dom0 shuts the machine down.
const HALT_PATTERNS: &[&str] = &["Hardware Dom0 halted", "Hardware Dom0 shutdown"];

/// What the image's panic says when the fault was asked for
/// (`unikernel::arch::x86_64::fault`, `gpu-dom.fault=`): the crash a
/// scenario arranged (`cargo xtask restart`), not a failure.
pub const DELIBERATE_PANIC: &str = "deliberate panic (gpu-dom.fault=";

/// The fatal pattern in `line`, if any.
pub fn fatal_in(line: &str) -> Option<Fatal> {
    if line.contains(DELIBERATE_PANIC) {
        return None;
    }
    if let Some(SelfTest::Fail { .. }) = parse_selftest(line) {
        return Some(Fatal { what: "a self-test failed", line: line.to_string() });
    }
    FATAL_PATTERNS
        .iter()
        .find(|(needle, _)| line.contains(needle))
        .map(|(_, what)| Fatal { what, line: line.to_string() })
}

/// The first line every unikernel image (gpu-dom, the test guest) prints,
/// from its PVH entry; Xen shows a domU's as `(dN) gpu-dom: ...`.
pub const IMAGE_ENTRY_LINE: &str = "gpu-dom: PVH entry reached long mode";

/// What the watcher should do after a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Stop QEMU after reading for `grace` longer (to catch the lines that follow).
    StopAfter(Duration),
}

/// Decides when a run is over.
#[derive(Debug)]
pub struct Watcher {
    success: String,
    failure: Option<String>,
    pub success_seen: bool,
    pub fatal: Vec<Fatal>,
    pub halted: bool,
}

impl Watcher {
    /// Stops on `success`, on `failure` (a marker the test itself prints), on
    /// any fatal pattern, or when dom0 halts the machine.
    pub fn new(success: &str, failure: Option<&str>) -> Self {
        Watcher {
            success: success.into(),
            failure: failure.map(String::from),
            success_seen: false,
            fatal: Vec::new(),
            halted: false,
        }
    }

    pub fn feed(&mut self, line: &str) -> Next {
        if line.contains(&self.success) {
            self.success_seen = true;
            return Next::StopAfter(Duration::from_millis(300));
        }
        if self.failure.as_deref().is_some_and(|f| line.contains(f)) {
            return Next::StopAfter(Duration::from_millis(500));
        }
        if HALT_PATTERNS.iter().any(|p| line.contains(p)) {
            self.halted = true;
            return Next::StopAfter(Duration::from_millis(500));
        }
        if let Some(f) = fatal_in(line) {
            let selftest = f.what == "a self-test failed";
            self.fatal.push(f);
            // Let the image finish its report (or its dump) before QEMU goes.
            return Next::StopAfter(Duration::from_secs(if selftest { 5 } else { 2 }));
        }
        Next::Continue
    }
}

/// The outcome of stage 1, from the whole serial log.
#[derive(Debug, PartialEq, Eq)]
pub struct SelfTestReport {
    pub ok: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub done: Option<(u32, u32)>,
}

impl SelfTestReport {
    pub fn from_log(log: &str) -> Self {
        let mut r = SelfTestReport { ok: Vec::new(), failed: Vec::new(), done: None };
        for t in log.lines().filter_map(parse_selftest) {
            match t {
                SelfTest::Ok { name } => r.ok.push(name),
                SelfTest::Fail { name, reason } => r.failed.push((name, reason)),
                SelfTest::Done { passed, failed } => r.done = Some((passed, failed)),
            }
        }
        r
    }

    /// `Ok` when `SELFTEST done` reported no failure and no `FAIL` line appeared.
    pub fn verdict(&self) -> Result<String, String> {
        if let Some((name, reason)) = self.failed.first() {
            return Err(format!(
                "{} self-test(s) failed, first: {name}: {reason}",
                self.failed.len()
            ));
        }
        match self.done {
            None if self.ok.is_empty() => {
                Err("no SELFTEST line at all: the image did not run or print".into())
            }
            None => {
                Err(format!("{} self-test(s) passed but `SELFTEST done` never came", self.ok.len()))
            }
            Some((_, failed)) if failed > 0 => {
                Err(format!("SELFTEST done reports failed={failed}"))
            }
            Some((passed, _)) if passed as usize != self.ok.len() => Ok(format!(
                "passed={passed} (note: {} `ok` lines seen; some output may be lost)",
                self.ok.len()
            )),
            Some((passed, _)) => Ok(format!("passed={passed} failed=0")),
        }
    }
}

/// The markers among `expected` that no line of `log` contains, not counting
/// lines that contain `except` (a failure report quotes the marker it missed).
pub fn missing_markers<'a>(log: &str, expected: &'a [String], except: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains(except)).collect();
    expected
        .iter()
        .filter(|m| !lines.iter().any(|l| l.contains(m.as_str())))
        .map(String::as_str)
        .collect()
}

/// The text after `prefix` on the first line containing it.
pub fn after_marker<'a>(log: &'a str, prefix: &str) -> Option<&'a str> {
    log.lines().find_map(|l| l.find(prefix).map(|at| l[at + prefix.len()..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selftest_lines_parse_with_or_without_a_xen_prefix() {
        assert_eq!(
            parse_selftest("SELFTEST hypercall ok"),
            Some(SelfTest::Ok { name: "hypercall".into() })
        );
        assert_eq!(
            parse_selftest("(d0) SELFTEST grant ok\r"),
            Some(SelfTest::Ok { name: "grant".into() })
        );
        assert_eq!(
            parse_selftest("SELFTEST evtchn FAIL bind returned -22 (EINVAL)"),
            Some(SelfTest::Fail {
                name: "evtchn".into(),
                reason: "bind returned -22 (EINVAL)".into()
            })
        );
        assert_eq!(
            parse_selftest("SELFTEST done passed=7 failed=0"),
            Some(SelfTest::Done { passed: 7, failed: 0 })
        );
    }

    #[test]
    fn malformed_selftest_lines_are_not_markers() {
        assert_eq!(parse_selftest("SELFTEST"), None);
        assert_eq!(parse_selftest("SELFTEST grant maybe"), None);
        assert_eq!(parse_selftest("SELFTEST done passed=x failed=0"), None);
        assert_eq!(parse_selftest("running SELFTESTS now"), None);
    }

    #[test]
    fn fatal_patterns_name_what_went_wrong() {
        assert_eq!(fatal_in("(XEN) Panic on CPU 0:").unwrap().what, "Xen panicked");
        assert_eq!(
            fatal_in("[    3.1] Kernel panic - not syncing: VFS").unwrap().what,
            "the Linux kernel panicked"
        );
        assert_eq!(
            fatal_in("(XEN) Hardware Dom0 crashed: 'noreboot' set").unwrap().what,
            "dom0 crashed"
        );
        assert_eq!(fatal_in("PANIC: at src/main.rs:10").unwrap().what, "the image panicked");
        assert_eq!(fatal_in("SELFTEST grant FAIL no map").unwrap().what, "a self-test failed");
        assert!(fatal_in("(XEN) d1v0 Triple fault - invoking HVM shutdown action 1")
            .unwrap()
            .what
            .contains("triple-faulted"));
        assert_eq!(fatal_in("(XEN) Xen version 4.17.5"), None);
        let asked = "(d4) gpu-dom: PANIC: deliberate panic (gpu-dom.fault=panic) (at x.rs:11)";
        assert_eq!(fatal_in(asked), None, "a crash the scenario asked for ends nothing");
    }

    #[test]
    fn watcher_stops_soon_after_success_and_later_after_a_failure() {
        let mut w = Watcher::new("SELFTEST done", None);
        assert_eq!(w.feed("(XEN) Brought up 2 CPUs"), Next::Continue);
        assert_eq!(w.feed("SELFTEST grant FAIL x"), Next::StopAfter(Duration::from_secs(5)));
        assert_eq!(
            w.feed("SELFTEST done passed=0 failed=1"),
            Next::StopAfter(Duration::from_millis(300))
        );
        assert!(w.success_seen);
        assert_eq!(w.fatal.len(), 1);
    }

    #[test]
    fn watcher_stops_when_dom0_halts_the_machine() {
        let mut w = Watcher::new("E2E: stage2 PASS", Some("E2E: stage2 FAIL"));
        assert!(matches!(
            w.feed("(XEN) Hardware Dom0 halted: halting machine"),
            Next::StopAfter(_)
        ));
        assert!(w.halted && !w.success_seen);
        assert!(matches!(w.feed("E2E: stage2 FAIL timeout"), Next::StopAfter(_)));
    }

    #[test]
    fn stage1_passes_only_with_done_and_no_failure() {
        let good = "SELFTEST a ok\nSELFTEST b ok\nSELFTEST done passed=2 failed=0\n";
        assert_eq!(SelfTestReport::from_log(good).verdict(), Ok("passed=2 failed=0".into()));
        let failed = "SELFTEST a ok\nSELFTEST b FAIL nope\nSELFTEST done passed=1 failed=1\n";
        assert!(SelfTestReport::from_log(failed).verdict().unwrap_err().contains("b: nope"));
        let lying = "SELFTEST a ok\nSELFTEST done passed=1 failed=3\n";
        assert!(SelfTestReport::from_log(lying).verdict().is_err());
        let cut = "SELFTEST a ok\n";
        assert!(SelfTestReport::from_log(cut).verdict().unwrap_err().contains("never came"));
        assert!(SelfTestReport::from_log("(XEN) hello")
            .verdict()
            .unwrap_err()
            .contains("no SELFTEST"));
    }

    #[test]
    fn missing_markers_lists_exactly_the_absent_ones() {
        let log = "gpu-dom: started as domU\n[gpu-dom] gpu-dom: ready\n";
        let expected: Vec<String> =
            ["gpu-dom: started as domU", "gpu-dom: ready", "gpu-dom: watching backend/vgpu"]
                .map(String::from)
                .to_vec();
        assert_eq!(
            missing_markers(log, &expected, "E2E: stage2 FAIL"),
            ["gpu-dom: watching backend/vgpu"]
        );
    }

    #[test]
    fn a_failure_report_quoting_a_marker_does_not_count_as_the_marker() {
        let log = "E2E: stage2 FAIL gpu-dom's console did not show 'gpu-dom: ready' within 60 s\n";
        let expected = vec!["gpu-dom: ready".to_string()];
        assert_eq!(missing_markers(log, &expected, "E2E: stage2 FAIL"), ["gpu-dom: ready"]);
    }

    #[test]
    fn after_marker_reads_the_rest_of_the_line() {
        let log = "x\nE2E: stage2 FAIL gpu-dom not ready after 60 s\n";
        assert_eq!(after_marker(log, "E2E: stage2 FAIL"), Some("gpu-dom not ready after 60 s"));
        assert_eq!(after_marker(log, "E2E: stage2 PASS"), None);
    }
}
