//! `cargo xtask`: build the gpu-dom image and boot it under Xen in QEMU.
//!
//! Everything the xtask fetches or writes lives under the workspace's
//! `target/`: `target/xen-cache/` (Debian packages by version, unpacked, logs)
//! and `target/boot/` (one directory per boot stage: serial log, QEMU output,
//! QEMU command line; the dom0 init script and initramfs of stage 2).

mod apt;
mod boot;
mod checks;
mod cpio;
mod dom0;
mod e2e;
mod elf;
mod error;
mod guest_initramfs;
mod host;
mod image;
mod initramfs;
mod iommu;
mod kmod;
mod libs;
mod linux_guest;
mod markers;
mod net;
mod paths;
mod progress;
mod qemu;
mod restart;
mod scenario;
#[cfg(test)]
mod testdir;
mod xlcfg;

use boot::{Options, Stage};
use error::{Error, Result};
use paths::Paths;
use progress::Progress;
use std::process::ExitCode;
use std::time::Duration;

const HELP: &str = "\
cargo xtask: build the gpu-dom image and boot it under Xen 4.17 in QEMU

USAGE:
    cargo xtask demo
    cargo xtask test
    cargo xtask build
    cargo xtask boot [--stage 1|2] [--image PATH] [--timeout SECS]
    cargo xtask e2e [--timeout SECS]
    cargo xtask linux-guest [--timeout SECS]
    cargo xtask iommu [--timeout SECS]
    cargo xtask net [--timeout SECS]
    cargo xtask restart [--timeout SECS]
    cargo xtask fuzz [--seconds N] [--runs N] [--target NAME]
    cargo xtask bench [--criterion]
    cargo xtask help

demo
    The main job: builds gpu-dom and boots the whole Xen demo in QEMU, printing
    what happens: both boot stages, the e2e run (gpu-dom serving guests), then
    the iommu run (a passed-through DMA device reaches only what gpu-dom
    grant-mapped).

test
    Everything CI runs: cargo fmt --check, cargo clippy (warnings are errors),
    cargo test --workspace (unit, integration and property tests on the
    platform model), `fuzz --seconds 20`, `bench`, `boot`, `e2e`,
    `linux-guest`, `restart`, `net` and `iommu`.

e2e
    gpu-dom serving real guests under Xen 4.17 in QEMU: Linux PV dom0 runs
    `xl create` of gpu-dom and of six test guests (guests/test-guest), attaches
    them with the `vgpu` command, and checks through gpu-dom's debug readback
    that every GGTT/PPGTT entry resolves to the guest's own bytes; a hostile
    guest, unattached guests, `xl destroy` mid-batch and `xl shutdown gpu-dom`
    with guests attached. Logs: target/boot/e2e/ (serial.log, init, ...).

restart
    gpu-dom dies and comes back under Xen 4.17 in QEMU: two guests (one
    idle and verified, one in the middle of map/unmap batches) stay up while
    gpu-dom is `xl destroy`ed and, once more, crashes by itself
    (gpu-dom.fault=panic-after=N); `vgpu supervise` re-creates it and moves
    the devices; the guests reconnect, replay their mappings and read every
    entry back. Prints death-to-noticing, xl-create-to-ready (first and
    second create) and death-to-re-served; checks that every grant ends and
    no domain is left a zombie. Logs: target/boot/restart/.
linux-guest
    An ordinary Linux VM as a vgpu guest under Xen 4.17 in QEMU: next to
    gpu-dom (debug readback on) and a unikernel test guest (mode=good), a
    Linux PVH domU (Debian's kernel, xl-configs/linux-guest.cfg, an
    initramfs with busybox, vgpu-front and the xen-evtchn and xen-gntalloc
    modules) is created paused, `vgpu attach`ed and unpaused; vgpu-front
    maps, verifies and disconnects from inside it, then it powers off and
    must leave `xl list`. Prints its boot time (xl create to its first
    console line, to its /init) and its attach-to-verified time.
    Logs: target/boot/linux-guest/ (serial.log, init, guest-init, ...).

iommu
    Proof under real Xen that a device passed through to gpu-dom reaches by
    DMA only what gpu-dom grant-mapped: Xen 4.17 in QEMU with an emulated
    Intel VT-d and QEMU's `edu` test device; Linux PV dom0 makes edu
    assignable, `xl create`s gpu-dom from xl-configs/gpu-dom-hvm.cfg (HVM,
    edu passed through, `gpu-dom.iommu-test`), attaches a good test guest,
    then gpu-dom aims edu at bus addresses taken from the guest's shadow
    entries (reads, a write the guest sees, a blocked write to a read-only
    grant), at addresses gtt never produced, and at the same addresses after
    `vgpu detach` (nothing may come back). Passes on gpu-dom's IOMMU-TEST
    lines, the guest's dma-check lines and Xen's DMAR fault lines.
    Logs: target/boot/iommu/.

net
    gpu-dom's management endpoint under Xen 4.17 in QEMU: dom0 loads
    xen-netback, creates gpu-dom with a vif (ip=192.0.2.2/24; a hotplug
    script gives dom0's end 192.0.2.1/24), pings it, fetches /healthz and
    /metrics with busybox wget while two test guests are attached and
    mapping, checks the figures against `vgpu list` and what the guests did,
    and runs a garbage client and four slow clients beside them (dropped at
    their deadline; guest service goes on). Logs: target/boot/net/.

fuzz
    Runs each cargo-fuzz target (ring_decode, backend_path, xenstore_decode,
    service_xenstore,
    http_request), or only --target NAME, on the stable toolchain for N
    seconds (--seconds, default 60) or N executions (--runs; with both,
    whichever comes first); installs cargo-fuzz if missing. The corpus is
    kept: each run starts from target/fuzz/corpus/<target> and the seeds in
    fuzz/corpus/<target> (read, never written) and adds what it finds to
    target/fuzz/corpus/<target>, so a campaign goes on where the last run
    stopped (remove that directory to start over). Prints, and writes to
    target/fuzz/last-run.txt, executions, time, execs/s, coverage and corpus
    size per target. Crashes land in target/fuzz/artifacts/<target>/.
    CI (`cargo xtask test`) runs every target for 20 s.

bench
    Counts, under callgrind, the instructions of one 512-entry PPGTT map
    batch (decode -> validate -> grant map with a no-op mapper -> shadow
    write), into existing tables and into a fresh region; prints
    instructions per entry (also in target/bench/). --criterion also runs
    the criterion benchmark (`cargo bench -p backend`) for wall time.

build
    Adds the rustup target x86_64-unknown-none if missing, runs
    `cargo build --release --target x86_64-unknown-none -p gpu-dom`, checks the
    image's Xen PVH entry note and writes a 32-bit copy next to it with
    `objcopy -O elf32-i386` (installs binutils if needed):
        target/x86_64-unknown-none/release/gpu-dom         PVH image (PVH domU, PVH dom0)
        target/x86_64-unknown-none/release/gpu-dom.elf32   the same as ELF32, for HVM domUs:
                                                           libxl's direct kernel boot of an
                                                           HVM guest loads 32-bit ELF only

boot
    Installs qemu-system-x86 if missing (apt-get; needs root), builds the image,
    fetches Xen 4.17, its toolstack and libraries, busybox-static and Debian's
    kernel with `apt-get download` into target/xen-cache/ (the versions apt's
    lists offer, after `apt-get update` if they are missing or 6 h old; cached
    by the file apt-get produced), and boots under QEMU software emulation (never KVM):
      stage 1  Xen with the image as PVH dom0. Passes when the image prints
               `SELFTEST done passed=<n> failed=0` and no `SELFTEST <name> FAIL`.
      stage 2  Xen with Debian's Linux as PV dom0; its /init (generated) starts
               xenstored and xenconsoled, runs `xl create` of xl-configs/gpu-dom.cfg,
               waits for `gpu-dom: ready` and data/gpu-dom-ready = 1, then
               `xl shutdown -w`. Passes when dom0 prints `E2E: stage2 PASS`.
    Logs: target/boot/stage<N>/serial.log (Xen + guests), qemu.log, command.txt;
    stage 2 also keeps its init script and initramfs there.

    --stage 1|2      run only this stage (default: both)
    --image PATH     boot this PVH ELF instead of building gpu-dom
    --timeout SECS   per-stage QEMU timeout (default: 120 for stage 1, 300 for stage 2)
";

enum Cmd {
    Demo,
    Test,
    Build,
    Boot(Options),
    E2e { timeout: Option<Duration> },
    Restart { timeout: Option<Duration> },
    LinuxGuest { timeout: Option<Duration> },
    Iommu { timeout: Option<Duration> },
    Net { timeout: Option<Duration> },
    Fuzz(checks::FuzzRun),
    Bench { criterion: bool },
    Help,
}

fn parse(args: &[String]) -> Result<Cmd> {
    let usage = |m: String| Error::Usage(m);
    let Some(cmd) = args.first() else { return Ok(Cmd::Help) };
    let rest = &args[1..];
    match cmd.as_str() {
        "help" | "-h" | "--help" => Ok(Cmd::Help),
        "demo" | "test" if !rest.is_empty() => {
            Err(usage(format!("`{cmd}` takes no arguments, got `{}`", rest[0])))
        }
        "demo" => Ok(Cmd::Demo),
        "test" => Ok(Cmd::Test),
        "e2e" => match rest {
            [] => Ok(Cmd::E2e { timeout: None }),
            [flag, v] if flag == "--timeout" => v
                .parse()
                .map(|s| Cmd::E2e { timeout: Some(Duration::from_secs(s)) })
                .map_err(|_| usage(format!("--timeout takes seconds, got `{v}`"))),
            _ => Err(usage("`e2e` takes only `--timeout SECS`".into())),
        },
        "restart" => match rest {
            [] => Ok(Cmd::Restart { timeout: None }),
            [flag, v] if flag == "--timeout" => v
                .parse()
                .map(|s| Cmd::Restart { timeout: Some(Duration::from_secs(s)) })
                .map_err(|_| usage(format!("--timeout takes seconds, got `{v}`"))),
            _ => Err(usage("`restart` takes only `--timeout SECS`".into())),
        },
        "linux-guest" => match rest {
            [] => Ok(Cmd::LinuxGuest { timeout: None }),
            [flag, v] if flag == "--timeout" => v
                .parse()
                .map(|s| Cmd::LinuxGuest { timeout: Some(Duration::from_secs(s)) })
                .map_err(|_| usage(format!("--timeout takes seconds, got `{v}`"))),
            _ => Err(usage("`linux-guest` takes only `--timeout SECS`".into())),
        },
        "iommu" => match rest {
            [] => Ok(Cmd::Iommu { timeout: None }),
            [flag, v] if flag == "--timeout" => v
                .parse()
                .map(|s| Cmd::Iommu { timeout: Some(Duration::from_secs(s)) })
                .map_err(|_| usage(format!("--timeout takes seconds, got `{v}`"))),
            _ => Err(usage("`iommu` takes only `--timeout SECS`".into())),
        },
        "net" => match rest {
            [] => Ok(Cmd::Net { timeout: None }),
            [flag, v] if flag == "--timeout" => v
                .parse()
                .map(|s| Cmd::Net { timeout: Some(Duration::from_secs(s)) })
                .map_err(|_| usage(format!("--timeout takes seconds, got `{v}`"))),
            _ => Err(usage("`net` takes only `--timeout SECS`".into())),
        },
        "fuzz" => parse_fuzz(rest).map(Cmd::Fuzz),
        "bench" => match rest {
            [] => Ok(Cmd::Bench { criterion: false }),
            [flag] if flag == "--criterion" => Ok(Cmd::Bench { criterion: true }),
            _ => Err(usage("`bench` takes only `--criterion`".into())),
        },
        "build" => match rest.first() {
            None => Ok(Cmd::Build),
            Some(a) => Err(usage(format!("`build` takes no arguments, got `{a}`"))),
        },
        "boot" => {
            let mut opts =
                Options { stages: vec![Stage::One, Stage::Two], image: None, timeout: None };
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                let mut value =
                    || it.next().ok_or_else(|| usage(format!("`{flag}` needs a value")));
                match flag.as_str() {
                    "--stage" => {
                        opts.stages = match value()?.as_str() {
                            "1" => vec![Stage::One],
                            "2" => vec![Stage::Two],
                            v => return Err(usage(format!("--stage takes 1 or 2, got `{v}`"))),
                        }
                    }
                    "--image" => opts.image = Some(value()?.into()),
                    "--timeout" => {
                        let v = value()?;
                        let secs: u64 = v
                            .parse()
                            .map_err(|_| usage(format!("--timeout takes seconds, got `{v}`")))?;
                        opts.timeout = Some(Duration::from_secs(secs));
                    }
                    other => return Err(usage(format!("unknown `boot` option `{other}`"))),
                }
            }
            Ok(Cmd::Boot(opts))
        }
        other => Err(usage(format!("unknown command `{other}`"))),
    }
}

/// `fuzz [--seconds N] [--runs N] [--target NAME]`.
fn parse_fuzz(rest: &[String]) -> Result<checks::FuzzRun> {
    let usage = |m: String| Error::Usage(m);
    let mut run = checks::FuzzRun { seconds: None, runs: None, target: None };
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| usage(format!("`{flag}` needs a value")))?;
        let number =
            || v.parse::<u64>().map_err(|_| usage(format!("{flag} takes a number, got `{v}`")));
        match flag.as_str() {
            "--seconds" => run.seconds = Some(number()?),
            "--runs" => run.runs = Some(number()?),
            "--target" if checks::FUZZ_TARGETS.contains(&v.as_str()) => {
                run.target = Some(v.clone())
            }
            "--target" => {
                let known = checks::FUZZ_TARGETS.join(", ");
                return Err(usage(format!("no fuzz target `{v}`; the targets are {known}")));
            }
            other => return Err(usage(format!("unknown `fuzz` option `{other}`"))),
        }
    }
    if run.seconds.is_none() && run.runs.is_none() {
        run.seconds = Some(60);
    }
    Ok(run)
}

fn build(paths: &Paths) -> Result<()> {
    let mut p = Progress::new("build", 4);
    let image = image::build(paths, &mut p, false)?;
    println!(
        "[build] image: {} ({} bytes, PVH entry {:#x})",
        image.elf.display(),
        image.size,
        image.pvh_entry
    );
    println!("[build] 32-bit copy for HVM domUs: {}", image.elf32.display());
    Ok(())
}

fn all_stages() -> Options {
    Options { stages: vec![Stage::One, Stage::Two], image: None, timeout: None }
}

/// `cargo xtask test`: what CI runs (see HELP).
fn test(paths: &Paths) -> Result<()> {
    let t0 = std::time::Instant::now();
    checks::host_tests(paths)?;
    checks::fuzz(paths, 20)?;
    checks::bench(paths, false)?;
    boot::run(paths, &all_stages())?;
    e2e::run(paths, None)?;
    linux_guest::run(paths, None)?;
    restart::run(paths, None)?;
    net::run(paths, None)?;
    iommu::run(paths, None)?;
    println!("[test] all passed in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let paths = Paths::workspace();
    let result = parse(&args).and_then(|cmd| match cmd {
        Cmd::Help => {
            print!("{HELP}");
            Ok(())
        }
        Cmd::Build => build(&paths),
        Cmd::Boot(opts) => boot::run(&paths, &opts),
        Cmd::Demo => boot::run(&paths, &all_stages())
            .and_then(|()| e2e::run(&paths, None))
            .and_then(|()| iommu::run(&paths, None)),
        Cmd::Test => test(&paths),
        Cmd::E2e { timeout } => e2e::run(&paths, timeout),
        Cmd::Restart { timeout } => restart::run(&paths, timeout),
        Cmd::LinuxGuest { timeout } => linux_guest::run(&paths, timeout),
        Cmd::Iommu { timeout } => iommu::run(&paths, timeout),
        Cmd::Net { timeout } => net::run(&paths, timeout),
        Cmd::Fuzz(run) => checks::fuzz_run(&paths, &run).map(|_| ()),
        Cmd::Bench { criterion } => checks::bench(&paths, criterion).map(|_| ()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let (true, Some(log)) = (e.log_tail_helps(), e.log()) {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("--- last lines of {} ---", log.display());
                for l in &lines[lines.len().saturating_sub(20)..] {
                    eprintln!("{l}");
                }
                eprintln!("---");
            }
            eprintln!("error: {e}");
            if let Some(log) = e.log() {
                eprintln!("  log:  {}", log.display());
            }
            eprintln!("  next: {}", e.hint());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn boot_defaults_to_both_stages() {
        let Cmd::Boot(o) = parse(&args("boot")).unwrap() else { panic!() };
        assert_eq!(o.stages, [Stage::One, Stage::Two]);
        assert!(o.image.is_none() && o.timeout.is_none());
    }

    #[test]
    fn boot_flags_select_stage_image_and_timeout() {
        let Cmd::Boot(o) = parse(&args("boot --stage 2 --image /tmp/k --timeout 60")).unwrap()
        else {
            panic!()
        };
        assert_eq!(o.stages, [Stage::Two]);
        assert_eq!(o.image.unwrap().to_str(), Some("/tmp/k"));
        assert_eq!(o.timeout, Some(Duration::from_secs(60)));
    }

    #[test]
    fn fuzz_runs_60_s_unless_told_and_takes_a_run_count_and_one_target() {
        let Cmd::Fuzz(r) = parse(&args("fuzz")).unwrap() else { panic!() };
        assert_eq!((r.seconds, r.runs, r.target), (Some(60), None, None));
        let Cmd::Fuzz(r) = parse(&args("fuzz --runs 1000000 --target service_xenstore")).unwrap()
        else {
            panic!()
        };
        assert_eq!((r.seconds, r.runs), (None, Some(1_000_000)));
        assert_eq!(r.target.as_deref(), Some("service_xenstore"));
        let Cmd::Fuzz(r) = parse(&args("fuzz --seconds 5 --runs 9")).unwrap() else { panic!() };
        assert_eq!((r.seconds, r.runs), (Some(5), Some(9)));
    }

    #[test]
    fn bad_arguments_are_usage_errors_that_say_what_was_wrong() {
        for (a, want) in [
            ("boot --stage 3", "--stage takes 1 or 2"),
            ("boot --stage", "needs a value"),
            ("boot --fast", "unknown `boot` option"),
            ("frob", "unknown command"),
            ("build x", "takes no arguments"),
            ("boot --timeout soon", "seconds"),
            ("fuzz --target nope", "the targets are ring_decode"),
            ("fuzz --runs lots", "--runs takes a number"),
            ("fuzz --seconds", "needs a value"),
            ("fuzz --jobs 2", "unknown `fuzz` option"),
        ] {
            let e = parse(&args(a)).err().unwrap();
            assert!(matches!(e, Error::Usage(_)));
            assert!(e.to_string().contains(want), "{a}: {e}");
        }
    }
}
