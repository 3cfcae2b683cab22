//! `cargo xtask e2e`: gpu-dom serving real guests under Xen, in QEMU.
//!
//! Debian's Linux as PV dom0 (the stage 2 system) with three more things in
//! its initramfs: the test guest image (`guests/test-guest`), the `vgpu`
//! toolstack command, and one xl config per test domain derived from
//! `xl-configs/test-guest.cfg`. Its `/init` then:
//!
//! 1. `xl create`s gpu-dom (with `gpu-dom.debug=readback`) and waits for its
//!    backend to be ready;
//! 2. creates two good guests paused, `vgpu attach`es each, unpauses it, and
//!    waits until gpu-dom reports it Connected (timed) and the guest reports
//!    that every GGTT and PPGTT entry read back its own bytes;
//! 3. counts gpu-dom's grant hypercalls per 512-entry batch: a guest in
//!    `mode=bench sizes=512 detach=0 rounds=1 rtt=0` maps 512 fresh grants (cold), maps
//!    them again (warm) and unmaps them, through the GGTT and a PPGTT
//!    context; dom0 reads gpu-dom's own counters (`data/vgpu-hypercalls`)
//!    around each batch and prints `E2E: hypercalls kind=<kind> batch=512
//!    map=<n> unmap=<n>` (see `bench_xen`);
//! 4. runs a hostile guest (foreign and revoked grants, read-only asked
//!    writable, out-of-slice indexes, garbage directory pages, a runaway
//!    `req_prod`): it gets errors, then is disconnected; the good guests stay
//!    Connected and report no mismatch;
//! 5. pipelining and fair service: guest1 times 50 GGTT batches of 64
//!    entries with one request in flight, then with up to 8 (a
//!    `frontend::Pipeline`), and the speedup is printed (QEMU TCG times, not
//!    asserted); guest1 measures its request round trip (a 4-entry GGTT
//!    request, on its own clock) with the others idle, then while a busy
//!    guest floods its ring and event channel; the two medians and their
//!    ratio are printed, and the means and maxima (QEMU TCG times, not
//!    asserted);
//! 6. `xl destroy`s that busy guest in the middle of its flood: gpu-dom
//!    revokes everything and the domain leaves `xl list` (no zombie), timed;
//! 7. runs a frontend that presents bad values in xenstore (`mode=badfe`:
//!    `version = 2`, ring-refs never granted and not a number,
//!    `event-channel = 0`), each after going back to
//!    Initialising: [`BADFE_SETTLE_S`] after each refusal, gpu-dom's log
//!    must show exactly one refusal for it (no watch loop); then the right
//!    values connect, and the good guests stay Connected and verified;
//! 8. boots a guest nobody attached (it finds no device), and one whose limits
//!    the "toolstack" then makes guest-writable (gpu-dom refuses it);
//! 9. admission control: `vgpu attach` asking one page more than gpu-dom's
//!    pages pool has free exits 1 with "does not fit", writes nothing, and
//!    the good guests stay Connected and verified;
//! 10. attaches dom0 itself and runs `vgpu-front attach-test` (a Linux
//!     frontend over gntalloc and evtchn);
//! 11. `xl shutdown`s gpu-dom with the good guests attached: they see the
//!     backend close, and gpu-dom goes away.

use std::time::Duration;

use crate::commands::boot::{self, DOMAIN};
use crate::error::{Error, Result};
use crate::formats::initramfs::Source;
use crate::formats::xlcfg;
use crate::harness::dom0_run::{self, Dom0Run};
use crate::harness::guests::{
    self, GUEST_IMAGE_IN_DOM0, GUEST_XL_CONFIG, VGPU_FRONT_IN_DOM0, VGPU_IN_DOM0,
};
use crate::harness::scenario::{self, file, part, Part, Scenario, ScenarioFile};
use crate::harness::system;
use crate::paths::Paths;
use crate::progress::Progress;

/// The test domains: (name, command line).
pub const GUESTS: &[(&str, &str)] = &[
    ("guest1", "mode=good pages=300"),
    ("guest2", "mode=good pages=300"),
    ("hostile", "mode=hostile"),
    ("lonely", "mode=unattached"),
    ("lonely2", "mode=unattached"),
    ("busy", "mode=busy pages=1024"),
    ("badfe", "mode=badfe"),
    ("hcount", "mode=bench sizes=512 detach=0 rounds=1 rtt=0"),
];
/// Seconds gpu-dom gets, after refusing a bad frontend value, to show that
/// it refuses it again (a watch loop) before its refusals are counted.
pub const BADFE_SETTLE_S: u32 = 3;

pub fn run(paths: &Paths, timeout: Option<Duration>) -> Result<()> {
    let mut p = Progress::new("e2e", 13);
    let sys = system::prepare(paths, &mut p, None, true)?;
    let (guest, vgpu) = guests::build_guest_and_vgpu(paths, &mut p)?;
    let front = guests::build_vgpu_front(paths, &mut p)?;
    let gpu_cfg =
        xlcfg::with_string(&boot::dom0_xl_config(paths)?, "cmdline", &guests::gpu_dom_cmdline());
    let template_path = paths.root.join(GUEST_XL_CONFIG);
    let template = std::fs::read_to_string(&template_path)
        .map_err(|e| Error::io("reading", &template_path, e))?;
    let mut files = vec![
        file(boot::IMAGE_IN_DOM0, Source::Host(sys.image.elf.clone()), 0o644),
        file(&scenario::xl_cfg_path(DOMAIN), Source::Bytes(gpu_cfg.into_bytes()), 0o644),
        file(GUEST_IMAGE_IN_DOM0, Source::Host(guest), 0o644),
        file(VGPU_IN_DOM0, Source::Host(vgpu), 0o755),
        file(VGPU_FRONT_IN_DOM0, Source::Host(front), 0o755),
    ];
    for (name, cmdline) in GUESTS {
        let cfg = guests::guest_config(&template, name, cmdline)
            .map_err(|reason| Error::XlConfig { path: template_path.clone(), reason })?;
        files.push(file(&scenario::xl_cfg_path(name), Source::Bytes(cfg.into_bytes()), 0o644));
    }
    let scenario = e2e_scenario(files);
    let run = Dom0Run {
        dir: "e2e",
        label: "e2e",
        what: format!("Linux PV dom0, gpu-dom and {} test guests", GUESTS.len()),
        rerun: "cargo xtask e2e",
        scenario: &scenario,
        timeout,
        devices: Vec::new(),
    };
    let r = dom0_run::run_dom0(paths, &mut p, &sys, &run);
    println!("[e2e] wall time per step:\n{}", p.summary());
    r
}

/// Helpers of the e2e script (busybox ash), on top of the scenario prelude.
const HELPERS: &str = r#"GD=$GPU_DOM_DOMID
# refusals DOMID: gpu-dom's refusal lines for that guest's device 0 so far.
refusals() { grep -c -F "gpu-dom: vgpu dom$1/0 refused: " "$CONSOLE_DIR/guest-gpu-dom.log"; }
"#;

/// The e2e scenario (see the module documentation).
pub fn e2e_scenario(files: Vec<ScenarioFile>) -> Scenario {
    let parts = vec![
        scenario::domain_up(
            DOMAIN,
            30,
            &["gpu-dom: xenstore name=gpu-dom domid={domid}", "gpu-dom: backend ready"],
        ),
        backend_ready(),
        good_guests(),
        crate::commands::bench_xen::bench_part("hcount", 300),
        hostile_guest(),
        fairness_then_destroy_mid_flood(),
        bad_frontend_values(),
        unattached_guests(),
        admission_control(),
        linux_frontend_in_dom0(),
        shutdown_with_guests_attached(),
    ];
    Scenario { name: "e2e".into(), files, parts, timeout: Duration::from_secs(1320) }
}

/// gpu-dom's backend is ready (timed from `xl create`).
fn backend_ready() -> Part {
    part(
        "gpu-dom backend ready",
        format!(
            "{HELPERS}e2e \"gpu-dom backend ready $(( $(now_ms) - t0 )) ms after xl create\"\n"
        ),
        &["E2E: gpu-dom backend ready"],
    )
}

/// Two good guests: attach, map, verify (step 2 of the module doc).
fn good_guests() -> Part {
    part(
        "two good guests: attach, map, verify",
        r#"guest_create guest1 G1
guest_create guest2 G2
attach_and_start guest1 $G1
attach_and_start guest2 $G2
wait_console guest1 "good PASS" 240
wait_console guest2 "good PASS" 240
console_has guest1 "FAIL" && fail "guest1 reported a failure (console above)"
console_has guest2 "FAIL" && fail "guest2 reported a failure (console above)"
e2e "good guests: every entry resolved to the guest's own bytes"
vgpu_run list
"#
        .into(),
        &["vgpu attach to Connected in", "good PASS", "E2E: good guests: every entry resolved"],
    )
}

/// A hostile guest gets errors, then is disconnected; the good guests stay intact (step 4).
fn hostile_guest() -> Part {
    part(
        "hostile guest: errors, then disconnected; the good guests intact",
        r#"guest_create hostile GH
# It connects, runs its cases and is disconnected within moments: judged by
# its verdict and gpu-dom's log, not by polling a state it passes through.
attach_and_unpause hostile
wait_console hostile "hostile PASS" 180
wait_console gpu-dom "vgpu dom$GH/0 closed (ring protocol violation)" 30
xs_is "$(be_dir $G1)/state" 4 || fail "guest1 lost its connection during the hostile run"
xs_is "$(be_dir $G2)/state" 4 || fail "guest2 lost its connection during the hostile run"
sleep 3
console_has guest1 "FAIL" && fail "guest1 reported a failure after the hostile run"
console_has guest2 "FAIL" && fail "guest2 reported a failure after the hostile run"
e2e "hostile guest refused and disconnected; good guests still Connected and verified"
xl destroy hostile
"#
        .into(),
        &["hostile PASS", "closed (ring protocol violation)", "E2E: hostile guest refused"],
    )
}

/// Pipelining measured by guest1, fair service against a flooding guest,
/// then `xl destroy` of it mid-flood (steps 5 and 6).
fn fairness_then_destroy_mid_flood() -> Part {
    part(
    "fair service against a flooding guest, then xl destroy of it mid-flood",
    r#"fair_node=/local/domain/$G1/data/fairness
xenstore-write $fair_node idle
wait_1s 90 xs_exists $fair_node-idle || fail "guest1 did not measure its round trip (idle) within 90 s"
# field N of a "median mean max" figure; the ratio of two numbers
fig() { echo "$1" | cut -d' ' -f"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a > 0 ? b / a : 0) }'; }
xenstore-write $fair_node pipeline
wait_1s 180 xs_exists $fair_node-pipeline || fail "guest1 did not measure pipelining within 180 s"
pipe=$(xenstore-read $fair_node-pipeline)
case "$pipe" in *FAIL*) fail "guest1's pipelining measurement failed: '$pipe'" ;; esac
e2e "pipelining: $(fig "$pipe" 3) GGTT batches of 64 entries took $(fig "$pipe" 1) us with 1 request in flight, $(fig "$pipe" 2) us with up to 8: speedup=$(ratio $(fig "$pipe" 2) $(fig "$pipe" 1)) (guest1's clock; QEMU TCG times, not hardware)"
guest_create busy GB
attach_and_start busy $GB
wait_console busy "busy batches=" 300
busy_before=$(grep -o "busy batches=[0-9]*" "$CONSOLE_DIR/guest-busy.log" | tail -n 1 | cut -d= -f2)
xenstore-write $fair_node busy
wait_1s 90 xs_exists $fair_node-busy || fail "guest1 did not measure its round trip (busy) within 90 s"
busy_after=$(grep -o "busy batches=[0-9]*" "$CONSOLE_DIR/guest-busy.log" | tail -n 1 | cut -d= -f2)
rtt_idle=$(xenstore-read $fair_node-idle); rtt_busy=$(xenstore-read $fair_node-busy)
case "$rtt_idle $rtt_busy" in *FAIL*) fail "guest1's round trip measurement failed: idle '$rtt_idle', busy '$rtt_busy'" ;; esac
e2e "fairness rtt idle=$(fig "$rtt_idle" 1) busy=$(fig "$rtt_busy" 1) ratio=$(ratio $(fig "$rtt_idle" 1) $(fig "$rtt_busy" 1))"
e2e "fairness rtt means idle=$(fig "$rtt_idle" 2) busy=$(fig "$rtt_busy" 2) ratio=$(ratio $(fig "$rtt_idle" 2) $(fig "$rtt_busy" 2)); max idle=$(fig "$rtt_idle" 3) busy=$(fig "$rtt_busy" 3)"
e2e "fairness: us on guest1's clock per round trip of a 4-entry GGTT request ($(grep -o 'rtt phase=[a-z]* n=[0-9]*' "$CONSOLE_DIR/guest-guest1.log" | tr '\n' ' ')), medians first; QEMU TCG times, not hardware; busy flooded meanwhile ($busy_before -> $busy_after responses)"
xs_is "$(be_dir $G1)/state" 4 || fail "guest1 lost its connection while busy flooded"
xs_is "$(be_dir $G2)/state" 4 || fail "guest2 lost its connection while busy flooded"
console_has guest1 "FAIL" && fail "guest1 reported a failure while busy flooded"
console_has guest2 "FAIL" && fail "guest2 reported a failure while busy flooded"
d_t0=$(now_ms)
xl destroy busy || fail "xl destroy busy failed"
if ! wait_for 30 domid_gone $GB; then
    xenstore-ls -f "$(be_dir $GB)" 2>&1 | sed 's/^/E2E: [xs backend] /'
    xenstore-ls -f /local/domain/$GB 2>&1 | sed 's/^/E2E: [xs guest] /'
    fail "busy (domid $GB) still in xl list 30 s after xl destroy: $(xl list | awk -v id=$GB '$2 == id')"
fi
e2e "busy (domid $GB) destroyed mid-batch: gone from xl list in $(( $(now_ms) - d_t0 )) ms"
wait_console gpu-dom "vgpu dom$GB/0 closed" 10
vgpu_run list
vgpu_run detach $GB --backend gpu-dom --force || fail "vgpu detach of the dead guest failed"
"#
    .into(),
    &["E2E: pipelining: ", "E2E: fairness rtt idle=", "E2E: fairness rtt means", "destroyed mid-batch: gone from xl list in", "E2E: [vgpu]"],
    )
}

/// A frontend presenting bad values in xenstore is refused once each (step 7).
fn bad_frontend_values() -> Part {
    part(
        "a frontend presenting bad values in xenstore: refused once each",
        format!(
            r#"guest_create badfe GBF
attach_and_unpause badfe
bf_seen=0
bf_k=1
# One bad value after the other, until the guest goes on to the right ones.
bf_next() {{ xs_starts /local/domain/$GBF/data/badfe-refused "$bf_k " || console_has badfe "badfe good values" || console_has badfe "badfe FAIL"; }}
while [ $bf_k -le 20 ]; do
    wait_1s 90 bf_next || fail "badfe: value $bf_k not refused within 90 s (gpu-dom state '$(be_state $GBF)')"
    console_has badfe "badfe FAIL" && fail "badfe failed (console above)"
    xs_starts /local/domain/$GBF/data/badfe-refused "$bf_k " || break
    bf_value=$(xenstore-read /local/domain/$GBF/data/badfe-refused | cut -d' ' -f2)
    sleep {settle}
    bf_now=$(refusals $GBF)
    e2e "badfe $bf_value: refused $(( bf_now - bf_seen )) time(s) ({settle} s after the refusal)"
    [ $(( bf_now - bf_seen )) = 1 ] || fail "badfe: gpu-dom refused $bf_value $(( bf_now - bf_seen )) times, not once: it probes the refused device again by itself"
    bf_seen=$bf_now
    xenstore-write /local/domain/$GBF/data/badfe-go $bf_k
    bf_k=$(( bf_k + 1 ))
done
wait_console badfe "badfe PASS" 60
xs_is "$(be_dir $G1)/state" 4 || fail "guest1 lost its connection during the badfe run"
xs_is "$(be_dir $G2)/state" 4 || fail "guest2 lost its connection during the badfe run"
console_has guest1 "FAIL" && fail "guest1 reported a failure during the badfe run"
console_has guest2 "FAIL" && fail "guest2 reported a failure during the badfe run"
e2e "badfe: each of $bf_seen bad values refused exactly once, the right values then connected; good guests still Connected and verified"
xl destroy badfe
"#,
            settle = BADFE_SETTLE_S,
        ),
        &[
            "E2E: badfe version=2: refused 1 time(s)",
            "badfe good values -> connected",
            "badfe PASS",
            "E2E: badfe: each of",
        ],
    )
}

/// Guests the toolstack did not attach, or attached with guest-writable limits (step 8).
fn unattached_guests() -> Part {
    part(
    "guests the toolstack did not attach (or attached with guest-writable limits)",
    r#"guest_create lonely GL
xl unpause lonely
wait_console lonely "unattached: no device" 60
guest_create lonely2 GW
vgpu_run attach lonely2 --backend gpu-dom || fail "vgpu attach lonely2 failed"
wait_for 30 xs_is "$(be_dir $GW)/state" 2 || fail "lonely2: gpu-dom state '$(be_state $GW)', not InitWait"
# A toolstack mistake: the guest may now write its own limits.
xenstore-chmod "$(be_dir $GW)/limits/max-pages" n0 r$GD b$GW || fail "xenstore-chmod failed"
wait_console gpu-dom "vgpu dom$GW/0 refused" 30
xl unpause lonely2
wait_console lonely2 "backend did not serve" 60
e2e "unattached guests: nothing served"
xl destroy lonely
xl destroy lonely2
"#
    .into(),
    &["unattached: no device", "refused: limits/max-pages is writable by the guest", "E2E: unattached guests: nothing served"],
    )
}

/// Admission control: limits that do not fit are refused before anything is written (step 9).
fn admission_control() -> Part {
    part(
    "admission control: limits that do not fit are refused before anything is written",
    r#"# What vgpu itself counts as free: capacity less the larger of what gpu-dom
# reserved and what the toolstack promised (stale devices included).
p_free=$(vgpu list --backend gpu-dom | awk '$1 == "pages" { print $5 }')
[ -n "$p_free" ] || fail "vgpu list shows no pages pool"
p_ask=$(( p_free + 1 ))
vgpu_run attach Domain-0 --backend gpu-dom --max-pages $p_ask; a_rc=$?
[ "$a_rc" = 1 ] || fail "vgpu attach asking $p_ask pages ($p_free free) exited $a_rc, not 1 (output above)"
grep -q -F "does not fit: $p_ask pages asked" /tmp/vgpu.log || fail "vgpu attach asking $p_ask pages: no 'does not fit' naming the pages pool (output above)"
xs_exists "$(be_dir 0)" && fail "the refused vgpu attach left $(be_dir 0) behind"
xs_is "$(be_dir $G1)/state" 4 || fail "guest1 lost its connection after the refused attach"
xs_is "$(be_dir $G2)/state" 4 || fail "guest2 lost its connection after the refused attach"
console_has guest1 "FAIL" && fail "guest1 reported a failure"
console_has guest2 "FAIL" && fail "guest2 reported a failure"
e2e "admission: vgpu attach asking $p_ask pages with $p_free free refused (exit 1, does not fit, nothing written); good guests still Connected and verified"
"#
    .into(),
    &["does not fit: ", "E2E: admission: vgpu attach asking"],
    )
}

/// A Linux frontend in dom0: vgpu-front over gntalloc and evtchn (step 10).
fn linux_frontend_in_dom0() -> Part {
    part(
    "a Linux frontend in dom0 (vgpu-front over gntalloc and evtchn)",
    r#"vgpu_run attach Domain-0 --backend gpu-dom || fail "vgpu attach Domain-0 failed (output above)"
wait_for 30 xs_is "$(be_dir 0)/state" 2 || fail "dom0's device: gpu-dom state '$(be_state 0)', not InitWait"
f_t0=$(now_ms)
timeout 120 vgpu-front attach-test --backend-id $GD --pages 64 > /tmp/vgpu-front.log 2>&1; f_rc=$?
sed 's/^/E2E: [vgpu-front] /' /tmp/vgpu-front.log
[ "$f_rc" = 0 ] || fail "vgpu-front attach-test in dom0 exited $f_rc (output above)"
e2e "Linux frontend in dom0: attached, every entry verified, disconnected in $(( $(now_ms) - f_t0 )) ms"
vgpu_run detach Domain-0 --backend gpu-dom || fail "vgpu detach Domain-0 failed (output above)"
"#
    .into(),
    &["good PASS", "E2E: Linux frontend in dom0"],
    )
}

/// `xl shutdown` of gpu-dom with guests attached (step 11).
fn shutdown_with_guests_attached() -> Part {
    part(
    "xl shutdown gpu-dom with guests attached",
    r#"s_t0=$(now_ms)
timeout 60 xl shutdown -w gpu-dom > /tmp/xl-shutdown-gpu-dom.log 2>&1 || { sed 's/^/[xl shutdown] /' /tmp/xl-shutdown-gpu-dom.log; fail "xl shutdown -w gpu-dom did not complete within 60 s"; }
wait_for 10 dom_gone gpu-dom || fail "gpu-dom still listed after xl shutdown -w"
e2e "gpu-dom shut down with guests attached in $(( $(now_ms) - s_t0 )) ms"
console_has gpu-dom "closed (backend shutting down)" || fail "gpu-dom did not close its guests before exiting"
wait_console guest1 "backend closed" 20
wait_console guest2 "backend closed" 20
e2e "guests saw the backend close"
"#
    .into(),
    &["closed (backend shutting down)", "backend closed", "E2E: guests saw the backend close"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guest_config_gets_its_name_image_and_mode() {
        let template = "name = \"test-guest\"\ntype = \"pvh\"\nkernel = \"target/x\"\ncmdline = \"mode=good\"\n";
        let cfg = guests::guest_config(template, "busy", "mode=busy").unwrap();
        assert_eq!(xlcfg::get_string(&cfg, "name").as_deref(), Some("busy"));
        assert_eq!(xlcfg::get_string(&cfg, "kernel").as_deref(), Some(GUEST_IMAGE_IN_DOM0));
        assert_eq!(xlcfg::get_string(&cfg, "cmdline").as_deref(), Some("mode=busy"));
    }

    #[test]
    fn the_scenario_creates_every_guest_it_configures() {
        let s = e2e_scenario(Vec::new());
        let script: String = s.parts.iter().map(|p| p.script.as_str()).collect();
        for (name, _) in GUESTS {
            assert!(script.contains(&format!("guest_create {name} ")), "{name} is never created");
        }
        assert!(s.parts.iter().all(|p| !p.markers.is_empty()));
    }

    #[test]
    fn the_repository_test_guest_config_is_a_pvh_guest_of_the_test_image() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = std::fs::read_to_string(root.join(GUEST_XL_CONFIG)).unwrap();
        assert_eq!(xlcfg::get_string(&text, "type").as_deref(), Some("pvh"));
        assert!(guests::guest_config(&text, "g", "mode=good").is_ok());
    }
}
