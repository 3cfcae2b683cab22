//! gpu-dom's pools as the toolstack sees them: what the backend published
//! (`data/vgpu-pool/<pool>/{capacity,reserved,used}`, see
//! `gpuif::keys::POOL_ROOT`) and what the toolstack itself promised (the
//! limits written under the backend's `backend/vgpu`). `vgpu attach` refuses
//! limits that do not fit before it writes anything; `vgpu list` shows the
//! figures.

use xenbus::{DomId, TxId};

use gpuif::keys;

use crate::domains;
use crate::error::Error;
use crate::layout::{self, Device, Limits};
use crate::store::{Bounded, Store};

/// One pool's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolFigures {
    /// What the backend has (`None`: not published).
    pub capacity: Option<u64>,
    /// What the backend reserved for the guests it serves.
    pub reserved: Option<u64>,
    /// What those guests hold now.
    pub used: Option<u64>,
    /// What the toolstack promised: the sum over every device directory of
    /// this backend (including devices not served yet, refused or stale).
    pub promised: u64,
    /// How many devices hold a share of `promised`.
    pub holders: u32,
}

impl PoolFigures {
    /// What a new device can still be promised: capacity less the larger of
    /// what the backend reserved and what the toolstack promised.
    pub fn free(&self) -> Option<u64> {
        let taken = self.promised.max(self.reserved.unwrap_or(0));
        self.capacity.map(|c| c.saturating_sub(taken))
    }
}

/// Every pool, in `keys::POOLS` order.
pub type Pools = [(&'static str, PoolFigures); 5];

/// What one device with `limits` takes from the pool named `pool`.
pub fn share(pool: &str, limits: &[(&str, u32)]) -> u64 {
    let get = |k: &str| limits.iter().find(|(n, _)| *n == k).map_or(0, |(_, v)| *v as u64);
    match pool {
        "devices" => 1,
        "ggtt-entries" => get(keys::LIMIT_GGTT_ENTRIES),
        "pages" => get(keys::LIMIT_MAX_PAGES),
        "table-pages" => get(keys::LIMIT_MAX_TABLE_PAGES),
        "contexts" => get(keys::LIMIT_MAX_CONTEXTS),
        _ => 0,
    }
}

/// Reads the backend's published figures and sums the limits of its devices.
pub fn read<T: Bounded>(xs: &mut Store<T>, tx: TxId, backend: DomId) -> Result<Pools, Error> {
    let mut pools: Pools = keys::POOLS.map(|p| (p, PoolFigures::default()));
    for (name, fig) in pools.iter_mut() {
        let dir = format!("{}/{}/{name}", domains::home(backend), keys::POOL_ROOT);
        let get = |xs: &mut Store<T>, k: &str| -> Result<Option<u64>, Error> {
            Ok(xs.read_u32(tx, &format!("{dir}/{k}"))?.map(u64::from))
        };
        fig.capacity = get(xs, "capacity")?;
        fig.reserved = get(xs, "reserved")?;
        fig.used = get(xs, "used")?;
    }
    let root = layout::backend_root(backend);
    for fe in xs.dir(tx, &root)?.iter().filter_map(|c| domains::parse_domid(c)) {
        for devid in xs.dir(tx, &format!("{root}/{fe}"))?.iter().filter_map(|d| keys::parse_u32(d))
        {
            let lim = Device { backend, frontend: fe, devid }.limits_dir();
            let mut limits = Vec::new();
            for k in keys::LIMIT_KEYS {
                if let Some(v) = xs.read_u32(tx, &format!("{lim}/{k}"))? {
                    limits.push((k, v));
                }
            }
            for (name, fig) in pools.iter_mut() {
                fig.promised += share(name, &limits);
                fig.holders += 1;
            }
        }
    }
    Ok(pools)
}

/// Whether a device with `limits` fits: the first pool it does not fit in,
/// as the error `vgpu attach` reports. Pools the backend did not publish
/// are not checked (gpu-dom checks them itself at attach).
pub fn check(pools: &Pools, limits: &Limits, backend: &str) -> Result<(), Error> {
    let asked = limits.entries();
    for (name, fig) in pools {
        let requested = share(name, &asked);
        let (Some(capacity), Some(free)) = (fig.capacity, fig.free()) else { continue };
        if requested > free {
            return Err(Error::DoesNotFit {
                pool: name,
                requested,
                free,
                capacity,
                holders: fig.holders,
                backend: backend.to_string(),
            });
        }
    }
    Ok(())
}

/// The option of `vgpu attach` that sets a pool's share.
pub fn option_of(pool: &str) -> &'static str {
    match pool {
        "ggtt-entries" => "--ggtt-entries",
        "pages" => "--max-pages",
        "table-pages" => "--max-table-pages",
        "contexts" => "--contexts",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slice::Slice;

    fn pools(capacity: u64, promised: u64, reserved: u64) -> Pools {
        keys::POOLS.map(|p| {
            (
                p,
                PoolFigures {
                    capacity: Some(capacity),
                    reserved: Some(reserved),
                    used: Some(0),
                    promised,
                    holders: 3,
                },
            )
        })
    }

    fn limits(pages: u32) -> Limits {
        Limits {
            slice: Slice { base: 0, len: 16 },
            max_contexts: 1,
            max_pages: pages,
            max_table_pages: 1,
        }
    }

    #[test]
    fn limits_within_what_is_free_fit() {
        assert_eq!(check(&pools(100, 60, 50), &limits(40), "gpu-dom"), Ok(()));
    }

    #[test]
    fn limits_past_what_is_free_name_the_pool_and_the_numbers() {
        let err = check(&pools(100, 60, 70), &limits(31), "gpu-dom").unwrap_err();
        assert_eq!(
            err,
            Error::DoesNotFit {
                pool: "pages",
                requested: 31,
                free: 30,
                capacity: 100,
                holders: 3,
                backend: "gpu-dom".into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("does not fit"), "{text}");
        assert!(text.contains("--max-pages 30"), "says what to ask for instead: {text}");
    }

    #[test]
    fn pools_not_published_are_left_to_the_backend() {
        let mut p = pools(100, 100, 100);
        for (_, f) in p.iter_mut() {
            f.capacity = None;
        }
        assert_eq!(check(&p, &limits(1000), "gpu-dom"), Ok(()));
    }
}
