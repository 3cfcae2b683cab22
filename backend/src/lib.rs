//! # backend — gpu-dom's request path
//!
//! Serves frontends' rings: copies each request out of the shared ring once
//! (`gpuif::BackRing`), validates it (`gpuif::Request::parse`), fetches
//! directory pages by grant *copy* (they never enter the GPU-reachable
//! physmap), decodes entries into `gtt`'s types, runs them through the
//! [`gtt::Engine`], and answers with a `gpuif::Response`.
//!
//! This is the server half in the Hubris sense: `gtt` is the logic,
//! `gpuif` the interface, this crate the loop around them, and the unikernel
//! (or a host test) supplies the platform. No `unsafe`, no allocation after
//! [`Backend::new`].
//!
//! # Invariants
//! - A slot is read from shared memory once; everything after works on copies.
//! - Every request gets exactly one response, malformed ones included.
//! - A ring protocol violation ([`gpuif::RingError`]) ends service for that
//!   frontend only: the caller disconnects it with [`Backend::disconnect`],
//!   which revokes everything it had.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod counters;
pub mod device;
mod handle;
pub mod service;
mod status;

pub use counters::{result_name, DeviceCounters, RequestCounters, RESULTS};
pub use device::{Connector, DeviceError};
pub use handle::{BackendStats, CpuAccess};
pub use service::{Change, Service};
pub use status::refusal_status;

use alloc::vec::Vec;

use gpuif::ring::{BackRing, RingError, SharedPage};
use gpuif::wire::{MAX_DIR_PAGES, MAX_ENTRIES};
use gpuif::PAGE_SIZE;
use gtt::{
    Access, DomId, Engine, GgttEntry, GpuTables, GrantMapper, GrantRef, PpgttEntry, Released,
};

/// One frontend's connection: its domain and the backend's ring state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub dom: DomId,
    ring: BackRing,
    /// What this connection's requests came to.
    pub counters: RequestCounters,
}

impl Connection {
    /// Attaches to the frontend's ring page (already mapped by the caller).
    pub fn new<P: SharedPage>(dom: DomId, page: &P) -> Self {
        Connection { dom, ring: BackRing::attach(page), counters: RequestCounters::default() }
    }
}

/// What one [`Backend::serve`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Requests answered.
    pub requests: u32,
    /// The frontend asked for an event-channel notification.
    pub notify: bool,
    /// Requests remain (the budget ran out); call again.
    pub more: bool,
}

/// The backend: the engine plus per-request scratch space.
pub struct Backend<M, W, D> {
    engine: Engine<M, W>,
    dir: D,
    debug_readback: bool,
    stats: BackendStats,
    /// Entry bytes of the current request: inline ones, or copied directory pages.
    dir_buf: Vec<u8>,
    // Decoded entries of the current request, one buffer per kind (sized at init).
    ggtt_buf: Vec<GgttEntry>,
    ppgtt_buf: Vec<PpgttEntry>,
    index_buf: Vec<u32>,
    addr_buf: Vec<u64>,
}

impl<M: GrantMapper, W: GpuTables, D: CpuAccess> Backend<M, W, D> {
    /// A backend around `engine`. The engine's batch capacity should be at
    /// least [`gpuif::MAX_ENTRIES`]; larger requests are refused `TOO_LARGE`.
    pub fn new(engine: Engine<M, W>, dir: D) -> Self {
        Backend {
            engine,
            dir,
            debug_readback: false,
            stats: BackendStats::default(),
            dir_buf: alloc::vec![0; MAX_DIR_PAGES * PAGE_SIZE],
            ggtt_buf: alloc::vec![GgttEntry { index: 0, gref: GrantRef(0), access: Access::ReadOnly }; MAX_ENTRIES],
            ppgtt_buf: alloc::vec![PpgttEntry { addr: 0, gref: GrantRef(0), access: Access::ReadOnly }; MAX_ENTRIES],
            index_buf: alloc::vec![0; MAX_ENTRIES],
            addr_buf: alloc::vec![0; MAX_ENTRIES],
        }
    }

    /// Allows `DebugReadback` requests (test builds and boot option only).
    pub fn enable_debug_readback(&mut self, on: bool) {
        self.debug_readback = on;
    }

    /// The engine (for attach/detach by the xenbus layer, and for counters).
    pub fn engine(&self) -> &Engine<M, W> {
        &self.engine
    }

    /// The engine, mutably (attach is the toolstack's decision, made by the caller).
    pub fn engine_mut(&mut self) -> &mut Engine<M, W> {
        &mut self.engine
    }

    /// The CPU-side platform access.
    pub fn cpu_access(&self) -> &D {
        &self.dir
    }

    /// Protocol-level counters (decode errors, disconnects).
    pub fn stats(&self) -> &BackendStats {
        &self.stats
    }

    /// Answers requests from `conn`'s ring until `budget` units of work are
    /// spent (a request costs 1 plus the entries it named or applied, so a turn is
    /// bounded by the work done, not by how many requests carried it: one
    /// 2048-entry request weighs as much as 2049 one-entry ones), then
    /// publishes the responses. At least one request is answered per call.
    /// `Err` means the frontend broke the ring protocol: stop serving it and
    /// call [`Backend::disconnect`].
    pub fn serve<P: SharedPage>(
        &mut self,
        conn: &mut Connection,
        page: &mut P,
        budget: u32,
    ) -> Result<Served, RingError> {
        let mut served = Served::default();
        let mut spent: u32 = 0;
        let result = loop {
            if spent >= budget {
                served.more = true;
                break Ok(());
            }
            match conn.ring.take_request(page) {
                Ok(Some(slot)) => {
                    let rsp = self.handle(conn.dom, &slot);
                    conn.counters.record(rsp.op, rsp.status);
                    conn.ring.put_response(page, &rsp.emit());
                    served.requests += 1;
                    // Entries named count even when refused: a request of
                    // 2048 bad grants costs gpu-dom a directory copy and
                    // 2048 map attempts.
                    let named = u32::from(gpuif::Request::raw_nr(&slot));
                    spent = spent.saturating_add(1 + rsp.done.max(named));
                }
                Ok(None) => match conn.ring.final_check_for_requests(page) {
                    Ok(true) => continue,
                    Ok(false) => break Ok(()),
                    Err(e) => break Err(e),
                },
                Err(e) => break Err(e),
            }
        };
        // Answer what was handled even if the ring then turned out broken.
        if served.requests > 0 {
            served.notify = conn.ring.push_responses(page);
        }
        match result {
            Ok(()) => Ok(served),
            Err(e) => {
                self.stats.ring_errors += 1;
                log::warn!("vgpu dom{}: ring protocol error: {e}; disconnecting", conn.dom.0);
                Err(e)
            }
        }
    }

    /// Revokes everything `dom` had (entries, grants, tables, contexts).
    /// Idempotent: a domain that is not attached releases nothing.
    pub fn disconnect(&mut self, dom: DomId) -> Released {
        self.stats.disconnects += 1;
        match self.engine.detach(dom) {
            Ok(rel) => {
                log::info!(
                    "vgpu dom{}: revoked {} entries, {} grants, {} table pages, {} contexts",
                    dom.0,
                    rel.entries_cleared,
                    rel.grants_unmapped,
                    rel.table_pages_freed,
                    rel.contexts_destroyed
                );
                rel
            }
            Err(_) => Released::default(),
        }
    }
}
