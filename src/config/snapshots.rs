//! `[snapshots]`: the evidence WAVs kept around every alarm (see `snapshot`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SnapshotConfig {
    /// Spool directory (none: no snapshots).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default = "default_pre")]
    pub pre_s: f64,
    #[serde(default = "default_post")]
    pub post_s: f64,
    /// Total size cap of the spool, MB.
    #[serde(default = "default_cap")]
    pub max_mb: f64,
}

fn default_pre() -> f64 {
    5.0
}
fn default_post() -> f64 {
    5.0
}
fn default_cap() -> f64 {
    200.0
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}
