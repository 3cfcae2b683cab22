//! `cargo xtask`: build the gpu-dom image and boot it under Xen in QEMU.
//!
//! Everything the xtask fetches or writes lives under the workspace's
//! `target/`: `target/xen-cache/` (Debian packages by version, unpacked, logs)
//! and `target/boot/` (one directory per boot stage: serial log, QEMU output,
//! QEMU command line; the dom0 init script and initramfs of stage 2).

mod cli;
mod commands;
mod debian;
mod error;
mod formats;
mod harness;
mod paths;
mod progress;
#[cfg(test)]
mod testdir;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Cmd};
use commands::boot::{self, Options, Stage};
use commands::{bench_xen, checks, e2e, image, iommu, linux_guest, net, restart, scale};
use error::Result;
use paths::Paths;
use progress::Progress;

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
    bench_xen::run(paths, None)?;
    linux_guest::run(paths, None)?;
    restart::run(paths, None)?;
    net::run(paths, None)?;
    iommu::run(paths, None)?;
    scale::run(paths, &scale::ScaleArgs::ci())?;
    println!("[test] all passed in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    let Cli { cmd } = Cli::parse();
    let paths = Paths::workspace();
    let result = match cmd {
        Cmd::Build => build(&paths),
        Cmd::Boot(args) => boot::run(&paths, &args.options()),
        Cmd::Demo => boot::run(&paths, &all_stages())
            .and_then(|()| e2e::run(&paths, None))
            .and_then(|()| iommu::run(&paths, None)),
        Cmd::Test => test(&paths),
        Cmd::E2e(t) => e2e::run(&paths, t.timeout),
        Cmd::Restart(t) => restart::run(&paths, t.timeout),
        Cmd::LinuxGuest(t) => linux_guest::run(&paths, t.timeout),
        Cmd::Iommu(t) => iommu::run(&paths, t.timeout),
        Cmd::Net(t) => net::run(&paths, t.timeout),
        Cmd::Scale(args) => scale::run(&paths, &args).map(|_| ()),
        Cmd::Fuzz(args) => checks::fuzz_run(&paths, &args.run()).map(|_| ()),
        Cmd::Bench(args) if args.xen => bench_xen::run(&paths, args.timeout.timeout),
        Cmd::Bench(args) => checks::bench(&paths, args.criterion).map(|_| ()),
    };
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
