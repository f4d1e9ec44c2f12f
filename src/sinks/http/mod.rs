//! The HTTP sink: a live page of every stream (`/`), the bus as
//! Server-Sent Events (`/events`), Prometheus metrics (`/metrics`), the
//! last status (`/api/status`) and the history store (`/api/history`). One more subscriber of the bus: a slow page
//! lags in the broadcast ring and never slows the workers or the socket.
//!
//! Requests are served by hyper directly (not `axum::serve`) so that a
//! request's headers must arrive within `HEADER_TIMEOUT` and fit in
//! `MAX_HEADER_BYTES` (a slow or huge request is cut off, 408/431), and the
//! number of open connections is bounded. Off loopback every request needs
//! the token (`auth`). No CORS headers are sent: other origins cannot read.

mod auth;
mod events;
mod feed;
mod history;
mod metrics;
mod page;

use super::{Bus, Kind, Outgoing, Running, Shutdown, Sink};
use crate::config::HttpConfig;
use anyhow::{Context, Result};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};

/// A request's headers must all arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted (hyper answers 431 beyond it).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Connections beyond the event streams (page loads, metrics scrapes).
const EXTRA_CONNECTIONS: usize = 32;

/// How long, after the shutdown, the page's thread is waited for: its
/// event streams end with the bus.
const GRACE: Duration = Duration::from_millis(300);

/// The HTTP sink as the daemon runs it, its address bound.
pub struct Http {
    sink: Arc<HttpSink>,
    listener: Option<std::net::TcpListener>,
}

impl Http {
    /// Reads the token and binds `[http] listen`; both errors name the key.
    /// `store`: the history sink's file and counters, with `[history]`.
    pub fn bind(
        bus: Arc<Bus>,
        cfg: HttpConfig,
        store: Option<super::history::Access>,
        alarms: Arc<Vec<Arc<super::notify::Stats>>>,
    ) -> Result<Self> {
        let token = cfg.token().map_err(anyhow::Error::msg)?;
        let listener = std::net::TcpListener::bind(cfg.listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .with_context(|| format!("[http] listen = \"{}\": cannot bind", cfg.listen))?;
        bus.keep_events(cfg.replay_events);
        let sink = Arc::new(HttpSink {
            sse_clients: bus.client_gauge("http"),
            feed: feed::Feed::new(cfg.frames_per_second),
            bus,
            cfg,
            token,
            last_status: Mutex::new(None),
            started: Instant::now(),
            history: store,
            alarms,
        });
        Ok(Self {
            sink,
            listener: Some(listener),
        })
    }
}

impl Sink for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn grace(&self) -> Duration {
        GRACE
    }

    fn start(&mut self, shutdown: Shutdown) -> Result<Running> {
        let listener = self
            .listener
            .take()
            .context("the HTTP sink was started twice")?;
        let at = listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        tracing::info!("page and metrics on http://{at}/");
        Ok(Running::Threads(vec![spawn(
            self.sink.clone(),
            listener,
            shutdown,
        )?]))
    }
}

pub struct HttpSink {
    bus: Arc<Bus>,
    cfg: HttpConfig,
    token: Option<String>,
    /// Event streams open now (the bus's gauge for `/metrics`).
    sse_clients: Arc<AtomicUsize>,
    /// The last `status` broadcast, for `/api/status`.
    last_status: Mutex<Option<Arc<Outgoing>>>,
    /// What every page reads: the bus, thinned and in SSE form once.
    feed: Arc<feed::Feed>,
    started: Instant,
    /// The history store's file and the sink's counters (`[history]`).
    history: Option<super::history::Access>,
    /// Each `[[notify]]` target's counters.
    alarms: Arc<Vec<Arc<super::notify::Stats>>>,
}

fn router(sink: Arc<HttpSink>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::app_js))
        .route("/history.js", get(page::history_js))
        .route("/uPlot.iife.min.js", get(page::uplot_js))
        .route("/uPlot.min.css", get(page::uplot_css))
        .route("/events", get(events::events))
        .route("/metrics", get(metrics::metrics))
        .route("/api/status", get(status))
        .route("/api/history", get(history::history))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::middleware::from_fn_with_state(
            sink.clone(),
            auth::require_token,
        ))
        .with_state(sink)
}

async fn status(
    axum::extract::State(sink): axum::extract::State<Arc<HttpSink>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let line = sink
        .last_status
        .lock()
        .ok()
        .and_then(|s| s.as_ref().map(|o| o.line.trim_end().to_string()));
    match line {
        Some(l) => ([(axum::http::header::CONTENT_TYPE, "application/json")], l).into_response(),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no status yet\n",
        )
            .into_response(),
    }
}

/// Serves on a thread of its own ("http", with its own runtime), so that
/// pages cost the socket sink nothing and their CPU is seen apart; ends
/// at the shutdown.
fn spawn(
    sink: Arc<HttpSink>,
    listener: std::net::TcpListener,
    shutdown: Shutdown,
) -> Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("[http]: cannot start its runtime")?;
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => serve(sink, l, shutdown).await,
                    Err(e) => tracing::error!("[http]: cannot listen: {e}"),
                }
            })
        })
        .context("[http]: cannot start its thread")?;
    Ok(thread)
}

async fn serve(sink: Arc<HttpSink>, listener: TcpListener, shutdown: Shutdown) {
    tokio::spawn(keep_last_status(sink.clone(), shutdown.clone()));
    tokio::spawn(sink.feed.clone().run(sink.bus.clone(), shutdown.clone()));
    let app = router(sink.clone());
    let conns = Arc::new(Semaphore::new(sink.cfg.max_clients + EXTRA_CONNECTIONS));
    let mut shutdown = shutdown;
    loop {
        tokio::select! {
            _ = shutdown.raised() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    // Past the limit a connection is closed at once.
                    let Ok(permit) = conns.clone().try_acquire_owned() else { continue };
                    let svc = TowerToHyperService::new(app.clone());
                    tokio::spawn(async move {
                        let mut b = hyper::server::conn::http1::Builder::new();
                        b.timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .max_buf_size(MAX_HEADER_BYTES);
                        let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("[http] accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Keeps the last status for `/api/status`.
async fn keep_last_status(sink: Arc<HttpSink>, mut shutdown: Shutdown) {
    let mut rx = sink.bus.tx.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.raised() => return,
            m = rx.recv() => match m {
                Ok(m) if m.kind == Kind::Status => {
                    if let Ok(mut s) = sink.last_status.lock() {
                        *s = Some(m);
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
