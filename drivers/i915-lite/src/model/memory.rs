//! The model's table memory (pages at consecutive bus addresses) and the
//! GPU's PPGTT walk over it.
//!
//! The walk follows the 4-level layout (PRM Skylake Vol. 5 "Per-Process
//! GTT"; i915 `gen8_ppgtt.c`, which Gen12 integrated parts share): bits
//! 47:39 index the PML4, 38:30 the PDP, 29:21 the PD, 20:12 the PT. Write
//! permission is the AND of the RW bits met on the way (Gen8+ PPGTT
//! directory entries carry RW too). Entries are read with the device's
//! [`Format`] (Gen12 addresses are bits 12..=45). A directory entry that
//! points outside table memory, an entry that is not present, or one that
//! the format says the hardware would misread ([`EntryFault`]: a Gen12 LM
//! bit, an address beyond 2^39, bits no encoder sets) ends the walk: the
//! driver never leaves one (unset entries point at scratch).
//!
//! Every write advances an *epoch*. The model is told which pages are
//! context roots ([`ModelMemory::add_root`]); a write to a table reachable
//! from a root that changes a present entry makes every page that entry led
//! to unreachable *through it*, and the epoch is remembered for those
//! addresses, so the BAR model can tell whether an engine TLB was
//! invalidated since then (see [`super::TlbModel`]). Writes to tables no
//! root reaches (a subtree already unlinked, a fresh table not linked yet)
//! can change no translation and are not remembered, nor counted in
//! [`MemState::unpublished_reachable`].

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Ref, RefCell};

use gtt::Level;

use crate::ppgtt::TableMemory;
use crate::pte::{Entry, EntryFault, Format, Ppat};

/// Where a GPU virtual address led.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// A page: its bus address, whether every level allowed writes, and the
    /// leaf's PPAT index.
    Page {
        /// Bus address of the page.
        addr: u64,
        /// Writable through every level.
        writable: bool,
        /// The leaf's PPAT index.
        ppat: Ppat,
    },
    /// The walk met a non-present entry at `level`.
    NotPresent(Level),
    /// A directory entry at `level` points outside table memory.
    OutsideTables(Level, Entry),
    /// An entry at `level` the hardware would misread.
    Fault(Level, Entry, EntryFault),
}

/// Table memory contents and counters.
#[derive(Debug)]
pub struct MemState {
    format: Format,
    base: u64,
    pages: Vec<[u64; 512]>,
    /// `make_visible` calls.
    pub made_visible: u64,
    /// Writes since the last `make_visible`.
    pub unpublished_writes: u64,
    /// Writes since the last `make_visible` to tables a root reaches.
    pub unpublished_reachable: u64,
    /// Writes so far: the epoch of the next change is `epoch + 1`.
    pub epoch: u64,
    /// Per address, the epoch at which a reachable entry last stopped leading to it.
    removed: BTreeMap<u64, u64>,
    /// Context roots (PML4 pages), as the test registered them.
    roots: BTreeSet<u64>,
    /// The pages the roots reach, with their level, while no write to one
    /// of them (or to the roots) changed it.
    reachable: Option<BTreeMap<u32, Level>>,
}

impl MemState {
    /// The entry format the walk reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The page at `bus`, if it is one of ours.
    pub fn page_at(&self, bus: u64) -> Option<u32> {
        let off = bus.checked_sub(self.base)?;
        let p = off / 4096;
        (off % 4096 == 0 && p < self.pages.len() as u64).then_some(p as u32)
    }

    /// Entry `index` of the page at `bus`.
    pub fn entry(&self, bus: u64, index: u16) -> Option<Entry> {
        let p = self.page_at(bus)?;
        Some(Entry::from_bits(self.pages[p as usize][usize::from(index)]))
    }

    /// Whether any entry of any page names `addr` (present or not).
    pub fn holds(&self, addr: u64) -> bool {
        let f = self.format;
        let hit = |e: &u64| f.ppgtt_addr(Entry::from_bits(*e)) == addr;
        self.pages.iter().any(|p| p.iter().any(hit))
    }

    /// The epoch at which a reachable entry last stopped leading to `addr`.
    pub fn removed_at(&self, addr: u64) -> Option<u64> {
        self.removed.get(&addr).copied()
    }

    /// The level of page `page` if a registered root reaches it.
    fn reachable_level(&mut self, page: u32) -> Option<Level> {
        if self.reachable.is_none() {
            self.reachable = Some(self.reachable_pages());
        }
        self.reachable.as_ref()?.get(&page).copied()
    }

    /// Every page the registered roots reach, with its level.
    fn reachable_pages(&self) -> BTreeMap<u32, Level> {
        let mut seen = BTreeMap::new();
        let mut todo: Vec<(u32, Level)> =
            self.roots.iter().filter_map(|&r| Some((self.page_at(r)?, Level::Pml4))).collect();
        while let Some((p, level)) = todo.pop() {
            if seen.insert(p, level).is_some() {
                continue;
            }
            let Some(below) = level.below() else { continue };
            for &bits in self.pages[p as usize].iter() {
                if let Some(child) = self.table_of(Entry::from_bits(bits)) {
                    todo.push((child, below));
                }
            }
        }
        seen
    }

    /// The table page a directory entry leads to, if it leads to one.
    fn table_of(&self, e: Entry) -> Option<u32> {
        let f = self.format;
        (e.present() && f.check_ppgtt(e).is_ok()).then(|| self.page_at(f.ppgtt_addr(e)))?
    }

    /// Every page address the table `page` of `level` leads to (leaves
    /// included, each table visited once).
    fn leaves_under(
        &self,
        page: u32,
        level: Level,
        out: &mut BTreeSet<u64>,
        seen: &mut BTreeSet<u32>,
    ) {
        if !seen.insert(page) {
            return;
        }
        for &bits in self.pages[page as usize].iter() {
            let e = Entry::from_bits(bits);
            match level.below() {
                None if e.present() => {
                    out.insert(self.format.ppgtt_addr(e));
                }
                None => {}
                Some(below) => {
                    if let Some(child) = self.table_of(e) {
                        self.leaves_under(child, below, out, seen);
                    }
                }
            }
        }
    }

    /// Remembers that entry `old` of page `page` (reachable at `level`)
    /// stopped leading where it led, at the current epoch.
    fn record_removal(&mut self, level: Level, old: Entry) {
        let mut gone = BTreeSet::new();
        match level.below() {
            None => {
                gone.insert(self.format.ppgtt_addr(old));
            }
            Some(below) => {
                if let Some(child) = self.table_of(old) {
                    self.leaves_under(child, below, &mut gone, &mut BTreeSet::new());
                }
            }
        }
        for a in gone {
            self.removed.insert(a, self.epoch);
        }
    }

    /// Translates `va` through the PPGTT whose PML4 is at `root`.
    pub fn walk(&self, root: u64, va: u64) -> Walk {
        let f = self.format;
        let mut table = root;
        let mut writable = true;
        for level in Level::ALL {
            let Some(e) = self.entry(table, level.index(va)) else {
                return Walk::OutsideTables(level, Entry::from_bits(table));
            };
            if !e.present() {
                return Walk::NotPresent(level);
            }
            if let Err(fault) = f.check_ppgtt(e) {
                return Walk::Fault(level, e, fault);
            }
            writable &= f.writable(e);
            if level == Level::Pt {
                return Walk::Page { addr: f.ppgtt_addr(e), writable, ppat: f.pat(e) };
            }
            if self.page_at(f.ppgtt_addr(e)).is_none() {
                return Walk::OutsideTables(level, e);
            }
            table = f.ppgtt_addr(e);
        }
        unreachable!("the loop returns at the leaf level")
    }
}

/// A handle on the model's table memory; clones share it.
#[derive(Clone, Debug)]
pub struct ModelMemory(Rc<RefCell<MemState>>);

impl ModelMemory {
    /// `pages` zeroed pages from bus address `base` (4 KiB aligned), read
    /// as `format` entries.
    pub fn new(base: u64, pages: u32, format: Format) -> Self {
        ModelMemory(Rc::new(RefCell::new(MemState {
            format,
            base,
            pages: alloc::vec![[0; 512]; pages as usize],
            made_visible: 0,
            unpublished_writes: 0,
            unpublished_reachable: 0,
            epoch: 0,
            removed: BTreeMap::new(),
            roots: BTreeSet::new(),
            reachable: None,
        })))
    }

    /// Registers the PML4 page at `bus` as a context root (the GPU may walk
    /// from it).
    pub fn add_root(&self, bus: u64) {
        let mut s = self.0.borrow_mut();
        s.roots.insert(bus);
        s.reachable = None;
    }

    /// Forgets a context root.
    pub fn remove_root(&self, bus: u64) {
        let mut s = self.0.borrow_mut();
        s.roots.remove(&bus);
        s.reachable = None;
    }

    /// The state, to look at.
    pub fn state(&self) -> Ref<'_, MemState> {
        self.0.borrow()
    }

    /// Writes an entry directly, untracked (fault injection).
    pub fn poke(&self, bus: u64, index: u16, value: u64) -> bool {
        let mut s = self.0.borrow_mut();
        let Some(p) = s.page_at(bus) else { return false };
        s.pages[p as usize][usize::from(index)] = value;
        s.reachable = None;
        true
    }
}

impl TableMemory for ModelMemory {
    fn pages(&self) -> u32 {
        self.0.borrow().pages.len() as u32
    }
    fn bus(&self, page: u32) -> u64 {
        self.0.borrow().base + u64::from(page) * 4096
    }
    fn read(&self, page: u32, index: u16) -> u64 {
        self.0.borrow().pages[page as usize][usize::from(index)]
    }
    fn write(&mut self, page: u32, index: u16, value: u64) {
        let mut s = self.0.borrow_mut();
        s.epoch += 1;
        s.unpublished_writes += 1;
        let old = Entry::from_bits(s.pages[page as usize][usize::from(index)]);
        if let Some(level) = s.reachable_level(page) {
            s.unpublished_reachable += 1;
            if old.bits() != value {
                if old.present() {
                    s.record_removal(level, old);
                }
                // What the roots reach may change with this write.
                s.reachable = None;
            }
        }
        s.pages[page as usize][usize::from(index)] = value;
    }
    fn make_visible(&mut self) {
        let mut s = self.0.borrow_mut();
        s.made_visible += 1;
        s.unpublished_writes = 0;
        s.unpublished_reachable = 0;
    }
}
