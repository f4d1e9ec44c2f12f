//! The sink's loop: connect, send what the spool owes and what the bus
//! brings, note every PUBACK in the spool; on any error drop the client,
//! wait (exponential backoff with jitter, 0.5 s to 30 s) while still
//! spooling, and connect anew.

use super::homeassistant;
use super::spool::Spool;
use super::topics::{self, FrameDigest, Summary};
use super::{MqttStats, Settings};
use crate::config::FramesMode;
use crate::protocol::{EventMsg, EventState, Message};
use crate::sinks::Shutdown;
use crate::sinks::{Bus, Kind, Outgoing};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing as Out, Packet,
    QoS,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Spool entries handed to the client and not yet acknowledged, at most.
const WINDOW: usize = 64;
/// After a stop, what is owed gets this long to be acknowledged.
const FLUSH: Duration = Duration::from_secs(2);
const BACKOFF_MIN: f64 = 0.5;
const BACKOFF_MAX: f64 = 30.0;

/// The state of the sink across connections.
struct Sink {
    bus: Arc<Bus>,
    s: Settings,
    spool: Spool,
    stats: Arc<MqttStats>,
    rx: broadcast::Receiver<Arc<Outgoing>>,
    last_id: u64,
    /// The Home Assistant config topics published for the current streams.
    ha_configs: std::collections::HashSet<String>,
    summaries: HashMap<String, Summary>,
    /// Frame messages ready for the next send (summaries or frames).
    frames: Vec<(String, String)>,
    backoff: Backoff,
}

/// One connection: the client, and which publish is which.
struct Conn {
    client: AsyncClient,
    events: EventLoop,
    /// Publishes handed over, not yet written: Some(spool id) for entries.
    handed: VecDeque<Option<u64>>,
    /// Written entries by packet id, awaiting PUBACK.
    inflight: HashMap<u16, u64>,
    /// The last spool id handed over on this connection.
    sent_through: u64,
    up: bool,
}

enum Stop {
    /// Why, and whether the connection had come up.
    Lost(String, bool),
    Shutdown,
}

pub async fn run(
    bus: Arc<Bus>,
    rx: broadcast::Receiver<Arc<Outgoing>>,
    s: Settings,
    spool: Spool,
    stats: Arc<MqttStats>,
    mut shutdown: Shutdown,
) {
    let mut sink = Sink {
        bus,
        s,
        spool,
        stats,
        rx,
        last_id: 0,
        ha_configs: Default::default(),
        summaries: HashMap::new(),
        frames: Vec::new(),
        backoff: Backoff::new(),
    };
    sink.note_spool();
    if sink.spool.unreadable > 0 {
        sink.stats.set_error(Some(format!(
            "{} unreadable spool line(s) skipped at start",
            sink.spool.unreadable
        )));
    }
    let mut failures = 0u32;
    let mut last_logged = String::new();
    loop {
        sink.stats.connect_attempts.fetch_add(1, Relaxed);
        match sink.connected(&mut shutdown).await {
            Stop::Shutdown => return,
            Stop::Lost(why, was_up) => {
                sink.stats.connected.store(false, Relaxed);
                if was_up {
                    failures = 0;
                }
                let msg = format!("{}: {why}", sink.s.cfg.broker);
                // Logged when it changes, not on every attempt.
                if msg != last_logged {
                    tracing::warn!("[mqtt] {msg}; retrying with backoff");
                    last_logged = msg.clone();
                }
                sink.stats.set_error(Some(msg));
            }
        }
        let wait = sink.backoff.wait(failures);
        failures = failures.saturating_add(1);
        if sink.wait(wait, &mut shutdown).await {
            return;
        }
    }
}

impl Sink {
    fn options(&self) -> MqttOptions {
        let will = LastWill::new(
            self.s.topics.status(),
            topics::will(&self.s.node),
            QoS::AtLeastOnce,
            true,
        );
        self.s.options(&self.s.client_id, will)
    }

    /// One connection, until it is lost or the daemon stops.
    async fn connected(&mut self, shutdown: &mut Shutdown) -> Stop {
        // Room for the retained messages of every stream (discovery) too.
        let streams = self.bus.hello_now().map_or(0, |h| h.streams.len());
        let (client, events) = AsyncClient::new(self.options(), 4 * WINDOW + 64 + 8 * streams);
        let mut c = Conn {
            client,
            events,
            handed: VecDeque::new(),
            inflight: HashMap::new(),
            sent_through: 0,
            up: false,
        };
        let every = Duration::from_secs_f64(self.s.cfg.frame_interval_s);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.raised() => {
                    self.finish(&mut c).await;
                    return Stop::Shutdown;
                }
                ev = c.events.poll() => {
                    if let Err(e) = self.on_event(&mut c, ev) {
                        return Stop::Lost(e, c.up);
                    }
                }
                m = self.rx.recv() => {
                    if self.on_bus(m).is_err() {
                        // The bus is gone: the daemon is stopping.
                        self.finish(&mut c).await;
                        return Stop::Shutdown;
                    }
                    self.send(&mut c);
                }
                _ = tick.tick() => {
                    self.summarise();
                    self.send(&mut c);
                }
            }
        }
    }

    fn on_event(&mut self, c: &mut Conn, ev: Result<Event, ConnectionError>) -> Result<(), String> {
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                c.up = true;
                self.stats.connected.store(true, Relaxed);
                self.stats.set_error(None);
                tracing::info!("[mqtt] connected to {}", self.s.cfg.broker);
                let now = crate::clock::wall_s();
                let hello = self.bus.hello_now();
                let retained = [
                    (
                        self.s.topics.status(),
                        topics::status(true, &self.s.node, now),
                    ),
                    (
                        self.s.topics.meta(),
                        hello.map_or_else(String::new, |h| {
                            topics::meta(
                                &h,
                                &self.s.node,
                                &self.s.cfg.site,
                                self.s.frames_mode(),
                                self.s.cfg.frame_interval_s,
                            )
                        }),
                    ),
                ];
                for (topic, payload) in retained {
                    retain(c, topic, payload);
                }
                if self.s.cfg.homeassistant {
                    self.discovery(c);
                }
                self.send(c);
            }
            Ok(Event::Incoming(Packet::Publish(p))) if self.s.cfg.homeassistant => {
                self.on_discovery_message(c, &p.topic, &p.payload);
            }
            Ok(Event::Outgoing(Out::Publish(pkid))) => {
                if let Some(Some(id)) = c.handed.pop_front() {
                    c.inflight.insert(pkid, id);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => {
                if let Some(id) = c.inflight.remove(&a.pkid) {
                    if let Err(e) = self.spool.ack(id) {
                        tracing::error!("{e:#}");
                    }
                    self.stats.acknowledged.fetch_add(1, Relaxed);
                    self.note_spool();
                    self.send(c);
                }
            }
            Ok(_) => {}
            Err(e) => return Err(describe(&e)),
        }
        Ok(())
    }

    /// Home Assistant discovery: every stream's configs (retained), and
    /// a look at the node's configs on the broker to clear stale ones.
    fn discovery(&mut self, c: &mut Conn) {
        let prefix = &self.s.cfg.homeassistant_prefix;
        let _ = c
            .client
            .try_subscribe(homeassistant::filter(prefix, &self.s.node), QoS::AtMostOnce);
        // HA says `online` on this topic when it starts: configs again then.
        let _ = c
            .client
            .try_subscribe(format!("{prefix}/status"), QoS::AtMostOnce);
        self.publish_configs(c);
    }

    fn publish_configs(&mut self, c: &mut Conn) {
        let Some(hello) = self.bus.hello_now() else {
            return;
        };
        let prefix = &self.s.cfg.homeassistant_prefix;
        let configs = homeassistant::configs(prefix, &self.s.node, &self.s.topics, &hello);
        self.ha_configs = configs.iter().map(|(t, _)| t.clone()).collect();
        for (topic, payload) in configs {
            retain(c, topic, payload);
        }
    }

    fn on_discovery_message(&mut self, c: &mut Conn, topic: &str, payload: &[u8]) {
        let prefix = &self.s.cfg.homeassistant_prefix;
        if topic == format!("{prefix}/status") {
            if payload == b"online" {
                self.publish_configs(c);
            }
        } else if homeassistant::is_config(prefix, &self.s.node, topic)
            && !payload.is_empty()
            && !self.ha_configs.contains(topic)
        {
            // A stream this node no longer has: HA removes its entity.
            retain(c, topic.to_string(), String::new());
        }
    }

    /// Takes one bus message (and, after a lag, the events it missed).
    fn on_bus(&mut self, m: Result<Arc<Outgoing>, broadcast::error::RecvError>) -> Result<(), ()> {
        let batch = self.bus.catch_up(m, &mut self.last_id).ok_or(())?;
        for m in batch {
            match m.kind {
                Kind::Event => self.spool_event(&m.line),
                Kind::Frame => self.take_frame(&m),
                _ => {}
            }
        }
        Ok(())
    }

    /// An event and the state it leads to, into the spool (synced) first.
    fn spool_event(&mut self, line: &str) {
        let Ok(Message::Event(e)) = serde_json::from_str::<Message>(line) else {
            return;
        };
        let node = self.s.node.clone();
        let ev: &EventMsg = &e;
        // A zone or trend event must not overwrite the machine's retained state.
        let retained = match ev.to {
            EventState::Zone(_) => self.s.topics.zone(&ev.stream),
            EventState::Trend(_) => self.s.topics.trend(&ev.stream),
            EventState::Machine(_) => self.s.topics.state(&ev.stream),
        };
        let r = self
            .spool
            .push(self.s.topics.event(&ev.stream), false, |id| {
                topics::event(id, &node, ev)
            })
            .and_then(|_| self.spool.push(retained, true, |id| topics::state(id, ev)));
        if let Err(e) = r {
            tracing::error!("{e:#}");
            self.stats.set_error(Some(format!("{e:#}")));
        }
        self.note_spool();
    }

    fn take_frame(&mut self, m: &Outgoing) {
        match self.s.cfg.frames {
            FramesMode::None => {}
            FramesMode::All => {
                let stream = m.stream.clone().unwrap_or_default();
                self.frames
                    .push((self.s.topics.frame(&stream), m.line.trim_end().to_string()));
            }
            FramesMode::Summary => {
                if let Ok(d) = serde_json::from_str::<FrameDigest>(&m.line) {
                    self.summaries.entry(d.stream.clone()).or_default().add(&d);
                }
            }
        }
    }

    fn summarise(&mut self) {
        for (stream, s) in &mut self.summaries {
            if let Some(p) = s.take(stream) {
                self.frames.push((self.s.topics.frame(stream), p));
            }
        }
    }

    /// Hands over frames (QoS 0) and owed entries up to the window.
    fn send(&mut self, c: &mut Conn) {
        if !c.up {
            self.drop_frames();
            return;
        }
        for (topic, payload) in self.frames.drain(..) {
            if c.client
                .try_publish(topic, QoS::AtMostOnce, false, payload)
                .is_ok()
            {
                c.handed.push_back(None);
                self.stats.frames_sent.fetch_add(1, Relaxed);
            } else {
                self.stats.frames_not_sent.fetch_add(1, Relaxed);
            }
        }
        while c.inflight.len() + c.handed.len() < WINDOW {
            let Some(e) = self.spool.next_after(c.sent_through) else {
                break;
            };
            let (id, topic, retain, payload) = (e.id, e.topic.clone(), e.retain, e.payload.clone());
            if c.client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .is_err()
            {
                break;
            }
            c.handed.push_back(Some(id));
            c.sent_through = id;
        }
    }

    fn drop_frames(&mut self) {
        let n = self.frames.len() as u64;
        self.frames.clear();
        self.stats.frames_not_sent.fetch_add(n, Relaxed);
    }

    /// A clean stop: what the bus still holds into the spool, a short while
    /// for what is owed, then `offline` (retained) and DISCONNECT.
    async fn finish(&mut self, c: &mut Conn) {
        while let Ok(m) = self.rx.try_recv() {
            let _ = self.on_bus(Ok(m));
        }
        self.send(c);
        let deadline = tokio::time::Instant::now() + FLUSH;
        let owed = |s: &Self, c: &Conn| s.spool.len() > 0 && c.up;
        while owed(self, c) {
            match tokio::time::timeout_at(deadline, c.events.poll()).await {
                Ok(ev) => {
                    if self.on_event(c, ev).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        if !c.up {
            return;
        }
        let offline = topics::status(false, &self.s.node, crate::clock::wall_s());
        let _ = c
            .client
            .try_publish(self.s.topics.status(), QoS::AtLeastOnce, true, offline);
        let _ = c.client.try_disconnect();
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Ok(ev)) = tokio::time::timeout_at(until, c.events.poll()).await {
            if matches!(ev, Event::Outgoing(Out::Disconnect)) {
                break;
            }
        }
        tracing::info!(
            "[mqtt] disconnected; {} entries stay spooled",
            self.spool.len()
        );
    }

    /// Waits out the backoff, still spooling what the bus brings; true if
    /// the daemon stops meanwhile.
    async fn wait(&mut self, d: Duration, shutdown: &mut Shutdown) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = shutdown.raised() => {
                    while let Ok(m) = self.rx.try_recv() {
                        let _ = self.on_bus(Ok(m));
                    }
                    return true;
                }
                _ = tokio::time::sleep_until(until) => return false,
                m = self.rx.recv() => {
                    if self.on_bus(m).is_err() {
                        return true;
                    }
                    self.summarise();
                    self.drop_frames();
                }
            }
        }
    }

    fn note_spool(&self) {
        self.stats
            .spool_entries
            .store(self.spool.len() as u64, Relaxed);
        self.stats.spool_bytes.store(self.spool.bytes(), Relaxed);
        self.stats.spool_dropped.store(self.spool.dropped, Relaxed);
    }
}

/// A retained QoS 1 message outside the spool (status, meta, discovery).
fn retain(c: &mut Conn, topic: String, payload: String) {
    if c.client
        .try_publish(topic, QoS::AtLeastOnce, true, payload)
        .is_ok()
    {
        c.handed.push_back(None);
    }
}

/// 0.5 s doubling to 30 s, each wait drawn from its upper half.
pub(super) struct Backoff(u64);

impl Backoff {
    pub fn new() -> Self {
        Self((crate::clock::mono_ns() ^ std::process::id() as u64) | 1)
    }

    pub fn wait(&mut self, failures: u32) -> Duration {
        let top = (BACKOFF_MIN * 2f64.powi(failures.min(16) as i32)).min(BACKOFF_MAX);
        // xorshift: jitter needs no more than this.
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(top * (0.5 + 0.5 * u))
    }
}

/// A connection error as a user reads it.
pub(super) fn describe(e: &ConnectionError) -> String {
    use rumqttc::ConnectReturnCode as C;
    let why = match e {
        ConnectionError::ConnectionRefused(C::BadUserNamePassword) => "bad username or password",
        // mosquitto answers a wrong password with this too.
        ConnectionError::ConnectionRefused(C::NotAuthorized) => {
            "not authorized (check username, password-file and the broker's ACL)"
        }
        ConnectionError::ConnectionRefused(C::BadClientId) => "client-id rejected",
        ConnectionError::ConnectionRefused(code) => {
            return format!("the broker refused the connection: {code:?}")
        }
        other => return other.to_string(),
    };
    format!("the broker refused the connection: {why}")
}
