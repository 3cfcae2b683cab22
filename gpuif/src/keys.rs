//! Xenstore keys and version negotiation, in the style of `io/displif.h`.
//!
//! Device paths follow `docs/misc/xenstore-paths`: the toolstack creates
//! `/local/domain/<backend>/backend/vgpu/<frontend>/<devid>` and
//! `/local/domain/<frontend>/device/vgpu/<devid>`.
//!
//! ```text
//! backend dir (owned by the backend domain, readable by the frontend)
//!   frontend, frontend-id, state          as for every split driver
//!   versions = "1"                        protocol versions the backend speaks
//!   max-entries, ring-slots               what one request / the ring holds
//!   guest-name                            the guest's name (`vgpu attach`), for metrics
//!   limits/ (owned by dom0, read-only for both; the toolstack's decision)
//!     ggtt-base, ggtt-entries, max-contexts, max-pages, max-table-pages
//! frontend dir (owned by the frontend, readable by the backend)
//!   backend, backend-id, state
//!   version = "1"                         the version the frontend chose
//!   ring-ref                              grant of the shared ring page
//!   event-channel                         unbound port for the backend
//! ```

/// Device type under `backend/` and `device/`.
pub const DEVICE_TYPE: &str = "vgpu";
/// The protocol version defined by this crate.
pub const PROTOCOL_VERSION: u32 = 1;

/// Backend: space-separated versions it speaks.
pub const VERSIONS: &str = "versions";
/// Frontend: the version it chose.
pub const VERSION: &str = "version";
/// Frontend: grant reference of the ring page.
pub const RING_REF: &str = "ring-ref";
/// Frontend: the event channel port the backend binds to.
pub const EVENT_CHANNEL: &str = "event-channel";
/// Backend: entries one request may carry.
pub const MAX_ENTRIES: &str = "max-entries";
/// Backend: slots in the ring.
pub const RING_SLOTS: &str = "ring-slots";
/// Both: the xenbus state, as a decimal string.
pub const STATE: &str = "state";
/// Backend: the guest's name as the toolstack knew it at attach (`vgpu
/// attach` writes it; gpu-dom labels its metrics with it). Informational:
/// gpu-dom decides nothing on it.
pub const GUEST_NAME: &str = "guest-name";

/// Backend: the number of GGTT entries it manages, relative to the backend
/// domain's home path (`/local/domain/<backend>/`): a node the backend can
/// write (`data/` is the domain's own), read by `vgpu attach` to place slices.
pub const GGTT_TOTAL: &str = "data/vgpu-ggtt-entries";

/// Backend: where it publishes each device's statistics, relative to its
/// home path: `data/vgpu/<frontend>/<devid>/{pages,entries,contexts,refused}`.
/// Outside `backend/vgpu`, so publishing never fires the backend's own watch.
pub const STATS_ROOT: &str = "data/vgpu";
/// The statistics published per device, in `vgpu list` column order.
pub const STATS_KEYS: [&str; 4] = ["pages", "entries", "contexts", "refused"];

/// Backend: its pools, relative to its home path:
/// `data/vgpu-pool/<pool>/{capacity,reserved,used}` for each of [`POOLS`].
/// `capacity` is written once at start, `reserved` (the sum of the served
/// guests' limits) on every attach and detach, `used` when it changed after
/// serving. `vgpu attach` reads `capacity` to refuse limits that cannot fit.
pub const POOL_ROOT: &str = "data/vgpu-pool";
/// The pools, as `gtt::Pool::name` names them: what each guest's limits
/// reserve (`devices`: one per device; `ggtt-entries`: the slice;
/// `pages`: `max-pages`; `table-pages`: `max-table-pages`; `contexts`:
/// `max-contexts`).
pub const POOLS: [&str; 5] = ["devices", "ggtt-entries", "pages", "table-pages", "contexts"];
/// The figures published per pool.
pub const POOL_KEYS: [&str; 3] = ["capacity", "reserved", "used"];

/// The limits `vgpu attach` gives a guest unless told otherwise: a sixteenth
/// of each pool of a default gpu-dom (`src/vgpu.rs` asserts it), so a
/// default gpu-dom serves 16 default guests (then its pools are full; it serves
/// up to 64 smaller ones).
pub mod default_limits {
    /// GGTT entries in the slice (16 MiB of GGTT address space).
    pub const GGTT_ENTRIES: u32 = 4096;
    /// PPGTT contexts.
    pub const CONTEXTS: u32 = 4;
    /// Grant-mapped pages at once (4 MiB of guest memory GPU-reachable).
    pub const MAX_PAGES: u32 = 1024;
    /// PPGTT table pages (a 2 MiB region costs 4 to start, 1 per 2 MiB after).
    pub const MAX_TABLE_PAGES: u32 = 64;
}

/// The dom0-owned directory of limits inside the backend directory.
pub const LIMITS_DIR: &str = "limits";
/// Limit keys, relative to [`LIMITS_DIR`].
pub const LIMIT_GGTT_BASE: &str = "ggtt-base";
pub const LIMIT_GGTT_ENTRIES: &str = "ggtt-entries";
pub const LIMIT_MAX_CONTEXTS: &str = "max-contexts";
pub const LIMIT_MAX_PAGES: &str = "max-pages";
pub const LIMIT_MAX_TABLE_PAGES: &str = "max-table-pages";

/// Every limit key, in the order the toolstack writes them.
pub const LIMIT_KEYS: [&str; 5] = [
    LIMIT_GGTT_BASE,
    LIMIT_GGTT_ENTRIES,
    LIMIT_MAX_CONTEXTS,
    LIMIT_MAX_PAGES,
    LIMIT_MAX_TABLE_PAGES,
];

/// Picks the version to use: `wanted` if the backend's `versions` list has it.
pub fn negotiate(backend_versions: &str, wanted: u32) -> Option<u32> {
    backend_versions
        .split([' ', ','])
        .filter_map(|v| v.trim().parse::<u32>().ok())
        .find(|&v| v == wanted)
}

/// Parses a decimal xenstore value (ring-ref, event-channel, limits): digits
/// only, no sign, no overflow.
pub fn parse_u32(value: &str) -> Option<u32> {
    let v = value.trim_end_matches('\0');
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_finds_the_wanted_version_in_the_backends_list() {
        assert_eq!(negotiate("1", 1), Some(1));
        assert_eq!(negotiate("1 2", 2), Some(2));
        assert_eq!(negotiate("2", 1), None);
        assert_eq!(negotiate("", 1), None);
    }

    #[test]
    fn xenstore_numbers_are_strict_decimal() {
        assert_eq!(parse_u32("8"), Some(8));
        assert_eq!(parse_u32("4294967295"), Some(u32::MAX));
        for bad in ["", "-1", "+1", "0x10", "4294967296", " 1", "1a", "99999999999"] {
            assert_eq!(parse_u32(bad), None, "{bad:?}");
        }
    }
}
