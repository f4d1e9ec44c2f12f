//! The publisher: NDJSON over a Unix socket, fanned out to every subscriber.
//!
//! The inference threads hand frames over a crossbeam channel and ring a
//! tokio `Notify`; a task on the runtime drains the channel, serialises each
//! message once and broadcasts the shared line (tokio broadcast of `Arc`s).
//! There is no thread in between: a frame costs one wake-up fewer. Each client task writes what its filter wants. A slow client only
//! falls behind in the broadcast ring: it is told how much it missed
//! (`lagged`) and cut off past a limit; it never delays inference or anyone
//! else.

use crate::config::SocketConfig;
use crate::protocol::{ClientStatus, ErrorMsg, Filter, FrameMsg, Hello, Lagged, Message, Status};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, watch};

/// Longest client line accepted; anything longer is answered with an error.
pub const MAX_CLIENT_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Frame,
    Status,
    Event,
    Other,
}

/// One message, serialised once, shared by every client.
#[derive(Debug)]
pub struct Outgoing {
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
            kind,
            stream,
            line: to_line(msg),
            lite: None,
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

#[derive(Debug)]
pub struct ClientInfo {
    pub lag: AtomicU64,
    pub missed: AtomicU64,
    /// The client's socket, open for as long as this entry is in the map
    /// (the task drops the stream and removes the entry in one poll).
    fd: RawFd,
}

impl ClientInfo {
    fn new(fd: RawFd) -> Self {
        Self {
            lag: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            fd,
        }
    }
}

/// True once the peer has closed its socket entirely. A half-closed peer
/// (shutdown of its write side) is still listening and does not count.
fn hung_up(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; poll only reads the fd number.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

/// State shared by the listener, the clients, the outbox drain and `status`.
pub struct Hub {
    pub tx: broadcast::Sender<Arc<Outgoing>>,
    pub hello: Mutex<Hello>,
    pub stream_names: Vec<String>,
    pub clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    pub next_id: AtomicU64,
    pub active: AtomicUsize,
    /// Clients that asked for frames without thresholds.
    pub lite_clients: AtomicUsize,
    pub cfg: SocketConfig,
    /// In `hello` order: where a new client learns each machine's state.
    pub stream_stats: Vec<Arc<crate::stats::StreamStats>>,
}

impl Hub {
    pub fn new(
        hello: Hello,
        cfg: SocketConfig,
        stream_stats: Vec<Arc<crate::stats::StreamStats>>,
    ) -> Arc<Self> {
        let (tx, _) = broadcast::channel(cfg.client_queue);
        Arc::new(Self {
            tx,
            stream_names: hello.streams.iter().map(|s| s.name.clone()).collect(),
            hello: Mutex::new(hello),
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            active: AtomicUsize::new(0),
            lite_clients: AtomicUsize::new(0),
            cfg,
            stream_stats,
        })
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
        let _ = self.tx.send(Arc::new(out));
    }

    /// The hello for a new client, with every stream's current machine state.
    pub fn hello_now(&self) -> Option<Hello> {
        let mut h = self.hello.lock().ok()?.clone();
        for (info, stats) in h.streams.iter_mut().zip(&self.stream_stats) {
            (info.machine, info.machine_since) = stats.machine();
        }
        Some(h)
    }

    pub fn client_status(&self) -> Vec<ClientStatus> {
        let clients = self.clients.lock().map(|c| {
            c.iter()
                .map(|(id, i)| ClientStatus {
                    id: *id,
                    lag: i.lag.load(Relaxed),
                    missed: i.missed.load(Relaxed),
                })
                .collect::<Vec<_>>()
        });
        let mut v = clients.unwrap_or_default();
        v.sort_by_key(|c| c.id);
        v
    }
}

/// The inference threads' end of the queue to the publisher: a bounded
/// crossbeam channel, plus a wake-up for the task that drains it.
#[derive(Clone)]
pub struct Outbox {
    // Declared before `wake`, so it is dropped first: the drain, woken by
    // `wake`'s drop, then finds the channel closed. The other order races.
    tx: crossbeam_channel::Sender<Message>,
    wake: WakeOnDrop,
}

/// Wakes the drain when an `Outbox` goes, so that it notices the last one.
#[derive(Clone)]
struct WakeOnDrop(Arc<tokio::sync::Notify>);

impl WakeOnDrop {
    fn notify_one(&self) {
        self.0.notify_one();
    }
}

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// The publisher's end, drained by [`drain_outbox`].
pub struct OutboxReader {
    rx: crossbeam_channel::Receiver<Message>,
    wake: Arc<tokio::sync::Notify>,
}

/// A queue of `capacity` messages from the inference threads to the publisher.
pub fn outbox(capacity: usize) -> (Outbox, OutboxReader) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let wake = Arc::new(tokio::sync::Notify::new());
    (
        Outbox {
            tx,
            wake: WakeOnDrop(wake.clone()),
        },
        OutboxReader { rx, wake },
    )
}

impl Outbox {
    /// Queues without waiting. False when the queue is full or the
    /// publisher is gone: the message is dropped, and the caller counts it.
    pub fn try_send(&self, m: Message) -> bool {
        let queued = self.tx.try_send(m).is_ok();
        self.wake.notify_one();
        queued
    }

    /// Queues, waiting for room if need be (for rare messages that must not
    /// be lost). False only once the publisher is gone.
    pub fn send(&self, m: Message) -> bool {
        // Wake the drain first: if the queue is full it must make room.
        self.wake.notify_one();
        let queued = self.tx.send(m).is_ok();
        self.wake.notify_one();
        queued
    }
}

/// Moves messages from the inference threads to the broadcast
/// (`Hub::send`, which serialises each once). Ends when every sender is gone
/// and the queue is empty.
pub async fn drain_outbox(q: OutboxReader, mut deliver: impl FnMut(Message)) {
    loop {
        // A notify_one that lands between the last try_recv and this wait
        // leaves a permit, so no wake-up is lost.
        loop {
            match q.rx.try_recv() {
                Ok(m) => {
                    deliver(m);
                    // In a burst (many streams' frames fall due at once),
                    // let the client tasks write each message before the
                    // next: pushed in one go, a burst would lap the
                    // broadcast ring (lagged). A lone frame needs no yield.
                    if !q.rx.is_empty() {
                        tokio::task::yield_now().await;
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return,
            }
        }
        q.wake.notified().await;
    }
}

/// Binds the socket: removes a stale socket file only if it is a socket and
/// nobody answers on it, then sets the configured mode.
pub fn bind(path: &Path, mode: u32) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "{}: exists and is not a socket; refusing to remove it",
                path.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "{}: another daemon is answering on this socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("{}: cannot remove stale socket", path.display()))?;
        tracing::info!("removed stale socket {}", path.display());
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create socket directory", dir.display()))?;
        }
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("{}: cannot bind socket", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("{}: cannot set mode {mode:o}", path.display()))?;
    Ok(listener)
}

/// Accepts clients until `shutdown` turns true.
pub async fn serve(hub: Arc<Hub>, listener: UnixListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => admit(&hub, stream, shutdown.clone()),
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Clients still connected. Only asked at the limit: a client that just
/// left may not have been reaped by its task yet, and must not cost a newcomer
/// its place.
fn live_clients(hub: &Hub) -> usize {
    match hub.clients.lock() {
        Ok(c) => c.values().filter(|i| !hung_up(i.fd)).count(),
        Err(_) => hub.active.load(Relaxed),
    }
}

fn admit(hub: &Arc<Hub>, mut stream: UnixStream, shutdown: watch::Receiver<bool>) {
    if hub.active.load(Relaxed) >= hub.cfg.max_clients && live_clients(hub) >= hub.cfg.max_clients {
        let max = hub.cfg.max_clients;
        tracing::warn!("refused a client: {max} clients already connected");
        tokio::spawn(async move {
            let msg = error_line(&format!("too many clients (max {max}); try again later"));
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(msg.as_bytes()))
                .await;
        });
        return;
    }
    hub.active.fetch_add(1, Relaxed);
    let id = hub.next_id.fetch_add(1, Relaxed);
    let info = Arc::new(ClientInfo::new(stream.as_raw_fd()));
    if let Ok(mut c) = hub.clients.lock() {
        c.insert(id, info.clone());
    }
    let rx = hub.tx.subscribe();
    let hub = hub.clone();
    tokio::spawn(async move {
        let why = Client::new(hub.clone(), info, rx)
            .run(stream, shutdown)
            .await;
        tracing::debug!(client = id, "client closed: {why}");
        if let Ok(mut c) = hub.clients.lock() {
            c.remove(&id);
        }
        hub.active.fetch_sub(1, Relaxed);
    });
}

pub fn error_line(message: &str) -> String {
    to_line(&Message::Error(ErrorMsg {
        message: message.to_string(),
    }))
}

struct Client {
    hub: Arc<Hub>,
    info: Arc<ClientInfo>,
    rx: broadcast::Receiver<Arc<Outgoing>>,
    filter: Filter,
    lite: bool,
}

impl Client {
    fn new(hub: Arc<Hub>, info: Arc<ClientInfo>, rx: broadcast::Receiver<Arc<Outgoing>>) -> Self {
        Self {
            hub,
            info,
            rx,
            filter: Filter::default(),
            lite: false,
        }
    }

    fn wants(&self, m: &Outgoing) -> bool {
        let type_ok = |t: &str| {
            self.filter
                .types
                .as_ref()
                .is_none_or(|ts| ts.iter().any(|x| x == t))
        };
        match m.kind {
            Kind::Frame => {
                type_ok("frame")
                    && self
                        .filter
                        .streams
                        .as_ref()
                        .is_none_or(|ss| m.stream.as_ref().is_some_and(|s| ss.contains(s)))
            }
            Kind::Status => type_ok("status"),
            Kind::Event => {
                type_ok("event")
                    && self
                        .filter
                        .streams
                        .as_ref()
                        .is_none_or(|ss| m.stream.as_ref().is_some_and(|s| ss.contains(s)))
            }
            Kind::Other => true,
        }
    }

    fn set_filter(&mut self, f: Filter) {
        let lite = f.thresholds == Some(false);
        if lite != self.lite {
            if lite {
                self.hub.lite_clients.fetch_add(1, Relaxed);
            } else {
                self.hub.lite_clients.fetch_sub(1, Relaxed);
            }
            self.lite = lite;
        }
        self.filter = f;
    }

    async fn run(mut self, stream: UnixStream, mut shutdown: watch::Receiver<bool>) -> String {
        let (rd, mut wr) = stream.into_split();
        let mut lines = LineReader::new(rd);
        let timeout = Duration::from_millis(self.hub.cfg.write_timeout_ms);
        let hello = self.hub.hello_now().map(|h| to_line(&Message::Hello(h)));
        let why = match hello {
            Some(h) => match write(&mut wr, h.as_bytes(), timeout).await {
                Ok(()) => self.pump(&mut wr, &mut lines, &mut shutdown, timeout).await,
                Err(e) => e,
            },
            None => "hello unavailable".into(),
        };
        if self.lite {
            self.hub.lite_clients.fetch_sub(1, Relaxed);
        }
        why
    }

    async fn pump(
        &mut self,
        wr: &mut tokio::net::unix::OwnedWriteHalf,
        lines: &mut LineReader,
        shutdown: &mut watch::Receiver<bool>,
        timeout: Duration,
    ) -> String {
        let mut reading = true;
        loop {
            tokio::select! {
                biased;
                msg = self.rx.recv() => {
                    self.info.lag.store(self.rx.len() as u64, Relaxed);
                    match msg {
                        Ok(m) => {
                            if !self.wants(&m) {
                                continue;
                            }
                            let line = if self.lite { m.lite.as_deref().unwrap_or(&m.line) } else { &m.line };
                            if let Err(e) = write(wr, line.as_bytes(), timeout).await {
                                return e;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let total = self.info.missed.fetch_add(n, Relaxed) + n;
                            let line = to_line(&Message::Lagged(Lagged { missed: n }));
                            if let Err(e) = write(wr, line.as_bytes(), timeout).await {
                                return e;
                            }
                            if total > self.hub.cfg.max_missed {
                                let msg = error_line(&format!("cut off: missed {total} messages (limit {})", self.hub.cfg.max_missed));
                                let _ = write(wr, msg.as_bytes(), Duration::from_millis(200)).await;
                                return format!("cut off after missing {total} messages");
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return "publisher closed".into(),
                    }
                }
                line = lines.next(), if reading => match line {
                    Ok(Some(Ok(l))) => {
                        if l.trim().is_empty() {
                            continue;
                        }
                        match Filter::parse(&l, &self.hub.stream_names) {
                            Ok(f) => self.set_filter(f),
                            Err(msg) => {
                                if let Err(e) = write(wr, error_line(&msg).as_bytes(), timeout).await {
                                    return e;
                                }
                            }
                        }
                    }
                    Ok(Some(Err(too_long))) => {
                        if let Err(e) = write(wr, error_line(&too_long).as_bytes(), timeout).await {
                            return e;
                        }
                    }
                    // End of input: gone, or half-closed and still listening.
                    Ok(None) if hung_up(self.info.fd) => return "client hung up".into(),
                    Ok(None) => reading = false,
                    Err(e) => return format!("read error: {e}"),
                },
                _ = shutdown.changed() => {
                    // Deliver what is already queued (the final status), then close.
                    while let Ok(m) = self.rx.try_recv() {
                        if self.wants(&m) && write(wr, m.line.as_bytes(), Duration::from_millis(200)).await.is_err() {
                            break;
                        }
                    }
                    let _ = wr.shutdown().await;
                    return "daemon stopping".into();
                }
            }
        }
    }
}

async fn write(
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, wr.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err(format!(
            "cut off: socket accepted nothing for {} ms",
            timeout.as_millis()
        )),
    }
}

/// Reads newline-terminated lines of at most [`MAX_CLIENT_LINE`] bytes.
/// Cancel-safe: all state lives in the struct, and the only await is `read`.
struct LineReader {
    rd: tokio::net::unix::OwnedReadHalf,
    buf: Vec<u8>,
    /// Inside an over-long line: drop bytes until the next newline.
    discarding: bool,
}

impl LineReader {
    fn new(rd: tokio::net::unix::OwnedReadHalf) -> Self {
        Self {
            rd,
            buf: Vec::with_capacity(1024),
            discarding: false,
        }
    }

    /// Ok(None) at end of input; Ok(Some(Err(msg))) for an over-long line.
    async fn next(&mut self) -> std::io::Result<Option<Result<String, String>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if std::mem::take(&mut self.discarding) {
                    continue;
                }
                return Ok(Some(Ok(String::from_utf8_lossy(&line[..pos]).into_owned())));
            }
            if self.buf.len() > MAX_CLIENT_LINE {
                self.buf.clear();
                if !self.discarding {
                    self.discarding = true;
                    return Ok(Some(Err(format!(
                        "line too long (max {MAX_CLIENT_LINE} bytes); ignored"
                    ))));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.rd.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The status message, built from the streams' counters and the clients.
pub fn status_message(
    hub: &Hub,
    state: &str,
    uptime: Duration,
    model: crate::protocol::ModelRef,
    streams: Vec<crate::protocol::StreamStatus>,
    reload: Option<crate::protocol::ReloadStatus>,
) -> Message {
    Message::Status(Status {
        state: state.to_string(),
        uptime_s: uptime.as_secs_f64(),
        model,
        streams,
        clients: hub.client_status(),
        reload,
    })
}

/// Removes the socket file on shutdown.
pub fn remove_socket(path: &PathBuf) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("{}: cannot remove socket: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize) -> Message {
        Message::Error(ErrorMsg {
            message: i.to_string(),
        })
    }

    /// Every message from every thread arrives, in each thread's order, even
    /// when the queue is full and senders must wait; the drain ends once the
    /// last sender is gone.
    #[test]
    fn the_outbox_delivers_everything_and_ends_with_its_senders() {
        let (tx, q) = outbox(4);
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
        rt.block_on(drain_outbox(q, |m| {
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
    fn a_full_outbox_refuses_without_waiting() {
        let (tx, _q) = outbox(2);
        assert!(tx.try_send(msg(0)));
        assert!(tx.try_send(msg(1)));
        assert!(!tx.try_send(msg(2)));
    }
}
