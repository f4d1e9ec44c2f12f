//! The history sink: every stream's frames summed up into 10 s rows and
//! its events, written to the store (`history::Store`) once per
//! `flush-s`, and its trend judged every `trend-interval-s`; a change
//! of trend is an event on the bus like any other.
//!
//! Two parts, so that neither a slow disk nor SQLite ever holds up the
//! bus: a task reads the bus and cuts rows (`Summariser`, cheap), and a
//! thread owns the store and the trend watchers. Between them a bounded
//! queue: a row that finds it full is lost and counted, as is a backlog
//! that outgrows [`MAX_PENDING`] while writes fail (a full disk).

use super::{Bus, Kind, Running, Shutdown, Sink};
use crate::config::{Config, HistoryConfig};
use crate::history::{
    self,
    trend::{Reference, Watcher},
    Digest, EventRow, Retention, Row, Store, Summariser,
};
use crate::monitor::TrendStatus;
use crate::protocol::{EventMsg, HistoryStatus, Message};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rows and events the queue to the writer holds (an hour of 16 streams).
const QUEUE: usize = 16 * 360;
/// Rows and events kept for the next write while writes fail: a day of
/// 16 streams; beyond it the oldest go, counted.
const MAX_PENDING: usize = 16 * 8640;

/// The store opened at start (a config error otherwise), not yet serving.
pub struct Prepared {
    store: Store,
    cfg: HistoryConfig,
}

/// Opens the configured store: a missing or read-only directory is an
/// error naming `[history] path`.
pub fn prepare(cfg: &Config) -> Result<Option<Prepared>> {
    let Some(h) = &cfg.history else {
        return Ok(None);
    };
    let path = cfg
        .history_path()
        .context("[history] path: not set, and no [monitor] state-dir to put it in")?;
    check_dir(&path)?;
    let store = Store::open(&path, Retention::from(h))
        .with_context(|| format!("[history] path = {:?}", path.display().to_string()))?;
    Ok(Some(Prepared {
        store,
        cfg: h.clone(),
    }))
}

/// The store's directory exists and takes a new file (SQLite's WAL and
/// journal are files beside it).
fn check_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let shown = path.display().to_string();
    if !dir.is_dir() {
        anyhow::bail!(
            "[history] path = {shown:?}: the directory {} does not exist",
            dir.display()
        );
    }
    let probe = dir.join(format!(".drsnd-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "[history] path = {shown:?}: cannot write in {}",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// What the sink has done, for `status` and `/metrics`.
#[derive(Default)]
pub struct Stats {
    pub path: String,
    pub rows_written: AtomicU64,
    pub events_written: AtomicU64,
    pub pending: AtomicU64,
    pub lost: AtomicU64,
    pub frames_missed: AtomicU64,
    pub write_errors: AtomicU64,
    pub bytes: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    pub moved_aside: Option<String>,
}

impl Stats {
    pub fn status(&self) -> HistoryStatus {
        HistoryStatus {
            path: self.path.clone(),
            rows_written: self.rows_written.load(Relaxed),
            events_written: self.events_written.load(Relaxed),
            pending: self.pending.load(Relaxed),
            lost: self.lost.load(Relaxed),
            frames_missed: self.frames_missed.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            last_error: self.last_error.lock().ok().and_then(|g| g.clone()),
            bytes: self.bytes.load(Relaxed),
            moved_aside: self.moved_aside.clone(),
        }
    }
}

pub struct History {
    bus: Arc<Bus>,
    ready: Option<Prepared>,
    stats: Arc<Stats>,
    path: PathBuf,
}

impl History {
    pub fn new(bus: Arc<Bus>, ready: Prepared) -> Self {
        let stats = Arc::new(Stats {
            path: ready.store.path().display().to_string(),
            moved_aside: ready
                .store
                .moved_aside
                .as_ref()
                .map(|p| p.display().to_string()),
            ..Stats::default()
        });
        Self {
            bus,
            path: ready.store.path().to_path_buf(),
            ready: Some(ready),
            stats,
        }
    }

    /// What the page's sink reads: the file, the counters, and the ISO
    /// zone limits to draw behind the velocity.
    pub fn access(&self, iso_zones: [f64; 3]) -> Access {
        Access {
            path: self.path.clone(),
            stats: self.stats.clone(),
            iso_zones,
        }
    }
}

/// The history as `/api/history` and `/metrics` read it.
#[derive(Clone)]
pub struct Access {
    pub path: PathBuf,
    pub stats: Arc<Stats>,
    pub iso_zones: [f64; 3],
}

impl Sink for History {
    fn name(&self) -> &'static str {
        "history"
    }

    /// Long enough for the last write of a slow SD card.
    fn grace(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn start(&mut self, shutdown: Shutdown) -> Result<Running> {
        let ready = self
            .ready
            .take()
            .context("the history sink was started twice")?;
        let (tx, rx) = sync_channel(QUEUE);
        let writer = Writer::new(ready, self.bus.clone(), self.stats.clone());
        let thread = std::thread::Builder::new()
            .name("history".into())
            .spawn(move || writer.run(rx))
            .context("cannot start the history writer thread")?;
        let reader = Reader::new(&self.bus, tx, self.stats.clone());
        let bus = self.bus.clone();
        Ok(Running::Task(tokio::spawn(async move {
            reader.run(&bus, shutdown).await;
            // The reader's queue is closed: the writer writes what it holds and ends.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        })))
    }

    fn report(&self, status: &mut crate::protocol::Status) {
        status.history = Some(self.stats.status());
    }
}

/// From the reader to the writer.
enum Item {
    /// A closed row, and the stream time (s) at its end (None: closed
    /// at the shutdown).
    Row(Row, Option<f64>),
    Event(EventRow),
}

/// The bus's side: frames into rows, events as they are.
struct Reader {
    rx: tokio::sync::broadcast::Receiver<Arc<super::Outgoing>>,
    tx: SyncSender<Item>,
    stats: Arc<Stats>,
    rows: HashMap<String, Summariser>,
    /// From the hello: the model's rate, frame length and families.
    model: (f64, u64, Vec<String>),
}

impl Reader {
    fn new(bus: &Bus, tx: SyncSender<Item>, stats: Arc<Stats>) -> Self {
        let mut r = Self {
            rx: bus.tx.subscribe(),
            tx,
            stats,
            rows: HashMap::new(),
            model: (1.0, 0, Vec::new()),
        };
        r.read_hello(bus);
        for hub in &bus.hubs {
            // No state until the first event, as `history import` starts.
            let s = Summariser::new(&hub.name, r.model.2.clone(), None);
            r.rows.insert(hub.name.clone(), s);
        }
        r
    }

    fn read_hello(&mut self, bus: &Bus) {
        if let Ok(h) = bus.hello.lock() {
            let m = &h.model;
            self.model = (
                m.sample_rate.max(1) as f64,
                m.frame_length as u64,
                m.families.clone(),
            );
        }
    }

    async fn run(mut self, bus: &Bus, mut shutdown: Shutdown) {
        let mut last_id = 0;
        loop {
            let m = tokio::select! {
                _ = shutdown.raised() => break,
                m = self.rx.recv() => m,
            };
            if let Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) = &m {
                self.stats.frames_missed.fetch_add(*n, Relaxed);
            }
            let Some(batch) = bus.catch_up(m, &mut last_id) else {
                break;
            };
            for out in batch {
                self.take(bus, &out);
            }
        }
        // What the bus still holds (the last frames and the goodbye).
        while let Ok(out) = self.rx.try_recv() {
            self.take(bus, &out);
        }
        let open: Vec<Row> = self.rows.values_mut().filter_map(|s| s.close()).collect();
        for r in open {
            self.send(Item::Row(r, None));
        }
    }

    fn take(&mut self, bus: &Bus, out: &super::Outgoing) {
        match out.kind {
            Kind::Frame => self.frame(&out.line),
            Kind::Event => self.event(&out.line),
            Kind::Other => self.read_hello(bus),
            Kind::Status => {}
        }
    }

    fn frame(&mut self, line: &str) {
        let Some(d) = Digest::parse(line) else {
            return;
        };
        let (rate, frame_len, families) = &self.model;
        // Rows are cut on stream time, as `history import` cuts them.
        let key = (d.sample_index + frame_len) as f64 / rate;
        let sum = self
            .rows
            .entry(d.stream.clone())
            .or_insert_with(|| Summariser::new(&d.stream, families.clone(), None));
        if let Some(row) = sum.push(&d, key, d.time) {
            self.send(Item::Row(row, Some(key)));
        }
    }

    fn event(&mut self, line: &str) {
        let Ok(Message::Event(e)) = serde_json::from_str::<Message>(line) else {
            return;
        };
        if let (Some(s), Some(sum)) = (e.to.machine(), self.rows.get_mut(&e.stream)) {
            sum.set_state(s.name());
        }
        self.send(Item::Event(EventRow::from_event(&e)));
    }

    fn send(&self, item: Item) {
        if self.tx.try_send(item).is_err() {
            self.stats.lost.fetch_add(1, Relaxed);
        }
    }
}

/// The store's side: batched writes and the trend of every stream.
struct Writer {
    store: Store,
    cfg: HistoryConfig,
    bus: Arc<Bus>,
    stats: Arc<Stats>,
    watchers: HashMap<String, Watcher>,
    /// The newest row's end, in stream seconds, per stream (trend events).
    stream_s: HashMap<String, f64>,
    /// Each stream's trend reference as kept in the store.
    references: HashMap<String, Reference>,
    rows: Vec<Row>,
    events: Vec<EventRow>,
}

impl Writer {
    fn new(ready: Prepared, bus: Arc<Bus>, stats: Arc<Stats>) -> Self {
        Self {
            store: ready.store,
            cfg: ready.cfg,
            bus,
            stats,
            watchers: HashMap::new(),
            stream_s: HashMap::new(),
            references: HashMap::new(),
            rows: Vec::new(),
            events: Vec::new(),
        }
    }

    fn run(mut self, rx: Receiver<Item>) {
        self.resume();
        let flush_every = Duration::from_secs_f64(self.cfg.flush_s.max(0.1));
        let trend_every = Duration::from_secs_f64(self.cfg.trend_interval_s.max(0.1));
        let (mut next_flush, mut next_trend) = (Instant::now() + flush_every, Instant::now());
        loop {
            let wait = next_flush
                .min(next_trend)
                .saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(item) => self.take(item),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_trend {
                self.judge_trends();
                next_trend = Instant::now() + trend_every;
            }
            if Instant::now() >= next_flush {
                self.flush();
                next_flush = Instant::now() + flush_every;
            }
        }
        self.flush();
    }

    /// Each stream's watcher from the rows already stored, carrying on
    /// from the trend it last announced: a restart neither forgets a
    /// degrading machine nor announces it again.
    fn resume(&mut self) {
        for hub in &self.bus.hubs {
            let mut w = Watcher::default();
            if let Ok(rows) = self
                .store
                .rows(&hub.name, history::STEPS[0], f64::MIN, f64::MAX)
            {
                rows.into_iter().for_each(|r| w.push(r));
            }
            let events = self.store.events(&hub.name, f64::MIN, f64::MAX);
            let degrading = events
                .into_iter()
                .flatten()
                .rfind(|e| e.kind == "trend")
                .is_some_and(|e| e.to == "degrading");
            w.resume(degrading);
            if let Ok(Some(r)) = self.store.reference(&hub.name) {
                w.restore_reference(r);
                self.references.insert(hub.name.clone(), r);
            }
            self.watchers.insert(hub.name.clone(), w);
        }
    }

    fn take(&mut self, item: Item) {
        match item {
            Item::Row(r, stream_s) => {
                self.watchers
                    .entry(r.stream.clone())
                    .or_default()
                    .push(r.clone());
                if let Some(s) = stream_s {
                    self.stream_s.insert(r.stream.clone(), s);
                }
                self.rows.push(r);
            }
            Item::Event(e) => self.events.push(e),
        }
        self.keep_pending_bounded();
    }

    /// While writes fail, the oldest rows go first (counted).
    fn keep_pending_bounded(&mut self) {
        let over = (self.rows.len() + self.events.len()).saturating_sub(MAX_PENDING);
        if over > 0 {
            let n = over.min(self.rows.len());
            self.rows.drain(..n);
            self.stats.lost.fetch_add(n as u64, Relaxed);
        }
        let pending = self.rows.len() + self.events.len();
        self.stats.pending.store(pending as u64, Relaxed);
    }

    fn flush(&mut self) {
        if self.rows.is_empty() && self.events.is_empty() {
            return;
        }
        match self
            .store
            .write(&self.rows, &self.events, crate::clock::wall_s())
        {
            Ok(()) => {
                let s = &self.stats;
                s.rows_written.fetch_add(self.rows.len() as u64, Relaxed);
                s.events_written
                    .fetch_add(self.events.len() as u64, Relaxed);
                s.pending.store(0, Relaxed);
                if let Ok(b) = self.store.used_bytes() {
                    s.bytes.store(b, Relaxed);
                }
                self.rows.clear();
                self.events.clear();
            }
            Err(e) => {
                let n = self.stats.write_errors.fetch_add(1, Relaxed);
                let why = format!("{e:#}");
                // Once, then every 60th: a full disk fails every flush.
                if n.is_multiple_of(60) {
                    tracing::error!(
                        "history store {}: {why}; {} rows and events kept for the next write",
                        self.store.path().display(),
                        self.rows.len() + self.events.len()
                    );
                }
                if let Ok(mut g) = self.stats.last_error.lock() {
                    *g = Some(why);
                }
            }
        }
    }

    /// Every stream's trend now; a change is an event on the bus (which
    /// comes back through the reader to be stored).
    fn judge_trends(&mut self) {
        for hub in &self.bus.hubs {
            let Some(w) = self.watchers.get_mut(&hub.name) else {
                continue;
            };
            let was = w.degrading();
            let Some(at) = w.newest().map(|t| t + history::STEP) else {
                continue;
            };
            let Some(a) = w.check(at) else {
                continue;
            };
            if let Some(r) = w.reference() {
                if self.references.get(&hub.name) != Some(&r) {
                    match self.store.save_reference(&hub.name, &r) {
                        Ok(()) => {
                            self.references.insert(hub.name.clone(), r);
                        }
                        Err(e) => {
                            tracing::warn!("history: {}: reference not kept: {e:#}", hub.name)
                        }
                    }
                }
            }
            if let Ok(mut g) = hub.trend.lock() {
                *g = Some(a);
            }
            if a.degrading != was {
                let stream_s = self.stream_s.get(&hub.name).copied().unwrap_or(0.0);
                let e = EventMsg::trend(hub.name.clone(), a.degrading, a.evidence, a.at, stream_s);
                log_trend(&e, &a);
                self.bus.send(&Message::Event(e));
            }
        }
    }
}

fn log_trend(e: &EventMsg, a: &TrendStatus) {
    let t = &a.evidence;
    let eta = t
        .eta_h
        .map_or_else(|| "none".to_string(), |h| format!("{h:.1} h"));
    tracing::warn!(
        "{}: trend {} (anomaly level {:.3}, reference {:.3}, z {:.1}, time to alarm {eta})",
        e.stream,
        e.to.name(),
        t.level,
        t.reference,
        t.z
    );
}
