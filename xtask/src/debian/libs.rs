//! Which shared libraries a set of dom0 programs needs: an `ldd` that never runs
//! the programs. It reads `DT_NEEDED` from each ELF file and looks the sonames
//! up in the unpacked Debian trees, then (as a last resort) on the host.
//!
//! Invariants: symlinks are followed *inside* the tree they belong to (an
//! absolute link in an unpacked package points into that package, not into the
//! host), the closure is transitive, and every soname resolves or the whole
//! resolution fails naming the soname and who needed it.

use crate::error::{Error, Result};
use crate::formats::elf::Elf;
use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// A directory to search, relative to the root of a tree (`/` for the host).
#[derive(Clone, Debug)]
pub struct SearchDir {
    pub root: PathBuf,
    pub dir: PathBuf,
}

impl SearchDir {
    pub fn new(root: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        SearchDir { root: root.into(), dir: dir.into() }
    }

    fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }
}

/// A file found for a soname (or for the program interpreter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The real file (all symlinks followed).
    pub file: PathBuf,
    /// True when it came from the host rather than a Debian package tree.
    pub from_host: bool,
}

/// The result of [`closure`].
#[derive(Debug, Default)]
pub struct LibSet {
    /// soname -> file, for every library needed directly or indirectly.
    pub libs: BTreeMap<String, Found>,
    /// The program interpreter path (`PT_INTERP`) and its file.
    pub interpreter: Option<(String, Found)>,
}

/// Resolves `rel` (a path inside `root`) to a regular file, following symlinks
/// component by component and re-rooting absolute link targets at `root`.
pub fn resolve_in_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut pending: VecDeque<PathBuf> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(PathBuf::from(s)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    let mut done = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        if c == Path::new("..") {
            done.pop();
            continue;
        }
        let candidate = done.join(&c);
        let meta = fs::symlink_metadata(root.join(&candidate)).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = fs::read_link(root.join(&candidate)).ok()?;
            if target.is_absolute() {
                done = PathBuf::new();
            }
            for t in target.components().rev() {
                match t {
                    Component::Normal(s) => pending.push_front(PathBuf::from(s)),
                    Component::ParentDir => pending.push_front(PathBuf::from("..")),
                    _ => {}
                }
            }
        } else {
            done = candidate;
        }
    }
    let full = root.join(&done);
    fs::metadata(&full).ok().filter(|m| m.is_file()).map(|_| full)
}

fn find(soname: &str, search: &[SearchDir]) -> Option<Found> {
    search.iter().find_map(|s| {
        resolve_in_root(&s.root, &s.dir.join(soname))
            .map(|file| Found { file, from_host: s.is_host() })
    })
}

fn find_interpreter(path: &str, search: &[SearchDir]) -> Option<Found> {
    let mut roots: Vec<&SearchDir> = Vec::new();
    for s in search {
        if !roots.iter().any(|r| r.root == s.root) {
            roots.push(s);
        }
    }
    roots.into_iter().find_map(|s| {
        resolve_in_root(&s.root, Path::new(path)).map(|file| Found { file, from_host: s.is_host() })
    })
}

fn read_elf_needs(path: &Path) -> Result<(Vec<String>, Option<String>)> {
    let bytes = fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let elf = Elf::parse(&bytes).map_err(|source| Error::Elf { path: path.into(), source })?;
    let needed = elf.needed().map_err(|source| Error::Elf { path: path.into(), source })?;
    let interp = elf.interpreter().map_err(|source| Error::Elf { path: path.into(), source })?;
    Ok((needed.into_iter().map(String::from).collect(), interp.map(String::from)))
}

/// Every library `programs` need (transitively), plus `dlopened` sonames that
/// no `DT_NEEDED` names (e.g. `libgcc_s.so.1`, which glibc's `pthread_cancel`
/// loads at run time), searched in `search` order.
pub fn closure(programs: &[PathBuf], dlopened: &[&str], search: &[SearchDir]) -> Result<LibSet> {
    let mut set = LibSet::default();
    let mut queue: VecDeque<(String, String)> = VecDeque::new();
    for p in programs {
        let (needed, interp) = read_elf_needs(p)?;
        let who = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        queue.extend(needed.into_iter().map(|n| (n, who.clone())));
        if let (None, Some(i)) = (&set.interpreter, interp) {
            let found = find_interpreter(&i, search).ok_or_else(|| Error::MissingLibrary {
                soname: i.clone(),
                needed_by: who.clone(),
                searched: search.iter().map(|s| s.root.clone()).collect(),
            })?;
            set.interpreter = Some((i, found));
        }
    }
    queue.extend(dlopened.iter().map(|n| (n.to_string(), "dlopen".to_string())));
    while let Some((soname, who)) = queue.pop_front() {
        if set.libs.contains_key(&soname) {
            continue;
        }
        let found = find(&soname, search).ok_or_else(|| Error::MissingLibrary {
            soname: soname.clone(),
            needed_by: who.clone(),
            searched: search.iter().map(|s| s.root.join(&s.dir)).collect(),
        })?;
        let (needed, _) = read_elf_needs(&found.file)?;
        queue.extend(needed.into_iter().map(|n| (n, soname.clone())));
        set.libs.insert(soname, found);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::elf::testing::dynamic_elf;
    use crate::testdir::TestDir;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlinks_resolve_inside_their_own_tree() {
        let t = TestDir::new("abs-link");
        t.file("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", b"ld");
        t.mkdir("lib64");
        symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", t.path("lib64/ld-linux-x86-64.so.2"))
            .unwrap();
        let got = resolve_in_root(t.root(), Path::new("/lib64/ld-linux-x86-64.so.2")).unwrap();
        assert_eq!(got, t.path("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
    }

    #[test]
    fn relative_symlinks_and_symlinked_directories_resolve() {
        let t = TestDir::new("rel-link");
        t.file("usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17.0", b"x");
        symlink("libxenctrl.so.4.17.0", t.path("usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17"))
            .unwrap();
        symlink("usr/lib", t.path("lib")).unwrap();
        let got = resolve_in_root(t.root(), Path::new("lib/x86_64-linux-gnu/libxenctrl.so.4.17"))
            .unwrap();
        assert_eq!(got, t.path("usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17.0"));
    }

    #[test]
    fn symlink_loops_and_missing_files_resolve_to_nothing() {
        let t = TestDir::new("loop");
        t.mkdir("lib");
        symlink("b", t.path("lib/a")).unwrap();
        symlink("a", t.path("lib/b")).unwrap();
        assert_eq!(resolve_in_root(t.root(), Path::new("lib/a")), None);
        assert_eq!(resolve_in_root(t.root(), Path::new("lib/none")), None);
    }

    #[test]
    fn closure_is_transitive_includes_dlopened_libs_and_prefers_earlier_trees() {
        let pkgs = TestDir::new("closure-pkgs");
        let host = TestDir::new("closure-host");
        pkgs.file(
            "bin/xl",
            &dynamic_elf(&["libxenlight.so.4.17", "libc.so.6"], Some("/lib64/ld.so")),
        );
        pkgs.file(
            "usr/lib/libxenlight.so.4.17",
            &dynamic_elf(&["libxenctrl.so.4.17", "libc.so.6"], None),
        );
        pkgs.file("usr/lib/libxenctrl.so.4.17", &dynamic_elf(&["libc.so.6"], None));
        pkgs.file("lib/libc.so.6", &dynamic_elf(&[], None));
        pkgs.file("lib64/ld.so", b"interp");
        host.file("lib/libc.so.6", &dynamic_elf(&[], None));
        host.file("lib/libgcc_s.so.1", &dynamic_elf(&["libc.so.6"], None));
        let search = [
            SearchDir::new(pkgs.root(), "usr/lib"),
            SearchDir::new(pkgs.root(), "lib"),
            SearchDir::new(host.root(), "lib"),
        ];
        let set = closure(&[pkgs.path("bin/xl")], &["libgcc_s.so.1"], &search).unwrap();
        let names: Vec<_> = set.libs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["libc.so.6", "libgcc_s.so.1", "libxenctrl.so.4.17", "libxenlight.so.4.17"]
        );
        assert_eq!(set.libs["libc.so.6"].file, pkgs.path("lib/libc.so.6"));
        assert_eq!(set.libs["libgcc_s.so.1"].file, host.path("lib/libgcc_s.so.1"));
        let (interp, found) = set.interpreter.unwrap();
        assert_eq!(interp, "/lib64/ld.so");
        assert_eq!(found.file, pkgs.path("lib64/ld.so"));
    }

    #[test]
    fn a_missing_soname_names_itself_and_who_needed_it() {
        let t = TestDir::new("missing");
        t.file("bin/xenstored", &dynamic_elf(&["libxenevtchn.so.1"], None));
        let e = closure(&[t.path("bin/xenstored")], &[], &[SearchDir::new(t.root(), "lib")])
            .unwrap_err();
        match e {
            Error::MissingLibrary { soname, needed_by, .. } => {
                assert_eq!(soname, "libxenevtchn.so.1");
                assert_eq!(needed_by, "xenstored");
            }
            other => panic!("unexpected {other}"),
        }
    }
}
