//! The analysis threads: a fixed number of them (by default one per core)
//! serve every stream. A thread wakes when any of its streams' rings has a
//! frame due, gives each of its streams a turn, round after round until all
//! are caught up, then sleeps.
//!
//! Why not a thread per stream: a tract call right after another costs
//! about a third of one made after a 42.7 ms sleep (cold caches,
//! BENCHMARKS.md), and every wake-up costs a context switch. Streams that
//! share a thread run back to back on warm caches, on one wake-up.
//!
//! Each stream belongs to one thread for its whole life (stream i to
//! thread i mod n), so its order, sequence numbers and state never cross
//! threads, and a slow stream can only delay the streams of its own thread,
//! by at most one turn (`FRAMES_PER_TURN` frames) per round.

use super::{StreamWorker, Turn, IDLE};
use std::thread::{JoinHandle, Thread};

/// The running threads, and which one serves each stream.
pub struct Pool {
    threads: Vec<JoinHandle<()>>,
    /// Per stream, in the order given to `start`: the thread its ring wakes.
    wakers: Vec<Thread>,
}

/// How many threads serve `streams` streams when the config asks for
/// `configured` (0: one per core).
pub fn size(configured: usize, streams: usize) -> usize {
    let want = match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    want.min(streams).max(1)
}

impl Pool {
    /// Starts `n` threads over `workers` (stream i on thread i mod n).
    pub fn start(workers: Vec<StreamWorker>, n: usize) -> std::io::Result<Self> {
        let n = n.clamp(1, workers.len().max(1));
        let count = workers.len();
        let mut groups: Vec<Vec<StreamWorker>> = (0..n).map(|_| Vec::new()).collect();
        for (i, w) in workers.into_iter().enumerate() {
            groups[i % n].push(w);
        }
        let mut threads = Vec::with_capacity(n);
        for (k, group) in groups.into_iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            let t = std::thread::Builder::new()
                .name(format!("stream-pool-{k}"))
                .spawn(move || run(group))?;
            threads.push(t);
        }
        let wakers = (0..count)
            .map(|i| threads[i % threads.len()].thread().clone())
            .collect();
        Ok(Self { threads, wakers })
    }

    /// The thread that serves stream `i` (in `start`'s order).
    pub fn waker(&self, i: usize) -> Option<&Thread> {
        self.wakers.get(i)
    }

    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Wakes every thread (to see the stop flag).
    pub fn wake_all(&self) {
        for t in &self.threads {
            t.thread().unpark();
        }
    }

    /// Waits for every thread to finish its streams.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// One thread's life: rounds of turns until every stream is done.
fn run(mut streams: Vec<StreamWorker>) {
    for w in &mut streams {
        w.begin();
    }
    let wait = streams
        .iter()
        .map(StreamWorker::idle_wait)
        .min()
        .unwrap_or(IDLE);
    // Where each round starts moves on by one, so no stream is always last.
    let mut first = 0usize;
    while !streams.is_empty() {
        crate::fault::stall_while_asked();
        let busy = round(&mut streams, first);
        streams.retain(|w| !w.is_ended());
        first = first.wrapping_add(1);
        if !busy {
            std::thread::park_timeout(wait);
        }
    }
}

/// A turn for every stream, starting at `first`; whether any has more.
fn round(streams: &mut [StreamWorker], first: usize) -> bool {
    let n = streams.len();
    let mut busy = false;
    for k in 0..n {
        let w = &mut streams[(first + k) % n];
        match w.turn() {
            Turn::Busy => busy = true,
            Turn::Idle => {}
            Turn::Done => w.end(),
        }
    }
    busy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_is_the_configured_count_or_the_cores_never_more_than_the_streams() {
        assert_eq!(size(3, 16), 3);
        assert_eq!(size(8, 2), 2, "no idle threads");
        assert_eq!(size(4, 0), 1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(size(0, 1000), cores);
    }
}
