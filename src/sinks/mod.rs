//! The outputs. Every stream worker hands its messages to one queue (the
//! [`Publisher`]); a task on the tokio runtime drains it, serialises each
//! message once and broadcasts the shared line on the [`Bus`]. Each sink
//! subscribes to the bus and applies its own back-pressure policy; a slow
//! sink only falls behind in the broadcast ring and can never slow the
//! workers or another sink. The sinks: the Unix socket ([`socket`]), the
//! web page with SSE and Prometheus metrics ([`http`]), the MQTT fleet sink
//! with its spool ([`mqtt`]), each stream's denoised signal ([`denoised`])
//! and the history store with its trend watch ([`history`]).
//! All share one lifecycle ([`Sink`], [`Sinks`]): built here by [`build`],
//! started together, stopped by one [`Shutdown`].

pub mod denoised;
pub mod history;
pub mod http;
mod lifecycle;
pub mod mqtt;
pub mod notify;
pub mod socket;

pub use lifecycle::{Running, Shutdown, ShutdownTrigger, Sink, Sinks};

use crate::config::Config;
use crate::hub::StreamHub;
use crate::protocol::{FrameMsg, Hello, Message};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Frame,
    Status,
    Event,
    Other,
}

/// One message, serialised once, shared by every sink and client.
#[derive(Debug)]
pub struct Outgoing {
    /// Per daemon, in the order sent (the SSE `id`).
    pub id: u64,
    pub kind: Kind,
    pub stream: Option<String>,
    pub line: String,
    /// Frames only: the same line without thresholds, if any client wants it.
    pub lite: Option<String>,
}

impl Outgoing {
    pub fn new(msg: &Message) -> Self {
        let (kind, stream) = match msg {
            Message::Frame(f) => (Kind::Frame, Some(f.stream.clone())),
            Message::Status(_) => (Kind::Status, None),
            Message::Event(e) => (Kind::Event, Some(e.stream.clone())),
            _ => (Kind::Other, None),
        };
        Self {
            id: 0,
            kind,
            stream,
            line: to_line(msg),
            lite: None,
        }
    }

    /// The line for a client that does (`lite` false) or does not want thresholds.
    pub fn line_for(&self, lite: bool) -> &str {
        match (&self.lite, lite) {
            (Some(l), true) => l,
            _ => &self.line,
        }
    }
}

pub fn to_line(msg: &Message) -> String {
    let mut s = serde_json::to_string(msg).unwrap_or_else(|e| {
        // Only non-string map keys can fail here; none exist in Message.
        format!("{{\"type\":\"error\",\"message\":\"serialisation failed: {e}\"}}")
    });
    s.push('\n');
    s
}

/// The broadcast every sink reads, and what a new subscriber is told first.
pub struct Bus {
    pub tx: broadcast::Sender<Arc<Outgoing>>,
    pub hello: Mutex<Hello>,
    /// In `hello` order: where a new subscriber learns each machine's state.
    pub hubs: Vec<Arc<StreamHub>>,
    /// Subscribers that asked for frames without thresholds: while there
    /// are any, frames are serialised a second time without them.
    pub lite_clients: AtomicUsize,
    next_id: AtomicU64,
    /// The last events, for a subscriber that reconnects and asks for what
    /// it missed (SSE's `Last-Event-ID`); empty capacity keeps none.
    replay: Mutex<Replay>,
    /// Subscribers connected now, per sink that has them (`/metrics`).
    clients: Mutex<Vec<(&'static str, Arc<AtomicUsize>)>>,
}

struct Replay {
    events: VecDeque<Arc<Outgoing>>,
    capacity: usize,
}

impl Bus {
    /// `capacity`: messages the broadcast ring holds for its slowest reader.
    pub fn new(hello: Hello, capacity: usize, hubs: Vec<Arc<StreamHub>>) -> Arc<Self> {
        let (tx, _) = broadcast::channel(capacity.max(2));
        Arc::new(Self {
            tx,
            hello: Mutex::new(hello),
            hubs,
            lite_clients: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            replay: Mutex::new(Replay {
                events: VecDeque::new(),
                capacity: 0,
            }),
            clients: Mutex::new(Vec::new()),
        })
    }

    /// The count of `sink`'s subscribers, which the sink keeps and
    /// `/metrics` reads.
    pub fn client_gauge(&self, sink: &'static str) -> Arc<AtomicUsize> {
        let gauge = Arc::new(AtomicUsize::new(0));
        if let Ok(mut c) = self.clients.lock() {
            c.push((sink, gauge.clone()));
        }
        gauge
    }

    /// Subscribers connected now, per sink, in the order the sinks were built.
    pub fn clients(&self) -> Vec<(&'static str, usize)> {
        self.clients
            .lock()
            .map(|c| c.iter().map(|(s, n)| (*s, n.load(Relaxed))).collect())
            .unwrap_or_default()
    }

    /// Keeps the last `n` events for `events_after`.
    /// (The largest `n` any sink asked for.)
    pub fn keep_events(&self, n: usize) {
        if let Ok(mut r) = self.replay.lock() {
            r.capacity = r.capacity.max(n);
        }
    }

    /// Broadcasts a message; no receivers is fine.
    pub fn send(&self, msg: &Message) {
        let mut out = Outgoing::new(msg);
        if let Message::Frame(f) = msg {
            if self.lite_clients.load(Relaxed) > 0 {
                let lite = FrameMsg {
                    thresholds: None,
                    ..f.clone()
                };
                out.lite = Some(to_line(&Message::Frame(lite)));
            }
        }
        out.id = self.next_id.fetch_add(1, Relaxed);
        let out = Arc::new(out);
        if out.kind != Kind::Event {
            let _ = self.tx.send(out);
            return;
        }
        // Recorded before it is sent, under one lock: a reader that
        // subscribes and then reads the record sees every event in one.
        let Ok(mut r) = self.replay.lock() else {
            let _ = self.tx.send(out);
            return;
        };
        if r.capacity > 0 {
            if r.events.len() == r.capacity {
                r.events.pop_front();
            }
            r.events.push_back(out.clone());
        }
        let _ = self.tx.send(out);
    }

    /// What one `recv` of a bus reader brings, in order and new to it:
    /// the message, or after a lag the recorded events it missed (frames
    /// are gone). `last_id` is the reader's newest id; None: the bus closed.
    pub fn catch_up(
        &self,
        m: Result<Arc<Outgoing>, broadcast::error::RecvError>,
        last_id: &mut u64,
    ) -> Option<Vec<Arc<Outgoing>>> {
        let mut batch = match m {
            Ok(m) => vec![m],
            Err(broadcast::error::RecvError::Lagged(_)) => self.events_after(*last_id),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        batch.retain(|m| m.id > *last_id);
        if let Some(m) = batch.last() {
            *last_id = m.id;
        }
        Some(batch)
    }

    /// The id of the last message sent (0: none yet).
    pub fn last_id(&self) -> u64 {
        self.next_id.load(Relaxed).saturating_sub(1)
    }

    /// The recorded events after id `after` (for a subscriber that lagged).
    pub fn events_after(&self, after: u64) -> Vec<Arc<Outgoing>> {
        self.replay
            .lock()
            .map(|r| r.events.iter().filter(|e| e.id > after).cloned().collect())
            .unwrap_or_default()
    }

    /// The hello for a new subscriber, with every stream's current machine state.
    pub fn hello_now(&self) -> Option<Hello> {
        let mut h = self.hello.lock().ok()?.clone();
        for (info, hub) in h.streams.iter_mut().zip(&self.hubs) {
            (info.machine, info.machine_since) = hub.machine();
        }
        Some(h)
    }

    /// New models (reload): later subscribers get the new hello, and
    /// everyone connected is sent it now.
    pub fn set_models(
        &self,
        model: crate::protocol::ModelInfo,
        denoiser: Option<crate::protocol::DenoiserInfo>,
    ) {
        let hello = self.hello.lock().map(|mut h| {
            h.model = model;
            h.denoiser = denoiser;
            h.clone()
        });
        if let Ok(h) = hello {
            self.send(&Message::Hello(h));
        }
    }
}

/// The workers' end of the queue to the bus: a bounded tokio channel, which
/// wakes the draining task itself (`try_send` and `blocking_send` work from
/// plain threads) and whose `recv` ends once the last sender is gone, so
/// there is no hand-written wake-up logic to get wrong.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Message>,
}

/// The bus's end, drained by [`drain`].
pub struct PublisherQueue {
    rx: mpsc::Receiver<Message>,
}

/// A queue of `capacity` messages from the workers to the bus.
pub fn publisher(capacity: usize) -> (Publisher, PublisherQueue) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Publisher { tx }, PublisherQueue { rx })
}

impl Publisher {
    /// Queues without waiting. False when the queue is full or the bus is
    /// gone: the message is dropped, and the caller counts it.
    pub fn try_send(&self, m: Message) -> bool {
        self.tx.try_send(m).is_ok()
    }

    /// Queues, waiting for room if need be (for rare messages that must not
    /// be lost). False only once the bus is gone. Never call it on the
    /// runtime: it blocks the calling thread.
    pub fn send(&self, m: Message) -> bool {
        self.tx.blocking_send(m).is_ok()
    }
}

/// Moves messages from the workers to `deliver` (the bus, which serialises
/// each once). Ends when every sender is gone and the queue is empty.
pub async fn drain(mut q: PublisherQueue, mut deliver: impl FnMut(Message)) {
    while let Some(m) = q.rx.recv().await {
        deliver(m);
        // In a burst (many streams' frames fall due at once), let the
        // sinks write each message before the next: pushed in one go, a
        // burst would lap the broadcast ring (lagged). A lone frame needs
        // no yield.
        if !q.rx.is_empty() {
            tokio::task::yield_now().await;
        }
    }
}

/// What `daemon::prepare` made ready for the sinks: files read, spools
/// and stores open, so that their errors come before the first frame.
pub struct Prepared {
    pub mqtt: Option<mqtt::Prepared>,
    pub store: Option<history::Prepared>,
    pub notify: Option<notify::Prepared>,
}

/// Every sink the config asks for, in start order: the socket, then the
/// page, MQTT (`mqtt`: its files read and spool opened by `daemon::prepare`),
/// the denoised signals and the history (`store`: opened by `prepare`). Each binds what it listens on now, so that an
/// address in use is an error naming its key before the first frame.
pub fn build(cfg: &Config, bus: &Arc<Bus>, prepared: Prepared) -> anyhow::Result<Sinks> {
    let Prepared {
        mqtt,
        store,
        notify,
    } = prepared;
    let mode = crate::config::parse_mode(&cfg.socket.mode).unwrap_or(0o660);
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(socket::Socket::bind(
        bus.clone(),
        cfg.socket.clone(),
        mode,
    )?)];
    let history = store.map(|s| history::History::new(bus.clone(), s));
    let notify = notify.map(|n| notify::Notify::new(bus.clone(), n));
    if let Some(h) = &cfg.http {
        let store = history.as_ref().map(|h| h.access(cfg.monitor.iso_zones));
        let alarms = notify.as_ref().map(|n| n.stats()).unwrap_or_default();
        sinks.push(Box::new(http::Http::bind(
            bus.clone(),
            h.clone(),
            store,
            alarms,
        )?));
    }
    if let (Some(ready), Some(m)) = (mqtt, &cfg.mqtt) {
        sinks.push(Box::new(mqtt::Mqtt::new(bus.clone(), ready, m)));
    }
    if let Some(dir) = cfg.denoise_socket_dir() {
        sinks.push(Box::new(denoised::Denoised::bind(dir, mode, &bus.hubs)?));
    }
    if let Some(h) = history {
        sinks.push(Box::new(h));
    }
    if let Some(n) = notify {
        sinks.push(Box::new(n));
    }
    Ok(Sinks::new(sinks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorMsg;

    fn msg(i: usize) -> Message {
        Message::Error(ErrorMsg {
            message: i.to_string(),
        })
    }

    /// Every message from every thread arrives, in each thread's order, even
    /// when the queue is full and senders must wait; the drain ends once the
    /// last sender is gone.
    #[test]
    fn the_queue_delivers_everything_and_ends_with_its_senders() {
        let (tx, q) = publisher(4);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        assert!(tx.send(msg(t * 1000 + i)), "the drain is gone");
                    }
                })
            })
            .collect();
        drop(tx);
        let mut got = Vec::new();
        rt.block_on(drain(q, |m| {
            if let Message::Error(e) = m {
                got.push(e.message.parse::<usize>().expect("a number"));
            }
        }));
        for t in threads {
            t.join().expect("sender thread");
        }
        assert_eq!(got.len(), 3000);
        for t in 0..3 {
            let mine: Vec<_> = got.iter().filter(|&&v| v / 1000 == t).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "thread {t} out of order"
            );
            assert_eq!(mine.len(), 1000);
        }
    }

    /// try_send never waits: past capacity it hands the message back.
    #[test]
    fn a_full_queue_refuses_without_waiting() {
        let (tx, _q) = publisher(2);
        assert!(tx.try_send(msg(0)));
        assert!(tx.try_send(msg(1)));
        assert!(!tx.try_send(msg(2)));
    }
}
