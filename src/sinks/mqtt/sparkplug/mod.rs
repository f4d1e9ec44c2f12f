//! Sparkplug B (spec 3.0) beside the plain topics: a second connection to
//! the same broker whose will is the NDEATH, so SCADA hosts and historians
//! (Ignition, Neuron, Telegraf's parser) see when the box goes stale. The
//! box is the edge node (`[mqtt] node`), each stream a device.
//!
//! - NBIRTH (`bdSeq`, `Node Control/Rebirth`) after every connect, each
//!   stream's DBIRTH at its first frame; again on an NCMD `Rebirth`.
//! - DDATA every `frame-interval-s` with the metrics that changed since
//!   the last (report by exception), and at once for each event.
//! - `seq` 0..=255 over every message of a birth; `bdSeq` kept in the
//!   spool directory, one more per connection, so it changes across restarts.
//! - Events go through a spool of their own: those raised while the broker
//!   was away are replayed after the births with `is_historical`.
//!
//! All Sparkplug messages but the will are QoS 0, as the spec asks; the
//! plain topics carry the same events QoS 1 (docs/fleet.md).

mod device;
mod proto;
mod session;

pub use session::run;

use crate::protocol::SparkplugStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

pub const NAMESPACE: &str = "spBv1.0";

/// What `status` says of the Sparkplug connection.
#[derive(Debug, Default)]
pub struct Stats {
    pub connected: AtomicBool,
    pub bd_seq: AtomicU64,
    pub births: AtomicU64,
    pub rebirth_requests: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_not_sent: AtomicU64,
    pub historical_sent: AtomicU64,
    pub spool_entries: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Stats {
    pub fn status(&self, group_id: &str) -> SparkplugStatus {
        SparkplugStatus {
            group_id: group_id.to_string(),
            connected: self.connected.load(Relaxed),
            bd_seq: self.bd_seq.load(Relaxed),
            births: self.births.load(Relaxed),
            rebirth_requests: self.rebirth_requests.load(Relaxed),
            messages_sent: self.messages_sent.load(Relaxed),
            messages_not_sent: self.messages_not_sent.load(Relaxed),
            historical_sent: self.historical_sent.load(Relaxed),
            spool_entries: self.spool_entries.load(Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = e;
        }
    }
}

/// `spBv1.0/<group>/<TYPE>/<node>[/<device>]`.
#[derive(Debug, Clone)]
pub struct Topics {
    group: String,
    node: String,
}

impl Topics {
    pub fn new(group: &str, node: &str) -> Self {
        Self {
            group: group.to_string(),
            node: node.to_string(),
        }
    }
    pub fn node(&self, kind: &str) -> String {
        format!("{NAMESPACE}/{}/{kind}/{}", self.group, self.node)
    }
    pub fn device(&self, kind: &str, device: &str) -> String {
        format!("{}/{device}", self.node(kind))
    }
}

/// The birth/death sequence number, one more per connection and kept in
/// `path` across restarts (0..=255, as the spec asks).
pub fn next_bd_seq(path: &std::path::Path) -> u64 {
    let last = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let next = last.map_or(0, |b| (b + 1) % 256);
    if let Err(e) = std::fs::write(path, format!("{next}\n")) {
        // A bdSeq that repeats after a restart is still matched by its NDEATH.
        tracing::warn!(
            "[mqtt] sparkplug bdSeq {}: cannot write: {e}",
            path.display()
        );
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bd_seq_counts_connections_across_restarts_and_wraps() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("bdseq");
        assert_eq!(next_bd_seq(&p), 0);
        assert_eq!(next_bd_seq(&p), 1);
        std::fs::write(&p, "255\n").expect("write");
        assert_eq!(next_bd_seq(&p), 0, "wraps at 256");
    }

    #[test]
    fn topics_follow_the_spec() {
        let t = Topics::new("plant", "box-7");
        assert_eq!(t.node("NBIRTH"), "spBv1.0/plant/NBIRTH/box-7");
        assert_eq!(t.device("DDATA", "pump"), "spBv1.0/plant/DDATA/box-7/pump");
    }
}
