//! Flooding: requests posted without waiting for their responses, as many
//! as the ring holds, and a notification on every round whether needed or
//! not (mode `busy`: the load other guests must be served fairly against).
//!
//! A flood is a fixed cycle of requests whose entries are staged in the
//! directory pool once, before the first is posted, each request on its own
//! pages: while requests that name them are in flight, the pages are never
//! rewritten (the one-request-at-a-time rule of `request` exists to keep
//! exactly that). Responses are counted, not matched: do not mix a flood
//! with [`Frontend::call`] on the same connection.
//!
//! # Invariants
//! - Directory pages are written only by [`Frontend::flood_stage`], before
//!   the flood's first request.
//! - Every [`Frontend::flood_round`] notifies the backend's port, and waits
//!   for nothing.

use alloc::vec::Vec;

use gpuif::wire::{dir_pages_for, Entry, Op, RequestBuilder, ENTRIES_PER_DIR_PAGE};
use gpuif::{Response, Status, PAGE_SIZE};
use xenbus::Transport;

use crate::device::{Frontend, Res};
use crate::platform::{Platform, RingPage};
use crate::Error;

/// One request of a flood: its op, context and staged directory pages.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Staged {
    op: Op,
    ctx: u16,
    nr: u16,
    refs: Vec<u32>,
}

/// A cycle of staged requests and what happened to them so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flood {
    cycle: Vec<Staged>,
    next: usize,
    /// Directory pages used by the staged requests.
    pages_used: usize,
    /// Requests posted.
    pub posted: u64,
    /// Responses taken.
    pub answered: u64,
    /// Responses that were not `OK`.
    pub failed: u64,
    /// The first status that was not `OK`.
    pub first_failure: Option<Status>,
}

/// What one [`Frontend::flood_round`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FloodRound {
    /// Requests posted in this round.
    pub posted: u32,
    /// Responses taken in this round.
    pub answered: u32,
}

impl<P: Platform, T: Transport> Frontend<P, T> {
    /// Adds one request to `flood`'s cycle: `entries` are written into the
    /// next free pages of the directory pool (so the pool bounds the cycle:
    /// 8 pages, 256 entries each).
    pub fn flood_stage(
        &mut self,
        flood: &mut Flood,
        op: Op,
        ctx: u16,
        entries: &[Entry],
    ) -> Res<P, T, ()> {
        if self.conn.is_none() {
            return Err(Error::NotConnected);
        }
        let pages = dir_pages_for(entries.len());
        let room = self.dirs.len() - flood.pages_used;
        let max = self.max_entries.min(room * ENTRIES_PER_DIR_PAGE);
        if entries.is_empty() || entries.len() > max {
            return Err(Error::TooManyEntries { nr: entries.len(), max });
        }
        let mut refs = Vec::with_capacity(pages);
        let mut page = [0u8; PAGE_SIZE];
        for (i, chunk) in entries.chunks(ENTRIES_PER_DIR_PAGE).enumerate() {
            RequestBuilder::dir_page(chunk, &mut page).map_err(Error::Build)?;
            let dir = self.dirs[flood.pages_used + i];
            self.platform.write(dir.id, 0, &page);
            refs.push(dir.gref);
        }
        flood.pages_used += pages;
        flood.cycle.push(Staged { op, ctx, nr: entries.len() as u16, refs });
        Ok(())
    }

    /// Takes every response published, posts the flood's next requests
    /// until the ring is full, and notifies the backend (always: the event
    /// channel is flooded too). Never waits.
    pub fn flood_round(&mut self, flood: &mut Flood) -> Res<P, T, FloodRound> {
        if self.conn.is_some() && self.connection_lost() {
            return Err(Error::BackendClosed { state: self.be_state });
        }
        let mut round = FloodRound::default();
        let c = self.conn.as_mut().ok_or(Error::NotConnected)?;
        let mut page = RingPage { platform: &mut self.platform, page: c.ring.id };
        while let Some(slot) = c.front.take_response(&page).map_err(Error::Ring)? {
            let rsp = Response::parse(&slot);
            round.answered += 1;
            if rsp.status != Status::OK {
                flood.failed += 1;
                flood.first_failure.get_or_insert(rsp.status);
            }
        }
        while !flood.cycle.is_empty() && c.front.free_requests() > 0 {
            self.next_id = self.next_id.wrapping_add(1);
            let s = &flood.cycle[flood.next];
            let slot = RequestBuilder::indirect(self.next_id, s.op, s.ctx, s.nr, &s.refs)
                .map_err(Error::Build)?;
            c.front.put_request(&mut page, &slot).map_err(|_| Error::RingFull)?;
            flood.next = (flood.next + 1) % flood.cycle.len();
            round.posted += 1;
        }
        c.front.push_requests(&mut page);
        let port = c.port;
        self.platform.notify(port).map_err(Self::platform_err("notify"))?;
        flood.posted += u64::from(round.posted);
        flood.answered += u64::from(round.answered);
        Ok(round)
    }

    /// Watch events so far (the backend's state, the caller's events): a
    /// flood never waits, so it looks for them itself.
    pub fn poll_events(&mut self) -> Res<P, T, ()> {
        self.pump()
    }
}
