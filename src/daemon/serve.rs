//! Serving, in the order of the data path: start the sinks, the workers and
//! the sources; answer [`Control`] (from signals, in `run`) and the status
//! tick until told to stop; then shut down in order, so that everything
//! captured is published.

use super::{reload, stream_status, Prepared, StreamHandle};
use crate::analyses::Analyses;
use crate::notify::notify;
use crate::protocol::{
    DenoiserInfo, Hello, Message, ModelInfo, ModelRef, ReloadStatus, Status, StreamInfo,
    PROTOCOL_VERSION,
};
use crate::sinks::{self, Bus, Shutdown, Sinks};
use crate::source::Running;
use crate::worker::pool::{self, Pool};
use anyhow::{Context, Result};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What a serving daemon is told: by `run` from its signals (SIGTERM and
/// SIGINT stop, SIGHUP reloads), or by whoever drives `serve` in-process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Stop,
    Reload,
}

/// The daemon while it serves.
struct Serving {
    p: Prepared,
    started: Instant,
    bus: Arc<Bus>,
    sinks: Sinks,
    streams: Vec<StreamHandle>,
    /// Per stream, in `streams` order: hands a reload's analyses over.
    swaps: Vec<crossbeam_channel::Sender<Analyses>>,
    model: ModelRef,
    reload: Option<ReloadStatus>,
}

/// Serves until `control` says stop (or is closed), then shuts down in order.
pub async fn serve(p: Prepared, mut control: mpsc::UnboundedReceiver<Control>) -> Result<()> {
    let mut s = Serving::new(p);
    let prepared = sinks::Prepared {
        mqtt: s.p.mqtt.take(),
        store: s.p.history.take(),
        notify: s.p.notify.take(),
    };
    s.sinks = sinks::build(&s.p.cfg, &s.bus, prepared)?;
    let queue = s.p.queue.take().context("the daemon was started twice")?;
    let drain = {
        let bus = s.bus.clone();
        tokio::spawn(sinks::drain(queue, move |m| bus.send(&m)))
    };
    let (trigger, shutdown) = Shutdown::new();
    // Before the workers: every sink is subscribed before the first frame,
    // and a denoised-signal reader sees the first sample. One that cannot
    // start stops those that did (a program embedding the daemon goes on).
    if let Err(e) = s.sinks.start(&shutdown) {
        trigger.raise();
        std::mem::take(&mut s.sinks).stop().await;
        return Err(e);
    }
    let pool = start_workers(&mut s.p)?;
    let running = start_sources(&mut s.p, &s.streams, &pool)?;
    s.announce_ready();
    s.serve_until_stopped(&mut control).await;
    s.shut_down(running, pool, drain).await;
    s.stop_recorder().await;
    s.bus.send(&s.status("stopping"));
    trigger.raise();
    std::mem::take(&mut s.sinks).stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the analysis threads over every stream's worker, in stream order.
fn start_workers(p: &mut Prepared) -> Result<Pool> {
    let workers: Vec<_> = p.workers.drain(..).map(|w| w.worker).collect();
    let n = pool::size(p.cfg.worker_threads, workers.len());
    let pool =
        Pool::start(workers, n, p.cfg.pool_wake).context("cannot start the analysis threads")?;
    tracing::debug!("{} analysis thread(s)", pool.threads());
    Ok(pool)
}

/// Starts every source, each ring writer waking its worker exactly when a
/// frame completes (first at the frame length, then every `frames-per-wake`
/// hops).
fn start_sources(p: &mut Prepared, streams: &[StreamHandle], pool: &Pool) -> Result<Vec<Running>> {
    let m = &p.shared.classifier.manifest;
    let every = p.cfg.wake_samples();
    let to_src = |n: usize, rate: u32| (n as u64 * rate as u64).div_ceil(m.sample_rate as u64);
    let mut handles = streams.iter().enumerate();
    let mut running = Vec::new();
    for mut src in p.sources.drain(..) {
        for w in src.writers.iter_mut().flatten() {
            let Some((i, s)) = handles.next() else { break };
            let Some(t) = pool.waker(i) else { break };
            let rate = s.hub.source_rate;
            w.set_waker(t.clone(), to_src(m.frame_length, rate), to_src(every, rate));
        }
        running.push(
            src.source
                .start(src.writers, p.source_stop.clone(), src.status)?,
        );
    }
    Ok(running)
}

impl Serving {
    /// The bus and the socket sink, with the hello every subscriber gets.
    fn new(mut p: Prepared) -> Self {
        let streams = std::mem::take(&mut p.streams);
        let manifest = &p.shared.classifier.manifest;
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            daemon: format!("drsnd {}", env!("CARGO_PKG_VERSION")),
            model: ModelInfo::from(manifest),
            denoiser: denoiser_info(&p),
            streams: streams.iter().map(stream_info).collect(),
        };
        let bus = Bus::new(
            hello,
            p.cfg.socket.client_queue,
            streams.iter().map(|s| s.hub.clone()).collect(),
        );
        let swaps = p.workers.iter().map(|w| w.swap.clone()).collect();
        Self {
            model: ModelRef::from(manifest),
            p,
            started: Instant::now(),
            bus,
            sinks: Sinks::default(),
            streams,
            swaps,
            reload: None,
        }
    }

    /// One snapshot of every stream, with what each sink adds: the
    /// message every sink renders (`status`, `/api/status`, MQTT).
    fn status(&self, state: &str) -> Message {
        let mut st = Status {
            state: state.to_string(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            model: self.model.clone(),
            streams: self.streams.iter().map(stream_status).collect(),
            clients: Vec::new(),
            reload: self.reload.clone(),
            mqtt: None,
            notify: Vec::new(),
            history: None,
        };
        self.sinks.report(&mut st);
        Message::Status(st)
    }

    fn announce_ready(&self) {
        let what = format!(
            "{} stream(s) on {}",
            self.streams.len(),
            self.p.cfg.socket.path.display()
        );
        tracing::info!("serving {what}");
        notify("READY=1");
        notify(&format!("STATUS=serving {what}"));
    }

    /// Control, the status tick and the watchdog, until told to stop.
    async fn serve_until_stopped(&mut self, control: &mut mpsc::UnboundedReceiver<Control>) {
        let every = Duration::from_millis(self.p.cfg.socket.status_interval_ms.max(100));
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        // systemd's watchdog: ping at half the period, but only while every
        // worker that is still running has shown a recent heartbeat.
        let watchdog = crate::notify::watchdog_interval();
        let mut dog = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |d| d / 2));
        loop {
            tokio::select! {
                c = control.recv() => match c {
                    Some(Control::Reload) => {
                        self.reload().await;
                        self.bus.send(&self.status("running"));
                    }
                    Some(Control::Stop) | None => break,
                },
                _ = tick.tick() => self.bus.send(&self.status("running")),
                _ = dog.tick(), if watchdog.is_some() => {
                    let limit = watchdog.map_or(Duration::ZERO, |d| d / 2);
                    self.feed_watchdog(limit);
                }
            }
        }
    }

    fn feed_watchdog(&self, limit: Duration) {
        let limit = limit.as_nanos() as u64;
        let now = crate::clock::mono_ns();
        let alive = self.streams.iter().all(|s| {
            s.hub.ended.load(Relaxed)
                || now.saturating_sub(s.hub.heartbeat_ns.load(Relaxed)) < limit
        });
        if alive {
            notify("WATCHDOG=1");
        } else {
            tracing::error!("a stream worker is stalled; withholding the watchdog ping");
        }
    }

    /// SIGHUP: everything is prepared beside the running path first; only
    /// if all of it is ready does every stream swap (see `reload`).
    async fn reload(&mut self) {
        let at_uptime_s = self.started.elapsed().as_secs_f64();
        let outcome = match self.p.reload.clone() {
            None => Err("no config to reload".to_string()),
            Some(f) => {
                let running = self.p.cfg.clone();
                let current = self.p.shared.classifier.manifest.clone();
                let cells = self.bus.hubs.iter().map(|s| s.links()).collect();
                let job = move || reload::prepare(&*f, &running, &current, cells);
                match tokio::task::spawn_blocking(job).await {
                    Ok(Ok(ready)) => Ok(self.hand_out(ready)),
                    Ok(Err(e)) => Err(format!(
                        "reload failed, still running {} {} on every stream: {e:#}",
                        self.model.name, self.model.version
                    )),
                    Err(e) => Err(format!("reload failed: {e}")),
                }
            }
        };
        match &outcome {
            Ok(msg) => tracing::info!("reload: {msg}"),
            Err(msg) => tracing::error!("{msg}"),
        }
        self.reload = Some(ReloadStatus {
            ok: outcome.is_ok(),
            message: outcome.unwrap_or_else(|e| e),
            at_uptime_s,
        });
    }

    /// Every stream gets its new analyses; subscribers get a new hello.
    fn hand_out(&mut self, ready: reload::PreparedReload) -> String {
        for (tx, a) in self.swaps.iter().zip(ready.per_stream) {
            // Fails only for a stream whose worker has ended: nothing to swap.
            let _ = tx.send(a);
        }
        let m = &ready.manifest;
        self.model = ModelRef::from(m);
        self.p.shared.classifier.manifest = m.clone();
        let denoiser = ready
            .denoiser
            .as_ref()
            .map(|d| DenoiserInfo::new(d, self.p.cfg.denoise_socket_dir()));
        self.bus.set_models(ModelInfo::from(m), denoiser);
        reload::summary(m, &ready.notes)
    }

    /// Stops capture first, so that everything captured is in the rings
    /// before the workers make their last pass; then lets the workers and
    /// the queue drain.
    async fn shut_down(
        &self,
        mut running: Vec<Running>,
        pool: Pool,
        drain: tokio::task::JoinHandle<()>,
    ) {
        tracing::info!("stopping: draining captured samples");
        notify("STOPPING=1");
        self.p.source_stop.store(true, Relaxed);
        let source_threads: Vec<_> = running.iter_mut().filter_map(|r| r.thread.take()).collect();
        drop(running); // closes cpal streams
        let deadline = Instant::now() + Duration::from_millis(500);
        while source_threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.p.stop.store(true, Relaxed);
        pool.wake_all();
        let joined = tokio::task::spawn_blocking(move || pool.join());
        // The drain ends once every worker has let go of its publisher and
        // everything queued is broadcast.
        let drained = async {
            let _ = joined.await;
            let _ = drain.await;
        };
        if tokio::time::timeout(Duration::from_millis(1500), drained)
            .await
            .is_err()
        {
            tracing::warn!("stream workers did not finish draining in time");
        }
    }

    /// Once the workers are done: the snapshots and state files they
    /// handed over are written (for at most 3 s: a disk may hang).
    async fn stop_recorder(&mut self) {
        let Some(t) = self.p.recorder_thread.take() else {
            return;
        };
        let r = self.p.recorder.clone();
        let stopped = tokio::task::spawn_blocking(move || r.stop(t));
        if tokio::time::timeout(Duration::from_secs(3), stopped)
            .await
            .is_err()
        {
            tracing::warn!("the recorder did not finish its writes in time");
        }
    }
}

fn denoiser_info(p: &Prepared) -> Option<DenoiserInfo> {
    let d = p.shared.denoiser.as_ref()?;
    Some(DenoiserInfo::new(&d.manifest, p.cfg.denoise_socket_dir()))
}

fn stream_info(s: &StreamHandle) -> StreamInfo {
    let (machine, machine_since) = s.hub.machine();
    StreamInfo {
        machine,
        machine_since,
        name: s.hub.name.clone(),
        source: s.hub.source.clone(),
        channel: s.hub.channel,
        source_rate: s.hub.source_rate,
        hop: s.hub.hop,
        units: s.units.clone(),
        bearing: s.bearing.clone(),
    }
}
