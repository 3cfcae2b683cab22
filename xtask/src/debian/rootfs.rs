//! A busybox root filesystem from Debian's package trees: the part dom0's
//! initramfs (`dom0::assemble`) and a Linux guest's
//! (`guest_initramfs::assemble`) share. Each starts one with its
//! directories and busybox, adds its own programs and files, then
//! [`Rootfs::finish`] adds the programs' shared libraries, the kernel
//! modules wanted with their dependencies, and `/init`, and writes the
//! archive.

use crate::debian::dom0::{package_tree, Tree, BUSYBOX, DLOPENED, KERNEL_META, LIB_DIR, XEN_UTILS};
use crate::debian::kmod::{self, ModuleIndex};
use crate::debian::libs::{self, SearchDir};
use crate::error::{Error, Result};
use crate::formats::initramfs::{Initramfs, Source};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What went into an initramfs (dom0's, or a Linux guest's:
/// `guest_initramfs`).
#[derive(Debug)]
pub struct Assembled {
    pub size: u64,
    pub init: String,
    pub libs: usize,
    /// Libraries that came from the host because no package tree had them.
    pub host_libs: Vec<String>,
    pub modules: Vec<String>,
    pub builtin_modules: Vec<String>,
}

/// An initramfs being built from the package trees.
pub struct Rootfs<'a> {
    /// The archive so far: the caller adds its own programs and files.
    pub fs: Initramfs,
    trees: &'a BTreeMap<String, Tree>,
}

impl<'a> Rootfs<'a> {
    /// An initramfs with `dirs` and busybox as `/bin/busybox`.
    pub fn new(trees: &'a BTreeMap<String, Tree>, dirs: &[&str]) -> Result<Self> {
        let mut fs = Initramfs::default();
        for d in dirs {
            fs.dir(d);
        }
        let busybox = package_tree(trees, BUSYBOX)?.dir.join("bin/busybox");
        fs.host_file("bin/busybox", &busybox, 0o755);
        Ok(Rootfs { fs, trees })
    }

    /// Adds the libraries `programs` need and the `wanted` modules of kernel
    /// `release` with their dependencies; then `init`, given the archive
    /// and the modules' paths in load order, adds its last files and
    /// returns `/init`'s text. Writes the archive to `out`.
    pub fn finish(
        mut self,
        release: &str,
        programs: &[PathBuf],
        wanted: &[&str],
        out: &Path,
        init: impl FnOnce(&mut Initramfs, Vec<String>) -> String,
    ) -> Result<Assembled> {
        let (libs, host_libs) = libraries(&mut self.fs, self.trees, programs)?;
        let plan = modules(&mut self.fs, self.trees, release, wanted)?;
        let init = init(&mut self.fs, plan.load.iter().map(|m| m.path.clone()).collect());
        self.fs.file("init", Source::Bytes(init.clone().into_bytes()), 0o755);
        let size = self.fs.write(out)?;
        Ok(Assembled {
            size,
            init,
            libs,
            host_libs,
            modules: plan.load.iter().map(|m| m.name.clone()).collect(),
            builtin_modules: plan.builtin,
        })
    }
}

/// The shared libraries `programs` need, from the package trees first (libs
/// before tools), the host last; returns how many, and those from the host.
fn libraries(
    fs: &mut Initramfs,
    trees: &BTreeMap<String, Tree>,
    programs: &[PathBuf],
) -> Result<(usize, Vec<String>)> {
    let mut search = Vec::new();
    let mut ordered: Vec<&Tree> = trees.values().filter(|t| t.package.is_library()).collect();
    ordered.push(package_tree(trees, XEN_UTILS)?);
    for t in ordered {
        for d in [
            "lib/x86_64-linux-gnu",
            "usr/lib/x86_64-linux-gnu",
            "usr/lib/xen-4.17/lib/x86_64-linux-gnu",
        ] {
            search.push(SearchDir::new(&t.dir, d));
        }
    }
    search.push(SearchDir::new("/", "lib/x86_64-linux-gnu"));
    search.push(SearchDir::new("/", "usr/lib/x86_64-linux-gnu"));
    let set = libs::closure(programs, DLOPENED, &search)?;
    let mut host_libs = Vec::new();
    for (soname, found) in &set.libs {
        fs.host_file(&format!("{LIB_DIR}/{soname}"), &found.file, 0o755);
        if found.from_host {
            host_libs.push(soname.clone());
        }
    }
    if let Some((path, found)) = &set.interpreter {
        fs.host_file(path, &found.file, 0o755);
        if found.from_host {
            host_libs.push(path.clone());
        }
    }
    Ok((set.libs.len(), host_libs))
}

/// The `wanted` kernel modules of kernel `release` and what they depend on,
/// in load order.
fn modules(
    fs: &mut Initramfs,
    trees: &BTreeMap<String, Tree>,
    release: &str,
    wanted: &[&str],
) -> Result<kmod::Plan> {
    let kt = package_tree(trees, KERNEL_META)?;
    let mdir = kt.dir.join("lib/modules").join(release);
    let order = fs::read_to_string(mdir.join("modules.order"))
        .map_err(|e| Error::io("reading", mdir.join("modules.order"), e))?;
    let builtin = fs::read_to_string(mdir.join("modules.builtin")).unwrap_or_default();
    let plan = kmod::plan(wanted, &ModuleIndex::parse(&order, &builtin), |rel| {
        kmod::depends_of_file(&mdir.join(rel))
    })?;
    for m in &plan.load {
        fs.host_file(&format!("lib/modules/{release}/{}", m.path), mdir.join(&m.path), 0o644);
    }
    Ok(plan)
}
