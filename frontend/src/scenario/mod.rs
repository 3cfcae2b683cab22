//! What a test frontend does, shared by the test guest (`guests/test-guest`)
//! and `vgpu-front attach-test`, so that the host tests run exactly the code
//! those run.
//!
//! Every line goes through a [`Reporter`] as `<TAG> dom=<domid> <text>`
//! (`TESTGUEST dom=5 good PASS`). The markers, per mode:
//!
//! | mode | lines |
//! |---|---|
//! | good | `ggtt mapped=<n> verified=<n> mismatches=0`, `ppgtt mapped=512 verified=512 mismatches=0`, `good PASS` or `good FAIL <reason>`; later `reverify mismatches=<k>` (only on change), `backend closed` then the lines of [`ride_out`] (`backend gone ...`, `reconnected ...`, `reverified ...`), `cleanup grants_ended=<n> still_mapped=<m>` |
//! | hostile | `hostile <case> -> <STATUS> PASS\|FAIL` for `foreign-gref`, `revoked-gref`, `readonly-as-writable`, `out-of-slice`, `garbage-directory`, `unknown-context`; `hostile runaway -> disconnected PASS` (or `-> still connected FAIL`); `hostile PASS` or `hostile FAIL <cases>` |
//! | busy | `busy connected pages=<n>`, `busy batches=<n>` every 100 responses (a flood: see [`run_busy`]), `busy stopped batches=<n> (<why>)` |
//! | badfe | `badfe <value> -> refused: <error>` per value of [`Bad::ALL`] (or `-> not refused FAIL`), `badfe good values -> connected`, `badfe PASS` or `badfe FAIL <what>` |
//! | batches | `batches connected pages=<n> depth=<d>` (`d` batches in flight, a [`crate::Pipeline`]), `batches verified entries=<n> mismatches=<m>` after the first batch, `batches sent=<n>` every 100 batches, after a lost backend `batches failed: <error>` then the lines of [`ride_out`] and `batches resumed`, `batches stopped sent=<n> (<why>)` |
//! | scale | `scale result connect_us=<n> map_us=<n> pages=<n> verified=<n> mismatches=<n> rtt_n=<n> rtt_median_us=<n> rtt_mean_us=<n> rtt_max_us=<n>` then `scale PASS`, or `scale FAIL <why>` (see [`run_scale`]) |
//! | bench | `bench: kind=<kind> batch=<n> n=<rounds> median_ns=<m> mean_ns=<a> per_entry_ns=<e>` per kind and size (see [`run_bench`]), `bench PASS` or `bench FAIL <why>` |
//! | unattached | `unattached: no device`, or `unattached: backend did not serve`, or `unattached: FAIL <what happened>` |

mod badfe;
mod batches;
mod bench;
mod busy;
mod fairness;
mod good;
mod hostile;
mod pipebench;
mod scale;
mod survive;

pub use badfe::{run_badfe, Bad, NEVER_GRANTED_GREF};
pub use batches::run_batches;
pub use bench::{run_bench, BenchConfig, Hooks, COUNTED_BATCH};
pub use busy::{run_busy, BUSY_MAX_ENTRIES};
pub use fairness::{measure_rtt, Rtt, RTT_ENTRIES};
pub use good::{reverify, run_good, GoodConfig, Mapped};
pub use hostile::{run_hostile, FOREIGN_GREF};
pub use pipebench::{measure_pipeline, PipeBench, BENCH_ENTRIES};
pub use scale::{run_scale, ScaleConfig, ScaleReport};
pub use survive::{ride_out, verify_record, Outcome, Verified};

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use gpuif::wire::Entry;
use gpuif::PAGE_SIZE;
use xenbus::{OwnedWatchEvent, Transport};

use crate::device::Happening;
use crate::{Error, Frontend, Platform};

/// Where scenario lines go: the console in a guest, stdout in `vgpu-front`.
pub trait Console {
    /// Prints one line (no newline included).
    fn line(&mut self, line: &str);
}

impl<F: FnMut(&str)> Console for F {
    fn line(&mut self, line: &str) {
        self(line)
    }
}

/// Prefixes every line with the tag and our domain id.
pub struct Reporter<'a> {
    tag: &'static str,
    dom: u16,
    console: &'a mut dyn Console,
}

impl<'a> Reporter<'a> {
    /// Lines `<tag> dom=<dom> ...` to `console`.
    pub fn new(tag: &'static str, dom: u16, console: &'a mut dyn Console) -> Self {
        Reporter { tag, dom, console }
    }

    /// Prints `<tag> dom=<dom> <args>`.
    pub fn say(&mut self, args: fmt::Arguments<'_>) {
        let line = format!("{} dom={} {}", self.tag, self.dom, args);
        self.console.line(&line);
    }

    /// Our domain id.
    pub fn dom(&self) -> u16 {
        self.dom
    }
}

/// Fills `page` with the bytes of page `seq` of domain `dom`: an 8-byte
/// magic, the domain and sequence number, then a xorshift64 stream seeded by
/// both, so that every (domain, page) has its own contents and hash.
pub fn pattern(dom: u16, seq: u32, page: &mut [u8; PAGE_SIZE]) {
    page[..8].copy_from_slice(b"VGPUPAGE");
    page[8..10].copy_from_slice(&dom.to_le_bytes());
    page[10..14].copy_from_slice(&seq.to_le_bytes());
    let mut x = ((dom as u64) << 32 | seq as u64) ^ 0x9e37_79b9_7f4a_7c15;
    for chunk in page[16..].chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    page[14..16].copy_from_slice(&[0xa5, 0x5a]);
}

/// The FNV-1a hash of [`pattern`]'s page, as `DebugReadback` answers it.
pub fn pattern_hash(dom: u16, seq: u32) -> u64 {
    let mut page = [0u8; PAGE_SIZE];
    pattern(dom, seq, &mut page);
    gpuif::fnv1a64(&page)
}

/// How the unattached check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unattached {
    /// No device directory: what a domain the toolstack never attached sees.
    NoDevice,
    /// A device directory, but the backend never reached InitWait (or it
    /// refused the device and closed it).
    NotServed,
    /// Something else (connected, or an error): printed as FAIL.
    Unexpected,
}

/// Mode `unattached`: looks for the device; with one, tries to connect
/// (bounded by the options' handshake timeout).
pub fn run_unattached<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
) -> Unattached {
    match fe.discover() {
        Err(Error::NoDevice { .. }) => {
            rep.say(format_args!("unattached: no device"));
            return Unattached::NoDevice;
        }
        Err(e) => {
            rep.say(format_args!("unattached: FAIL looking for the device: {e}"));
            return Unattached::Unexpected;
        }
        Ok(_) => {}
    }
    match fe.connect() {
        // Never reached InitWait, or refused the device (Closed).
        Err(Error::BackendTimeout { want: xenbus::XenbusState::InitWait, .. })
        | Err(Error::BackendClosed { .. }) => {
            rep.say(format_args!("unattached: backend did not serve"));
            Unattached::NotServed
        }
        Err(e) => {
            rep.say(format_args!("unattached: FAIL {e}"));
            Unattached::Unexpected
        }
        Ok(_) => {
            rep.say(format_args!("unattached: FAIL connected to a backend"));
            let _ = fe.disconnect();
            Unattached::Unexpected
        }
    }
}

/// What the caller wants after a watch event of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Disconnect and return (e.g. a shutdown request).
    Stop,
}

/// Why [`steady`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SteadyEnd {
    /// The backend closed and the toolstack removed the device while the
    /// guest waited for a new backend; the frontend cleaned up.
    BackendClosed,
    /// The caller asked to stop; the frontend disconnected.
    Stopped,
    /// Something failed (printed).
    Failed(String),
}

/// Stays connected: re-verifies a sample of `mapped` every `interval_ms`
/// (printing only when the mismatch count changes), hands other watch events
/// to `on_event`, and cleans up when `on_event` says stop. When the backend
/// closes or goes away, it prints `backend closed` and rides it out
/// ([`ride_out`]): a new backend gets every mapping again, and the guest
/// stays; it returns when the toolstack detaches the device meanwhile.
pub fn steady<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    mapped: &Mapped,
    interval_ms: u64,
    mut on_event: impl FnMut(&mut Frontend<P, T>, &OwnedWatchEvent) -> Control,
) -> SteadyEnd {
    let mut last_mismatches = 0;
    let mut round = 0u32;
    let mut next = fe.platform().now_ms().saturating_add(interval_ms);
    let end = loop {
        let lost = match fe.idle(next) {
            Ok(Happening::Event(ev)) => {
                if on_event(fe, ev.as_ref()) == Control::Stop {
                    break SteadyEnd::Stopped;
                }
                false
            }
            Ok(Happening::BackendClosed(_)) => true,
            Ok(Happening::Timeout) => {
                round = round.wrapping_add(1);
                next = fe.platform().now_ms().saturating_add(interval_ms);
                match reverify(fe, mapped, round.wrapping_sub(1)) {
                    Ok(m) if m != last_mismatches => {
                        rep.say(format_args!("reverify mismatches={m}"));
                        last_mismatches = m;
                        false
                    }
                    Ok(_) => false,
                    Err(e) if e.is_backend_closed() => true,
                    Err(e) => break SteadyEnd::Failed(format!("reverify: {e}")),
                }
            }
            Err(e) => break SteadyEnd::Failed(format!("{e}")),
        };
        if !lost {
            continue;
        }
        rep.say(format_args!("backend closed"));
        let check = |fe: &mut Frontend<P, T>| {
            while let Some(ev) = fe.take_event() {
                if on_event(fe, &ev) == Control::Stop {
                    return Control::Stop;
                }
            }
            Control::Continue
        };
        match ride_out(fe, rep, check) {
            Outcome::Reconnected { .. } => {
                next = fe.platform().now_ms().saturating_add(interval_ms);
            }
            Outcome::Detached => return SteadyEnd::BackendClosed,
            Outcome::Stopped => break SteadyEnd::Stopped,
            Outcome::Failed(why) => break SteadyEnd::Failed(why),
        }
    };
    cleanup(fe, rep);
    if let SteadyEnd::Failed(why) = &end {
        rep.say(format_args!("steady FAIL {why}"));
    }
    end
}

/// The shell of a mode that loops until something stops it (`busy`,
/// `batches`): connects if needed, runs `body` (which counts what it sent in
/// its third argument and returns why it stopped), says `<stopped>=<n>
/// (<why>)`, cleans up, and returns the count.
fn run_looping<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rep: &mut Reporter<'_>,
    stopped: &str,
    body: impl FnOnce(&mut Frontend<P, T>, &mut Reporter<'_>, &mut u64) -> String,
) -> u64 {
    let mut sent = 0u64;
    let connected = if fe.is_connected() { Ok(()) } else { fe.connect().map(drop) };
    let why = match connected {
        Ok(()) => body(fe, rep, &mut sent),
        Err(e) => format!("connect: {e}"),
    };
    rep.say(format_args!("{stopped}={sent} ({why})"));
    cleanup(fe, rep);
    sent
}

/// The batch that unmaps what `map` maps (`busy`, `batches`): the same
/// entries, without grants.
fn unmap_of(map: &[Entry]) -> Vec<Entry> {
    map.iter().map(|e| Entry { addr: e.addr, gref: 0, read_only: false }).collect()
}

/// Disconnects (or cleans up after the backend closed) and prints what
/// happened to the grants.
pub fn cleanup<P: Platform, T: Transport>(fe: &mut Frontend<P, T>, rep: &mut Reporter<'_>) {
    match fe.disconnect() {
        Ok(t) => {
            rep.say(format_args!(
                "cleanup grants_ended={} still_mapped={}{}",
                t.grants_ended,
                t.still_mapped.len(),
                if t.backend_closed { "" } else { " (backend did not reach Closed)" }
            ));
        }
        Err(e) => rep.say(format_args!("cleanup FAIL {e}")),
    }
}
