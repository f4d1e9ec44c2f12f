//! `/events`: the bus as Server-Sent Events, read through the pages' feed
//! (`feed`). Every message's `id` is the bus's sequence number, so a page
//! that reconnects sends `Last-Event-ID` (or `?after=ID`, for a page that
//! opens a new connection itself) and is given every event it missed that
//! the bus still records (the last `[http] replay-events`, 10 000 by
//! default: days of a normal plant, a few minutes of 64 flapping machines).
//! Frames are thinned per stream to `frames-per-second` (`?fps=N`, `fps=0`
//! for all); events and status never. `?focus=NAME`: the other streams'
//! frames come as tiles. A page that lags behind the feed is given the
//! events it lost from the bus's record.

use super::feed::{self, Feed, Item};
use super::HttpSink;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// An idle stream is sent a comment this often (proxies close silent ones).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Ready messages are written together up to this many bytes.
const CHUNK: usize = 64 * 1024;
/// What comes within this of a first message is written with it: a page
/// redraws at most 60 times a second, and ten writes a second instead of
/// one per frame is most of what twenty pages cost.
const GATHER: Duration = Duration::from_millis(100);

#[derive(Debug, serde::Deserialize)]
pub struct Params {
    fps: Option<f64>,
    focus: Option<String>,
    after: Option<u64>,
}

/// One open event stream; counts itself out when dropped.
struct Client {
    sink: Arc<HttpSink>,
    rx: broadcast::Receiver<Arc<Item>>,
    focus: Option<String>,
    /// Sent before anything live: the hello, then missed events.
    backlog: VecDeque<Bytes>,
    /// The highest id sent: live messages at or below it are repeats.
    last_id: u64,
    /// This page's own thinning, when it asked for fewer frames than the feed's.
    every: Duration,
    last_frame: HashMap<String, Instant>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.sink.sse_clients.fetch_sub(1, Relaxed);
        if self.focus.is_some() {
            self.sink.feed.focused.fetch_sub(1, Relaxed);
        }
    }
}

pub async fn events(
    State(sink): State<Arc<HttpSink>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    let open = sink.sse_clients.fetch_add(1, Relaxed);
    if open >= sink.cfg.max_clients {
        sink.sse_clients.fetch_sub(1, Relaxed);
        let msg = format!("{open} event streams are open (max-clients); try again later\n");
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "5")], msg).into_response();
    }
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(p.after)
        // An id this daemon never gave is a page of an earlier run's.
        .filter(|a| *a <= sink.bus.last_id());
    let client = Client::open(sink, after, p.fps, p.focus);
    let body = futures_util::stream::unfold(client, |mut c| async move {
        let chunk = c.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), c))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

impl Client {
    fn open(
        sink: Arc<HttpSink>,
        after: Option<u64>,
        fps: Option<f64>,
        focus: Option<String>,
    ) -> Self {
        let every = match fps {
            Some(f) if f > 0.0 && f.is_finite() => Duration::from_secs_f64(1.0 / f),
            Some(_) => Duration::ZERO,
            None => sink.feed.every(),
        };
        let feed: &Feed = &sink.feed;
        // Faster than the feed's thinning: read everything, thin here.
        let wants_more = every < feed.every();
        let rx = if wants_more {
            feed.all.subscribe()
        } else {
            feed.thinned.subscribe()
        };
        let every = if every > feed.every() {
            every
        } else {
            Duration::ZERO
        };
        if focus.is_some() {
            feed.focused.fetch_add(1, Relaxed);
        }
        let mut backlog = VecDeque::new();
        if let Some(h) = sink.bus.hello_now() {
            let line = crate::sinks::to_line(&crate::protocol::Message::Hello(h));
            backlog.push_back(feed::sse(0, &line));
        }
        // Subscribed first, then the record read: an event is in one or both.
        let missed = after.map(|a| sink.bus.events_after(a)).unwrap_or_default();
        let mut c = Client {
            sink,
            rx,
            focus,
            backlog,
            last_id: after.unwrap_or(0),
            every,
            last_frame: HashMap::new(),
        };
        c.queue(missed);
        c
    }

    fn queue(&mut self, missed: Vec<Arc<crate::sinks::Outgoing>>) {
        for m in missed {
            if m.id > self.last_id {
                self.last_id = m.id;
                let item = self.sink.feed.render(&m);
                self.backlog.push_back(item.full.clone());
            }
        }
    }

    /// The next bytes to send: the backlog, else every message ready now;
    /// a keep-alive comment after a quiet while; None once the feed is gone.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(b) = self.backlog.pop_front() {
            return Some(b);
        }
        let mut out = Vec::new();
        let mut gathered = false;
        loop {
            let got = if out.is_empty() {
                match tokio::time::timeout(KEEP_ALIVE, self.rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => return Some(Bytes::from_static(b": keep-alive\n\n")),
                }
            } else {
                match self.rx.try_recv() {
                    Ok(m) => Ok(m),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        Err(broadcast::error::RecvError::Lagged(n))
                    }
                    Err(broadcast::error::TryRecvError::Empty) if !gathered => {
                        gathered = true;
                        tokio::time::sleep(GATHER).await;
                        continue;
                    }
                    Err(_) => break,
                }
            };
            match got {
                Ok(m) => {
                    if m.id <= self.last_id
                        || feed::thinned(
                            m.kind,
                            m.stream.as_deref(),
                            self.every,
                            &mut self.last_frame,
                        )
                    {
                        continue;
                    }
                    self.last_id = m.id;
                    out.extend_from_slice(m.bytes_for(self.focus.as_deref()));
                    if out.len() >= CHUNK {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let missed = self.sink.bus.events_after(self.last_id);
                    self.queue(missed);
                    while let Some(b) = self.backlog.pop_front() {
                        out.extend_from_slice(&b);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    if out.is_empty() {
                        return None;
                    }
                    break;
                }
            }
        }
        Some(Bytes::from(out))
    }
}
