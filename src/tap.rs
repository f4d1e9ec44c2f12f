//! The denoised signal's hand-over from a stream's worker to its socket
//! (`sinks::denoised`): an SPSC ring of samples, so the worker never waits
//! for a reader. A leaf like `report`: the analyses write it, the sink
//! reads it, neither knows the other.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;

/// Seconds of denoised signal the ring holds for a sink that is late.
const RING_SECONDS: usize = 4;

impl std::fmt::Debug for DenoisedTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenoisedTap")
            .field("written", &self.written)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

pub struct DenoisedTap {
    /// The worker's end. A Mutex only so a reload's new analyses can take it
    /// over; it is only ever locked by the one worker of the stream.
    writer: Mutex<rtrb::Producer<f32>>,
    reader: Mutex<Option<rtrb::Consumer<f32>>>,
    /// The sink's thread, woken after each chunk.
    sink: OnceLock<Thread>,
    /// Index (model rate) of the next sample the worker writes.
    pub next_index: AtomicU64,
    /// Samples the worker could not hand over (the sink's ring was full).
    pub dropped: AtomicU64,
    /// Samples handed over in all.
    pub written: AtomicU64,
    /// Readers connected now, dropped for not keeping up, and turned away
    /// (too many at once).
    pub readers: AtomicU64,
    pub readers_dropped: AtomicU64,
    pub readers_refused: AtomicU64,
    /// The last seconds of denoised signal, for evidence snapshots (kept
    /// only when snapshots ask for it).
    recent: Mutex<Recent>,
}

/// Recent denoised samples; `end` is the index after the last.
#[derive(Default)]
pub struct Recent {
    pub samples: VecDeque<f32>,
    pub end: u64,
    keep: usize,
}

impl DenoisedTap {
    pub fn new(rate: u32) -> Self {
        let (writer, reader) = rtrb::RingBuffer::new(rate as usize * RING_SECONDS);
        Self {
            writer: Mutex::new(writer),
            reader: Mutex::new(Some(reader)),
            sink: OnceLock::new(),
            next_index: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            readers: AtomicU64::new(0),
            readers_dropped: AtomicU64::new(0),
            readers_refused: AtomicU64::new(0),
            recent: Mutex::new(Recent::default()),
        }
    }

    /// Hands over `samples`, whose first has index `index`. Without a sink
    /// (no `socket-dir`) nothing is kept. Never blocks and never allocates:
    /// what does not fit is counted in `dropped`.
    pub fn write(&self, index: u64, samples: &[f32]) {
        self.next_index.store(index + samples.len() as u64, Relaxed);
        self.remember(index, samples);
        let Some(sink) = self.sink.get() else {
            return;
        };
        let Ok(mut w) = self.writer.lock() else {
            return;
        };
        let n = samples.len().min(w.slots());
        if let Ok(chunk) = w.write_chunk_uninit(n) {
            chunk.fill_from_iter(samples[..n].iter().copied());
        }
        drop(w);
        self.written.fetch_add(n as u64, Relaxed);
        self.dropped.fetch_add((samples.len() - n) as u64, Relaxed);
        sink.unpark();
    }

    /// Keeps the last `n` samples from now on (snapshots call it at start).
    pub fn keep_recent(&self, n: usize) {
        if let Ok(mut r) = self.recent.lock() {
            r.keep = r.keep.max(n);
            let more = (r.keep + 8192).saturating_sub(r.samples.len());
            r.samples.reserve(more);
        }
    }

    /// The recent samples, for a snapshot to copy from.
    pub fn recent(&self) -> Option<std::sync::MutexGuard<'_, Recent>> {
        self.recent.lock().ok()
    }

    fn remember(&self, index: u64, samples: &[f32]) {
        let Ok(mut r) = self.recent.lock() else {
            return;
        };
        if r.keep == 0 {
            return;
        }
        if index != r.end {
            // A gap: the positions restart.
            r.samples.clear();
        }
        r.samples.extend(samples.iter().copied());
        r.end = index + samples.len() as u64;
        let extra = r.samples.len().saturating_sub(r.keep);
        r.samples.drain(..extra);
    }

    /// The reading end, once: for the stream's sink thread, which is woken
    /// whenever samples arrive.
    pub fn take_reader(&self) -> Option<rtrb::Consumer<f32>> {
        let r = self.reader.lock().ok()?.take()?;
        let _ = self.sink.set(std::thread::current());
        Some(r)
    }
}
