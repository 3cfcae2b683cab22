//! A dom0 test scenario: files to add to the dom0 initramfs, shell parts that
//! `/init` runs in order once the Xen toolstack is up, and the markers the
//! serial log must show.
//!
//! Stage 2 is one scenario (gpu-dom up, gpu-dom down); `cargo xtask e2e` will
//! build a larger one from the same parts plus a test guest and the `vgpu` CLI.
//!
//! Contract of the generated `/init`: every line it reports starts with
//! `E2E: `; a failing check prints the guests' consoles, then
//! `E2E: <scenario> FAIL <why>`, then powers off; when every part passed it
//! prints the consoles, then `E2E: <scenario> PASS`, then powers off.

use crate::formats::initramfs::Source;
use std::fmt::Write as _;
use std::time::Duration;

/// Where xenconsoled (`--log=guest`) writes `guest-<name>.log`.
pub const CONSOLE_DIR: &str = "/var/log/xen/console";

/// A file the scenario adds to the initramfs.
#[derive(Clone, Debug)]
pub struct ScenarioFile {
    pub dest: String,
    pub source: Source,
    pub mode: u32,
}

/// A file for the dom0 initramfs.
pub fn file(dest: &str, source: Source, mode: u32) -> ScenarioFile {
    ScenarioFile { dest: dest.into(), source, mode }
}

/// A part of the script that passes when `markers` show in the serial log.
pub fn part(title: &str, script: String, markers: &[&str]) -> Part {
    Part { title: title.into(), script, markers: markers.iter().map(|m| m.to_string()).collect() }
}

/// One step of the scenario's script.
#[derive(Clone, Debug)]
pub struct Part {
    pub title: String,
    /// Shell text (busybox ash) using the helpers of [`PRELUDE_HELPERS`].
    pub script: String,
    /// Strings the serial log must contain once this part passed.
    pub markers: Vec<String>,
}

/// A complete scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub files: Vec<ScenarioFile>,
    pub parts: Vec<Part>,
    /// The whole QEMU run's limit.
    pub timeout: Duration,
}

/// What the dom0 image provides to every scenario.
#[derive(Clone, Debug)]
pub struct Dom0 {
    /// `uname -r` of the dom0 kernel.
    pub kernel_release: String,
    /// Module paths relative to `/lib/modules/<release>/`, in load order.
    pub modules: Vec<String>,
    /// Directory of xl, xenstored, xenconsoled, xen-init-dom0.
    pub xen_bin: String,
    /// Directories of the shared libraries.
    pub lib_dirs: Vec<String>,
}

/// Shell helpers every scenario part may call. Each wait is bounded.
pub const PRELUDE_HELPERS: &str = r#"now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
e2e() { echo "E2E: $*"; }
dump_consoles() {
    for f in "$CONSOLE_DIR"/guest-*.log; do
        [ -e "$f" ] || continue
        n=${f##*/guest-}; n=${n%.log}
        echo "E2E: --- console of $n ---"
        sed "s/^/[$n] /" "$f"
        echo "E2E: --- end of console of $n ---"
    done
}
fail() {
    dump_consoles
    xl list 2>&1 | sed 's/^/[xl list] /'
    echo "E2E: $SCENARIO FAIL $*"
    sync
    poweroff -f
    sleep 60
}
# wait_for SECS COMMAND...: run COMMAND every 0.2 s until it succeeds; 1 on timeout.
wait_for() {
    wf_end=$(( $(now_ms) + $1 * 1000 )); shift
    until "$@"; do
        [ "$(now_ms)" -ge "$wf_end" ] && return 1
        sleep 0.2
    done
}
console_has() { grep -q -F -- "$2" "$CONSOLE_DIR/guest-$1.log" 2>/dev/null; }
xs_is() { [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ]; }
# The vgpu helpers: gpu-dom's domid is $GD (set once gpu-dom is created).
be_dir() { echo "/local/domain/$GD/backend/vgpu/$1/0"; }
be_state() { xenstore-read "$(be_dir "$1")/state" 2>/dev/null; }
# guest_create NAME VAR: xl create -p, store the domid in VAR.
guest_create() {
    xl create -p "/etc/xen/$1.cfg" > "/tmp/xl-create-$1.log" 2>&1 || { sed 's/^/[xl create] /' "/tmp/xl-create-$1.log"; fail "xl create -p $1 failed (output above)"; }
    gc_id=$(xl domid "$1") || fail "$1 vanished right after xl create"
    eval "$2=$gc_id"
}
# vgpu_run ARGS...: the toolstack command, its output shown.
vgpu_run() {
    vgpu "$@" > /tmp/vgpu.log 2>&1; vr_rc=$?
    sed 's/^/E2E: [vgpu] /' /tmp/vgpu.log
    return $vr_rc
}
domid_gone() { ! xl list | awk 'NR > 1 { print $2 }' | grep -qx "$1"; }
# xs_starts PATH PREFIX: the node's value starts with PREFIX.
xs_starts() { case "$(xenstore-read "$1" 2>/dev/null)" in "$2"*) return 0 ;; esac; return 1; }
xs_exists() { xenstore-read "$1" >/dev/null 2>&1; }
# attach_and_unpause NAME: vgpu attach, unpause (for guests that do not stay connected).
attach_and_unpause() {
    vgpu_run attach "$1" --backend gpu-dom || fail "vgpu attach $1 failed (output above)"
    xl unpause "$1"
}
# wait_1s SECS COMMAND...: wait_for, polling once a second (each poll forks
# in a PV dom0 under TCG, which slows xenstored for everyone).
wait_1s() {
    w1_end=$(( $(now_ms) + $1 * 1000 )); shift
    until "$@"; do
        [ "$(now_ms)" -ge "$w1_end" ] && return 1
        sleep 1
    done
}
# attach_and_start NAME ID: vgpu attach, unpause, wait for Connected (timed).
attach_and_start() {
    as_t0=$(now_ms)
    vgpu_run attach "$1" --backend gpu-dom || fail "vgpu attach $1 failed (output above)"
    xl unpause "$1"
    wait_for 60 xs_is "$(be_dir "$2")/state" 4 || fail "$1 (domid $2): gpu-dom state is '$(be_state "$2")', not Connected (4), 60 s after vgpu attach"
    e2e "$1 (domid $2): vgpu attach to Connected in $(( $(now_ms) - as_t0 )) ms"
}
# dom_state NAME: xl's state flags (e.g. "r-----", "--c---"), empty when gone.
dom_state() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }'; }
dom_gone() { ! xl list "$1" >/dev/null 2>&1; }
# wait_console DOM MARKER SECS: wait for MARKER in DOM's console; fail at once if DOM crashed.
wait_console() {
    wc_end=$(( $(now_ms) + $3 * 1000 ))
    until console_has "$1" "$2"; do
        case "$(dom_state "$1")" in
            *c*) fail "$1 crashed before its console showed '$2'" ;;
            "") dom_gone "$1" && fail "$1 disappeared before its console showed '$2'" ;;
        esac
        [ "$(now_ms)" -ge "$wc_end" ] && fail "$1's console did not show '$2' within $3 s"
        sleep 0.2
    done
}
"#;

impl Scenario {
    pub fn pass_marker(&self) -> String {
        format!("E2E: {} PASS", self.name)
    }

    pub fn fail_marker(&self) -> String {
        format!("E2E: {} FAIL", self.name)
    }

    /// Every marker the serial log must contain, in the order they are checked.
    pub fn expected_markers(&self) -> Vec<String> {
        let mut m: Vec<String> = vec!["E2E: dom0 toolstack up".into()];
        m.extend(self.parts.iter().flat_map(|p| p.markers.iter().cloned()));
        m.push(self.pass_marker());
        m
    }

    /// The dom0 `/init` script.
    pub fn init_script(&self, dom0: &Dom0) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "#!/bin/busybox sh");
        let _ = writeln!(
            s,
            "# dom0 /init generated by `cargo xtask` (xtask/src/harness/scenario.rs), scenario {}.",
            self.name
        );
        let _ = writeln!(
            s,
            "# Brings up the Xen toolstack, runs the scenario's parts, reports, powers off."
        );
        let _ = writeln!(s, "export PATH=/bin:/sbin:/usr/bin:/usr/sbin:{}", dom0.xen_bin);
        let _ = writeln!(s, "export LD_LIBRARY_PATH={}", dom0.lib_dirs.join(":"));
        let _ = writeln!(s, "SCENARIO={}", self.name);
        let _ = writeln!(s, "CONSOLE_DIR={CONSOLE_DIR}");
        s.push_str(
            r#"/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /var/lib/xen/dump /var/lib/xenstored "$CONSOLE_DIR"
"#,
        );
        s.push_str(PRELUDE_HELPERS);
        let _ = writeln!(
            s,
            "# A line every {} s while dom0 runs: the harness tells a machine that\n\
             # stopped (no line at all) from one that is waiting.\n\
             ( while sleep {}; do echo \"{HEARTBEAT} $(now_ms) ms\"; done ) &",
            HEARTBEAT_SECS, HEARTBEAT_SECS
        );
        let _ = writeln!(s, "\n# --- Xen toolstack ---");
        let _ = writeln!(s, "M=/lib/modules/{}", dom0.kernel_release);
        for m in &dom0.modules {
            let name = m.rsplit('/').next().unwrap_or(m);
            let _ = writeln!(s, "insmod $M/{m} || fail \"insmod {name} failed\"");
        }
        s.push_str(
            r#"mount -t xenfs xenfs /proc/xen || fail "mount -t xenfs failed"
xenstored --pid-file /run/xenstored.pid || fail "xenstored did not start"
xen-init-dom0 > /tmp/xen-init-dom0.log 2>&1 || { cat /tmp/xen-init-dom0.log; fail "xen-init-dom0 failed"; }
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir="$CONSOLE_DIR" || fail "xenconsoled did not start"
e2e "dom0 toolstack up at $(now_ms) ms (uptime)"
"#,
        );
        for p in &self.parts {
            let _ = writeln!(s, "\n# --- {} ---", p.title);
            s.push_str(p.script.trim_end());
            s.push('\n');
        }
        s.push_str(
            r#"
# --- verdict ---
dump_consoles
e2e "$SCENARIO PASS"
sync
poweroff -f
"#,
        );
        s
    }
}

/// What dom0's heartbeat prints (followed by its uptime).
pub const HEARTBEAT: &str = "DOM0-HEARTBEAT";
/// How often dom0 prints it.
pub const HEARTBEAT_SECS: u64 = 20;

/// The xl config's place in the initramfs.
pub fn xl_cfg_path(domain: &str) -> String {
    format!("/etc/xen/{domain}.cfg")
}

/// In a console marker, stands for the domain's id.
pub const DOMID: &str = "{domid}";

fn domid_var(domain: &str) -> String {
    domain.to_uppercase().replace('-', "_") + "_DOMID"
}

/// `marker` for the script (`{domid}` -> `$VAR`) and for the serial-log check
/// (cut at `{domid}`, whose value the harness does not know).
fn console_marker(marker: &str, var: &str) -> (String, String) {
    let script = marker.replace(DOMID, &format!("${var}"));
    let check = marker.split(DOMID).next().unwrap_or(marker).to_string();
    (script, check)
}

/// Creates `domain` from its config and waits until it is ready.
///
/// The readiness convention every test domain follows: its console shows
/// `<domain>: ready` and it wrote `1` to `data/<domain>-ready` in its xenstore
/// directory. Then each of `console` (which may contain [`DOMID`]) must show on
/// its console within 10 s.
pub fn domain_up(domain: &str, ready_timeout_s: u32, console: &[&str]) -> Part {
    let var = domid_var(domain);
    let cfg = xl_cfg_path(domain);
    let mut script = format!(
        r#"t0=$(now_ms)
xl create {cfg} > /tmp/xl-create-{domain}.log 2>&1 || {{ sed 's/^/[xl create] /' /tmp/xl-create-{domain}.log; fail "xl create {cfg} failed (output above)"; }}
{var}=$(xl domid {domain}) || fail "{domain} was gone right after xl create: it stopped at once (its console is above)"
e2e "{domain} created domid=${var} in $(( $(now_ms) - t0 )) ms"
wait_console {domain} "{domain}: ready" {ready_timeout_s}
wait_for 10 xs_is /local/domain/${var}/data/{domain}-ready 1 || fail "xenstore /local/domain/${var}/data/{domain}-ready is '$(xenstore-read /local/domain/${var}/data/{domain}-ready 2>&1)', not 1"
e2e "{domain} ready in $(( $(now_ms) - t0 )) ms"
"#
    );
    let mut markers = vec![
        format!("E2E: {domain} created domid="),
        format!("{domain}: ready"),
        format!("E2E: {domain} ready"),
    ];
    for m in console {
        let (in_script, check) = console_marker(m, &var);
        script.push_str(&format!("wait_console {domain} \"{in_script}\" 10\n"));
        markers.push(check);
    }
    Part { title: format!("{domain}: create, wait until ready"), script, markers }
}

/// Shuts `domain` down with `xl shutdown -w`, checks it is gone, then that
/// its console shows each of `console`.
pub fn domain_down(domain: &str, shutdown_timeout_s: u32, console: &[&str]) -> Part {
    let var = domid_var(domain);
    let mut script = format!(
        r#"t0=$(now_ms)
timeout {shutdown_timeout_s} xl shutdown -w {domain} > /tmp/xl-shutdown-{domain}.log 2>&1 || {{ sed 's/^/[xl shutdown] /' /tmp/xl-shutdown-{domain}.log; fail "xl shutdown -w {domain} did not complete within {shutdown_timeout_s} s"; }}
wait_for 10 dom_gone {domain} || fail "{domain} still listed by xl list 10 s after xl shutdown -w returned"
e2e "{domain} gone in $(( $(now_ms) - t0 )) ms"
"#
    );
    let mut markers = vec![format!("E2E: {domain} gone")];
    for m in console {
        let (in_script, check) = console_marker(m, &var);
        script.push_str(&format!(
            "console_has {domain} \"{in_script}\" || fail \"{domain}'s console never showed '{in_script}'\"\n"
        ));
        markers.push(check);
    }
    Part { title: format!("{domain}: shut down"), script, markers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom0() -> Dom0 {
        Dom0 {
            kernel_release: "6.1.0-48-amd64".into(),
            modules: vec![
                "kernel/drivers/xen/xen-privcmd.ko".into(),
                "kernel/drivers/xen/xenfs/xenfs.ko".into(),
            ],
            xen_bin: "/usr/lib/xen-4.17/bin".into(),
            lib_dirs: vec!["/usr/lib/x86_64-linux-gnu".into()],
        }
    }

    fn stage2() -> Scenario {
        Scenario {
            name: "stage2".into(),
            files: vec![],
            parts: vec![
                domain_up("gpu-dom", 30, &["gpu-dom: xenstore name=gpu-dom domid={domid}"]),
                domain_down("gpu-dom", 60, &["gpu-dom: shutdown requested (poweroff)"]),
            ],
            timeout: Duration::from_secs(300),
        }
    }

    #[test]
    fn init_starts_with_the_busybox_shebang_and_ends_with_poweroff() {
        let s = stage2().init_script(&dom0());
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        assert!(s.trim_end().ends_with("poweroff -f"));
    }

    #[test]
    fn dom0_beats_from_the_start_so_a_stopped_machine_can_be_told_apart() {
        let s = stage2().init_script(&dom0());
        let beat = s.find(&format!("echo \"{HEARTBEAT} $(now_ms) ms\"")).unwrap();
        assert!(beat > s.find("now_ms()").unwrap(), "after the helper it uses");
        assert!(beat < s.find("xenstored --pid-file").unwrap(), "before anything can block");
        assert!(s.contains(&format!("while sleep {HEARTBEAT_SECS}; do")));
    }

    #[test]
    fn modules_load_in_plan_order_before_the_toolstack_starts() {
        let s = stage2().init_script(&dom0());
        let privcmd = s.find("insmod $M/kernel/drivers/xen/xen-privcmd.ko").unwrap();
        let xenfs = s.find("insmod $M/kernel/drivers/xen/xenfs/xenfs.ko").unwrap();
        let xenstored = s.find("xenstored --pid-file").unwrap();
        assert!(privcmd < xenfs && xenfs < xenstored);
        assert!(s.contains("M=/lib/modules/6.1.0-48-amd64"));
    }

    #[test]
    fn xenconsoled_logs_guest_consoles_to_the_directory_the_checks_read() {
        let s = stage2().init_script(&dom0());
        assert!(s.contains(
            "xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=\"$CONSOLE_DIR\""
        ));
        assert!(s.contains(&format!("CONSOLE_DIR={CONSOLE_DIR}")));
    }

    #[test]
    fn parts_run_in_order_and_consoles_are_dumped_before_the_verdict() {
        let s = stage2().init_script(&dom0());
        let create = s.find("xl create /etc/xen/gpu-dom.cfg").unwrap();
        let shutdown = s.find("xl shutdown -w gpu-dom").unwrap();
        let verdict = s.rfind("# --- verdict ---").unwrap();
        let dump = s[verdict..].find("dump_consoles").unwrap();
        let pass = s[verdict..].find("e2e \"$SCENARIO PASS\"").unwrap();
        assert!(create < shutdown && shutdown < verdict && dump < pass);
    }

    #[test]
    fn every_wait_in_the_parts_is_bounded() {
        let s = stage2().init_script(&dom0());
        let waits: Vec<&str> = s.lines().filter(|l| l.starts_with("wait_console ")).collect();
        assert!(waits.len() >= 2);
        for line in waits {
            let last = line.split_whitespace().last().unwrap();
            assert!(last.parse::<u32>().is_ok(), "unbounded wait: {line}");
        }
        assert!(s.contains("timeout 60 xl shutdown -w gpu-dom"));
        assert!(s.contains("wait_console gpu-dom \"gpu-dom: ready\" 30"));
        assert!(s.contains("wait_for 10 dom_gone gpu-dom"));
    }

    #[test]
    fn failures_dump_consoles_then_print_the_fail_marker() {
        let s = stage2().init_script(&dom0());
        let f = s.find("fail() {").unwrap();
        let body = &s[f..f + s[f..].find("\n}").unwrap()];
        assert!(body.find("dump_consoles").unwrap() < body.find("FAIL $*").unwrap());
        assert!(body.contains("poweroff -f"));
    }

    #[test]
    fn expected_markers_cover_dom0_the_domain_and_the_verdict() {
        let m = stage2().expected_markers();
        assert_eq!(m.first().unwrap(), "E2E: dom0 toolstack up");
        for want in [
            "E2E: gpu-dom created domid=",
            "gpu-dom: ready",
            "E2E: gpu-dom ready",
            "E2E: gpu-dom gone",
        ] {
            assert!(m.iter().any(|x| x == want), "{want}");
        }
        assert!(m.contains(&"gpu-dom: shutdown requested (poweroff)".to_string()));
        assert_eq!(m.last().unwrap(), "E2E: stage2 PASS");
    }

    #[test]
    fn domid_variable_names_are_valid_shell_identifiers() {
        let p = domain_up("gpu-dom", 60, &[]);
        assert!(p.script.contains("GPU_DOM_DOMID=$(xl domid gpu-dom)"));
        assert!(p.script.contains("/local/domain/$GPU_DOM_DOMID/data/gpu-dom-ready"));
    }

    #[test]
    fn domid_placeholders_become_the_shell_variable_and_are_cut_from_log_markers() {
        let p = domain_up("test-guest", 30, &["test-guest: domid={domid} up"]);
        assert!(p
            .script
            .contains("wait_console test-guest \"test-guest: domid=$TEST_GUEST_DOMID up\" 10"));
        assert!(p.markers.contains(&"test-guest: domid=".to_string()));
        let d = domain_down("test-guest", 30, &["test-guest: bye"]);
        assert!(d.script.contains("console_has test-guest \"test-guest: bye\" || fail"));
        assert!(d.markers.contains(&"test-guest: bye".to_string()));
    }
}
