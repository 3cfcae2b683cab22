//! Debian control data as apt prints it: `apt-cache show` stanzas, `Depends`
//! fields, and the file names `apt-get download` gives `.deb`s.

use crate::error::Result;
use std::collections::{BTreeMap, BTreeSet};

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
        deb_file_name(&self.name, &self.version, &self.arch)
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
    meta.depends.iter().flatten().map(String::as_str).find(|d| is_kernel_image(d))
}

/// Whether `name` is a kernel image package with its ABI in the name
/// (`linux-image-6.1.0-48-amd64`; not the meta package `linux-image-amd64`).
pub fn is_kernel_image(name: &str) -> bool {
    name.strip_prefix("linux-image-")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
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

/// `name_version_arch` as apt-get download spells it (apt's `QuoteString`):
/// `%`, `_` and `:` (and `.` in the architecture) become `%xx`.
fn quote(s: &str, bad: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if bad.contains(c) || c == '%' || !c.is_ascii_graphic() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unquote(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// The file name `apt-get download` gives `name` `version` `arch`.
pub fn deb_file_name(name: &str, version: &str, arch: &str) -> String {
    format!("{}_{}_{}.deb", quote(name, "_:"), quote(version, "_:"), quote(arch, "_:."))
}

/// What a `.deb` file name says it holds: `(name, version, arch)`, or `None`
/// for a name `apt-get download` would not produce.
pub fn parse_deb_file_name(file: &str) -> Option<(String, String, String)> {
    let stem = file.strip_suffix(".deb")?;
    let mut parts = stem.split('_');
    let (name, version, arch) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [name, version, arch].iter().any(|p| p.is_empty()) {
        return None;
    }
    Some((unquote(name)?, unquote(version)?, unquote(arch)?))
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
    fn deb_file_names_parse_back_to_name_version_and_arch() {
        let f = deb_file_name("qemu-system-xen", "1:7.2+dfsg-7+deb12u18+b3", "amd64");
        assert_eq!(f, "qemu-system-xen_1%3a7.2+dfsg-7+deb12u18+b3_amd64.deb");
        let (n, v, a) = parse_deb_file_name(&f).unwrap();
        assert_eq!(
            (n.as_str(), v.as_str(), a.as_str()),
            ("qemu-system-xen", "1:7.2+dfsg-7+deb12u18+b3", "amd64")
        );
        assert_eq!(parse_deb_file_name("libssl3_3.0.22-1~deb12u2_all.deb").unwrap().2, "all");
        for bad in ["x.deb", "a_b.deb", "a_b_c_d.deb", "a__c.deb", "a_b_c.udeb", "a_1%3_amd64.deb"]
        {
            assert_eq!(parse_deb_file_name(bad), None, "{bad}");
        }
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
