//! The Unix socket sink: NDJSON to every subscriber, each with its own
//! filter (streams, message types, thresholds or not). A slow client only
//! falls behind in the bus's broadcast ring: it is told how much it missed
//! (`lagged`) and cut off past a limit; it never delays the workers or
//! anyone else. Client lines are read by `tokio_util`'s `LinesCodec` with a
//! length limit. Two hand-written pieces remain: `ClientLines`, a thin
//! wrapper so an over-long line does not end the stream, and `hung_up`, a
//! zero-timeout poll, because tokio cannot tell a half-closed client (still
//! listening) from one that has gone.

use super::{to_line, Bus, Kind, Outgoing, Running, Shutdown, Sink};
use crate::config::SocketConfig;
use crate::protocol::{AckMsg, ClientStatus, Command, ErrorMsg, Filter, Lagged, Message, Status};
use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, FramedRead, LinesCodec, LinesCodecError};

/// Longest client line accepted; anything longer is answered with an error.
pub const MAX_CLIENT_LINE: usize = 64 * 1024;

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

/// The socket's clients, shared by the listener, the client tasks and `status`.
pub struct SocketSink {
    pub bus: Arc<Bus>,
    pub stream_names: Vec<String>,
    pub clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    pub next_id: AtomicU64,
    /// Clients connected now (the bus's gauge for `/metrics`).
    pub active: Arc<AtomicUsize>,
    pub cfg: SocketConfig,
}

impl SocketSink {
    pub fn new(bus: Arc<Bus>, cfg: SocketConfig) -> Arc<Self> {
        let stream_names = bus
            .hello
            .lock()
            .map(|h| h.streams.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        Arc::new(Self {
            active: bus.client_gauge("socket"),
            bus,
            stream_names,
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            cfg,
        })
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

/// How long, after the shutdown, clients get to read the last status.
const GOODBYE: Duration = Duration::from_millis(300);

/// The socket sink as the daemon runs it, its socket bound.
pub struct Socket {
    hub: Arc<SocketSink>,
    listener: Option<std::os::unix::net::UnixListener>,
    path: PathBuf,
}

impl Socket {
    /// Binds `[socket] path` (see `bind_std`).
    pub fn bind(bus: Arc<Bus>, cfg: SocketConfig, mode: u32) -> Result<Self> {
        let path = cfg.path.clone();
        let listener = bind_std(&path, mode)?;
        listener
            .set_nonblocking(true)
            .with_context(|| format!("{}: cannot listen", path.display()))?;
        Ok(Self {
            hub: SocketSink::new(bus, cfg),
            listener: Some(listener),
            path,
        })
    }
}

impl Sink for Socket {
    fn name(&self) -> &'static str {
        "socket"
    }

    fn grace(&self) -> Duration {
        GOODBYE + Duration::from_millis(700)
    }

    /// Accepts until the shutdown; then gives the clients `GOODBYE` to
    /// read what is queued for them, and removes the socket file.
    fn start(&mut self, shutdown: Shutdown) -> Result<Running> {
        let listener = self
            .listener
            .take()
            .context("the socket sink was started twice")?;
        let listener = UnixListener::from_std(listener)
            .with_context(|| format!("{}: cannot listen", self.path.display()))?;
        let (hub, path) = (self.hub.clone(), self.path.clone());
        Ok(Running::Task(tokio::spawn(async move {
            serve(hub.clone(), listener, shutdown).await;
            let deadline = tokio::time::Instant::now() + GOODBYE;
            while hub.active.load(Relaxed) > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            remove_socket(&path);
        })))
    }

    fn report(&self, status: &mut Status) {
        status.clients = self.hub.client_status();
    }
}

/// Binds a socket: removes a stale socket file only if it is a socket and
/// nobody answers on it, then sets the configured mode.
pub fn bind_std(path: &Path, mode: u32) -> Result<std::os::unix::net::UnixListener> {
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
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("{}: cannot bind socket", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("{}: cannot set mode {mode:o}", path.display()))?;
    Ok(listener)
}

/// Accepts clients until `shutdown` turns true.
async fn serve(hub: Arc<SocketSink>, listener: UnixListener, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.raised() => break,
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
fn live_clients(hub: &SocketSink) -> usize {
    match hub.clients.lock() {
        Ok(c) => c.values().filter(|i| !hung_up(i.fd)).count(),
        Err(_) => hub.active.load(Relaxed),
    }
}

fn admit(hub: &Arc<SocketSink>, mut stream: UnixStream, shutdown: Shutdown) {
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
    let rx = hub.bus.tx.subscribe();
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

/// A client's lines, read with a length limit.
type Lines = FramedRead<tokio::net::unix::OwnedReadHalf, ClientLines>;

/// An over-long client line, skipped up to its newline.
struct TooLong;

/// `LinesCodec` with an over-long line handed on as an item rather than
/// an error: `FramedRead` ends the stream after any decoder error, and a
/// client that once sent an over-long line must still be heard.
struct ClientLines(LinesCodec);

impl ClientLines {
    fn item(r: Result<Option<String>, LinesCodecError>) -> ClientLine {
        match r {
            Ok(l) => Ok(l.map(Ok)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Err(TooLong))),
            Err(LinesCodecError::Io(e)) => Err(e),
        }
    }
}

type ClientLine = std::io::Result<Option<Result<String, TooLong>>>;

impl Decoder for ClientLines {
    type Item = Result<String, TooLong>;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> ClientLine {
        Self::item(self.0.decode(buf))
    }

    /// At end of input only whole lines count, as they always have: a
    /// command cut off by a hang-up is not a command.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> ClientLine {
        let line = Self::item(self.0.decode(buf));
        if matches!(line, Ok(None)) {
            buf.clear();
        }
        line
    }
}

struct Client {
    hub: Arc<SocketSink>,
    info: Arc<ClientInfo>,
    rx: broadcast::Receiver<Arc<Outgoing>>,
    filter: Filter,
    lite: bool,
}

impl Client {
    fn new(
        hub: Arc<SocketSink>,
        info: Arc<ClientInfo>,
        rx: broadcast::Receiver<Arc<Outgoing>>,
    ) -> Self {
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

    /// Acts on one client line; the reply to send, if any.
    fn command(&mut self, line: &str) -> Option<String> {
        match Command::parse(line, &self.hub.stream_names) {
            Ok(Command::Filter(f)) => {
                self.set_filter(f);
                None
            }
            Ok(Command::Learn { stream, seconds }) => Some(self.learn(stream, seconds)),
            Err(msg) => Some(error_line(&msg)),
        }
    }

    /// Asks the stream's worker to learn its baseline anew; the stream's
    /// `status` shows the learning from its next frame.
    fn learn(&self, stream: String, seconds: f64) -> String {
        let i = self.hub.stream_names.iter().position(|s| *s == stream);
        let Some(hub) = i.and_then(|i| self.hub.bus.hubs.get(i)) else {
            return error_line(&format!("learn: stream {stream:?} has no worker"));
        };
        hub.baseline.request_learning(seconds);
        tracing::info!(client = self.info.fd, %stream, seconds, "a client asked to learn the baseline");
        to_line(&Message::Ack(AckMsg {
            cmd: "learn".into(),
            stream,
            seconds,
        }))
    }

    fn set_filter(&mut self, f: Filter) {
        let lite = f.thresholds == Some(false);
        if lite != self.lite {
            if lite {
                self.hub.bus.lite_clients.fetch_add(1, Relaxed);
            } else {
                self.hub.bus.lite_clients.fetch_sub(1, Relaxed);
            }
            self.lite = lite;
        }
        self.filter = f;
    }

    async fn run(mut self, stream: UnixStream, mut shutdown: Shutdown) -> String {
        let (rd, mut wr) = stream.into_split();
        let mut lines = FramedRead::new(
            rd,
            ClientLines(LinesCodec::new_with_max_length(MAX_CLIENT_LINE)),
        );
        let timeout = Duration::from_millis(self.hub.cfg.write_timeout_ms);
        let hello = self
            .hub
            .bus
            .hello_now()
            .map(|h| to_line(&Message::Hello(h)));
        let why = match hello {
            Some(h) => match write(&mut wr, h.as_bytes(), timeout).await {
                Ok(()) => self.pump(&mut wr, &mut lines, &mut shutdown, timeout).await,
                Err(e) => e,
            },
            None => "hello unavailable".into(),
        };
        if self.lite {
            self.hub.bus.lite_clients.fetch_sub(1, Relaxed);
        }
        why
    }

    async fn pump(
        &mut self,
        wr: &mut tokio::net::unix::OwnedWriteHalf,
        lines: &mut Lines,
        shutdown: &mut Shutdown,
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
                            if let Err(e) = write(wr, m.line_for(self.lite).as_bytes(), timeout).await {
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
                    Some(Ok(Ok(l))) => {
                        if l.trim().is_empty() {
                            continue;
                        }
                        let Some(reply) = self.command(&l) else {
                            continue;
                        };
                        if let Err(e) = write(wr, reply.as_bytes(), timeout).await {
                            return e;
                        }
                    }
                    Some(Ok(Err(TooLong))) => {
                        // The codec skips the rest of that line by itself.
                        let msg = format!("line too long (max {MAX_CLIENT_LINE} bytes); ignored");
                        if let Err(e) = write(wr, error_line(&msg).as_bytes(), timeout).await {
                            return e;
                        }
                    }
                    // End of input: gone, or half-closed and still listening.
                    None if hung_up(self.info.fd) => return "client hung up".into(),
                    None => reading = false,
                    Some(Err(e)) => return format!("read error: {e}"),
                },
                _ = shutdown.raised() => {
                    self.flush_queued(wr).await;
                    let _ = wr.shutdown().await;
                    return "daemon stopping".into();
                }
            }
        }
    }

    /// At shutdown: delivers what is already queued (the final status), each
    /// message in the client's own form (without thresholds if it asked so).
    async fn flush_queued<W: tokio::io::AsyncWrite + Unpin>(&mut self, wr: &mut W) {
        while let Ok(m) = self.rx.try_recv() {
            let line = m.line_for(self.lite);
            if self.wants(&m)
                && write(wr, line.as_bytes(), Duration::from_millis(200))
                    .await
                    .is_err()
            {
                break;
            }
        }
    }
}

async fn write<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
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

/// Removes the socket file on shutdown.
fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("{}: cannot remove socket: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{FrameMsg, Hello, ModelInfo};
    use tokio::io::AsyncReadExt;

    fn frame(seq: u64) -> Message {
        Message::Frame(FrameMsg {
            seq,
            stream: "s".into(),
            sample_index: 0,
            time: 0.0,
            label: "Normal".into(),
            confidence: 1.0,
            probs: vec![1.0],
            thresholds: Some(vec![vec![0.5, 0.25]]),
            rms: 0.0,
            peak: 0.0,
            flags: Vec::new(),
            latency_ms: 0.0,
            model: "m".into(),
            ..Default::default()
        })
    }

    /// The shutdown flush writes frames as the client asked for them: a
    /// client that turned thresholds off gets none (it used to get the full
    /// line there, thresholds included).
    #[test]
    fn the_shutdown_flush_keeps_the_clients_filter() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let hello = Hello {
                protocol: 1,
                daemon: "t".into(),
                model: serde_json::from_value::<ModelInfo>(serde_json::json!({
                    "name": "m", "version": "1", "sha256": "x", "architecture": "a",
                    "sample_rate": 12000, "frame_length": 2048, "classes": [], "thresholds": []
                }))
                .expect("model info"),
                denoiser: None,
                streams: Vec::new(),
            };
            let bus = Bus::new(hello, 16, Vec::new());
            let sink = SocketSink::new(bus.clone(), SocketConfig::default());
            let info = Arc::new(ClientInfo::new(-1));
            let mut client = Client::new(sink, info, bus.tx.subscribe());
            client.set_filter(Filter {
                thresholds: Some(false),
                ..Filter::default()
            });
            bus.send(&frame(0));
            bus.send(&frame(1));
            let (mut rd, mut wr) = tokio::io::duplex(1 << 16);
            client.flush_queued(&mut wr).await;
            drop(wr);
            let mut text = String::new();
            rd.read_to_string(&mut text).await.expect("read");
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("json"))
                .collect();
            assert_eq!(lines.len(), 2, "{text}");
            for l in &lines {
                assert!(l.get("thresholds").is_none(), "thresholds in {l}");
                assert_eq!(l["type"], "frame");
            }
        });
    }
}
