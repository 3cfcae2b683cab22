//! `cargo xtask net`: gpu-dom's management endpoint under Xen, in QEMU.
//!
//! Debian's Linux as PV dom0 loads `xen-netback`; gpu-dom is created with a
//! `vif` (`ip=192.0.2.2/24`, TEST-NET-1: a documentation range, never
//! routed; QEMU gives the machine no NIC anyway) whose hotplug script
//! ([`hotplug_script`], busybox sh) brings dom0's end `vif<domid>.0` up
//! as 192.0.2.1/24 and tells netback `hotplug-status = connected`. Then
//! dom0's `/init`:
//!
//! 1. pings gpu-dom, fetches `/healthz` (200, `ok`), a missing path (404);
//! 2. attaches a good guest (`pages=64`), waits until it verified its
//!    entries, then attaches a busy one (maps and unmaps without end);
//! 3. fetches `/metrics` while the busy guest maps: the good guest's pages
//!    and entries equal `vgpu list`'s and what it mapped (64 GGTT + 512
//!    PPGTT entries), every pool's capacity and reservation equal `vgpu
//!    list`'s, the busy guest's batches grow from scrape to scrape;
//! 4. runs a garbage client (random bytes: 400) and four slow clients that
//!    send half a request head and hold on (once dom0 sees the four
//!    connections, a fifth client is refused), while the busy guest keeps
//!    mapping; after the request deadline the slow clients are dropped
//!    (`/metrics` counts them), `/healthz` answers again, the busy guest's
//!    batches went on growing, both guests are still Connected;
//! 5. shuts gpu-dom down with the guests attached.

use std::time::Duration;

use crate::commands::boot::{self, DOMAIN};
use crate::error::{Error, Result};
use crate::formats::initramfs::Source;
use crate::formats::xlcfg;
use crate::harness::dom0_run::{self, Dom0Run};
use crate::harness::guests;
use crate::harness::scenario::{self, file, part, Part, Scenario, ScenarioFile};
use crate::harness::system;
use crate::paths::Paths;
use crate::progress::Progress;

/// gpu-dom's management address (TEST-NET-1) and dom0's end of the vif.
pub const GPU_DOM_IP: &str = "192.0.2.2";
pub const DOM0_IP: &str = "192.0.2.1";
/// gpu-dom's vif: a fixed MAC (Xen's OUI), the address, our hotplug script.
pub const VIF: &str =
    "'mac=00:16:3e:67:64:01,ip=192.0.2.2/24,script=/etc/xen/scripts/vif-gpu-dom-test'";
/// Where the hotplug script lands in the dom0 initramfs.
pub const HOTPLUG_PATH: &str = "/etc/xen/scripts/vif-gpu-dom-test";

/// libxl (4.17) runs a vif's hotplug script with `online`/`offline` (other
/// versions: `add`/`remove`), `vif` = the interface (`vif<domid>.<devid>`)
/// and `XENBUS_PATH` = the backend directory relative to dom0's
/// (`backend/vif/<domid>/<devid>`: the interface's name is derived from it
/// when `vif` is unset); netback goes Connected once `hotplug-status` is
/// `connected`.
pub fn hotplug_script() -> String {
    format!(
        r#"#!/bin/sh
# vif hotplug script of `cargo xtask net`: dom0's end of gpu-dom's vif.
dev="${{vif:-vif$(echo "${{XENBUS_PATH##*backend/vif/}}" | tr / .)}}"
echo "$(date +%T) $1 $dev" >> /var/log/xen/vif-hotplug.log
case "$1" in
add|online)
    if ip link set "$dev" up && ip addr add {DOM0_IP}/24 dev "$dev"; then
        xenstore-write "$XENBUS_PATH/hotplug-status" connected
    else
        xenstore-write "$XENBUS_PATH/hotplug-error" "ip failed on $dev"
        xenstore-write "$XENBUS_PATH/hotplug-status" error
        exit 1
    fi ;;
remove|offline)
    ip link set "$dev" down 2>/dev/null ;;
esac
exit 0
"#
    )
}

/// The guests: (name, command line).
pub const GUESTS: &[(&str, &str)] = &[("guest1", "mode=good pages=64"), ("busy", "mode=busy")];

pub fn run(paths: &Paths, timeout: Option<Duration>) -> Result<()> {
    let mut p = Progress::new("net", 12);
    let sys = system::prepare(paths, &mut p, None, true)?;
    let (guest, vgpu) = guests::build_guest_and_vgpu(paths, &mut p)?;
    let gpu_cfg = gpu_dom_config(&boot::dom0_xl_config(paths)?);
    let template_path = paths.root.join(guests::GUEST_XL_CONFIG);
    let template = std::fs::read_to_string(&template_path)
        .map_err(|e| Error::io("reading", &template_path, e))?;
    let mut files = vec![
        file(boot::IMAGE_IN_DOM0, Source::Host(sys.image.elf.clone()), 0o644),
        file(&scenario::xl_cfg_path(DOMAIN), Source::Bytes(gpu_cfg.into_bytes()), 0o644),
        file(guests::GUEST_IMAGE_IN_DOM0, Source::Host(guest), 0o644),
        file(guests::VGPU_IN_DOM0, Source::Host(vgpu), 0o755),
        file(HOTPLUG_PATH, Source::Bytes(hotplug_script().into_bytes()), 0o755),
    ];
    for (name, cmdline) in GUESTS {
        let cfg = guests::guest_config(&template, name, cmdline)
            .map_err(|reason| Error::XlConfig { path: template_path.clone(), reason })?;
        files.push(file(&scenario::xl_cfg_path(name), Source::Bytes(cfg.into_bytes()), 0o644));
    }
    let scenario = net_scenario(files);
    let run = Dom0Run {
        dir: "net",
        label: "net",
        what: "Linux PV dom0, gpu-dom with a vif, two test guests".into(),
        rerun: "cargo xtask net",
        scenario: &scenario,
        timeout,
        devices: Vec::new(),
    };
    let r = dom0_run::run_dom0(paths, &mut p, &sys, &run);
    println!("[net] wall time per step:\n{}", p.summary());
    r
}

/// The repository's gpu-dom config with the vif, and e2e's command line
/// (debug readback: the good guest verifies its entries through it).
pub fn gpu_dom_config(base: &str) -> String {
    let cfg = xlcfg::with_string(base, "name", DOMAIN);
    let mut cfg = xlcfg::with_string(&cfg, "cmdline", &guests::gpu_dom_cmdline());
    cfg.push_str(&format!("vif = [ {VIF} ]\n"));
    cfg
}

/// Shell helpers of the net scenario, on top of e2e's.
const NET_HELPERS: &str = r#"
# fetch PATH OUT: GET with busybox wget, bounded by timeout (busybox 1.35's
# wget -T crashes); the body into OUT.
fetch() { timeout 15 wget -q -O "$2" "$URL$1"; }
# metric FILE NAME LABEL-SUBSTRING: the value of the first matching series.
metric() { awk -v n="$2" -v l="$3" 'index($0, n "{") == 1 || $1 == n { if (index($0, l)) { print $2; exit } }' "$1"; }
# listed NAME COLUMN: a column of the guest's line in `vgpu list`.
listed() { awk -v g="$1" -v c="$2" '$1 == g { print $c; exit }' /tmp/list.txt; }
# pool_listed POOL COLUMN: a column of the pool's line in `vgpu list`.
pool_listed() { awk -v p="$1" -v c="$2" '$1 == p { print $c; exit }' /tmp/list.txt; }
# batches_grew FILE N: scrape into FILE; true once busy's batches exceed N (in $grown).
batches_grew() { fetch /metrics "$1" && grown=$(metric "$1" gpu_dom_guest_batches_total "domid=\"$GB\"") && [ "${grown:-0}" -gt "$2" ]; }
# no_connection: dom0 has no open connection to the endpoint (TIME_WAIT aside).
no_connection() { ! netstat -tn 2>/dev/null | grep '192.0.2.2:80 ' | grep -qv TIME_WAIT; }
# slow_held: dom0 has four connections to the endpoint established.
slow_held() { [ "$(netstat -tn 2>/dev/null | grep '192.0.2.2:80 ' | grep -c ESTABLISHED)" -ge 4 ]; }
# same WHAT A B: fail unless A = B (both non-empty).
same() { [ -n "$2" ] && [ "$2" = "$3" ] || fail "$1: /metrics says '$2', expected '$3'"; }
"#;

/// The net scenario (see the module documentation).
pub fn net_scenario(files: Vec<ScenarioFile>) -> Scenario {
    let parts = vec![
        scenario::domain_up(
            DOMAIN,
            30,
            &[
                "gpu-dom: backend ready",
                "gpu-dom: mgmt: vif 0 mac=00:16:3e:67:64:01 ip=192.0.2.2/24",
                "gpu-dom: mgmt: listening on 192.0.2.2:80",
            ],
        ),
        dom0_reaches_gpu_dom(),
        guests_attached_and_mapping(),
        metrics_agree_with_vgpu_list(),
        garbage_and_slow_clients(),
        shutdown_with_guests_attached(),
    ];
    Scenario { name: "net".into(), files, parts, timeout: Duration::from_secs(900) }
}

/// dom0 reaches gpu-dom: ping, /healthz, a 404.
fn dom0_reaches_gpu_dom() -> Part {
    part(
        "dom0 reaches gpu-dom: ping, /healthz, 404",
        format!(
            r#"GD=$GPU_DOM_DOMID
URL=http://{GPU_DOM_IP}{NET_HELPERS}e2e "gpu-dom's endpoint up $(( $(now_ms) - t0 )) ms after xl create"
sed 's/^/E2E: [hotplug] /' /var/log/xen/vif-hotplug.log
ip addr show dev vif$GD.0 | sed 's/^/E2E: [ip] /'
ping -c 3 -W 5 192.0.2.2 > /tmp/ping.txt 2>&1 || {{ cat /tmp/ping.txt; fail "ping 192.0.2.2 failed"; }}
e2e "ping: $(grep -E 'packets|round-trip' /tmp/ping.txt | tr '\n' ' ')"
fetch /healthz /tmp/h.txt || fail "GET /healthz failed"
[ "$(cat /tmp/h.txt)" = ok ] || fail "/healthz said '$(cat /tmp/h.txt)'"
timeout 15 wget -q -O /tmp/404.txt $URL/nope 2> /tmp/404.err && fail "GET /nope succeeded"
grep -q 404 /tmp/404.err || fail "GET /nope: $(cat /tmp/404.err)"
e2e "dom0 reaches gpu-dom: ping ok, /healthz ok, /nope 404"
"#
        ),
        &["E2E: ping:", "E2E: dom0 reaches gpu-dom"],
    )
}

/// Two guests attached: one verified, one busy mapping.
fn guests_attached_and_mapping() -> Part {
    part(
        "guests attached and mapping",
        r#"guest_create guest1 G1
attach_and_start guest1 $G1
wait_console guest1 "good PASS" 240
# The busy guest floods with 1024-entry requests: started after guest1
# verified its 576 entries, which would otherwise wait behind its turns.
guest_create busy GB
attach_and_start busy $GB
wait_console busy "busy batches=" 300
e2e "guest1 verified its entries; busy maps"
"#
        .into(),
        &["good PASS", "busy batches=", "E2E: guest1 verified"],
    )
}

/// /metrics agrees with `vgpu list` and with what the guests did.
fn metrics_agree_with_vgpu_list() -> Part {
    part(
        "/metrics agrees with vgpu list and what the guests did",
        r#"fetch /metrics /tmp/m1.txt || fail "GET /metrics failed"
vgpu list > /tmp/list.txt 2>&1 || fail "vgpu list failed"
sed 's/^/E2E: [vgpu list] /' /tmp/list.txt
sed 's/^/E2E: [metrics] /' /tmp/m1.txt
g1="domid=\"$G1\""
same "guest1 grants mapped" "$(metric /tmp/m1.txt gpu_dom_guest_grants_mapped "$g1")" "$(listed guest1 7)"
ggtt=$(metric /tmp/m1.txt gpu_dom_guest_entries_mapped "$g1,devid=\"0\",table=\"ggtt\"")
ppgtt=$(metric /tmp/m1.txt gpu_dom_guest_entries_mapped "$g1,devid=\"0\",table=\"ppgtt\"")
same "guest1 GGTT entries (the guest mapped 64)" "$ggtt" 64
same "guest1 PPGTT entries (the guest mapped 512)" "$ppgtt" 512
same "guest1 entries" "$(( ggtt + ppgtt ))" "$(listed guest1 8)"
same "guest1 name label" "$(metric /tmp/m1.txt gpu_dom_guest_connected 'guest="guest1"')" 1
same "guest1 connects" "$(metric /tmp/m1.txt gpu_dom_guest_connects_total "$g1")" 1
for pool in devices ggtt-entries pages table-pages contexts; do
    same "pool $pool capacity" "$(metric /tmp/m1.txt gpu_dom_pool_capacity "pool=\"$pool\"")" "$(pool_listed $pool 2)"
    same "pool $pool reserved" "$(metric /tmp/m1.txt gpu_dom_pool_reserved "pool=\"$pool\"")" "$(pool_listed $pool 3)"
done
b1=$(metric /tmp/m1.txt gpu_dom_guest_batches_total "domid=\"$GB\"")
g_t0=$(now_ms)
wait_for 60 batches_grew /tmp/m2.txt "$b1" || fail "busy's batches did not grow within 60 s of scrapes ($b1, then $grown)"
e2e "/metrics agrees with vgpu list: guest1 pages $(listed guest1 7), entries $ggtt+$ppgtt; pools; busy batches $b1 -> $grown in $(( $(now_ms) - g_t0 )) ms"
"#
        .into(),
        &["E2E: [metrics] gpu_dom_pool_capacity", "E2E: /metrics agrees with vgpu list"],
    )
}

/// Garbage and slow clients beside the guests; guest service goes on.
fn garbage_and_slow_clients() -> Part {
    part(
        "garbage and slow clients beside the guests",
        r#"b0=$grown
head -c 3000 /dev/urandom > /tmp/garbage.bin
timeout 10 nc 192.0.2.2 80 < /tmp/garbage.bin > /tmp/garbage.out 2>&1
head -n 1 /tmp/garbage.out | grep -q "^HTTP/1.1 4" || fail "the garbage client got '$(head -c 80 /tmp/garbage.out)'"
e2e "garbage client: $(head -n 1 /tmp/garbage.out | tr -d '\r')"
wait_for 15 no_connection || fail "the garbage client's connection did not end: $(netstat -tn 2>&1 | grep '192.0.2.2:80 ')"
s_t0=$(now_ms)
for i in 1 2 3 4; do ( printf 'GET /metr'; sleep 12 ) | timeout 20 nc 192.0.2.2 80 > /tmp/slow$i.out 2>&1 & done
wait_for 4 slow_held || fail "the four slow clients did not all connect: $(netstat -tn 2>&1 | grep -c '192.0.2.2:80 ')"
if timeout 5 wget -q -O /tmp/full.txt $URL/healthz 2> /tmp/full.err; then
    fail "a fifth client was served while four slow ones held every connection"
fi
e2e "four slow clients hold every connection: a fifth is refused ($(head -n 1 /tmp/full.err))"
wait_for 15 fetch /healthz /tmp/h2.txt || fail "/healthz did not answer again after the slow clients' deadline"
e2e "slow clients dropped: /healthz answers again $(( $(now_ms) - s_t0 )) ms after they connected"
fetch /metrics /tmp/m3.txt || fail "GET /metrics after the slow clients failed"
dropped=$(metric /tmp/m3.txt gpu_dom_mgmt_connections_dropped_total 'reason="timeout"')
[ "$dropped" -ge 4 ] || fail "gpu-dom counted $dropped connections dropped at their deadline, not 4"
wait_for 60 batches_grew /tmp/m4.txt "$b0" || fail "busy's batches did not grow after the slow clients ($b0, then $grown)"
b3=$grown
xs_is "$(be_dir $G1)/state" 4 || fail "guest1 lost its connection"
xs_is "$(be_dir $GB)/state" 4 || fail "busy lost its connection"
console_has guest1 "FAIL" && fail "guest1 reported a failure"
grep -E '^gpu_dom_mgmt_(http_responses_total|connections_dropped_total|rx_packets_total|backend)' /tmp/m3.txt | sed 's/^/E2E: [metrics] /'
e2e "guest service went on: busy batches $b0 -> $b3, $dropped connections dropped at their deadline, guests Connected"
"#
        .into(),
        &["E2E: garbage client: HTTP/1.1 4", "E2E: four slow clients", "E2E: guest service went on"],
    )
}

/// `xl shutdown` of gpu-dom with guests attached.
fn shutdown_with_guests_attached() -> Part {
    part(
        "xl shutdown gpu-dom with guests attached",
        r#"s_t0=$(now_ms)
timeout 60 xl shutdown -w gpu-dom > /tmp/xl-shutdown-gpu-dom.log 2>&1 || { sed 's/^/[xl shutdown] /' /tmp/xl-shutdown-gpu-dom.log; fail "xl shutdown -w gpu-dom did not complete within 60 s"; }
wait_for 10 dom_gone gpu-dom || fail "gpu-dom still listed after xl shutdown -w"
e2e "gpu-dom shut down in $(( $(now_ms) - s_t0 )) ms"
"#
        .into(),
        &["E2E: gpu-dom shut down in"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_dom_gets_one_vif_with_the_address_and_the_hotplug_script() {
        let cfg = gpu_dom_config("name = \"x\"\ntype = \"pvh\"\n");
        assert_eq!(xlcfg::get_string(&cfg, "name").as_deref(), Some("gpu-dom"));
        let vif = cfg.lines().find(|l| l.starts_with("vif = ")).unwrap();
        assert!(vif.contains("ip=192.0.2.2/24") && vif.contains(HOTPLUG_PATH), "{vif}");
    }

    #[test]
    fn the_hotplug_script_reports_connected_to_netback() {
        let s = hotplug_script();
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("xenstore-write \"$XENBUS_PATH/hotplug-status\" connected"));
        assert!(s.contains(&format!("ip addr add {DOM0_IP}/24 dev \"$dev\"")));
        assert!(s.contains("dev=\"${vif:-vif$(echo \"${XENBUS_PATH##*backend/vif/}\" | tr / .)}\""));
    }

    #[test]
    fn every_wait_is_bounded_and_every_part_has_markers() {
        let s = net_scenario(Vec::new());
        for p in &s.parts {
            assert!(!p.markers.is_empty(), "{}", p.title);
            for l in p.script.lines() {
                if !l.trim_start().starts_with('#') && (l.contains("wget") || l.contains(" nc ")) {
                    assert!(l.contains("timeout "), "unbounded: {l}");
                }
            }
        }
        let script: String = s.parts.iter().map(|p| p.script.as_str()).collect();
        for (name, _) in GUESTS {
            assert!(script.contains(&format!("guest_create {name} ")), "{name}");
        }
        assert!(script.contains(GPU_DOM_IP));
    }
}
