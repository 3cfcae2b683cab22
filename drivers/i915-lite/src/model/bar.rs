//! The model's GTTMMADR BAR: registers in the lower half, the GGTT (64-bit
//! entries) at half the BAR, and what "the hardware" may use.
//!
//! # Rules (stricter than x86 hardware), and what each follows
//! - A GGTT write lands in GGTT memory at once (a read returns it), but the
//!   GPU's view of the GGTT ([`BarState::gpu_ggtt`]) changes only when the
//!   generation's sequence completes:
//!   - Gen8/Gen9: a write of `GFX_FLSH_CNTL_EN` to `GFX_FLSH_CNTL`
//!     followed by any read through the BAR (the flush write is posted
//!     until a read completes it). It publishes the entries written before
//!     the flush write; entries written after it stay stale. (PRM Skylake
//!     Vol. 2c `GFX_FLSH_CNTL`; Linux `gen8_ggtt_invalidate`,
//!     `gen6_ggtt_invalidate`.)
//!   - Gen12: any read through the BAR after the writes: the GGTT is mapped
//!     uncached, the writes are posted until a read completes them, and
//!     the device snoops them to invalidate its TLBs (12th Generation Core
//!     datasheet Vol. 2, Intel doc. 767626, GTTMMADR: "The device snoops
//!     writes to this region in order to invalidate any cached
//!     translations"; Linux `gen8_ggtt_invalidate` writes nothing there
//!     since commit 7d7a328d0e8d). A `GFX_FLSH_CNTL` write is accepted and
//!     counted, with no effect.
//! - Each publication is logged as a [`Flush`] with the GGTT indexes it
//!   covered and whether the last of them was read back (Gen8/Gen9: before
//!   the flush write; Gen12: by the read that completed them).
//! - An entry the GPU starts to use is checked with the device's format
//!   ([`crate::pte::Format::check_ggtt`]): a Gen12 LM bit, an address
//!   beyond 2^39 or bits no encoder sets are violations.
//! - Engine TLB invalidation registers behave as [`super::TlbModel`] says;
//!   `GEN11_GT_VEBOX_VDBOX_DISABLE` reads the media fuse (Gen12).
//! - Accesses outside the BAR, misaligned, past the GGTT's end, or a 32-bit
//!   write into the GGTT (entries are written whole: `gen8_set_pte`, and on
//!   Gen11+ "writes larger than 64 bit to the GTT pagetable range will be
//!   dropped") are violations.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Ref, RefCell};

use crate::engines::Engines;
use crate::ggtt::GgttSync;
use crate::ids::Gen;
use crate::pte::{Entry, EntryFault, Format};
use crate::regs::{Mmio, GEN11_GT_VEBOX_VDBOX_DISABLE, GFX_FLSH_CNTL, GFX_FLSH_CNTL_EN};

use super::{ModelMemory, TlbModel};

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
    /// The GPU started to use a GGTT entry its hardware would misread.
    GgttEntry {
        /// The entry's index.
        index: u32,
        /// Its value.
        entry: Entry,
        /// What is wrong with it.
        fault: EntryFault,
    },
    /// A TLB invalidation request for an engine the device does not have.
    TlbNoSuchEngine {
        /// The register written.
        reg: u32,
        /// The instance bit.
        bit: u32,
    },
}

/// One publication of GGTT writes to the GPU, as the model saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flush {
    /// GGTT indexes written since the previous one, in order.
    pub ggtt_writes: Vec<u32>,
    /// The last of them was read back (see the module documentation).
    pub read_back: bool,
    /// The publication happened (Gen8/Gen9: a read followed the flush write).
    pub completed: bool,
}

/// Everything the BAR holds and saw.
#[derive(Debug)]
pub struct BarState {
    gen: Gen,
    format: Format,
    size: u32,
    ggtt_base: u32,
    ggtt: Vec<u64>,
    visible: Vec<u64>,
    regs: BTreeMap<u32, u32>,
    media_fuse: u32,
    mem: ModelMemory,
    /// The engine TLBs.
    pub tlb: TlbModel,
    since_flush: Vec<u32>,
    read_back: bool,
    /// Entries the pending Gen8/Gen9 flush will publish.
    pending: Option<Vec<u32>>,
    /// Every publication, in order.
    pub flushes: Vec<Flush>,
    /// `GFX_FLSH_CNTL` flush writes (on Gen12 they do nothing).
    pub flush_control_writes: u64,
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
    /// The generation modelled.
    pub fn gen(&self) -> Gen {
        self.gen
    }

    /// The entry format of the GGTT.
    pub fn format(&self) -> Format {
        self.format
    }

    /// GGTT entries.
    pub fn ggtt_entries(&self) -> u32 {
        self.ggtt.len() as u32
    }

    /// GGTT entry `index` as stored (what a read returns).
    pub fn ggtt(&self, index: u32) -> Entry {
        Entry::from_bits(self.ggtt[index as usize])
    }

    /// GGTT entry `index` as the GPU may use it (as of the last publication).
    pub fn gpu_ggtt(&self, index: u32) -> Entry {
        Entry::from_bits(self.visible[index as usize])
    }

    /// The address the GPU uses through GGTT entry `index`.
    pub fn gpu_ggtt_addr(&self, index: u32) -> u64 {
        self.format.ggtt_addr(self.gpu_ggtt(index))
    }

    /// Whether the GPU uses a present GGTT entry naming `addr`.
    pub fn gpu_reaches(&self, addr: u64) -> bool {
        let f = self.format;
        self.visible.iter().any(|&v| {
            let e = Entry::from_bits(v);
            e.present() && f.ggtt_addr(e) == addr
        })
    }

    /// Indexes whose stored value the GPU does not see yet.
    pub fn stale(&self) -> Vec<u32> {
        let differs = |i: &usize| self.ggtt[*i] != self.visible[*i];
        (0..self.ggtt.len()).filter(differs).map(|i| i as u32).collect()
    }

    /// Completed publications.
    pub fn completed_flushes(&self) -> usize {
        self.flushes.iter().filter(|f| f.completed).count()
    }

    /// An engine that may still hold a translation to `addr` which the
    /// tables no longer give (see [`TlbModel::may_hold`]).
    pub fn tlb_may_hold(&self, addr: u64) -> Option<crate::engines::Engine> {
        let removed = self.mem.state().removed_at(addr)?;
        self.tlb.may_hold(removed)
    }

    /// Forgets the logs (after init, say), keeping contents.
    pub fn clear_logs(&mut self) {
        self.flushes.clear();
        self.written.clear();
        self.ggtt_writes = 0;
        self.flush_control_writes = 0;
        self.tlb.clear_logs();
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

    /// The GPU starts to use entry `i` as stored.
    fn publish(&mut self, i: u32) {
        let v = self.ggtt[i as usize];
        self.visible[i as usize] = v;
        if let Err(fault) = self.format.check_ggtt(Entry::from_bits(v)) {
            let entry = Entry::from_bits(v);
            self.violations.push(BarViolation::GgttEntry { index: i, entry, fault });
        }
    }

    fn on_read(&mut self, offset: u32) {
        let reads_last =
            |s: &Self| s.since_flush.last().is_some_and(|&last| offset == s.ggtt_base + last * 8);
        match GgttSync::of(self.gen) {
            GgttSync::FlushControl => {
                if let Some(pending) = self.pending.take() {
                    for i in pending {
                        self.publish(i);
                    }
                    if let Some(f) = self.flushes.last_mut() {
                        f.completed = true;
                    }
                }
                if reads_last(self) {
                    self.read_back = true;
                }
            }
            GgttSync::PostingRead => {
                if !self.since_flush.is_empty() {
                    let read_back = reads_last(self);
                    let writes = core::mem::take(&mut self.since_flush);
                    for &i in &writes {
                        self.publish(i);
                    }
                    self.flushes.push(Flush { ggtt_writes: writes, read_back, completed: true });
                }
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
            None if self.tlb.owns(offset) => u64::from(self.tlb.read(offset)),
            None if self.gen == Gen::Gen12 && offset == GEN11_GT_VEBOX_VDBOX_DISABLE => {
                u64::from(self.media_fuse)
            }
            None => u64::from(self.regs.get(&offset).copied().unwrap_or(0)),
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
                self.flush_control_writes += 1;
                if GgttSync::of(self.gen) == GgttSync::FlushControl {
                    let writes = core::mem::take(&mut self.since_flush);
                    let mut pending = self.pending.take().unwrap_or_default();
                    pending.extend_from_slice(&writes);
                    self.pending = Some(pending);
                    let read_back = writes.is_empty() || self.read_back;
                    self.flushes.push(Flush { ggtt_writes: writes, read_back, completed: false });
                }
            }
            None if self.tlb.owns(offset) => {
                let epoch = self.mem.state().epoch;
                self.tlb.write(offset, value as u32, epoch, &mut self.violations);
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
    /// A `gen` BAR of `size` bytes whose upper half starts with
    /// `ggtt_entries` entries, all zero; `engines` are the engines the
    /// device really has, `media_fuse` what `GEN11_GT_VEBOX_VDBOX_DISABLE`
    /// reads (Gen12), and `mem` the table memory whose writes the TLBs
    /// cache.
    pub fn new(
        size: u32,
        ggtt_entries: u32,
        gen: Gen,
        engines: &Engines,
        media_fuse: u32,
        mem: ModelMemory,
    ) -> Self {
        ModelBar(Rc::new(RefCell::new(BarState {
            gen,
            format: Format::of(gen),
            size,
            ggtt_base: size / 2,
            ggtt: alloc::vec![0; ggtt_entries as usize],
            visible: alloc::vec![0; ggtt_entries as usize],
            regs: BTreeMap::new(),
            media_fuse,
            mem,
            tlb: TlbModel::new(gen, engines),
            since_flush: Vec::new(),
            read_back: false,
            pending: None,
            flushes: Vec::new(),
            flush_control_writes: 0,
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
