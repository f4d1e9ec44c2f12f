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
//! When a thread wakes is `pool-wake`: "frame" (the default), as soon as
//! a frame of any of its streams is due; "hop", once per hop (of
//! `frames-per-wake` hops), so that streams whose frames fall due at
//! different instants (sensors on separate interfaces) share a wake-up too,
//! and a frame waits up to one hop more.
//!
//! Each stream belongs to one thread for its whole life (stream i to
//! thread i mod n), so its order, sequence numbers and state never cross
//! threads, and a slow stream can only delay the streams of its own thread,
//! by at most one turn (`FRAMES_PER_TURN` frames) per round.

use super::{StreamWorker, Turn};
use crate::config::PoolWake;
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long a thread sleeps when nothing arrives (it is woken on data).
const IDLE: Duration = Duration::from_millis(100);

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
    pub fn start(workers: Vec<StreamWorker>, n: usize, wake: PoolWake) -> std::io::Result<Self> {
        // `size` picks n; more threads than streams would only be idle ones.
        let n = n.max(1);
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
                .spawn(move || run(group, wake))?;
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
fn run(mut streams: Vec<StreamWorker>, wake: PoolWake) {
    for w in &mut streams {
        w.begin();
    }
    let period = streams
        .iter()
        .map(StreamWorker::wake_period)
        .min()
        .unwrap_or(IDLE);
    // Never shorter than the rings' period: an early timeout would split a
    // `frames-per-wake` group.
    let wait = IDLE.max(period * 3 / 2);
    let mut tick = Ticks::new(period);
    // Where each round starts moves on by one, so no stream is always last.
    let mut first = 0usize;
    while !streams.is_empty() {
        crate::fault::stall_while_asked();
        let busy = round(&mut streams, first);
        streams.retain(|w| !w.is_ended());
        first = first.wrapping_add(1);
        if busy {
            continue;
        }
        match wake {
            PoolWake::Frame => std::thread::park_timeout(wait),
            // A sleep, not a park: the rings' wake-ups in between are what
            // the next tick gathers.
            PoolWake::Hop => std::thread::sleep(tick.until_next()),
        }
    }
}

/// A clock that ticks every `period` from its start, skipping ticks missed.
struct Ticks {
    next: Instant,
    period: Duration,
}

impl Ticks {
    fn new(period: Duration) -> Self {
        let period = period.max(Duration::from_millis(1));
        Self {
            next: Instant::now() + period,
            period,
        }
    }

    /// How long until the next tick (which then becomes the current one).
    fn until_next(&mut self) -> Duration {
        let now = Instant::now();
        while self.next <= now {
            self.next += self.period;
        }
        self.next - now
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
    fn ticks_keep_their_phase_and_skip_what_was_missed() {
        let period = Duration::from_millis(40);
        let mut t = Ticks::new(period);
        let first = t.until_next();
        assert!(first <= period && first > period / 2, "{first:?}");
        std::thread::sleep(period * 2 + period / 4);
        let next = t.until_next();
        assert!(
            next < period,
            "a missed tick is skipped, not run late: {next:?}"
        );
        assert!(next > period / 2, "the phase is kept: {next:?}");
    }

    #[test]
    fn size_is_the_configured_count_or_the_cores_never_more_than_the_streams() {
        assert_eq!(size(3, 16), 3);
        assert_eq!(size(8, 2), 2, "no idle threads");
        assert_eq!(size(4, 0), 1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(size(0, 1000), cores);
    }
}
