//! Pipelining: several batches queued, up to `depth` requests in flight,
//! responses matched by id, results per batch.
//!
//! The one-at-a-time path ([`Frontend::batch`]) waits for each response
//! before it sends the next request. A [`Pipeline`] sends the next request
//! while earlier ones are still in flight, so one guest's batches overlap
//! the round trips (the ring has [`RING_SIZE`] slots).
//!
//! The order of effects is the one-at-a-time path's, exactly:
//! 1. requests go out in the order of the batches, each batch's requests
//!    in the order of its entries;
//! 2. the requests of one batch after its first depend on the one before
//!    (a batch stops at its first request that is not `OK`), so the next
//!    request of a batch, and everything queued after it, is sent only once
//!    the batch's previous request was answered `OK`; a batch that fits in
//!    one request (the common case: up to `max-entries`) overlaps freely
//!    with its neighbours;
//! 3. gpu-dom answers in ring order, so a response must carry the id of the
//!    oldest request in flight. Anything else (an unknown id, an id answered
//!    before, a later request's id) is [`RingError::UnexpectedResponse`]:
//!    the pipeline stops (every unfinished batch is [`Abandoned::Broken`])
//!    and the caller disconnects.
//!
//! Directory pages: a request in flight keeps the directory pages that
//! carry its entries until it is answered (gpu-dom copies them while it
//! handles the request); a request whose pages are not free waits. The
//! pool ([`Frontend::grow_dir_pool`]) is grown to the pipeline's
//! `dir_pages` on first use after every connect.
//!
//! The backend going away: every unfinished batch, in flight or not yet
//! sent, is [`Abandoned::Lost`]; the frontend's record holds exactly what
//! was answered before (requests in flight at the loss are not recorded:
//! the next backend starts from the record, see `crate::reconnect`), and
//! the caller sends the abandoned batches again after reconnecting.
//!
//! # Invariants
//! - At most `depth` requests of the pipeline are in flight, and never more
//!   than the ring has free slots.
//! - `in_flight` is in request id order; a response is taken only if it
//!   matches its front.
//! - A directory page is named by at most one request in flight and is
//!   written only while free.
//! - The record is updated for every answered request, in request order,
//!   as [`Frontend::call`] does.
//! - Batches finish in submission order; every queued batch ends up with an
//!   outcome (a result, or why it was abandoned).
//! - Guest-visible input (the response ids) never causes a panic.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use gpuif::ring::RING_SIZE;
use gpuif::wire::{
    dir_pages_for, Entry, Op, RequestBuilder, ENTRIES_PER_DIR_PAGE, INLINE_ENTRIES, MAX_DIR_PAGES,
};
use gpuif::{RingError, Slot, PAGE_SIZE};
use xenbus::Transport;

use crate::device::{Frontend, Res};
use crate::platform::{Platform, RingPage};
use crate::request::BatchResult;
use crate::Error;

/// Directory pages a pipeline may grow the pool to (8 requests of up to
/// 2048 entries in flight).
pub const MAX_POOL_PAGES: usize = 64;

/// A queued batch, in submission order (ascending).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// Why a batch has no result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abandoned {
    /// The backend closed or went away before the batch finished (its
    /// requests in flight were not answered; the record holds what was),
    /// or a local failure ended the wait (the error returned says which).
    Lost,
    /// No response within the response timeout. The requests may still be
    /// answered later, and this pipeline would refuse those answers as
    /// unexpected: disconnect.
    Timeout,
    /// The backend broke the ring protocol; the pipeline stopped.
    Broken(RingError),
}

/// What became of one batch.
pub type BatchOutcome = Result<BatchResult, Abandoned>;

/// A batch not finished yet.
#[derive(Clone, Debug)]
struct Queued {
    ticket: Ticket,
    op: Op,
    ctx: u16,
    entries: Vec<Entry>,
    /// Entries sent so far (a prefix).
    sent: usize,
    /// A request of this batch is in flight.
    waiting: bool,
    result: BatchResult,
}

impl Queued {
    /// Every request of the batch was sent (an op without entries takes one).
    fn all_sent(&self) -> bool {
        if self.op.has_entries() {
            self.sent == self.entries.len()
        } else {
            self.sent > 0
        }
    }
}

/// One request in flight.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: u64,
    /// Entries `base..base + len` of the front batch that is not finished.
    base: usize,
    len: usize,
    /// Directory pages it names (bits of the pool).
    dirs: u64,
}

/// Batches queued on one connection, with their requests overlapped. See
/// the module documentation.
#[derive(Debug)]
pub struct Pipeline {
    depth: u32,
    dir_pages: usize,
    next_ticket: u64,
    /// Unfinished batches, in submission order.
    queue: VecDeque<Queued>,
    /// Requests in flight, oldest first; each names a batch of `queue`
    /// by its position among the batches with requests in flight.
    in_flight: VecDeque<(Ticket, InFlight)>,
    /// Pool pages in use (bit i: the frontend's directory page i).
    busy: u64,
    finished: VecDeque<(Ticket, BatchOutcome)>,
    /// The protocol error that stopped the pipeline.
    broken: Option<RingError>,
    /// Most requests in flight at once so far.
    pub peak_in_flight: u32,
}

impl Pipeline {
    /// A pipeline keeping up to `depth` requests in flight (clamped to
    /// 1..=[`RING_SIZE`]), with a directory pool of `depth * 2` pages
    /// (at least [`MAX_DIR_PAGES`], at most [`MAX_POOL_PAGES`]).
    pub fn new(depth: u32) -> Self {
        let depth = depth.clamp(1, RING_SIZE);
        Pipeline {
            depth,
            dir_pages: (depth as usize * 2).clamp(MAX_DIR_PAGES, MAX_POOL_PAGES),
            next_ticket: 0,
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            busy: 0,
            finished: VecDeque::new(),
            broken: None,
            peak_in_flight: 0,
        }
    }

    /// The same with a directory pool of `pages` (clamped to
    /// [`MAX_DIR_PAGES`]..=[`MAX_POOL_PAGES`]).
    pub fn with_dir_pages(mut self, pages: usize) -> Self {
        self.dir_pages = pages.clamp(MAX_DIR_PAGES, MAX_POOL_PAGES);
        self
    }

    /// Requests kept in flight at most.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.len() as u32
    }

    /// Batches queued and not finished.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// The protocol error that stopped the pipeline, if one did.
    pub fn broken(&self) -> Option<RingError> {
        self.broken
    }

    /// Queues a batch: `entries` with `op` in context `ctx`, split into
    /// requests at the backend's `max-entries` as [`Frontend::batch`] does
    /// (an op without entries is one request). Nothing is sent until
    /// [`Pipeline::pump`] or [`Pipeline::finish`].
    pub fn queue(&mut self, op: Op, ctx: u16, entries: &[Entry]) -> Ticket {
        self.next_ticket += 1;
        let ticket = Ticket(self.next_ticket);
        let q = Queued {
            ticket,
            op,
            ctx,
            entries: if op.has_entries() { entries.to_vec() } else { Vec::new() },
            sent: 0,
            waiting: false,
            result: BatchResult::start(),
        };
        if let Some(e) = self.broken {
            self.finished.push_back((ticket, Err(Abandoned::Broken(e))));
        } else {
            self.queue.push_back(q);
            self.settle();
        }
        ticket
    }

    /// The next finished batch, in submission order.
    pub fn take_next(&mut self) -> Option<(Ticket, BatchOutcome)> {
        self.finished.pop_front()
    }

    /// The outcome of batch `ticket`, once it finished.
    pub fn take(&mut self, ticket: Ticket) -> Option<BatchOutcome> {
        let i = self.finished.iter().position(|(t, _)| *t == ticket)?;
        self.finished.remove(i).map(|(_, o)| o)
    }

    /// Never waits: looks at xenstore's events (the backend's state), takes
    /// every response published, then sends what may be sent. Returns how many responses it took. An error abandons every
    /// unfinished batch (see the module documentation).
    pub fn pump<P: Platform, T: Transport>(&mut self, fe: &mut Frontend<P, T>) -> Res<P, T, u32> {
        if let Some(e) = self.broken {
            return Err(Error::Ring(e));
        }
        if let Err(e) = fe.pump() {
            self.fail(&e);
            return Err(e);
        }
        if fe.conn.is_some() && fe.connection_lost() {
            self.abandon(Abandoned::Lost);
            return Err(Error::BackendClosed { state: fe.be_state });
        }
        let taken = match self.take_responses(fe) {
            Ok(n) => n,
            Err(e) => {
                self.fail(&e);
                return Err(e);
            }
        };
        if let Err(e) = self.send(fe) {
            self.fail(&e);
            return Err(e);
        }
        Ok(taken)
    }

    /// Sends everything queued and waits (each wait bounded by the response
    /// timeout) until every batch finished; returns the outcomes not taken
    /// yet, in submission order. With an error, every unfinished batch was
    /// abandoned (their outcomes say why) and the error says what happened.
    pub fn finish<P: Platform, T: Transport>(
        &mut self,
        fe: &mut Frontend<P, T>,
    ) -> Res<P, T, Vec<(Ticket, BatchOutcome)>> {
        self.wait_until(fe, 0)?;
        Ok(self.finished.drain(..).collect())
    }

    /// Sends and waits until at most `pending` batches are unfinished.
    pub fn wait_until<P: Platform, T: Transport>(
        &mut self,
        fe: &mut Frontend<P, T>,
        pending: usize,
    ) -> Res<P, T, ()> {
        let mut start = fe.platform.now_ms();
        loop {
            if self.pump(fe)? > 0 {
                start = fe.platform.now_ms();
            }
            if self.queue.len() <= pending {
                return Ok(());
            }
            let c = fe.conn.as_mut().ok_or(Error::NotConnected)?;
            let mut page = RingPage { platform: &mut fe.platform, page: c.ring.id };
            if c.front.final_check_for_responses(&mut page) {
                continue;
            }
            let now = fe.platform.now_ms();
            let deadline = start.saturating_add(fe.opts.response_timeout_ms);
            if now >= deadline {
                let (id, op) = self.oldest();
                self.abandon(Abandoned::Timeout);
                return Err(Error::NoResponse { id, op, waited_ms: now - start });
            }
            if let Err(e) = fe.platform.wait(deadline) {
                self.abandon(Abandoned::Lost);
                return Err(Frontend::<P, T>::platform_err("wait")(e));
            }
        }
    }

    /// The oldest request in flight: its id and op (for a timeout).
    fn oldest(&self) -> (u64, Op) {
        let id = self.in_flight.front().map_or(0, |(_, f)| f.id);
        let op = self.queue.front().map_or(Op::Barrier, |q| q.op);
        (id, op)
    }

    /// An error ends the pipeline's batches: a protocol error stops it for
    /// good; anything else (the backend lost, a local failure) abandons
    /// what is unfinished and leaves it usable on the next connection.
    fn fail<PE, XE>(&mut self, e: &Error<PE, XE>) {
        match e {
            Error::Ring(r) => {
                self.broken = Some(*r);
                self.abandon(Abandoned::Broken(*r));
            }
            Error::NoResponse { .. } => self.abandon(Abandoned::Timeout),
            _ => self.abandon(Abandoned::Lost),
        }
    }

    /// Every unfinished batch gets `why` as its outcome, in order; nothing
    /// is in flight any more (as far as this pipeline is concerned).
    fn abandon(&mut self, why: Abandoned) {
        for q in self.queue.drain(..) {
            self.finished.push_back((q.ticket, Err(why)));
        }
        self.in_flight.clear();
        self.busy = 0;
    }

    /// Takes published responses while they match the oldest request.
    fn take_responses<P: Platform, T: Transport>(
        &mut self,
        fe: &mut Frontend<P, T>,
    ) -> Res<P, T, u32> {
        let mut taken = 0;
        loop {
            let c = fe.conn.as_mut().ok_or(Error::NotConnected)?;
            let page = RingPage { platform: &mut fe.platform, page: c.ring.id };
            let Some(slot) = c.front.take_response(&page).map_err(Error::Ring)? else {
                return Ok(taken);
            };
            let rsp = gpuif::Response::parse(&slot);
            let expected = self.in_flight.front().map(|(_, f)| f.id);
            if expected != Some(rsp.id) {
                return Err(Error::Ring(RingError::UnexpectedResponse { got: rsp.id, expected }));
            }
            let Some((ticket, f)) = self.in_flight.pop_front() else {
                return Ok(taken); // unreachable: `expected` was Some
            };
            taken += 1;
            self.busy &= !f.dirs;
            let Some(qi) = self.queue.iter().position(|q| q.ticket == ticket) else { continue };
            let q = &mut self.queue[qi];
            let chunk = &q.entries[f.base..f.base + f.len];
            let pages = &fe.pages;
            let page_of = |gref: u32| pages.iter().find(|g| g.gref == gref).map(|g| g.id);
            fe.record.note(q.op, q.ctx, chunk, &rsp, page_of);
            q.waiting = false;
            let goes_on = q.result.fold(f.base as u32, f.len, &rsp);
            if !goes_on || q.all_sent() {
                // Every earlier request was answered, so every earlier
                // batch has finished, but for empty ones (settled next).
                if let Some(q) = self.queue.remove(qi) {
                    self.finished.push_back((q.ticket, Ok(q.result)));
                }
            }
            self.settle();
        }
    }

    /// Finishes the batches at the front that send nothing: an entry op
    /// with no entries (what the one-at-a-time path does: no request,
    /// nothing done), once every batch before it finished.
    fn settle(&mut self) {
        while let Some(q) = self.queue.front() {
            if !(q.op.has_entries() && q.entries.is_empty()) {
                return;
            }
            if let Some(q) = self.queue.pop_front() {
                self.finished.push_back((q.ticket, Ok(q.result)));
            }
        }
    }

    /// Sends the next requests, in order, while the depth, the ring, the
    /// directory pool and the order rule (module documentation, step 2) let it.
    fn send<P: Platform, T: Transport>(&mut self, fe: &mut Frontend<P, T>) -> Res<P, T, ()> {
        fe.grow_dir_pool(self.dir_pages)?;
        let per = fe.per_request();
        let pool = fe.dirs.len().min(64);
        let mut posted = 0u32;
        for q in self.queue.iter_mut() {
            if q.waiting {
                break; // its next request depends on the one in flight
            }
            if q.all_sent() {
                continue; // every request sent; answers pending
            }
            let total = q.entries.len();
            if self.in_flight.len() as u32 >= self.depth || ring_free(fe) == 0 {
                break;
            }
            let len = (total - q.sent).min(per);
            let need = if len > INLINE_ENTRIES { dir_pages_for(len) } else { 0 };
            let Some(dirs) = free_pages(self.busy, pool, need) else { break };
            let chunk = &q.entries[q.sent..q.sent + len];
            let id = fe.next_id();
            let slot = build(fe, id, q.op, q.ctx, chunk, dirs)?;
            let c = fe.conn.as_mut().ok_or(Error::NotConnected)?;
            let mut page = RingPage { platform: &mut fe.platform, page: c.ring.id };
            c.front.put_request(&mut page, &slot).map_err(|_| Error::RingFull)?;
            self.busy |= dirs;
            self.in_flight.push_back((q.ticket, InFlight { id, base: q.sent, len, dirs }));
            self.peak_in_flight = self.peak_in_flight.max(self.in_flight.len() as u32);
            q.sent += len.max(usize::from(!q.op.has_entries()));
            posted += 1;
            if !q.all_sent() {
                q.waiting = true;
                break;
            }
        }
        if posted > 0 {
            let c = fe.conn.as_mut().ok_or(Error::NotConnected)?;
            let mut page = RingPage { platform: &mut fe.platform, page: c.ring.id };
            if c.front.push_requests(&mut page) {
                let port = c.port;
                fe.platform.notify(port).map_err(Frontend::<P, T>::platform_err("notify"))?;
            }
        }
        Ok(())
    }
}

/// Free request slots of the ring.
fn ring_free<P: Platform, T: Transport>(fe: &Frontend<P, T>) -> u32 {
    fe.conn.as_ref().map_or(0, |c| c.front.free_requests())
}

/// `need` free pages among the first `pool` (a bit mask), if there are.
fn free_pages(busy: u64, pool: usize, need: usize) -> Option<u64> {
    let mut got = 0u64;
    let mut n = 0;
    for i in 0..pool {
        if n == need {
            break;
        }
        if busy & (1 << i) == 0 {
            got |= 1 << i;
            n += 1;
        }
    }
    (n == need).then_some(got)
}

/// The request slot for `chunk`: simple, inline, or through the directory
/// pages `dirs` (written here; they are free).
fn build<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    id: u64,
    op: Op,
    ctx: u16,
    chunk: &[Entry],
    dirs: u64,
) -> Res<P, T, Slot> {
    if !op.has_entries() {
        return Ok(RequestBuilder::simple(id, op, ctx));
    }
    if dirs == 0 {
        return RequestBuilder::inline(id, op, ctx, chunk).map_err(Error::Build);
    }
    let mut refs = [0u32; MAX_DIR_PAGES];
    let mut page = [0u8; PAGE_SIZE];
    let mut pages = (0..64).filter(|i| dirs & (1u64 << i) != 0);
    for (k, part) in chunk.chunks(ENTRIES_PER_DIR_PAGE).enumerate() {
        let i = pages.next().ok_or(Error::TooManyEntries { nr: chunk.len(), max: 0 })?;
        RequestBuilder::dir_page(part, &mut page).map_err(Error::Build)?;
        let dir = fe.dirs[i];
        fe.platform.write(dir.id, 0, &page);
        refs[k] = dir.gref;
    }
    let n = dir_pages_for(chunk.len());
    RequestBuilder::indirect(id, op, ctx, chunk.len() as u16, &refs[..n]).map_err(Error::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_pages_takes_the_lowest_free_ones_or_none() {
        assert_eq!(free_pages(0b0101, 8, 2), Some(0b1010));
        assert_eq!(free_pages(0b0101, 4, 3), None);
        assert_eq!(free_pages(u64::MAX, 64, 0), Some(0));
        assert_eq!(free_pages(0, 64, 8), Some(0xff));
    }

    #[test]
    fn depth_is_clamped_to_the_ring_and_the_pool_to_its_bounds() {
        assert_eq!(Pipeline::new(0).depth(), 1);
        assert_eq!(Pipeline::new(1000).depth(), RING_SIZE);
        assert_eq!(Pipeline::new(1).dir_pages, MAX_DIR_PAGES);
        assert_eq!(Pipeline::new(32).dir_pages, MAX_POOL_PAGES);
        assert_eq!(Pipeline::new(8).with_dir_pages(3).dir_pages, MAX_DIR_PAGES);
    }

    #[test]
    fn an_empty_batch_of_an_entry_op_finishes_at_once_like_the_sequential_path() {
        let mut p = Pipeline::new(4);
        let t = p.queue(Op::GgttMap, 0, &[]);
        assert_eq!(p.take(t), Some(Ok(BatchResult::start())));
        assert!(p.is_idle());
    }
}
