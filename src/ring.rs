//! The wait-free hand-over from capture to inference.
//!
//! Samples travel in an `rtrb` SPSC ring (wait-free, allocation-free after
//! construction). Beside it, a small ring of [`Mark`]s says where each capture
//! chunk ended, when, and how many samples were dropped right after it because
//! the sample ring was full. So the reader knows exactly where every gap is
//! and every drop is counted: nothing captured disappears silently.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

/// End of one capture chunk, at writer position `end` (samples written so far).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    pub end: u64,
    /// Samples dropped right after `end` (ring full).
    pub dropped: u64,
    /// Capture time of the chunk's last sample, monotonic ns ([`crate::clock`]).
    pub time_ns: u64,
}

/// Counters shared between the capture side and status reporting.
#[derive(Debug, Default)]
pub struct RingCounters {
    /// Samples dropped because the ring was full.
    pub overrun_samples: AtomicU64,
    /// Samples accepted into the ring.
    pub captured: AtomicU64,
    /// Time of the last capture chunk, monotonic ns (0: none yet).
    pub last_chunk_ns: AtomicU64,
    /// Samples never captured because the device was gone (marked as a gap
    /// so frames do not straddle the outage and indices keep wall time).
    pub gap_samples: AtomicU64,
}

/// Creates a ring holding `capacity` samples.
pub fn ring(capacity: usize) -> (RingWriter, RingReader) {
    let (samples_tx, samples_rx) = rtrb::RingBuffer::new(capacity);
    let (marks_tx, marks_rx) = rtrb::RingBuffer::new(1024);
    let counters = Arc::new(RingCounters::default());
    let writer = RingWriter {
        samples: samples_tx,
        marks: marks_tx,
        written: 0,
        dropped_total: 0,
        pending_drop: 0,
        counters: counters.clone(),
        waker: None,
        wake_every: 1,
        next_wake: 1,
    };
    let reader = RingReader {
        samples: samples_rx,
        marks: marks_rx,
        read: 0,
        counters,
    };
    (writer, reader)
}

pub struct RingWriter {
    samples: rtrb::Producer<f32>,
    marks: rtrb::Producer<Mark>,
    written: u64,
    dropped_total: u64,
    pending_drop: u64,
    counters: Arc<RingCounters>,
    waker: Option<Thread>,
    wake_every: u64,
    /// Stream position (dropped samples included) at which to wake next.
    next_wake: u64,
}

impl RingWriter {
    /// Wakes `thread` when the stream reaches position `first`, then every
    /// `every` samples: exactly when a frame completes (first = frame length,
    /// every = hop), so a frame waits for no timer.
    pub fn set_waker(&mut self, thread: Thread, first: u64, every: u64) {
        self.waker = Some(thread);
        self.next_wake = first.max(1);
        self.wake_every = every.max(1);
    }

    pub fn counters(&self) -> &Arc<RingCounters> {
        &self.counters
    }

    /// Free room in samples.
    pub fn room(&self) -> usize {
        self.samples.slots()
    }

    /// Real-time safe: pushes up to `n` samples from `iter`, counts the rest
    /// as overrun and returns. No allocation, lock, log or wait: rtrb's
    /// write is wait-free, the counters are atomics, and unpark is one atomic
    /// swap plus at most one futex wake.
    pub fn push(&mut self, n: usize, iter: impl Iterator<Item = f32>, time_ns: u64) {
        let fits = n.min(self.samples.slots());
        let pushed = match self.samples.write_chunk_uninit(fits) {
            Ok(chunk) => chunk.fill_from_iter(iter.take(fits)),
            Err(_) => 0,
        };
        let dropped = (n - pushed) as u64;
        self.written += pushed as u64;
        self.counters.captured.fetch_add(pushed as u64, Relaxed);
        self.counters.last_chunk_ns.store(time_ns, Relaxed);
        if dropped > 0 {
            self.counters.overrun_samples.fetch_add(dropped, Relaxed);
        }
        self.mark(dropped, time_ns);
        let position = self.written + self.dropped_total;
        if position >= self.next_wake || dropped > 0 {
            while self.next_wake <= position {
                self.next_wake += self.wake_every;
            }
            if let Some(t) = &self.waker {
                t.unpark();
            }
        }
    }

    /// For file and pipe sources, where waiting loses nothing: waits for room
    /// instead of dropping. Returns false if `stop` was raised first.
    pub fn push_waiting(&mut self, samples: &[f32], time_ns: u64, stop: &dyn Fn() -> bool) -> bool {
        let mut rest = samples;
        while !rest.is_empty() {
            let room = self.room();
            if room == 0 {
                if stop() {
                    return false;
                }
                if let Some(t) = &self.waker {
                    t.unpark();
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let k = room.min(rest.len());
            self.push(k, rest[..k].iter().copied(), time_ns);
            rest = &rest[k..];
        }
        true
    }

    /// Marks `n` samples that were never captured (the device was gone):
    /// the reader sees a gap, as after an overrun, but nothing is counted
    /// as overrun because nothing captured was lost. Not for the callback.
    pub fn skip(&mut self, n: u64, time_ns: u64) {
        if n == 0 {
            return;
        }
        self.counters.gap_samples.fetch_add(n, Relaxed);
        self.mark(n, time_ns);
        self.wake();
    }

    /// Ends a chunk at the current position, with `missing` samples after it.
    fn mark(&mut self, missing: u64, time_ns: u64) {
        self.pending_drop += missing;
        self.dropped_total += missing;
        let mark = Mark {
            end: self.written,
            dropped: self.pending_drop,
            time_ns,
        };
        // If the mark ring is full the drop is announced by the next mark.
        if self.marks.push(mark).is_ok() {
            self.pending_drop = 0;
        }
    }

    /// Wakes the reader now (end of stream, shutdown).
    pub fn wake(&self) {
        if let Some(t) = &self.waker {
            t.unpark();
        }
    }
}

/// What the reader gets, in capture order.
#[derive(Debug)]
pub enum Segment<'a> {
    /// Contiguous samples; the last one was captured at `last_ns`.
    Samples(&'a [f32], u64),
    /// `n` samples are missing here (dropped on overrun).
    Gap(u64),
}

pub struct RingReader {
    samples: rtrb::Consumer<f32>,
    marks: rtrb::Consumer<Mark>,
    /// Samples read so far: the reader's position in writer coordinates.
    read: u64,
    counters: Arc<RingCounters>,
}

impl RingReader {
    pub fn counters(&self) -> &Arc<RingCounters> {
        &self.counters
    }

    /// True once the writer is gone and everything was read.
    pub fn finished(&self) -> bool {
        self.samples.is_abandoned() && self.samples.is_empty() && self.marks.is_empty()
    }

    /// Hands completed capture chunks to `f`, in order, with their gaps,
    /// stopping once about `max` samples were handed over (a fast writer
    /// must not keep the reader draining forever). `rate` turns sample
    /// counts into time offsets within a chunk.
    /// Samples waiting to be read.
    pub fn backlog(&self) -> usize {
        self.samples.slots()
    }

    pub fn drain(&mut self, rate: f64, max: usize, mut f: impl FnMut(Segment<'_>)) -> usize {
        let mut total = 0;
        while total < max {
            let Ok(mark) = self.marks.pop() else { break };
            // Samples up to `mark.end` were committed before the mark was.
            let n = (mark.end.saturating_sub(self.read)) as usize;
            if n > 0 {
                if let Ok(chunk) = self.samples.read_chunk(n.min(self.samples.slots())) {
                    let (a, b) = chunk.as_slices();
                    let tail_ns = (b.len() as f64 / rate * 1e9) as u64;
                    if !a.is_empty() {
                        f(Segment::Samples(a, mark.time_ns.saturating_sub(tail_ns)));
                    }
                    if !b.is_empty() {
                        f(Segment::Samples(b, mark.time_ns));
                    }
                    total += chunk.len();
                    self.read += chunk.len() as u64;
                    chunk.commit_all();
                }
            }
            if mark.dropped > 0 {
                f(Segment::Gap(mark.dropped));
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(r: &mut RingReader) -> (Vec<f32>, Vec<u64>) {
        let mut samples = Vec::new();
        let mut gaps = Vec::new();
        r.drain(1000.0, usize::MAX, |s| match s {
            Segment::Samples(x, _) => samples.extend_from_slice(x),
            Segment::Gap(n) => gaps.push(n),
        });
        (samples, gaps)
    }

    #[test]
    fn overruns_are_counted_and_reported_where_they_happened() {
        let (mut w, mut r) = ring(10);
        w.push(6, (0..6).map(|v| v as f32), 1);
        w.push(6, (6..12).map(|v| v as f32), 2); // 4 fit, 2 dropped
        w.push(3, (12..15).map(|v| v as f32), 3); // ring full: all dropped
        let (s, gaps) = collect(&mut r);
        assert_eq!(s, (0..10).map(|v| v as f32).collect::<Vec<_>>());
        assert_eq!(gaps, vec![2, 3]);
        assert_eq!(w.counters().overrun_samples.load(Relaxed), 5);
        assert_eq!(w.counters().captured.load(Relaxed), 10);
        // After draining there is room again; positions stay consistent.
        w.push(4, (15..19).map(|v| v as f32), 4);
        let (s, gaps) = collect(&mut r);
        assert_eq!(s, vec![15.0, 16.0, 17.0, 18.0]);
        assert!(gaps.is_empty());
    }

    #[test]
    fn wrap_around_hands_over_every_sample_in_order() {
        let (mut w, mut r) = ring(7);
        let mut next = 0;
        let mut got = Vec::new();
        for round in 0..50 {
            let n = 1 + round % 6;
            w.push(n, (next..next + n).map(|v| v as f32), round as u64);
            next += n;
            got.extend(collect(&mut r).0);
        }
        assert_eq!(got, (0..next).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn finished_once_the_writer_is_gone_and_everything_read() {
        let (mut w, mut r) = ring(8);
        w.push(3, [1.0, 2.0, 3.0].into_iter(), 1);
        drop(w);
        assert!(!r.finished());
        collect(&mut r);
        assert!(r.finished());
    }
}
