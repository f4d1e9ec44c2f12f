//! `/events`: the bus as Server-Sent Events. Every message's `id` is the
//! bus's sequence number, so a page that reconnects sends `Last-Event-ID`
//! and is given every event it missed that the bus still records (the last
//! `[http] replay-events`, 10 000 by default: days of a normal plant, a few
//! minutes of 64 flapping machines). Frames are thinned per stream to
//! `frames-per-second` (`?fps=N`, `fps=0` for all); events and status never.
//! A page that lags behind the broadcast ring is given the events it lost
//! from the same record.

use super::{HttpSink, Kind, Outgoing};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

#[derive(Debug, serde::Deserialize)]
pub struct Params {
    fps: Option<f64>,
}

/// One open event stream; counts itself out of `sse_clients` when dropped.
struct Client {
    sink: Arc<HttpSink>,
    rx: broadcast::Receiver<Arc<Outgoing>>,
    /// Sent before anything live: the hello, then missed events.
    backlog: VecDeque<Event>,
    /// The highest id sent: live messages at or below it are repeats.
    last_id: u64,
    /// Least time between two frames of one stream (zero: every frame).
    every: Duration,
    last_frame: HashMap<String, Instant>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.sink.sse_clients.fetch_sub(1, Relaxed);
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
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (rx, missed) = sink.bus.subscribe_after(after);
    let fps = p.fps.unwrap_or(sink.cfg.frames_per_second);
    let every = if fps > 0.0 && fps.is_finite() {
        Duration::from_secs_f64(1.0 / fps)
    } else {
        Duration::ZERO
    };
    let mut backlog = VecDeque::new();
    if let Some(h) = sink.bus.hello_now() {
        let line = crate::sinks::to_line(&crate::protocol::Message::Hello(h));
        backlog.push_back(Event::default().data(line.trim_end()));
    }
    let mut client = Client {
        sink,
        rx,
        backlog,
        last_id: after.unwrap_or(0),
        every,
        last_frame: HashMap::new(),
    };
    client.queue(missed);
    let stream = futures_util::stream::unfold(client, |mut c| async move {
        let ev = c.next().await?;
        Some((Ok::<_, Infallible>(ev), c))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

impl Client {
    fn queue(&mut self, missed: Vec<Arc<Outgoing>>) {
        for m in missed {
            if m.id > self.last_id {
                self.last_id = m.id;
                self.backlog.push_back(event(&m));
            }
        }
    }

    /// The next message to send; None once the bus is gone.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                return Some(e);
            }
            match self.rx.recv().await {
                Ok(m) => {
                    if m.id <= self.last_id || self.thinned(&m) {
                        continue;
                    }
                    self.last_id = m.id;
                    return Some(event(&m));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let missed = self.sink.bus.events_after(self.last_id);
                    self.queue(missed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Whether a frame comes too soon after the last one of its stream.
    fn thinned(&mut self, m: &Outgoing) -> bool {
        if m.kind != Kind::Frame || self.every.is_zero() {
            return false;
        }
        let Some(stream) = &m.stream else {
            return false;
        };
        let now = Instant::now();
        match self.last_frame.get_mut(stream) {
            Some(t) if now.duration_since(*t) < self.every => true,
            Some(t) => {
                *t = now;
                false
            }
            None => {
                self.last_frame.insert(stream.clone(), now);
                false
            }
        }
    }
}

fn event(m: &Outgoing) -> Event {
    Event::default()
        .id(m.id.to_string())
        .data(m.line.trim_end())
}
