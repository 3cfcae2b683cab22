//! Fair service, measured from a good guest: the round trip of one small
//! request, repeated, on the guest's own clock. Run once with the other
//! guests idle and once while a busy guest floods its ring: the ratio is
//! what the flood costs this guest.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use gpuif::wire::{Entry, Op};
use gpuif::Status;
use xenbus::Transport;

use crate::{Frontend, Platform};

/// Entries of the measured request.
pub const RTT_ENTRIES: usize = 4;

/// Round trips measured, in microseconds of the guest's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rtt {
    /// Round trips measured.
    pub n: u32,
    pub median_us: u64,
    pub mean_us: u64,
    pub max_us: u64,
}

/// Sends up to `rounds` requests, one at a time, each mapping
/// [`RTT_ENTRIES`] GGTT entries again to the pages already there (the
/// first writable pages granted, at indexes `0..`, as mode `good` maps
/// them: the entries do not change), and times each from submission to
/// response with `now_us`. Stops early once `limit_us` passed. Every
/// response must be `OK`.
pub fn measure_rtt<P: Platform, T: Transport>(
    fe: &mut Frontend<P, T>,
    rounds: u32,
    limit_us: u64,
    now_us: &mut dyn FnMut() -> u64,
) -> Result<Rtt, String> {
    let entries: Vec<Entry> = fe
        .granted()
        .iter()
        .filter(|g| !g.read_only)
        .take(RTT_ENTRIES)
        .enumerate()
        .map(|(i, g)| Entry { addr: i as u64, gref: g.gref, read_only: false })
        .collect();
    if entries.len() < RTT_ENTRIES {
        return Err(format!("{} writable pages granted, want {RTT_ENTRIES}", entries.len()));
    }
    let start = now_us();
    let mut times = Vec::with_capacity(rounds as usize);
    while (times.len() as u32) < rounds && now_us().saturating_sub(start) < limit_us {
        let t0 = now_us();
        let rsp = fe.call(Op::GgttMap, 0, &entries).map_err(|e| format!("GGTT remap: {e}"))?;
        let t = now_us().saturating_sub(t0);
        if rsp.status != Status::OK {
            return Err(format!("GGTT remap: {} value={:#x}", rsp.status.name(), rsp.value));
        }
        times.push(t);
    }
    Ok(summarize(&mut times))
}

fn summarize(times: &mut [u64]) -> Rtt {
    if times.is_empty() {
        return Rtt::default();
    }
    times.sort_unstable();
    let n = times.len();
    Rtt {
        n: n as u32,
        median_us: times[n / 2],
        mean_us: times.iter().sum::<u64>() / n as u64,
        max_us: times[n - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_takes_the_upper_median_the_mean_and_the_max() {
        let mut t = [30, 10, 20, 1000];
        assert_eq!(summarize(&mut t), Rtt { n: 4, median_us: 30, mean_us: 265, max_us: 1000 });
        assert_eq!(summarize(&mut []), Rtt::default());
    }
}
