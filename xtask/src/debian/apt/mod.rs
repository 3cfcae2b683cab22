//! Debian packages through apt's own clients: `apt-cache policy` and
//! `apt-cache show` for versions and dependencies, `apt-get download` into a
//! cache, `dpkg-deb -x` to unpack. No maintainer script ever runs and nothing
//! is installed on the host.
//!
//! [`fetch`] is the one way in: it resolves from apt's current lists and
//! downloads what the cache lacks (its module states when the lists are
//! updated and how a vanished version is recovered from).
//!
//! Invariants of the cache: a `.deb` in it is named exactly as `apt-get
//! download` named it (`name_version_arch.deb`, `:` escaped as `%3a`), and its
//! name is its key; an unpacked tree is renamed into place only after
//! `dpkg-deb -x` succeeded, so its presence means it is complete.

mod cli;
mod control;
mod fetch;
mod policy;

pub use cli::AptCli;
pub use control::{concrete_kernel, is_kernel_image, library_closure, Package};
pub use fetch::{fetch, Deb, Resolver};

use crate::error::{Error, Result};
use crate::harness::host;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `path` with `.partial` appended (not `with_extension`: versions have dots).
pub fn partial(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Unpacks `deb` into `dest` unless it is already there; true if it unpacked.
pub fn unpack(deb: &Path, dest: &Path, log: &Path) -> Result<bool> {
    if dest.is_dir() {
        return Ok(false);
    }
    let tmp = partial(dest);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| Error::io("removing", &tmp, e))?;
    }
    host::mkdirs(&tmp)?;
    host::run_logged(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tmp),
        log,
        Duration::from_secs(300),
    )?;
    fs::rename(&tmp, dest).map_err(|e| Error::io("renaming into", dest, e))?;
    Ok(true)
}

/// Removes the entries of `dir` whose names are not in `keep` (old versions).
pub fn prune(dir: &Path, keep: &BTreeSet<String>) -> Result<usize> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(0) };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let path = e.path();
        let r = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        r.map_err(|err| Error::io("removing stale cache entry", &path, err))?;
        removed += 1;
    }
    Ok(removed)
}
