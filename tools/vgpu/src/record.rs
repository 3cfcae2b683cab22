//! The toolstack's own record of each device, so that a device can be moved
//! to a new gpu-dom when the old one died (`vgpu restore`).
//!
//! The backend directory, with the guest's limits, goes away with the
//! backend's domain (the toolstack removes a dead domain's whole home), and
//! everything left under the guest's home is the guest's to change. So
//! `vgpu attach` also writes, in the same transaction, a dom0-only copy:
//!
//! ```text
//! /vgpu/<guest>/<devid>                               n0  (dom0 only: nobody else reads or writes)
//!   backend-name = gpu-dom                            the backend's name: a new gpu-dom has a new domid
//!   backend-id = <b>                                  the domid serving it now (updated by restore)
//!   limits/ggtt-base, ggtt-entries, max-contexts, max-pages, max-table-pages
//! ```
//!
//! Why not under the frontend directory: the guest owns
//! `device/vgpu/<devid>` and can remove it with everything below, then
//! write its own "limits" there; restoring from that would let a guest
//! raise its limits across a gpu-dom restart. This is what libxl does for
//! its own devices with `/libxl/<domid>/device/...`: the toolstack keeps
//! its copy where guests cannot reach it.
//!
//! ## Invariants
//!
//! - Only dom0 can read or write the record (`n0` on every node).
//! - The record is written and removed in the same transaction as the
//!   device (`vgpu attach`, `vgpu detach`, `vgpu restore`).

use xenbus::{Access, DomId, Perm, TxId};

use gpuif::keys;

use crate::error::Error;
use crate::layout::{Limits, Node};
use crate::slice::Slice;
use crate::store::{Bounded, Store};

/// Where every record lives.
pub const ROOT: &str = "/vgpu";

/// One device's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The guest.
    pub guest: DomId,
    /// The device id.
    pub devid: u32,
    /// The backend's domain name (`gpu-dom`).
    pub backend_name: String,
    /// The domid serving the device (or that served it, if it is gone).
    pub backend_id: DomId,
    /// The limits the guest was attached with.
    pub limits: Limits,
}

/// `/vgpu/<guest>/<devid>`.
pub fn dir(guest: DomId, devid: u32) -> String {
    format!("{ROOT}/{guest}/{devid}")
}

fn perms() -> Vec<Perm> {
    vec![Perm::new(0, Access::None)]
}

impl Record {
    /// Every node of the record, parents first, with dom0-only permissions.
    pub fn nodes(&self) -> Vec<Node> {
        let d = dir(self.guest, self.devid);
        let node = |path: String, value: Option<String>| Node { path, value, perms: perms() };
        let mut out = vec![
            node(ROOT.to_string(), None),
            node(format!("{ROOT}/{}", self.guest), None),
            node(d.clone(), None),
            node(format!("{d}/backend-name"), Some(self.backend_name.clone())),
            node(format!("{d}/backend-id"), Some(self.backend_id.to_string())),
            node(format!("{d}/{}", keys::LIMITS_DIR), None),
        ];
        for (k, v) in self.limits.entries() {
            out.push(node(format!("{d}/{}/{k}", keys::LIMITS_DIR), Some(v.to_string())));
        }
        out
    }

    /// Writes the record in transaction `tx`.
    pub fn write<T: Bounded>(&self, xs: &mut Store<T>, tx: TxId) -> Result<(), Error> {
        for node in self.nodes() {
            match &node.value {
                None => xs.mkdir(tx, &node.path)?,
                Some(v) => xs.write(tx, &node.path, v)?,
            }
            xs.set_perms(tx, &node.path, &node.perms)?;
        }
        Ok(())
    }
}

/// Reads the record of `guest`'s `devid`; `None` if there is none or it is
/// incomplete (then `why` says what is missing).
pub fn read<T: Bounded>(
    xs: &mut Store<T>,
    tx: TxId,
    guest: DomId,
    devid: u32,
) -> Result<Result<Record, String>, Error> {
    let d = dir(guest, devid);
    let Some(backend_name) = xs.read(tx, &format!("{d}/backend-name"))? else {
        return Ok(Err(format!("{d}/backend-name is missing")));
    };
    let Some(backend_id) = xs.read_u32(tx, &format!("{d}/backend-id"))? else {
        return Ok(Err(format!("{d}/backend-id is missing")));
    };
    let mut v = [0u32; 5];
    for (slot, k) in v.iter_mut().zip(keys::LIMIT_KEYS) {
        let path = format!("{d}/{}/{k}", keys::LIMITS_DIR);
        match xs.read_u32(tx, &path)? {
            Some(n) => *slot = n,
            None => return Ok(Err(format!("{path} is missing"))),
        }
    }
    let get = |k: &str| v[keys::LIMIT_KEYS.iter().position(|x| *x == k).unwrap_or(0)];
    let limits = Limits {
        slice: Slice { base: get(keys::LIMIT_GGTT_BASE), len: get(keys::LIMIT_GGTT_ENTRIES) },
        max_contexts: get(keys::LIMIT_MAX_CONTEXTS),
        max_pages: get(keys::LIMIT_MAX_PAGES),
        max_table_pages: get(keys::LIMIT_MAX_TABLE_PAGES),
    };
    let backend_id = DomId::try_from(backend_id).unwrap_or(DomId::MAX);
    Ok(Ok(Record { guest, devid, backend_name, backend_id, limits }))
}

/// Every `(guest, devid)` with a record.
pub fn list<T: Bounded>(xs: &mut Store<T>, tx: TxId) -> Result<Vec<(DomId, u32)>, Error> {
    let mut out = Vec::new();
    for g in xs.dir(tx, ROOT)?.iter().filter_map(|c| crate::domains::parse_domid(c)) {
        for d in xs.dir(tx, &format!("{ROOT}/{g}"))?.iter().filter_map(|d| keys::parse_u32(d)) {
            out.push((g, d));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Removes the record of `guest`'s `devid` (and `/vgpu/<guest>` if empty).
pub fn remove<T: Bounded>(
    xs: &mut Store<T>,
    tx: TxId,
    guest: DomId,
    devid: u32,
) -> Result<(), Error> {
    xs.rm(tx, &dir(guest, devid))?;
    xs.rm_if_empty(tx, &format!("{ROOT}/{guest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_of_the_record_is_dom0_only() {
        let r = Record {
            guest: 5,
            devid: 0,
            backend_name: "gpu-dom".into(),
            backend_id: 1,
            limits: Limits {
                slice: Slice { base: 4096, len: 4096 },
                max_contexts: 4,
                max_pages: 1024,
                max_table_pages: 64,
            },
        };
        let nodes = r.nodes();
        assert!(nodes.iter().all(|n| n.perms == perms()));
        let paths: Vec<&str> = nodes.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths[..4], ["/vgpu", "/vgpu/5", "/vgpu/5/0", "/vgpu/5/0/backend-name"]);
        assert!(paths.contains(&"/vgpu/5/0/limits/ggtt-base"));
        assert_eq!(nodes.len(), 6 + 5);
    }
}
