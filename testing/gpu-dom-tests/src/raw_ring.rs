//! The raw ring writer: a guest's side of the ring written slot by slot,
//! for the tests that must write what the real `frontend` crate never
//! writes. Every test that talks the protocol as a guest does runs the
//! real frontend in the [`crate::world`] instead.
//!
//! A [`RawFrontend`] (the [`crate::Rig`]'s guests) is a ring in guest
//! memory that the backend maps without any xenbus handshake, and requests
//! built slot by slot. The property test, the hostile end-to-end test, the
//! reset test and the `backend_path` fuzz target need it: to send garbage
//! slots and directory pages, replayed requests, runaway indexes, foreign,
//! revoked and bogus grant references, writable asks of read-only grants,
//! out-of-slice indexes and unknown contexts (the real frontend builds only
//! well-formed requests from its own grants, and keeps its indexes sane);
//! to count how often the backend reads each slot; and to restore a whole
//! rig to a checkpoint, which the `Rig` can do because it drives
//! `Backend::serve` directly, without a xenstore or a service.

use std::cell::Cell;

use backend::Connection;
use gpuif::ring::{FrontRing, SharedPage};
use gpuif::wire::{dir_pages_for, Entry, Op, RequestBuilder, ENTRIES_PER_DIR_PAGE};
use gpuif::{Response, Slot, PAGE_SIZE};
use gtt::platform::{testing_cap, GrantMapRequest, GrantMapper, GrantMapping};
use gtt::{Access, ContextId, DomId, GrantRef};
use platform_model::{Gfn, Guest, Platform};

use crate::pages::{BusRingPage, GuestRingPage};
use crate::BACKEND;

/// A page the frontend filled and granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    pub gfn: Gfn,
    pub gref: GrantRef,
    pub read_only: bool,
    /// Every byte of the page is `pattern(dom, seq, offset)`; see [`pattern`].
    pub seq: u32,
}

/// The byte at `offset` of page number `seq` of guest `dom`: distinct for
/// every (guest, page) so a misdirected mapping is caught.
pub fn pattern(dom: DomId, seq: u32, offset: usize) -> u8 {
    (dom.0 as u32)
        .wrapping_mul(131)
        .wrapping_add(seq.wrapping_mul(7))
        .wrapping_add(offset as u32 / 64) as u8
}

/// One guest's raw frontend, and the backend's state for its connection.
#[derive(Clone)]
pub struct RawFrontend {
    pub dom: DomId,
    pub guest: Guest,
    pub ring: GuestRingPage,
    pub ring_gref: GrantRef,
    front: FrontRing,
    next_id: u64,
    /// Pages granted with known contents.
    pub pages: Vec<PageInfo>,
    /// Contexts the backend created for this guest.
    pub contexts: Vec<ContextId>,
    /// Directory pages, granted read-only to the backend once and reused.
    pub dir_pages: Vec<(Gfn, GrantRef)>,
    /// The backend side: its connection, its mapping of the ring.
    conn: Connection,
    back_page: BusRingPage,
    ring_mapping: Option<GrantMapping>,
    pub connected: bool,
}

impl RawFrontend {
    /// Sets up a ring page in `guest`, grants it to the backend, and has the
    /// backend map it and attach (what the xenbus handshake leads to).
    pub fn connect(platform: &Platform, guest: Guest) -> RawFrontend {
        let dom = guest.dom();
        let gfn = guest.alloc_pages(1).expect("ring page")[0];
        let mut ring = GuestRingPage { guest: guest.clone(), gfn };
        let front = FrontRing::init(&mut ring);
        let ring_gref = guest.grant(gfn, BACKEND, false).expect("grant ring");
        let mut out = [Err(gtt::GrantMapError::WindowFull)];
        platform.mapper().map(
            &testing_cap(),
            &[GrantMapRequest { dom, gref: ring_gref, access: Access::ReadWrite }],
            &mut out,
        );
        let mapping = out[0].expect("backend maps the ring");
        let back_page =
            BusRingPage { platform: platform.clone(), bus: mapping.bus, slot_reads: Cell::new(0) };
        let conn = Connection::new(dom, &back_page);
        let dir_pages = guest
            .alloc_pages(gpuif::wire::MAX_DIR_PAGES as u32)
            .expect("directory pages")
            .into_iter()
            .map(|gfn| (gfn, guest.grant(gfn, BACKEND, true).expect("grant directory page")))
            .collect();
        RawFrontend {
            dom,
            guest,
            ring,
            ring_gref,
            front,
            next_id: 1,
            pages: Vec::new(),
            contexts: Vec::new(),
            dir_pages,
            conn,
            back_page,
            ring_mapping: Some(mapping),
            connected: true,
        }
    }

    /// The backend's connection and ring page for this frontend.
    pub fn backend_side(&mut self) -> (&mut Connection, &mut BusRingPage) {
        (&mut self.conn, &mut self.back_page)
    }

    /// How many times the backend read request slot bytes.
    pub fn backend_slot_reads(&self) -> u64 {
        self.back_page.slot_reads.get()
    }

    /// The backend drops its ring mapping (after revoking everything).
    pub fn unmap_ring(&mut self, platform: &Platform) {
        if let Some(m) = self.ring_mapping.take() {
            platform.mapper().unmap(&testing_cap(), &[m]);
        }
        self.connected = false;
    }

    /// A fresh request id.
    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Allocates `n` pages, fills each with its pattern, grants them to the
    /// backend (read-only if asked) and remembers them.
    pub fn grant_pages(&mut self, n: usize, read_only: bool) -> Vec<PageInfo> {
        let gfns = self.guest.alloc_pages(n as u32).expect("guest pages");
        let mut out = Vec::with_capacity(n);
        for gfn in gfns {
            let seq = self.pages.len() as u32;
            let bytes: Vec<u8> = (0..PAGE_SIZE).map(|o| pattern(self.dom, seq, o)).collect();
            self.guest.write(gfn, 0, &bytes).expect("fill");
            let gref = self.guest.grant(gfn, BACKEND, read_only).expect("grant");
            let p = PageInfo { gfn, gref, read_only, seq };
            self.pages.push(p);
            out.push(p);
        }
        out
    }

    /// The expected contents of a page this frontend granted.
    pub fn expected(&self, p: &PageInfo) -> Vec<u8> {
        (0..PAGE_SIZE).map(|o| pattern(self.dom, p.seq, o)).collect()
    }

    /// Queues a request and publishes it.
    pub fn push(&mut self, slot: &Slot) {
        self.front.put_request(&mut self.ring, slot).expect("ring has room");
        self.front.push_requests(&mut self.ring);
    }

    /// The next response, if the backend published one.
    pub fn take_response(&mut self) -> Option<Response> {
        match self.front.take_response(&self.ring) {
            Ok(Some(s)) => Some(Response::parse(&s)),
            _ => None,
        }
    }

    /// Builds the request for `entries`: inline if they fit, otherwise in
    /// the frontend's directory pages. Returns the directory pages used.
    pub fn request(&mut self, op: Op, ctx: u16, entries: &[Entry]) -> (Slot, Vec<(Gfn, GrantRef)>) {
        let id = self.id();
        if entries.len() <= gpuif::wire::INLINE_ENTRIES {
            return (RequestBuilder::inline(id, op, ctx, entries).expect("inline"), Vec::new());
        }
        let pages = dir_pages_for(entries.len());
        let used: Vec<(Gfn, GrantRef)> = self.dir_pages[..pages].to_vec();
        for (chunk, (gfn, _)) in entries.chunks(ENTRIES_PER_DIR_PAGE).zip(&used) {
            let mut page = [0u8; PAGE_SIZE];
            RequestBuilder::dir_page(chunk, &mut page).expect("dir page");
            self.guest.write(*gfn, 0, &page).expect("write dir page");
        }
        let raw: Vec<u32> = used.iter().map(|(_, r)| r.0).collect();
        let slot =
            RequestBuilder::indirect(id, op, ctx, entries.len() as u16, &raw).expect("indirect");
        (slot, used)
    }

    /// Whether `gref` is one of this frontend's directory pages.
    pub fn is_dir_page(&self, gref: GrantRef) -> bool {
        self.dir_pages.iter().any(|(_, r)| *r == gref)
    }

    /// Writes raw bytes into the ring page (hostile frontends).
    pub fn poke(&mut self, offset: usize, bytes: &[u8]) {
        self.ring.write(offset, bytes);
    }

    /// The frontend's ring state, for hostile tests that manipulate indexes.
    pub fn front_ring(&mut self) -> &mut FrontRing {
        &mut self.front
    }
}
