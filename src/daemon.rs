//! `drsnd run`: wires source -> ring -> inference thread -> publisher, serves
//! until SIGTERM/SIGINT, then stops capture, drains what was captured,
//! publishes it, says goodbye and removes the socket.

use crate::config::{parse_mode, Config};
use crate::frame::{Assembler, Conditioning};
use crate::infer::thread::StreamWorker;
use crate::infer::Model;
use crate::manifest::ModelFiles;
use crate::notify::notify;
use crate::protocol::{
    Hello, ModelInfo, ModelRef, ReloadStatus, ResamplerState, StreamInfo, StreamStatus,
    PROTOCOL_VERSION,
};
use crate::publish::{self, Hub};
use crate::ring::{ring, RingWriter};
use crate::source::{self, Running, SourceStatus};
use crate::stats::StreamStats;
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames the inference threads may queue for the publisher before dropping.
const PUBLISH_QUEUE: usize = 8192;

/// One stream as the daemon tracks it.
struct StreamHandle {
    stats: Arc<StreamStats>,
    source: Arc<SourceStatus>,
}

/// A source opened but not started, with a ring writer per channel.
type PendingSource = (
    Box<dyn source::Source>,
    Vec<Option<RingWriter>>,
    Arc<SourceStatus>,
);

/// A loaded model plus everything built from the config, not yet started.
pub struct Prepared {
    cfg: Config,
    model: Model,
    streams: Vec<StreamHandle>,
    workers: Vec<StreamWorker>,
    starts: Vec<PendingSource>,
    /// Taken by the publisher when the daemon starts serving.
    outbox: Option<publish::OutboxReader>,
    /// Raised first on shutdown: sources stop delivering.
    source_stop: Arc<AtomicBool>,
    /// Raised once sources are done: inference threads drain and exit.
    stop: Arc<AtomicBool>,
    /// Hands a reloaded model to each inference thread.
    swaps: Vec<crossbeam_channel::Sender<Model>>,
    /// Reads the config again (file plus command-line overrides), for SIGHUP.
    reload: Option<Arc<ReloadFn>>,
}

/// Re-reads the configuration for a reload.
pub type ReloadFn = dyn Fn() -> Result<Config, String> + Send + Sync;

/// An error in the config or model (exit 78) rather than at run time.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct SetupError(pub anyhow::Error);

pub fn prepare(cfg: Config, reload: Option<Arc<ReloadFn>>) -> Result<Prepared, SetupError> {
    let files = ModelFiles::load(&cfg.model).map_err(SetupError)?;
    let model = Model::load_checked(&files, cfg.max_batch).map_err(SetupError)?;
    tracing::info!(
        "model {} {} ({}), {} Hz, frames of {}, {} threshold outputs",
        model.manifest.name,
        model.manifest.version,
        files.onnx_path.display(),
        model.manifest.sample_rate,
        model.manifest.frame_length,
        model.manifest.thresholds.len()
    );
    if cfg.sources.is_empty() {
        return Err(SetupError(anyhow::anyhow!(
            "no [[source]] configured and none given on the command line"
        )));
    }
    let (tx, outbox) = publish::outbox(PUBLISH_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let mut p = Prepared {
        cfg: cfg.clone(),
        model,
        streams: Vec::new(),
        workers: Vec::new(),
        starts: Vec::new(),
        outbox: Some(outbox),
        source_stop: Arc::new(AtomicBool::new(false)),
        stop,
        swaps: Vec::new(),
        reload,
    };
    for sc in &cfg.sources {
        p.add_source(sc, &tx).map_err(SetupError)?;
    }
    Ok(p)
}

impl Prepared {
    fn add_source(&mut self, sc: &crate::config::SourceConfig, tx: &publish::Outbox) -> Result<()> {
        let src = source::open(sc)?;
        let (rate, channels) = (src.rate(), src.channels());
        if sc.streams.len() > channels {
            bail!(
                "{}: {} streams named but the source has {channels} channel(s)",
                sc.label(),
                sc.streams.len()
            );
        }
        let m = &self.model.manifest;
        let status = Arc::new(SourceStatus::default());
        let mut writers = Vec::new();
        for c in 0..channels {
            let name = sc.streams.get(c).filter(|n| !n.is_empty());
            let Some(name) = name else {
                writers.push(None);
                continue;
            };
            let capacity = ((rate as f32 * sc.ring_seconds) as usize).max(m.frame_length);
            let (writer, reader) = ring(capacity);
            let cond = Conditioning {
                source_rate: rate,
                model_rate: m.sample_rate,
                gain: sc.gain,
                clip_level: sc.clip_level.unwrap_or(src.full_scale()),
            };
            let assembler = Assembler::new(cond, m.frame_length, self.cfg.hop)?;
            let mut stats = StreamStats::new(
                name,
                &sc.label(),
                rate,
                c,
                self.cfg.hop,
                writer.counters().clone(),
            );
            stats.resampler = assembler.resampling();
            let stats = Arc::new(stats);
            let (swap_tx, swap) = crossbeam_channel::unbounded();
            // The machine state saved before a restart, if any: a fault
            // already known is not raised again.
            let mut monitor_cfg = sc
                .monitor
                .clone()
                .unwrap_or_else(|| self.cfg.monitor.clone());
            if monitor_cfg.state_dir.is_none() {
                monitor_cfg.state_dir = self.cfg.monitor.state_dir.clone();
            }
            let state_file = monitor_cfg
                .state_dir
                .as_ref()
                .map(|d| crate::monitor::state_path(d, name));
            let saved = state_file.as_deref().and_then(crate::monitor::load_state);
            let restored = saved.map(|s| {
                tracing::info!(
                    "{name}: restored machine state {} (since {:.0})",
                    s.machine.name(),
                    s.since
                );
                stats.set_machine(s.machine.clone(), s.since);
                (s.machine, 0.0)
            });
            self.swaps.push(swap_tx);
            self.workers.push(StreamWorker {
                reader,
                assembler,
                model: self.model.fork()?,
                stats: stats.clone(),
                tx: tx.clone(),
                snapshots: crate::snapshot::Snapshots::new(
                    self.cfg.snapshots.clone(),
                    name,
                    rate,
                    m.sample_rate,
                    sc.ring_seconds as f64,
                ),
                monitor: crate::monitor::Monitor::new(monitor_cfg.clone(), m.class_ids(), restored),
                state: crate::monitor::StateSaver::new(state_file),
                model_rate: m.sample_rate,
                started_ns: 0,
                stop: self.stop.clone(),
                stall: std::env::var_os("DRSN_TEST_STALL_FILE").map(Into::into),
                swap,
                source: status.clone(),
                max_lag: (sc.kind == crate::config::SourceKind::Cpal)
                    .then_some((rate as f32 * sc.max_lag_s) as usize),
                shed_log: (0, 0),
                change_log: Default::default(),
            });
            self.streams.push(StreamHandle {
                stats,
                source: status.clone(),
            });
            writers.push(Some(writer));
        }
        self.starts.push((src, writers, status));
        Ok(())
    }

    fn hello(&self) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            daemon: format!("drsnd {}", env!("CARGO_PKG_VERSION")),
            model: ModelInfo::from(&self.model.manifest),
            streams: self
                .streams
                .iter()
                .map(|s| StreamInfo {
                    machine: s.stats.machine().0,
                    machine_since: s.stats.machine().1,
                    name: s.stats.name.clone(),
                    source: s.stats.source.clone(),
                    channel: s.stats.channel,
                    source_rate: s.stats.source_rate,
                    hop: s.stats.hop,
                })
                .collect(),
        }
    }
}

fn stream_status(s: &StreamHandle) -> StreamStatus {
    let st = &s.stats;
    let frames = st.frames.load(Relaxed);
    let mean = st.latency_sum_us.load(Relaxed) as f64 / frames.max(1) as f64 / 1000.0;
    let (machine, machine_since) = st.machine();
    StreamStatus {
        machine,
        machine_since,
        name: st.name.clone(),
        source_state: s.source.get().unwrap_or_else(|| st.state()),
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
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(p: Prepared) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(p))
}

async fn serve(mut p: Prepared) -> Result<()> {
    let started = Instant::now();
    // Handlers first: a SIGTERM that arrives once the socket answers must
    // get the orderly shutdown, not the default kill.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let socket_path = p.cfg.socket.path.clone();
    let mode = parse_mode(&p.cfg.socket.mode).unwrap_or(0o660);
    let listener = publish::bind(&socket_path, mode)?;
    let hub = Hub::new(
        p.hello(),
        p.cfg.socket.clone(),
        p.streams.iter().map(|s| s.stats.clone()).collect(),
    );
    let outbox = p.outbox.take().context("the daemon was started twice")?;
    let drain = {
        let hub = hub.clone();
        tokio::spawn(publish::drain_outbox(outbox, move |m| hub.send(&m)))
    };

    let mut threads = Vec::new();
    // Wake points in source samples: when the first frame and each hop completes.
    let m = &p.model.manifest;
    let to_src = |n: usize, rate: u32| (n as u64 * rate as u64).div_ceil(m.sample_rate as u64);
    let wake: Vec<(u64, u64)> = p
        .workers
        .iter()
        .map(|w| {
            (
                to_src(m.frame_length, w.stats.source_rate),
                to_src(w.stats.hop, w.stats.source_rate),
            )
        })
        .collect();
    for w in p.workers.drain(..) {
        threads.push(w.spawn().context("cannot start an inference thread")?);
    }
    let mut running: Vec<Running> = Vec::new();
    let mut k = 0;
    for (src, mut writers, status) in p.starts.drain(..) {
        for w in writers.iter_mut().flatten() {
            w.set_waker(threads[k].thread().clone(), wake[k].0, wake[k].1);
            k += 1;
        }
        running.push(src.start(writers, p.source_stop.clone(), status)?);
    }

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(publish::serve(hub.clone(), listener, shutdown_rx));
    let streams = Arc::new(std::mem::take(&mut p.streams));
    let model_state = Arc::new(std::sync::Mutex::new(ModelState {
        model: model_ref(&p.model.manifest),
        reload: None,
    }));
    let status_of = {
        let hub = hub.clone();
        let streams = streams.clone();
        let model_state = model_state.clone();
        move |state: &str| {
            let s = streams.iter().map(stream_status).collect();
            let (m, r) = model_state
                .lock()
                .map(|g| (g.model.clone(), g.reload.clone()))
                .unwrap_or_else(|e| (e.get_ref().model.clone(), None));
            publish::status_message(&hub, state, started.elapsed(), m, s, r)
        }
    };
    tracing::info!(
        "serving {} stream(s) on {}",
        streams.len(),
        socket_path.display()
    );
    notify("READY=1");
    notify(&format!(
        "STATUS=serving {} stream(s) on {}",
        streams.len(),
        socket_path.display()
    ));

    let mut tick = tokio::time::interval(Duration::from_millis(
        p.cfg.socket.status_interval_ms.max(100),
    ));
    tick.tick().await;
    // systemd's watchdog: ping at half the period, but only while every
    // inference thread that is still running has shown a recent heartbeat.
    let watchdog = crate::notify::watchdog_interval();
    let mut dog = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |d| d / 2));
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                let outcome = reload(&p, &hub).await;
                if let Ok(mut g) = model_state.lock() {
                    if let Some(m) = &outcome.1 {
                        g.model = m.clone();
                    }
                    g.reload = Some(ReloadStatus { ok: outcome.0.is_ok(), message: outcome.0.unwrap_or_else(|e| e), at_uptime_s: started.elapsed().as_secs_f64() });
                }
                hub.send(&status_of("running"));
            }
            _ = tick.tick() => hub.send(&status_of("running")),
            _ = dog.tick(), if watchdog.is_some() => {
                let limit = watchdog.map_or(0, |d| (d / 2).as_nanos() as u64);
                let now = crate::ring::now_ns();
                let alive = threads.iter().zip(streams.iter()).all(|(t, s)| {
                    t.is_finished() || now.saturating_sub(s.stats.heartbeat_ns.load(Relaxed)) < limit
                });
                if alive {
                    notify("WATCHDOG=1");
                } else {
                    tracing::error!("an inference thread is stalled; withholding the watchdog ping");
                }
            }
        }
    }

    tracing::info!("stopping: draining captured samples");
    notify("STOPPING=1");
    // Stop capture first, so that everything captured is in the rings
    // before the inference threads make their last pass.
    p.source_stop.store(true, Relaxed);
    let source_threads: Vec<_> = running.iter_mut().filter_map(|r| r.thread.take()).collect();
    drop(running); // closes cpal streams
    let deadline = Instant::now() + Duration::from_millis(500);
    while source_threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.stop.store(true, Relaxed);
    for t in &threads {
        t.thread().unpark();
    }
    let joined = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    });
    // The drain ends once every inference thread has let go of its outbox
    // and everything queued is broadcast.
    let drained = async {
        let _ = joined.await;
        let _ = drain.await;
    };
    if tokio::time::timeout(Duration::from_millis(1500), drained)
        .await
        .is_err()
    {
        tracing::warn!("inference threads did not finish draining in time");
    }
    hub.send(&status_of("stopping"));
    let _ = shutdown_tx.send(true);
    let deadline = Instant::now() + Duration::from_millis(300);
    while hub.active.load(Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.abort();
    publish::remove_socket(&socket_path);
    tracing::info!("stopped");
    Ok(())
}

struct ModelState {
    model: ModelRef,
    reload: Option<ReloadStatus>,
}

fn model_ref(m: &crate::manifest::Manifest) -> ModelRef {
    ModelRef {
        name: m.name.clone(),
        version: m.version.clone(),
        sha256: m.sha256.clone(),
    }
}

/// SIGHUP: loads the config and model again beside the running ones; if
/// they are valid, every inference thread swaps to the new model between
/// frames and subscribers get a new `hello`. If not, nothing changes.
/// Returns the message for `status` (Ok: what changed; Err: why not) and
/// the new model's reference.
async fn reload(p: &Prepared, hub: &Arc<Hub>) -> (Result<String, String>, Option<ModelRef>) {
    let Some(reload_fn) = p.reload.clone() else {
        return (Err("no config to reload".into()), None);
    };
    let running = p.cfg.clone();
    let manifest = p.model.manifest.clone();
    let loaded =
        tokio::task::spawn_blocking(move || load_replacement(&*reload_fn, &running, &manifest))
            .await;
    let (model, notes) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let msg = format!(
                "reload failed, still running {} {}: {e:#}",
                p.model.manifest.name, p.model.manifest.version
            );
            tracing::error!("{msg}");
            return (Err(msg), None);
        }
        Err(e) => return (Err(format!("reload failed: {e}")), None),
    };
    for tx in &p.swaps {
        match model.fork() {
            Ok(m) => {
                let _ = tx.send(m);
            }
            Err(e) => return (Err(format!("reload failed: {e:#}")), None),
        }
    }
    let m = &model.manifest;
    let mut msg = format!(
        "loaded model {} {} ({})",
        m.name,
        m.version,
        &m.sha256[..12.min(m.sha256.len())]
    );
    for n in &notes {
        msg.push_str("; ");
        msg.push_str(n);
    }
    tracing::info!("reload: {msg}");
    let hello = hub.hello.lock().map(|mut h| {
        h.model = ModelInfo::from(m);
        h.clone()
    });
    if let Ok(h) = hello {
        hub.send(&crate::protocol::Message::Hello(h));
    }
    (Ok(msg), Some(model_ref(m)))
}

fn load_replacement(
    reload: &ReloadFn,
    running: &Config,
    current: &crate::manifest::Manifest,
) -> Result<(Model, Vec<String>)> {
    let cfg = reload().map_err(anyhow::Error::msg)?;
    let files = ModelFiles::load(&cfg.model)?;
    let model = Model::load_checked(&files, running.max_batch)?;
    let m = &model.manifest;
    if m.sample_rate != current.sample_rate || m.frame_length != current.frame_length {
        bail!(
            "{}: takes {} samples at {} Hz, the running model {} at {} Hz; that needs a restart",
            cfg.model.display(),
            m.frame_length,
            m.sample_rate,
            current.frame_length,
            current.sample_rate
        );
    }
    let mut notes = Vec::new();
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    for (what, changed) in [
        ("sources", differs(&cfg.sources, &running.sources)),
        ("socket", differs(&cfg.socket, &running.socket)),
        ("hop", cfg.hop != running.hop),
        ("max-batch", cfg.max_batch != running.max_batch),
    ] {
        if changed {
            notes.push(format!("{what} changed: takes effect after a restart"));
        }
    }
    Ok((model, notes))
}
