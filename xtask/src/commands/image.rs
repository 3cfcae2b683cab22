//! `cargo xtask build`: the gpu-dom PVH image for `x86_64-unknown-none`, checked
//! for the Xen PVH entry note, plus a 32-bit ELF copy for HVM domUs (libxl's
//! direct kernel boot of an HVM guest loads 32-bit ELF kernels only).

use crate::error::{Error, Result};
use crate::formats::elf::{Class, Elf, EM_386, EM_X86_64};
use crate::harness::host;
use crate::paths::Paths;
use crate::progress::Progress;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const TARGET: &str = "x86_64-unknown-none";
pub const PACKAGE: &str = "gpu-dom";

/// The built image.
#[derive(Debug, Clone)]
pub struct Image {
    pub elf: PathBuf,
    pub elf32: PathBuf,
    pub size: u64,
    pub pvh_entry: u64,
}

/// Adds the bare-metal target when rustup lacks it; true if it was added.
pub fn ensure_target(log: &Path) -> Result<bool> {
    if host::which("rustup").is_none() {
        // A toolchain without rustup: trust it and let cargo say what is missing.
        return Ok(false);
    }
    let installed = host::capture(
        Command::new("rustup").args(["target", "list", "--installed"]),
        Duration::from_secs(60),
    )?;
    if !installed.status.success() {
        return Err(Error::CommandFailed {
            command: "rustup target list --installed".into(),
            status: format!("{}: {}", installed.status, installed.stderr.trim()),
            log: None,
        });
    }
    if installed.stdout.lines().any(|l| l.trim() == TARGET) {
        return Ok(false);
    }
    host::run_logged(
        Command::new("rustup").args(["target", "add", TARGET]),
        log,
        Duration::from_secs(600),
    )?;
    Ok(true)
}

/// `cargo build --release --target x86_64-unknown-none -p gpu-dom` into the
/// workspace's `target/`. With `log`, cargo's output goes there, else to the terminal.
pub fn cargo_build(paths: &Paths, log: Option<&Path>) -> Result<PathBuf> {
    cargo_build_package(paths, PACKAGE, Some(TARGET), log)
}

/// `cargo build --release [--target T] -p <package>` into the workspace's
/// `target/`; returns the path of the package's binary of the same name.
pub fn cargo_build_package(
    paths: &Paths,
    package: &str,
    target: Option<&str>,
    log: Option<&Path>,
) -> Result<PathBuf> {
    cargo_build_with(paths, package, package, &[], target, log)
}

/// Like [`cargo_build_package`], with extra cargo arguments (features, a
/// `--bin`), for binary `bin` of `package`.
pub fn cargo_build_with(
    paths: &Paths,
    package: &str,
    bin: &str,
    extra: &[&str],
    target: Option<&str>,
    log: Option<&Path>,
) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&paths.root).args(["build", "--release", "-p", package]).args(extra);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    cmd.arg("--target-dir").arg(&paths.target);
    let timeout = Duration::from_secs(1800);
    match log {
        Some(log) => host::run_logged(&mut cmd, log, timeout)?,
        None => host::run_visible(&mut cmd, timeout)?,
    }
    let dir = match target {
        Some(t) => paths.target.join(t),
        None => paths.target.clone(),
    };
    Ok(dir.join("release").join(bin))
}

/// The PVH entry address of the ELF64 x86-64 image at `path`.
pub fn check_pvh(path: &Path) -> Result<u64> {
    let bytes = host::read(path)?;
    let not = |reason: String| Error::NotPvhImage { path: path.into(), reason };
    let elf = Elf::parse(&bytes).map_err(|e| not(e.to_string()))?;
    if elf.class() != Class::Elf64 || elf.machine() != EM_X86_64 {
        return Err(not(format!(
            "expected an ELF64 x86-64 file, found {:?} machine {}",
            elf.class(),
            elf.machine()
        )));
    }
    match elf.pvh_entry().map_err(|e| not(e.to_string()))? {
        Some(entry) => Ok(entry),
        None => Err(not("no XEN_ELFNOTE_PHYS32_ENTRY note in a PT_NOTE segment".into())),
    }
}

/// `objcopy -O elf32-i386 <elf> <elf>.elf32`, checked to be an ELF32 i386 file.
pub fn make_elf32(elf: &Path, log: &Path) -> Result<PathBuf> {
    let out = elf.with_file_name(format!("{PACKAGE}.elf32"));
    let mut cmd = Command::new(host::OBJCOPY.program);
    cmd.args(["-O", "elf32-i386"]).arg(elf).arg(&out);
    host::run_logged(&mut cmd, log, Duration::from_secs(120))?;
    let bytes = host::read(&out)?;
    let e = Elf::parse(&bytes).map_err(|source| Error::Elf { path: out.clone(), source })?;
    if e.class() != Class::Elf32 || e.machine() != EM_386 {
        return Err(Error::NotPvhImage {
            path: out,
            reason: "objcopy did not produce an ELF32 i386 file".into(),
        });
    }
    Ok(out)
}

/// The build as numbered steps of `p`. `quiet` sends cargo's output to a log.
pub fn build(paths: &Paths, p: &mut Progress, quiet: bool) -> Result<Image> {
    let log = paths.boot_logs().join("build.log");
    let _ = std::fs::remove_file(&log); // one run per log
    p.step(
        format!("host tools for the image ({}, rustup target {TARGET})", host::OBJCOPY.program),
        |p| {
            let installed = host::ensure_tools(&[host::OBJCOPY], &paths.cache.log("host-tools"))?;
            if !installed.is_empty() {
                p.note(format!("installed {}", installed.join(" ")));
            }
            if ensure_target(&log)? {
                p.note(format!("added rustup target {TARGET}"));
            }
            Ok(())
        },
    )?;
    let elf = p.step(format!("cargo build --release --target {TARGET} -p {PACKAGE}"), |p| {
        if !quiet {
            p.note("cargo's output follows");
        }
        cargo_build(paths, quiet.then_some(log.as_path()))
    })?;
    let pvh_entry = p.step("checking the PVH entry note", |_| check_pvh(&elf))?;
    let elf32 =
        p.step("objcopy -O elf32-i386 (32-bit copy for HVM domUs)", |_| make_elf32(&elf, &log))?;
    let size = std::fs::metadata(&elf).map_err(|e| Error::io("reading", &elf, e))?.len();
    Ok(Image { elf, elf32, size, pvh_entry })
}

/// An image built elsewhere (`--image`): checked, with a 32-bit copy if it can be made.
pub fn external(path: &Path) -> Result<Image> {
    let pvh_entry = check_pvh(path)?;
    let size = std::fs::metadata(path).map_err(|e| Error::io("reading", path, e))?.len();
    Ok(Image { elf: path.into(), elf32: PathBuf::new(), size, pvh_entry })
}
