//! Fault injection for the tests, compiled in only with the cargo feature
//! `fault-injection` (scripts/test.sh turns it on). In any other build each
//! hook is an empty inline function: a release binary reads no test
//! variables and checks no test files.
//!
//! - `DRSN_TEST_STALL_FILE=PATH`: while PATH exists, every stream worker
//!   stalls without a heartbeat, as a wedged one would (watchdog tests).
//! - `DRSN_TEST_FAIL_FORK=N`: the N-th per-stream copy of the analyses made
//!   in this process fails (1-based; start-up makes one per stream, each
//!   reload one per stream again), to test that a reload is all-or-nothing.

use anyhow::Result;

#[cfg(feature = "fault-injection")]
mod hooks {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Duration;

    pub fn stall_while_asked() {
        let Some(path) = std::env::var_os("DRSN_TEST_STALL_FILE") else {
            return;
        };
        while std::path::Path::new(&path).exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    static FORKS: AtomicU64 = AtomicU64::new(0);

    pub fn fail_a_fork() -> anyhow::Result<()> {
        let n = FORKS.fetch_add(1, Relaxed) + 1;
        let fail_at = std::env::var("DRSN_TEST_FAIL_FORK")
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        if fail_at == Some(n) {
            anyhow::bail!("injected failure of copy {n} (DRSN_TEST_FAIL_FORK)");
        }
        Ok(())
    }
}

/// Stalls the calling worker while the test asks for it.
#[inline(always)]
pub fn stall_while_asked() {
    #[cfg(feature = "fault-injection")]
    hooks::stall_while_asked();
}

/// Fails when the test asks this copy of the analyses to fail.
#[inline(always)]
pub fn fail_a_fork() -> Result<()> {
    #[cfg(feature = "fault-injection")]
    return hooks::fail_a_fork();
    #[cfg(not(feature = "fault-injection"))]
    Ok(())
}
