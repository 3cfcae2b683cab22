//! # gpu-dom-tests — the real backend against the platform model
//!
//! A [`Rig`] is one model platform (Xen grant tables, gpu-dom's strict IOMMU,
//! a model GPU; `platform-model`) with the real backend (`backend`, `gtt`,
//! `gpuif`) running on it, and test frontends that talk to it exactly as a
//! guest would: through a one-page ring in the guest's own memory, which the
//! backend reaches through a grant mapping, with directory pages granted
//! read-only and fetched by grant copy.
//!
//! Test-only: it maps the ring with the model's grant mapper through
//! `gtt::platform::testing_cap` (in gpu-dom the unikernel's grant code maps
//! rings; `gtt` alone maps what the GPU can reach).
#![forbid(unsafe_code)]

mod frontend;
mod pages;
pub mod service_world;

pub use frontend::{Frontend, PageInfo};
pub use pages::{BusRingPage, GuestRingPage, ModelCpu};

use backend::Backend;
use gtt::{Config, DomId, Engine, Limits};
use platform_model::{check_isolation, CheckStats, GuestView, ModelGpu, ModelMapper};
use platform_model::{Platform, PlatformConfig, Problem};

/// The backend as the tests run it.
pub type ModelBackend = Backend<ModelMapper, ModelGpu, ModelCpu>;

/// The backend domain's id in every rig.
pub const BACKEND: DomId = DomId(1);

/// A platform, the backend on it, and the frontends attached so far.
pub struct Rig {
    pub platform: Platform,
    pub backend: ModelBackend,
    /// Every frontend ever created, attached or not (index = frontend id).
    pub frontends: Vec<Frontend>,
    /// Guests detached or disconnected (for the checker: nothing may remain).
    pub gone: Vec<DomId>,
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
        let engine = Engine::new(cfg, platform.mapper(), platform.gpu());
        let mut backend = Backend::new(engine, ModelCpu(platform.clone()));
        backend.enable_debug_readback(true);
        Rig { platform, backend, frontends: Vec::new(), gone: Vec::new() }
    }

    /// Creates guest `dom` with `pages` pages of RAM and a frontend in it.
    /// With `limits`, the toolstack attaches it first; without, it is a
    /// guest nobody attached. Returns the frontend id.
    pub fn add_guest(&mut self, dom: DomId, pages: u32, limits: Option<Limits>) -> usize {
        let guest = self.platform.create_guest(dom, pages).expect("guest memory");
        if let Some(l) = limits {
            self.backend.engine_mut().attach(dom, l).expect("toolstack attach");
        }
        let fe = Frontend::connect(&self.platform, guest);
        self.frontends.push(fe);
        self.frontends.len() - 1
    }

    /// The frontend `fe`.
    pub fn fe(&mut self, fe: usize) -> &mut Frontend {
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

impl Default for Rig {
    fn default() -> Self {
        Rig::new()
    }
}

/// Limits for test guests: slice `base..base+len`, 4 contexts, `pages` pages.
pub fn limits(base: u32, len: u32, pages: u32) -> Limits {
    Limits {
        ggtt_base: base,
        ggtt_len: len,
        max_contexts: 4,
        max_pages: pages,
        max_table_pages: 64,
    }
}
