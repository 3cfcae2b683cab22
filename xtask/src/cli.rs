//! The xtask's command line (clap): one variant per command, its help text
//! on the variant, its options typed.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::commands::boot::{Options, Stage};
use crate::commands::checks::{FuzzRun, FUZZ_TARGETS};

/// cargo xtask: build the gpu-dom image and boot it under Xen 4.17 in QEMU.
///
/// Everything it fetches or writes lives under the workspace's target/:
/// target/xen-cache/ (Debian packages, unpacked trees, logs), target/boot/
/// (one directory per run: serial log, QEMU output and command line, the
/// dom0 init script and initramfs).
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// A bound on one QEMU run.
#[derive(Debug, Clone, Copy, Args)]
pub struct Timeout {
    /// Stop QEMU after this many seconds (default: the run's own bound).
    #[arg(long = "timeout", value_name = "SECS", value_parser = seconds)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// The main job: builds gpu-dom and boots the whole Xen demo in QEMU.
    ///
    /// Prints what happens: both boot stages, the e2e run (gpu-dom serving
    /// guests), then the iommu run (a passed-through DMA device reaches only
    /// what gpu-dom grant-mapped).
    Demo,
    /// Everything CI runs.
    ///
    /// cargo fmt --check, cargo clippy (warnings are errors), cargo test
    /// --workspace (unit, integration and property tests on the platform
    /// model), `fuzz --seconds 20`, `bench`, `boot`, `e2e`, `bench --xen`,
    /// `linux-guest`, `restart`, `net`, `iommu` and `scale` (64 guests).
    Test,
    /// Builds the gpu-dom PVH image and its 32-bit copy for HVM domUs.
    ///
    /// Adds the rustup target x86_64-unknown-none if missing, runs `cargo
    /// build --release --target x86_64-unknown-none -p gpu-dom`, checks the
    /// image's Xen PVH entry note and writes a 32-bit copy next to it with
    /// `objcopy -O elf32-i386` (installs binutils if needed):
    /// target/x86_64-unknown-none/release/gpu-dom (PVH image: PVH domU, PVH
    /// dom0) and gpu-dom.elf32 (the same as ELF32, for HVM domUs: libxl's
    /// direct kernel boot of an HVM guest loads 32-bit ELF only).
    Build,
    /// Boots gpu-dom under Xen 4.17 in QEMU (stage 1: as dom0; stage 2: as a domU).
    ///
    /// Installs qemu-system-x86 if missing (apt-get; needs root), builds the
    /// image, fetches Xen 4.17, its toolstack and libraries, busybox-static
    /// and Debian's kernel with `apt-get download` into target/xen-cache/
    /// (the versions apt's lists offer, after `apt-get update` if they are
    /// missing or 6 h old; cached by the file apt-get produced), and boots
    /// under QEMU software emulation (never KVM). Stage 1: Xen with the image
    /// as PVH dom0; passes when the image prints `SELFTEST done passed=<n>
    /// failed=0` and no `SELFTEST <name> FAIL`. Stage 2: Xen with Debian's
    /// Linux as PV dom0; its /init (generated) starts xenstored and
    /// xenconsoled, runs `xl create` of xl-configs/gpu-dom.cfg, waits for
    /// `gpu-dom: ready` and data/gpu-dom-ready = 1, then `xl shutdown -w`;
    /// passes when dom0 prints `E2E: stage2 PASS`. Logs:
    /// target/boot/stage<N>/serial.log (Xen + guests), qemu.log,
    /// command.txt; stage 2 also keeps its init script and initramfs there.
    Boot(BootArgs),
    /// gpu-dom serving real guests under Xen 4.17 in QEMU.
    ///
    /// Linux PV dom0 runs `xl create` of gpu-dom and of the test guests
    /// (guests/test-guest), attaches them with the `vgpu` command, and
    /// checks through gpu-dom's debug readback that every GGTT/PPGTT entry
    /// resolves to the guest's own bytes; a hostile guest, unattached
    /// guests, bad frontend values, admission control, `xl destroy`
    /// mid-batch and `xl shutdown gpu-dom` with guests attached. Logs:
    /// target/boot/e2e/ (serial.log, init, ...).
    E2e(Timeout),
    /// An ordinary Linux VM as a vgpu guest under Xen 4.17 in QEMU.
    ///
    /// Next to gpu-dom (debug readback on) and a unikernel test guest
    /// (mode=good), a Linux PVH domU (Debian's kernel,
    /// xl-configs/linux-guest.cfg, an initramfs with busybox, vgpu-front and
    /// the xen-evtchn and xen-gntalloc modules) is created paused, `vgpu
    /// attach`ed and unpaused; vgpu-front maps, verifies and disconnects
    /// from inside it, then it powers off and must leave `xl list`. Prints
    /// its boot time and its attach-to-verified time. Logs:
    /// target/boot/linux-guest/.
    LinuxGuest(Timeout),
    /// gpu-dom dies and comes back under Xen 4.17 in QEMU; its guests survive.
    ///
    /// Two guests (one idle and verified, one in the middle of map/unmap
    /// batches) stay up while gpu-dom is `xl destroy`ed and, once more,
    /// crashes by itself (gpu-dom.fault=panic-after=N); `vgpu supervise`
    /// re-creates it and moves the devices; the guests reconnect, replay
    /// their mappings and read every entry back. Prints death-to-noticing,
    /// xl-create-to-ready (first and second create) and death-to-re-served;
    /// checks that every grant ends and no domain is left a zombie. Logs:
    /// target/boot/restart/.
    Restart(Timeout),
    /// gpu-dom's management endpoint (/metrics, /healthz) under Xen 4.17 in QEMU.
    ///
    /// dom0 loads xen-netback, creates gpu-dom with a vif (ip=192.0.2.2/24;
    /// a hotplug script gives dom0's end 192.0.2.1/24), pings it, fetches
    /// /healthz and /metrics with busybox wget while two test guests are
    /// attached and mapping, checks the figures against `vgpu list` and what
    /// the guests did, and runs a garbage client and four slow clients
    /// beside them (dropped at their deadline; guest service goes on). Logs:
    /// target/boot/net/.
    Net(Timeout),
    /// A passed-through DMA device reaches only what gpu-dom grant-mapped.
    ///
    /// Xen 4.17 in QEMU with an emulated Intel VT-d and QEMU's `edu` test
    /// device; Linux PV dom0 makes edu assignable, `xl create`s gpu-dom from
    /// xl-configs/gpu-dom-hvm.cfg (HVM, edu passed through,
    /// `gpu-dom.iommu-test`), attaches a good test guest, then gpu-dom aims
    /// edu at bus addresses taken from the guest's shadow entries (reads, a
    /// write the guest sees, a blocked write to a read-only grant), at
    /// addresses gtt never produced, and at the same addresses after `vgpu
    /// detach` (nothing may come back). Passes on gpu-dom's IOMMU-TEST
    /// lines, the guest's dma-check lines and Xen's DMAR fault lines. Logs:
    /// target/boot/iommu/.
    Iommu(Timeout),
    /// Many small guests on one gpu-dom under Xen 4.17 in QEMU (default 64).
    ///
    /// dom0 attaches N test guests (mode scale, a 64th of every pool each,
    /// --guest-memory MiB of RAM) one after the other; each maps 256 pages,
    /// reads back a sample and times 32 round trips on its own clock. Prints
    /// attach-to-Connected time and round trip by number of guests, the
    /// guest memory made GPU-reachable at once, gpu-dom's pools and the
    /// limit that stops one guest more, gpu-dom's heap. Logs and figures:
    /// target/boot/scale/.
    Scale(crate::commands::scale::ScaleArgs),
    /// Runs the cargo-fuzz targets for a bounded time or number of runs.
    ///
    /// Each target (or only --target NAME) on the stable toolchain for N
    /// seconds (--seconds, default 60) or N executions (--runs; with both,
    /// whichever comes first); installs cargo-fuzz if missing. The corpus is
    /// kept: each run starts from target/fuzz/corpus/<target> and the seeds
    /// in fuzz/corpus/<target> (read, never written) and adds what it finds
    /// to target/fuzz/corpus/<target> (remove it to start over). Prints, and
    /// writes to target/fuzz/last-run.txt, executions, time, execs/s,
    /// coverage and corpus size per target. Crashes land in
    /// target/fuzz/artifacts/<target>/. CI runs every target for 20 s.
    Fuzz(FuzzArgs),
    /// Instruction counts per entry under callgrind, each against its bar.
    ///
    /// Counts the instructions of one 512-entry batch (decode -> validate ->
    /// grant map with a no-op mapper -> shadow write) into existing tables
    /// and into a fresh region, of its unmap, and of revoking a guest;
    /// prints instructions per entry (also in target/bench/) and fails over
    /// a bar. --criterion also runs the criterion benchmark (`cargo bench -p
    /// backend`) for wall time. --xen instead times batches under Xen in
    /// QEMU (see `bench_xen`): per-entry costs of GGTT and PPGTT batches of
    /// 1 to 2048 entries, cold and warm, unmap, detach, an empty request's
    /// round trip, and gpu-dom's grant hypercalls per 512-entry batch.
    /// Logs: target/boot/bench-xen/.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct BootArgs {
    /// Run only this stage (default: both).
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub stage: Option<u8>,
    /// Boot this PVH ELF instead of building gpu-dom.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Per-stage QEMU timeout (default: 120 s for stage 1, 300 s for stage 2).
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub timeout: Option<Duration>,
}

impl BootArgs {
    pub fn options(&self) -> Options {
        let stages = match self.stage {
            Some(1) => vec![Stage::One],
            Some(_) => vec![Stage::Two],
            None => vec![Stage::One, Stage::Two],
        };
        Options { stages, image: self.image.clone(), timeout: self.timeout }
    }
}

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// Stop each target after this many seconds (default 60 unless --runs).
    #[arg(long, value_name = "N")]
    pub seconds: Option<u64>,
    /// Stop each target after this many executions.
    #[arg(long, value_name = "N")]
    pub runs: Option<u64>,
    /// Only this target.
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(FUZZ_TARGETS))]
    pub target: Option<String>,
}

impl FuzzArgs {
    pub fn run(&self) -> FuzzRun {
        let seconds = match (self.seconds, self.runs) {
            (None, None) => Some(60),
            (s, _) => s,
        };
        FuzzRun { seconds, runs: self.runs, target: self.target.clone() }
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Also run the criterion benchmark (wall time).
    #[arg(long)]
    pub criterion: bool,
    /// Time batches under Xen in QEMU instead (QEMU TCG times, not hardware).
    #[arg(long, conflicts_with = "criterion")]
    pub xen: bool,
    #[command(flatten)]
    pub timeout: Timeout,
}

fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<u64>().map(Duration::from_secs).map_err(|_| format!("takes whole seconds, got `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(s: &str) -> Result<Cmd, clap::Error> {
        let args = std::iter::once("xtask").chain(s.split_whitespace());
        Cli::try_parse_from(args).map(|c| c.cmd)
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn boot_defaults_to_both_stages() {
        let Cmd::Boot(b) = parse("boot").unwrap() else { panic!() };
        let o = b.options();
        assert_eq!(o.stages, [Stage::One, Stage::Two]);
        assert!(o.image.is_none() && o.timeout.is_none());
    }

    #[test]
    fn boot_flags_select_stage_image_and_timeout() {
        let Cmd::Boot(b) = parse("boot --stage 2 --image /tmp/k --timeout 60").unwrap() else {
            panic!()
        };
        let o = b.options();
        assert_eq!(o.stages, [Stage::Two]);
        assert_eq!(o.image.unwrap().to_str(), Some("/tmp/k"));
        assert_eq!(o.timeout, Some(Duration::from_secs(60)));
    }

    #[test]
    fn fuzz_runs_60_s_unless_told_and_takes_a_run_count_and_one_target() {
        let Cmd::Fuzz(f) = parse("fuzz").unwrap() else { panic!() };
        let r = f.run();
        assert_eq!((r.seconds, r.runs, r.target), (Some(60), None, None));
        let Cmd::Fuzz(f) = parse("fuzz --runs 1000000 --target service_xenstore").unwrap() else {
            panic!()
        };
        let r = f.run();
        assert_eq!((r.seconds, r.runs), (None, Some(1_000_000)));
        assert_eq!(r.target.as_deref(), Some("service_xenstore"));
        let Cmd::Fuzz(f) = parse("fuzz --seconds 5 --runs 9").unwrap() else { panic!() };
        let r = f.run();
        assert_eq!((r.seconds, r.runs), (Some(5), Some(9)));
    }

    #[test]
    fn commands_with_a_timeout_take_it_in_seconds() {
        for c in ["e2e", "linux-guest", "restart", "net", "iommu"] {
            let cmd = parse(&format!("{c} --timeout 90")).unwrap();
            let t = match cmd {
                Cmd::E2e(t)
                | Cmd::LinuxGuest(t)
                | Cmd::Restart(t)
                | Cmd::Net(t)
                | Cmd::Iommu(t) => t,
                other => panic!("{c}: {other:?}"),
            };
            assert_eq!(t.timeout, Some(Duration::from_secs(90)), "{c}");
        }
    }

    #[test]
    fn bad_arguments_are_refused_with_what_was_wrong() {
        for (a, want) in [
            ("boot --stage 3", "--stage"),
            ("boot --stage", "--stage"),
            ("boot --fast", "--fast"),
            ("frob", "frob"),
            ("build x", "'x'"),
            ("boot --timeout soon", "whole seconds"),
            ("fuzz --target nope", "ring_decode"),
            ("fuzz --runs lots", "--runs"),
            ("fuzz --seconds", "--seconds"),
            ("fuzz --jobs 2", "--jobs"),
        ] {
            let e = parse(a).err().unwrap_or_else(|| panic!("{a} was accepted"));
            assert!(e.to_string().contains(want), "{a}: {e}");
        }
    }
}
