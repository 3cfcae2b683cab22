//! Per-device counters for the management endpoint: requests by result,
//! batches, connects, disconnects and ring errors. Kept by the service
//! beside each device; read-only for everyone else.

use gpuif::wire::{Op, Status};

/// Result slots: one per defined status, plus one for any other code.
pub const RESULTS: usize = Status::ALL.len() + 1;

/// The result slot of `status`.
fn slot(status: Status) -> usize {
    Status::ALL.iter().position(|s| *s == status).unwrap_or(RESULTS - 1)
}

/// The name of result slot `i` (`Status::name`; `UNKNOWN` for the last).
pub fn result_name(i: usize) -> &'static str {
    Status::ALL.get(i).map_or("UNKNOWN", |s| s.name())
}

/// What one connection's requests came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestCounters {
    /// Responses by status, indexed like `Status::ALL` (last: other codes).
    pub by_result: [u64; RESULTS],
    /// Map and unmap requests (GGTT or PPGTT), whatever their outcome.
    pub batches: u64,
}

impl Default for RequestCounters {
    fn default() -> Self {
        RequestCounters { by_result: [0; RESULTS], batches: 0 }
    }
}

impl RequestCounters {
    /// Counts one answered request (`op` as the slot carried it).
    pub fn record(&mut self, op: u8, status: Status) {
        self.by_result[slot(status)] += 1;
        if matches!(
            Op::from_u8(op),
            Some(Op::GgttMap | Op::GgttUnmap | Op::PpgttMap | Op::PpgttUnmap)
        ) {
            self.batches += 1;
        }
    }

    /// Adds `other` (a closed connection's) to these.
    pub fn add(&mut self, other: &RequestCounters) {
        for (a, b) in self.by_result.iter_mut().zip(other.by_result.iter()) {
            *a += b;
        }
        self.batches += other.batches;
    }

    /// Requests answered.
    pub fn total(&self) -> u64 {
        self.by_result.iter().sum()
    }
}

/// A device's history, across its connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Requests of connections that ended (the live one's are in its `Connection`).
    pub requests: RequestCounters,
    /// Times the ring was mapped and the event channel bound.
    pub connects: u64,
    /// Times a connection ended (detach, guest gone, error, shutdown).
    pub disconnects: u64,
    /// Ring protocol violations (each one also ended a connection).
    pub ring_errors: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_counted_by_status_and_batches_by_op() {
        let mut c = RequestCounters::default();
        c.record(Op::GgttMap as u8, Status::OK);
        c.record(Op::PpgttUnmap as u8, Status::GRANT_MAP_FAILED);
        c.record(Op::AttachInfo as u8, Status::OK);
        c.record(0x77, Status(-99));
        assert_eq!(c.batches, 2);
        assert_eq!(c.by_result[0], 2);
        assert_eq!(result_name(0), "OK");
        let gmf = Status::ALL.iter().position(|s| *s == Status::GRANT_MAP_FAILED).unwrap();
        assert_eq!(c.by_result[gmf], 1);
        assert_eq!(c.by_result[RESULTS - 1], 1);
        assert_eq!(result_name(RESULTS - 1), "UNKNOWN");
        let mut total = RequestCounters::default();
        total.add(&c);
        total.add(&c);
        assert_eq!((total.total(), total.batches), (8, 4));
    }
}
