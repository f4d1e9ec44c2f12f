//! Per stream, what the worker and its analyses share with the rest of the
//! daemon (`StreamHub`): counters in atomics (written by the worker, read
//! without waiting), the machine state for `hello`, and the links to the
//! baseline requests and the denoised signal. Readers take one
//! [`Snapshot`] of it, which `status` (so `/api/status` and MQTT too) and
//! `/metrics` render alike.

use crate::ring::RingCounters;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// A stream's worker as `status` reports it while its source says nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SourceState {
    Starting = 0,
    Running = 1,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Running => "running",
        }
    }
}

#[derive(Debug)]
pub struct StreamHub {
    pub name: String,
    pub source: String,
    pub source_rate: u32,
    pub channel: usize,
    pub hop: usize,
    pub resampler: Option<(u32, u32)>,
    pub ring: Arc<RingCounters>,
    /// Frames published.
    pub frames: AtomicU64,
    /// Frames made but not handed to the publisher (its queue was full).
    pub dropped_frames: AtomicU64,
    /// Snapshot and state-file writes dropped: the recorder's queue was full.
    pub recorder_dropped: Arc<AtomicU64>,
    pub nonfinite_frames: AtomicU64,
    pub clipped_frames: AtomicU64,
    /// Last time the worker had its turn, monotonic ns.
    pub heartbeat_ns: AtomicU64,
    /// The worker is done (its source ended): the watchdog expects no
    /// more heartbeats from it.
    pub ended: AtomicBool,
    /// Sum and max of processing latency, µs.
    pub latency_sum_us: AtomicU64,
    pub latency_max_us: AtomicU64,
    /// Whether the worker has started (the source's own account, when it
    /// has one, is in `SourceStatus`).
    state: AtomicU8,
    /// The machine state (monitor) and since when, Unix seconds.
    pub machine: Mutex<(crate::monitor::State, f64)>,
    /// Who named the current fault's family (None in other states).
    pub family_source: Mutex<Option<crate::monitor::verdict::Source>>,
    /// State changes into each kind of state (monitor::STATE_KINDS order).
    pub events: [AtomicU64; crate::monitor::STATE_KINDS.len()],
    /// Time the analyses took per frame.
    pub analysis_time: Histogram,
    /// The last velocity RMS in mm/s as f32 bits (NaN: none yet, or no units).
    pub velocity_mm_s: AtomicU32,
    /// The stream's baseline: a client's request to learn, and its status.
    pub baseline: Arc<BaselineCell>,
    /// The denoised signal, from the denoiser to the stream's socket.
    pub denoised: Arc<crate::tap::DenoisedTap>,
    /// The trend as the history sink last judged it (None: no `[history]`,
    /// or not judged yet).
    pub trend: Mutex<Option<crate::monitor::TrendStatus>>,
}

/// What a stream's analyses share with the rest of the daemon; kept
/// across reloads, which build new analyses.
#[derive(Clone)]
pub struct Links {
    pub baseline: Arc<BaselineCell>,
    pub denoised: Arc<crate::tap::DenoisedTap>,
}

impl Links {
    /// Links to nothing else: a stream run on its own (`drsnd classify`,
    /// tests), whose baseline requests and denoised signal nobody reads.
    pub fn detached(model_rate: u32) -> Self {
        Self {
            baseline: Arc::default(),
            denoised: Arc::new(crate::tap::DenoisedTap::new(model_rate)),
        }
    }
}

impl StreamHub {
    pub fn links(&self) -> Links {
        Links {
            baseline: self.baseline.clone(),
            denoised: self.denoised.clone(),
        }
    }
}

/// Between the baseline analysis (inference thread) and its readers (the
/// socket's `learn` command, `status`).
#[derive(Debug, Default)]
pub struct BaselineCell {
    /// Seconds a client asked to learn, as f64 bits (0: no request).
    pub learn_request: AtomicU64,
    pub status: Mutex<BaselineStatus>,
}

impl BaselineCell {
    pub fn request_learning(&self, seconds: f64) {
        self.learn_request.store(seconds.to_bits(), Relaxed);
    }

    /// A waiting request, taken.
    pub fn take_request(&self) -> Option<f64> {
        let bits = self.learn_request.swap(0, Relaxed);
        (bits != 0).then(|| f64::from_bits(bits))
    }

    pub fn set(&self, s: BaselineStatus) {
        if let Ok(mut g) = self.status.lock() {
            *g = s;
        }
    }

    pub fn get(&self) -> BaselineStatus {
        self.status.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// A stream's baseline as `status` reports it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum BaselineStatus {
    /// No baseline; `note` says why when there is more to say (a file
    /// learned with another model).
    #[default]
    None,
    Ignored {
        note: String,
    },
    Learning {
        /// 0..1 of the seconds of signal asked for.
        progress: f32,
        seconds: f64,
    },
    Learned {
        frames: usize,
        seconds: f64,
        /// Unix seconds.
        learned_at: f64,
        /// Where it is kept (none: not kept, no state-dir).
        file: Option<String>,
    },
    Failed {
        reason: String,
    },
}

/// Upper bounds (seconds) of the buckets of [`Histogram`].
pub const HISTOGRAM_BOUNDS_S: [f64; 12] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
];

/// A histogram of durations that the worker fills and `/metrics` reads,
/// with atomics only: recording costs two additions and a short search.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative).
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = HISTOGRAM_BOUNDS_S.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(d.as_nanos() as u64, Relaxed);
    }

    /// Cumulative counts per bound, the total count and the sum in seconds.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                acc += b.load(Relaxed);
                acc
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            count: self.count.load(Relaxed),
            sum_s: self.sum_ns.load(Relaxed) as f64 / 1e9,
        }
    }
}

impl StreamHub {
    pub fn new(
        name: &str,
        source: &str,
        source_rate: u32,
        channel: usize,
        hop: usize,
        model_rate: u32,
        ring: Arc<RingCounters>,
    ) -> Self {
        Self {
            name: name.to_string(),
            source: source.to_string(),
            source_rate,
            channel,
            hop,
            resampler: None,
            ring,
            frames: AtomicU64::new(0),
            dropped_frames: AtomicU64::new(0),
            recorder_dropped: Arc::default(),
            nonfinite_frames: AtomicU64::new(0),
            clipped_frames: AtomicU64::new(0),
            heartbeat_ns: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            latency_sum_us: AtomicU64::new(0),
            latency_max_us: AtomicU64::new(0),
            state: AtomicU8::new(SourceState::Starting as u8),
            machine: Mutex::new((crate::monitor::State::Starting, 0.0)),
            family_source: Mutex::new(None),
            events: Default::default(),
            analysis_time: Histogram::default(),
            velocity_mm_s: AtomicU32::new(f32::NAN.to_bits()),
            baseline: Arc::default(),
            denoised: Arc::new(crate::tap::DenoisedTap::new(model_rate)),
            trend: Mutex::new(None),
        }
    }

    pub fn set_state(&self, s: SourceState) {
        self.state.store(s as u8, Relaxed);
    }

    pub fn state(&self) -> SourceState {
        match self.state.load(Relaxed) {
            0 => SourceState::Starting,
            _ => SourceState::Running,
        }
    }

    pub fn machine(&self) -> (crate::monitor::State, f64) {
        self.machine
            .lock()
            .map(|g| g.clone())
            .unwrap_or((crate::monitor::State::Starting, 0.0))
    }

    /// A state change: the new state, who named its family (faults), and
    /// one more event of its kind.
    pub fn record_change(
        &self,
        state: crate::monitor::State,
        since: f64,
        source: Option<crate::monitor::verdict::Source>,
    ) {
        self.events[state.kind_index()].fetch_add(1, Relaxed);
        if let Ok(mut g) = self.family_source.lock() {
            *g = source;
        }
        self.set_machine(state, since);
    }

    pub fn set_machine(&self, state: crate::monitor::State, since: f64) {
        if let Ok(mut g) = self.machine.lock() {
            *g = (state, since);
        }
    }

    pub fn record_latency(&self, us: u64) {
        self.latency_sum_us.fetch_add(us, Relaxed);
        self.latency_max_us.fetch_max(us, Relaxed);
    }

    /// Every counter read once, without waiting on the worker.
    pub fn snapshot(&self) -> Snapshot {
        let frames = self.frames.load(Relaxed);
        let (machine, machine_since) = self.machine();
        let velocity = f32::from_bits(self.velocity_mm_s.load(Relaxed));
        let t = &self.denoised;
        Snapshot {
            name: self.name.clone(),
            worker: self.state(),
            frames,
            captured_samples: self.ring.captured.load(Relaxed),
            overrun_samples: self.ring.overrun_samples.load(Relaxed),
            gap_samples: self.ring.gap_samples.load(Relaxed),
            dropped_frames: self.dropped_frames.load(Relaxed),
            recorder_dropped: self.recorder_dropped.load(Relaxed),
            nonfinite_frames: self.nonfinite_frames.load(Relaxed),
            clipped_frames: self.clipped_frames.load(Relaxed),
            resampler: self.resampler,
            latency_ms_mean: self.latency_sum_us.load(Relaxed) as f64
                / frames.max(1) as f64
                / 1000.0,
            latency_ms_max: self.latency_max_us.load(Relaxed) as f64 / 1000.0,
            machine,
            machine_since,
            family_source: self.family_source.lock().map(|g| *g).unwrap_or(None),
            events: std::array::from_fn(|i| self.events[i].load(Relaxed)),
            analysis_time: self.analysis_time.snapshot(),
            velocity_mm_s: velocity.is_finite().then_some(velocity),
            baseline: self.baseline.get(),
            trend: self.trend.lock().map(|g| *g).unwrap_or(None),
            denoised: DenoisedCounts {
                samples: t.written.load(Relaxed),
                dropped_samples: t.dropped.load(Relaxed),
                readers: t.readers.load(Relaxed),
                readers_dropped: t.readers_dropped.load(Relaxed),
                readers_refused: t.readers_refused.load(Relaxed),
            },
        }
    }
}

/// One reading of a stream's hub (see [`StreamHub::snapshot`]).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    /// The worker's own account, for a source that gives none.
    pub worker: SourceState,
    pub frames: u64,
    pub captured_samples: u64,
    pub overrun_samples: u64,
    pub gap_samples: u64,
    pub dropped_frames: u64,
    pub recorder_dropped: u64,
    pub nonfinite_frames: u64,
    pub clipped_frames: u64,
    pub resampler: Option<(u32, u32)>,
    pub latency_ms_mean: f64,
    pub latency_ms_max: f64,
    pub machine: crate::monitor::State,
    /// Unix seconds.
    pub machine_since: f64,
    pub family_source: Option<crate::monitor::verdict::Source>,
    /// State changes into each kind of state (monitor::STATE_KINDS order).
    pub events: [u64; crate::monitor::STATE_KINDS.len()],
    pub analysis_time: HistogramSnapshot,
    /// The last velocity RMS, mm/s (None: none yet, or no units).
    pub velocity_mm_s: Option<f32>,
    pub baseline: BaselineStatus,
    pub trend: Option<crate::monitor::TrendStatus>,
    pub denoised: DenoisedCounts,
}

/// The denoised signal's hand-over counters (see `tap::DenoisedTap`).
#[derive(Debug, Clone, Default)]
pub struct DenoisedCounts {
    pub samples: u64,
    pub dropped_samples: u64,
    pub readers: u64,
    pub readers_dropped: u64,
    pub readers_refused: u64,
}

/// A [`Histogram`] read once.
#[derive(Debug, Clone)]
pub struct HistogramSnapshot {
    /// Observations at or below each of [`HISTOGRAM_BOUNDS_S`].
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_s: f64,
}
