//! The vgpu backend service as gpu-dom runs it: built once from the
//! unikernel's window and the software GPU, its changes printed as console
//! markers, and its devices' event channels kept in the executor's set.
//!
//! Markers (read by the e2e test; keep them stable):
//! - `gpu-dom: WARNING: no Intel GPU found (no PCI devices in a PVH domU) -> using the software GPU ...`
//! - `gpu-dom: debug readback off` or `gpu-dom: WARNING: debug readback ON ...`
//! - `gpu-dom: vgpu dom<F>/<devid> InitWait`
//! - `gpu-dom: vgpu dom<F>/<devid> Connected; heap <n> KiB used, <m> KiB free`
//! - `gpu-dom: vgpu dom<F>/<devid> refused: <error>`
//! - `gpu-dom: vgpu dom<F>/<devid> closed (<why>): <n> grants unmapped`
//! - `gpu-dom: WARNING: fault armed: <kind> after <N> requests ...` at boot, then
//!   `gpu-dom: injecting fault <kind> after <n> requests (gpu-dom.fault)`
#![forbid(unsafe_code)]

extern crate alloc;

use backend::service::{MAX_DEVICES, TOKEN_BACKEND, TOKEN_FRONTEND, TOKEN_RELEASE};
use backend::{Backend, Change, Service};
use gtt::{Config, Engine};
use unikernel::executor::Executor;
use unikernel::Kernel;

use crate::gpu::{self, Gpu};
use crate::platform::{WindowMapper, XenConnector, XenCpu};

/// The service with the image's platform.
pub type VgpuService = Service<WindowMapper, Gpu, XenCpu, XenConnector>;

/// GGTT entries the software GPU offers (256 MiB of 4 KiB pages).
pub const GGTT_ENTRIES: u32 = 65536;
/// PPGTT table pages (4 KiB each, allocated at boot).
pub const TABLE_PAGES: usize = 1024;

/// Grant mappings at once, over all guests.
pub const GRANT_SLOTS: usize = 16384;
/// PPGTT contexts at once, over all guests.
pub const CONTEXTS: usize = 64;

/// The engine's capacities in the image: gpu-dom's pools, from which every
/// attached guest's limits are reserved (`gtt::Pool`).
pub fn engine_config() -> Config {
    Config {
        max_guests: MAX_DEVICES as u16,
        grant_slots: GRANT_SLOTS,
        table_pages: TABLE_PAGES,
        contexts: CONTEXTS,
        max_batch: gpuif::MAX_ENTRIES,
    }
}

/// Guests with `vgpu attach`'s default limits (`gpuif::keys::default_limits`)
/// a default gpu-dom serves: each takes at most a sixteenth of every pool.
/// Smaller guests fill the devices pool first ([`MAX_DEVICES`], 64: each
/// guest a 64th of every pool, as `cargo xtask scale` attaches them).
pub const DEFAULT_GUESTS: usize = 16;
const _: () = {
    use gpuif::keys::default_limits as d;
    let n = DEFAULT_GUESTS;
    assert!(n <= MAX_DEVICES);
    assert!(n * d::GGTT_ENTRIES as usize <= GGTT_ENTRIES as usize);
    assert!(n * d::MAX_PAGES as usize <= GRANT_SLOTS);
    assert!(n * d::MAX_TABLE_PAGES as usize <= TABLE_PAGES);
    assert!(n * d::CONTEXTS as usize <= CONTEXTS);
};
// The window holds every grant slot and the CPU pages a ring per device,
// so a guest within its reservation never finds either full; a whole
// request's grants go into the window with one hypercall.
const _: () = assert!(GRANT_SLOTS <= unikernel::layout::WINDOW_FRAMES as usize);
const _: () = assert!(MAX_DEVICES <= unikernel::layout::CPU_PAGE_FRAMES as usize);
const _: () = assert!(gpuif::MAX_ENTRIES <= unikernel::layout::MAX_MAP_BATCH);

/// Builds the backend service. Takes the unikernel's grant window and its
/// token: from now on only `gtt` maps into the window.
pub fn build(k: &mut Kernel) -> VgpuService {
    let (window, token) = k.take_grant_window().unwrap_or_else(|| panic!("grant table not set up"));
    let pages = k.cpu_pages.take().unwrap_or_else(|| panic!("grant table not set up"));
    let reader = window.reader();
    let (gpu, footprint) = gpu::choose(GGTT_ENTRIES, TABLE_PAGES);
    let mapper = WindowMapper::new(window, token, gpuif::MAX_ENTRIES);
    let engine = Engine::new(engine_config(), mapper, gpu);
    let mut backend = Backend::new(engine, XenCpu { window: reader });
    let options = k.options();
    if let Some(word) = options.unknown {
        log::warn!(
            "unknown boot option {word:?} ignored (gpu-dom knows {:?})",
            unikernel::boot_options::KNOWN
        );
    }
    if options.debug_readback {
        log::info!(
            "WARNING: debug readback ON (gpu-dom.debug=readback on the command line): guests \
             can read checksums of the pages mapped for them; never use in production"
        );
        backend.enable_debug_readback(true);
    } else {
        log::info!("debug readback off");
    }
    let (used, left, _) = unikernel::arch::x86_64::alloc::stats();
    log::info!(
        "backend built: GPU tables {} KiB; heap {} KiB used, {} KiB free",
        footprint / 1024,
        used / 1024,
        left / 1024
    );
    Service::new(backend, XenConnector { pages })
}

/// A deliberate crash once gpu-dom has answered a number of requests
/// (`gpu-dom.fault=<kind>-after=<N>`, `cargo xtask restart`'s crash run;
/// never in production).
pub struct FaultPlan {
    kind: &'static str,
    after: u64,
}

impl FaultPlan {
    /// The plan from the command line, if one is armed (said loudly).
    pub fn from_options(k: &Kernel) -> Option<FaultPlan> {
        let f = k.options().fault?;
        let Some(after) = f.after_requests else {
            log::warn!(
                "gpu-dom.fault={} is for the dom0 self-test; a domU needs <kind>-after=<N>",
                f.kind
            );
            return None;
        };
        log::info!(
            "WARNING: fault armed: {} after {after} requests (gpu-dom.fault); this gpu-dom will crash",
            f.kind
        );
        Some(FaultPlan { kind: f.kind, after })
    }

    /// Injects the fault once `svc` has answered the planned number of requests.
    pub fn check(&self, svc: &VgpuService) {
        let n = svc.backend.stats().requests;
        if n >= self.after {
            log::info!("injecting fault {} after {n} requests (gpu-dom.fault)", self.kind);
            unikernel::arch::x86_64::fault::inject(self.kind);
        }
    }
}

/// Prints one change as its console marker.
pub fn print_change(c: Change) {
    match c {
        Change::InitWait { fe, devid } => log::info!("vgpu dom{}/{devid} InitWait", fe.0),
        Change::Connected { fe, devid, .. } => {
            let (used, free, _) = unikernel::arch::x86_64::alloc::stats();
            log::info!(
                "vgpu dom{}/{devid} Connected; heap {} KiB used, {} KiB free",
                fe.0,
                used / 1024,
                free / 1024
            )
        }
        Change::Refused { fe, devid, error } => {
            log::info!("vgpu dom{}/{devid} refused: {error}", fe.0)
        }
        Change::Closed { fe, devid, why, grants_unmapped } => {
            log::info!("vgpu dom{}/{devid} closed ({why}): {grants_unmapped} grants unmapped", fe.0)
        }
    }
}

/// True for the watch tokens the service set.
pub fn is_service_token(token: &str) -> bool {
    matches!(token, TOKEN_BACKEND | TOKEN_RELEASE | TOKEN_FRONTEND)
}

/// The devices' local ports the executor watches.
#[derive(Default)]
pub struct Ports {
    watched: heapless::Vec<u32, MAX_DEVICES>,
}

impl Ports {
    /// The ports watched now.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.watched.iter().copied()
    }

    /// Makes the executor watch exactly the ports of connected devices.
    pub fn sync(&mut self, ex: &mut Executor, svc: &VgpuService) {
        let mut live: heapless::Vec<u32, MAX_DEVICES> = heapless::Vec::new();
        for port in svc.devices().filter_map(|d| d.live.as_ref().map(|l| l.port)) {
            let _ = live.push(port);
        }
        for &p in self.watched.iter().filter(|p| !live.contains(p)) {
            ex.unwatch(p);
        }
        for &p in live.iter().filter(|p| !self.watched.contains(p)) {
            if ex.watch(p).is_err() {
                log::warn!("executor cannot watch port {p}: its device will not be served");
            }
        }
        self.watched = live;
    }
}
