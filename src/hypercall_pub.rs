//! gpu-dom's grant hypercall counters, published where dom0 can read them:
//! `data/vgpu-hypercalls = "<map> <unmap>"` in gpu-dom's own xenstore
//! directory (`GNTTABOP_map_grant_ref` and `GNTTABOP_unmap_grant_ref` calls
//! since gpu-dom started, as `/metrics` shows them). Outside the watched
//! `backend/vgpu` tree, like the pools under `data/vgpu-pool/`.
//!
//! Written only when the counts changed, and at most once per
//! [`MIN_INTERVAL_NS`]: a guest flooding map/unmap batches costs at most ten
//! xenstore writes a second. A change that comes sooner is written once the
//! interval has passed (the main loop wakes up for it: [`Publisher::poll`]
//! returns the deadline). A batch that follows a quiet interval is written in
//! the same main-loop round that served it, so dom0 reading the node after a
//! guest's batch sees it (`cargo xtask bench --xen`, `cargo xtask e2e`).
#![forbid(unsafe_code)]

use core::fmt::{self, Write};

/// The node's value: `"<map> <unmap>"`.
pub fn value(map: u64, unmap: u64, out: &mut impl Write) -> fmt::Result {
    write!(out, "{map} {unmap}")
}

/// The node, relative to gpu-dom's home directory.
pub const NODE: &str = "data/vgpu-hypercalls";
/// Shortest time between two writes.
pub const MIN_INTERVAL_NS: u64 = 100_000_000;

/// What to do with the counts now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed since the last write.
    Idle,
    /// Write these counts to [`NODE`] ([`value`]), then call
    /// [`Publisher::written`].
    Write(u64, u64),
    /// Changed, but the last write was too recent: poll again at this time
    /// (Xen system time, ns).
    Later(u64),
}

/// Remembers what was written, and when.
#[derive(Clone, Copy, Debug, Default)]
pub struct Publisher {
    /// (map, unmap) as last written, and the time of that write.
    last: Option<((u64, u64), u64)>,
}

impl Publisher {
    /// What to do with the counts `now` (map, unmap) at time `now_ns`.
    pub fn poll(&self, now: (u64, u64), now_ns: u64) -> Step {
        match self.last {
            Some((written, _)) if written == now => Step::Idle,
            Some((_, at)) if now_ns < at.saturating_add(MIN_INTERVAL_NS) => {
                Step::Later(at.saturating_add(MIN_INTERVAL_NS))
            }
            _ => Step::Write(now.0, now.1),
        }
    }

    /// The write of `now` at `now_ns` succeeded.
    pub fn written(&mut self, now: (u64, u64), now_ns: u64) {
        self.last = Some((now, now_ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(v: &str) -> Step {
        let (m, u) = v.split_once(' ').unwrap();
        Step::Write(m.parse().unwrap(), u.parse().unwrap())
    }

    #[test]
    fn the_node_is_outside_the_watched_backend_tree_beside_the_pools() {
        assert!(!NODE.starts_with("backend/"), "writing it would fire gpu-dom's own watch");
        assert_eq!(NODE.rsplit_once('/').map(|(dir, _)| dir), Some("data"));
    }

    #[test]
    fn the_value_is_map_space_unmap() {
        let mut s = String::new();
        value(16, 2, &mut s).unwrap();
        assert_eq!(s, "16 2");
    }

    #[test]
    fn the_first_counts_are_written_at_once() {
        assert_eq!(Publisher::default().poll((16, 0), 5), write("16 0"));
    }

    #[test]
    fn unchanged_counts_are_not_written_again() {
        let mut p = Publisher::default();
        p.written((16, 3), 1_000);
        assert_eq!(p.poll((16, 3), 10 * MIN_INTERVAL_NS), Step::Idle);
    }

    #[test]
    fn a_change_within_the_interval_waits_for_its_end_then_is_written() {
        let mut p = Publisher::default();
        p.written((16, 0), 1_000);
        assert_eq!(p.poll((32, 0), 2_000), Step::Later(1_000 + MIN_INTERVAL_NS));
        assert_eq!(p.poll((32, 16), 1_000 + MIN_INTERVAL_NS), write("32 16"));
    }

    #[test]
    fn a_change_after_a_quiet_interval_is_written_at_once() {
        let mut p = Publisher::default();
        p.written((16, 0), 1_000);
        assert_eq!(p.poll((16, 16), 1_000 + 5 * MIN_INTERVAL_NS), write("16 16"));
    }
}
