//! `cargo xtask iommu`: proof under real Xen that a device passed through to
//! gpu-dom reaches by DMA only what gpu-dom grant-mapped.
//!
//! The machine is the e2e one (Xen 4.17, Debian's Linux as PV dom0, QEMU
//! TCG with an emulated Intel VT-d) plus QEMU's `edu` test device, whose
//! DMA mask is raised so that it can address gpu-dom's grant window (above
//! 4 GiB). dom0 gets Xen's device model for HVM domUs from Debian
//! (`qemu-system-xen`, SeaBIOS, QEMU's `pvh.bin` and `keymaps/en-us`) and
//! `xen-pciback`. Its `/init`:
//!
//! 1. finds edu in sysfs, `xl pci-assignable-add`s it, and `xl create`s
//!    gpu-dom from `xl-configs/gpu-dom-hvm.cfg` (HVM, the 32-bit image,
//!    `passthrough = "sync_pt"`, `pci = [edu]`, `gpu-dom.iommu-test` on its
//!    command line); gpu-dom probes edu and checks a DMA round trip through
//!    its own RAM;
//! 2. creates the test guest (`mode=good pages=64 dma-check`), `vgpu
//!    attach`es it, waits for `good PASS` (every entry verified by debug
//!    readback);
//! 3. asks gpu-dom (`data/iommu-test = "mapped ..."`) to aim edu at bus
//!    addresses taken from that guest's shadow entries: reads, a write
//!    through a writable entry (the guest then checks its own page), a
//!    write to a read-only grant (blocked), and addresses `gtt` never
//!    produced (blocked);
//! 4. `vgpu detach`es the guest (gpu-dom clears, invalidates, unmaps) and
//!    asks gpu-dom (`"revoked ..."`) to DMA at the same bus addresses again:
//!    nothing may come back (the `share_pt` regression check);
//! 5. destroys the guest and shuts gpu-dom down.
//!
//! The verdict is taken from gpu-dom's `IOMMU-TEST` lines, the guest's
//! `dma-check` lines, and Xen's `DMAR:[DMA Read|Write] ... fault addr <a>`
//! lines (every `expect-fault` gpu-dom printed must have one).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::commands::boot;
use crate::debian::dom0::{self, Tree};
use crate::error::{Error, Result};
use crate::formats::initramfs::Source;
use crate::formats::xlcfg;
use crate::harness::dom0_run::{self, Dom0Run};
use crate::harness::guests;
use crate::harness::scenario::{self, file, part, Scenario, ScenarioFile};
use crate::harness::system;
use crate::paths::Paths;
use crate::progress::Progress;

/// The HVM config in the repository.
pub const HVM_XL_CONFIG: &str = "xl-configs/gpu-dom-hvm.cfg";
/// Where the 32-bit image lands in the dom0 initramfs.
pub const IMAGE32_IN_DOM0: &str = "/usr/lib/gpu-dom/gpu-dom.elf32";
/// gpu-dom's command line: the test mode, and readback for the good guest.
pub fn gpu_dom_cmdline() -> String {
    format!("{} {}", unikernel::boot_options::IOMMU_TEST, guests::gpu_dom_cmdline())
}
/// The guest: mode good, few pages (every edu transfer takes ~100 ms), and
/// the check of what the device wrote.
pub const GUEST: &str = "guest1";
pub const GUEST_CMDLINE: &str = "mode=good pages=64 dma-check";
/// The test guest's memory (MiB): above gpu-dom's 128, see `far-gfn`.
pub const GUEST_MEMORY_MIB: u64 = 256;
/// The guest's PPGTT base (`frontend::scenario::GoodConfig`'s default).
pub const GUEST_PPGTT_BASE: &str = "0x100000000";
/// The edu device: DMA addresses not masked to 28 bits.
pub const EDU_DEVICE: &str = "edu,dma_mask=0xffffffffffff";

/// gpu-dom's checks that must each print a PASS line.
pub const REQUIRED_CHECKS: &[&str] = &[
    "probe",
    "own-ram",
    "ro-write",
    "ggtt-read",
    "ppgtt-read",
    "ggtt-write",
    "window-hole",
    "past-window",
    "guest-gfn",
    "far-gfn",
    "revoked",
    "revoked-read",
    "phase",
];

pub fn run(paths: &Paths, timeout: Option<Duration>) -> Result<()> {
    let t0 = Instant::now();
    let mut p = Progress::new("iommu", 13);
    let sys = system::prepare_with(paths, &mut p, None, true, dom0::HVM_PACKAGES)?;
    let (guest, vgpu) = guests::build_guest_and_vgpu(paths, &mut p)?;
    let mut files = vec![
        file(IMAGE32_IN_DOM0, Source::Host(sys.image.elf32.clone()), 0o644),
        file(&scenario::xl_cfg_path(boot::DOMAIN), Source::Bytes(gpu_config(paths)?), 0o644),
        file(guests::GUEST_IMAGE_IN_DOM0, Source::Host(guest), 0o644),
        file(&scenario::xl_cfg_path(GUEST), Source::Bytes(guest_config(paths)?), 0o644),
        file(guests::VGPU_IN_DOM0, Source::Host(vgpu), 0o755),
    ];
    files.extend(device_model_files(&sys.trees)?);
    let scenario = iommu_scenario(files);
    let run = Dom0Run {
        dir: "iommu",
        label: "iommu",
        what: "Linux PV dom0, gpu-dom as HVM domU with edu passed through, a test guest".into(),
        rerun: "cargo xtask iommu",
        scenario: &scenario,
        timeout,
        devices: vec![EDU_DEVICE.to_string()],
    };
    let r = dom0_run::run_dom0(paths, &mut p, &sys, &run);
    let serial_path = paths.stage("iommu").join("serial.log");
    let serial = std::fs::read_to_string(&serial_path).unwrap_or_default();
    let report = judge(&serial);
    println!("[iommu] checks (gpu-dom's IOMMU-TEST lines, the guest's dma-check lines, Xen's DMAR faults):");
    for l in &report.lines {
        println!("[iommu]   {l}");
    }
    println!("[iommu] wall time per step:\n{}", p.summary());
    println!("[iommu] total {:.0} s", t0.elapsed().as_secs_f64());
    r?;
    if report.failures.is_empty() {
        println!("[iommu] PASS: the device reached exactly the pages gpu-dom grant-mapped");
        Ok(())
    } else {
        Err(Error::Boot {
            stage: "iommu".into(),
            reason: report.failures.join("; "),
            log: serial_path,
            hint: "read the serial log (IOMMU-TEST lines from gpu-dom as `(dN) gpu-dom: ...`, \
                   Xen's DMAR lines); rerun with `cargo xtask iommu`"
                .into(),
        })
    }
}

/// gpu-dom's xl config: the repository's HVM config, checked and completed
/// by [`gpu_dom_config`].
fn gpu_config(paths: &Paths) -> Result<Vec<u8>> {
    let hvm_path = paths.root.join(HVM_XL_CONFIG);
    let hvm = std::fs::read_to_string(&hvm_path).map_err(|e| Error::io("reading", &hvm_path, e))?;
    let cfg = gpu_dom_config(&hvm).map_err(|reason| Error::XlConfig { path: hvm_path, reason })?;
    Ok(cfg.into_bytes())
}

/// The test guest's xl config: the repository's, with this scenario's
/// name, command line and memory.
fn guest_config(paths: &Paths) -> Result<Vec<u8>> {
    let guest_path = paths.root.join(guests::GUEST_XL_CONFIG);
    let template =
        std::fs::read_to_string(&guest_path).map_err(|e| Error::io("reading", &guest_path, e))?;
    let cfg = xlcfg::with_kernel(&template, guests::GUEST_IMAGE_IN_DOM0)
        .map_err(|reason| Error::XlConfig { path: guest_path.clone(), reason })?;
    let cfg =
        xlcfg::with_string(&xlcfg::with_string(&cfg, "name", GUEST), "cmdline", GUEST_CMDLINE);
    // More memory than gpu-dom, so the guest's far page (`far-gfn`) has a
    // frame number above gpu-dom's RAM.
    Ok(xlcfg::with_number(&cfg, "memory", GUEST_MEMORY_MIB).into_bytes())
}

/// The device model and its firmware, from the Debian packages.
fn device_model_files(trees: &BTreeMap<String, Tree>) -> Result<Vec<ScenarioFile>> {
    let from = |pkg: &str, rel: &str, mode: u32| -> Result<ScenarioFile> {
        let t = dom0::package_tree(trees, pkg)?;
        let path = t.dir.join(rel);
        if !path.is_file() {
            return Err(Error::PackageContent { package: pkg.into(), what: format!("no {rel}") });
        }
        Ok(file(&format!("/{rel}"), Source::Host(path), mode))
    };
    let mut files = vec![
        from(dom0::QEMU_XEN, dom0::QEMU_XEN_BIN, 0o755)?,
        from(dom0::XEN_UTILS, dom0::HVMLOADER, 0o644)?,
        from(dom0::SEABIOS, dom0::SEABIOS_BIN, 0o644)?,
    ];
    for rel in dom0::QEMU_DATA_FILES {
        files.push(from(dom0::QEMU_DATA, rel, 0o644)?);
    }
    Ok(files)
}

/// The repository's HVM config for the test dom0: the 32-bit image, the
/// test mode on the command line (the script appends `pci`).
pub fn gpu_dom_config(hvm: &str) -> std::result::Result<String, String> {
    match xlcfg::get_string(hvm, "name") {
        Some(n) if n == boot::DOMAIN => {}
        other => {
            return Err(format!("name is {other:?}, the iommu test expects \"{}\"", boot::DOMAIN))
        }
    }
    if xlcfg::get_string(hvm, "type").as_deref() != Some("hvm") {
        return Err("type must be \"hvm\" (PCI passthrough)".into());
    }
    let cfg = xlcfg::with_kernel(hvm, IMAGE32_IN_DOM0)?;
    Ok(xlcfg::with_string(&cfg, "cmdline", &gpu_dom_cmdline()))
}

/// Shell helpers of this scenario.
const HELPERS: &str = r#"dm_log() { for f in /var/log/xen/qemu-dm-*.log /var/log/xen/xl-*.log; do [ -e "$f" ] && sed "s|^|[${f##*/}] |" "$f"; done; }
# answered PHASE: gpu-dom's answer is there; fail at once if gpu-dom died.
answered() {
    dom_gone gpu-dom && { grep -a -h "Triple fault\|EXCEPTION\|PANIC" /var/log/xen/*.log 2>/dev/null; fail "gpu-dom died during iommu-test $1 (Xen's log on the serial console says how)"; }
    xs_starts /local/domain/$GD/data/iommu-test-done "$1"
}
# iommu_phase REQUEST: hand it to gpu-dom, wait for its answer.
iommu_phase() {
    xenstore-rm /local/domain/$GD/data/iommu-test-done 2>/dev/null
    xenstore-write /local/domain/$GD/data/iommu-test "$1" || fail "cannot write the iommu-test request"
    ip_name=${1%% *}
    wait_for 300 answered "$ip_name" || fail "gpu-dom did not answer iommu-test '$1' within 300 s"
    e2e "iommu-test $ip_name: gpu-dom says $(xenstore-read /local/domain/$GD/data/iommu-test-done)"
}
"#;

/// The scenario (see the module documentation).
pub fn iommu_scenario(files: Vec<ScenarioFile>) -> Scenario {
    let cfg = scenario::xl_cfg_path(boot::DOMAIN);
    let mut parts = vec![part(
        "edu assignable, gpu-dom (HVM) created with it",
        format!(
            r#"{HELPERS}BDF=
for d in /sys/bus/pci/devices/*; do
    [ "$(cat $d/vendor)" = 0x1234 ] && [ "$(cat $d/device)" = 0x11e8 ] && BDF=${{d##*/}}
done
[ -n "$BDF" ] || fail "no edu device (1234:11e8) among dom0's PCI devices"
e2e "edu test device at $BDF"
xl pci-assignable-add $BDF > /tmp/pci-assignable.log 2>&1 || {{ cat /tmp/pci-assignable.log; fail "xl pci-assignable-add $BDF failed"; }}
echo "pci = [ '$BDF' ]" >> {cfg}
t0=$(now_ms)
xl create {cfg} > /tmp/xl-create-gpu-dom.log 2>&1 || {{ sed 's/^/[xl create] /' /tmp/xl-create-gpu-dom.log; dm_log; fail "xl create of the HVM gpu-dom with pci=[$BDF] failed (output above)"; }}
GD=$(xl domid gpu-dom) || {{ dm_log; fail "gpu-dom was gone right after xl create"; }}
GPU_DOM_DOMID=$GD
e2e "gpu-dom (HVM, edu passed through) created domid=$GD in $(( $(now_ms) - t0 )) ms"
wait_for 240 xs_is /local/domain/$GD/data/gpu-dom-ready 1 || {{ dm_log; xl list; fail "gpu-dom (HVM) not ready 240 s after xl create"; }}
e2e "gpu-dom (HVM) ready in $(( $(now_ms) - t0 )) ms after xl create"
"#
        ),
        &[
            "E2E: edu test device at",
            "E2E: gpu-dom (HVM, edu passed through) created",
            "E2E: gpu-dom (HVM) ready",
        ],
    )];
    parts.push(part(
        "a good guest attached and verified",
        format!(
            r#"xl create -p /etc/xen/{GUEST}.cfg > /tmp/xl-create-{GUEST}.log 2>&1 || {{ sed 's/^/[xl create] /' /tmp/xl-create-{GUEST}.log; fail "xl create -p {GUEST} failed"; }}
G1=$(xl domid {GUEST}) || fail "{GUEST} vanished"
g_t0=$(now_ms)
vgpu_run attach {GUEST} --backend gpu-dom || fail "vgpu attach {GUEST} failed (output above)"
xl unpause {GUEST}
wait_for 120 xs_is "$(be_dir $G1)/state" 4 || fail "{GUEST}: gpu-dom did not connect it within 120 s"
wait_console {GUEST} "good PASS" 300
console_has {GUEST} "good FAIL" && fail "{GUEST} reported a failure"
e2e "{GUEST} (domid $G1): attached and verified in $(( $(now_ms) - g_t0 )) ms"
wait_for 60 xs_exists /local/domain/$G1/data/dma-check-gfn || fail "{GUEST} did not publish data/dma-check-gfn"
"#
        ),
        &["good PASS", "attached and verified in"],
    ));
    parts.push(part(
        "DMA at the guest's shadow entries and at addresses gtt never produced",
        format!(
            r#"m_t0=$(now_ms)
iommu_phase "mapped $G1 {GUEST_PPGTT_BASE} $(xenstore-read /local/domain/$G1/data/dma-check-gfn) $(xenstore-read /local/domain/$G1/data/dma-check-far-gfn)"
wait_console {GUEST} "dma-check PASS" 60
e2e "mapped checks done in $(( $(now_ms) - m_t0 )) ms; {GUEST} saw the device's write in its own page and its read-only page unchanged"
"#
        ),
        &["E2E: iommu-test mapped", "dma-check PASS"],
    ));
    parts.push(part(
        "revocation: detach, then the same DMA again",
        format!(
            r#"r_t0=$(now_ms)
vgpu_run detach $G1 --backend gpu-dom || fail "vgpu detach {GUEST} failed (output above)"
e2e "{GUEST} detached (gpu-dom revoked its entries and unmapped its grants) in $(( $(now_ms) - r_t0 )) ms"
iommu_phase "revoked $G1"
e2e "revoked checks done in $(( $(now_ms) - r_t0 )) ms"
xl destroy {GUEST}
s_t0=$(now_ms)
timeout 60 xl shutdown -w gpu-dom > /tmp/xl-shutdown.log 2>&1 || {{ sed 's/^/[xl shutdown] /' /tmp/xl-shutdown.log; xl destroy gpu-dom; fail "xl shutdown of the HVM gpu-dom failed or took over 60 s (destroyed it)"; }}
wait_for 60 dom_gone gpu-dom || {{ dm_log; fail "gpu-dom shut down but still listed 60 s later (xl's log above)"; }}
e2e "gpu-dom (HVM) shut down by xl shutdown, gone in $(( $(now_ms) - s_t0 )) ms"
# libxl asks QEMU to unplug the passed-through device from the dead domain
# and waits for it (LIBXL_QMP_CMD_TIMEOUT): most of the time above.
grep -h -i "pci" /var/log/xen/xl-gpu-dom.log 2>/dev/null | sed 's/^/E2E: [xl-gpu-dom.log] /'
"#
        ),
        &["E2E: iommu-test revoked", "shut down by xl shutdown, gone in"],
    ));
    Scenario { name: "iommu".into(), files, parts, timeout: Duration::from_secs(900) }
}

/// The verdict from the serial log.
#[derive(Debug, Default)]
pub struct Report {
    /// What to print: each check and fault.
    pub lines: Vec<String>,
    /// Why it failed (empty: passed).
    pub failures: Vec<String>,
}

/// The text after `IOMMU-TEST ` on a line.
fn iommu_line(line: &str) -> Option<&str> {
    line.find("IOMMU-TEST ").map(|i| line[i + "IOMMU-TEST ".len()..].trim_end())
}

/// The index of the first line at or after `from`, not in `used`, where Xen
/// reported a DMAR fault of `kind` ("Read"/"Write") at `addr` (hex, no 0x).
fn dmar_fault(
    lines: &[&str],
    from: usize,
    used: &[usize],
    kind: &str,
    addr: &str,
) -> Option<usize> {
    let want = format!("fault addr {addr}");
    let tag = format!("[DMA {kind}]");
    (from..lines.len()).find(|&i| {
        let l = lines[i];
        !used.contains(&i)
            && l.contains("DMAR:")
            && l.contains(&tag)
            && l.find(&want)
                .is_some_and(|j| !l[j + want.len()..].starts_with(|c: char| c.is_ascii_hexdigit()))
    })
}

/// Judges gpu-dom's and the guest's lines and Xen's faults: every
/// `expect-fault` needs its own DMAR line after it.
pub fn judge(serial: &str) -> Report {
    let mut r = Report::default();
    let mut passed: Vec<&str> = Vec::new();
    let lines: Vec<&str> = serial.lines().collect();
    let mut used: Vec<usize> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        // Xen's own copy of the domains' port-0xe9 output (`(dN) ...`), not
        // the console logs dom0 dumps at the end (`[name] ...`).
        if line.starts_with('[') {
            continue;
        }
        if let Some(text) = iommu_line(line) {
            let name = text.split_whitespace().next().unwrap_or("").trim_end_matches(':');
            if let Some(rest) = text.strip_prefix("expect-fault ") {
                let mut w = rest.split_whitespace();
                let kind = if w.next() == Some("write") { "Write" } else { "Read" };
                let addr = w.next().and_then(|a| a.strip_prefix("addr=")).unwrap_or("");
                match dmar_fault(&lines, n + 1, &used, kind, addr) {
                    Some(i) => {
                        used.push(i);
                        let f = lines[i];
                        r.lines.push(format!("  Xen: {}", &f[f.find('[').unwrap_or(0)..].trim()));
                    }
                    None => {
                        r.lines.push(format!("  Xen: NO DMAR [DMA {kind}] fault at {addr} FAIL"));
                        r.failures.push(format!("no Xen DMAR {kind} fault at {addr}"));
                    }
                }
                continue;
            }
            if text.ends_with(" FAIL") {
                r.failures.push(format!("gpu-dom: {text}"));
            } else if text.ends_with(" PASS") {
                passed.push(name);
            } else {
                continue;
            }
            r.lines.push(format!("gpu-dom: {text}"));
        } else if let Some(i) = line.find("dma-check ") {
            let text = line[i..].trim_end();
            if text.ends_with(" PASS") || text.ends_with(" FAIL") {
                if text.ends_with(" FAIL") {
                    r.failures.push(format!("guest: {text}"));
                }
                r.lines.push(format!("guest: {text}"));
            }
        }
    }
    crashes(&lines, &mut r);
    for check in REQUIRED_CHECKS {
        if !passed.contains(check) {
            r.failures.push(format!("no `{check} ... PASS` line from gpu-dom"));
        }
    }
    if !serial.contains("dma-check PASS") {
        r.failures.push("no `dma-check PASS` line from the guest".into());
    }
    r
}

/// A domain that died on the way: Xen's `Triple fault` line with the RIP of
/// the register dump Xen prints after it, or a unikernel's own `EXCEPTION`
/// report. Each is a failure, and the dump goes into the printed lines so a
/// CI log alone says where it happened.
fn crashes(lines: &[&str], r: &mut Report) {
    for (n, line) in lines.iter().enumerate() {
        if line.starts_with('[') {
            continue;
        }
        if let Some(i) = line.find("Triple fault") {
            let who = line[..i].trim_start_matches("(XEN)").trim();
            let dump: Vec<&str> = lines[n + 1..]
                .iter()
                .take(40)
                .copied()
                .filter(|l| l.starts_with("(XEN)"))
                .collect();
            let rip = dump
                .iter()
                .find_map(|l| l.find("RIP:").map(|j| l[j..].trim()))
                .unwrap_or("no RIP in the dump");
            r.failures.push(format!("{who} triple-faulted ({rip})"));
            r.lines.push(format!("Xen: {} FAIL", line.trim()));
            r.lines.extend(dump.iter().take(24).map(|l| format!("  {}", l.trim())));
        } else if let Some(i) = line.find("EXCEPTION ") {
            let text = line[i..].trim_end();
            r.failures.push(format!("a domain crashed: {text}"));
            r.lines.push(format!("{} FAIL", line.trim()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_hvm_config_becomes_the_test_config() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = std::fs::read_to_string(root.join(HVM_XL_CONFIG)).unwrap();
        assert_eq!(xlcfg::get_string(&text, "passthrough").as_deref(), Some("sync_pt"));
        assert!(text.lines().any(|l| l.trim() == "xen_platform_pci = 0"));
        assert!(xlcfg::get_string(&text, "kernel").unwrap().ends_with("gpu-dom.elf32"));
        let cfg = gpu_dom_config(&text).unwrap();
        assert_eq!(xlcfg::get_string(&cfg, "kernel").as_deref(), Some(IMAGE32_IN_DOM0));
        assert_eq!(
            xlcfg::get_string(&cfg, "cmdline").as_deref(),
            Some("gpu-dom.iommu-test gpu-dom.debug=readback")
        );
        assert!(
            !cfg.lines().any(|l| l.trim_start().starts_with("pci")),
            "pci is added at run time"
        );
    }

    fn log(lines: &[&str]) -> String {
        lines.join("\n") + "\n"
    }

    fn all_pass() -> Vec<String> {
        let mut v: Vec<String> = REQUIRED_CHECKS
            .iter()
            .map(|c| format!("(XEN) (d1) gpu-dom: IOMMU-TEST {c}: something PASS"))
            .collect();
        v.push("(d2) test-guest: TESTGUEST dom=2 dma-check PASS".into());
        // The console dump at the end repeats lines: ignored.
        v.push("[gpu-dom] gpu-dom: IOMMU-TEST expect-fault read addr=700000000".into());
        v
    }

    #[test]
    fn every_required_check_passing_with_its_faults_passes() {
        let mut v = all_pass();
        v.push("(XEN) (d1) gpu-dom: IOMMU-TEST expect-fault read addr=50400a000".into());
        v.push(
            "(XEN) [VT-D]DMAR:[DMA Read] Request device [0000:00:03.0] fault addr 50400a000".into(),
        );
        v.push("(XEN) (d1) gpu-dom: IOMMU-TEST expect-fault write addr=5000a4000".into());
        v.push("(XEN) [VT-D]DMAR:[DMA Write] Request device [0000:00:03.0] fault addr 5000a4000, iommu reg = ...".into());
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        let r = judge(&log(&refs));
        assert!(r.failures.is_empty(), "{:?}", r.failures);
    }

    #[test]
    fn a_missing_fault_a_fail_line_or_a_missing_check_fails() {
        let mut v = all_pass();
        v.push("(XEN) (d1) gpu-dom: IOMMU-TEST expect-fault read addr=5000a4000".into());
        v.push(
            "(XEN) [VT-D]DMAR:[DMA Read] Request device [0000:00:03.0] fault addr 5000a40000"
                .into(),
        );
        v.push("(XEN) (d1) gpu-dom: IOMMU-TEST revoked-read dom=2 ggtt=0: the revoked grant is STILL DMA-READABLE FAIL".into());
        v.push("(XEN) (d1) gpu-dom: IOMMU-TEST expect-fault read addr=600000000".into());
        v.push(
            "(XEN) [VT-D]DMAR:[DMA Read] Request device [0000:00:03.0] fault addr 600000000".into(),
        );
        v.push("(XEN) (d1) gpu-dom: IOMMU-TEST expect-fault read addr=600000000".into());
        v.retain(|l| !l.contains("IOMMU-TEST probe"));
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        let r = judge(&log(&refs));
        assert!(
            r.failures.iter().any(|f| f.contains("no Xen DMAR Read fault at 5000a4000")),
            "{:?}",
            r.failures
        );
        assert!(r.failures.iter().any(|f| f.contains("STILL DMA-READABLE")));
        let second = r.failures.iter().filter(|f| f.contains("fault at 600000000")).count();
        assert_eq!(second, 1, "one fault line answers one expect-fault: {:?}", r.failures);
        assert!(r.failures.iter().any(|f| f.contains("`probe")));
    }

    #[test]
    fn a_triple_fault_fails_with_the_rip_from_xens_dump() {
        let mut v = all_pass();
        v.push("(XEN) d1v0 Triple fault - invoking HVM shutdown action 1".into());
        v.push("(XEN) *** Dumping Dom1 vcpu#0 state: ***".into());
        v.push("(XEN) RIP:    0008:[<0000000001003abc>]".into());
        v.push(
            "(XEN) (d2) test-guest: EXCEPTION PAGE_FAULT vector=14 error=0x2 rip=0x1 cr2=0x2"
                .into(),
        );
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        let r = judge(&log(&refs));
        assert!(
            r.failures
                .iter()
                .any(|f| f.contains("d1v0 triple-faulted (RIP:    0008:[<0000000001003abc>])")),
            "{:?}",
            r.failures
        );
        assert!(r.failures.iter().any(|f| f.contains("EXCEPTION PAGE_FAULT")), "{:?}", r.failures);
        assert!(r.lines.iter().any(|l| l.contains("Dumping Dom1")));
    }

    #[test]
    fn every_wait_in_the_script_is_bounded() {
        let s = iommu_scenario(Vec::new());
        for p in &s.parts {
            for l in p.script.lines().filter(|l| l.trim_start().starts_with("wait_")) {
                let n = l.split_whitespace().nth(1).unwrap_or("");
                let last = l.split_whitespace().last().unwrap_or("");
                assert!(
                    n.parse::<u32>().is_ok() || last.parse::<u32>().is_ok(),
                    "unbounded wait: {l}"
                );
            }
        }
    }
}
