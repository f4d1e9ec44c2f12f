//! `drsnd run`: builds the data path from the config ([`build`]), then
//! serves ([`serve`]): start the workers and sources, start the sinks,
//! answer signals until SIGTERM/SIGINT, and shut down in order (stop
//! capture, drain what was captured, publish it, say goodbye).

mod build;
mod reload;
mod serve;

pub use reload::ReloadFn;

use crate::analyses::Shared;
use crate::config::Config;
use crate::hub::StreamHub;
use crate::protocol::{DenoisedStatus, ResamplerState, StreamStatus};
use crate::recorder::Recorder;
use crate::sinks::{self, Publisher, PublisherQueue};
use crate::source::SourceStatus;
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

/// Frames the workers may queue for the bus before dropping.
const PUBLISH_QUEUE: usize = 8192;

/// One stream as the daemon tracks it.
pub struct StreamHandle {
    hub: Arc<StreamHub>,
    source: Arc<SourceStatus>,
    /// As hello names them (None: no physical figures).
    units: Option<String>,
    bearing: Option<crate::protocol::BearingInfo>,
    /// Whether the denoiser runs on it.
    denoising: bool,
}

/// The loaded models plus everything built from the config, not yet started.
pub struct Prepared {
    cfg: Config,
    shared: Shared,
    streams: Vec<StreamHandle>,
    workers: Vec<build::PendingWorker>,
    sources: Vec<build::PendingSource>,
    /// Taken by the bus when the daemon starts serving.
    queue: Option<PublisherQueue>,
    /// Raised first on shutdown: sources stop delivering.
    source_stop: Arc<AtomicBool>,
    /// Raised once sources are done: workers drain and exit.
    stop: Arc<AtomicBool>,
    /// Reads the config again (file plus command-line overrides), for SIGHUP.
    reload: Option<Arc<ReloadFn>>,
    /// With `[mqtt]`: its files read and its spool open.
    mqtt: Option<sinks::mqtt::Ready>,
    /// Writes every stream's snapshots and state files; its thread is
    /// stopped (what it holds written) after the workers'.
    recorder: Recorder,
    recorder_thread: Option<std::thread::JoinHandle<()>>,
}

/// An error in the config or model (exit 78) rather than at run time.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct SetupError(pub anyhow::Error);

/// Loads the model and builds every source's streams and workers.
pub fn prepare(cfg: Config, reload: Option<Arc<ReloadFn>>) -> Result<Prepared, SetupError> {
    if let Some(h) = &cfg.http {
        h.token().map_err(|e| SetupError(anyhow::anyhow!(e)))?;
    }
    let mqtt = cfg
        .mqtt
        .as_ref()
        .map(|m| sinks::mqtt::prepare(m, cfg.monitor.state_dir.as_deref()))
        .transpose()
        .map_err(SetupError)?;
    let shared = Shared::load(&cfg).map_err(SetupError)?;
    let (recorder, recorder_thread) = Recorder::spawn()
        .context("cannot start the recorder thread")
        .map_err(SetupError)?;
    if cfg.sources.is_empty() {
        return Err(SetupError(anyhow::anyhow!(
            "no [[source]] configured and none given on the command line"
        )));
    }
    let (tx, queue) = sinks::publisher(PUBLISH_QUEUE);
    let mut p = Prepared {
        cfg: cfg.clone(),
        shared,
        streams: Vec::new(),
        workers: Vec::new(),
        sources: Vec::new(),
        queue: Some(queue),
        source_stop: Arc::new(AtomicBool::new(false)),
        stop: Arc::new(AtomicBool::new(false)),
        reload,
        mqtt,
        recorder,
        recorder_thread: Some(recorder_thread),
    };
    for sc in &cfg.sources {
        p.add_source(sc, &tx).map_err(SetupError)?;
    }
    Ok(p)
}

impl Prepared {
    fn add_source(&mut self, sc: &crate::config::SourceConfig, tx: &Publisher) -> Result<()> {
        let built = build::source(&self.cfg, sc, &self.shared, tx, &self.stop, &self.recorder)?;
        self.sources.push(built.source);
        self.workers.extend(built.workers);
        self.streams.extend(built.streams);
        Ok(())
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(p: Prepared) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve::serve(p))
}

fn stream_status(s: &StreamHandle) -> StreamStatus {
    let st = &s.hub;
    let frames = st.frames.load(Relaxed);
    let mean = st.latency_sum_us.load(Relaxed) as f64 / frames.max(1) as f64 / 1000.0;
    let (machine, machine_since) = st.machine();
    StreamStatus {
        machine,
        machine_since,
        name: st.name.clone(),
        source_state: s
            .source
            .get()
            .unwrap_or_else(|| st.state().as_str().to_string()),
        frames,
        captured_samples: st.ring.captured.load(Relaxed),
        overrun_samples: st.ring.overrun_samples.load(Relaxed),
        gap_samples: st.ring.gap_samples.load(Relaxed),
        dropped_frames: st.dropped_frames.load(Relaxed),
        nonfinite_frames: st.nonfinite_frames.load(Relaxed),
        clipped_frames: st.clipped_frames.load(Relaxed),
        resampler: st.resampler.map(|(from, to)| ResamplerState { from, to }),
        latency_ms_mean: mean,
        latency_ms_max: st.latency_max_us.load(Relaxed) as f64 / 1000.0,
        baseline: st.baseline.get(),
        denoised: s.denoising.then(|| {
            let t = &st.denoised;
            DenoisedStatus {
                samples: t.written.load(Relaxed),
                dropped_samples: t.dropped.load(Relaxed),
                readers: t.readers.load(Relaxed),
                readers_dropped: t.readers_dropped.load(Relaxed),
                readers_refused: t.readers_refused.load(Relaxed),
            }
        }),
    }
}
