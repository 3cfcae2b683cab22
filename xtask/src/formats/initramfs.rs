//! An initramfs described as a tree of entries, written as one newc cpio.
//!
//! Invariants: paths are relative and never contain `..`; every parent
//! directory of an entry exists in the tree (added on demand), and entries are
//! written parents first; adding a path twice keeps the last one, so a later
//! layer (a scenario) can replace a file of an earlier one.

use crate::error::{Error, Result};
use crate::formats::cpio::CpioWriter;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Where a file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File { source: Source, mode: u32 },
    Symlink(String),
}

#[derive(Default, Debug)]
pub struct Initramfs {
    nodes: BTreeMap<String, Node>,
}

/// `/usr/lib/x` -> `usr/lib/x`; refuses `..` and empty paths.
fn clean(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    assert!(!parts.is_empty(), "initramfs path must not be empty");
    assert!(!parts.contains(&".."), "initramfs path must not contain '..': {path}");
    parts.join("/")
}

impl Initramfs {
    fn parents(&mut self, path: &str) {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let dir = &path[..at + i];
            self.nodes.entry(dir.to_string()).or_insert(Node::Dir);
            at += i + 1;
        }
    }

    pub fn dir(&mut self, path: &str) {
        let p = clean(path);
        self.parents(&p);
        self.nodes.insert(p, Node::Dir);
    }

    pub fn file(&mut self, path: &str, source: Source, mode: u32) {
        let p = clean(path);
        self.parents(&p);
        self.nodes.insert(p, Node::File { source, mode });
    }

    pub fn host_file(&mut self, path: &str, host: impl Into<PathBuf>, mode: u32) {
        self.file(path, Source::Host(host.into()), mode);
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        let p = clean(path);
        self.parents(&p);
        self.nodes.insert(p, Node::Symlink(target.to_string()));
    }

    /// The paths in the tree, in archive order.
    #[cfg(test)]
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Writes the archive; returns its size in bytes.
    pub fn write(&self, out: &Path) -> Result<u64> {
        if let Some(dir) = out.parent() {
            crate::harness::host::mkdirs(dir)?;
        }
        let f = File::create(out).map_err(|e| Error::io("creating", out, e))?;
        let mut w = CpioWriter::new(BufWriter::new(f));
        let err = |e| Error::io("writing", out, e);
        for (path, node) in &self.nodes {
            match node {
                Node::Dir => w.dir(path, 0o755).map_err(err)?,
                Node::Symlink(t) => w.symlink(path, t).map_err(err)?,
                Node::File { source: Source::Bytes(b), mode } => {
                    w.file(path, *mode, b).map_err(err)?
                }
                Node::File { source: Source::Host(h), mode } => {
                    let data = std::fs::read(h).map_err(|e| Error::io("reading", h, e))?;
                    w.file(path, *mode, &data).map_err(err)?
                }
            }
        }
        let (_, size) = w.finish().map_err(err)?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::cpio::testing::read;

    #[test]
    fn parents_are_added_and_written_before_children() {
        let t = crate::testdir::TestDir::new("initramfs");
        let mut fs = Initramfs::default();
        fs.file("/usr/lib/xen-4.17/bin/xl", Source::Bytes(b"xl".to_vec()), 0o755);
        fs.file("init", Source::Bytes(b"#!/bin/busybox sh\n".to_vec()), 0o755);
        fs.symlink("var/run", "../run");
        fs.dir("run");
        fs.write(&t.path("i.cpio")).unwrap();
        let entries = read(&std::fs::read(t.path("i.cpio")).unwrap());
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            if let Some((parent, _)) = n.rsplit_once('/') {
                let pi = names.iter().position(|x| *x == parent).expect("parent present");
                assert!(pi < i, "{parent} after {n}");
            }
        }
        assert!(names.contains(&"usr/lib/xen-4.17/bin"));
        assert!(names.contains(&"var/run"));
    }

    #[test]
    fn a_later_file_replaces_an_earlier_one() {
        let mut fs = Initramfs::default();
        fs.file("etc/xen/xl.conf", Source::Bytes(b"a".to_vec()), 0o644);
        fs.file("/etc/xen/xl.conf", Source::Bytes(b"b".to_vec()), 0o644);
        assert_eq!(fs.paths().filter(|p| *p == "etc/xen/xl.conf").count(), 1);
        assert_eq!(
            fs.nodes["etc/xen/xl.conf"],
            Node::File { source: Source::Bytes(b"b".to_vec()), mode: 0o644 }
        );
    }

    #[test]
    #[should_panic(expected = "..")]
    fn dot_dot_paths_are_refused() {
        Initramfs::default().dir("usr/../../etc");
    }
}
