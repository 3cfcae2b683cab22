//! The test system every boot needs: host tools, the gpu-dom image, the
//! Debian packages resolved, fetched and unpacked, and Xen extracted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::commands::image::{self, Image};
use crate::debian::apt::{self, AptCli};
use crate::debian::dom0::{self, Tree};
use crate::error::Result;
use crate::harness::host;
use crate::paths::Paths;
use crate::progress::Progress;

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
