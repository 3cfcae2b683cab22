//! `cargo xtask restart`: gpu-dom dies and comes back under Xen, in QEMU;
//! its guests survive, reconnect and get their mappings back.
//!
//! The dom0 of the e2e run (Linux PV dom0, the test guest image, `vgpu`),
//! with `vgpu supervise` running in the background. Its `/init`:
//!
//! 1. `xl create`s gpu-dom in the freshly booted dom0 (timed: the first
//!    create pays the toolstack's warm-up) and starts the supervisor;
//! 2. attaches two guests, `steady` (mode good: 64 GGTT and 512 PPGTT
//!    entries, every one read back through gpu-dom) and `busy` (mode busy:
//!    64-entry map/unmap batches for ever, its first batch read back);
//! 3. arms the next gpu-dom to crash (`gpu-dom.fault=panic-after=N` in the
//!    config the supervisor uses), then `xl destroy`s gpu-dom while `busy`
//!    is in the middle of its batches: both guests stay up and report the
//!    backend gone with every grant ended (Xen released them); the
//!    supervisor re-creates gpu-dom and restores the devices; each guest
//!    reconnects, replays its mappings and reads every entry back (timed:
//!    death to noticing, `xl create` to ready, death to re-served);
//! 4. disarms the config; the armed gpu-dom crashes by itself after N
//!    requests (`on_crash = "destroy"`), and the same happens again;
//! 5. checks nothing leaked: `vgpu list` shows both devices Connected, the
//!    guests shut down ending every grant they made and leave `xl list` (no
//!    zombie), no old gpu-dom is left, and detaching leaves no device and no
//!    record.

use std::time::Duration;

use crate::commands::boot::{self, DOMAIN};
use crate::error::{Error, Result};
use crate::formats::initramfs::Source;
use crate::formats::xlcfg;
use crate::harness::dom0_run::{self, Dom0Run};
use crate::harness::guests::{self, GUEST_IMAGE_IN_DOM0, GUEST_XL_CONFIG, VGPU_IN_DOM0};
use crate::harness::scenario::{self, file, part, Part, Scenario, ScenarioFile};
use crate::harness::system;
use crate::paths::Paths;
use crate::progress::Progress;

/// The armed gpu-dom crashes after this many answered requests: past the
/// replay and both guests' read-backs (about 1300 requests with `busy`'s
/// batches interleaved, measured), while `busy` keeps batching. Measured
/// with `busy` keeping one batch in flight (`depth=1`): a pipelining `busy`
/// gets up to `depth` requests answered per round against `steady`'s one,
/// so its share before `steady` has read everything back grows with the
/// depth and this count would no longer come after the read-backs.
pub const CRASH_AFTER: u32 = 2000;
/// The test domains: (name, command line). `busy` pipelines through the
/// same code as the default (a `Pipeline`), one batch in flight: see
/// [`CRASH_AFTER`].
pub const GUESTS: &[(&str, &str)] =
    &[("steady", "mode=good pages=64"), ("busy", "mode=batches pages=64 depth=1")];
/// Configs in dom0: the one the supervisor uses, and the two it is set to.
const CFG_NORMAL: &str = "/etc/xen/gpu-dom-normal.cfg";
const CFG_ARMED: &str = "/etc/xen/gpu-dom-armed.cfg";

pub fn run(paths: &Paths, timeout: Option<Duration>) -> Result<()> {
    let mut p = Progress::new("restart", 12);
    let sys = system::prepare(paths, &mut p, None, true)?;
    let (guest, vgpu) = guests::build_guest_and_vgpu(paths, &mut p)?;
    let base = boot::dom0_xl_config(paths)?;
    // Guests verify entries through gpu-dom's debug readback.
    let cmdline = guests::gpu_dom_cmdline();
    let normal = xlcfg::with_string(&base, "cmdline", &cmdline);
    let armed = xlcfg::with_string(&base, "cmdline", &armed_cmdline(&cmdline));
    let template_path = paths.root.join(GUEST_XL_CONFIG);
    let template = std::fs::read_to_string(&template_path)
        .map_err(|e| Error::io("reading", &template_path, e))?;
    let mut files = vec![
        file(boot::IMAGE_IN_DOM0, Source::Host(sys.image.elf.clone()), 0o644),
        file(&scenario::xl_cfg_path(DOMAIN), Source::Bytes(normal.clone().into_bytes()), 0o644),
        file(CFG_NORMAL, Source::Bytes(normal.into_bytes()), 0o644),
        file(CFG_ARMED, Source::Bytes(armed.into_bytes()), 0o644),
        file(GUEST_IMAGE_IN_DOM0, Source::Host(guest), 0o644),
        file(VGPU_IN_DOM0, Source::Host(vgpu), 0o755),
    ];
    for (name, cmdline) in GUESTS {
        let cfg = guests::guest_config(&template, name, cmdline)
            .map_err(|reason| Error::XlConfig { path: template_path.clone(), reason })?;
        files.push(file(&scenario::xl_cfg_path(name), Source::Bytes(cfg.into_bytes()), 0o644));
    }
    let scenario = restart_scenario(files);
    let run = Dom0Run {
        dir: "restart",
        label: "restart",
        what: "Linux PV dom0, gpu-dom destroyed and crashed under two guests".into(),
        rerun: "cargo xtask restart",
        scenario: &scenario,
        timeout,
        devices: Vec::new(),
    };
    let r = dom0_run::run_dom0(paths, &mut p, &sys, &run);
    let serial = paths.stage("restart").join("serial.log");
    if let Ok(log) = std::fs::read_to_string(&serial) {
        let figures: Vec<&str> = log.lines().filter(|l| l.contains("E2E: figure")).collect();
        if !figures.is_empty() {
            println!("[restart] figures:");
            for f in figures {
                println!("  {}", f.split("E2E: figure ").nth(1).unwrap_or(f).trim_end());
            }
        }
    }
    println!("[restart] wall time per step:\n{}", p.summary());
    r
}

/// `cmdline` with `gpu-dom.fault=panic-after=<CRASH_AFTER>`.
fn armed_cmdline(cmdline: &str) -> String {
    use unikernel::boot_options::{FAULT, FAULT_AFTER};
    format!("{cmdline} {FAULT}=panic{FAULT_AFTER}{CRASH_AFTER}")
}

/// Helpers of the restart script (busybox ash), on top of the prelude.
const HELPERS: &str = r#"GD=$GPU_DOM_DOMID
count_console() { n=$(grep -c -F -- "$2" "$CONSOLE_DIR/guest-$1.log" 2>/dev/null); echo "${n:-0}"; }
show_supervisor() { sed 's/^/E2E: [supervise] /' /tmp/supervise.log; : > /tmp/supervise.log.shown; }
# until_all MARKER N SECS T0: wait until each guest's console has N lines
# with MARKER; AT_steady and AT_busy = ms from T0 to when each was first
# seen (both watched at once, every 0.2 s: a grep per guest and nothing
# else, as every process dom0 starts slows the xenstored the restart goes
# through; whether a guest crashed or vanished is asked of xl every 10
# rounds and at the end). Fails on timeout.
until_all() {
    ua_end=$(( $(now_ms) + $3 * 1000 )); AT_steady=; AT_busy=; ua_n=0
    while [ -z "$AT_steady" ] || [ -z "$AT_busy" ]; do
        for g in steady busy; do
            eval "ua_seen=\$AT_$g"
            if [ -z "$ua_seen" ] && [ "$(count_console $g "$1")" -ge "$2" ]; then
                eval "AT_$g=$(( $(now_ms) - $4 ))"
            fi
        done
        ua_n=$(( ua_n + 1 ))
        if [ $(( ua_n % 10 )) = 0 ] || [ "$(now_ms)" -ge "$ua_end" ]; then
            for g in steady busy; do
                case "$(dom_state $g)" in
                    *c*) fail "$g crashed while waiting for '$1'" ;;
                    "") fail "$g is gone while waiting for '$1'" ;;
                esac
            done
            [ "$(now_ms)" -ge "$ua_end" ] && fail "not every guest's console showed '$1' $2 time(s) within $3 s (steady: ${AT_steady:-no}, busy: ${AT_busy:-no})"
        fi
        sleep 0.2
    done
}
# last_line DOM MARKER: the last console line of DOM with MARKER.
last_line() { grep -F -- "$2" "$CONSOLE_DIR/guest-$1.log" | tail -1; }
# check_gone_line DOM N: after the N-th death, DOM ended every grant: its
# first 'backend gone' line says still_mapped=0, or a later one does (Xen
# releases a dying domain's mappings a moment after its home is gone).
check_gone_line() {
    n=$(grep -F "backend gone" "$CONSOLE_DIR/guest-$1.log" | grep -c "still_mapped=0")
    l=$(grep -F "backend gone (" "$CONSOLE_DIR/guest-$1.log" | sed -n "$2p")
    [ "$n" -ge "$2" ] || fail "$1 could not end every grant after backend death $2: '$l', then $(grep -F 'backend gone:' "$CONSOLE_DIR/guest-$1.log" | tail -1)"
    e2e "$1: $l; every grant ended"
}
check_reverified() {
    l=$(grep -F "reverified entries=" "$CONSOLE_DIR/guest-$1.log" | sed -n "$2p")
    case "$l" in
        *"mismatches=0"*) e2e "$1: $l" ;;
        *) fail "$1: not every entry read back after the restart: '$l'" ;;
    esac
}
# restarted ROUND T0 WHAT: both guests notice, are re-served and verified;
# prints the figures of this restart.
restarted() {
    until_all "backend gone (" "$1" 60 "$2"
    N_STEADY=$AT_steady; N_BUSY=$AT_busy
    until_all "reconnected to backend" "$1" 180 "$2"
    S_STEADY=$AT_steady; S_BUSY=$AT_busy
    until_all "reverified entries=" "$1" 240 "$2"
    R_STEADY=$AT_steady; R_BUSY=$AT_busy
    check_gone_line steady "$1"
    check_gone_line busy "$1"
    check_reverified steady "$1"
    check_reverified busy "$1"
    GD=$(xl domid gpu-dom) || fail "no gpu-dom after the restart"
    READY=$(sed -n 's/.*(domid [0-9]*) ready \([0-9]*\) ms after xl create.*/\1/p' /tmp/supervise.log | tail -1)
    [ -n "$READY" ] || { show_supervisor; fail "the supervisor never reported gpu-dom ready"; }
    RESERVED=$S_STEADY; [ "$S_BUSY" -gt "$RESERVED" ] && RESERVED=$S_BUSY
    VERIFIED=$R_STEADY; [ "$R_BUSY" -gt "$VERIFIED" ] && VERIFIED=$R_BUSY
    e2e "figure $3: death to guests noticing: steady $N_STEADY ms, busy $N_BUSY ms"
    e2e "figure $3: xl create to backend ready (gpu-dom domid $GD, running dom0): $READY ms"
    e2e "figure $3: death to every guest re-served (reconnected, every mapping replayed): $RESERVED ms (steady $S_STEADY ms, busy $S_BUSY ms)"
    e2e "figure $3: death to every entry read back again: $VERIFIED ms (steady $R_STEADY ms, 576 entries; busy $R_BUSY ms, 64 entries)"
    if [ "$RESERVED" -le $(( 2 * READY )) ]; then
        e2e "figure $3: goal met: re-served within 2x xl-create-to-ready ($RESERVED <= 2 x $READY ms)"
    else
        e2e "figure $3: goal missed: re-served in $RESERVED ms, more than 2x xl-create-to-ready ($READY ms)"
    fi
}
"#;

/// The restart scenario (see the module documentation).
pub fn restart_scenario(files: Vec<ScenarioFile>) -> Scenario {
    let parts = vec![
        scenario::domain_up(
            DOMAIN,
            30,
            &["gpu-dom: xenstore name=gpu-dom domid={domid}", "gpu-dom: backend ready"],
        ),
        supervisor(),
        two_guests_verified(),
        destroy_mid_batch(),
        crash_by_itself(),
        nothing_leaked(),
    ];
    Scenario { name: "restart".into(), files, parts, timeout: Duration::from_secs(1200) }
}

/// The supervisor starts watching gpu-dom (the first create timed).
fn supervisor() -> Part {
    part(
        "the supervisor",
        format!(
            r#"{HELPERS}FIRST_READY=$(( $(now_ms) - t0 ))
e2e "figure first create: xl create to backend ready in the freshly booted dom0: $FIRST_READY ms"
vgpu supervise gpu-dom --config /etc/xen/gpu-dom.cfg > /tmp/supervise.log 2>&1 &
SUP=$!
wait_for 30 grep -q "is running; watching @releaseDomain" /tmp/supervise.log || {{ show_supervisor; fail "vgpu supervise did not start watching gpu-dom"; }}
e2e "supervisor watching gpu-dom (pid $SUP)"
"#
        ),
        &["E2E: figure first create", "E2E: supervisor watching gpu-dom"],
    )
}

/// Two guests connected and verified, one of them batching.
fn two_guests_verified() -> Part {
    part(
        "two guests connected and verified",
        r#"# One after the other: steady has read its entries back before busy starts.
guest_create steady GS
vgpu_run attach steady --backend gpu-dom || fail "vgpu attach steady failed (output above)"
xl unpause steady
wait_for 60 xs_is "$(be_dir $GS)/state" 4 || fail "steady not Connected 60 s after attach"
wait_console steady "good PASS" 240
console_has steady "FAIL" && fail "steady reported a failure (console above)"
guest_create busy GB
vgpu_run attach busy --backend gpu-dom || fail "vgpu attach busy failed (output above)"
xl unpause busy
wait_for 60 xs_is "$(be_dir $GB)/state" 4 || fail "busy not Connected 60 s after attach"
wait_console busy "batches verified entries=64 mismatches=0" 120
wait_console busy "batches sent=" 120
e2e "two guests connected and verified; busy is batching"
vgpu_run list
"#
        .into(),
        &[
            "good PASS",
            "batches verified entries=64 mismatches=0",
            "E2E: two guests connected and verified",
        ],
    )
}

/// `xl destroy` of gpu-dom in the middle of busy's batches: the guests are re-served.
fn destroy_mid_batch() -> Part {
    part(
        "xl destroy gpu-dom in the middle of busy's batches",
        format!(
            r#"cp {CFG_ARMED} /etc/xen/gpu-dom.cfg
OLD=$GD
# busy sends its next batch as soon as the last is answered: it always has
# one in flight or about to go.
console_has busy "batches stopped" && fail "busy stopped batching"
rm -f /tmp/xl-destroy.done
D0=$(now_ms)
# In the background: the guests notice while xl destroy is still running.
( xl destroy gpu-dom > /tmp/xl-destroy.log 2>&1; echo "$? $(now_ms)" > /tmp/xl-destroy.done ) &
# Only the next gpu-dom is armed: disarm the config as soon as it exists.
new_gpu_dom() {{ nd=$(xl domid gpu-dom 2>/dev/null) && [ "$nd" != "$OLD" ]; }}
( wait_for 300 new_gpu_dom && cp {CFG_NORMAL} /etc/xen/gpu-dom.cfg ) &
restarted 1 $D0 "xl destroy"
wait_for 30 test -s /tmp/xl-destroy.done || fail "xl destroy gpu-dom did not return"
read XRC XEND < /tmp/xl-destroy.done
[ "$XRC" = 0 ] || {{ sed 's/^/[xl destroy] /' /tmp/xl-destroy.log; fail "xl destroy gpu-dom failed"; }}
e2e "figure xl destroy: xl destroy gpu-dom itself took $(( XEND - D0 )) ms"
wait_for 30 domid_gone $OLD || fail "the destroyed gpu-dom (domid $OLD) is still in xl list"
cmp -s {CFG_NORMAL} /etc/xen/gpu-dom.cfg || fail "the config was not disarmed"
e2e "restart after xl destroy: both guests re-served (gpu-dom is now domid $GD, armed to crash)"
vgpu_run list
"#
        ),
        &[
            "backend gone (",
            "reconnected to backend",
            "E2E: figure xl destroy: death to every guest re-served",
            "E2E: restart after xl destroy",
        ],
    )
}

/// gpu-dom crashes by itself (`gpu-dom.fault=panic-after`): the guests are re-served.
fn crash_by_itself() -> Part {
    part(
    "gpu-dom crashes by itself (gpu-dom.fault=panic-after)",
    r#"OLD=$GD
wait_for 600 console_has gpu-dom "injecting fault panic" || { show_supervisor; fail "the armed gpu-dom (domid $OLD) did not crash within 600 s"; }
C0=$(now_ms)
e2e "gpu-dom (domid $OLD) injected its fault: $(grep -F 'injecting fault' $CONSOLE_DIR/guest-gpu-dom.log | tail -1)"
restarted 2 $C0 "crash"
wait_for 30 domid_gone $OLD || fail "the crashed gpu-dom (domid $OLD) is still in xl list: $(xl list | awk -v id=$OLD '$2 == id')"
e2e "restart after a crash: both guests re-served (gpu-dom is now domid $GD)"
vgpu_run list
"#
    .into(),
    &["injecting fault panic", "E2E: figure crash: death to every guest re-served", "E2E: restart after a crash"],
    )
}

/// Nothing leaked: every grant ended, no zombie, no device, no record.
fn nothing_leaked() -> Part {
    part(
    "nothing leaked",
    r#"vgpu list > /tmp/list.txt 2>&1 || fail "vgpu list failed"
sed 's/^/E2E: [vgpu] /' /tmp/list.txt
[ "$(grep -c 'Connected  Connected' /tmp/list.txt)" = 2 ] || fail "vgpu list does not show both devices Connected"
grep -q stale /tmp/list.txt && fail "vgpu list reports a stale device"
grep -q "^devices  *64  *2  *2 " /tmp/list.txt || fail "vgpu list: the devices pool is not 2 reserved, 2 used"
kill $SUP
show_supervisor
for g in steady busy; do
    id=$(xl domid $g)
    timeout 60 xl shutdown -w $g > /tmp/xl-shutdown-$g.log 2>&1 || fail "xl shutdown -w $g did not complete"
    wait_for 30 domid_gone $id || fail "$g (domid $id) is a zombie: still in xl list after shutdown"
    l=$(last_line $g "cleanup grants_ended=")
    case "$l" in
        *"still_mapped=0"*) e2e "$g: $l" ;;
        *) fail "$g did not end every grant it made: '$l'" ;;
    esac
    vgpu_run detach $id --backend gpu-dom || fail "vgpu detach of $g failed"
done
[ "$(xl list | awk 'NR > 1' | wc -l)" = 2 ] || { xl list | sed 's/^/E2E: [xl list] /'; fail "domains left besides Domain-0 and gpu-dom"; }
vgpu_run list
grep -q "no vgpu devices attached" /tmp/vgpu.log || fail "vgpu list still shows devices"
[ -z "$(xenstore-list /vgpu 2>/dev/null)" ] || fail "records left under /vgpu: $(xenstore-ls /vgpu)"
e2e "nothing leaked: every grant ended, no zombie, no device, no record"
timeout 60 xl shutdown -w gpu-dom > /dev/null 2>&1 || fail "xl shutdown -w gpu-dom failed"
"#
    .into(),
    &["cleanup grants_ended=", "E2E: nothing leaked"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vgpu_list_check_expects_gpu_doms_device_capacity() {
        let devices = format!("^devices  *{}  *2  *2 ", backend::service::MAX_DEVICES);
        assert!(nothing_leaked().script.contains(&devices));
    }

    #[test]
    fn the_armed_command_line_is_read_by_gpu_dom_as_a_panic_after_n_requests() {
        let line = armed_cmdline("gpu-dom.debug=readback");
        let o = unikernel::boot_options::BootOptions::parse(&line);
        assert!(o.debug_readback);
        let f = o.fault.unwrap();
        assert_eq!((f.kind, f.after_requests), ("panic", Some(u64::from(CRASH_AFTER))));
        assert_eq!(o.unknown, None);
    }

    #[test]
    fn every_wait_is_bounded_and_every_guest_is_created() {
        let s = restart_scenario(Vec::new());
        let script: String = s.parts.iter().map(|p| p.script.as_str()).collect();
        for (name, _) in GUESTS {
            assert!(script.contains(&format!("guest_create {name} ")), "{name}");
        }
        for line in script.lines().filter(|l| l.trim_start().starts_with("wait_console ")) {
            assert!(line.split_whitespace().last().unwrap().parse::<u32>().is_ok(), "{line}");
        }
        assert!(s.parts.iter().all(|p| !p.markers.is_empty()));
        assert!(script.contains("xl destroy gpu-dom"));
        assert!(script.contains("kill $SUP"));
    }
}
