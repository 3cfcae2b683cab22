//! A read-only view over an ELF file: just what the xtask needs to assemble a
//! dom0 (shared-library dependencies, kernel-module metadata) and to sanity-check
//! the PVH image (class, machine, the Xen PVH entry note).
//!
//! Invariants: [`Elf::parse`] checks the identification bytes and that the
//! program- and section-header tables lie inside the data; every later accessor
//! bounds-checks what it reads and returns an [`ElfError`] instead of panicking,
//! so a truncated or hostile file can never crash the xtask.
//!
//! Field offsets follow the System V gABI (`Elf32_Ehdr`, `Elf64_Ehdr`, ...).

use std::fmt;

/// ELF class (`e_ident[EI_CLASS]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `ELFCLASS32`
    Elf32,
    /// `ELFCLASS64`
    Elf64,
}

/// `e_machine` for x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` for i386.
pub const EM_386: u16 = 3;
/// `XEN_ELFNOTE_PHYS32_ENTRY` (xen/include/public/elfnote.h): the PVH entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const SHT_DYNAMIC: u32 = 6;
const SHT_NOBITS: u32 = 8;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;

/// What was wrong with an ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Fewer bytes than the ELF header needs.
    TooShort { len: usize },
    /// The first four bytes are not `\x7fELF`.
    BadMagic,
    /// `EI_CLASS` is neither 32 nor 64 bit.
    BadClass(u8),
    /// Not little-endian (`EI_DATA` != `ELFDATA2LSB`).
    NotLittleEndian(u8),
    /// A table or a string lies (partly) outside the file.
    OutOfBounds { what: &'static str, offset: u64, size: u64 },
    /// A string is not NUL-terminated or not UTF-8.
    BadString { what: &'static str },
    /// The dynamic section names a string table that does not exist.
    BadLink { section: usize, link: u32 },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::TooShort { len } => {
                write!(f, "only {len} bytes, too short for an ELF header")
            }
            ElfError::BadMagic => write!(f, "not an ELF file (bad magic)"),
            ElfError::BadClass(c) => write!(f, "unknown ELF class {c}"),
            ElfError::NotLittleEndian(d) => write!(f, "not a little-endian ELF (EI_DATA={d})"),
            ElfError::OutOfBounds { what, offset, size } => {
                write!(f, "{what} at offset {offset:#x} (+{size:#x}) lies outside the file")
            }
            ElfError::BadString { what } => {
                write!(f, "{what} is not a NUL-terminated UTF-8 string")
            }
            ElfError::BadLink { section, link } => {
                write!(f, "section {section} links to missing section {link}")
            }
        }
    }
}

impl std::error::Error for ElfError {}

/// One section header, class-independent.
#[derive(Clone, Copy, Debug)]
struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

/// One program header, class-independent.
#[derive(Clone, Copy, Debug)]
struct Segment {
    kind: u32,
    offset: u64,
    filesz: u64,
}

/// One ELF note (`Elf_Nhdr` + name + descriptor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    pub name: &'a [u8],
    pub kind: u32,
    pub desc: &'a [u8],
}

/// A checked view over the bytes of an ELF file.
pub struct Elf<'a> {
    data: &'a [u8],
    class: Class,
    machine: u16,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: u64,
}

mod field {
    //! Offsets into `Elf32_Ehdr` / `Elf64_Ehdr` that do not depend on the class.
    pub const EI_CLASS: usize = 4;
    pub const EI_DATA: usize = 5;
    pub const E_MACHINE: u64 = 18;
}

fn rd_u16(d: &[u8], at: u64) -> Option<u16> {
    let at = usize::try_from(at).ok()?;
    Some(u16::from_le_bytes(d.get(at..at.checked_add(2)?)?.try_into().ok()?))
}
fn rd_u32(d: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    Some(u32::from_le_bytes(d.get(at..at.checked_add(4)?)?.try_into().ok()?))
}
fn rd_u64(d: &[u8], at: u64) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    Some(u64::from_le_bytes(d.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn slice<'a>(
    d: &'a [u8],
    what: &'static str,
    offset: u64,
    size: u64,
) -> Result<&'a [u8], ElfError> {
    let oob = ElfError::OutOfBounds { what, offset, size };
    let end = offset.checked_add(size).ok_or(oob.clone())?;
    let (start, end) = (usize::try_from(offset), usize::try_from(end));
    match (start, end) {
        (Ok(s), Ok(e)) => d.get(s..e).ok_or(oob),
        _ => Err(oob),
    }
}

fn c_str<'a>(table: &'a [u8], at: u64, what: &'static str) -> Result<&'a str, ElfError> {
    let at = usize::try_from(at).map_err(|_| ElfError::BadString { what })?;
    let rest = table.get(at..).ok_or(ElfError::BadString { what })?;
    let len = rest.iter().position(|&b| b == 0).ok_or(ElfError::BadString { what })?;
    std::str::from_utf8(&rest[..len]).map_err(|_| ElfError::BadString { what })
}

impl<'a> Elf<'a> {
    /// Checks the identification and that the header tables fit in `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        if data.len() < 52 {
            return Err(ElfError::TooShort { len: data.len() });
        }
        if data[..4] != *b"\x7fELF" {
            return Err(ElfError::BadMagic);
        }
        let class = match data[field::EI_CLASS] {
            1 => Class::Elf32,
            2 => Class::Elf64,
            c => return Err(ElfError::BadClass(c)),
        };
        if data[field::EI_DATA] != 1 {
            return Err(ElfError::NotLittleEndian(data[field::EI_DATA]));
        }
        let short = ElfError::TooShort { len: data.len() };
        let u16_at = |at| rd_u16(data, at).map(u64::from).ok_or(short.clone());
        let (phoff, shoff, rest) = match class {
            Class::Elf32 => {
                let phoff = rd_u32(data, 28).map(u64::from).ok_or(short.clone())?;
                let shoff = rd_u32(data, 32).map(u64::from).ok_or(short.clone())?;
                (phoff, shoff, 42)
            }
            Class::Elf64 => {
                let phoff = rd_u64(data, 32).ok_or(short.clone())?;
                let shoff = rd_u64(data, 40).ok_or(short.clone())?;
                (phoff, shoff, 54)
            }
        };
        let elf = Elf {
            data,
            class,
            machine: rd_u16(data, field::E_MACHINE).ok_or(short.clone())?,
            phoff,
            phentsize: u16_at(rest)?,
            phnum: u16_at(rest + 2)?,
            shoff,
            shentsize: u16_at(rest + 4)?,
            shnum: u16_at(rest + 6)?,
            shstrndx: u16_at(rest + 8)?,
        };
        if elf.phnum > 0 {
            slice(data, "program header table", elf.phoff, elf.phentsize * elf.phnum)?;
        }
        if elf.shnum > 0 {
            slice(data, "section header table", elf.shoff, elf.shentsize * elf.shnum)?;
        }
        Ok(elf)
    }

    pub fn class(&self) -> Class {
        self.class
    }

    pub fn machine(&self) -> u16 {
        self.machine
    }

    fn segment(&self, i: u64) -> Option<Segment> {
        let b = self.phoff + i * self.phentsize;
        let d = self.data;
        Some(match self.class {
            Class::Elf32 => Segment {
                kind: rd_u32(d, b)?,
                offset: rd_u32(d, b + 4)?.into(),
                filesz: rd_u32(d, b + 16)?.into(),
            },
            Class::Elf64 => Segment {
                kind: rd_u32(d, b)?,
                offset: rd_u64(d, b + 8)?,
                filesz: rd_u64(d, b + 32)?,
            },
        })
    }

    fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        (0..self.phnum).filter_map(move |i| self.segment(i))
    }

    fn section(&self, i: u64) -> Option<Section> {
        if i >= self.shnum {
            return None;
        }
        let b = self.shoff + i * self.shentsize;
        let d = self.data;
        Some(match self.class {
            Class::Elf32 => Section {
                name: rd_u32(d, b)?,
                kind: rd_u32(d, b + 4)?,
                offset: rd_u32(d, b + 16)?.into(),
                size: rd_u32(d, b + 20)?.into(),
                link: rd_u32(d, b + 24)?,
            },
            Class::Elf64 => Section {
                name: rd_u32(d, b)?,
                kind: rd_u32(d, b + 4)?,
                offset: rd_u64(d, b + 24)?,
                size: rd_u64(d, b + 32)?,
                link: rd_u32(d, b + 40)?,
            },
        })
    }

    fn section_bytes(&self, s: &Section, what: &'static str) -> Result<&'a [u8], ElfError> {
        if s.kind == SHT_NOBITS {
            return Ok(&[]);
        }
        slice(self.data, what, s.offset, s.size)
    }

    /// The contents of the first section called `name`, if there is one.
    pub fn section_by_name(&self, name: &str) -> Result<Option<&'a [u8]>, ElfError> {
        let Some(strtab) = self.section(self.shstrndx) else {
            return Ok(None);
        };
        let names = self.section_bytes(&strtab, "section name table")?;
        for i in 0..self.shnum {
            let Some(s) = self.section(i) else { continue };
            if c_str(names, s.name.into(), "section name")? == name {
                return self.section_bytes(&s, "section").map(Some);
            }
        }
        Ok(None)
    }

    /// The `DT_NEEDED` entries (sonames) of a dynamically linked file, in order.
    /// A static file has none.
    pub fn needed(&self) -> Result<Vec<&'a str>, ElfError> {
        let mut out = Vec::new();
        for i in 0..self.shnum {
            let Some(s) = self.section(i) else { continue };
            if s.kind != SHT_DYNAMIC {
                continue;
            }
            let strtab = self
                .section(s.link.into())
                .ok_or(ElfError::BadLink { section: i as usize, link: s.link })?;
            let strings = self.section_bytes(&strtab, "dynamic string table")?;
            let dynamic = self.section_bytes(&s, "dynamic section")?;
            let entry = match self.class {
                Class::Elf32 => 8,
                Class::Elf64 => 16,
            };
            for e in dynamic.chunks_exact(entry) {
                let (tag, val) = match self.class {
                    Class::Elf32 => (
                        rd_u32(e, 0).map(u64::from).unwrap_or(DT_NULL),
                        rd_u32(e, 4).map(u64::from).unwrap_or(0),
                    ),
                    Class::Elf64 => (rd_u64(e, 0).unwrap_or(DT_NULL), rd_u64(e, 8).unwrap_or(0)),
                };
                match tag {
                    DT_NULL => break,
                    DT_NEEDED => out.push(c_str(strings, val, "DT_NEEDED name")?),
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// The program interpreter (`PT_INTERP`), e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub fn interpreter(&self) -> Result<Option<&'a str>, ElfError> {
        for seg in self.segments() {
            if seg.kind == PT_INTERP {
                let bytes = slice(self.data, "PT_INTERP", seg.offset, seg.filesz)?;
                return c_str(bytes, 0, "interpreter path").map(Some);
            }
        }
        Ok(None)
    }

    /// Every note in every `PT_NOTE` segment.
    pub fn notes(&self) -> Result<Vec<Note<'a>>, ElfError> {
        let mut out = Vec::new();
        for seg in self.segments().filter(|s| s.kind == PT_NOTE) {
            let mut rest = slice(self.data, "PT_NOTE", seg.offset, seg.filesz)?;
            while rest.len() >= 12 {
                let oob = |size| ElfError::OutOfBounds { what: "note", offset: seg.offset, size };
                let namesz = u64::from(rd_u32(rest, 0).ok_or(oob(12))?);
                let descsz = u64::from(rd_u32(rest, 4).ok_or(oob(12))?);
                let kind = rd_u32(rest, 8).ok_or(oob(12))?;
                let name_end = 12 + namesz;
                let desc_start = name_end.next_multiple_of(4);
                let desc_end = desc_start + descsz;
                let name = slice(rest, "note name", 12, namesz)?;
                let desc = slice(rest, "note descriptor", desc_start, descsz)?;
                let name = name.strip_suffix(&[0]).unwrap_or(name);
                out.push(Note { name, kind, desc });
                let next = usize::try_from(desc_end.next_multiple_of(4)).unwrap_or(usize::MAX);
                rest = rest.get(next..).unwrap_or(&[]);
            }
        }
        Ok(out)
    }

    /// The PVH entry address from the `Xen` `XEN_ELFNOTE_PHYS32_ENTRY` note.
    pub fn pvh_entry(&self) -> Result<Option<u64>, ElfError> {
        for n in self.notes()? {
            if n.name == b"Xen" && n.kind == XEN_ELFNOTE_PHYS32_ENTRY {
                return Ok(match n.desc.len() {
                    4 => rd_u32(n.desc, 0).map(u64::from),
                    8 => rd_u64(n.desc, 0),
                    _ => None,
                });
            }
        }
        Ok(None)
    }
}

/// Builds small ELF files for tests of this module and of its users.
#[cfg(test)]
pub mod testing {
    /// A section to put into a synthetic ELF64 file.
    pub struct TestSection<'a> {
        pub name: &'a str,
        pub kind: u32,
        pub data: Vec<u8>,
        pub link: u32,
    }

    /// An ELF64 little-endian file with the given sections (after the null
    /// section; `.shstrtab` is appended last), an optional `PT_INTERP` and an
    /// optional `PT_NOTE` segment with the given raw note bytes.
    pub fn elf64(sections: &[TestSection], interp: Option<&str>, note: Option<&[u8]>) -> Vec<u8> {
        let mut shstr = vec![0u8];
        let mut name_off = Vec::new();
        for s in sections.iter().map(|s| s.name).chain([".shstrtab"]) {
            name_off.push(shstr.len() as u32);
            shstr.extend_from_slice(s.as_bytes());
            shstr.push(0);
        }
        let mut blobs: Vec<Vec<u8>> = sections.iter().map(|s| s.data.clone()).collect();
        blobs.push(shstr);
        let mut interp_bytes = interp.map(|i| {
            let mut v = i.as_bytes().to_vec();
            v.push(0);
            v
        });
        let phnum = interp.is_some() as u16 + note.is_some() as u16;
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[18..20].copy_from_slice(&62u16.to_le_bytes());
        let phoff = 64u64;
        out.resize(64 + 56 * phnum as usize, 0);
        let mut ph = Vec::new();
        for (kind, bytes) in [(3u32, interp_bytes.take()), (4u32, note.map(|n| n.to_vec()))] {
            if let Some(b) = bytes {
                ph.push((kind, out.len() as u64, b.len() as u64));
                out.extend_from_slice(&b);
            }
        }
        for (i, (kind, off, size)) in ph.iter().enumerate() {
            let at = 64 + 56 * i;
            out[at..at + 4].copy_from_slice(&kind.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            out[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
        }
        let mut offsets = Vec::new();
        for b in &blobs {
            offsets.push(out.len() as u64);
            out.extend_from_slice(b);
        }
        out.resize(out.len().next_multiple_of(8), 0);
        let shoff = out.len() as u64;
        let shnum = blobs.len() + 1;
        out.resize(out.len() + 64, 0);
        for (i, b) in blobs.iter().enumerate() {
            let mut sh = [0u8; 64];
            let (kind, link) = match sections.get(i) {
                Some(s) => (s.kind, s.link),
                None => (3, 0),
            };
            sh[0..4].copy_from_slice(&name_off[i].to_le_bytes());
            sh[4..8].copy_from_slice(&kind.to_le_bytes());
            sh[24..32].copy_from_slice(&offsets[i].to_le_bytes());
            sh[32..40].copy_from_slice(&(b.len() as u64).to_le_bytes());
            sh[40..44].copy_from_slice(&link.to_le_bytes());
            out.extend_from_slice(&sh);
        }
        out[32..40].copy_from_slice(&phoff.to_le_bytes());
        out[40..48].copy_from_slice(&shoff.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&phnum.to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        out[60..62].copy_from_slice(&(shnum as u16).to_le_bytes());
        out[62..64].copy_from_slice(&((shnum - 1) as u16).to_le_bytes());
        out
    }

    /// A dynamically linked ELF64 that needs `needed` (section 1 = `.dynstr`,
    /// section 2 = `.dynamic`).
    pub fn dynamic_elf(needed: &[&str], interp: Option<&str>) -> Vec<u8> {
        let mut dynstr = vec![0u8];
        let mut dynamic = Vec::new();
        for n in needed {
            dynamic.extend_from_slice(&1u64.to_le_bytes());
            dynamic.extend_from_slice(&(dynstr.len() as u64).to_le_bytes());
            dynstr.extend_from_slice(n.as_bytes());
            dynstr.push(0);
        }
        dynamic.extend_from_slice(&[0u8; 16]);
        let sections = [
            TestSection { name: ".dynstr", kind: 3, data: dynstr, link: 0 },
            TestSection { name: ".dynamic", kind: 6, data: dynamic, link: 1 },
        ];
        elf64(&sections, interp, None)
    }

    /// A kernel module: an ELF64 relocatable with a `.modinfo` section.
    pub fn module_elf(modinfo: &[&str]) -> Vec<u8> {
        let mut data = Vec::new();
        for kv in modinfo {
            data.extend_from_slice(kv.as_bytes());
            data.push(0);
        }
        elf64(&[TestSection { name: ".modinfo", kind: 1, data, link: 0 }], None, None)
    }

    /// One ELF note in file layout.
    pub fn note(name: &str, kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn needed_lists_dt_needed_sonames_in_order() {
        let bytes = dynamic_elf(&["libxenlight.so.4.17", "libc.so.6"], None);
        let elf = Elf::parse(&bytes).unwrap();
        assert_eq!(elf.class(), Class::Elf64);
        assert_eq!(elf.machine(), EM_X86_64);
        assert_eq!(elf.needed().unwrap(), ["libxenlight.so.4.17", "libc.so.6"]);
    }

    #[test]
    fn static_file_needs_nothing_and_has_no_interpreter() {
        let bytes = module_elf(&["license=GPL"]);
        let elf = Elf::parse(&bytes).unwrap();
        assert!(elf.needed().unwrap().is_empty());
        assert_eq!(elf.interpreter().unwrap(), None);
    }

    #[test]
    fn interpreter_is_read_from_pt_interp() {
        let bytes = dynamic_elf(&["libc.so.6"], Some("/lib64/ld-linux-x86-64.so.2"));
        let elf = Elf::parse(&bytes).unwrap();
        assert_eq!(elf.interpreter().unwrap(), Some("/lib64/ld-linux-x86-64.so.2"));
    }

    #[test]
    fn section_by_name_finds_modinfo() {
        let bytes = module_elf(&["depends=xen-privcmd", "name=xenfs"]);
        let elf = Elf::parse(&bytes).unwrap();
        let info = elf.section_by_name(".modinfo").unwrap().unwrap();
        assert_eq!(info, b"depends=xen-privcmd\0name=xenfs\0");
        assert_eq!(elf.section_by_name(".text").unwrap(), None);
    }

    #[test]
    fn pvh_entry_is_read_from_the_xen_phys32_entry_note() {
        let mut notes = note("GNU", 3, &[1, 2, 3, 4, 5, 6, 7, 8]);
        notes.extend(note("Xen", XEN_ELFNOTE_PHYS32_ENTRY, &0x10_0000u32.to_le_bytes()));
        let bytes = elf64(&[], None, Some(&notes));
        let elf = Elf::parse(&bytes).unwrap();
        assert_eq!(elf.notes().unwrap().len(), 2);
        assert_eq!(elf.pvh_entry().unwrap(), Some(0x10_0000));
    }

    #[test]
    fn file_without_pvh_note_has_no_pvh_entry() {
        let bytes = elf64(&[], None, Some(&note("GNU", 3, &[0; 4])));
        assert_eq!(Elf::parse(&bytes).unwrap().pvh_entry().unwrap(), None);
    }

    #[test]
    fn non_elf_and_short_inputs_are_rejected() {
        assert_eq!(Elf::parse(b"\x7fELF").err(), Some(ElfError::TooShort { len: 4 }));
        assert_eq!(Elf::parse(&[0u8; 64]).err(), Some(ElfError::BadMagic));
        let mut big_endian = dynamic_elf(&[], None);
        big_endian[5] = 2;
        assert_eq!(Elf::parse(&big_endian).err(), Some(ElfError::NotLittleEndian(2)));
    }

    #[test]
    fn every_truncation_errors_instead_of_panicking() {
        let bytes = dynamic_elf(&["libxenctrl.so.4.17"], Some("/lib64/ld.so"));
        for len in 0..bytes.len() {
            if let Ok(elf) = Elf::parse(&bytes[..len]) {
                let _ = elf.needed();
                let _ = elf.interpreter();
                let _ = elf.notes();
                let _ = elf.section_by_name(".modinfo");
            }
        }
    }

    #[test]
    fn every_single_byte_corruption_is_handled() {
        let bytes = dynamic_elf(&["libxenctrl.so.4.17"], Some("/lib64/ld.so"));
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0xff;
            if let Ok(elf) = Elf::parse(&b) {
                let _ = elf.needed();
                let _ = elf.interpreter();
                let _ = elf.notes();
            }
        }
    }
}
