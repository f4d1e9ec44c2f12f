//! `[socket]`: the Unix socket subscribers read (see `sinks::socket`).

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SocketConfig {
    #[serde(default = "default_socket")]
    pub path: PathBuf,
    /// Octal permission bits, as a string ("0660").
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Messages buffered for each client before it starts missing some.
    #[serde(default = "default_client_queue")]
    pub client_queue: usize,
    /// A client that misses more than this many messages in total is cut off.
    #[serde(default = "default_max_missed")]
    pub max_missed: u64,
    /// A client whose socket accepts nothing for this long is cut off.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
    #[serde(default = "default_status_interval_ms")]
    pub status_interval_ms: u64,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/drsn/drsn.sock")
}
fn default_mode() -> String {
    "0660".into()
}
fn default_max_clients() -> usize {
    256
}
fn default_client_queue() -> usize {
    1024
}
fn default_max_missed() -> u64 {
    10_000
}
fn default_write_timeout_ms() -> u64 {
    10_000
}
fn default_status_interval_ms() -> u64 {
    2000
}

impl Default for SocketConfig {
    fn default() -> Self {
        toml::from_str("").expect("empty socket table uses defaults")
    }
}
