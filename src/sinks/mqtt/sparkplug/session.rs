//! The Sparkplug connection's loop: connect with the NDEATH as will,
//! subscribe to NCMD, send the births, then DDATA; on any error drop the
//! client, back off (as the plain connection does) and connect anew with
//! the next bdSeq.

use super::device::{ms, Device};
use super::proto::{datatype as dt, Metric, Payload, Value};
use super::{next_bd_seq, Stats, Topics};
use crate::protocol::{EventMsg, Message};
use crate::sinks::mqtt::session::{describe, Backoff};
use crate::sinks::mqtt::spool::Spool;
use crate::sinks::mqtt::topics::FrameDigest;
use crate::sinks::mqtt::Settings;
use crate::sinks::{Bus, Kind, Outgoing, Shutdown};
use prost::Message as _;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, Outgoing as Out, Packet, QoS};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Spooled events handed to the client and not yet written, at most.
const WINDOW: usize = 64;
const REBIRTH: &str = "Node Control/Rebirth";

struct Sink {
    bus: Arc<Bus>,
    s: Settings,
    topics: Topics,
    spool: Spool,
    bd_seq_file: PathBuf,
    stats: Arc<Stats>,
    rx: broadcast::Receiver<Arc<Outgoing>>,
    last_id: u64,
    devices: BTreeMap<String, Device>,
    /// Devices whose metric set grew (a reload's model): born again.
    reborn: std::collections::HashSet<String>,
    /// Each stream's latest frame since the last tick, not yet read.
    latest: std::collections::HashMap<String, Arc<Outgoing>>,
}

/// One connection: its client, its bdSeq and where its births stand.
struct Conn {
    client: AsyncClient,
    events: EventLoop,
    bd_seq: u64,
    /// The next message's seq (0 after an NBIRTH).
    seq: u64,
    /// The NBIRTH went out: DBIRTH, DDATA and replays may follow.
    born: bool,
    /// Devices that had their DBIRTH since the last NBIRTH.
    born_devices: std::collections::HashSet<String>,
    /// Spooled events up to this id were raised before this connection's
    /// NBIRTH: sent with `is_historical`.
    historical_through: u64,
    /// Publishes handed over, not yet written: Some(spool id) for events.
    handed: VecDeque<Option<u64>>,
    sent_through: u64,
}

pub async fn run(
    bus: Arc<Bus>,
    rx: broadcast::Receiver<Arc<Outgoing>>,
    s: Settings,
    (spool, bd_seq_file): (Spool, PathBuf),
    stats: Arc<Stats>,
    mut shutdown: Shutdown,
) {
    let mut sink = Sink {
        topics: Topics::new(&s.cfg.group_id, &s.node),
        bus,
        s,
        spool,
        bd_seq_file,
        stats,
        rx,
        last_id: 0,
        devices: BTreeMap::new(),
        reborn: Default::default(),
        latest: Default::default(),
    };
    sink.note_spool();
    let mut backoff = Backoff::new();
    let mut failures = 0u32;
    loop {
        match sink.connected(&mut shutdown).await {
            None => return,
            Some((why, was_up)) => {
                sink.stats.connected.store(false, Relaxed);
                if was_up {
                    failures = 0;
                    tracing::warn!("[mqtt] sparkplug: {why}; retrying with backoff");
                }
                sink.stats.set_error(Some(why));
            }
        }
        let wait = backoff.wait(failures);
        failures = failures.saturating_add(1);
        if sink.wait(wait, &mut shutdown).await {
            return;
        }
    }
}

/// The NBIRTH's (`birth`) or NDEATH's payload: the connection's bdSeq.
fn bd_seq_payload(bd_seq: u64, birth: bool) -> Payload {
    let now = ms(crate::clock::wall_s());
    let mut metrics = vec![Metric::new(
        "bdSeq",
        dt::INT64,
        Some(Value::Long(bd_seq)),
        now,
    )];
    if birth {
        metrics.push(Metric::new(
            REBIRTH,
            dt::BOOLEAN,
            Some(Value::Boolean(false)),
            now,
        ));
    }
    Payload {
        timestamp: Some(now),
        metrics,
        seq: None,
    }
}

impl Sink {
    /// One connection, until it is lost (why, and whether it came up) or
    /// the daemon stops (None).
    async fn connected(&mut self, shutdown: &mut Shutdown) -> Option<(String, bool)> {
        let bd_seq = next_bd_seq(&self.bd_seq_file);
        self.stats.bd_seq.store(bd_seq, Relaxed);
        let will = LastWill::new(
            self.topics.node("NDEATH"),
            bd_seq_payload(bd_seq, false).encode_to_vec(),
            QoS::AtLeastOnce,
            false,
        );
        let id = format!("{}-sparkplug", self.s.client_id);
        let (client, events) = AsyncClient::new(self.s.options(&id, will), 4 * WINDOW + 64);
        let mut c = Conn {
            client,
            events,
            bd_seq,
            seq: 0,
            born: false,
            born_devices: Default::default(),
            historical_through: 0,
            handed: VecDeque::new(),
            sent_through: 0,
        };
        let every = Duration::from_secs_f64(self.s.cfg.frame_interval_s);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.raised() => {
                    self.finish(&mut c).await;
                    return None;
                }
                ev = c.events.poll() => match ev {
                    Ok(ev) => self.on_event(&mut c, ev),
                    Err(e) => return Some((describe(&e), c.born)),
                },
                m = self.rx.recv() => {
                    if self.on_bus(m).is_err() {
                        self.finish(&mut c).await;
                        return None;
                    }
                    self.send_spooled(&mut c);
                }
                _ = tick.tick() => {
                    self.absorb();
                    self.birth_new_devices(&mut c);
                    self.send_changes(&mut c);
                }
            }
        }
    }

    fn on_event(&mut self, c: &mut Conn, ev: Event) {
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                self.stats.connected.store(true, Relaxed);
                self.stats.set_error(None);
                // NCMD first, so a rebirth request right after NBIRTH is seen.
                let _ = c
                    .client
                    .try_subscribe(self.topics.node("NCMD"), QoS::AtMostOnce);
                // Events spooled before this connection are history.
                c.historical_through = self.spool.last_id();
                self.birth(c);
                tracing::info!("[mqtt] sparkplug: NBIRTH sent, bdSeq {}", c.bd_seq);
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == self.topics.node("NCMD") => {
                let rebirth = Payload::decode(&p.payload[..]).is_ok_and(|pl| {
                    pl.metrics.iter().any(|m| {
                        m.name.as_deref() == Some(REBIRTH) && m.value == Some(Value::Boolean(true))
                    })
                });
                if rebirth {
                    self.stats.rebirth_requests.fetch_add(1, Relaxed);
                    self.birth(c);
                }
            }
            Event::Outgoing(Out::Publish(_)) => {
                // QoS 0: written is as far as the broker's word goes.
                if let Some(Some(id)) = c.handed.pop_front() {
                    if let Err(e) = self.spool.ack(id) {
                        tracing::error!("{e:#}");
                    }
                    self.note_spool();
                    self.send_spooled(c);
                }
            }
            _ => {}
        }
    }

    /// NBIRTH (seq 0), every device's DBIRTH, then the events owed. On a
    /// rebirth what was handed over already stays handed over.
    fn birth(&mut self, c: &mut Conn) {
        c.seq = 0;
        c.born_devices.clear();
        let nbirth = bd_seq_payload(c.bd_seq, true);
        c.born = self.publish(c, self.topics.node("NBIRTH"), nbirth, None);
        if !c.born {
            return;
        }
        self.stats.births.fetch_add(1, Relaxed);
        self.absorb();
        // Every stream is a device from the start, frames or not.
        for s in self.bus.hello_now().map(|h| h.streams).unwrap_or_default() {
            self.device(&s.name);
        }
        let names: Vec<String> = self.devices.keys().cloned().collect();
        for name in names {
            self.device_birth(c, &name);
        }
        self.send_spooled(c);
    }

    fn device_birth(&mut self, c: &mut Conn, name: &str) {
        let Some(d) = self.devices.get_mut(name) else {
            return;
        };
        let metrics = d.birth();
        let p = payload(metrics);
        if self.publish(c, self.topics.device("DBIRTH", name), p, None) {
            c.born_devices.insert(name.to_string());
        }
    }

    /// A DBIRTH for each device new since the NBIRTH, or whose metrics grew.
    fn birth_new_devices(&mut self, c: &mut Conn) {
        if !c.born {
            return;
        }
        let new: Vec<String> = (self.devices.iter())
            .filter(|(name, _)| !c.born_devices.contains(*name) || self.reborn.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        self.reborn.clear();
        for name in new {
            self.device_birth(c, &name);
        }
    }

    /// Encodes with the next seq and hands the message over (QoS 0).
    fn publish(&self, c: &mut Conn, topic: String, mut p: Payload, id: Option<u64>) -> bool {
        p.seq = Some(c.seq);
        if c.client
            .try_publish(topic, QoS::AtMostOnce, false, p.encode_to_vec())
            .is_err()
        {
            self.stats.messages_not_sent.fetch_add(1, Relaxed);
            return false;
        }
        c.seq = (c.seq + 1) % 256;
        c.handed.push_back(id);
        self.stats.messages_sent.fetch_add(1, Relaxed);
        true
    }

    /// A stream's device, a new one starting from what `hello` says.
    fn device(&mut self, stream: &str) -> &mut Device {
        if !self.devices.contains_key(stream) {
            let hello = self.bus.hello_now();
            let units = hello.as_ref().map_or(0, |h| h.model.thresholds.len());
            let state = (hello.into_iter())
                .flat_map(|h| h.streams)
                .find(|s| s.name == stream)
                .map(|s| s.machine);
            let d = Device::new(units, state.as_ref());
            self.devices.insert(stream.to_string(), d);
        }
        self.devices.entry(stream.to_string()).or_default()
    }

    /// Reads each stream's latest frame into its device.
    fn absorb(&mut self) {
        let latest: Vec<Arc<Outgoing>> = self.latest.drain().map(|(_, m)| m).collect();
        for m in latest {
            if let Ok(f) = serde_json::from_str::<FrameDigest>(&m.line) {
                if self.device(&f.stream).frame(&f) {
                    self.reborn.insert(f.stream.clone());
                }
            }
        }
    }

    /// Takes one bus message (and, after a lag, the events it missed).
    fn on_bus(&mut self, m: Result<Arc<Outgoing>, broadcast::error::RecvError>) -> Result<(), ()> {
        let batch = self.bus.catch_up(m, &mut self.last_id).ok_or(())?;
        for m in batch {
            match m.kind {
                // Only the latest frame of a stream is read (at the tick):
                // a DDATA carries its values, not an average.
                Kind::Frame => {
                    if let Some(stream) = m.stream.clone() {
                        self.latest.insert(stream, m);
                    }
                }
                Kind::Event => self.spool_event(&m.line),
                _ => {}
            }
        }
        Ok(())
    }

    fn spool_event(&mut self, line: &str) {
        let Ok(Message::Event(e)) = serde_json::from_str::<Message>(line) else {
            return;
        };
        let topic = e.stream.clone();
        let body = serde_json::to_string(&e).unwrap_or_default();
        if let Err(e) = self.spool.push(topic, false, |_| body) {
            tracing::error!("{e:#}");
            self.stats.set_error(Some(format!("{e:#}")));
        }
        self.note_spool();
    }

    /// Owed events as DDATA, in order, while their device is born.
    fn send_spooled(&mut self, c: &mut Conn) {
        if !c.born {
            return;
        }
        while c.handed.len() < WINDOW {
            let Some(e) = self.spool.next_after(c.sent_through) else {
                break;
            };
            let (id, device) = (e.id, e.topic.clone());
            let Ok(ev) = serde_json::from_str::<EventMsg>(&e.payload) else {
                // Unreadable: skipped for good rather than blocking the rest.
                c.sent_through = id;
                let _ = self.spool.ack(id);
                continue;
            };
            if !c.born_devices.contains(&device) {
                // A stream of an earlier run's config: born for its events.
                self.device(&device);
                self.device_birth(c, &device);
                if !c.born_devices.contains(&device) {
                    break;
                }
            }
            let historical = id <= c.historical_through;
            let Some(d) = self.devices.get_mut(&device) else {
                break;
            };
            let metrics = d.event(&ev, historical);
            if !self.publish(
                c,
                self.topics.device("DDATA", &device),
                payload(metrics),
                Some(id),
            ) {
                break;
            }
            c.sent_through = id;
            if historical {
                self.stats.historical_sent.fetch_add(1, Relaxed);
            }
        }
    }

    /// Each born device's changed metrics since the last DDATA.
    fn send_changes(&mut self, c: &mut Conn) {
        if !c.born {
            return;
        }
        let names: Vec<String> = c.born_devices.iter().cloned().collect();
        for name in names {
            let Some(metrics) = self.devices.get_mut(&name).and_then(|d| d.changes()) else {
                continue;
            };
            self.publish(
                c,
                self.topics.device("DDATA", &name),
                payload(metrics),
                None,
            );
        }
    }

    /// A clean stop: the owed events a short while, then NDEATH and
    /// DISCONNECT, so hosts know at once rather than at the keep-alive.
    async fn finish(&mut self, c: &mut Conn) {
        while let Ok(m) = self.rx.try_recv() {
            let _ = self.on_bus(Ok(m));
        }
        if !c.born {
            return;
        }
        self.send_spooled(c);
        let death = bd_seq_payload(c.bd_seq, false);
        let _ = c.client.try_publish(
            self.topics.node("NDEATH"),
            QoS::AtLeastOnce,
            false,
            death.encode_to_vec(),
        );
        let _ = c.client.try_disconnect();
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Ok(ev)) = tokio::time::timeout_at(until, c.events.poll()).await {
            if matches!(ev, Event::Outgoing(Out::Disconnect)) {
                break;
            }
            self.on_event(c, ev);
        }
    }

    /// Waits out the backoff, still spooling events and keeping the
    /// devices' latest values; true if the daemon stops meanwhile.
    async fn wait(&mut self, d: Duration, shutdown: &mut Shutdown) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = shutdown.raised() => return true,
                _ = tokio::time::sleep_until(until) => return false,
                m = self.rx.recv() => {
                    if self.on_bus(m).is_err() {
                        return true;
                    }
                }
            }
        }
    }

    fn note_spool(&self) {
        self.stats
            .spool_entries
            .store(self.spool.len() as u64, Relaxed);
    }
}

fn payload(metrics: Vec<Metric>) -> Payload {
    Payload {
        timestamp: Some(ms(crate::clock::wall_s())),
        metrics,
        seq: None,
    }
}
