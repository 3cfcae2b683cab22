//! `cargo xtask linux-guest`: an ordinary Linux VM as a vgpu guest, under
//! Xen, in QEMU.
//!
//! The e2e machine (Xen 4.17, Debian's Linux as PV dom0, gpu-dom with
//! `gpu-dom.debug=readback`) plus a **Linux PVH domU**: Debian's kernel (the
//! one dom0 runs) with a small initramfs ([`crate::debian::guest_initramfs`]:
//! busybox, `vgpu-front` and its libraries, `xen-evtchn` and
//! `xen-gntalloc`), from `xl-configs/linux-guest.cfg`. dom0's `/init`:
//!
//! 1. `xl create`s gpu-dom and waits for its backend;
//! 2. creates a unikernel test guest (`mode=good`) and the Linux guest,
//!    both paused; `vgpu attach`es and unpauses each; the test guest
//!    verifies its entries while the Linux guest boots;
//! 3. times the Linux guest's boot (`xl create` to its first console line,
//!    to its `/init` running) and its attach (`vgpu attach` to every entry
//!    verified by `vgpu-front` inside it, through gpu-dom's debug
//!    readback);
//! 4. waits for its cleanup (every grant ended, none still mapped) and its
//!    poweroff: the domain must leave `xl list` (no zombie), while the
//!    unikernel guest stays Connected and verified.
//!
//! The Linux guest's console (hvc0) is logged by xenconsoled and copied to
//! the serial log (`[linux-guest] ...`) like every guest's; the figures are
//! `E2E: figure ...` lines, printed again at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::commands::boot::{self, DOMAIN};
use crate::debian::dom0::{self, Tree};
use crate::debian::guest_initramfs::{self, GuestInit};
use crate::error::{Error, Result};
use crate::formats::initramfs::Source;
use crate::formats::xlcfg;
use crate::harness::dom0_run::{self, Dom0Run};
use crate::harness::guests;
use crate::harness::scenario::{self, file, part, Scenario, ScenarioFile};
use crate::harness::system;
use crate::paths::Paths;
use crate::progress::Progress;

/// The Linux guest's xl config in the repository.
pub const XL_CONFIG: &str = "xl-configs/linux-guest.cfg";
/// The Linux guest's domain name (the config's `name`).
pub const NAME: &str = "linux-guest";
/// Where the guest's kernel and initramfs land in dom0.
pub const KERNEL_IN_DOM0: &str = "/usr/lib/gpu-dom/linux-guest/vmlinuz";
pub const RAMDISK_IN_DOM0: &str = "/usr/lib/gpu-dom/linux-guest/initrd.cpio";
/// The guest kernel's command line: its console is the PV console; a PVH
/// domU has neither PCI nor a UART, so the kernel is told not to probe for
/// them (under QEMU's emulation every probing port access is a trapped exit:
/// the early AGP aperture scans alone took 11 s); warnings and notices only
/// on the console (the PV console ring is 2 KiB, and the full boot log
/// slowed the boot).
pub const GUEST_CMDLINE: &str = "console=hvc0 rdinit=/init pci=off 8250.nr_uarts=0 loglevel=6";
/// GGTT pages `vgpu-front` maps and verifies (plus 512 PPGTT entries).
pub const PAGES: u32 = 64;
/// The unikernel guest attached next to it.
pub const UNIKERNEL_GUEST: &str = "guest1";
pub const UNIKERNEL_CMDLINE: &str = "mode=good pages=64";
/// What `cargo xtask linux-guest` prints again at the end.
pub const FIGURE: &str = "E2E: figure ";

pub fn run(paths: &Paths, timeout: Option<Duration>) -> Result<()> {
    let t0 = Instant::now();
    let mut p = Progress::new("linux-guest", 14);
    let sys = system::prepare(paths, &mut p, None, true)?;
    let (guest, vgpu) = guests::build_guest_and_vgpu(paths, &mut p)?;
    let front = guests::build_vgpu_front(paths, &mut p)?;
    let dir = paths.stage("linux-guest");
    let (vmlinuz, release) = dom0::kernel(&sys.trees)?;
    let initrd = dir.join("guest-initramfs.cpio");
    p.step("the Linux guest's initramfs (busybox, vgpu-front, Xen drivers)", |p| {
        guest_initramfs_step(paths, p, &sys.trees, (&release, &front), &initrd)
    })?;
    let (gpu_cfg, uk_cfg, linux_cfg) = configs(paths)?;
    crate::harness::host::write(&dir.join(format!("{NAME}.cfg")), &linux_cfg)?;
    let files = vec![
        file(boot::IMAGE_IN_DOM0, Source::Host(sys.image.elf.clone()), 0o644),
        file(&scenario::xl_cfg_path(DOMAIN), Source::Bytes(gpu_cfg.into_bytes()), 0o644),
        file(guests::GUEST_IMAGE_IN_DOM0, Source::Host(guest), 0o644),
        file(&scenario::xl_cfg_path(UNIKERNEL_GUEST), Source::Bytes(uk_cfg.into_bytes()), 0o644),
        file(guests::VGPU_IN_DOM0, Source::Host(vgpu), 0o755),
        file(KERNEL_IN_DOM0, Source::Host(vmlinuz), 0o644),
        file(RAMDISK_IN_DOM0, Source::Host(initrd), 0o644),
        file(&scenario::xl_cfg_path(NAME), Source::Bytes(linux_cfg.into_bytes()), 0o644),
    ];
    let scenario = linux_guest_scenario(files);
    let run = Dom0Run {
        dir: "linux-guest",
        label: "linux-guest",
        what: "Linux PV dom0, gpu-dom, a unikernel guest and a Linux PVH guest".into(),
        rerun: "cargo xtask linux-guest",
        scenario: &scenario,
        timeout,
        devices: Vec::new(),
    };
    let r = dom0_run::run_dom0(paths, &mut p, &sys, &run);
    let serial = std::fs::read_to_string(dir.join("serial.log")).unwrap_or_default();
    let figures = figures(&serial);
    if !figures.is_empty() {
        println!("[linux-guest] the Linux guest (wall time in dom0, under QEMU's emulation):");
        for f in figures {
            println!("[linux-guest]   {f}");
        }
    }
    println!("[linux-guest] wall time per step:\n{}", p.summary());
    println!("[linux-guest] total {:.0} s", t0.elapsed().as_secs_f64());
    r
}

/// Writes the guest's initramfs (and its `/init` beside it, to read) for
/// kernel `release`, with `vgpu-front` from `front`.
fn guest_initramfs_step(
    paths: &Paths,
    p: &mut Progress,
    trees: &BTreeMap<String, Tree>,
    (release, front): (&str, &Path),
    initrd: &Path,
) -> Result<()> {
    let init = |modules| GuestInit {
        kernel_release: release.to_string(),
        modules,
        pages: PAGES,
        handshake_timeout_s: 60,
        run_timeout_s: 300,
    };
    let a = guest_initramfs::assemble(trees, release, front, init, initrd)?;
    crate::harness::host::write(&initrd.with_file_name("guest-init"), &a.init)?;
    let builtin = if a.builtin_modules.is_empty() {
        String::new()
    } else {
        format!(" (built in: {})", a.builtin_modules.join(" "))
    };
    p.note(format!(
        "{} ({:.1} MiB): kernel {release}, {} libraries, modules {}{builtin}",
        paths.show(initrd),
        a.size as f64 / (1024.0 * 1024.0),
        a.libs,
        a.modules.join(" "),
    ));
    if !a.host_libs.is_empty() {
        p.note(format!("warning: from the host, no package had them: {}", a.host_libs.join(" ")));
    }
    Ok(())
}

/// The xl configs of gpu-dom (debug readback on), the unikernel guest and
/// the Linux guest, from the repository's.
fn configs(paths: &Paths) -> Result<(String, String, String)> {
    let gpu_cfg =
        xlcfg::with_string(&boot::dom0_xl_config(paths)?, "cmdline", &guests::gpu_dom_cmdline());
    let read = |rel: &str| -> Result<(PathBuf, String)> {
        let path = paths.root.join(rel);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        Ok((path, text))
    };
    let (linux_path, linux_template) = read(XL_CONFIG)?;
    let linux_cfg = linux_config(&linux_template)
        .map_err(|reason| Error::XlConfig { path: linux_path, reason })?;
    let (uk_path, uk_template) = read(guests::GUEST_XL_CONFIG)?;
    let uk_cfg = xlcfg::with_kernel(&uk_template, guests::GUEST_IMAGE_IN_DOM0)
        .map_err(|reason| Error::XlConfig { path: uk_path, reason })?;
    let uk_cfg = xlcfg::with_string(&uk_cfg, "name", UNIKERNEL_GUEST);
    let uk_cfg = xlcfg::with_string(&uk_cfg, "cmdline", UNIKERNEL_CMDLINE);
    Ok((gpu_cfg, uk_cfg, linux_cfg))
}

/// The repository's Linux guest config for the test dom0: its kernel,
/// initramfs and command line there.
pub fn linux_config(template: &str) -> std::result::Result<String, String> {
    match xlcfg::get_string(template, "name") {
        Some(n) if n == NAME => {}
        other => return Err(format!("name is {other:?}, the linux-guest run expects \"{NAME}\"")),
    }
    if xlcfg::get_string(template, "type").as_deref() != Some("pvh") {
        return Err("type must be \"pvh\"".into());
    }
    let cfg = xlcfg::with_kernel(template, KERNEL_IN_DOM0)?;
    let cfg = xlcfg::with_string(&cfg, "ramdisk", RAMDISK_IN_DOM0);
    Ok(xlcfg::with_string(&cfg, "extra", GUEST_CMDLINE))
}

/// The `E2E: figure ...` lines of a serial log, without the prefix.
pub fn figures(serial: &str) -> Vec<&str> {
    serial.lines().filter_map(|l| l.split_once(FIGURE).map(|(_, f)| f.trim_end())).collect()
}

/// Shell helpers of this scenario, on top of the scenario prelude.
const HELPERS: &str = r#"GD=$GPU_DOM_DOMID
since() { echo $(( $(now_ms) - $1 )); }
figure() { echo "E2E: figure $*"; }
console_started() { [ -s "$CONSOLE_DIR/guest-$1.log" ]; }
"#;

/// The scenario (see the module documentation).
pub fn linux_guest_scenario(files: Vec<ScenarioFile>) -> Scenario {
    let mut parts = vec![scenario::domain_up(
        DOMAIN,
        30,
        &["gpu-dom: xenstore name=gpu-dom domid={domid}", "gpu-dom: backend ready"],
    )];
    parts.push(part(
        "the Linux guest and a unikernel guest: created paused, attached, unpaused",
        format!(
            r#"{HELPERS}guest_create {UNIKERNEL_GUEST} G1
c_t0=$(now_ms)
guest_create {NAME} GL
figure "{NAME} boot: xl create -p (libxl loads the bzImage and initramfs) $(since $c_t0) ms"
e2e "{NAME} (PVH, Debian's kernel) created paused, domid $GL"
a_t0=$(now_ms)
vgpu_run attach {NAME} --backend gpu-dom || fail "vgpu attach {NAME} failed (output above)"
xl unpause {NAME} || fail "xl unpause {NAME} failed"
u_t0=$(now_ms)
vgpu_run attach {UNIKERNEL_GUEST} --backend gpu-dom || fail "vgpu attach {UNIKERNEL_GUEST} failed (output above)"
xl unpause {UNIKERNEL_GUEST} || fail "xl unpause {UNIKERNEL_GUEST} failed"
"#
        ),
        &["E2E: linux-guest (PVH, Debian's kernel) created paused", "E2E: [vgpu] attached linux-guest"],
    ));
    parts.push(part(
        "the unikernel guest verified while the Linux guest boots",
        format!(
            r#"wait_console {UNIKERNEL_GUEST} "good PASS" 240
console_has {UNIKERNEL_GUEST} "FAIL" && fail "{UNIKERNEL_GUEST} reported a failure (console above)"
e2e "{UNIKERNEL_GUEST} (unikernel, domid $G1): every entry verified; {NAME} is $(dom_state {NAME})"
"#
        ),
        &["E2E: guest1 (unikernel, domid"],
    ));
    parts.push(part(
        "the Linux guest boots",
        format!(
            r#"wait_for 300 console_started {NAME} || fail "{NAME} printed nothing on its console within 300 s of xl unpause (state $(dom_state {NAME}))"
figure "{NAME} boot: xl create to its first console line $(since $c_t0) ms ($(since $u_t0) ms after xl unpause)"
wait_console {NAME} "LINUX-GUEST: init running" 300
figure "{NAME} boot: xl create to its /init running $(since $c_t0) ms ($(since $u_t0) ms after xl unpause)"
"#
        ),
        &["E2E: figure linux-guest boot: xl create to its first console line", "LINUX-GUEST: init running", "E2E: figure linux-guest boot: xl create to its /init running"],
    ));
    parts.push(part(
        "vgpu-front in the Linux guest: attach, map, verify, disconnect",
        format!(
            r#"wait_console {NAME} "good PASS" 300
figure "{NAME} attach: vgpu attach to every entry verified (vgpu-front, debug readback) $(since $a_t0) ms, including the guest's boot"
vf_times=$(grep -o -e 'connected in [0-9]* ms' -e 'verified in [0-9]* ms' "$CONSOLE_DIR/guest-{NAME}.log" | tr '\n' ' ')
figure "{NAME} attach: vgpu-front in the guest (its clock, from its start): $vf_times"
wait_console {NAME} "LINUX-GUEST: PASS" 120
console_has {NAME} "still_mapped=0" || fail "{NAME}: vgpu-front's cleanup left grants mapped (console above)"
g_t0=$(now_ms)
wait_for 60 dom_gone {NAME} || fail "{NAME} (domid $GL) still in xl list 60 s after it powered off: $(xl list | awk -v id=$GL '$2 == id')"
e2e "{NAME} (domid $GL) powered off: gone from xl list in $(since $g_t0) ms (no zombie)"
"#
        ),
        &["VGPU-FRONT dom=", "good PASS", "cleanup grants_ended=", "still_mapped=0", "LINUX-GUEST: PASS", "E2E: figure linux-guest attach:", "E2E: linux-guest (domid"],
    ));
    parts.push(part(
        "the unikernel guest still served; the Linux guest's device removed",
        format!(
            r#"xs_is "$(be_dir $G1)/state" 4 || fail "{UNIKERNEL_GUEST} lost its connection (gpu-dom state '$(be_state $G1)')"
console_has {UNIKERNEL_GUEST} "FAIL" && fail "{UNIKERNEL_GUEST} reported a failure during the Linux guest's run"
vgpu_run list
vgpu_run detach $GL --backend gpu-dom --force || fail "vgpu detach of the gone Linux guest failed (output above)"
e2e "{UNIKERNEL_GUEST} still Connected and verified; {NAME}'s device removed"
"#
        ),
        &["E2E: guest1 still Connected and verified"],
    ));
    Scenario { name: "linux-guest".into(), files, parts, timeout: Duration::from_secs(900) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_config_becomes_a_pvh_guest_of_the_initramfs_kernel() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = std::fs::read_to_string(root.join(XL_CONFIG)).unwrap();
        let cfg = linux_config(&text).unwrap();
        assert_eq!(xlcfg::get_string(&cfg, "name").as_deref(), Some(NAME));
        assert_eq!(xlcfg::get_string(&cfg, "type").as_deref(), Some("pvh"));
        assert_eq!(xlcfg::get_string(&cfg, "kernel").as_deref(), Some(KERNEL_IN_DOM0));
        assert_eq!(xlcfg::get_string(&cfg, "ramdisk").as_deref(), Some(RAMDISK_IN_DOM0));
        assert_eq!(xlcfg::get_string(&cfg, "extra").as_deref(), Some(GUEST_CMDLINE));
    }

    #[test]
    fn a_config_of_another_domain_or_type_is_refused() {
        let e = linux_config("name = \"x\"\ntype = \"pvh\"\nkernel = \"k\"\n").unwrap_err();
        assert!(e.contains("linux-guest"), "{e}");
        let e =
            linux_config("name = \"linux-guest\"\ntype = \"hvm\"\nkernel = \"k\"\n").unwrap_err();
        assert!(e.contains("pvh"), "{e}");
    }

    #[test]
    fn figures_are_taken_from_dom0_lines_and_copied_consoles_alike() {
        let log = "E2E: figure a 1 ms\nnoise\n[    2.1] E2E: figure b 2 ms  \nE2E: other\n";
        assert_eq!(figures(log), ["a 1 ms", "b 2 ms"]);
    }

    #[test]
    fn both_guests_are_attached_before_either_runs_and_every_wait_is_bounded() {
        let s = linux_guest_scenario(Vec::new());
        let script: String = s.parts.iter().map(|p| p.script.as_str()).collect();
        let attach_linux = script.find("vgpu_run attach linux-guest").unwrap();
        assert!(script.find("guest_create linux-guest GL").unwrap() < attach_linux);
        assert!(attach_linux < script.find("xl unpause linux-guest").unwrap());
        let attach_uk = script.find("vgpu_run attach guest1").unwrap();
        assert!(attach_uk < script.find("xl unpause guest1").unwrap());
        for line in script.lines().filter(|l| l.starts_with("wait_")) {
            let n = if line.starts_with("wait_for ") {
                line.split_whitespace().nth(1)
            } else {
                line.split_whitespace().last()
            };
            assert!(n.is_some_and(|n| n.parse::<u32>().is_ok()), "unbounded: {line}");
        }
        assert!(s.parts.iter().all(|p| !p.markers.is_empty()));
    }
}
