//! The model's table memory (pages at consecutive bus addresses) and the
//! GPU's PPGTT walk over it.
//!
//! The walk follows the PRM's 4-level layout (Vol. 5 "Per-Process GTT"):
//! bits 47:39 index the PML4, 38:30 the PDP, 29:21 the PD, 20:12 the PT.
//! Write permission is the AND of the RW bits met on the way (Gen8 PPGTT
//! directory entries carry RW too). A directory entry that points outside
//! table memory, or an entry that is not present, is a fault: the driver
//! never leaves one (unset entries point at scratch).

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Ref, RefCell};

use gtt::Level;

use crate::ppgtt::TableMemory;
use crate::pte::{Gen8Pte, Ppat};

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
    OutsideTables(Level, Gen8Pte),
}

/// Table memory contents and counters.
#[derive(Debug)]
pub struct MemState {
    base: u64,
    pages: Vec<[u64; 512]>,
    /// `make_visible` calls.
    pub made_visible: u64,
    /// Writes since the last `make_visible`.
    pub unpublished_writes: u64,
}

impl MemState {
    /// The page at `bus`, if it is one of ours.
    pub fn page_at(&self, bus: u64) -> Option<u32> {
        let off = bus.checked_sub(self.base)?;
        let p = off / 4096;
        (off % 4096 == 0 && p < self.pages.len() as u64).then_some(p as u32)
    }

    /// Entry `index` of the page at `bus`.
    pub fn entry(&self, bus: u64, index: u16) -> Option<Gen8Pte> {
        let p = self.page_at(bus)?;
        Some(Gen8Pte::from_bits(self.pages[p as usize][usize::from(index)]))
    }

    /// Whether any entry of any page points at `addr` (present or not).
    pub fn holds(&self, addr: u64) -> bool {
        let hit = |e: &u64| Gen8Pte::from_bits(*e).addr() == addr;
        self.pages.iter().any(|p| p.iter().any(hit))
    }

    /// Translates `va` through the PPGTT whose PML4 is at `root`.
    pub fn walk(&self, root: u64, va: u64) -> Walk {
        let mut table = root;
        let mut writable = true;
        for level in Level::ALL {
            let Some(e) = self.entry(table, level.index(va)) else {
                return Walk::OutsideTables(level, Gen8Pte::from_bits(table));
            };
            if !e.present() {
                return Walk::NotPresent(level);
            }
            writable &= e.writable();
            if level == Level::Pt {
                return Walk::Page { addr: e.addr(), writable, ppat: e.ppat() };
            }
            if self.page_at(e.addr()).is_none() {
                return Walk::OutsideTables(level, e);
            }
            table = e.addr();
        }
        unreachable!("the loop returns at the leaf level")
    }
}

/// A handle on the model's table memory; clones share it.
#[derive(Clone, Debug)]
pub struct ModelMemory(Rc<RefCell<MemState>>);

impl ModelMemory {
    /// `pages` zeroed pages from bus address `base` (4 KiB aligned).
    pub fn new(base: u64, pages: u32) -> Self {
        ModelMemory(Rc::new(RefCell::new(MemState {
            base,
            pages: alloc::vec![[0; 512]; pages as usize],
            made_visible: 0,
            unpublished_writes: 0,
        })))
    }

    /// The state, to look at.
    pub fn state(&self) -> Ref<'_, MemState> {
        self.0.borrow()
    }

    /// Writes an entry directly (fault injection).
    pub fn poke(&self, bus: u64, index: u16, value: u64) -> bool {
        let mut s = self.0.borrow_mut();
        let Some(p) = s.page_at(bus) else { return false };
        s.pages[p as usize][usize::from(index)] = value;
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
        s.pages[page as usize][usize::from(index)] = value;
        s.unpublished_writes += 1;
    }
    fn make_visible(&mut self) {
        let mut s = self.0.borrow_mut();
        s.made_visible += 1;
        s.unpublished_writes = 0;
    }
}
