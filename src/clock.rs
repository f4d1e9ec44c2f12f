//! The two clocks. Every duration, age and liveness check uses the
//! monotonic clock: an edge box without a real-time clock boots with a wrong
//! date and jumps by months when NTP syncs, and a wall-clock age would then
//! look like a dead device (forward) or hide a real stall (backward). Wall
//! time is read only for the `time` fields people see, and is computed when
//! a message is made, so it follows the wall clock as it is set now.

use std::time::{SystemTime, UNIX_EPOCH};

/// Monotonic time in ns (CLOCK_MONOTONIC: since boot, never steps). Safe in
/// the capture callback: one vDSO call, no allocation, lock or syscall.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer to one timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock time now, seconds since the Unix epoch.
pub fn wall_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The wall-clock time (Unix seconds) of monotonic instant `mono`, as the
/// wall clock reads now: now minus how long ago `mono` was.
pub fn wall_s_at(mono: u64) -> f64 {
    let age_ns = mono_ns().saturating_sub(mono);
    wall_s() - age_ns as f64 / 1e9
}

/// Seconds from monotonic instant `since` to now (0 if `since` is later).
pub fn secs_since(since: u64) -> f64 {
    mono_ns().saturating_sub(since) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_time_moves_forward_and_maps_to_wall_time() {
        let a = mono_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = mono_ns();
        assert!(b - a >= 20_000_000, "{a} .. {b}");
        let w = wall_s_at(a);
        let now = wall_s();
        assert!(
            (now - w) >= 0.02 && (now - w) < 1.0,
            "wall {w} vs now {now}"
        );
    }
}
