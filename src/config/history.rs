//! `[history]`: the store of per-stream summaries on the box (see
//! `history` and `sinks::history`). Off when the table is absent.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HistoryConfig {
    /// The SQLite file (default: `<[monitor] state-dir>/history.sqlite`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// How long each tier keeps its rows, in days: 10 s rows, 1 min rows,
    /// 1 h rows. Older rows of a tier are deleted; the next tier already
    /// holds them rolled up.
    #[serde(default = "default_keep_days")]
    pub keep_days: [f64; 3],
    /// The file's size cap in MiB: above it the oldest rows of the finest
    /// tier that still has rows older than a day are deleted first.
    #[serde(default = "default_max_mb")]
    pub max_mb: f64,
    /// Seconds between writes (one transaction each: SD cards wear per write).
    #[serde(default = "default_flush_s")]
    pub flush_s: f64,
    /// Seconds between two runs of the trend analysis of each stream.
    #[serde(default = "default_trend_s")]
    pub trend_interval_s: f64,
}

fn default_keep_days() -> [f64; 3] {
    [14.0, 365.0, 3650.0]
}
fn default_max_mb() -> f64 {
    2560.0
}
fn default_flush_s() -> f64 {
    60.0
}
fn default_trend_s() -> f64 {
    300.0
}

impl Default for HistoryConfig {
    fn default() -> Self {
        toml::from_str("").expect("empty history table uses defaults")
    }
}

impl HistoryConfig {
    /// The checks serde cannot make: (key, what is wrong).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let [a, b, c] = self.keep_days;
        if !(a.is_finite() && a > 0.0 && a <= b && b <= c && c.is_finite()) {
            return Err((
                "keep-days",
                format!("{:?}: want three rising day counts (10 s, 1 min, 1 h rows), like [14, 365, 3650]", self.keep_days),
            ));
        }
        if !(self.max_mb.is_finite() && self.max_mb >= 1.0) {
            return Err(("max-mb", format!("{} is below 1 MiB", self.max_mb)));
        }
        if !(self.flush_s.is_finite() && (1.0..=3600.0).contains(&self.flush_s)) {
            return Err((
                "flush-s",
                format!("{} is out of range 1..=3600 seconds", self.flush_s),
            ));
        }
        if !(self.trend_interval_s.is_finite()
            && (10.0..=86_400.0).contains(&self.trend_interval_s))
        {
            return Err((
                "trend-interval-s",
                format!(
                    "{} is out of range 10..=86400 seconds",
                    self.trend_interval_s
                ),
            ));
        }
        Ok(())
    }
}
