//! A writer for the `newc` cpio format (`070701`), the format the Linux kernel
//! unpacks as an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Invariants: every header and every file body starts on a 4-byte boundary;
//! each entry gets a fresh inode number so the kernel never hard-links two
//! entries; the archive ends with the `TRAILER!!!` entry. Times are 0 so the
//! same inputs give the same bytes.

use std::io::{self, Write};

const MAGIC: &str = "070701";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// Streams a cpio archive into `W`.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter { out, next_ino: 1, written: 0 }
    }

    /// A directory `path` (no leading `/`, e.g. `usr/lib`).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, &[])
    }

    /// A regular file with the given contents.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, data)
    }

    /// A symbolic link `path` -> `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Writes the trailer and returns the inner writer and the archive size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, &[])?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let name_len = path.len() + 1;
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{path}: over 4 GiB"))
        })?;
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1);
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let header = format!(
            "{MAGIC}{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{name_len:08x}{:08x}",
            0, 0, 0, 0, 0, 0, 0, 0
        );
        self.put(header.as_bytes())?;
        self.put(path.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }
}

#[cfg(test)]
pub mod testing {
    /// One entry read back from a newc archive.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Entry {
        pub name: String,
        pub mode: u32,
        pub ino: u32,
        pub data: Vec<u8>,
    }

    /// Reads a newc archive written by [`super::CpioWriter`] (up to the trailer).
    pub fn read(mut b: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        loop {
            assert_eq!(pos % 4, 0, "header not aligned");
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (ino, mode, size, namesize) =
                (field(0), field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&b[110..110 + namesize - 1]).unwrap().to_string();
            let data_at = (110 + namesize).next_multiple_of(4);
            let data = b[data_at..data_at + size].to_vec();
            let next = (data_at + size).next_multiple_of(4);
            pos += next;
            b = &b[next..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty(), "bytes after the trailer");
                return out;
            }
            out.push(Entry { name, mode, ino, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::read;
    use super::*;

    #[test]
    fn archive_round_trips_dirs_files_and_symlinks() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("bin", 0o755).unwrap();
        w.file("bin/busybox", 0o755, b"\x7fELF...").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.file("init", 0o755, b"#!/bin/busybox sh\n").unwrap();
        let (bytes, len) = w.finish().unwrap();
        assert_eq!(len as usize, bytes.len());
        assert_eq!(bytes.len() % 4, 0);
        let e = read(&bytes);
        let names: Vec<_> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["bin", "bin/busybox", "bin/sh", "init"]);
        assert_eq!(e[0].mode, 0o040755);
        assert_eq!(e[1].mode, 0o100755);
        assert_eq!(e[1].data, b"\x7fELF...");
        assert_eq!(e[2].mode, 0o120777);
        assert_eq!(e[2].data, b"busybox");
        assert_eq!(e[3].data, b"#!/bin/busybox sh\n");
    }

    #[test]
    fn every_entry_gets_its_own_inode() {
        let mut w = CpioWriter::new(Vec::new());
        for i in 0..5 {
            w.file(&format!("f{i}"), 0o644, b"same").unwrap();
        }
        let (bytes, _) = w.finish().unwrap();
        let mut inos: Vec<_> = read(&bytes).iter().map(|e| e.ino).collect();
        inos.dedup();
        assert_eq!(inos.len(), 5);
    }

    #[test]
    fn names_and_bodies_of_every_length_stay_aligned() {
        let mut w = CpioWriter::new(Vec::new());
        for n in 1..9 {
            w.file(&"x".repeat(n), 0o644, &vec![b'a'; n]).unwrap();
        }
        let (bytes, _) = w.finish().unwrap();
        let e = read(&bytes);
        assert_eq!(e.len(), 8);
        assert!(e.iter().enumerate().all(|(i, e)| e.data.len() == i + 1));
    }
}
