//! `[monitor]`: how frames become a machine state (debouncing, ISO zones,
//! the baseline), also per source as `[source.monitor]`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MonitorConfig {
    /// Frames averaged before deciding (8 frames at hop 512 = 0.34 s).
    #[serde(default = "default_smoothing")]
    pub smoothing_frames: usize,
    /// A fault (or another fault class) must hold this long to be raised.
    #[serde(default = "default_raise")]
    pub raise_after_s: f64,
    /// A fault must be gone this long to clear (longer than raising: hysteresis).
    #[serde(default = "default_clear")]
    pub clear_after_s: f64,
    /// Smoothed top probability below this is `uncertain`.
    #[serde(default = "default_confidence")]
    pub min_confidence: f32,
    /// Frame standard deviation (sensor units) below this is no signal.
    #[serde(default = "default_floor")]
    pub signal_floor: f32,
    /// No samples for this long (wall clock) is no signal.
    #[serde(default = "default_no_data")]
    pub no_data_after_s: f64,
    /// The class that means "healthy".
    #[serde(default = "default_healthy")]
    pub healthy_class: String,
    /// Where each stream's state is kept across restarts (none: not kept).
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
    /// Velocity RMS limits A/B, B/C, C/D in mm/s (ISO 20816-3, group 2,
    /// rigid foundation, by default); streams with `units` only.
    #[serde(default = "default_zones")]
    pub iso_zones: [f64; 3],
    /// Seconds of signal to learn a baseline from when a stream has none.
    #[serde(default)]
    pub learn_s: Option<f64>,
    /// Frames the anomaly score is judged over (24 = 1 s at hop 512): the
    /// machine is anomalous when three quarters of them are above 1.0, so
    /// a knock on the housing lasting a few frames is not.
    #[serde(default = "default_anomaly_frames")]
    pub anomaly_frames: usize,
    /// The network was trained on this machine (or its twin): with a
    /// baseline, its family alone may name a fault. Off by default: on a
    /// machine it never saw it names the family near chance.
    #[serde(default)]
    pub trust_network: bool,
}

fn default_anomaly_frames() -> usize {
    24
}

/// Longest `learn-s`: a week.
pub const MAX_LEARN_S: f64 = 7.0 * 86_400.0;

impl MonitorConfig {
    /// The checks of one `[monitor]` table: (key, what is wrong).
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        check_zones(&self.iso_zones).map_err(|e| ("iso-zones", e))?;
        if let Some(s) = self.learn_s {
            if !(s.is_finite() && (10.0..=MAX_LEARN_S).contains(&s)) {
                return Err((
                    "learn-s",
                    format!("{s} is out of range 10..={MAX_LEARN_S} seconds"),
                ));
            }
        }
        if !(1..=10_000).contains(&self.anomaly_frames) {
            return Err((
                "anomaly-frames",
                format!("{} is out of range 1..=10000", self.anomaly_frames),
            ));
        }
        Ok(())
    }
}

fn default_zones() -> [f64; 3] {
    [1.4, 2.8, 4.5]
}

fn default_smoothing() -> usize {
    8
}
fn default_raise() -> f64 {
    0.5
}
fn default_clear() -> f64 {
    0.8
}
fn default_confidence() -> f32 {
    0.6
}
fn default_floor() -> f32 {
    // Off: a dead sensor is judged from the signal (`Frame::no_signal`),
    // and a quiet machine on a sensitive scale is not silence.
    0.0
}
fn default_no_data() -> f64 {
    1.0
}
fn default_healthy() -> String {
    "Normal".into()
}

impl Default for MonitorConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

/// Zone limits must rise and be positive.
fn check_zones(z: &[f64; 3]) -> Result<(), String> {
    if z.iter().all(|v| v.is_finite() && *v > 0.0) && z[0] < z[1] && z[1] < z[2] {
        Ok(())
    } else {
        Err(format!(
            "{z:?}: want three rising limits in mm/s (A/B, B/C, C/D), like [1.4, 2.8, 4.5]"
        ))
    }
}
