//! The xenstore layout of one vgpu device, as the toolstack writes it.
//!
//! Paths follow `docs/misc/xenstore-paths` and libxl's
//! `libxl__device_generic_add` for split drivers; the keys are
//! [`gpuif::keys`]. Permissions are written owner first; the owner's letter
//! is what every unlisted domain gets.
//!
//! ```text
//! /local/domain/<b>/backend/vgpu/<f>/<devid>          n<b> r<f>    (backend owns, guest reads)
//!   frontend = /local/domain/<f>/device/vgpu/<devid>  n<b> r<f>
//!   frontend-id = <f>, online = 1, state = 1          n<b> r<f>
//!   limits/                                           n0 r<b> r<f> (dom0 owns: the toolstack's decision)
//!     ggtt-base, ggtt-entries, max-contexts,          n0 r<b> r<f>
//!     max-pages, max-table-pages
//! /local/domain/<f>/device/vgpu/<devid>               n<f> r<b>    (guest owns, backend reads)
//!   backend = /local/domain/<b>/backend/vgpu/<f>/<devid>, backend-id = <b>, state = 1
//! ```
//!
//! ## Invariants
//!
//! - Every node `vgpu attach` creates gets its permissions set explicitly,
//!   so the result does not depend on how a xenstored lets children inherit.
//! - No domain other than dom0 can write a limit: dom0 owns `limits/` and
//!   every key in it, and the other entries are read-only.

use xenbus::state::keys as xb;
use xenbus::{Access, DomId, Perm, XenbusState};

use gpuif::keys;

use crate::slice::Slice;

/// Where a backend publishes the GGTT entries it manages.
pub fn ggtt_total_path(backend: DomId) -> String {
    format!("/local/domain/{backend}/{}", keys::GGTT_TOTAL)
}
/// Assumed when gpu-dom has not published [`ggtt_total_path`].
pub const DEFAULT_GGTT_TOTAL: u32 = 65536;
/// The statistics `vgpu list` shows, in column order.
pub use gpuif::keys::STATS_KEYS;

/// `/local/domain/<b>/backend/vgpu`: where a backend's devices live.
pub fn backend_root(backend: DomId) -> String {
    format!("/local/domain/{backend}/backend/{}", keys::DEVICE_TYPE)
}

/// One device: guest `frontend`'s vgpu `devid`, served by `backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    /// The backend domain (gpu-dom).
    pub backend: DomId,
    /// The guest.
    pub frontend: DomId,
    /// The device id.
    pub devid: u32,
}

/// What the toolstack allows the guest; written under `limits/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The guest's GGTT slice.
    pub slice: Slice,
    /// PPGTT contexts at once.
    pub max_contexts: u32,
    /// Grant-mapped pages at once.
    pub max_pages: u32,
    /// PPGTT table pages at once.
    pub max_table_pages: u32,
}

impl Limits {
    /// The limit keys with their values, in the order they are written.
    pub fn entries(&self) -> [(&'static str, u32); 5] {
        [
            (keys::LIMIT_GGTT_BASE, self.slice.base),
            (keys::LIMIT_GGTT_ENTRIES, self.slice.len),
            (keys::LIMIT_MAX_CONTEXTS, self.max_contexts),
            (keys::LIMIT_MAX_PAGES, self.max_pages),
            (keys::LIMIT_MAX_TABLE_PAGES, self.max_table_pages),
        ]
    }
}

/// Owner `owner` (no access for unlisted domains), then read access for
/// each of `readers` that is not the owner or already listed.
fn owned_by(owner: DomId, readers: &[DomId]) -> Vec<Perm> {
    let mut perms = vec![Perm::new(owner, Access::None)];
    for &r in readers {
        if perms.iter().all(|p| p.dom != r) {
            perms.push(Perm::new(r, Access::Read));
        }
    }
    perms
}

/// Permissions as `xenstore-ls -p` prints them: `n1 r5`.
pub fn perms_string(perms: &[Perm]) -> String {
    perms.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ")
}

impl Device {
    /// `/local/domain/<b>/backend/vgpu/<f>/<devid>`.
    pub fn backend_dir(&self) -> String {
        format!("{}/{}/{}", backend_root(self.backend), self.frontend, self.devid)
    }

    /// `/local/domain/<b>/data/vgpu/<f>/<devid>`: the statistics gpu-dom
    /// publishes for the device.
    pub fn stats_dir(&self) -> String {
        let root = gpuif::keys::STATS_ROOT;
        format!("/local/domain/{}/{root}/{}/{}", self.backend, self.frontend, self.devid)
    }

    /// `/local/domain/<f>/device/vgpu/<devid>`.
    pub fn frontend_dir(&self) -> String {
        format!("/local/domain/{}/device/{}/{}", self.frontend, keys::DEVICE_TYPE, self.devid)
    }

    /// `<backend dir>/limits`.
    pub fn limits_dir(&self) -> String {
        format!("{}/{}", self.backend_dir(), keys::LIMITS_DIR)
    }

    /// `<dir>/state` of the backend.
    pub fn backend_state(&self) -> String {
        format!("{}/{}", self.backend_dir(), xb::STATE)
    }

    /// `<dir>/state` of the frontend.
    pub fn frontend_state(&self) -> String {
        format!("{}/{}", self.frontend_dir(), xb::STATE)
    }

    /// Backend directory: owned by the backend, readable by the guest.
    pub fn backend_perms(&self) -> Vec<Perm> {
        owned_by(self.backend, &[self.frontend])
    }

    /// Frontend directory: owned by the guest, readable by the backend.
    pub fn frontend_perms(&self) -> Vec<Perm> {
        owned_by(self.frontend, &[self.backend])
    }

    /// Limits: owned by dom0, readable by the backend and the guest.
    pub fn limits_perms(&self) -> Vec<Perm> {
        owned_by(0, &[self.backend, self.frontend])
    }

    /// Every node `vgpu attach` creates, in the order it creates them
    /// (frontend first, as libxl does). Directories have no value.
    pub fn nodes(&self, limits: &Limits) -> Vec<Node> {
        let initialising = XenbusState::Initialising.as_str().to_string();
        let (fe, be, lim) = (self.frontend_dir(), self.backend_dir(), self.limits_dir());
        let (fe_perms, be_perms, lim_perms) =
            (self.frontend_perms(), self.backend_perms(), self.limits_perms());
        let node = |dir: &str, key: Option<&str>, value: Option<String>, perms: &Vec<Perm>| Node {
            path: match key {
                Some(k) => format!("{dir}/{k}"),
                None => dir.to_string(),
            },
            value,
            perms: perms.clone(),
        };
        let mut out = vec![
            node(&fe, None, None, &fe_perms),
            node(&fe, Some(xb::BACKEND), Some(be.clone()), &fe_perms),
            node(&fe, Some(xb::BACKEND_ID), Some(self.backend.to_string()), &fe_perms),
            node(&fe, Some(xb::STATE), Some(initialising.clone()), &fe_perms),
            node(&be, None, None, &be_perms),
            node(&be, Some(xb::FRONTEND), Some(fe.clone()), &be_perms),
            node(&be, Some(xb::FRONTEND_ID), Some(self.frontend.to_string()), &be_perms),
            node(&be, Some(xb::ONLINE), Some("1".into()), &be_perms),
            node(&be, Some(xb::STATE), Some(initialising), &be_perms),
            node(&lim, None, None, &lim_perms),
        ];
        for (key, value) in limits.entries() {
            out.push(node(&lim, Some(key), Some(value.to_string()), &lim_perms));
        }
        out
    }
}

/// One node of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Absolute path.
    pub path: String,
    /// Its value; `None` for a directory.
    pub value: Option<String>,
    /// Its permissions, owner first.
    pub perms: Vec<Perm>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dom0_guest_is_not_listed_twice_in_the_limits_perms() {
        let dev = Device { backend: 1, frontend: 0, devid: 0 };
        assert_eq!(perms_string(&dev.limits_perms()), "n0 r1");
        assert_eq!(perms_string(&dev.backend_perms()), "n1 r0");
        let dev = Device { backend: 1, frontend: 5, devid: 2 };
        assert_eq!(perms_string(&dev.limits_perms()), "n0 r1 r5");
        assert_eq!(dev.backend_dir(), "/local/domain/1/backend/vgpu/5/2");
        assert_eq!(dev.frontend_dir(), "/local/domain/5/device/vgpu/2");
    }
}
