//! The MQTT sink (fleet): one more reader of the bus, on a thread of its
//! own ("mqtt"), publishing to one broker (topics and payloads in `topics`,
//! docs/fleet.md). Events and state changes go through the on-disk spool
//! (`spool`) and are sent, QoS 1, until the broker acknowledges them; frames
//! (summaries by default) are QoS 0 and only sent while connected.
//!
//! The client (rumqttc) is made anew for every connection, so nothing of a
//! lost connection lingers in its queue: the spool alone says what is still
//! owed, and a new connection starts sending from its oldest entry.

pub mod homeassistant;
mod session;
pub mod sparkplug;
mod spool;
pub mod topics;

use super::{Bus, Running, Shutdown, Sink};
use crate::config::{FramesMode, MqttConfig};
use crate::protocol::{MqttStatus, Status};
use anyhow::{Context, Result};
use rumqttc::{LastWill, MqttOptions, TlsConfiguration, Transport};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What `status` says of the sink; written by its thread only.
#[derive(Debug, Default)]
pub struct MqttStats {
    pub connected: AtomicBool,
    pub connect_attempts: AtomicU64,
    pub spool_entries: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_dropped: AtomicU64,
    pub acknowledged: AtomicU64,
    pub frames_sent: AtomicU64,
    /// Frame messages not sent because the broker was away.
    pub frames_not_sent: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl MqttStats {
    pub fn status(&self, broker: &str) -> MqttStatus {
        MqttStatus {
            broker: broker.to_string(),
            connected: self.connected.load(Relaxed),
            connect_attempts: self.connect_attempts.load(Relaxed),
            spool_entries: self.spool_entries.load(Relaxed),
            spool_bytes: self.spool_bytes.load(Relaxed),
            spool_dropped: self.spool_dropped.load(Relaxed),
            acknowledged: self.acknowledged.load(Relaxed),
            frames_sent: self.frames_sent.load(Relaxed),
            frames_not_sent: self.frames_not_sent.load(Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            sparkplug: None,
        }
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = e;
        }
    }
}

/// Everything a connection needs, read once at start (or at a reload's
/// check), so that a missing file is an error that names its key.
#[derive(Clone)]
pub struct Settings {
    pub cfg: MqttConfig,
    pub node: String,
    pub client_id: String,
    pub topics: topics::Topics,
    pub password: Option<String>,
    pub ca: Option<Vec<u8>>,
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

impl Settings {
    pub fn read(cfg: &MqttConfig) -> Result<Self> {
        let read = |key: &str, p: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>> {
            p.as_ref()
                .map(|p| {
                    std::fs::read(p)
                        .with_context(|| format!("[mqtt] {key} {}: cannot read", p.display()))
                })
                .transpose()
        };
        let ca = read("ca-file", &cfg.ca_file)?;
        let cert = read("cert-file", &cfg.cert_file)?;
        let key = read("key-file", &cfg.key_file)?;
        for (k, pem) in [("ca-file", &ca), ("cert-file", &cert), ("key-file", &key)] {
            if pem
                .as_ref()
                .is_some_and(|b| !b.windows(10).any(|w| w == b"-----BEGIN"))
            {
                anyhow::bail!("[mqtt] {k}: not a PEM file (no -----BEGIN line)");
            }
        }
        let ca = match (ca, cfg.url().tls) {
            (Some(ca), _) => Some(ca),
            // mqtts without ca-file: the system's trusted roots.
            (None, true) => Some(
                std::fs::read("/etc/ssl/certs/ca-certificates.crt")
                    .context("[mqtt] ca-file not set and the system CA bundle cannot be read")?,
            ),
            (None, false) => None,
        };
        let node = cfg.node();
        Ok(Self {
            password: cfg.password().map_err(anyhow::Error::msg)?,
            client_id: cfg.client_id(),
            topics: topics::Topics::new(&cfg.site, &node),
            node,
            ca,
            client_auth: cert.zip(key),
            cfg: cfg.clone(),
        })
    }

    /// What both connections share: the broker, credentials and TLS.
    pub fn options(&self, client_id: &str, will: LastWill) -> MqttOptions {
        let url = self.cfg.url();
        let mut o = MqttOptions::new(client_id, &url.host, url.port);
        o.set_keep_alive(Duration::from_secs(self.cfg.keep_alive_s));
        o.set_clean_session(true);
        o.set_inflight(100);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_last_will(will);
        if let Some(u) = &self.cfg.username {
            o.set_credentials(u, self.password.clone().unwrap_or_default());
        }
        if url.tls {
            o.set_transport(Transport::Tls(TlsConfiguration::Simple {
                ca: self.ca.clone().unwrap_or_default(),
                alpn: None,
                client_auth: self.client_auth.clone(),
            }));
        }
        o
    }

    pub fn frames_mode(&self) -> &'static str {
        match self.cfg.frames {
            FramesMode::Summary => "summary",
            FramesMode::All => "all",
            FramesMode::None => "none",
        }
    }
}

/// The sink, built and not started: settings read and the spools open.
pub struct Prepared {
    settings: Settings,
    spool: spool::Spool,
    /// With `sparkplug`: its own spool and where its bdSeq is kept.
    sparkplug: Option<(spool::Spool, PathBuf)>,
}

/// Reads every file the settings name and opens the spool; each error
/// names its key (exit 78 at start; at a reload the old settings stay).
pub fn prepare(cfg: &MqttConfig, state_dir: Option<&Path>) -> Result<Prepared> {
    let settings = Settings::read(cfg)?;
    let dir = cfg.spool_dir(state_dir);
    let spool = spool::Spool::open(&dir, cfg.spool_max_mb)?;
    let sparkplug = if cfg.sparkplug {
        let dir = dir.join("sparkplug");
        let spool = spool::Spool::open(&dir, cfg.spool_max_mb)?;
        Some((spool, dir.join("bdseq")))
    } else {
        None
    };
    Ok(Prepared {
        settings,
        spool,
        sparkplug,
    })
}

/// The sink as the daemon runs it: on a thread of its own, which after
/// the shutdown flushes what is owed for up to 2 s, then says offline.
pub struct Mqtt {
    bus: Arc<Bus>,
    prepared: Option<Prepared>,
    stats: Arc<MqttStats>,
    sparkplug: Arc<sparkplug::Stats>,
    broker: String,
    /// With `sparkplug`.
    group_id: Option<String>,
}

impl Mqtt {
    pub fn new(bus: Arc<Bus>, prepared: Prepared, cfg: &MqttConfig) -> Self {
        // Events raised before the sink reads them are not lost.
        bus.keep_events(1000);
        Self {
            bus,
            prepared: Some(prepared),
            stats: Arc::default(),
            sparkplug: Arc::default(),
            broker: cfg.broker.clone(),
            group_id: cfg.sparkplug.then(|| cfg.group_id.clone()),
        }
    }
}

impl Sink for Mqtt {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(3)
    }

    fn start(&mut self, shutdown: Shutdown) -> Result<Running> {
        let Prepared {
            settings,
            spool,
            sparkplug,
        } = self
            .prepared
            .take()
            .context("[mqtt]: the sink was started twice")?;
        let rt = runtime()?;
        let mut threads = Vec::new();
        if let Some(sp) = sparkplug {
            let (bus, stats, s) = (self.bus.clone(), self.sparkplug.clone(), settings.clone());
            let rx = bus.tx.subscribe();
            let shutdown = shutdown.clone();
            let rt = runtime()?;
            threads.push(
                std::thread::Builder::new()
                    .name("sparkplug".into())
                    .spawn(move || rt.block_on(sparkplug::run(bus, rx, s, sp, stats, shutdown)))
                    .context("[mqtt]: cannot start the sparkplug thread")?,
            );
        }
        let (bus, stats) = (self.bus.clone(), self.stats.clone());
        // Subscribed here, before the thread runs: nothing sent after start is missed.
        let rx = bus.tx.subscribe();
        threads.push(
            std::thread::Builder::new()
                .name("mqtt".into())
                .spawn(move || rt.block_on(session::run(bus, rx, settings, spool, stats, shutdown)))
                .context("[mqtt]: cannot start its thread")?,
        );
        Ok(Running::Threads(threads))
    }

    fn report(&self, status: &mut Status) {
        let mut s = self.stats.status(&self.broker);
        s.sparkplug = self.group_id.as_ref().map(|g| self.sparkplug.status(g));
        status.mqtt = Some(s);
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("[mqtt]: cannot start its runtime")
}
