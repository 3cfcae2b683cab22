//! The test system's parts from Debian 12: Xen 4.17, its toolstack and
//! libraries, busybox, the Debian kernel and its Xen modules; and the dom0
//! initramfs built from them.
//!
//! Facts this relies on: QEMU's `-kernel` needs Xen's multiboot ELF, so
//! `xen-4.17-amd64.gz` is gunzipped; `xl` needs `libgcc_s.so.1` at run time
//! (glibc's `pthread_cancel` dlopens it); Debian's kernel builds the Xen device
//! drivers dom0 needs as modules and ships no `modules.dep`.

use crate::debian::apt::{self, Deb, Package, Resolver};
use crate::debian::rootfs::{Assembled, Rootfs};
use crate::error::{Error, Result};
use crate::formats::initramfs::{Initramfs, Source};
use crate::harness::host;
use crate::harness::scenario::{Dom0, Scenario};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const XEN_HYPERVISOR: &str = "xen-hypervisor-4.17-amd64";
pub const XEN_UTILS: &str = "xen-utils-4.17";
pub const XEN_UTILS_COMMON: &str = "xen-utils-common";
/// `xenstore-read` and friends (a dependency of xen-utils-common).
pub const XENSTORE_UTILS: &str = "xenstore-utils";
pub const BUSYBOX: &str = "busybox-static";
pub const KERNEL_META: &str = "linux-image-amd64";

/// Where the toolstack's programs live, in the package and in the initramfs.
pub const XEN_BIN: &str = "usr/lib/xen-4.17/bin";
/// The dom0 programs that the init script runs.
pub const TOOLSTACK: &[&str] = &["xl", "xenstored", "xenconsoled", "xen-init-dom0"];
/// xenstore clients: one binary (`usr/bin/xenstore`) that acts on its name.
pub const XENSTORE_CLIENTS: &[&str] = &[
    "xenstore-read",
    "xenstore-write",
    "xenstore-ls",
    "xenstore-list",
    "xenstore-rm",
    "xenstore-exists",
    "xenstore-watch",
    "xenstore-chmod",
];
/// Loaded with dlopen, so no `DT_NEEDED` names it.
pub const DLOPENED: &[&str] = &["libgcc_s.so.1"];
/// Kernel drivers the toolstack needs (`/dev/xen/*`, `/proc/xen`,
/// pciback for `xl pci-assignable-add`, and netback for a domain's `vif`).
pub const XEN_MODULES: &[&str] = &[
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xenfs",
    "xen-pciback",
    "xen-netback",
];
/// Where every shared library goes in the initramfs.
pub const LIB_DIR: &str = "usr/lib/x86_64-linux-gnu";

/// The Debian package cache: `target/xen-cache`.
#[derive(Clone, Debug)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    pub fn debs(&self) -> PathBuf {
        self.root.join("debs")
    }
    pub fn unpacked(&self) -> PathBuf {
        self.root.join("unpacked")
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{name}.log"))
    }
}

/// Xen's device model for HVM domUs (`cargo xtask iommu`): QEMU, the
/// firmware libxl hands hvmloader (SeaBIOS), and QEMU's data files
/// (`pvh.bin` for direct PVH boot, `keymaps/en-us`, which QEMU loads even
/// with VNC off).
pub const QEMU_XEN: &str = "qemu-system-xen";
pub const SEABIOS: &str = "seabios";
pub const QEMU_DATA: &str = "qemu-system-data";
/// The packages an HVM domU with a device model needs in dom0.
pub const HVM_PACKAGES: &[&str] = &[QEMU_XEN, SEABIOS, QEMU_DATA];
/// Where libxl (Debian's build) looks for the device model.
pub const QEMU_XEN_BIN: &str = "usr/libexec/xen-qemu-system-i386";
/// hvmloader, in xen-utils-4.17.
pub const HVMLOADER: &str = "usr/lib/xen-4.17/boot/hvmloader";
/// SeaBIOS as libxl loads it.
pub const SEABIOS_BIN: &str = "usr/share/seabios/bios-256k.bin";
/// The QEMU data files an HVM domU booted with `kernel=` needs.
pub const QEMU_DATA_FILES: &[&str] =
    &["usr/share/qemu/pvh.bin", "usr/share/qemu/linuxboot_dma.bin", "usr/share/qemu/keymaps/en-us"];

/// The unpacked tree of package `name`.
pub fn package_tree<'a>(trees: &'a BTreeMap<String, Tree>, name: &str) -> Result<&'a Tree> {
    tree(trees, name)
}

/// The packages to fetch: Xen always; with `dom0`, everything stage 2 needs
/// plus `extra` packages (dom0 programs: their libraries too).
pub fn resolve(apt: &mut Resolver, dom0: bool, extra: &[&str]) -> Result<Vec<Package>> {
    if !dom0 {
        return apt.require(&[XEN_HYPERVISOR]);
    }
    let mut pkgs = apt.require(&[
        XEN_HYPERVISOR,
        XEN_UTILS,
        XEN_UTILS_COMMON,
        XENSTORE_UTILS,
        BUSYBOX,
        KERNEL_META,
    ])?;
    let meta = pkgs.pop().expect("require returns every name asked");
    let concrete = apt::concrete_kernel(&meta).ok_or_else(|| Error::PackageContent {
        package: KERNEL_META.into(),
        what: "depends on no linux-image-<version>-amd64 package".into(),
    })?;
    pkgs.extend(apt.require(&[concrete])?);
    if !extra.is_empty() {
        pkgs.extend(apt.require(extra)?);
    }
    let tools: Vec<Package> = pkgs
        .iter()
        .filter(|p| {
            [XEN_UTILS, XEN_UTILS_COMMON, XENSTORE_UTILS].contains(&p.name.as_str())
                || extra.contains(&p.name.as_str())
        })
        .cloned()
        .collect();
    pkgs.extend(apt::library_closure(&tools, |names| apt.find(names))?);
    Ok(pkgs)
}

/// What a cached package is a version of: its name, except that every kernel
/// image is one (a new kernel ABI is a new package name).
fn lineage(name: &str) -> &str {
    if apt::is_kernel_image(name) {
        "linux-image-<abi>"
    } else {
        name
    }
}

/// Removes cached versions of `debs`' packages other than the current ones
/// (and kernel images of another ABI). Packages of other runs stay (`boot`
/// fetches fewer than `iommu`).
pub fn prune(cache: &Cache, debs: &[Deb]) -> Result<usize> {
    let names: BTreeSet<&str> = debs.iter().map(|d| lineage(&d.package.name)).collect();
    let mut removed = 0;
    for (dir, current) in [
        (cache.debs(), debs.iter().map(|d| d.file.clone()).collect::<BTreeSet<_>>()),
        (cache.unpacked(), debs.iter().map(|d| d.stem().to_string()).collect()),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        let mut keep = BTreeSet::new();
        for e in entries.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            let name = f.split('_').next().unwrap_or("");
            if current.contains(&f) || !names.contains(lineage(name)) {
                keep.insert(f);
            }
        }
        removed += apt::prune(&dir, &keep)?;
    }
    Ok(removed)
}

/// An unpacked package.
#[derive(Clone, Debug)]
pub struct Tree {
    pub package: Package,
    pub dir: PathBuf,
}

/// Unpacks every package not unpacked yet; returns the trees and how many were new.
pub fn unpack_all(cache: &Cache, debs: &[Deb]) -> Result<(BTreeMap<String, Tree>, usize)> {
    let mut trees = BTreeMap::new();
    let mut new = 0;
    for d in debs {
        let dir = cache.unpacked().join(d.stem());
        if apt::unpack(&cache.debs().join(&d.file), &dir, &cache.log("unpack"))? {
            new += 1;
        }
        trees.insert(d.package.name.clone(), Tree { package: d.package.clone(), dir });
    }
    Ok((trees, new))
}

fn tree<'a>(trees: &'a BTreeMap<String, Tree>, name: &str) -> Result<&'a Tree> {
    trees
        .iter()
        .find(|(n, _)| n.as_str() == name || (name == KERNEL_META && n.starts_with("linux-image-")))
        .map(|(_, t)| t)
        .ok_or_else(|| Error::PackageContent {
            package: name.into(),
            what: "was not fetched".into(),
        })
}

fn only_entry(
    dir: &Path,
    pick: impl Fn(&str) -> bool,
    package: &str,
    what: &str,
) -> Result<PathBuf> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    let mut hits: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| pick(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    hits.sort();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        n => Err(Error::PackageContent {
            package: package.into(),
            what: format!("{n} {what} in {}", dir.display()),
        }),
    }
}

/// Xen as a multiboot ELF, gunzipped once next to the package's `.gz`.
pub fn xen_elf(trees: &BTreeMap<String, Tree>, cache: &Cache) -> Result<PathBuf> {
    let t = tree(trees, XEN_HYPERVISOR)?;
    let gz = only_entry(
        &t.dir.join("boot"),
        |n| n.starts_with("xen-") && n.ends_with(".gz"),
        XEN_HYPERVISOR,
        "xen-*.gz files",
    )?;
    let elf = gz.with_extension("elf");
    if elf.is_file() {
        return Ok(elf);
    }
    let partial = gz.with_extension("elf.partial");
    let out = File::create(&partial).map_err(|e| Error::io("creating", &partial, e))?;
    let log = cache.log("gunzip");
    host::mkdirs(log.parent().expect("log has a parent"))?;
    let err = File::create(&log).map_err(|e| Error::io("creating", &log, e))?;
    let mut cmd = Command::new(host::GZIP.program);
    cmd.arg("-dc").arg(&gz).stdin(Stdio::null()).stdout(out).stderr(err);
    let command = host::describe(&cmd);
    let mut child = cmd
        .spawn()
        .map_err(|source| Error::Spawn { program: host::GZIP.program.into(), source })?;
    match host::wait_bounded(&mut child, Duration::from_secs(120))
        .map_err(|e| Error::io("waiting for", "gzip", e))?
    {
        Some(s) if s.success() => {}
        Some(s) => {
            return Err(Error::CommandFailed { command, status: s.to_string(), log: Some(log) })
        }
        None => {
            return Err(Error::CommandTimeout {
                command,
                after: Duration::from_secs(120),
                log: Some(log),
            })
        }
    }
    fs::rename(&partial, &elf).map_err(|e| Error::io("renaming into", &elf, e))?;
    Ok(elf)
}

/// The dom0 kernel: its `vmlinuz` and release (`6.1.0-48-amd64`).
pub fn kernel(trees: &BTreeMap<String, Tree>) -> Result<(PathBuf, String)> {
    let t = tree(trees, KERNEL_META)?;
    let pkg = t.package.name.as_str();
    let modules = only_entry(&t.dir.join("lib/modules"), |_| true, pkg, "module directories")?;
    let release = modules.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let vmlinuz = t.dir.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        return Err(Error::PackageContent {
            package: pkg.into(),
            what: format!("no {}", vmlinuz.display()),
        });
    }
    Ok((vmlinuz, release))
}

/// Whether `path` is an ELF file that needs a dynamic loader.
fn is_dynamic_elf(path: &Path) -> Result<bool> {
    let bytes = host::read(path)?;
    let Ok(elf) = crate::formats::elf::Elf::parse(&bytes) else { return Ok(false) };
    let interp = elf.interpreter().map_err(|source| Error::Elf { path: path.into(), source })?;
    Ok(interp.is_some())
}

/// Builds the dom0 initramfs for `scenario` into `out`: the toolstack, the
/// scenario's files, the Xen modules and the scenario's `/init`.
pub fn assemble(
    trees: &BTreeMap<String, Tree>,
    release: &str,
    scenario: &Scenario,
    out: &Path,
) -> Result<Assembled> {
    let dirs =
        ["proc", "sys", "dev", "tmp", "run", "var/lib/xen", "var/log/xen", "root", "etc/xen"];
    let mut root = Rootfs::new(trees, &dirs)?;
    root.fs.symlink("var/run", "../run");
    let mut programs = toolstack(&mut root.fs, trees)?;
    // Executable scenario files (e.g. a host-built CLI) get their libraries too.
    for f in &scenario.files {
        if let (Source::Host(path), true) = (&f.source, f.mode & 0o111 != 0) {
            if is_dynamic_elf(path)? {
                programs.push(path.clone());
            }
        }
    }
    root.finish(release, &programs, XEN_MODULES, out, |fs, modules| {
        let dom0 = Dom0 {
            kernel_release: release.to_string(),
            modules,
            xen_bin: format!("/{XEN_BIN}"),
            lib_dirs: vec![format!("/{LIB_DIR}")],
        };
        for f in &scenario.files {
            fs.file(&f.dest, f.source.clone(), f.mode);
        }
        scenario.init_script(&dom0)
    })
}

/// Xen's toolstack programs, `xenstore` and its client names, `xl.conf`;
/// returns the programs whose libraries dom0 needs.
fn toolstack(fs: &mut Initramfs, trees: &BTreeMap<String, Tree>) -> Result<Vec<PathBuf>> {
    let utils = tree(trees, XEN_UTILS)?;
    let mut programs = Vec::new();
    for p in TOOLSTACK {
        let rel = format!("{XEN_BIN}/{p}");
        let file = utils.dir.join(&rel);
        if !file.is_file() {
            return Err(Error::PackageContent {
                package: XEN_UTILS.into(),
                what: format!("no {rel}"),
            });
        }
        fs.host_file(&rel, &file, 0o755);
        programs.push(file);
    }
    let xenstore = tree(trees, XENSTORE_UTILS)?.dir.join("usr/bin/xenstore");
    if !xenstore.is_file() {
        return Err(Error::PackageContent {
            package: XENSTORE_UTILS.into(),
            what: "no usr/bin/xenstore".into(),
        });
    }
    fs.host_file("usr/bin/xenstore", &xenstore, 0o755);
    for c in XENSTORE_CLIENTS {
        fs.symlink(&format!("usr/bin/{c}"), "xenstore");
    }
    programs.push(xenstore);
    let xl_conf = tree(trees, XEN_UTILS_COMMON)?.dir.join("etc/xen/xl.conf");
    let xl_conf = if xl_conf.is_file() { Source::Host(xl_conf) } else { Source::Bytes(Vec::new()) };
    fs.file("etc/xen/xl.conf", xl_conf, 0o644);
    Ok(programs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::elf::testing::{dynamic_elf, module_elf};
    use crate::testdir::TestDir;

    #[test]
    fn only_elf_files_with_an_interpreter_count_as_dynamic_programs() {
        let t = TestDir::new("dynamic");
        t.file("vgpu", &dynamic_elf(&["libc.so.6"], Some("/lib64/ld-linux-x86-64.so.2")));
        t.file("static", &module_elf(&[]));
        t.file("script", b"#!/bin/sh\n");
        assert!(is_dynamic_elf(&t.path("vgpu")).unwrap());
        assert!(!is_dynamic_elf(&t.path("static")).unwrap());
        assert!(!is_dynamic_elf(&t.path("script")).unwrap());
    }

    #[test]
    fn prune_removes_only_other_versions_of_current_packages_and_other_kernel_abis() {
        let t = TestDir::new("prune");
        let cache = Cache { root: t.root().into() };
        let pkg = |name: &str, version: &str| {
            let package = Package {
                name: name.into(),
                version: version.into(),
                arch: "amd64".into(),
                section: "libs".into(),
                depends: vec![],
            };
            Deb { file: package.deb_file_name(), package }
        };
        let current =
            [pkg("libxenstore4", "4.17.5-1"), pkg("linux-image-6.1.0-57-amd64", "6.1.192-3")];
        t.file("debs/linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb", b"this ABI");
        t.file("debs/linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb", b"an older ABI");
        t.mkdir("unpacked/linux-image-6.1.0-50-amd64_6.1.176-1_amd64/boot");
        t.file("debs/libxenstore4_4.17.5-1_amd64.deb", b"new");
        t.file("debs/libxenstore4_4.17.3-1_amd64.deb", b"old");
        t.file("debs/busybox-static_1%3a1.35_amd64.deb", b"other package");
        t.mkdir("unpacked/libxenstore4_4.17.3-1_amd64/usr");
        t.mkdir("unpacked/libxenstore4_4.17.5-1_amd64/usr");
        assert_eq!(prune(&cache, &current).unwrap(), 4);
        assert!(t.path("debs/linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb").exists());
        assert!(!t.path("debs/linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb").exists());
        assert!(!t.path("unpacked/linux-image-6.1.0-50-amd64_6.1.176-1_amd64").exists());
        assert!(t.path("debs/libxenstore4_4.17.5-1_amd64.deb").exists());
        assert!(!t.path("debs/libxenstore4_4.17.3-1_amd64.deb").exists());
        assert!(t.path("debs/busybox-static_1%3a1.35_amd64.deb").exists());
        assert!(t.path("unpacked/libxenstore4_4.17.5-1_amd64").exists());
        assert!(!t.path("unpacked/libxenstore4_4.17.3-1_amd64").exists());
    }
}
