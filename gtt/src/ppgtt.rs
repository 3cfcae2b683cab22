//! PPGTT contexts: 4-level, 48-bit trees whose directory levels the backend
//! owns. The guest sends only leaf mappings (GPU address -> grant); no
//! guest-owned page is ever walked, so nothing needs write protection.

use crate::counters::Released;
use crate::engine::{BatchOutcome, Context, Engine, NO_CTX};
use crate::error::Refusal;
use crate::platform::{GpuTables, GrantMapper};
use crate::tables::{Leaf, NodeId, EMPTY, NO_NODE};
use crate::types::{Access, BusAddr, ContextId, DomId, GrantRef, Level, PAGE_SIZE, PPGTT_VA_BITS};

/// One PPGTT map entry as the guest sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PpgttEntry {
    /// 4 KiB-aligned GPU virtual address below 2^48.
    pub addr: u64,
    /// The guest's grant of the page to map.
    pub gref: GrantRef,
    /// The access the entry gives the GPU.
    pub access: Access,
}

/// A valid PPGTT leaf address: 4 KiB aligned and below 2^48.
#[inline]
pub fn valid_gpu_addr(addr: u64) -> bool {
    addr.is_multiple_of(PAGE_SIZE) && addr >> PPGTT_VA_BITS == 0
}

impl<M: GrantMapper, W: GpuTables> Engine<M, W> {
    /// Creates a PPGTT context for `dom` (an empty root table) and returns its id.
    pub fn context_create(&mut self, dom: DomId) -> Result<ContextId, Refusal> {
        match self.try_context_create(dom) {
            Ok(c) => Ok(c),
            Err(r) => self.refuse(dom, r),
        }
    }

    fn try_context_create(&mut self, dom: DomId) -> Result<ContextId, Refusal> {
        let gi = self.guest_index(dom)?;
        let g = self.guest(gi);
        let max = g.limits.max_contexts;
        let id = g.contexts[..max as usize]
            .iter()
            .position(|&c| c == NO_CTX)
            .ok_or(Refusal::ContextLimit { max })?;
        let slot =
            self.contexts.iter().position(Option::is_none).ok_or(Refusal::ContextPoolExhausted)?;
        self.contexts[slot] = Some(Context { guest: gi, root: NO_NODE });
        match self.alloc_table(gi, slot, NO_NODE, 0, Level::Pml4) {
            Ok(root) => {
                self.contexts[slot] = Some(Context { guest: gi, root });
                let g = self.guest(gi);
                g.contexts[id] = slot as u32;
                g.stats.contexts += 1;
                Ok(ContextId(id as u16))
            }
            Err(r) => {
                self.contexts[slot] = None;
                Err(r)
            }
        }
    }

    /// The contexts `dom` has now.
    pub fn contexts(&self, dom: DomId) -> impl Iterator<Item = ContextId> + '_ {
        let g = self.guest_index(dom).ok().and_then(|gi| self.guests[gi].as_ref());
        g.into_iter().flat_map(|g| {
            g.contexts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c != NO_CTX)
                .map(|(i, _)| ContextId(i as u16))
        })
    }

    /// Where the GPU finds context `ctx`'s root table (the PML4 pointer a
    /// hardware context needs).
    pub fn context_root(&self, dom: DomId, ctx: ContextId) -> Result<BusAddr, Refusal> {
        let gi = self.guest_index(dom)?;
        let slot = self.context_slot(gi, ctx)?;
        let root = self.contexts[slot].as_ref().expect("live context slot").root;
        Ok(self.nodes.get(root).page.bus)
    }

    /// Destroys context `ctx`: clears its root's entries, invalidates, then
    /// unmaps the grants only it used and frees all its table pages.
    ///
    /// The caller must have made sure the GPU no longer runs the context
    /// (its root page is freed here).
    pub fn context_destroy(&mut self, dom: DomId, ctx: ContextId) -> Result<Released, Refusal> {
        let found = self.guest_index(dom).and_then(|gi| Ok((gi, self.context_slot(gi, ctx)?)));
        let (gi, slot) = match found {
            Ok(x) => x,
            Err(r) => return self.refuse(dom, r),
        };
        let mut rel =
            Released { entries_cleared: self.unlink_context(slot), ..Released::default() };
        self.invalidate_if_dirty();
        self.release_context(slot, &mut rel);
        let g = self.guest(gi);
        g.contexts[ctx.0 as usize] = NO_CTX;
        rel.contexts_destroyed = 1;
        self.finish(&mut rel);
        Ok(rel)
    }

    /// Clears every entry of the context's root, so that after the next
    /// invalidation nothing below it is reachable. Returns entries cleared.
    pub(crate) fn unlink_context(&mut self, slot: usize) -> u32 {
        let root = self.contexts[slot].as_ref().expect("live context slot").root;
        let page = self.nodes.get(root).page;
        let mut n = 0;
        for i in 0..512u16 {
            if self.nodes.get(root).entries[i as usize] != EMPTY {
                self.gpu.table_clear(&self.cap, page, Level::Pml4, i);
                n += 1;
            }
        }
        self.dirty |= n > 0;
        n
    }

    /// After `unlink_context` and an invalidation: drops every leaf's grant
    /// reference and frees every table page of the context, root last.
    pub(crate) fn release_context(&mut self, slot: usize, rel: &mut Released) {
        let (gi, root) = {
            let c = self.contexts[slot].as_ref().expect("live context slot");
            (c.guest, c.root)
        };
        let leaves = self.release_subtree(root, rel);
        self.counters.entries_cleared += leaves as u64;
        let g = self.guest(gi);
        g.stats.ppgtt_entries -= leaves;
        g.stats.contexts -= 1;
        self.contexts[slot] = None;
    }

    /// Frees `node` and everything below it; returns the leaves released.
    ///
    /// The subtree is already unreachable (the root was unlinked and the TLBs
    /// invalidated); entries are still cleared one by one, each before the
    /// table it points at is freed, so that no freed page keeps a stale bus
    /// address (the writer's contract) and no table is freed while referenced.
    fn release_subtree(&mut self, node: NodeId, rel: &mut Released) -> u32 {
        let (level, page) = {
            let n = self.nodes.get(node);
            (n.level, n.page)
        };
        let mut leaves = 0;
        for i in 0..512u16 {
            let e = core::mem::replace(&mut self.nodes.get_mut(node).entries[i as usize], EMPTY);
            if e == EMPTY {
                continue;
            }
            // The root's entries were cleared by `unlink_context`.
            if level != Level::Pml4 {
                self.gpu.table_clear(&self.cap, page, level, i);
            }
            if level == Level::Pt {
                self.drop_ref(Leaf::slot(e));
                leaves += 1;
            } else {
                leaves += self.release_subtree(e, rel);
            }
        }
        self.free_table(node);
        rel.table_pages_freed += 1;
        leaves
    }

    /// Allocates a table for `level` and links it at `parent[index]` (unless
    /// it is a root).
    fn alloc_table(
        &mut self,
        gi: usize,
        ctx: usize,
        parent: NodeId,
        index: u16,
        level: Level,
    ) -> Result<NodeId, Refusal> {
        let g = self.guest(gi);
        if g.stats.table_pages >= g.limits.max_table_pages {
            return Err(Refusal::TablePageLimit { max: g.limits.max_table_pages });
        }
        if self.nodes.free_count() == 0 {
            return Err(Refusal::TablePoolExhausted);
        }
        let page = self.gpu.table_alloc(&self.cap, level).ok_or(Refusal::TablePoolExhausted)?;
        let id = self
            .nodes
            .alloc(page, level, ctx as u32, parent, index)
            .expect("arena had a free node");
        self.guest(gi).stats.table_pages += 1;
        self.counters.table_pages_live += 1;
        if parent != NO_NODE {
            let p = self.nodes.get_mut(parent);
            let (ppage, plevel) = (p.page, p.level);
            p.entries[index as usize] = id;
            p.live += 1;
            self.gpu.table_set_dir(&self.cap, ppage, plevel, index, page);
            self.dirty = true;
        }
        Ok(id)
    }

    /// Unlinks `node` and then each ancestor that became empty (never the
    /// root); the pages are freed in `finish`, after the invalidation.
    fn prune(&mut self, mut node: NodeId) {
        loop {
            let n = self.nodes.get(node);
            if n.live != 0 || n.level == Level::Pml4 {
                return;
            }
            let (parent, pi) = (n.parent, n.parent_index);
            let p = self.nodes.get_mut(parent);
            let (ppage, plevel) = (p.page, p.level);
            p.entries[pi as usize] = EMPTY;
            p.live -= 1;
            self.gpu.table_clear(&self.cap, ppage, plevel, pi);
            self.dirty = true;
            self.pending_tables.push(node);
            node = parent;
        }
    }

    /// The leaf table for `addr`, allocating missing directory levels.
    fn leaf_table(
        &mut self,
        gi: usize,
        ctx: usize,
        root: NodeId,
        addr: u64,
    ) -> Result<NodeId, Refusal> {
        let mut node = root;
        for level in [Level::Pml4, Level::Pdp, Level::Pd] {
            let index = level.index(addr);
            let child = self.nodes.get(node).entries[index as usize];
            node = if child != EMPTY {
                child
            } else {
                let below = level.below().expect("not the leaf level");
                match self.alloc_table(gi, ctx, node, index, below) {
                    Ok(c) => c,
                    Err(r) => {
                        self.prune(node);
                        return Err(r);
                    }
                }
            };
        }
        Ok(node)
    }

    /// The leaf table for `addr` if it exists.
    fn find_leaf_table(&self, root: NodeId, addr: u64) -> Option<NodeId> {
        let mut node = root;
        for level in [Level::Pml4, Level::Pdp, Level::Pd] {
            let child = self.nodes.get(node).entries[level.index(addr) as usize];
            if child == EMPTY {
                return None;
            }
            node = child;
        }
        Some(node)
    }

    /// Maps each entry's granted page at the entry's GPU address in context
    /// `ctx`, replacing what was there. See [`BatchOutcome`].
    pub fn ppgtt_map(
        &mut self,
        dom: DomId,
        ctx: ContextId,
        entries: &[PpgttEntry],
    ) -> BatchOutcome {
        let (gi, slot, root) = match self.batch_context(dom, ctx, entries.len()) {
            Ok(x) => x,
            Err(r) => return BatchOutcome::refused(r),
        };
        // 1. validate and 2. resolve grants
        let ro_ok = self.caps.ppgtt_read_only;
        let keys = entries.iter().map(|e| {
            if !valid_gpu_addr(e.addr) {
                Err(Refusal::BadGpuAddress { addr: e.addr })
            } else if e.access == Access::ReadOnly && !ro_ok {
                Err(Refusal::ReadOnlyUnsupported)
            } else {
                Ok((e.gref, e.access))
            }
        });
        let (n, mut stop) = self.resolve_grants(gi, entries.len(), keys);
        // 3. apply; consecutive addresses share a leaf table, so remember the last.
        let mut done = n;
        let mut written = 0u32;
        let mut cached: Option<(u64, NodeId)> = None;
        for (i, e) in entries[..n].iter().enumerate() {
            let id = self.resolved[i];
            let bus = match self.acquire(id) {
                Ok(bus) => bus,
                Err(r) => {
                    done = i;
                    stop = Some(r);
                    break;
                }
            };
            let block = e.addr >> Level::Pd.shift();
            let pt = match cached {
                Some((b, pt)) if b == block => pt,
                _ => match self.leaf_table(gi, slot, root, e.addr) {
                    Ok(pt) => {
                        cached = Some((block, pt));
                        pt
                    }
                    Err(r) => {
                        self.drop_ref(id);
                        done = i;
                        stop = Some(r);
                        break;
                    }
                },
            };
            let index = Level::Pt.index(e.addr);
            let node = self.nodes.get_mut(pt);
            let page = node.page;
            let old =
                core::mem::replace(&mut node.entries[index as usize], Leaf::pack(id, e.access));
            if old == EMPTY {
                node.live += 1;
                written += 1;
            }
            self.gpu.table_set_leaf(&self.cap, page, index, bus, e.access);
            if old != EMPTY {
                self.drop_ref(Leaf::slot(old));
            }
        }
        self.dirty |= done > 0;
        self.fresh_unused_possible |= done < n;
        self.counters.entries_mapped += done as u64;
        self.guest(gi).stats.ppgtt_entries += written;
        // 4. invalidate, release
        self.finish(&mut Released::default());
        self.outcome(dom, done, stop)
    }

    /// Points each listed GPU address of context `ctx` back at scratch and
    /// frees leaf and directory tables that became empty. Addresses that map
    /// nothing are accepted and left alone.
    pub fn ppgtt_unmap(&mut self, dom: DomId, ctx: ContextId, addrs: &[u64]) -> BatchOutcome {
        let (gi, _, root) = match self.batch_context(dom, ctx, addrs.len()) {
            Ok(x) => x,
            Err(r) => return BatchOutcome::refused(r),
        };
        let mut done = addrs.len();
        let mut stop = None;
        let mut cleared = 0u32;
        for (i, &addr) in addrs.iter().enumerate() {
            if !valid_gpu_addr(addr) {
                done = i;
                stop = Some(Refusal::BadGpuAddress { addr });
                break;
            }
            let Some(pt) = self.find_leaf_table(root, addr) else { continue };
            let index = Level::Pt.index(addr) as usize;
            let node = self.nodes.get_mut(pt);
            let old = core::mem::replace(&mut node.entries[index], EMPTY);
            if old == EMPTY {
                continue;
            }
            node.live -= 1;
            let page = node.page;
            self.gpu.table_clear(&self.cap, page, Level::Pt, index as u16);
            self.drop_ref(Leaf::slot(old));
            cleared += 1;
            self.prune(pt);
        }
        self.dirty |= cleared > 0;
        self.counters.entries_cleared += cleared as u64;
        self.guest(gi).stats.ppgtt_entries -= cleared;
        self.finish(&mut Released::default());
        self.outcome(dom, done, stop)
    }

    /// The bus address and access context `ctx`'s entry for `addr` resolves to.
    pub fn ppgtt_lookup(&self, dom: DomId, ctx: ContextId, addr: u64) -> Option<(BusAddr, Access)> {
        let gi = self.guest_index(dom).ok()?;
        let slot = self.context_slot(gi, ctx).ok()?;
        if !valid_gpu_addr(addr) {
            return None;
        }
        let pt = self.find_leaf_table(self.contexts[slot].as_ref()?.root, addr)?;
        let e = self.nodes.get(pt).entries[Level::Pt.index(addr) as usize];
        (e != EMPTY).then(|| self.leaf_target(e))
    }

    fn batch_context(
        &mut self,
        dom: DomId,
        ctx: ContextId,
        len: usize,
    ) -> Result<(usize, usize, NodeId), Refusal> {
        let gi = self.batch_guest(dom, len)?;
        match self.context_slot(gi, ctx) {
            Ok(slot) => Ok((gi, slot, self.contexts[slot].as_ref().expect("live").root)),
            Err(r) => {
                self.note_refusal(dom, &r);
                Err(r)
            }
        }
    }
}
