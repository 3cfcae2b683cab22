//! The model's GTTMMADR BAR: registers in the lower half, the GGTT (64-bit
//! entries) at half the BAR, and what "the hardware" may use.
//!
//! # Rules (stricter than x86 hardware, matching the sequence i915 uses)
//! - A GGTT write lands in GGTT memory at once (a read returns it), but the
//!   GPU's view of the GGTT ([`BarState::gpu_ggtt`]) changes only through a
//!   *completed flush*: a write of `GFX_FLSH_CNTL_EN` to `GFX_FLSH_CNTL`
//!   followed by any read through the BAR (the flush write is posted until
//!   a read completes it). A completed flush publishes the entries written
//!   before the flush write; entries written after it stay stale.
//! - Each flush is logged with the GGTT indexes written since the previous
//!   one and whether the last of them was read back before the flush write.
//! - An engine TLB control register reads back its invalidate bit as set
//!   for `tlb_busy_reads` reads after a write of 1, then 0.
//! - Accesses outside the BAR, misaligned, past the GGTT's end, or a 32-bit
//!   write into the GGTT (Gen8+ entries are written whole) are violations.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Ref, RefCell};

use crate::pte::Gen8Pte;
use crate::regs::{Mmio, GEN8_M2TCR, GFX_FLSH_CNTL, GFX_FLSH_CNTL_EN, TLB_CONTROL_BASE};

/// A broken rule the model saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarViolation {
    /// Access beyond the BAR (offset).
    OutOfBar(u32),
    /// Misaligned access (offset, width in bytes).
    Misaligned(u32, u8),
    /// Access in the GGTT half past the last entry (offset).
    PastGgtt(u32),
    /// A 32-bit write into the GGTT (offset).
    NarrowGgttWrite(u32),
}

/// One flush as the model saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flush {
    /// GGTT indexes written since the previous flush write, in order.
    pub ggtt_writes: Vec<u32>,
    /// The last of them was read back before the flush write.
    pub read_back: bool,
    /// A read through the BAR followed the flush write (the posting read).
    pub completed: bool,
}

/// Everything the BAR holds and saw.
#[derive(Debug)]
pub struct BarState {
    size: u32,
    ggtt_base: u32,
    ggtt: Vec<u64>,
    visible: Vec<u64>,
    regs: BTreeMap<u32, u32>,
    tlb_busy: BTreeMap<u32, u32>,
    /// Reads a TLB control register stays busy after an invalidation.
    pub tlb_busy_reads: u32,
    /// Invalidations requested per TLB control register.
    pub tlb_invalidations: BTreeMap<u32, u32>,
    since_flush: Vec<u32>,
    read_back: bool,
    /// Entries the pending flush will publish.
    pending: Option<Vec<u32>>,
    /// Every flush, in order.
    pub flushes: Vec<Flush>,
    /// Every GGTT index ever written.
    pub written: BTreeSet<u32>,
    /// GGTT writes, total.
    pub ggtt_writes: u64,
    /// Rules broken.
    pub violations: Vec<BarViolation>,
    /// Fault injection: GGTT writes are dropped unseen (as by a BAR
    /// that is not decoding).
    pub drop_ggtt_writes: bool,
}

impl BarState {
    /// GGTT entries.
    pub fn ggtt_entries(&self) -> u32 {
        self.ggtt.len() as u32
    }

    /// GGTT entry `index` as stored (what a read returns).
    pub fn ggtt(&self, index: u32) -> Gen8Pte {
        Gen8Pte::from_bits(self.ggtt[index as usize])
    }

    /// GGTT entry `index` as the GPU may use it (as of the last completed flush).
    pub fn gpu_ggtt(&self, index: u32) -> Gen8Pte {
        Gen8Pte::from_bits(self.visible[index as usize])
    }

    /// Indexes whose stored value the GPU does not see yet.
    pub fn stale(&self) -> Vec<u32> {
        let differs = |i: &usize| self.ggtt[*i] != self.visible[*i];
        (0..self.ggtt.len()).filter(differs).map(|i| i as u32).collect()
    }

    /// Completed flushes.
    pub fn completed_flushes(&self) -> usize {
        self.flushes.iter().filter(|f| f.completed).count()
    }

    /// Forgets the logs (after init, say), keeping contents.
    pub fn clear_logs(&mut self) {
        self.flushes.clear();
        self.written.clear();
        self.ggtt_writes = 0;
        self.tlb_invalidations.clear();
    }

    fn check(&mut self, offset: u32, width: u8) -> bool {
        if offset.checked_add(u32::from(width)).is_none_or(|end| end > self.size) {
            self.violations.push(BarViolation::OutOfBar(offset));
            false
        } else if !offset.is_multiple_of(u32::from(width)) {
            self.violations.push(BarViolation::Misaligned(offset, width));
            false
        } else {
            true
        }
    }

    /// The GGTT index of `offset`, if it is in the GGTT half.
    fn ggtt_index(&mut self, offset: u32) -> Option<Result<usize, ()>> {
        let rel = offset.checked_sub(self.ggtt_base)?;
        let i = (rel / 8) as usize;
        if i < self.ggtt.len() {
            Some(Ok(i))
        } else {
            self.violations.push(BarViolation::PastGgtt(offset));
            Some(Err(()))
        }
    }

    fn on_read(&mut self, offset: u32) {
        if let Some(pending) = self.pending.take() {
            for i in pending {
                self.visible[i as usize] = self.ggtt[i as usize];
            }
            if let Some(f) = self.flushes.last_mut() {
                f.completed = true;
            }
        }
        if let Some(&last) = self.since_flush.last() {
            if offset == self.ggtt_base + last * 8 {
                self.read_back = true;
            }
        }
    }

    fn read(&mut self, offset: u32, width: u8) -> u64 {
        if !self.check(offset, width) {
            return !0;
        }
        self.on_read(offset);
        match self.ggtt_index(offset) {
            Some(Ok(i)) => {
                let v = self.ggtt[i];
                if width == 8 {
                    v
                } else if offset.is_multiple_of(8) {
                    v & 0xffff_ffff
                } else {
                    v >> 32
                }
            }
            Some(Err(())) => 0,
            None => {
                if let Some(busy) = self.tlb_busy.get_mut(&offset) {
                    if *busy > 0 {
                        *busy -= 1;
                        return 1;
                    }
                    return 0;
                }
                u64::from(self.regs.get(&offset).copied().unwrap_or(0))
            }
        }
    }

    fn write(&mut self, offset: u32, width: u8, value: u64) {
        if !self.check(offset, width) {
            return;
        }
        match self.ggtt_index(offset) {
            Some(Ok(_)) if self.drop_ggtt_writes => {}
            Some(Ok(i)) => {
                if width != 8 {
                    self.violations.push(BarViolation::NarrowGgttWrite(offset));
                    let shift = if offset.is_multiple_of(8) { 0 } else { 32 };
                    let keep = self.ggtt[i] & !(0xffff_ffffu64 << shift);
                    self.ggtt[i] = keep | ((value & 0xffff_ffff) << shift);
                } else {
                    self.ggtt[i] = value;
                }
                self.since_flush.push(i as u32);
                self.read_back = false;
                self.written.insert(i as u32);
                self.ggtt_writes += 1;
            }
            Some(Err(())) => {}
            None if offset == GFX_FLSH_CNTL && value as u32 == GFX_FLSH_CNTL_EN => {
                let writes = core::mem::take(&mut self.since_flush);
                let mut pending = self.pending.take().unwrap_or_default();
                pending.extend_from_slice(&writes);
                self.pending = Some(pending);
                let read_back = writes.is_empty() || self.read_back;
                self.flushes.push(Flush { ggtt_writes: writes, read_back, completed: false });
            }
            None if self.tlb_busy.contains_key(&offset) => {
                if value & 1 != 0 {
                    self.tlb_busy.insert(offset, self.tlb_busy_reads);
                    *self.tlb_invalidations.entry(offset).or_insert(0) += 1;
                }
            }
            None => {
                self.regs.insert(offset, value as u32);
            }
        }
    }
}

/// A handle on the model BAR; clones share the state, so a test keeps one
/// while the driver owns another.
#[derive(Clone, Debug)]
pub struct ModelBar(Rc<RefCell<BarState>>);

impl ModelBar {
    /// A BAR of `size` bytes whose upper half starts with `ggtt_entries`
    /// entries, all zero.
    pub fn new(size: u32, ggtt_entries: u32) -> Self {
        let mut tlb_busy = BTreeMap::new();
        for reg in TLB_CONTROL_BASE.into_iter().chain([GEN8_M2TCR]) {
            tlb_busy.insert(reg, 0);
        }
        ModelBar(Rc::new(RefCell::new(BarState {
            size,
            ggtt_base: size / 2,
            ggtt: alloc::vec![0; ggtt_entries as usize],
            visible: alloc::vec![0; ggtt_entries as usize],
            regs: BTreeMap::new(),
            tlb_busy,
            tlb_busy_reads: 2,
            tlb_invalidations: BTreeMap::new(),
            since_flush: Vec::new(),
            read_back: false,
            pending: None,
            flushes: Vec::new(),
            written: BTreeSet::new(),
            ggtt_writes: 0,
            violations: Vec::new(),
            drop_ggtt_writes: false,
        })))
    }

    /// The state, to look at.
    pub fn state(&self) -> Ref<'_, BarState> {
        self.0.borrow()
    }

    /// The state, to change (fault injection, log resets).
    pub fn state_mut(&self) -> core::cell::RefMut<'_, BarState> {
        self.0.borrow_mut()
    }
}

impl Mmio for ModelBar {
    fn read32(&mut self, offset: u32) -> u32 {
        self.0.borrow_mut().read(offset, 4) as u32
    }
    fn write32(&mut self, offset: u32, value: u32) {
        self.0.borrow_mut().write(offset, 4, u64::from(value));
    }
    fn read64(&mut self, offset: u32) -> u64 {
        self.0.borrow_mut().read(offset, 8)
    }
    fn write64(&mut self, offset: u32, value: u64) {
        self.0.borrow_mut().write(offset, 8, value);
    }
}
