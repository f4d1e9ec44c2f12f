//! `drsnd run`: builds the data path from the config ([`build`], into
//! [`Prepared`]), then serves ([`serve()`]): start the sinks, the workers
//! and the sources, answer [`Control`] until told to stop, and shut down
//! in order (stop capture, drain what was captured, publish it, say
//! goodbye). [`run`] turns the process's signals into `Control`; a
//! program embedding the daemon drives `serve` itself.

mod build;
mod reload;
mod serve;

pub use reload::ReloadFn;
pub use serve::{serve, Control};

use crate::analyses::Shared;
use crate::config::Config;
use crate::hub::StreamHub;
use crate::protocol::StreamStatus;
use crate::recorder::Recorder;
use crate::sinks::{self, Publisher, PublisherQueue};
use crate::source::SourceStatus;
use anyhow::{Context, Result};
use std::sync::atomic::AtomicBool;
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
    workers: Vec<build::PreparedWorker>,
    sources: Vec<build::PreparedSource>,
    /// Taken by the bus when the daemon starts serving.
    queue: Option<PublisherQueue>,
    /// Raised first on shutdown: sources stop delivering.
    source_stop: Arc<AtomicBool>,
    /// Raised once sources are done: workers drain and exit.
    stop: Arc<AtomicBool>,
    /// Reads the config again (file plus command-line overrides), for SIGHUP.
    reload: Option<Arc<ReloadFn>>,
    /// With `[mqtt]`: its files read and its spool open.
    mqtt: Option<sinks::mqtt::Prepared>,
    /// With `[history]`: its store open.
    history: Option<sinks::history::Prepared>,
    /// With `[[notify]]`: each target's files read.
    notify: Option<sinks::notify::Prepared>,
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
    let history = sinks::history::prepare(&cfg).map_err(SetupError)?;
    let notify = (!cfg.notify.is_empty())
        .then(|| sinks::notify::prepare(&cfg.notify))
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
        history,
        notify,
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

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads.
pub fn run(p: Prepared) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let control = forward_signals().context("cannot install signal handlers")?;
        serve(p, control).await
    })
}

/// Turns signals into [`Control`]. Installed before the socket is bound:
/// a SIGTERM that arrives once the socket answers must get the orderly
/// shutdown, not the default kill.
fn forward_signals() -> std::io::Result<tokio::sync::mpsc::UnboundedReceiver<Control>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let c = tokio::select! {
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
                _ = hup.recv() => Control::Reload,
            };
            if tx.send(c).is_err() || c == Control::Stop {
                return;
            }
        }
    });
    Ok(rx)
}

fn stream_status(s: &StreamHandle) -> StreamStatus {
    let snap = s.hub.snapshot();
    let source_state = s
        .source
        .get()
        .unwrap_or_else(|| snap.worker.as_str().to_string());
    StreamStatus::new(snap, source_state, s.denoising)
}
