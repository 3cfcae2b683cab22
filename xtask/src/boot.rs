//! `cargo xtask boot`: fetch the test system from Debian, then boot
//!
//! * stage 1: Xen with the gpu-dom image as PVH dom0, which runs its self-tests;
//! * stage 2: Xen with Debian's Linux as PV dom0, whose `/init` brings up the
//!   toolstack and runs the [`stage2_scenario`] (`xl create` gpu-dom as a PVH
//!   domU, wait until ready, `xl shutdown`).
//!
//! Every stage runs under QEMU's software emulation with a timeout; its serial
//! log, QEMU's own output and the QEMU command line land in `target/boot/<stage>/`.

use crate::apt::{self, AptCli};
use crate::dom0::{self, Tree};
use crate::error::{Error, Result};
use crate::host;
use crate::image::{self, Image};
use crate::initramfs::Source;
use crate::markers::{self, SelfTestReport, Watcher};
use crate::paths::Paths;
use crate::progress::Progress;
use crate::qemu::{self, Ended, Machine, Module, Run};
use crate::scenario::{self, Scenario, ScenarioFile};
use crate::xlcfg;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// `asid=0` on both: Xen then flushes an HVM/PVH vCPU's TLB on every VMRUN
// instead of giving it fresh ASIDs. Under QEMU's TCG emulation of SVM, with
// ASIDs on, HVM and PVH domUs triple-faulted at random right after a VM
// exit (6 in 27 `iommu` runs, gpu-dom and the test guest, Xen's dumps
// showing valid tables); with `asid=0`, 22 of 22 passed. An emulation
// artefact: on real AMD hardware ASIDs stay on.

/// Xen's command line with the image as PVH dom0 (the emulated IOMMU is required).
pub const STAGE1_XEN_CMDLINE: &str =
    "dom0=pvh dom0_mem=256M,max:256M console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all noreboot bootscrub=0 asid=0";
/// Xen's command line with Linux as PV dom0.
pub const STAGE2_XEN_CMDLINE: &str =
    "dom0_mem=512M,max:512M console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all noreboot bootscrub=0 asid=0";
/// Linux dom0's command line: its console is Xen's (hvc0), which goes to com1.
pub const DOM0_LINUX_CMDLINE: &str = "console=hvc0 earlyprintk=xen rdinit=/init loglevel=4";
/// The domain stage 2 creates; must match `name` in the xl config.
pub const DOMAIN: &str = "gpu-dom";
/// Where the image lands in the dom0 initramfs (the xl config's `kernel`).
pub const IMAGE_IN_DOM0: &str = "/usr/lib/gpu-dom/gpu-dom";
/// What gpu-dom's console must show once it is ready (besides `gpu-dom: ready`).
pub const GPU_DOM_UP_CONSOLE: &[&str] = &[
    "gpu-dom: started as domU",
    "gpu-dom: xenstore name=gpu-dom domid={domid}",
    "gpu-dom: watching backend/vgpu",
];
/// What gpu-dom's console must show after `xl shutdown`.
pub const GPU_DOM_DOWN_CONSOLE: &[&str] = &["gpu-dom: shutdown requested (poweroff)"];
/// The xl config in the repository.
pub const XL_CONFIG: &str = "xl-configs/gpu-dom.cfg";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    One,
    Two,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub stages: Vec<Stage>,
    /// Boot this PVH ELF instead of building gpu-dom.
    pub image: Option<PathBuf>,
    /// Overrides the per-stage QEMU timeout.
    pub timeout: Option<Duration>,
}

/// The stage 2 scenario: gpu-dom up, then down.
pub fn stage2_scenario(image: &Path, xl_cfg: String) -> Scenario {
    Scenario {
        name: "stage2".into(),
        files: vec![
            ScenarioFile {
                dest: IMAGE_IN_DOM0.into(),
                source: Source::Host(image.into()),
                mode: 0o644,
            },
            ScenarioFile {
                dest: scenario::xl_cfg_path(DOMAIN),
                source: Source::Bytes(xl_cfg.into_bytes()),
                mode: 0o644,
            },
        ],
        parts: vec![
            scenario::domain_up(DOMAIN, 30, GPU_DOM_UP_CONSOLE),
            scenario::domain_down(DOMAIN, 60, GPU_DOM_DOWN_CONSOLE),
        ],
        timeout: Duration::from_secs(300),
    }
}

/// The repository's xl config with `kernel` pointing into the initramfs.
pub fn dom0_xl_config(paths: &Paths) -> Result<String> {
    let path = paths.root.join(XL_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
    let bad = |reason: String| Error::XlConfig { path: path.clone(), reason };
    match xlcfg::get_string(&text, "name") {
        Some(n) if n == DOMAIN => {}
        other => return Err(bad(format!("name is {other:?}, the boot test expects \"{DOMAIN}\""))),
    }
    xlcfg::with_kernel(&text, IMAGE_IN_DOM0).map_err(bad)
}

/// What every boot needs: the image, Xen and (for a Linux dom0) the unpacked
/// Debian packages.
pub struct System {
    pub image: Image,
    pub trees: BTreeMap<String, Tree>,
    pub xen: PathBuf,
}

/// Installs host tools, builds (or checks) the image, fetches and unpacks the
/// Debian packages (with the dom0 ones if `dom0`), and extracts Xen.
pub fn prepare(
    paths: &Paths,
    p: &mut Progress,
    image: Option<&Path>,
    dom0: bool,
) -> Result<System> {
    prepare_with(paths, p, image, dom0, &[])
}

/// [`prepare`], fetching `extra` Debian packages (and their libraries) too.
pub fn prepare_with(
    paths: &Paths,
    p: &mut Progress,
    image: Option<&Path>,
    dom0: bool,
    extra: &[&str],
) -> Result<System> {
    let cache = paths.cache.clone();
    p.step("host tools for booting (qemu-system-x86, dpkg-deb, gzip)", |p| {
        let installed = host::ensure_tools(
            &[host::QEMU, host::DPKG_DEB, host::GZIP],
            &cache.log("host-tools"),
        )?;
        if !installed.is_empty() {
            p.note(format!("installed {}", installed.join(" ")));
        }
        Ok(())
    })?;
    let image = match image {
        Some(path) => p.step(format!("checking {}", path.display()), |_| image::external(path))?,
        None => image::build(paths, p, true)?,
    };
    p.note(format!(
        "image {} ({} bytes, PVH entry {:#x})",
        paths.show(&image.elf),
        image.size,
        image.pvh_entry
    ));

    let fetched =
        p.step("Debian packages: resolve from apt's lists, download what is not cached", |p| {
            let mut apt = AptCli::new(cache.log("apt"), &cache.root.join("apt"))?;
            let t0 = Instant::now();
            let fetched = apt::fetch(
                &mut apt,
                &cache.debs(),
                &mut |r| dom0::resolve(r, dom0, extra),
                &mut |line| p.note(line),
            )?;
            let debs = &fetched.debs;
            let libs = debs.iter().filter(|d| d.package.is_library()).count();
            let main: Vec<String> = debs
                .iter()
                .filter(|d| !d.package.is_library())
                .map(|d| format!("{} {}", d.package.name, d.package.version))
                .collect();
            p.note(format!("{}; {libs} library packages", main.join(", ")));
            let pruned = dom0::prune(&cache, debs)?;
            p.note(format!(
                "{} downloaded ({:.1} MB in {:.1} s), {} cached in {}, {pruned} stale removed",
                fetched.downloaded,
                fetched.bytes as f64 / 1e6,
                t0.elapsed().as_secs_f64(),
                debs.len() - fetched.downloaded,
                paths.show(&cache.debs()),
            ));
            Ok(fetched)
        })?;
    let pkgs = &fetched.debs;
    let trees = p.step(format!("unpacking {} packages (dpkg-deb -x)", pkgs.len()), |p| {
        let (trees, new) = dom0::unpack_all(&cache, pkgs)?;
        p.note(format!(
            "{new} unpacked, {} already unpacked in {}",
            pkgs.len() - new,
            paths.show(&cache.unpacked())
        ));
        Ok(trees)
    })?;
    let xen = p.step("xen-4.17-amd64.gz -> multiboot ELF for QEMU -kernel", |_| {
        dom0::xen_elf(&trees, &cache)
    })?;
    Ok(System { image, trees, xen })
}

pub fn run(paths: &Paths, opts: &Options) -> Result<()> {
    let (s1, s2) = (opts.stages.contains(&Stage::One), opts.stages.contains(&Stage::Two));
    let build_steps = if opts.image.is_some() { 1 } else { 4 };
    let total = 1 + build_steps + 3 + usize::from(s1) + 2 * usize::from(s2);
    let mut p = Progress::new("boot", total);
    let System { image, trees, xen } = prepare(paths, &mut p, opts.image.as_deref(), s2)?;

    let mut results: Vec<(&str, Result<()>)> = Vec::new();
    if s1 {
        results.push(("stage 1", stage1(paths, &mut p, &xen, &image, opts.timeout)));
    }
    if s2 {
        results.push(("stage 2", stage2(paths, &mut p, &xen, &image, &trees, opts.timeout)));
    }
    println!("[boot] wall time per step:\n{}", p.summary());
    let mut first_err = None;
    for (stage, r) in results {
        match r {
            Ok(()) => println!("[boot] {stage}: PASS"),
            Err(e) => {
                println!("[boot] {stage}: FAIL");
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn ended_text(run: &Run, timeout: Duration) -> Option<String> {
    match &run.ended {
        Ended::Watcher => None,
        Ended::Timeout => Some(format!("timed out after {} s", timeout.as_secs())),
        Ended::QemuExited(s) => {
            Some(format!("QEMU exited by itself ({s}); see {}", run.qemu_log.display()))
        }
        Ended::Stalled => Some(format!(
            "the emulated machine stopped: no serial output for {} s (in a dom0 run not even \
             dom0's heartbeat), so QEMU was killed",
            qemu::STALL_AFTER.as_secs()
        )),
    }
}

/// How often a dom0 run is started again when it gave no verdict: the
/// emulated machine stalled, or a domain's firmware crashed.
const NO_VERDICT_RETRIES: u32 = 1;

fn stage1(
    paths: &Paths,
    p: &mut Progress,
    xen: &Path,
    image: &Image,
    timeout: Option<Duration>,
) -> Result<()> {
    let timeout = timeout.unwrap_or(Duration::from_secs(120));
    p.step("stage 1: Xen + the image as PVH dom0 (QEMU TCG)", |p| {
        let machine = Machine {
            xen: xen.into(),
            xen_cmdline: STAGE1_XEN_CMDLINE.into(),
            modules: vec![Module { path: image.elf.clone(), args: String::new() }],
            memory_mib: 1024,
            smp: 2,
            devices: vec![],
        };
        let dir = paths.stage("stage1");
        let mut watcher = Watcher::new("SELFTEST done", None);
        let run = qemu::run(&machine, &dir, &mut watcher, timeout, |line| {
            if markers::parse_selftest(line).is_some() || markers::fatal_in(line).is_some() {
                p.note(line.trim());
            }
        })?;
        let verdict = SelfTestReport::from_log(&run.serial).verdict();
        let wall = run.wall.as_secs_f64();
        match verdict {
            Ok(detail) => {
                p.note(format!("stage 1 PASS in {wall:.1} s ({detail})"));
                Ok(())
            }
            Err(why) => {
                let mut reason = why;
                if let Some(f) = watcher.fatal.iter().find(|f| f.what != "a self-test failed") {
                    reason.push_str(&format!("; {}: `{}`", f.what, f.line.trim()));
                }
                if watcher.halted && !watcher.success_seen {
                    reason.push_str("; dom0 halted the machine first");
                }
                let done_seen = watcher.success_seen;
                if let Some(t) = ended_text(&run, timeout).filter(|_| !done_seen) {
                    reason.push_str(&format!("; {t}"));
                }
                p.note(format!("stage 1 FAIL after {wall:.1} s: {reason}"));
                Err(Error::Boot {
                    stage: "stage 1".into(),
                    reason,
                    log: run.serial_path.clone(),
                    hint: format!(
                        "read the serial log (Xen's log and the image's output); rerun only this stage with \
                         `cargo xtask boot --stage 1`; the QEMU command is in {}",
                        paths.show(&dir.join("command.txt"))
                    ),
                })
            }
        }
    })
}

/// Whether a stage 2 serial line is worth showing live.
fn stage2_shows(line: &str) -> bool {
    let bracketed =
        line.starts_with('[') && line[1..].starts_with(|c: char| !c.is_ascii_digit() && c != ' ');
    line.contains("E2E:")
        || bracketed
        || line.contains("libxl: error")
        || markers::fatal_in(line).is_some()
}

fn stage2(
    paths: &Paths,
    p: &mut Progress,
    xen: &Path,
    image: &Image,
    trees: &BTreeMap<String, Tree>,
    timeout: Option<Duration>,
) -> Result<()> {
    let dir = paths.stage("stage2");
    let cfg = dom0_xl_config(paths)?;
    host::write(&dir.join("gpu-dom.cfg"), &cfg)?;
    let scenario = stage2_scenario(&image.elf, cfg);
    let run = Dom0Run {
        dir: "stage2",
        label: "stage 2",
        what: format!("Linux PV dom0 + xl create {DOMAIN}"),
        rerun: "cargo xtask boot --stage 2",
        scenario: &scenario,
        timeout,
        devices: Vec::new(),
    };
    run_dom0(paths, p, (xen, trees), &run)
}

/// One Linux-dom0 scenario run: what to boot, how it is named in progress
/// lines and errors, and how long it may take.
pub struct Dom0Run<'a> {
    /// Directory under `target/boot/`.
    pub dir: &'static str,
    /// Short name ("stage 2", "e2e").
    pub label: &'static str,
    /// What the QEMU run does, for its progress line.
    pub what: String,
    /// The command that reruns just this.
    pub rerun: &'static str,
    /// The files and `/init` parts dom0 runs.
    pub scenario: &'a Scenario,
    /// Bound on the run (default: the scenario's).
    pub timeout: Option<Duration>,
    /// Extra QEMU `-device`s (e.g. a device to pass through).
    pub devices: Vec<String>,
}

/// Builds the dom0 initramfs for `run.scenario` and boots Xen (`xen`) with
/// Debian's Linux (from `trees`) as PV dom0; passes when dom0's `/init`
/// reports the scenario's PASS marker.
pub fn run_dom0(
    paths: &Paths,
    p: &mut Progress,
    (xen, trees): (&Path, &BTreeMap<String, Tree>),
    run: &Dom0Run,
) -> Result<()> {
    let dir = paths.stage(run.dir);
    let cpio = dir.join("initramfs.cpio");
    let vmlinuz = p.step(format!("{}: assembling the dom0 initramfs", run.label), |p| {
        assemble_initramfs(paths, p, trees, run.scenario, &cpio)
    })?;
    let timeout = run.timeout.unwrap_or(run.scenario.timeout);
    p.step(format!("{}: {} (QEMU TCG)", run.label, run.what), |p| {
        let machine = Machine {
            xen: xen.into(),
            xen_cmdline: STAGE2_XEN_CMDLINE.into(),
            modules: vec![
                Module { path: vmlinuz.clone(), args: DOM0_LINUX_CMDLINE.into() },
                Module { path: cpio.clone(), args: String::new() },
            ],
            memory_mib: 2048,
            smp: 2,
            devices: run.devices.clone(),
        };
        let (qemu_run, watcher) = boot_until_verdict(paths, p, &machine, &dir, run, timeout)?;
        judge_dom0_run(paths, p, run, &dir, &qemu_run, &watcher, timeout)
    })
}

/// Writes the initramfs (and `init` beside it, to read); returns the kernel.
fn assemble_initramfs(
    paths: &Paths,
    p: &mut Progress,
    trees: &BTreeMap<String, Tree>,
    scenario: &Scenario,
    cpio: &Path,
) -> Result<PathBuf> {
    let (vmlinuz, release) = dom0::kernel(trees)?;
    let a = dom0::assemble(trees, &release, scenario, cpio)?;
    let dir = cpio.parent().unwrap_or(Path::new("."));
    host::write(&dir.join("init"), &a.init)?;
    p.note(format!(
        "{} ({:.1} MiB): kernel {release}, {} libraries, modules {}{}",
        paths.show(cpio),
        a.size as f64 / (1024.0 * 1024.0),
        a.libs,
        a.modules.join(" "),
        if a.builtin_modules.is_empty() {
            String::new()
        } else {
            format!(" (built in: {})", a.builtin_modules.join(" "))
        }
    ));
    if !a.host_libs.is_empty() {
        p.note(format!(
            "warning: taken from the host, no package had them: {}",
            a.host_libs.join(" ")
        ));
    }
    Ok(vmlinuz)
}

/// Boots `machine`; a run that gave no verdict on anything under test (the
/// emulated machine stalled, or a domain's firmware crashed before the
/// image in it started) is run again, once, keeping its log.
fn boot_until_verdict(
    paths: &Paths,
    p: &mut Progress,
    machine: &Machine,
    dir: &Path,
    run: &Dom0Run,
    timeout: Duration,
) -> Result<(qemu::Run, Watcher)> {
    for n in 1..=NO_VERDICT_RETRIES {
        let _ = std::fs::remove_file(dir.join(format!("serial.attempt-{n}.log")));
    }
    let mut attempt = 0;
    loop {
        let mut watcher =
            Watcher::new(&run.scenario.pass_marker(), Some(&run.scenario.fail_marker()));
        let qemu_run = qemu::run(machine, dir, &mut watcher, timeout, |line| {
            if stage2_shows(line) {
                p.note(line.trim_end());
            }
        })?;
        let why = if matches!(qemu_run.ended, Ended::Stalled) {
            Some(format!(
                "the emulated machine stalled after {:.0} s (no serial output for {} s, no \
                 dom0 heartbeat)",
                qemu_run.wall.as_secs_f64(),
                qemu::STALL_AFTER.as_secs()
            ))
        } else {
            markers::firmware_triple_fault(&qemu_run.serial).map(|d| {
                format!(
                    "{d} triple-faulted before any image of this project printed its \
                     first line in it (in its firmware, hvmloader/SeaBIOS, or in a Linux \
                     guest's kernel)"
                )
            })
        };
        let Some(why) = why.filter(|_| attempt < NO_VERDICT_RETRIES) else {
            return Ok((qemu_run, watcher));
        };
        attempt += 1;
        let kept = dir.join(format!("serial.attempt-{attempt}.log"));
        let _ = std::fs::rename(&qemu_run.serial_path, &kept);
        p.note(format!(
            "{why}: not a verdict; starting the run again (its log: {})",
            paths.show(&kept)
        ));
    }
}

/// PASS when dom0's `/init` printed the scenario's PASS marker and not its
/// FAIL marker; otherwise an error that says why, which markers are
/// missing, and where to look.
fn judge_dom0_run(
    paths: &Paths,
    p: &mut Progress,
    run: &Dom0Run,
    dir: &Path,
    qemu_run: &qemu::Run,
    watcher: &Watcher,
    timeout: Duration,
) -> Result<()> {
    let (scenario, label) = (run.scenario, run.label);
    let wall = qemu_run.wall.as_secs_f64();
    let serial = &qemu_run.serial;
    if serial.contains(&scenario.pass_marker()) && !serial.contains(&scenario.fail_marker()) {
        p.note(format!("{label} PASS in {wall:.1} s"));
        return Ok(());
    }
    let mut reason = match markers::after_marker(serial, &scenario.fail_marker()) {
        Some(why) => format!("dom0 /init reports: {why}"),
        None => "no verdict from dom0 /init".to_string(),
    };
    if let Some(f) = watcher.fatal.first() {
        reason.push_str(&format!("; {}: `{}`", f.what, f.line.trim()));
    }
    let verdict_seen = serial.contains(&scenario.fail_marker());
    if let Some(t) = ended_text(qemu_run, timeout).filter(|_| !verdict_seen) {
        reason.push_str(&format!("; {t}"));
    }
    let expected = scenario.expected_markers();
    let missing = markers::missing_markers(serial, &expected, &scenario.fail_marker());
    if !missing.is_empty() {
        reason.push_str(&format!(
            "; missing markers: {}",
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    p.note(format!("{label} FAIL after {wall:.1} s: {reason}"));
    Err(Error::Boot {
        stage: label.into(),
        reason,
        log: qemu_run.serial_path.clone(),
        hint: format!(
            "read the serial log (Xen, dom0 and the copied guest consoles); the dom0 script is {}, \
             the QEMU command {}; rerun only this with `{}`",
            paths.show(&dir.join("init")),
            paths.show(&dir.join("command.txt")),
            run.rerun
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_xl_config_names_gpu_dom_and_gets_the_initramfs_kernel_path() {
        let cfg = dom0_xl_config(&Paths::workspace()).unwrap();
        assert_eq!(xlcfg::get_string(&cfg, "kernel").as_deref(), Some(IMAGE_IN_DOM0));
        assert_eq!(xlcfg::get_string(&cfg, "name").as_deref(), Some(DOMAIN));
        assert_eq!(xlcfg::get_string(&cfg, "type").as_deref(), Some("pvh"));
    }

    #[test]
    fn stage2_puts_image_and_config_where_the_config_says() {
        let s = stage2_scenario(
            Path::new("/t/gpu-dom"),
            "kernel = \"/usr/lib/gpu-dom/gpu-dom\"\n".into(),
        );
        let dests: Vec<_> = s.files.iter().map(|f| f.dest.as_str()).collect();
        assert_eq!(dests, [IMAGE_IN_DOM0, "/etc/xen/gpu-dom.cfg"]);
        assert!(s
            .init_script(&crate::scenario::Dom0 {
                kernel_release: "r".into(),
                modules: vec![],
                xen_bin: "/usr/lib/xen-4.17/bin".into(),
                lib_dirs: vec![],
            })
            .contains("xl create /etc/xen/gpu-dom.cfg"));
    }

    #[test]
    fn xen_and_linux_command_lines_have_no_commas_for_qemu_initrd() {
        assert!(!DOM0_LINUX_CMDLINE.contains(','));
        assert!(STAGE1_XEN_CMDLINE.contains("dom0=pvh"));
        assert!(!STAGE2_XEN_CMDLINE.contains("dom0=pvh"));
    }

    #[test]
    fn stage2_shows_verdicts_and_copied_consoles_but_not_kernel_chatter() {
        assert!(stage2_shows("E2E: gpu-dom ready in 812 ms"));
        assert!(stage2_shows("[gpu-dom] gpu-dom: ready"));
        assert!(stage2_shows("[xl create] libxl: error: foo"));
        assert!(!stage2_shows("[    1.234567] xen: something"));
        assert!(!stage2_shows("(XEN) Brought up 2 CPUs"));
    }
}
