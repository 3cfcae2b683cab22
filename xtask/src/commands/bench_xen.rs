//! `cargo xtask bench --xen`: what a batch costs under Xen, in QEMU.
//!
//! The e2e system (Linux PV dom0, gpu-dom) and one test guest in `mode=bench`
//! (`frontend::scenario::bench`), attached with room for 2048-entry batches.
//! The guest times, on its own clock (Xen system time), the round trip of an
//! empty request, GGTT and PPGTT map batches of 1, 8, 64, 512 and 2048
//! entries with fresh grants (cold) and with grants already mapped (warm),
//! their unmap, and its own detach while holding 4096 entries. Around each
//! 512-entry batch it stops at a mark (`data/bench-mark`); dom0 reads gpu-dom's
//! own grant hypercall counters (`data/vgpu-hypercalls`) there and prints
//! `E2E: hypercalls kind=<kind> batch=512 map=<n> unmap=<n>`.
//!
//! The xtask then reads the guest's lines and dom0's from the serial log
//! (`formats::bench_lines`) and prints the tables: times per request and per
//! entry, the ratio batch 1 / batch 512 per kind (what batching saves over a
//! protocol that pays one round trip, one trap, per PTE), the floor, detach,
//! and the hypercalls per 512-entry batch. It fails, naming them, when lines
//! are missing. The times are QEMU TCG times on a shared host, not hardware
//! times: compare them with each other, not with a real machine.

use std::time::Duration;

use crate::commands::boot::{self, DOMAIN};
use crate::error::{Error, Result};
use crate::formats::bench_lines::{self, COUNTED, KINDS};
use crate::formats::initramfs::Source;
use crate::formats::xlcfg;
use crate::harness::dom0_run::{self, Dom0Run};
use crate::harness::guests::{self, GUEST_IMAGE_IN_DOM0, GUEST_XL_CONFIG, VGPU_IN_DOM0};
use crate::harness::scenario::{self, file, part, Part, Scenario};
use crate::harness::system;
use crate::paths::Paths;
use crate::progress::Progress;

/// The bench guest: its name and command line.
pub const GUEST: (&str, &str) = ("bench", "mode=bench");
/// Pages the bench guest may have mapped at once: 2048 for the largest
/// batch, plus its ring and directory pages.
pub const MAX_PAGES: u32 = 2304;
/// The bench guest's memory (MiB): 2048 granted pages are 8 MiB.
pub const GUEST_MEMORY_MIB: u64 = 64;
/// What the table is, said wherever it is printed.
pub const CAVEAT: &str = "QEMU TCG times on a shared, loaded host (software emulation, not \
     hardware): compare the rows with each other, not with a real machine";

pub fn run(paths: &Paths, timeout: Option<Duration>) -> Result<()> {
    let mut p = Progress::new("bench-xen", 12);
    let sys = system::prepare(paths, &mut p, None, true)?;
    let (guest, vgpu) = guests::build_guest_and_vgpu(paths, &mut p)?;
    let gpu_cfg =
        xlcfg::with_string(&boot::dom0_xl_config(paths)?, "cmdline", &guests::gpu_dom_cmdline());
    let template_path = paths.root.join(GUEST_XL_CONFIG);
    let template = std::fs::read_to_string(&template_path)
        .map_err(|e| Error::io("reading", &template_path, e))?;
    let cfg = guests::guest_config(&template, GUEST.0, GUEST.1)
        .map_err(|reason| Error::XlConfig { path: template_path.clone(), reason })?;
    let cfg = xlcfg::with_number(&cfg, "memory", GUEST_MEMORY_MIB);
    let files = vec![
        file(boot::IMAGE_IN_DOM0, Source::Host(sys.image.elf.clone()), 0o644),
        file(&scenario::xl_cfg_path(DOMAIN), Source::Bytes(gpu_cfg.into_bytes()), 0o644),
        file(GUEST_IMAGE_IN_DOM0, Source::Host(guest), 0o644),
        file(VGPU_IN_DOM0, Source::Host(vgpu), 0o755),
        file(&scenario::xl_cfg_path(GUEST.0), Source::Bytes(cfg.into_bytes()), 0o644),
    ];
    let scenario = Scenario {
        name: "bench-xen".into(),
        files,
        parts: vec![
            scenario::domain_up(DOMAIN, 30, &["gpu-dom: backend ready"]),
            bench_part(GUEST.0, 600),
        ],
        timeout: Duration::from_secs(1500),
    };
    let run = Dom0Run {
        dir: "bench-xen",
        label: "bench --xen",
        what: "Linux PV dom0, gpu-dom and a bench guest".into(),
        rerun: "cargo xtask bench --xen",
        scenario: &scenario,
        timeout,
        devices: Vec::new(),
    };
    let r = dom0_run::run_dom0(paths, &mut p, &sys, &run);
    println!("[bench-xen] wall time per step:\n{}", p.summary());
    r?;
    let serial_path = paths.stage("bench-xen").join("serial.log");
    let serial =
        std::fs::read_to_string(&serial_path).map_err(|e| Error::io("reading", &serial_path, e))?;
    let figures =
        bench_lines::parse(&serial).map_err(|reason| bench_error(&serial_path, reason))?;
    let missing = figures.missing();
    if !missing.is_empty() {
        let reason = format!("the serial log lacks {}", missing.join(", "));
        return Err(bench_error(&serial_path, reason));
    }
    println!("[bench-xen] {CAVEAT}.\n");
    println!("{}", figures.table());
    Ok(())
}

fn bench_error(log: &std::path::Path, reason: String) -> Error {
    Error::Boot {
        stage: "bench --xen".into(),
        reason,
        log: log.to_path_buf(),
        hint: "the bench guest's lines are in its console, copied into the serial log as \
               `[bench] TESTGUEST ...`; rerun with `cargo xtask bench --xen`"
            .into(),
    }
}

/// Marks a bench guest stops at: an end per counted kind, and a begin per
/// table (GGTT, PPGTT) before its first counted batch.
pub const MARKS: usize = KINDS.len() + 2;

/// Shell helpers for a bench guest (busybox ash, on the scenario prelude).
pub const HELPERS: &str = r#"GD=$GPU_DOM_DOMID
# hc_read: gpu-dom's "<map> <unmap>" grant hypercall counters, once two reads
# 0.5 s apart agree (gpu-dom writes them at most every 100 ms).
hc_read() {
    hr_a=$(xenstore-read /local/domain/$GD/data/vgpu-hypercalls 2>/dev/null)
    for hr_i in 1 2 3 4 5 6 7 8 9 10; do
        sleep 0.5
        hr_b=$(xenstore-read /local/domain/$GD/data/vgpu-hypercalls 2>/dev/null)
        [ "$hr_a" = "$hr_b" ] && break
        hr_a=$hr_b
    done
    [ -n "$hr_a" ] || fail "gpu-dom has no data/vgpu-hypercalls"
    echo "$hr_a"
}
bench_over() { console_has "$1" "bench PASS" || console_has "$1" "bench FAIL"; }
# bench_marks NAME DOMID COUNT SECS: acknowledges the bench guest's COUNT
# marks (data/bench-mark = "<k> <kind> begin|end"), each within SECS, and
# prints gpu-dom's hypercalls since the mark before, at each end. Polls once a
# second (each poll forks in dom0, which slows everyone under TCG).
bm_ready() { xs_starts /local/domain/$bm_dom/data/bench-mark "$bm_k " || bench_over "$bm_name"; }
bench_marks() {
    bm_name=$1; bm_dom=$2; bm_k=1
    while [ $bm_k -le $3 ]; do
        wait_1s $4 bm_ready || fail "$1: no bench mark $bm_k within $4 s"
        xs_starts /local/domain/$2/data/bench-mark "$bm_k " || fail "$1: $(grep -o 'bench FAIL.*' "$CONSOLE_DIR/guest-$1.log")"
        bm_what=$(xenstore-read /local/domain/$2/data/bench-mark | cut -d' ' -f2-)
        bm_hc=$(hc_read)
        case "$bm_what" in
            *" end") e2e "hypercalls kind=${bm_what% end} batch=__COUNTED__ map=$(( ${bm_hc% *} - ${bm_begin% *} )) unmap=$(( ${bm_hc#* } - ${bm_begin#* } ))" ;;
        esac
        bm_begin=$bm_hc
        xenstore-write /local/domain/$2/data/bench-ack $bm_k
        bm_k=$(( bm_k + 1 ))
    done
}
"#;

/// Creates the bench guest `name`, attaches it with room for its batches,
/// acknowledges its marks and waits for its verdict (each wait within `secs`).
pub fn bench_part(name: &str, secs: u32) -> Part {
    let helpers = HELPERS.replace("__COUNTED__", &COUNTED.to_string());
    part(
        &format!("bench guest {name}: batches timed, hypercalls counted"),
        format!(
            r#"{helpers}guest_create {name} GBX
vgpu_run attach {name} --backend gpu-dom --max-pages {MAX_PAGES} || fail "vgpu attach {name} failed (output above)"
b_t0=$(now_ms)
xl unpause {name}
bench_marks {name} $GBX {MARKS} {secs}
wait_1s {secs} bench_over {name} || fail "{name}: no bench verdict within {secs} s"
console_has {name} "bench PASS" || fail "{name}: $(grep -o 'bench FAIL.*' "$CONSOLE_DIR/guest-{name}.log")"
e2e "{name}: bench done in $(( $(now_ms) - b_t0 )) ms (QEMU TCG, not hardware)"
xl destroy {name}
vgpu_run detach $GBX --backend gpu-dom --force || fail "vgpu detach of {name} failed (output above)"
"#
        ),
        &[&format!("E2E: hypercalls kind={} batch={COUNTED}", KINDS[0]), "bench PASS"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_part_acknowledges_every_mark_and_every_wait_is_bounded() {
        let p = bench_part("bench", 600);
        assert!(p.script.contains(&format!("bench_marks bench $GBX {MARKS} 600")));
        assert!(p.script.contains(&format!("--max-pages {MAX_PAGES}")));
        assert!(p.script.contains("batch=512 map="), "the counted size is filled in");
        for l in p.script.lines().filter(|l| l.contains("wait_")) {
            assert!(l.contains("|| "), "an unbounded or unchecked wait: {l}");
        }
    }
}
