//! The isolation checker: given which guests the backend serves (their GGTT
//! slices and PPGTT roots) and which are gone, walks everything the GPU can
//! reach and reports the first breach of the DESIGN.md invariants.
//!
//! What is reachable: every present GGTT entry, every leaf under every
//! declared root (walked from the tables' bytes, like the GPU), every cached
//! TLB translation, and any live table nobody declared. The grants are the
//! model's own grant tables and window mappings, so "what each guest granted"
//! is Xen's truth, not the backend's bookkeeping.
//!
//! # What it verifies
//! 1. No violation was recorded while the test ran (unmap while cached or
//!    referenced, contract breaches of the platform traits).
//! 2. Every reachable non-scratch page is a grant mapping in the backend's
//!    window (not backend RAM, not an unmapped window slot), of a frame owned
//!    by the guest that owns the entry (its GGTT slice, its context), which
//!    that guest granted; and nothing is wider than granted: a read-only
//!    grant has a read-only IOMMU mapping and, in a PPGTT, a read-only PTE.
//! 3. Every directory entry points at a live table of the level below (or
//!    at scratch), and no table is shared between two guests' contexts.
//! 4. A gone guest has no non-scratch entry in its slice or its live roots,
//!    nothing of it is mapped in the window, and nothing reachable is its.
//! 5. A live table no declared root reaches holds only scratch entries.
//!
//! # What it costs
//! What is mapped, not the size of the GPU: only GGTT entries that are not
//! scratch are read (`GpuState::ggtt_set`); a table's non-scratch entries
//! come from its bytes, cached by the frame's write stamp (`summary`); a
//! leaf table is judged once per distinct (page, RW) it holds, and a page
//! once per check. When nothing the checker reads changed since the last
//! check (the platform's epoch) and the guests are the same, the last
//! verdict stands.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use gtt::types::{Access, BusAddr, DomId, GrantRef, Level, PAGE_SHIFT};
use i915_lite::pte::Gen8Pte;

use crate::grants::abi::GTF_readonly;
use crate::physmap::IommuFault;
use crate::platform::{LastCheck, Platform, World};
use crate::trace::{Location, Space, Violation};

/// What the test says about one guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestView {
    /// The guest.
    pub dom: DomId,
    /// Its GGTT slice (indexes).
    pub ggtt: Range<u32>,
    /// The PML4 tables of its contexts.
    pub roots: Vec<BusAddr>,
    /// Detached, dead or dropped by the backend: nothing of it may remain.
    pub gone: bool,
}

impl GuestView {
    /// A served guest with no slice and no contexts yet.
    pub fn new(dom: DomId) -> GuestView {
        GuestView { dom, ggtt: 0..0, roots: Vec::new(), gone: false }
    }

    /// With GGTT slice `ggtt`.
    pub fn with_ggtt(mut self, ggtt: Range<u32>) -> GuestView {
        self.ggtt = ggtt;
        self
    }

    /// With one more context root.
    pub fn with_root(mut self, root: BusAddr) -> GuestView {
        self.roots.push(root);
        self
    }

    /// Marked gone.
    pub fn gone(mut self) -> GuestView {
        self.gone = true;
        self
    }
}

/// What a passing check looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Non-scratch GGTT entries checked.
    pub ggtt_mapped: usize,
    /// Non-scratch PPGTT leaves checked.
    pub ppgtt_leaves: usize,
    /// Tables walked.
    pub tables: usize,
    /// Non-scratch TLB entries checked.
    pub tlb_entries: usize,
}

/// The first isolation problem found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A violation the model recorded when it happened.
    Violation(Violation),
    /// A non-scratch translation no declared guest owns.
    Unowned { at: Location, page: BusAddr },
    /// A translation to the backend's own RAM instead of a grant.
    NotAGrant { at: Location, owner: DomId, page: BusAddr },
    /// A translation to a window address with nothing mapped.
    Unresolvable { at: Location, owner: DomId, page: BusAddr, fault: IommuFault },
    /// A translation of `owner`'s to a page `granter` granted.
    OtherGuest { at: Location, owner: DomId, page: BusAddr, granter: DomId, gref: GrantRef },
    /// A read-only grant reachable for writing (IOMMU mapping or PPGTT PTE).
    WiderThanGranted { at: Location, owner: DomId, page: BusAddr, gref: GrantRef },
    /// A non-scratch entry left in a gone guest's slice or context.
    GoneGuestEntry { dom: DomId, at: Location },
    /// A gone guest's grant still mapped in the window.
    GoneGuestMapped { dom: DomId, gref: GrantRef, bus: BusAddr },
    /// A directory entry that points neither at scratch nor at a live table
    /// of the level below.
    BadDirectory { at: Location, points_to: BusAddr },
    /// A declared root that is not a live PML4 table.
    UnknownRoot { dom: DomId, root: BusAddr },
    /// A table reachable from two guests' contexts.
    SharedTable { table: BusAddr, first: DomId, second: DomId },
    /// A live table nobody's root reaches, with a non-scratch entry.
    OrphanTable { table: BusAddr, index: u16 },
}

/// Checks every isolation invariant of the model's current state against
/// `guests` (see the module documentation). Never panics.
///
/// A check is a function of the state and `guests`: when nothing it reads
/// changed since the last check (the platform's epoch is the same, see
/// `Platform::world_mut`) and `guests` are the same, the last verdict is
/// returned again.
pub fn check_isolation(platform: &Platform, guests: &[GuestView]) -> Result<CheckStats, Problem> {
    let w = platform.world();
    if let Some(last) = &*w.last_check.borrow() {
        if last.epoch == w.epoch && last.guests == guests {
            return last.verdict;
        }
    }
    let verdict = check_now(&w, guests);
    let last = LastCheck { epoch: w.epoch, guests: guests.to_vec(), verdict };
    *w.last_check.borrow_mut() = Some(last);
    verdict
}

fn check_now(w: &World, guests: &[GuestView]) -> Result<CheckStats, Problem> {
    if let Some(&v) = w.trace.violations.first() {
        return Err(Problem::Violation(v));
    }
    let mut c = Checker {
        w,
        guests,
        stats: CheckStats::default(),
        owner_of_table: BTreeMap::new(),
        good_leaves: BTreeSet::new(),
    };
    c.ggtt()?;
    c.ppgtt()?;
    c.orphans()?;
    c.tlb()?;
    c.gone_mappings()?;
    Ok(c.stats)
}

struct Checker<'a> {
    w: &'a World,
    guests: &'a [GuestView],
    stats: CheckStats,
    owner_of_table: BTreeMap<BusAddr, DomId>,
    /// `(owner, page, PTE writable)` already judged fine in this check: a
    /// verdict depends on nothing else, and nothing changes during a check
    /// (the first bad one ends it, so only good ones are kept).
    good_leaves: BTreeSet<(DomId, BusAddr, Option<bool>)>,
}

impl Checker<'_> {
    fn slice_owner(&self, index: u32) -> Option<&GuestView> {
        self.guests.iter().find(|g| g.ggtt.contains(&index))
    }

    fn root_owner(&self, root: BusAddr) -> Option<&GuestView> {
        self.guests.iter().find(|g| g.roots.contains(&root))
    }

    fn scratch(&self) -> BusAddr {
        self.w.gpu.scratch_page
    }

    /// A reachable non-scratch page of `owner`'s; `pte_writable` is the PPGTT
    /// entries' RW (None in the GGTT, which has no RW bit).
    fn leaf(
        &mut self,
        at: Location,
        owner: DomId,
        page: BusAddr,
        pte_writable: Option<bool>,
    ) -> Result<(), Problem> {
        let key = (owner, page, pte_writable);
        if self.good_leaves.contains(&key) {
            return Ok(());
        }
        self.judge_leaf(at, owner, page, pte_writable)?;
        self.good_leaves.insert(key);
        Ok(())
    }

    fn judge_leaf(
        &self,
        at: Location,
        owner: DomId,
        page: BusAddr,
        pte_writable: Option<bool>,
    ) -> Result<(), Problem> {
        let Some(m) = self.w.physmap.mapping_at(page.frame()) else {
            if page.frame() < self.w.physmap.ram_pages {
                return Err(Problem::NotAGrant { at, owner, page });
            }
            let fault = IommuFault::NotMapped { bus: page };
            return Err(Problem::Unresolvable { at, owner, page, fault });
        };
        let granter = self.w.mem.owner(m.frame).unwrap_or(m.dom);
        if granter != owner || m.dom != owner {
            return Err(Problem::OtherGuest { at, owner, page, granter, gref: m.gref });
        }
        let entry = self.w.grant_entry(m.dom, m.gref).unwrap_or_default();
        let granted_ro = entry.flags & GTF_readonly != 0;
        let writable = m.access == Access::ReadWrite || pte_writable == Some(true);
        if granted_ro && writable {
            return Err(Problem::WiderThanGranted { at, owner, page, gref: m.gref });
        }
        Ok(())
    }

    /// Every GGTT entry but the scratch ones (`GpuState::ggtt_set`; the
    /// scratch entry is present and points at scratch, so skipping it
    /// changes nothing).
    fn ggtt(&mut self) -> Result<(), Problem> {
        for &i in &self.w.gpu.ggtt_set {
            let bits = self.w.gpu.ggtt[i as usize];
            let pte = Gen8Pte::from_bits(bits);
            let page = BusAddr(pte.addr());
            if !pte.present() || page == self.scratch() {
                continue;
            }
            let at = Location::Ggtt { index: i };
            match self.slice_owner(i) {
                None => return Err(Problem::Unowned { at, page }),
                Some(g) if g.gone => return Err(Problem::GoneGuestEntry { dom: g.dom, at }),
                Some(g) => self.leaf(at, g.dom, page, None)?,
            }
            self.stats.ggtt_mapped += 1;
        }
        Ok(())
    }

    fn ppgtt(&mut self) -> Result<(), Problem> {
        for g in self.guests {
            for &root in &g.roots {
                let live = self.w.gpu.table_at_bus(root).copied();
                match live {
                    Some(t) if t.level == Level::Pml4 && g.gone => self.gone_root(g.dom, root)?,
                    Some(t) if t.level == Level::Pml4 => {
                        self.walk(g.dom, root, root, Level::Pml4, 0)?
                    }
                    None if g.gone => {}
                    _ => return Err(Problem::UnknownRoot { dom: g.dom, root }),
                }
            }
        }
        Ok(())
    }

    fn gone_root(&mut self, dom: DomId, root: BusAddr) -> Result<(), Problem> {
        self.owner_of_table.insert(root, dom);
        let scratch = self.w.gpu.scratch_entry(Level::Pml4).bits();
        match self.first_not(root, scratch) {
            Some(index) => Err(Problem::GoneGuestEntry {
                dom,
                at: Location::Table { table: root, level: Level::Pml4, index },
            }),
            None => Ok(()),
        }
    }

    /// The first entry of the table at `table` whose bits are not `bits`.
    fn first_not(&self, table: BusAddr, bits: u64) -> Option<u16> {
        let frame = self.w.table_frame(table)?;
        self.w.non_scratch(frame, bits).first().map(|&(i, _)| i)
    }

    fn walk(
        &mut self,
        owner: DomId,
        root: BusAddr,
        table: BusAddr,
        level: Level,
        base: u64,
    ) -> Result<(), Problem> {
        match self.owner_of_table.get(&table) {
            Some(&first) if first != owner => {
                return Err(Problem::SharedTable { table, first, second: owner })
            }
            Some(_) => return Ok(()),
            None => {}
        }
        self.owner_of_table.insert(table, owner);
        self.stats.tables += 1;
        let Some(frame) = self.w.table_frame(table) else {
            return Ok(());
        };
        // Entries equal to the level's scratch entry are present and lead
        // to scratch, which the loop skips: only the others are read.
        let scratch = self.w.gpu.scratch_entry(level).bits();
        if level == Level::Pt {
            // A leaf's verdict depends on its page and RW bit only: each
            // distinct pair is judged once; the loop below runs only to
            // name the first bad leaf in walk order.
            let t = self.w.leaf_targets(frame, scratch, self.scratch());
            let at = Location::Table { table, level, index: 0 };
            if t.targets.iter().all(|&(page, w)| self.leaf(at, owner, page, Some(w)).is_ok()) {
                self.stats.ppgtt_leaves += t.leaves;
                return Ok(());
            }
        }
        for &(index, bits) in self.w.non_scratch(frame, scratch).iter() {
            let pte = Gen8Pte::from_bits(bits);
            let target = BusAddr(pte.addr());
            if !pte.present() {
                continue;
            }
            let va = base | (u64::from(index) << level.shift());
            let Some(below) = level.below() else {
                if target != self.scratch() {
                    let at = Location::Ppgtt { root, va };
                    self.leaf(at, owner, target, Some(pte.writable()))?;
                    self.stats.ppgtt_leaves += 1;
                }
                continue;
            };
            if self.w.gpu.is_scratch_child(level, target) {
                continue;
            }
            match self.w.gpu.table_at_bus(target) {
                Some(t) if t.level == below => self.walk(owner, root, target, below, va)?,
                _ => {
                    let at = Location::Table { table, level, index };
                    return Err(Problem::BadDirectory { at, points_to: target });
                }
            }
        }
        Ok(())
    }

    fn orphans(&self) -> Result<(), Problem> {
        for t in self.w.gpu.tables.values() {
            if self.owner_of_table.contains_key(&t.page.bus) {
                continue;
            }
            let scratch = self.w.gpu.scratch_entry(t.level).bits();
            if let Some(index) = self.first_not(t.page.bus, scratch) {
                return Err(Problem::OrphanTable { table: t.page.bus, index });
            }
        }
        Ok(())
    }

    fn tlb(&mut self) -> Result<(), Problem> {
        for (&(space, vpage), e) in &self.w.gpu.tlb {
            if e.page == self.scratch() {
                continue;
            }
            let va = vpage << PAGE_SHIFT;
            let at = Location::Tlb { space, va };
            let (owner, pte_writable) = match space {
                Space::Ggtt => (self.slice_owner(vpage as u32), None),
                Space::Ppgtt { root } => (self.root_owner(root), Some(e.writable)),
            };
            match owner {
                None => return Err(Problem::Unowned { at, page: e.page }),
                Some(g) if g.gone => return Err(Problem::GoneGuestEntry { dom: g.dom, at }),
                Some(g) => self.leaf(at, g.dom, e.page, pte_writable)?,
            }
            self.stats.tlb_entries += 1;
        }
        Ok(())
    }

    fn gone_mappings(&self) -> Result<(), Problem> {
        for g in self.guests.iter().filter(|g| g.gone) {
            if let Some(m) = self.w.physmap.maptrack.values().find(|m| m.dom == g.dom) {
                return Err(Problem::GoneGuestMapped { dom: g.dom, gref: m.gref, bus: m.bus });
            }
        }
        Ok(())
    }
}
