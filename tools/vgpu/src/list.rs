//! `vgpu list`: the devices of one backend, one line each, with both ends'
//! states, the GGTT slice and the statistics gpu-dom publishes.

use xenbus::{DomId, TxId, XenbusState};

use crate::attach::ggtt_total;
use crate::domains::{self, Domain, Gone};
use crate::error::Error;
use crate::layout::{self, Device, STATS_KEYS};
use crate::pools::{self, Pools};
use crate::store::{Bounded, Store};

/// One device as `vgpu list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The guest's name; `None` if the domain is gone or has none.
    pub guest: Option<String>,
    /// The guest's domid.
    pub domid: DomId,
    /// The device id.
    pub devid: u32,
    /// Frontend state name, `-` if absent.
    pub frontend: String,
    /// Backend state name, `-` if absent.
    pub backend: String,
    /// `base+len`, `-` if the limits are missing, `?` if malformed.
    pub slice: String,
    /// `pages`, `entries`, `contexts`, `refused`; `-` when absent.
    pub stats: [String; 4],
    /// The guest domain no longer exists.
    pub stale: bool,
}

/// What `vgpu list` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The backend.
    pub backend: Domain,
    /// Its GGTT size, and whether it published it.
    pub ggtt_total: (u32, bool),
    /// The devices, by guest domid then devid.
    pub rows: Vec<Row>,
    /// The backend's pools.
    pub pools: Pools,
}

fn state(value: Option<String>) -> String {
    match value {
        None => "-".to_string(),
        Some(v) => match XenbusState::parse(v.as_bytes()) {
            Ok(s) => s.to_string(),
            Err(_) => format!("?{v}"),
        },
    }
}

fn number(value: Option<String>) -> String {
    match value {
        None => "-".to_string(),
        Some(v) => match gpuif::keys::parse_u32(&v) {
            Some(n) => n.to_string(),
            None => "?".to_string(),
        },
    }
}

/// Reads every device of `backend` (a name or domid).
pub fn list<T: Bounded>(xs: &mut Store<T>, backend: &str) -> Result<Listing, Error> {
    let backend = domains::resolve(xs, backend, "backend", Gone::Refuse)?;
    let total = ggtt_total(xs, TxId::NONE, backend.id)?;
    let root = layout::backend_root(backend.id);
    let mut frontends: Vec<DomId> =
        xs.dir(TxId::NONE, &root)?.iter().filter_map(|c| domains::parse_domid(c)).collect();
    frontends.sort_unstable();
    let mut rows = Vec::new();
    for fe in frontends {
        let home = domains::home(fe);
        let stale = !xs.exists(TxId::NONE, &home)?;
        let guest = xs.read(TxId::NONE, &format!("{home}/name"))?;
        let mut devids: Vec<u32> = xs
            .dir(TxId::NONE, &format!("{root}/{fe}"))?
            .iter()
            .filter_map(|d| gpuif::keys::parse_u32(d))
            .collect();
        devids.sort_unstable();
        for devid in devids {
            rows.push(row(xs, Device { backend: backend.id, frontend: fe, devid }, &guest, stale)?);
        }
    }
    let pools = pools::read(xs, TxId::NONE, backend.id)?;
    Ok(Listing { backend, ggtt_total: total, rows, pools })
}

fn row<T: Bounded>(
    xs: &mut Store<T>,
    dev: Device,
    guest: &Option<String>,
    stale: bool,
) -> Result<Row, Error> {
    let lim = dev.limits_dir();
    let base = xs.read(TxId::NONE, &format!("{lim}/{}", gpuif::keys::LIMIT_GGTT_BASE))?;
    let len = xs.read(TxId::NONE, &format!("{lim}/{}", gpuif::keys::LIMIT_GGTT_ENTRIES))?;
    let slice = match (base, len) {
        (None, _) | (_, None) => "-".to_string(),
        (Some(b), Some(l)) => match (gpuif::keys::parse_u32(&b), gpuif::keys::parse_u32(&l)) {
            (Some(b), Some(l)) => format!("{b}+{l}"),
            _ => "?".to_string(),
        },
    };
    let mut stats: [String; 4] = Default::default();
    for (slot, key) in stats.iter_mut().zip(STATS_KEYS) {
        let path = format!("{}/{key}", dev.stats_dir());
        *slot = number(xs.read(TxId::NONE, &path)?);
    }
    Ok(Row {
        guest: guest.clone(),
        domid: dev.frontend,
        devid: dev.devid,
        frontend: state(xs.read(TxId::NONE, &dev.frontend_state())?),
        backend: state(xs.read(TxId::NONE, &dev.backend_state())?),
        slice,
        stats,
        stale,
    })
}

impl Listing {
    /// The text `vgpu list` prints.
    pub fn render(&self) -> String {
        let (total, published) = self.ggtt_total;
        let assumed = if published { "" } else { " (assumed: not published by the backend)" };
        let mut out = format!("{}: GGTT of {total} entries{assumed}, ", self.backend);
        if self.rows.is_empty() {
            out.push_str("no vgpu devices attached\n");
            out.push_str(&self.render_pools());
            return out;
        }
        out.push_str(&format!("{} vgpu device(s)\n", self.rows.len()));
        let header = ["GUEST", "DOMID", "DEVID", "FRONTEND", "BACKEND", "GGTT-SLICE"];
        let mut table: Vec<Vec<String>> =
            vec![header.iter().chain(STATS_KEYS.iter()).map(|h| h.to_uppercase()).collect()];
        for r in &self.rows {
            let mut line = vec![
                r.guest.clone().unwrap_or_else(|| "-".to_string()),
                r.domid.to_string(),
                r.devid.to_string(),
                r.frontend.clone(),
                r.backend.clone(),
                r.slice.clone(),
            ];
            line.extend(r.stats.iter().cloned());
            table.push(line);
        }
        let widths: Vec<usize> = (0..table[0].len())
            .map(|c| table.iter().map(|l| l[c].len()).max().unwrap_or(0))
            .collect();
        for line in &table {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, w))| match c {
                    1 | 2 => format!("{cell:>w$}"),
                    c if c >= 6 => format!("{cell:>w$}"),
                    _ => format!("{cell:<w$}"),
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        for r in self.rows.iter().filter(|r| r.stale) {
            out.push_str(&format!(
                "stale: domain {} no longer exists but its vgpu {} is still attached to {}; \
                 run `vgpu detach {} --devid {}`\n",
                r.domid,
                r.devid,
                self.backend.label(),
                r.domid,
                r.devid
            ));
        }
        out.push_str(&self.render_pools());
        out
    }

    /// The pools table: what the backend has, reserved, uses, and what is
    /// free for the next `vgpu attach`.
    fn render_pools(&self) -> String {
        if self.pools.iter().all(|(_, f)| f.capacity.is_none()) {
            return format!(
                "pools: not published by {} (is it running this version of gpu-dom?)\n",
                self.backend
            );
        }
        let n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let mut table = vec![["POOL", "CAPACITY", "RESERVED", "USED", "FREE"].map(String::from)];
        for (name, f) in &self.pools {
            table.push([name.to_string(), n(f.capacity), n(f.reserved), n(f.used), n(f.free())]);
        }
        let widths: Vec<usize> =
            (0..5).map(|c| table.iter().map(|l| l[c].len()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for line in &table {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .enumerate()
                .map(
                    |(c, (cell, w))| {
                        if c == 0 {
                            format!("{cell:<w$}")
                        } else {
                            format!("{cell:>w$}")
                        }
                    },
                )
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}
