//! The metrics snapshot and its Prometheus text exposition (format 0.0.4).
//!
//! Names follow Prometheus' conventions: `gpu_dom_` prefix, counters end in
//! `_total`, units in the name (`_seconds`, `_bytes`), one `# HELP` and one
//! `# TYPE` per family, label values escaped (`\\`, `\"`, `\n`). Every
//! guest's series carry `guest` (its name, as `vgpu attach` wrote it),
//! `domid` and `devid`.
//!
//! # Invariants
//! - [`render`] is a pure function of the snapshot (rendering it twice
//!   gives the same bytes, which the server relies on to send a response
//!   in pieces without buffering it); its output for [`MAX_GUESTS`] guests
//!   with every number and name at its longest is at most [`MAX_EXPOSITION`]
//!   bytes (tested).

use core::fmt::{self, Write};

/// Guests one snapshot holds (gpu-dom serves at most 64 devices,
/// `backend::service::MAX_DEVICES`).
pub const MAX_GUESTS: usize = 64;
/// Request results per guest (gpuif's statuses and one for others).
pub const MAX_RESULTS: usize = 20;
/// Pools (gpu-dom has five).
pub const MAX_POOLS: usize = 5;
/// The largest exposition [`render`] produces (see the invariants): what
/// one response may take to send.
pub const MAX_EXPOSITION: usize = 640 * 1024;

/// One of gpu-dom's pools (`gtt::Engine::pools`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolFigures {
    pub name: &'static str,
    pub capacity: u64,
    pub reserved: u64,
    pub used: u64,
}

/// One guest's device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestFigures {
    /// The guest's name (`guest-name` in its backend directory; may be empty).
    pub name: heapless::String<64>,
    pub domid: u16,
    pub devid: u32,
    /// The ring is mapped and served.
    pub connected: bool,
    pub ggtt_entries: u64,
    pub ppgtt_entries: u64,
    /// Guest pages grant-mapped into the GPU-reachable window.
    pub grants_mapped: u64,
    /// Map and unmap requests.
    pub batches: u64,
    /// Requests answered, by result name (`OK`, `GRANT_MAP_FAILED`, ...).
    pub results: heapless::Vec<(&'static str, u64), MAX_RESULTS>,
    pub ring_errors: u64,
    pub connects: u64,
    pub disconnects: u64,
    /// Entries or requests `gtt` refused.
    pub refusals: u64,
    /// Per pool: (pool, the guest's limit reserved for it, what it uses).
    pub limits: heapless::Vec<(&'static str, u64, u64), MAX_POOLS>,
}

/// The management interface itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetFigures {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Backend answers with an error status, rx and tx.
    pub backend_errors: u64,
    /// Backend answers that break netif.h (wrong ids, sizes, flags).
    pub backend_protocol_errors: u64,
    /// Frames not sent: no tx buffer free.
    pub tx_dropped: u64,
}

/// Everything `/metrics` shows, as plain numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub uptime_ns: u64,
    /// gpu-dom serves guests (the backend service is up, not shutting down).
    pub serving: bool,
    pub pools: heapless::Vec<PoolFigures, MAX_POOLS>,
    /// Grant-window hypercalls by kind (`map_grant_ref`, `unmap_grant_ref`).
    pub hypercalls: heapless::Vec<(&'static str, u64), 4>,
    pub guests: heapless::Vec<GuestFigures, MAX_GUESTS>,
    pub heap_used_bytes: u64,
    pub heap_free_bytes: u64,
    pub net: NetFigures,
    /// HTTP responses by status code, and connections dropped by reason
    /// (filled by the server itself).
    pub http: crate::server::ServerStats,
}

/// A label value, escaped as the text format says.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

fn family(out: &mut impl Write, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

fn guest_labels(g: &GuestFigures) -> impl fmt::Display + '_ {
    struct L<'a>(&'a GuestFigures);
    impl fmt::Display for L<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let g = self.0;
            write!(f, "guest=\"{}\",domid=\"{}\",devid=\"{}\"", Escaped(&g.name), g.domid, g.devid)
        }
    }
    L(g)
}

/// One family with one series per guest, `value` picking the number.
fn per_guest(
    out: &mut impl Write,
    s: &Snapshot,
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&GuestFigures) -> u64,
) -> fmt::Result {
    family(out, name, kind, help)?;
    for g in &s.guests {
        writeln!(out, "{name}{{{}}} {}", guest_labels(g), value(g))?;
    }
    Ok(())
}

fn pool(
    out: &mut impl Write,
    s: &Snapshot,
    name: &str,
    help: &str,
    v: fn(&PoolFigures) -> u64,
) -> fmt::Result {
    family(out, name, "gauge", help)?;
    for p in &s.pools {
        writeln!(out, "{name}{{pool=\"{}\"}} {}", p.name, v(p))?;
    }
    Ok(())
}

fn single(out: &mut impl Write, name: &str, kind: &str, help: &str, v: u64) -> fmt::Result {
    family(out, name, kind, help)?;
    writeln!(out, "{name} {v}")
}

/// Lower-case, as label values conventionally are (`GRANT_MAP_FAILED` -> `grant_map_failed`).
struct Lower<'a>(&'a str);

impl fmt::Display for Lower<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            f.write_char(c.to_ascii_lowercase())?;
        }
        Ok(())
    }
}

/// Renders `s` in the text exposition format 0.0.4: gpu-dom itself, then
/// its guests, then the management interface.
pub fn render(s: &Snapshot, out: &mut impl Write) -> fmt::Result {
    render_domain(s, out)?;
    render_guests(s, out)?;
    render_management(s, out)
}

/// A family of one series per `F`: name, help and the number it shows.
type Family<F> = (&'static str, &'static str, fn(&F) -> u64);

/// gpu-dom itself: uptime, serving, heap, pools, hypercalls.
fn render_domain(s: &Snapshot, out: &mut impl Write) -> fmt::Result {
    family(out, "gpu_dom_uptime_seconds", "gauge", "Time since gpu-dom started.")?;
    let (secs, nanos) = (s.uptime_ns / 1_000_000_000, s.uptime_ns % 1_000_000_000);
    writeln!(out, "gpu_dom_uptime_seconds {secs}.{nanos:09}")?;
    let serving_help = "1 while gpu-dom serves guests (what /healthz reports).";
    single(out, "gpu_dom_serving", "gauge", serving_help, s.serving as u64)?;
    single(out, "gpu_dom_heap_used_bytes", "gauge", "gpu-dom heap in use.", s.heap_used_bytes)?;
    single(out, "gpu_dom_heap_free_bytes", "gauge", "gpu-dom heap free.", s.heap_free_bytes)?;
    let pools: [Family<PoolFigures>; 3] = [
        ("gpu_dom_pool_capacity", "What gpu-dom has of each pool.", |p| p.capacity),
        ("gpu_dom_pool_reserved", "The sum of the attached guests' limits, per pool.", |p| {
            p.reserved
        }),
        ("gpu_dom_pool_used", "What the guests hold now, per pool.", |p| p.used),
    ];
    for (name, help, value) in pools {
        pool(out, s, name, help, value)?;
    }
    family(out, "gpu_dom_hypercalls_total", "counter", "Grant-window hypercalls, by kind.")?;
    for (kind, n) in &s.hypercalls {
        writeln!(out, "gpu_dom_hypercalls_total{{kind=\"{kind}\"}} {n}")?;
    }
    Ok(())
}

/// A per-guest family: name, type, help and the number it shows.
type GuestFamily = (&'static str, &'static str, &'static str, fn(&GuestFigures) -> u64);

/// The per-guest families after the entries mapped.
const GUEST_USE: [GuestFamily; 2] = [
    (
        "gpu_dom_guest_grants_mapped",
        "gauge",
        "Guest pages grant-mapped into the GPU-reachable window.",
        |g| g.grants_mapped,
    ),
    ("gpu_dom_guest_batches_total", "counter", "Map and unmap requests.", |g| g.batches),
];

/// The per-guest families after the requests answered.
const GUEST_EVENTS: [GuestFamily; 4] = [
    (
        "gpu_dom_guest_ring_errors_total",
        "counter",
        "Ring protocol violations (each ends the connection).",
        |g| g.ring_errors,
    ),
    (
        "gpu_dom_guest_connects_total",
        "counter",
        "Connections made (ring mapped, event channel bound).",
        |g| g.connects,
    ),
    ("gpu_dom_guest_disconnects_total", "counter", "Connections ended.", |g| g.disconnects),
    ("gpu_dom_guest_refusals_total", "counter", "Entries and requests gtt refused.", |g| {
        g.refusals
    }),
];

/// Every guest's device: state, what it maps, its requests, its limits.
fn render_guests(s: &Snapshot, out: &mut impl Write) -> fmt::Result {
    family(out, "gpu_dom_guests", "gauge", "vgpu devices gpu-dom knows.")?;
    writeln!(out, "gpu_dom_guests {}", s.guests.len())?;
    let connected_help = "1 while the guest's ring is served.";
    per_guest(out, s, "gpu_dom_guest_connected", "gauge", connected_help, |g| g.connected as u64)?;
    family(out, "gpu_dom_guest_entries_mapped", "gauge", "Shadow entries mapped, by table.")?;
    for g in &s.guests {
        for (table, n) in [("ggtt", g.ggtt_entries), ("ppgtt", g.ppgtt_entries)] {
            let labels = guest_labels(g);
            writeln!(out, "gpu_dom_guest_entries_mapped{{{labels},table=\"{table}\"}} {n}")?;
        }
    }
    for (name, kind, help, value) in GUEST_USE {
        per_guest(out, s, name, kind, help, value)?;
    }
    family(out, "gpu_dom_guest_requests_total", "counter", "Requests answered, by result.")?;
    for g in &s.guests {
        for (result, n) in &g.results {
            let (labels, result) = (guest_labels(g), Lower(result));
            writeln!(out, "gpu_dom_guest_requests_total{{{labels},result=\"{result}\"}} {n}")?;
        }
    }
    for (name, kind, help, value) in GUEST_EVENTS {
        per_guest(out, s, name, kind, help, value)?;
    }
    let limit_help = "The guest's limit, reserved from gpu-dom's pool.";
    family(out, "gpu_dom_guest_limit", "gauge", limit_help)?;
    for g in &s.guests {
        for (pool, limit, _) in &g.limits {
            writeln!(out, "gpu_dom_guest_limit{{{},pool=\"{pool}\"}} {limit}", guest_labels(g))?;
        }
    }
    family(out, "gpu_dom_guest_used", "gauge", "What the guest uses of its limit.")?;
    for g in &s.guests {
        for (pool, _, used) in &g.limits {
            writeln!(out, "gpu_dom_guest_used{{{},pool=\"{pool}\"}} {used}", guest_labels(g))?;
        }
    }
    Ok(())
}

/// The management vif's counters.
const NET_COUNTERS: [Family<NetFigures>; 7] = [
    ("gpu_dom_mgmt_rx_packets_total", "Frames received on the management vif.", |n| n.rx_packets),
    ("gpu_dom_mgmt_rx_bytes_total", "Bytes received on the management vif.", |n| n.rx_bytes),
    ("gpu_dom_mgmt_tx_packets_total", "Frames sent on the management vif.", |n| n.tx_packets),
    ("gpu_dom_mgmt_tx_bytes_total", "Bytes sent on the management vif.", |n| n.tx_bytes),
    ("gpu_dom_mgmt_tx_dropped_total", "Frames not sent: every tx buffer was in flight.", |n| {
        n.tx_dropped
    }),
    ("gpu_dom_mgmt_backend_errors_total", "Netback answers with an error status.", |n| {
        n.backend_errors
    }),
    ("gpu_dom_mgmt_backend_protocol_errors_total", "Netback answers that break netif.h.", |n| {
        n.backend_protocol_errors
    }),
];

/// The management interface: the vif's counters, then HTTP's.
fn render_management(s: &Snapshot, out: &mut impl Write) -> fmt::Result {
    for (name, help, value) in NET_COUNTERS {
        single(out, name, "counter", help, value(&s.net))?;
    }
    family(out, "gpu_dom_mgmt_http_responses_total", "counter", "HTTP responses, by status code.")?;
    for (code, count) in s.http.responses() {
        writeln!(out, "gpu_dom_mgmt_http_responses_total{{code=\"{code}\"}} {count}")?;
    }
    let dropped = "gpu_dom_mgmt_connections_dropped_total";
    family(out, dropped, "counter", "Connections dropped before a full answer, by reason.")?;
    writeln!(out, "{dropped}{{reason=\"timeout\"}} {}", s.http.timeouts)?;
    writeln!(out, "{dropped}{{reason=\"reset\"}} {}", s.http.resets)
}

#[cfg(test)]
mod tests;
