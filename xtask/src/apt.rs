//! Debian packages through apt's own clients: `apt-cache show` for versions and
//! dependencies, `apt-get download` into a cache keyed by version, `dpkg -x` to
//! unpack. No maintainer script ever runs and nothing is installed on the host.
//!
//! Invariants: a `.deb` in the cache is named exactly as `apt-get download` names
//! it (`name_version_arch.deb`, `:` escaped as `%3a`), so a file's presence means
//! that version is cached; an unpacked tree is renamed into place only after
//! `dpkg -x` succeeded, so its presence means it is complete.

use crate::error::{Error, Result};
use crate::host;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One package as `apt-cache show` describes its candidate version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub section: String,
    /// `Pre-Depends` and `Depends`: each inner list is a group of alternatives.
    pub depends: Vec<Vec<String>>,
}

impl Package {
    /// The file name `apt-get download` gives this package.
    pub fn deb_file_name(&self) -> String {
        format!("{}.deb", self.stem())
    }

    /// `name_version_arch` with the epoch colon escaped: a file-name-safe key.
    pub fn stem(&self) -> String {
        format!("{}_{}_{}", self.name, self.version.replace(':', "%3a"), self.arch)
    }

    /// Whether this is a shared-library package (Debian section `libs`).
    pub fn is_library(&self) -> bool {
        self.section == "libs" || self.section.ends_with("/libs")
    }
}

/// Parses `apt-cache show` output: stanzas separated by blank lines.
pub fn parse_show(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: BTreeMap<&str, String> = BTreeMap::new();
        let mut last: Option<&str> = None;
        for line in stanza.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(k) = last {
                    fields.entry(k).or_default().push_str(line);
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.insert(k, v.trim().to_string());
                last = Some(k);
            }
        }
        let (Some(name), Some(version)) = (fields.get("Package"), fields.get("Version")) else {
            continue;
        };
        let mut depends = Vec::new();
        for key in ["Pre-Depends", "Depends"] {
            if let Some(d) = fields.get(key) {
                depends.extend(parse_depends(d));
            }
        }
        out.push(Package {
            name: name.clone(),
            version: version.clone(),
            arch: fields.get("Architecture").cloned().unwrap_or_else(|| "amd64".into()),
            section: fields.get("Section").cloned().unwrap_or_default(),
            depends,
        });
    }
    out
}

/// Parses a `Depends` field into groups of alternative package names, without
/// version constraints or architecture qualifiers (`python3:any` -> `python3`).
pub fn parse_depends(field: &str) -> Vec<Vec<String>> {
    field
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    let name = alt.trim().split([' ', '(', '[']).next().unwrap_or("");
                    let name = name.split(':').next().unwrap_or("");
                    (!name.is_empty()).then(|| name.to_string())
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

/// The concrete kernel package a meta package such as `linux-image-amd64`
/// depends on (`linux-image-6.1.0-48-amd64`).
pub fn concrete_kernel(meta: &Package) -> Option<&str> {
    meta.depends.iter().flatten().map(String::as_str).find(|d| {
        d.strip_prefix("linux-image-")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// The shared-library packages `roots` need, transitively: follows `Depends`
/// edges into packages of section `libs` only (so `python3`, `udev`, ... are
/// not pulled in). For each group of alternatives the first known one counts.
/// `lookup` returns the packages it knows among the names asked.
pub fn library_closure(
    roots: &[Package],
    mut lookup: impl FnMut(&[String]) -> Result<Vec<Package>>,
) -> Result<Vec<Package>> {
    let mut known: BTreeMap<String, Package> = BTreeMap::new();
    let mut taken: BTreeSet<String> = roots.iter().map(|p| p.name.clone()).collect();
    let mut out = Vec::new();
    let mut frontier: Vec<Package> = roots.to_vec();
    while !frontier.is_empty() {
        let groups: Vec<&Vec<String>> = frontier.iter().flat_map(|p| &p.depends).collect();
        let ask: BTreeSet<String> = groups
            .iter()
            .flat_map(|g| g.iter())
            .filter(|n| !known.contains_key(*n))
            .cloned()
            .collect();
        if !ask.is_empty() {
            let ask: Vec<String> = ask.into_iter().collect();
            for p in lookup(&ask)? {
                known.insert(p.name.clone(), p);
            }
        }
        let mut next = Vec::new();
        for group in groups {
            let Some(p) = group.iter().find_map(|n| known.get(n)) else { continue };
            if p.is_library() && taken.insert(p.name.clone()) {
                next.push(p.clone());
                out.push(p.clone());
            }
        }
        frontier = next;
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// apt, with its output going to one log file.
pub struct Apt {
    pub log: PathBuf,
}

impl Apt {
    /// The candidate versions of `names` that apt knows (unknown ones are left out).
    /// Runs `apt-get update` once if apt knows none of the names yet.
    pub fn show(&self, names: &[String]) -> Result<Vec<Package>> {
        let query = |names: &[String]| -> Result<Vec<Package>> {
            let mut cmd = Command::new("apt-cache");
            cmd.args(["show", "--no-all-versions"]).args(names);
            Ok(parse_show(&host::capture(&mut cmd, Duration::from_secs(120))?.stdout))
        };
        let found = query(names)?;
        if found.is_empty() && !names.is_empty() {
            host::apt_update(&self.log)?;
            return query(names);
        }
        Ok(found)
    }

    /// Like [`Apt::show`] but every name must be known.
    pub fn show_all(&self, names: &[&str]) -> Result<Vec<Package>> {
        let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut found = self.show(&owned)?;
        if let Some(missing) = names.iter().find(|n| !found.iter().any(|p| p.name == **n)) {
            host::apt_update(&self.log)?;
            found = self.show(&owned)?;
            if !found.iter().any(|p| p.name == *missing) {
                return Err(Error::PackageUnknown { package: missing.to_string() });
            }
        }
        // keep the caller's order
        Ok(names.iter().filter_map(|n| found.iter().find(|p| p.name == *n).cloned()).collect())
    }

    /// Downloads the packages not yet in `dir`; returns how many were fetched.
    pub fn download(&self, pkgs: &[Package], dir: &Path) -> Result<usize> {
        host::mkdirs(dir)?;
        let missing: Vec<&Package> =
            pkgs.iter().filter(|p| !dir.join(p.deb_file_name()).is_file()).collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let fetch = || {
            let mut cmd = Command::new("apt-get");
            cmd.current_dir(dir)
                .args(["download", "-q", "-o", "APT::Sandbox::User=root"])
                .args(missing.iter().map(|p| format!("{}={}", p.name, p.version)));
            host::run_logged(&mut cmd, &self.log, Duration::from_secs(900))
        };
        if fetch().is_err() {
            host::apt_update(&self.log)?;
            fetch()?;
        }
        for p in &missing {
            let expected = dir.join(p.deb_file_name());
            if !expected.is_file() {
                return Err(Error::DownloadMissing {
                    package: p.name.clone(),
                    expected,
                    log: self.log.clone(),
                });
            }
        }
        Ok(missing.len())
    }
}

/// Unpacks `deb` into `dest` unless it is already there; true if it unpacked.
pub fn unpack(deb: &Path, dest: &Path, log: &Path) -> Result<bool> {
    if dest.is_dir() {
        return Ok(false);
    }
    let tmp = dest.with_extension("partial");
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

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "\
Package: libxenmisc4.17
Version: 4.17.5+72-g01140da4e8-1
Architecture: amd64
Section: libs
Depends: libc6 (>= 2.34), libext2fs2 (>= 1.37), liblzma5 (>= 5.1.1alpha+20120614),
 zlib1g (>= 1:1.1.4)
Description: Xen runtime libraries
 multi-line description

Package: busybox-static
Version: 1:1.35.0-4+deb12u1+b1
Architecture: amd64
Section: shells
Depends: libc6 | libc6.1
";

    fn pkg(name: &str, section: &str, deps: &str) -> Package {
        Package {
            name: name.into(),
            version: "1".into(),
            arch: "amd64".into(),
            section: section.into(),
            depends: parse_depends(deps),
        }
    }

    #[test]
    fn show_output_parses_into_packages_with_continued_fields() {
        let p = parse_show(SHOW);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "libxenmisc4.17");
        assert_eq!(p[0].version, "4.17.5+72-g01140da4e8-1");
        assert!(p[0].is_library());
        let deps: Vec<_> = p[0].depends.iter().map(|g| g[0].as_str()).collect();
        assert_eq!(deps, ["libc6", "libext2fs2", "liblzma5", "zlib1g"]);
        assert_eq!(p[1].depends, [vec!["libc6".to_string(), "libc6.1".to_string()]]);
    }

    #[test]
    fn depends_drop_versions_and_arch_qualifiers() {
        let d = parse_depends("python3:any, python3 (<< 3.12), foo [amd64] | bar (>= 2)");
        assert_eq!(d, [vec!["python3"], vec!["python3"], vec!["foo", "bar"]]);
    }

    #[test]
    fn deb_file_name_escapes_the_epoch_like_apt_get_download() {
        let p = &parse_show(SHOW)[1];
        assert_eq!(p.deb_file_name(), "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb");
    }

    #[test]
    fn concrete_kernel_is_found_behind_the_meta_package() {
        let meta = pkg("linux-image-amd64", "kernel", "linux-image-6.1.0-48-amd64 (= 6.1.172-1)");
        assert_eq!(concrete_kernel(&meta), Some("linux-image-6.1.0-48-amd64"));
        assert_eq!(concrete_kernel(&pkg("x", "kernel", "linux-image-amd64-signed")), None);
    }

    #[test]
    fn library_closure_follows_only_library_packages_transitively() {
        let world = [
            pkg("libxenmisc4.17", "libs", "libc6, zlib1g, libxenstore4"),
            pkg("libxenstore4", "libs", "libc6"),
            pkg("libc6", "libs", "libgcc-s1"),
            pkg("libgcc-s1", "libs", "gcc-12-base, libc6"),
            pkg("gcc-12-base", "libs", ""),
            pkg("zlib1g", "libs", "libc6"),
            pkg("python3", "python", "libpython3.11"),
            pkg("libpython3.11", "libs", ""),
            pkg("xen-utils-common", "admin", "libxenstore4"),
        ];
        let root =
            pkg("xen-utils-4.17", "admin", "libxenmisc4.17, python3:any, xen-utils-common, udev");
        let mut asked = Vec::new();
        let got = library_closure(&[root], |names| {
            asked.push(names.to_vec());
            Ok(world.iter().filter(|p| names.contains(&p.name)).cloned().collect())
        })
        .unwrap();
        let names: Vec<_> = got.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["gcc-12-base", "libc6", "libgcc-s1", "libxenmisc4.17", "libxenstore4", "zlib1g"]
        );
        assert!(
            asked.iter().flatten().all(|n| n != "libpython3.11"),
            "python3's deps must not be followed"
        );
    }

    #[test]
    fn library_closure_takes_the_first_known_alternative() {
        let world = [pkg("libb", "libs", "")];
        let root = pkg("tool", "admin", "liba | libb");
        let got = library_closure(&[root], |names| {
            Ok(world.iter().filter(|p| names.contains(&p.name)).cloned().collect())
        })
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "libb");
    }
}
