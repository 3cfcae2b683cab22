//! `cargo xtask scale [--guests N] [--guest-memory MIB]`: many small guests
//! on one gpu-dom, under Xen in QEMU.
//!
//! Debian's Linux as PV dom0 (the e2e system) creates gpu-dom (with debug
//! readback), then, one guest after the other, N test guests in mode
//! `scale` (`frontend::scenario::run_scale`), each with a 64th of every
//! pool of gpu-dom ([`LIMITS`]: 256 pages = 1 MiB GPU-reachable) and
//! `--guest-memory` MiB of RAM. For guest k, dom0 times `vgpu attach` to
//! Connected (k guests served then), and the `vgpu attach` command alone
//! (`vgpu_ms`); the guest times its handshake, maps
//! its 256 pages in one request, reads back a sample of them through
//! gpu-dom, times 32 round trips of a small request on its own clock, and
//! prints one `scale result` line, which dom0 copies as
//! `E2E: scale k=<k> dom=<id> attach_ms=<ms> vgpu_ms=<ms> ...`. Guest k+1 is attached
//! only after guest k reported, so each guest's figures are taken with k-1
//! other guests connected and idle, their pages still mapped.
//!
//! Then dom0 prints gpu-dom's pools (`data/vgpu-pool/*`), tries to attach
//! one guest more with the same limits (Domain-0's device: refused with
//! "does not fit" and the pool's name once a pool is full), checks that
//! every guest is still Connected, and shuts gpu-dom down with all of them
//! attached. The figures ([`super::scale_figures`]) come from the serial
//! log: attach time and round trip by number of guests, memory made
//! GPU-reachable at once, the limit that stopped the next guest, gpu-dom's
//! heap. A missing guest line, a mismatch, or a missing marker fails the run.

use std::time::Duration;

use clap::Args;

use crate::commands::boot::{self, DOMAIN};
use crate::commands::scale_figures::{self, Figures};
use crate::error::{Error, Result};
use crate::formats::initramfs::Source;
use crate::formats::xlcfg;
use crate::harness::dom0_run::{self, Dom0Run};
use crate::harness::guests::{self, GUEST_IMAGE_IN_DOM0, GUEST_XL_CONFIG, VGPU_IN_DOM0};
use crate::harness::host;
use crate::harness::scenario::{self, file, part, Part, Scenario};
use crate::harness::system;
use crate::paths::Paths;
use crate::progress::Progress;

/// Guests by default: as many as gpu-dom serves (`backend::service::MAX_DEVICES`).
pub const DEFAULT_GUESTS: u32 = backend::service::MAX_DEVICES as u32;
/// Guests `cargo xtask test` runs: all of them. On the idle 2-core machine
/// the 64-guest QEMU run takes about 4.5 min of a `.ci/run` of about 20
/// (see the README, "Capacity and memory").
pub const CI_GUESTS: u32 = DEFAULT_GUESTS;
/// Bound on CI's scale run: 6 times the 254 s its QEMU run took on the idle
/// machine, so that a run that went wrong leaves CI's 90 minutes room (the
/// default bound, a minute per guest, was measured on a loaded host).
pub const CI_TIMEOUT: Duration = Duration::from_secs(1500);
/// Each guest's RAM by default, MiB: the smallest that worked (see the README).
pub const DEFAULT_GUEST_MEMORY_MIB: u32 = 8;

/// Each guest's limits, as `vgpu attach` options: a 64th of every pool of a
/// default gpu-dom (`src/vgpu.rs`), so 64 guests fill them all.
pub const LIMITS: &str = "--ggtt-entries 1024 --contexts 1 --max-pages 256 --max-table-pages 16";
/// Pages each guest maps (its whole `--max-pages`), entries it reads back,
/// round trips it times.
pub const PAGES: u32 = 256;
pub const VERIFY: u32 = 32;
pub const ROUNDS: u32 = 32;

/// `cargo xtask scale`'s options.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Test guests to attach, one after the other (1 to 64).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_GUESTS,
          value_parser = clap::value_parser!(u32).range(1..=DEFAULT_GUESTS as i64))]
    pub guests: u32,
    /// RAM of each test guest, MiB.
    #[arg(long = "guest-memory", value_name = "MIB", default_value_t = DEFAULT_GUEST_MEMORY_MIB,
          value_parser = clap::value_parser!(u32).range(2..=64))]
    pub guest_memory: u32,
    /// Bound on the whole QEMU run, seconds (default: 300 + 60 per guest).
    #[arg(long, value_name = "SECS", value_parser = |s: &str| s.parse::<u64>().map(Duration::from_secs).map_err(|_| format!("takes whole seconds, got `{s}`")))]
    pub timeout: Option<Duration>,
}

impl ScaleArgs {
    /// What `cargo xtask test` runs: [`CI_GUESTS`] guests, bounded by
    /// [`CI_TIMEOUT`], the defaults otherwise.
    pub fn ci() -> ScaleArgs {
        ScaleArgs {
            guests: CI_GUESTS,
            guest_memory: DEFAULT_GUEST_MEMORY_MIB,
            timeout: Some(CI_TIMEOUT),
        }
    }
}

pub fn run(paths: &Paths, args: &ScaleArgs) -> Result<Figures> {
    let mut p = Progress::new("scale", 12);
    let sys = system::prepare(paths, &mut p, None, true)?;
    let (guest, vgpu) = guests::build_guest_and_vgpu(paths, &mut p)?;
    let gpu_cfg =
        xlcfg::with_string(&boot::dom0_xl_config(paths)?, "cmdline", &guests::gpu_dom_cmdline());
    let template_path = paths.root.join(GUEST_XL_CONFIG);
    let template = std::fs::read_to_string(&template_path)
        .map_err(|e| Error::io("reading", &template_path, e))?;
    let cfg = guest_template(&template, args.guest_memory)
        .map_err(|reason| Error::XlConfig { path: template_path.clone(), reason })?;
    let files = vec![
        file(boot::IMAGE_IN_DOM0, Source::Host(sys.image.elf.clone()), 0o644),
        file(&scenario::xl_cfg_path(DOMAIN), Source::Bytes(gpu_cfg.into_bytes()), 0o644),
        file(GUEST_IMAGE_IN_DOM0, Source::Host(guest), 0o644),
        file(VGPU_IN_DOM0, Source::Host(vgpu), 0o755),
        file(GUEST_CFG_IN_DOM0, Source::Bytes(cfg.into_bytes()), 0o644),
    ];
    let mut scenario = scale_scenario(args.guests);
    scenario.files = files;
    let run = Dom0Run {
        dir: "scale",
        label: "scale",
        what: format!(
            "Linux PV dom0, gpu-dom and {} test guests of {} MiB",
            args.guests, args.guest_memory
        ),
        rerun: "cargo xtask scale",
        scenario: &scenario,
        timeout: args.timeout,
        devices: Vec::new(),
    };
    dom0_run::run_dom0(paths, &mut p, &sys, &run)?;
    let serial_path = paths.stage("scale").join("serial.log");
    let serial =
        std::fs::read_to_string(&serial_path).map_err(|e| Error::io("reading", &serial_path, e))?;
    let figures = scale_figures::parse(&serial, args.guests).map_err(|reason| Error::Boot {
        stage: "scale".into(),
        reason,
        log: serial_path.clone(),
        hint: "the per-guest lines are `E2E: scale k=...` in the serial log; rerun with \
               `cargo xtask scale`"
            .into(),
    })?;
    let report = scale_figures::report(&figures, args.guest_memory);
    let out = paths.stage("scale").join("figures.md");
    host::write(&out, &report)?;
    println!("{report}");
    println!("[scale] figures written to {}", paths.show(&out));
    println!("[scale] wall time per step:\n{}", p.summary());
    Ok(figures)
}

/// Where the guests' common xl config lands in dom0 (each guest's name and
/// command line are given on `xl create`'s command line).
const GUEST_CFG_IN_DOM0: &str = "/etc/xen/scale-guest.cfg";

/// The test guest's config for a scale guest: the image, `memory`.
fn guest_template(template: &str, memory_mib: u32) -> std::result::Result<String, String> {
    let cfg = guests::guest_config(
        template,
        "scale",
        &format!("mode=scale pages={PAGES} verify={VERIFY} rounds={ROUNDS}"),
    )?;
    Ok(xlcfg::with_number(&cfg, "memory", memory_mib as u64))
}

/// Seconds a guest may take from `vgpu attach` to Connected, and to its result.
const CONNECT_S: u32 = 120;
const RESULT_S: u32 = 180;

/// The scale scenario for `n` guests (see the module documentation).
pub fn scale_scenario(n: u32) -> Scenario {
    let parts = vec![
        scenario::domain_up(
            DOMAIN,
            60,
            &["gpu-dom: xenstore name=gpu-dom domid={domid}", "gpu-dom: backend ready"],
        ),
        guests_one_after_the_other(n),
        pools_and_the_next_guest(n),
        shutdown_with_every_guest_attached(n),
    ];
    // About a minute per guest was measured on a loaded 2-core host.
    let timeout = Duration::from_secs(300 + 60 * n as u64);
    Scenario { name: "scale".into(), files: Vec::new(), parts, timeout }
}

/// Guest k is created, attached, timed to Connected, and waited for (step 1).
fn guests_one_after_the_other(n: u32) -> Part {
    let script = format!(
        r#"GD=$GPU_DOM_DOMID
# scale_verdict NAME: the guest's console shows its verdict.
scale_verdict() {{ grep -q -E "scale (PASS|FAIL)" "$CONSOLE_DIR/guest-$1.log" 2>/dev/null; }}
k=1
while [ $k -le {n} ]; do
    name=scale$k
    xl create -p {cfg} name=\"$name\" > /tmp/xl-create.log 2>&1 || {{ sed 's/^/[xl create] /' /tmp/xl-create.log; fail "xl create -p $name failed (output above)"; }}
    sid=$(xl domid $name) || fail "$name vanished right after xl create"
    a_t0=$(now_ms)
    vgpu attach $name --backend gpu-dom {LIMITS} > /tmp/vgpu.log 2>&1 || {{ sed 's/^/E2E: [vgpu] /' /tmp/vgpu.log; fail "vgpu attach $name failed (output above)"; }}
    v_ms=$(( $(now_ms) - a_t0 ))
    xl unpause $name
    wait_for {CONNECT_S} xs_is "$(be_dir $sid)/state" 4 || fail "$name (domid $sid): gpu-dom state '$(be_state $sid)', not Connected, {CONNECT_S} s after vgpu attach"
    a_ms=$(( $(now_ms) - a_t0 ))
    wait_for {RESULT_S} scale_verdict $name || fail "$name (domid $sid) gave no verdict within {RESULT_S} s of Connected (state '$(dom_state $name)')"
    console_has $name "scale FAIL" && fail "$name (domid $sid): $(grep -o 'scale FAIL.*' "$CONSOLE_DIR/guest-$name.log")"
    line=$(grep -o "scale result .*" "$CONSOLE_DIR/guest-$name.log" | head -n 1 | tr -d '\r')
    e2e "scale k=$k dom=$sid attach_ms=$a_ms vgpu_ms=$v_ms ${{line#scale result }}"
    k=$(( k + 1 ))
done
e2e "scale: {n} guests attached, each mapped and verified"
"#,
        cfg = GUEST_CFG_IN_DOM0,
    );
    part(
        "guests one after the other: attach, Connected (timed), map, verify, round trips",
        script,
        &[&format!("E2E: scale k={n} "), &format!("E2E: scale: {n} guests attached")],
    )
}

/// gpu-dom's pools, and whether one guest more fits (step 2).
fn pools_and_the_next_guest(n: u32) -> Part {
    let script = format!(
        r#"for p in {pools}; do
    d=/local/domain/$GD/data/vgpu-pool/$p
    e2e "scale pool name=$p capacity=$(xenstore-read $d/capacity) reserved=$(xenstore-read $d/reserved) used=$(xenstore-read $d/used)"
done
vgpu attach Domain-0 --backend gpu-dom {LIMITS} > /tmp/vgpu.log 2>&1; n_rc=$?
e2e "scale next guest: exit=$n_rc $(head -n 1 /tmp/vgpu.log)"
[ $n_rc = 0 ] && {{ vgpu detach Domain-0 --backend gpu-dom > /dev/null 2>&1 || fail "vgpu detach Domain-0 failed"; }}
k=1
while [ $k -le {n} ]; do
    sid=$(xl domid scale$k) || fail "scale$k is gone"
    xs_is "$(be_dir $sid)/state" 4 || fail "scale$k (domid $sid) is no longer Connected ('$(be_state $sid)')"
    k=$(( k + 1 ))
done
e2e "scale: all {n} guests still Connected"
"#,
        pools = gpuif::keys::POOLS.join(" "),
    );
    part(
        "gpu-dom's pools, one guest more, every guest still Connected",
        script,
        &["E2E: scale pool name=pages ", "E2E: scale next guest: exit=", "E2E: scale: all "],
    )
}

/// `xl shutdown` of gpu-dom with every guest attached (step 3).
fn shutdown_with_every_guest_attached(n: u32) -> Part {
    let script = format!(
        r#"s_t0=$(now_ms)
timeout 300 xl shutdown -w gpu-dom > /tmp/xl-shutdown.log 2>&1 || {{ sed 's/^/[xl shutdown] /' /tmp/xl-shutdown.log; fail "xl shutdown -w gpu-dom did not complete within 300 s"; }}
closed=$(grep -c "closed (backend shutting down)" "$CONSOLE_DIR/guest-gpu-dom.log")
[ "$closed" = {n} ] || fail "gpu-dom closed $closed devices on shutdown, not {n}"
e2e "scale shutdown: gpu-dom closed {n} devices and was gone in $(( $(now_ms) - s_t0 )) ms"
"#
    );
    part("xl shutdown gpu-dom with every guest attached", script, &["E2E: scale shutdown: "])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_guest_gets_the_scale_mode_the_image_and_its_memory() {
        let template = "name = \"test-guest\"\ntype = \"pvh\"\nkernel = \"target/x\"\ncmdline = \"mode=good\"\nmemory = 32\n";
        let cfg = guest_template(template, 8).unwrap();
        assert_eq!(xlcfg::get_string(&cfg, "kernel").as_deref(), Some(GUEST_IMAGE_IN_DOM0));
        assert_eq!(
            xlcfg::get_string(&cfg, "cmdline").as_deref(),
            Some("mode=scale pages=256 verify=32 rounds=32")
        );
        assert!(cfg.lines().any(|l| l.trim() == "memory = 8"), "{cfg}");
    }

    #[test]
    fn the_last_guest_and_the_pools_are_markers_so_a_short_run_fails() {
        let s = scale_scenario(5);
        let m = s.expected_markers();
        assert!(m.iter().any(|m| m == "E2E: scale k=5 "), "{m:?}");
        assert!(m.iter().any(|m| m == "E2E: scale pool name=pages "));
        assert!(m.iter().any(|m| m == "E2E: scale shutdown: "));
    }

    #[test]
    fn every_guest_takes_a_64th_of_each_pool_and_maps_all_its_pages() {
        let n = DEFAULT_GUESTS;
        assert_eq!(n, 64);
        assert!(LIMITS.contains(&format!("--max-pages {PAGES} ")));
        assert!(LIMITS.contains(&format!("--ggtt-entries {} ", 65536 / n)));
        assert!(LIMITS.ends_with(&format!("--max-table-pages {}", 1024 / n)));
        assert!(CI_GUESTS <= n && VERIFY <= PAGES);
    }
}
