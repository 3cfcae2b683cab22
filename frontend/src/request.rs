//! Requests and responses: one slot per request, entries inline (up to 6)
//! or in the directory pool (up to 2048), responses matched by id, batches
//! split at the backend's `max-entries`.
//!
//! # Invariants
//! - One request is in flight at a time: directory pages are rewritten only
//!   after the backend answered the request that named them (the backend
//!   copies them while it handles the request). A flood (`flood`) keeps
//!   many in flight, on pages it never rewrites; a pipeline (`pipeline`)
//!   keeps several, each on pages of its own until it is answered. Neither
//!   is mixed with these calls while it has requests in flight.
//! - A response for another id is kept until asked for; a backend that
//!   produces responses nobody requested is an [`Error::Ring`].
//! - Every wait for a response is bounded, and ends early with
//!   [`Error::BackendClosed`] if the backend closes meanwhile.

use gpuif::ring::{poke_req_prod, SharedPage};
use gpuif::wire::{
    dir_pages_for, Entry, Op, RequestBuilder, ENTRIES_PER_DIR_PAGE, GGTT_CONTEXT, INLINE_ENTRIES,
};
use gpuif::{Response, Slot, Status, NO_FAILURE, PAGE_SIZE};
use xenbus::Transport;

use crate::device::{Frontend, Res};
use crate::platform::{EndAccessError, Granted, PageId, Platform, RingPage};
use crate::Error;

/// The outcome of a batch that may have taken several requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchResult {
    /// `OK`, or the status of the request that stopped the batch.
    pub status: Status,
    /// Entries applied, over all requests.
    pub done: u32,
    /// Index (in the whole batch) of the first entry not applied.
    pub first_failure: Option<u32>,
    /// The stopping response's `value` (e.g. the bad index or gref).
    pub value: u64,
    /// The stopping response's `detail` (e.g. the `GNTST_*` code).
    pub detail: i32,
    /// Requests sent.
    pub requests: u32,
}

impl BatchResult {
    /// A batch before its first response: `OK`, nothing done.
    pub const fn start() -> Self {
        BatchResult {
            status: Status::OK,
            done: 0,
            first_failure: None,
            value: 0,
            detail: 0,
            requests: 0,
        }
    }

    /// Adds the response `rsp` to the request that carried the batch's
    /// entries `base..base + len`; returns whether the batch goes on (the
    /// request was `OK`).
    pub fn fold(&mut self, base: u32, len: usize, rsp: &Response) -> bool {
        self.requests += 1;
        self.done = base + rsp.done.min(len as u32);
        if rsp.status == Status::OK {
            return true;
        }
        self.status = rsp.status;
        self.first_failure =
            (rsp.first_failure != NO_FAILURE).then(|| base.saturating_add(rsp.first_failure));
        self.value = rsp.value;
        self.detail = rsp.detail;
        false
    }
}

impl<P: Platform, T: Transport> Frontend<P, T> {
    /// A fresh request id.
    pub fn next_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Sends one request with `entries` (inline when they fit, else through
    /// the directory pool) and returns its response. What the backend
    /// reports done goes into the frontend's record (`crate::record`).
    pub fn call(&mut self, op: Op, ctx: u16, entries: &[Entry]) -> Res<P, T, Response> {
        let rsp = if entries.len() > INLINE_ENTRIES {
            self.call_indirect(op, ctx, entries, |_, _| {})?
        } else {
            let id = self.next_id();
            let slot = if op.has_entries() {
                RequestBuilder::inline(id, op, ctx, entries).map_err(Error::Build)?
            } else {
                RequestBuilder::simple(id, op, ctx)
            };
            self.submit(&slot)?;
            self.wait_response(id, op)?
        };
        let pages = &self.pages;
        let page_of = |gref: u32| pages.iter().find(|g| g.gref == gref).map(|g| g.id);
        self.record.note(op, ctx, entries, &rsp, page_of);
        Ok(rsp)
    }

    /// Sends one request whose entries are in directory pages, whatever
    /// their number; `tamper(i, page)` may change page `i` before it is
    /// written (hostile test guests).
    pub fn call_indirect(
        &mut self,
        op: Op,
        ctx: u16,
        entries: &[Entry],
        mut tamper: impl FnMut(usize, &mut [u8; PAGE_SIZE]),
    ) -> Res<P, T, Response> {
        let max = self.max_entries.min(self.dirs.len() * ENTRIES_PER_DIR_PAGE);
        if entries.len() > max {
            return Err(Error::TooManyEntries { nr: entries.len(), max });
        }
        if self.conn.is_none() {
            return Err(Error::NotConnected);
        }
        let mut refs = [0u32; gpuif::wire::MAX_DIR_PAGES];
        let mut page = [0u8; PAGE_SIZE];
        for (i, chunk) in entries.chunks(ENTRIES_PER_DIR_PAGE).enumerate() {
            RequestBuilder::dir_page(chunk, &mut page).map_err(Error::Build)?;
            tamper(i, &mut page);
            let dir = self.dirs[i];
            self.platform.write(dir.id, 0, &page);
            refs[i] = dir.gref;
        }
        let id = self.next_id();
        let pages = dir_pages_for(entries.len());
        let slot = RequestBuilder::indirect(id, op, ctx, entries.len() as u16, &refs[..pages])
            .map_err(Error::Build)?;
        self.submit(&slot)?;
        self.wait_response(id, op)
    }

    /// Sends a slot as it is (its id is the one waited for).
    pub fn call_slot(&mut self, slot: &Slot) -> Res<P, T, Response> {
        let id = gpuif::wire::Request::raw_id(slot);
        let op = Op::from_u8(gpuif::wire::Request::raw_op(slot)).unwrap_or(Op::Barrier);
        self.submit(slot)?;
        self.wait_response(id, op)
    }

    /// Sends `entries` in as many requests as needed, stopping at the first
    /// request that is not `OK`: one request in flight at a time (the path
    /// a [`crate::Pipeline`] is checked against).
    pub fn batch(&mut self, op: Op, ctx: u16, entries: &[Entry]) -> Res<P, T, BatchResult> {
        let mut out = BatchResult::start();
        let per = self.per_request();
        for (k, chunk) in entries.chunks(per).enumerate() {
            let rsp = self.call(op, ctx, chunk)?;
            if !out.fold((k * per) as u32, chunk.len(), &rsp) {
                break;
            }
        }
        Ok(out)
    }

    /// Entries per request of a batch (the backend's `max-entries`).
    pub(crate) fn per_request(&self) -> usize {
        self.max_entries.clamp(1, gpuif::MAX_ENTRIES)
    }

    /// Sends at most `n` entries per request (at least 1, never more than
    /// the backend's `max-entries`) until the next connect reads it again.
    pub fn limit_entries_per_request(&mut self, n: usize) {
        self.max_entries = n.clamp(1, self.max_entries.max(1));
    }

    /// Requests sent and not yet answered, as the ring counts them.
    pub fn ring_in_flight(&self) -> u32 {
        self.conn.as_ref().map_or(0, |c| c.front.in_flight())
    }

    /// The shared ring page while connected (for tests that play a broken
    /// backend by writing into it).
    pub fn ring_page(&self) -> Option<PageId> {
        self.conn.as_ref().map(|c| c.ring.id)
    }

    /// Creates a PPGTT context; returns its id.
    pub fn context_create(&mut self) -> Res<P, T, u16> {
        let rsp = self.call(Op::ContextCreate, 0, &[])?;
        match rsp.status {
            Status::OK => Ok(rsp.value as u16),
            status => Err(Error::Refused { op: Op::ContextCreate, status, value: rsp.value }),
        }
    }

    /// Destroys a PPGTT context and everything mapped in it.
    pub fn context_destroy(&mut self, ctx: u16) -> Res<P, T, ()> {
        let rsp = self.call(Op::ContextDestroy, ctx, &[])?;
        match rsp.status {
            Status::OK => Ok(()),
            status => Err(Error::Refused { op: Op::ContextDestroy, status, value: rsp.value }),
        }
    }

    /// Completes when every earlier request is done and the GPU TLBs are clean.
    pub fn barrier(&mut self) -> Res<P, T, ()> {
        let rsp = self.call(Op::Barrier, 0, &[])?;
        match rsp.status {
            Status::OK => Ok(()),
            status => Err(Error::Refused { op: Op::Barrier, status, value: rsp.value }),
        }
    }

    /// `DebugReadback` of one entry (`ctx` = a PPGTT context or
    /// [`GGTT_CONTEXT`]): the response's `value` is the FNV-1a 64 hash of the
    /// page the backend's CPU reads at the entry's shadow bus address.
    pub fn readback(&mut self, ctx: u16, addr: u64) -> Res<P, T, Response> {
        self.call(Op::DebugReadback, ctx, &[Entry { addr, gref: 0, read_only: false }])
    }

    /// `DebugReadback` of GGTT slice index `index`.
    pub fn readback_ggtt(&mut self, index: u32) -> Res<P, T, Response> {
        self.readback(GGTT_CONTEXT, index as u64)
    }

    /// Allocates a zeroed page and grants it to the backend.
    pub fn grant_page(&mut self, read_only: bool) -> Res<P, T, Granted> {
        let backend = self.dev.as_ref().ok_or(Error::NotConnected)?.backend_id;
        let g =
            self.platform.grant_page(backend, read_only).map_err(Self::platform_err("grant"))?;
        self.pages.push(g);
        Ok(g)
    }

    /// Writes into one of our granted pages.
    pub fn write_page(&mut self, page: &Granted, offset: usize, data: &[u8]) {
        self.platform.write(page.id, offset, data);
    }

    /// Ends the grant of one page now (it must not be in use by the backend).
    pub fn end_access(&mut self, page: &Granted) -> Result<(), EndAccessError> {
        self.platform.end_access(page.id)?;
        self.pages.retain(|g| g.id != page.id);
        self.released.retain(|id| *id != page.id);
        Ok(())
    }

    /// The current grant of one of our pages (it changes when the page is
    /// granted again to a new backend).
    pub fn granted_page(&self, page: PageId) -> Option<Granted> {
        self.pages.iter().find(|g| g.id == page).copied()
    }

    /// Pages granted through [`Frontend::grant_page`] and not ended.
    pub fn granted_pages(&self) -> usize {
        self.pages.len()
    }

    /// Those pages, in the order they were granted (after a reconnect,
    /// with the grant references of the new backend).
    pub fn granted(&self) -> &[Granted] {
        &self.pages
    }

    /// Copies bytes out of one of our granted pages (our own view of it).
    pub fn read_page(&self, page: &Granted, offset: usize, buf: &mut [u8]) {
        self.platform.read(page.id, offset, buf)
    }

    /// Advances the shared `req_prod` by `advance` without writing any
    /// request, and notifies: a ring protocol violation (when `advance`
    /// exceeds the ring), for hostile test guests only. Returns the value
    /// written.
    pub fn poke_req_prod(&mut self, advance: u32) -> Res<P, T, u32> {
        let c = self.conn.as_ref().ok_or(Error::NotConnected)?;
        let (ring, port) = (c.ring.id, c.port);
        let mut page = RingPage { platform: &mut self.platform, page: ring };
        let value = page.read_u32(0).wrapping_add(advance);
        poke_req_prod(&mut page, value);
        page.fence();
        self.platform.notify(port).map_err(Self::platform_err("notify"))?;
        Ok(value)
    }

    pub(crate) fn submit(&mut self, slot: &Slot) -> Res<P, T, ()> {
        if self.conn.is_none() {
            return Err(Error::NotConnected);
        }
        if self.connection_lost() {
            return Err(Error::BackendClosed { state: self.be_state });
        }
        let c = self.conn.as_mut().ok_or(Error::NotConnected)?;
        let mut page = RingPage { platform: &mut self.platform, page: c.ring.id };
        c.front.put_request(&mut page, slot).map_err(|_| Error::RingFull)?;
        if c.front.push_requests(&mut page) {
            let port = c.port;
            self.platform.notify(port).map_err(Self::platform_err("notify"))?;
        }
        Ok(())
    }

    /// Takes every published response; returns the one for `id` if seen.
    fn drain(&mut self, id: u64) -> Res<P, T, Option<Response>> {
        if let Some(i) = self.stash.iter().position(|r| r.id == id) {
            return Ok(Some(self.stash.swap_remove(i)));
        }
        let c = self.conn.as_mut().ok_or(Error::NotConnected)?;
        let page = RingPage { platform: &mut self.platform, page: c.ring.id };
        let mut found = None;
        while let Some(slot) = c.front.take_response(&page).map_err(Error::Ring)? {
            let rsp = Response::parse(&slot);
            if rsp.id == id && found.is_none() {
                found = Some(rsp);
            } else {
                self.stash.push(rsp);
            }
        }
        Ok(found)
    }

    fn wait_response(&mut self, id: u64, op: Op) -> Res<P, T, Response> {
        let start = self.platform.now_ms();
        let deadline = start.saturating_add(self.opts.response_timeout_ms);
        loop {
            if let Some(rsp) = self.drain(id)? {
                return Ok(rsp);
            }
            self.pump()?;
            if self.connection_lost() {
                return Err(Error::BackendClosed { state: self.be_state });
            }
            let c = self.conn.as_mut().ok_or(Error::NotConnected)?;
            let mut page = RingPage { platform: &mut self.platform, page: c.ring.id };
            if c.front.final_check_for_responses(&mut page) {
                continue;
            }
            let now = self.platform.now_ms();
            if now >= deadline {
                return Err(Error::NoResponse { id, op, waited_ms: now - start });
            }
            self.platform.wait(deadline).map_err(Self::platform_err("wait"))?;
        }
    }
}
