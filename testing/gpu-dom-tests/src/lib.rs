//! # gpu-dom-tests — the real backend against the platform model
//!
//! Two ways to run the real backend on the platform model (Xen grant
//! tables, gpu-dom's strict IOMMU, a model GPU; `platform-model`):
//!
//! - the [`world`]: dom0's toolstack (the real `vgpu`), gpu-dom running the
//!   real `backend::Service` on the model xenstored and Xen's event channels
//!   ([`channels`]), and guests running the real `frontend` crate (a
//!   hostile guest's xenstore values are written by hand); the frontend's
//!   tests, the service's, the counters' and the availability tests run
//!   there;
//! - a [`Rig`]: the request path alone (`backend::Backend`, `gtt`, `gpuif`),
//!   no xenstore, with [`RawFrontend`]s ([`raw_ring`]) that write ring slots
//!   byte by byte into a one-page ring in the guest's own memory, which the
//!   backend reaches through a grant mapping, with directory pages granted
//!   read-only and fetched by grant copy: for the property test, the
//!   end-to-end tests and the fuzz targets, which need to write what a real
//!   frontend never would.
//!
//! A rig can be put back to where it stood before the backend served
//! anything ([`Rig::checkpoint`], [`Rig::reset`]): a fuzz target builds its
//! guests once and starts every input from the same state, exactly.
//!
//! [`engine_views`] says whom a running engine serves, for the isolation
//! checker.
//!
//! Test-only: it maps the ring with the model's grant mapper through
//! `gtt::platform::testing_cap` (in gpu-dom the unikernel's grant code maps
//! rings; `gtt` alone maps what the GPU can reach).
#![forbid(unsafe_code)]

pub mod channels;
mod pages;
pub mod raw_ring;
pub mod world;

pub use pages::{BusRingPage, GuestRingPage, ModelCpu, ModelRings};
pub use raw_ring::{pattern, PageInfo, RawFrontend};

use backend::Backend;
use gtt::{Config, DomId, Engine, Limits};
use platform_model::{check_isolation, CheckStats, GuestView, ModelGpu, ModelMapper};
use platform_model::{Platform, PlatformConfig, Problem, Snapshot};

/// The backend as the tests run it.
pub type ModelBackend = Backend<ModelMapper, ModelGpu, ModelCpu>;

/// The backend domain's id in every rig.
pub const BACKEND: DomId = DomId(1);

/// A platform, the backend on it, and the frontends attached so far.
pub struct Rig {
    pub platform: Platform,
    pub backend: ModelBackend,
    /// Every frontend ever created, attached or not (index = frontend id).
    pub frontends: Vec<RawFrontend>,
    /// Guests detached or disconnected (for the checker: nothing may remain).
    pub gone: Vec<DomId>,
    /// The engine's sizes (to build it again on a reset).
    cfg: Config,
    /// Guests the toolstack attached through [`Rig::add_guest`], in order.
    attached: Vec<(DomId, Limits)>,
}

/// A rig as it stood before the backend served anything ([`Rig::checkpoint`]).
pub struct Checkpoint {
    platform: Snapshot,
    frontends: Vec<RawFrontend>,
    gone: Vec<DomId>,
    attached: Vec<(DomId, Limits)>,
}

impl Rig {
    /// A rig with the model's default sizes and an engine sized to match.
    pub fn new() -> Rig {
        let pcfg =
            PlatformConfig { backend: BACKEND, window_pages: 4096, ..PlatformConfig::default() };
        let cfg = Config {
            max_guests: 8,
            grant_slots: 4000,
            table_pages: pcfg.table_pool_pages as usize,
            contexts: 32,
            max_batch: gpuif::MAX_ENTRIES,
        };
        Rig::with_config(pcfg, cfg)
    }

    /// A rig with explicit sizes.
    pub fn with_config(pcfg: PlatformConfig, cfg: Config) -> Rig {
        let platform = Platform::new(pcfg).expect("valid model configuration");
        let backend = new_backend(&platform, cfg);
        Rig {
            platform,
            backend,
            frontends: Vec::new(),
            gone: Vec::new(),
            cfg,
            attached: Vec::new(),
        }
    }

    /// Records the rig as it stands, to come back to with [`Rig::reset`]:
    /// the whole platform (guest memory, grants, the rings' mappings) and
    /// the frontends. The backend's own state is not copied but rebuilt on
    /// reset (a new engine, the same attaches in the same order), so this
    /// is only for a rig whose backend has served nothing yet.
    ///
    /// # Panics
    /// If the backend already served a request, mapped a grant, or was
    /// attached or detached other than by [`Rig::add_guest`].
    pub fn checkpoint(&self) -> Checkpoint {
        let engine = self.backend.engine();
        let fresh = *self.backend.stats() == backend::BackendStats::default()
            && *engine.counters() == gtt::Counters::default();
        assert!(fresh, "checkpoint of a rig whose backend already served something");
        for f in &self.frontends {
            let recorded = self.attached.iter().find(|(d, _)| *d == f.dom).map(|(_, l)| *l);
            assert_eq!(engine.guest_limits(f.dom), recorded, "dom{} attached elsewhere", f.dom.0);
        }
        Checkpoint {
            platform: self.platform.snapshot(),
            frontends: self.frontends.clone(),
            gone: self.gone.clone(),
            attached: self.attached.clone(),
        }
    }

    /// Puts the rig back exactly where it stood at `cp` (taken from this
    /// rig): the platform is restored, the backend is built anew with the
    /// same attaches, the frontends are as they were.
    pub fn reset(&mut self, cp: &Checkpoint) {
        self.platform.restore(&cp.platform);
        self.backend = new_backend(&self.platform, self.cfg);
        for &(dom, l) in &cp.attached {
            self.backend.engine_mut().attach(dom, l).expect("attached at the checkpoint");
        }
        self.attached.clone_from(&cp.attached);
        self.frontends.clone_from(&cp.frontends);
        self.gone.clone_from(&cp.gone);
    }

    /// Creates guest `dom` with `pages` pages of RAM and a frontend in it.
    /// With `limits`, the toolstack attaches it first; without, it is a
    /// guest nobody attached. Returns the frontend id.
    pub fn add_guest(&mut self, dom: DomId, pages: u32, limits: Option<Limits>) -> usize {
        let guest = self.platform.create_guest(dom, pages).expect("guest memory");
        if let Some(l) = limits {
            self.backend.engine_mut().attach(dom, l).expect("toolstack attach");
            self.attached.push((dom, l));
        }
        let fe = RawFrontend::connect(&self.platform, guest);
        self.frontends.push(fe);
        self.frontends.len() - 1
    }

    /// The frontend `fe`.
    pub fn fe(&mut self, fe: usize) -> &mut RawFrontend {
        &mut self.frontends[fe]
    }

    /// Sends one request slot from frontend `fe`, lets the backend serve the
    /// ring, and returns the response (`None` if the backend disconnected it).
    pub fn call(&mut self, fe: usize, slot: &gpuif::Slot) -> Option<gpuif::Response> {
        let f = &mut self.frontends[fe];
        f.push(slot);
        self.serve(fe);
        self.frontends[fe].take_response()
    }

    /// Sends `entries` as one request (inline or through directory pages)
    /// and returns the response.
    pub fn batch(
        &mut self,
        fe: usize,
        op: gpuif::Op,
        ctx: u16,
        entries: &[gpuif::Entry],
    ) -> gpuif::Response {
        let (slot, _) = self.frontends[fe].request(op, ctx, entries);
        self.call(fe, &slot).expect("the backend answers")
    }

    /// Creates a PPGTT context for frontend `fe`.
    pub fn create_context(&mut self, fe: usize) -> gpuif::Response {
        let id = self.frontends[fe].id();
        let rsp = self
            .call(fe, &gpuif::RequestBuilder::simple(id, gpuif::Op::ContextCreate, 0))
            .expect("answer");
        if rsp.status == gpuif::Status::OK {
            self.frontends[fe].contexts.push(gtt::ContextId(rsp.value as u16));
        }
        rsp
    }

    /// Lets the backend serve frontend `fe`'s ring; on a ring protocol
    /// error, disconnects it as gpu-dom does.
    pub fn serve(&mut self, fe: usize) {
        let f = &mut self.frontends[fe];
        if !f.connected {
            return;
        }
        loop {
            let (conn, page) = self.frontends[fe].backend_side();
            match self.backend.serve(conn, page, backend::service::BUDGET) {
                Ok(s) if s.more => continue,
                Ok(_) => return,
                Err(_) => return self.disconnect(fe),
            }
        }
    }

    /// Disconnects frontend `fe` as gpu-dom does on Closing, death or a
    /// protocol error: revoke everything, then unmap the ring.
    pub fn disconnect(&mut self, fe: usize) {
        let dom = self.frontends[fe].dom;
        self.backend.disconnect(dom);
        self.frontends[fe].unmap_ring(&self.platform);
        if !self.gone.contains(&dom) {
            self.gone.push(dom);
        }
    }

    /// What the checker needs to know about every guest.
    pub fn views(&self) -> Vec<GuestView> {
        let engine = self.backend.engine();
        self.frontends
            .iter()
            .map(|f| {
                let mut v = GuestView::new(f.dom);
                if self.gone.contains(&f.dom) {
                    return v.gone();
                }
                if let Some(l) = engine.guest_limits(f.dom) {
                    v = v.with_ggtt(l.ggtt_base..l.ggtt_base + l.ggtt_len);
                }
                for ctx in engine.contexts(f.dom) {
                    v = v.with_root(engine.context_root(f.dom, ctx).expect("listed context"));
                }
                v
            })
            .collect()
    }

    /// Checks every isolation invariant of DESIGN.md on the model's state.
    pub fn check(&self) -> Result<CheckStats, Problem> {
        check_isolation(&self.platform, &self.views())
    }
}

/// The backend on `platform` with an engine of sizes `cfg`, `DebugReadback` on.
fn new_backend(platform: &Platform, cfg: Config) -> ModelBackend {
    let engine = Engine::new(cfg, platform.mapper(), platform.gpu());
    let mut backend = Backend::new(engine, ModelCpu(platform.clone()));
    backend.enable_debug_readback(true);
    backend
}

/// What the isolation checker needs about `doms`, from the engine's own
/// account of whom it serves: an attached guest with its slice and context
/// roots; a guest not attached (never, or no more) is gone, so nothing of
/// it may remain reachable or mapped.
pub fn engine_views<M: gtt::GrantMapper, W: gtt::GpuTables>(
    engine: &Engine<M, W>,
    doms: &[DomId],
) -> Vec<GuestView> {
    doms.iter()
        .map(|&dom| {
            let Some(l) = engine.guest_limits(dom) else {
                return GuestView::new(dom).gone();
            };
            let mut v = GuestView::new(dom).with_ggtt(l.ggtt_base..l.ggtt_base + l.ggtt_len);
            for ctx in engine.contexts(dom) {
                if let Ok(root) = engine.context_root(dom, ctx) {
                    v = v.with_root(root);
                }
            }
            v
        })
        .collect()
}

impl Default for Rig {
    fn default() -> Self {
        Rig::new()
    }
}

/// Limits for test guests: slice `base..base+len`, 4 contexts, `pages` pages.
pub const fn limits(base: u32, len: u32, pages: u32) -> Limits {
    Limits {
        ggtt_base: base,
        ggtt_len: len,
        max_contexts: 4,
        max_pages: pages,
        max_table_pages: 64,
    }
}
