//! Xen system time from a `vcpu_time_info` snapshot and a TSC reading
//! (`xen.h`, `struct vcpu_time_info`):
//! `system_time + ((((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32)`,
//! where a negative shift shifts right.
#![forbid(unsafe_code)]

use xen_abi::shared_info::VcpuTimeInfo;

/// Nanoseconds of Xen system time at TSC value `tsc`.
pub fn system_time_ns(t: &VcpuTimeInfo, tsc: u64) -> u64 {
    let mut delta = tsc.wrapping_sub(t.tsc_timestamp);
    if t.tsc_shift >= 0 {
        delta = delta.checked_shl(t.tsc_shift as u32).unwrap_or(0);
    } else {
        delta = delta.checked_shr(t.tsc_shift.unsigned_abs() as u32).unwrap_or(0);
    }
    let scaled = ((delta as u128 * t.tsc_to_system_mul as u128) >> 32) as u64;
    t.system_time.wrapping_add(scaled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2ghz_tsc_advances_half_a_nanosecond_per_tick() {
        // 2 GHz: mul = 2^32 / 2 with shift 0.
        let t = VcpuTimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 0,
            ..Default::default()
        };
        assert_eq!(system_time_ns(&t, 1000), 5_000);
        assert_eq!(system_time_ns(&t, 3000), 6_000);
    }

    #[test]
    fn negative_shift_shifts_right_and_positive_left() {
        let t = VcpuTimeInfo { tsc_to_system_mul: 1 << 31, tsc_shift: -1, ..Default::default() };
        assert_eq!(system_time_ns(&t, 4000), 1000);
        let t = VcpuTimeInfo { tsc_to_system_mul: 1 << 31, tsc_shift: 2, ..Default::default() };
        assert_eq!(system_time_ns(&t, 4000), 8000);
    }
}
