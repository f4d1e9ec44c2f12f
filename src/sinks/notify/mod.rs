//! Alarm notifications (`[[notify]]`, docs/fleet.md): one more reader of
//! the bus, on a thread of its own ("notify"), so a slow or hung receiver
//! never holds a frame up. Each event is matched to the kinds each target
//! asks for, debounced per stream and kind, and queued to that target's
//! delivery task, which retries with backoff. Every outcome is counted
//! (`status`, /metrics).

mod deliver;
mod message;

use super::{Bus, Kind, Running, Shutdown, Sink};
use crate::config::{AlarmKind, NotifyConfig};
use crate::monitor::State;
use crate::protocol::{EventMsg, EventState, Message, NotifyStatus, Status, TrendState, ZoneState};
use anyhow::{Context, Result};
use deliver::Target;
use message::Notification;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Notifications waiting for one target, at most; more are dropped (counted).
const QUEUE: usize = 64;
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// One target's counters.
#[derive(Debug, Default)]
pub struct Stats {
    pub name: String,
    pub target: String,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub suppressed: AtomicU64,
    pub dropped: AtomicU64,
    pub pending: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Stats {
    pub fn status(&self) -> NotifyStatus {
        NotifyStatus {
            name: self.name.clone(),
            target: self.target.clone(),
            sent: self.sent.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retries: self.retries.load(Relaxed),
            suppressed: self.suppressed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            pending: self.pending.load(Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = e;
        }
    }
}

/// The targets with their files read (exit 78 at start on an error).
pub struct Prepared(Vec<Target>);

impl Prepared {
    /// One line per target: its name, where it goes and on what.
    pub fn describe(&self) -> Vec<String> {
        (self.0.iter())
            .map(|t| {
                let on: Vec<_> = t.on.iter().map(|k| k.as_str()).collect();
                format!("{} -> {} on {}", t.name, t.describe(), on.join(", "))
            })
            .collect()
    }
}

pub fn prepare(cfgs: &[NotifyConfig]) -> Result<Prepared> {
    let targets = cfgs
        .iter()
        .enumerate()
        .map(|(i, c)| Target::prepare(c, i))
        .collect::<Result<_>>()?;
    Ok(Prepared(targets))
}

/// The kind an event is, if any a target can ask for.
pub fn kind_of(e: &EventMsg) -> Option<AlarmKind> {
    let alarm = |s: &EventState| {
        matches!(
            s,
            EventState::Machine(State::Fault { .. } | State::Anomaly | State::NoSignal { .. })
        )
    };
    match &e.to {
        EventState::Machine(State::Fault { .. }) => Some(AlarmKind::Fault),
        EventState::Machine(State::Anomaly) => Some(AlarmKind::Anomaly),
        EventState::Machine(State::NoSignal { .. }) => Some(AlarmKind::NoSignal),
        EventState::Machine(State::Healthy) if alarm(&e.from) => Some(AlarmKind::Recovered),
        EventState::Zone(ZoneState::IsoZone { zone }) => match zone.as_deref() {
            Some("C") => Some(AlarmKind::ZoneC),
            Some("D") => Some(AlarmKind::ZoneD),
            _ => None,
        },
        EventState::Trend(TrendState::Degrading) => Some(AlarmKind::Degrading),
        _ => None,
    }
}

/// At most one notification per (target, stream, kind) per interval; the
/// ones held back are counted and told with the next.
#[derive(Default)]
struct Debounce(HashMap<(usize, String, AlarmKind), (Instant, u64)>);

impl Debounce {
    /// Some(held back since the last) if this one goes out.
    fn pass(
        &mut self,
        key: (usize, String, AlarmKind),
        interval: Duration,
        now: Instant,
    ) -> Option<u64> {
        match self.0.get_mut(&key) {
            Some((last, held)) if now.duration_since(*last) < interval => {
                *held += 1;
                None
            }
            Some((last, held)) => {
                *last = now;
                Some(std::mem::take(held))
            }
            None => {
                self.0.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

pub struct Notify {
    bus: Arc<Bus>,
    targets: Option<Vec<Target>>,
    stats: Arc<Vec<Arc<Stats>>>,
}

impl Notify {
    pub fn new(bus: Arc<Bus>, prepared: Prepared) -> Self {
        // Events raised before the sink reads them are not lost.
        bus.keep_events(1000);
        let stats = prepared
            .0
            .iter()
            .map(|t| {
                Arc::new(Stats {
                    name: t.name.clone(),
                    target: t.describe(),
                    ..Stats::default()
                })
            })
            .collect();
        Self {
            bus,
            targets: Some(prepared.0),
            stats: Arc::new(stats),
        }
    }

    /// The counters, for /metrics.
    pub fn stats(&self) -> Arc<Vec<Arc<Stats>>> {
        self.stats.clone()
    }
}

impl Sink for Notify {
    fn name(&self) -> &'static str {
        "notify"
    }

    /// What is queued gets 2 s after the stop, then the thread ends.
    fn grace(&self) -> Duration {
        Duration::from_secs(3)
    }

    fn start(&mut self, shutdown: Shutdown) -> Result<Running> {
        let targets = self.targets.take().context("[[notify]]: started twice")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("[[notify]]: cannot start its runtime")?;
        let (bus, stats) = (self.bus.clone(), self.stats.clone());
        let rx = bus.tx.subscribe();
        let thread = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || rt.block_on(run(bus, rx, targets, stats, shutdown)))
            .context("[[notify]]: cannot start its thread")?;
        Ok(Running::Threads(vec![thread]))
    }

    fn report(&self, status: &mut Status) {
        status.notify = self.stats.iter().map(|s| s.status()).collect();
    }
}

struct Route {
    on: Vec<AlarmKind>,
    interval: Duration,
    queue: mpsc::Sender<Notification>,
}

async fn run(
    bus: Arc<Bus>,
    mut rx: tokio::sync::broadcast::Receiver<Arc<super::Outgoing>>,
    targets: Vec<Target>,
    stats: Arc<Vec<Arc<Stats>>>,
    mut shutdown: Shutdown,
) {
    let mut routes = Vec::new();
    for (t, st) in targets.into_iter().zip(stats.iter().cloned()) {
        let (tx, queue) = mpsc::channel(QUEUE);
        routes.push(Route {
            on: t.on.clone(),
            interval: t.interval,
            queue: tx,
        });
        tokio::spawn(deliver_all(t, queue, st));
    }
    let node = crate::config::hostname();
    let mut debounce = Debounce::default();
    let mut last_id = 0;
    loop {
        tokio::select! {
            _ = shutdown.raised() => break,
            m = rx.recv() => {
                let Some(batch) = bus.catch_up(m, &mut last_id) else { break };
                for m in batch.iter().filter(|m| m.kind == Kind::Event) {
                    if let Ok(Message::Event(e)) = serde_json::from_str::<Message>(&m.line) {
                        route(&routes, &stats, &mut debounce, &node, e);
                    }
                }
            }
        }
    }
    // What is queued gets a moment; a hung receiver does not hold the stop.
    drop(routes);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while stats.iter().any(|s| s.pending.load(Relaxed) > 0) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn route(routes: &[Route], stats: &[Arc<Stats>], debounce: &mut Debounce, node: &str, e: EventMsg) {
    let Some(kind) = kind_of(&e) else { return };
    let now = Instant::now();
    for (i, (r, st)) in routes.iter().zip(stats).enumerate() {
        if !r.on.contains(&kind) {
            continue;
        }
        let Some(suppressed) = debounce.pass((i, e.stream.clone(), kind), r.interval, now) else {
            st.suppressed.fetch_add(1, Relaxed);
            continue;
        };
        let n = Notification {
            kind,
            node: node.to_string(),
            event: e.clone(),
            suppressed,
        };
        if r.queue.try_send(n).is_ok() {
            st.pending.fetch_add(1, Relaxed);
        } else {
            st.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// One target's deliveries, in order, each retried with backoff.
async fn deliver_all(t: Target, mut queue: mpsc::Receiver<Notification>, st: Arc<Stats>) {
    while let Some(n) = queue.recv().await {
        let body = n.body(t.format);
        let mut wait = Duration::from_secs(1);
        for attempt in 0..=t.retries {
            match t.attempt(&body).await {
                Ok(()) => {
                    st.sent.fetch_add(1, Relaxed);
                    st.set_error(None);
                    break;
                }
                Err(e) if attempt == t.retries => {
                    tracing::warn!("[[notify]] {}: gave up on {}: {e}", t.name, n.title());
                    st.failed.fetch_add(1, Relaxed);
                    st.set_error(Some(e));
                }
                Err(e) => {
                    st.retries.fetch_add(1, Relaxed);
                    st.set_error(Some(e));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BACKOFF_MAX);
                }
            }
        }
        st.pending.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flapping_stream_notifies_once_per_interval_and_counts_the_rest() {
        let mut d = Debounce::default();
        let t0 = Instant::now();
        let key = || (0, "pump".to_string(), AlarmKind::Fault);
        let every = Duration::from_secs(60);
        assert_eq!(d.pass(key(), every, t0), Some(0));
        for s in 1..5 {
            assert_eq!(d.pass(key(), every, t0 + Duration::from_secs(s)), None);
        }
        let other = (0, "fan".to_string(), AlarmKind::Fault);
        assert_eq!(
            d.pass(other, every, t0),
            Some(0),
            "another stream is its own"
        );
        assert_eq!(
            d.pass(key(), every, t0 + every),
            Some(4),
            "the next tells of 4 held back"
        );
        assert_eq!(
            d.pass(key(), Duration::ZERO, t0 + every),
            Some(0),
            "interval 0: every one"
        );
    }
}
