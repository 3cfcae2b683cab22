//! Domains and their memory: one global store of 4 KiB frames, and per domain
//! a p2m (`gfn -> frame`).
//!
//! # Invariants
//! - A frame has exactly one owner for its whole life; frames are never freed
//!   (a destroyed domain's frames stay in the store, unreachable through any p2m
//!   but its own), so a `FrameId` never changes meaning.
//! - Byte accesses are bounds-checked and return [`MemError`]; none panics.
//! - Every frame carries a write stamp, taken from one counter that only
//!   grows, and renewed by every access that can change its bytes: equal
//!   stamps mean equal bytes (caches of what a frame holds key on it, and a
//!   restored frame gets back the stamp it had).

use std::collections::BTreeMap;

use gtt::types::DomId;

/// Bytes in a frame (4 KiB).
pub const PAGE_SIZE: usize = 4096;

/// A machine frame in the model's global frame store (an MFN, in Xen terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameId(pub u32);

/// A guest frame number: an index into one domain's p2m.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gfn(pub u64);

/// Where a domain is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// Running: may grant, its grants may be mapped.
    Running,
    /// Destroyed by the toolstack, but another domain still maps some of its
    /// grants: a zombie (`xl list` shows it as `(null)` until the backend lets go).
    Dying,
    /// Destroyed and fully released.
    Dead,
}

/// A byte access that could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// No such domain.
    NoSuchDomain(DomId),
    /// A domain with this id already exists.
    DomainExists(DomId),
    /// The domain has nothing at this gfn.
    NoSuchGfn { dom: DomId, gfn: Gfn },
    /// `offset + len` runs past the end of the page.
    OutOfPage { offset: usize, len: usize },
}

#[derive(Clone)]
pub(crate) struct Frame {
    pub owner: DomId,
    pub bytes: Box<[u8; PAGE_SIZE]>,
    /// The write stamp: the value of [`Memory::clock`] at the last access
    /// that could change `bytes`.
    pub stamp: u64,
}

#[derive(Clone)]
pub(crate) struct DomainMem {
    /// `p2m[gfn]`: gfns are handed out from 0 up and never taken back.
    pub p2m: Vec<FrameId>,
    pub state: DomainState,
}

/// The frame store and every domain's p2m.
#[derive(Default)]
pub(crate) struct Memory {
    frames: Vec<Frame>,
    pub domains: BTreeMap<DomId, DomainMem>,
    /// Source of write stamps; never goes back, not even on a restore.
    clock: u64,
}

/// The frames and p2ms as they were at [`Memory::snapshot`].
#[derive(Clone)]
pub(crate) struct MemorySnapshot {
    frames: Vec<Frame>,
    domains: BTreeMap<DomId, DomainMem>,
}

impl Memory {
    pub fn create_domain(&mut self, dom: DomId) -> Result<(), MemError> {
        if self.domains.contains_key(&dom) {
            return Err(MemError::DomainExists(dom));
        }
        self.domains.insert(dom, DomainMem { p2m: Vec::new(), state: DomainState::Running });
        Ok(())
    }

    /// Gives `dom` `count` fresh zeroed frames at its next free gfns.
    pub fn populate(&mut self, dom: DomId, count: u32) -> Result<Vec<Gfn>, MemError> {
        if !self.domains.contains_key(&dom) {
            return Err(MemError::NoSuchDomain(dom));
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let frame = FrameId(self.frames.len() as u32);
            self.clock += 1;
            let stamp = self.clock;
            self.frames.push(Frame { owner: dom, bytes: Box::new([0; PAGE_SIZE]), stamp });
            let d = self.domains.get_mut(&dom).expect("checked above");
            out.push(Gfn(d.p2m.len() as u64));
            d.p2m.push(frame);
        }
        Ok(out)
    }

    pub fn state(&self, dom: DomId) -> Option<DomainState> {
        self.domains.get(&dom).map(|d| d.state)
    }

    pub fn frame_of(&self, dom: DomId, gfn: Gfn) -> Result<FrameId, MemError> {
        let d = self.domains.get(&dom).ok_or(MemError::NoSuchDomain(dom))?;
        let at = usize::try_from(gfn.0).ok();
        at.and_then(|i| d.p2m.get(i)).copied().ok_or(MemError::NoSuchGfn { dom, gfn })
    }

    pub fn owner(&self, frame: FrameId) -> Option<DomId> {
        self.frames.get(frame.0 as usize).map(|f| f.owner)
    }

    pub fn page(&self, frame: FrameId) -> &[u8; PAGE_SIZE] {
        &self.frames[frame.0 as usize].bytes
    }

    /// The bytes of `frame` for writing: renews its write stamp.
    pub fn page_mut(&mut self, frame: FrameId) -> &mut [u8; PAGE_SIZE] {
        self.clock += 1;
        let f = &mut self.frames[frame.0 as usize];
        f.stamp = self.clock;
        &mut f.bytes
    }

    /// The write stamp of `frame` (see the module invariants).
    pub fn stamp(&self, frame: FrameId) -> u64 {
        self.frames[frame.0 as usize].stamp
    }

    /// A copy of every frame and p2m, to come back to with [`Memory::restore`].
    pub fn snapshot(&self) -> MemorySnapshot {
        MemorySnapshot { frames: self.frames.clone(), domains: self.domains.clone() }
    }

    /// Puts every frame and p2m back as it was at `snap`: frames made since
    /// are dropped, and only frames whose stamp changed are copied back (a
    /// restored frame gets its old stamp back, which names its old bytes).
    pub fn restore(&mut self, snap: &MemorySnapshot) {
        self.frames.truncate(snap.frames.len());
        for (f, s) in self.frames.iter_mut().zip(&snap.frames) {
            if f.stamp != s.stamp {
                f.bytes.copy_from_slice(&s.bytes[..]);
                f.stamp = s.stamp;
                f.owner = s.owner;
            }
        }
        let have = self.frames.len();
        self.frames.extend_from_slice(&snap.frames[have..]);
        let same_domains = self.domains.len() == snap.domains.len()
            && self.domains.keys().zip(snap.domains.keys()).all(|(a, b)| a == b);
        if same_domains {
            // Reuses every p2m's allocation (this runs once per fuzz input).
            for (d, s) in self.domains.values_mut().zip(snap.domains.values()) {
                d.p2m.clone_from(&s.p2m);
                d.state = s.state;
            }
        } else {
            self.domains.clone_from(&snap.domains);
        }
    }

    pub fn read(&self, frame: FrameId, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        let range = in_page(offset, buf.len())?;
        buf.copy_from_slice(&self.page(frame)[range]);
        Ok(())
    }

    pub fn write(&mut self, frame: FrameId, offset: usize, bytes: &[u8]) -> Result<(), MemError> {
        let range = in_page(offset, bytes.len())?;
        self.page_mut(frame)[range].copy_from_slice(bytes);
        Ok(())
    }

    pub fn read_u64(&self, frame: FrameId, index: u16) -> u64 {
        let at = usize::from(index) * 8;
        let mut b = [0; 8];
        b.copy_from_slice(&self.page(frame)[at..at + 8]);
        u64::from_le_bytes(b)
    }

    pub fn write_u64(&mut self, frame: FrameId, index: u16, value: u64) {
        let at = usize::from(index) * 8;
        self.page_mut(frame)[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }
}

/// The byte range `offset..offset+len` if it lies inside one page.
pub(crate) fn in_page(offset: usize, len: usize) -> Result<core::ops::Range<usize>, MemError> {
    match offset.checked_add(len) {
        Some(end) if end <= PAGE_SIZE => Ok(offset..end),
        _ => Err(MemError::OutOfPage { offset, len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populate_gives_consecutive_gfns_to_distinct_frames() {
        let mut m = Memory::default();
        m.create_domain(DomId(3)).unwrap();
        let gfns = m.populate(DomId(3), 3).unwrap();
        assert_eq!(gfns, vec![Gfn(0), Gfn(1), Gfn(2)]);
        let f0 = m.frame_of(DomId(3), Gfn(0)).unwrap();
        let f2 = m.frame_of(DomId(3), Gfn(2)).unwrap();
        assert_ne!(f0, f2);
        assert_eq!(m.owner(f2), Some(DomId(3)));
    }

    #[test]
    fn access_past_the_page_end_is_an_error_not_a_panic() {
        let mut m = Memory::default();
        m.create_domain(DomId(3)).unwrap();
        m.populate(DomId(3), 1).unwrap();
        let f = m.frame_of(DomId(3), Gfn(0)).unwrap();
        let mut buf = [0; 8];
        assert_eq!(
            m.read(f, PAGE_SIZE - 4, &mut buf),
            Err(MemError::OutOfPage { offset: PAGE_SIZE - 4, len: 8 })
        );
        assert!(m.write(f, usize::MAX, &[1]).is_err());
        assert_eq!(
            m.frame_of(DomId(3), Gfn(9)),
            Err(MemError::NoSuchGfn { dom: DomId(3), gfn: Gfn(9) })
        );
    }

    #[test]
    fn creating_a_domain_twice_is_refused() {
        let mut m = Memory::default();
        m.create_domain(DomId(1)).unwrap();
        assert_eq!(m.create_domain(DomId(1)), Err(MemError::DomainExists(DomId(1))));
    }
}
