//! `[[source]]`: where samples come from, what they measure (units,
//! sensitivity) and the machine behind them (shaft speed, bearing).

use super::{Bearing, MonitorConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Cpal,
    Wav,
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// As the samples would arrive from a sensor.
    #[default]
    Realtime,
    /// As fast as inference allows (nothing is dropped: the reader waits).
    Fast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawFormat {
    F32le,
    S16le,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// One stream name per channel, in channel order; "" skips a channel.
    #[serde(default = "default_streams")]
    pub streams: Vec<String>,
    /// cpal: device by ALSA id ("default", "hw:1,0", "plughw:...") or part of its description.
    pub device: Option<String>,
    /// cpal: requested rate (default: the device's); raw: the data's rate (required).
    pub rate: Option<u32>,
    /// cpal: requested channels; raw: channels in the data (default 1).
    pub channels: Option<u16>,
    /// cpal: fixed buffer size in frames (ALSA's default can be huge).
    #[serde(default = "default_buffer_frames")]
    pub buffer_frames: u32,
    /// raw: sample format.
    pub format: Option<RawFormat>,
    /// wav: file; raw: file or FIFO, "-" for stdin.
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub pace: Pace,
    /// wav: start again at the end.
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// Multiplies samples into sensor units (e.g. g per full scale).
    #[serde(default = "default_gain")]
    pub gain: f32,
    /// |sample| at or above this counts as clipped (default: full scale for
    /// integer formats, none for float data).
    pub clip_level: Option<f32>,
    /// Capture ring size in seconds of audio.
    #[serde(default = "default_ring_seconds")]
    pub ring_seconds: f32,
    /// cpal: when inference falls this far behind (seconds of unread audio),
    /// the oldest is skipped, counted as overrun, so results stay current.
    /// File and pipe sources wait instead and lose nothing.
    #[serde(default = "default_max_lag_s")]
    pub max_lag_s: f32,
    /// Debounce settings for this source's streams, replacing the global
    /// [monitor] table (its state-dir is used if this one names none).
    #[serde(default)]
    pub monitor: Option<MonitorConfig>,
    /// What the samples (after `gain`) measure; without it, no physical
    /// figures (velocity, ISO zone, crest, kurtosis) for these streams.
    pub units: Option<Units>,
    /// With `units = "V"`: the sensor's sensitivity in mV per g.
    pub sensitivity: Option<f64>,
    /// Shaft speed of the machine, rev/min; with `bearing`, the envelope
    /// spectrum's evidence per bearing defect (docs/monitoring.md).
    pub rpm: Option<f64>,
    /// The speeds the shaft may really run at, rev/min: the envelope
    /// measures the speed within them (default `rpm` ±5 %; `[rpm, rpm]`
    /// pins it, for a synchronous machine).
    pub rpm_range: Option<[f64; 2]>,
    /// The bearing's defect frequencies as multiples of shaft speed, given
    /// as orders or by the bearing's geometry (`config::bearing`).
    pub bearing: Option<Bearing>,
    /// Band around the bearing resonance to demodulate, Hz (default: the
    /// band with the clearest defect lines, chosen per window).
    pub envelope_band: Option<[f64; 2]>,
}

/// Shaft speeds the envelope analysis can resolve, rev/min.
pub const RPM_RANGE: std::ops::RangeInclusive<f64> = 10.0..=60_000.0;

/// What is wrong with a shaft speed.
pub fn check_rpm(rpm: f64) -> Result<(), String> {
    if rpm.is_finite() && RPM_RANGE.contains(&rpm) {
        Ok(())
    } else {
        Err(format!(
            "{rpm} is not a shaft speed this analysis resolves ({}..={} rev/min)",
            RPM_RANGE.start(),
            RPM_RANGE.end()
        ))
    }
}

/// What is wrong with a range of shaft speeds around the nominal `rpm`.
pub fn check_rpm_range(rpm: f64, r: &[f64; 2]) -> Result<(), String> {
    for v in r {
        check_rpm(*v)?;
    }
    if !(r[0] <= rpm && rpm <= r[1]) {
        return Err(format!(
            "[{}, {}] does not hold the nominal rpm = {rpm}; give [low, high] around it",
            r[0], r[1]
        ));
    }
    if r[1] > 10.0 * r[0] {
        return Err(format!(
            "[{}, {}] spans more than a factor of 10; a comb search that wide locks onto \
             harmonics",
            r[0], r[1]
        ));
    }
    Ok(())
}

/// What is wrong with an envelope band, Hz.
pub fn check_band(b: &[f64; 2]) -> Result<(), String> {
    if b.iter().all(|v| v.is_finite() && *v > 0.0) && b[1] - b[0] >= 100.0 {
        Ok(())
    } else {
        Err(format!(
            "{b:?}: want [low, high] in Hz, at least 100 Hz apart, like [2000, 5000]"
        ))
    }
}

/// The unit of a source's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Units {
    #[serde(rename = "g")]
    G,
    #[serde(rename = "m/s2")]
    MetresPerSecond2,
    /// Volts from an IEPE accelerometer, with `sensitivity` in mV/g.
    #[serde(rename = "V")]
    Volts,
}

/// Standard gravity, m/s² per g.
pub const STANDARD_G: f64 = 9.80665;

impl SourceConfig {
    /// Sensor units to m/s², when the source says its units.
    pub fn to_ms2(&self) -> Option<f64> {
        match self.units? {
            Units::G => Some(STANDARD_G),
            Units::MetresPerSecond2 => Some(1.0),
            Units::Volts => self
                .sensitivity
                .map(|mv_per_g| STANDARD_G * 1000.0 / mv_per_g),
        }
    }

    /// The units as hello names them ("g", "m/s2", "V at 100 mV/g").
    pub fn units_label(&self) -> Option<String> {
        Some(match self.units? {
            Units::G => "g".into(),
            Units::MetresPerSecond2 => "m/s2".into(),
            Units::Volts => format!("V at {} mV/g", self.sensitivity.unwrap_or(0.0)),
        })
    }
}

fn default_streams() -> Vec<String> {
    vec!["main".into()]
}
fn default_buffer_frames() -> u32 {
    1024
}
fn default_gain() -> f32 {
    1.0
}
fn default_max_lag_s() -> f32 {
    1.0
}
fn default_ring_seconds() -> f32 {
    4.0
}

impl SourceConfig {
    /// `rpm`, `bearing` and `envelope-band` come together, with units.
    fn check_envelope(&self) -> Result<(), (&'static str, String)> {
        if let Some(rpm) = self.rpm {
            check_rpm(rpm).map_err(|e| ("rpm", e))?;
        }
        match (self.rpm, self.rpm_range) {
            (None, Some(_)) => return Err(("rpm-range", "needs `rpm`, the nominal speed".into())),
            (Some(rpm), Some(r)) => check_rpm_range(rpm, &r).map_err(|e| ("rpm-range", e))?,
            _ => {}
        }
        if let Some(b) = &self.bearing {
            b.check().map_err(|e| ("bearing", e))?;
        }
        if let Some(b) = &self.envelope_band {
            check_band(b).map_err(|e| ("envelope-band", e))?;
        }
        match (self.rpm, &self.bearing) {
            (Some(_), None) => Err(("rpm", "needs `bearing`, the defect orders".into())),
            (None, Some(_)) => Err(("bearing", "needs `rpm`, the shaft speed".into())),
            (Some(_), Some(_)) if self.units.is_none() => Err((
                "bearing",
                "needs `units`: the envelope evidence is one of the physical measures".into(),
            )),
            (None, None) if self.envelope_band.is_some() => {
                Err(("envelope-band", "needs `rpm` and `bearing`".into()))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.streams.iter().all(|s| s.is_empty()) {
            return Err(("streams", "name at least one stream".into()));
        }
        if !(self.gain.is_finite() && self.gain != 0.0) {
            return Err(("gain", format!("{} is not a usable gain", self.gain)));
        }
        match (self.units, self.sensitivity) {
            (Some(Units::Volts), None) => {
                return Err((
                    "sensitivity",
                    "units = \"V\" needs the sensor's sensitivity in mV/g".into(),
                ))
            }
            (_, Some(s)) if !(s.is_finite() && s > 0.0 && s < 1e6) => {
                return Err(("sensitivity", format!("{s} is not a sensitivity in mV/g")))
            }
            (Some(Units::G | Units::MetresPerSecond2) | None, Some(_)) => {
                return Err(("sensitivity", "only with units = \"V\"".into()))
            }
            _ => {}
        }
        if let Some(m) = &self.monitor {
            m.check()
                .map_err(|(key, e)| ("monitor", format!("{key}: {e}")))?;
        }
        self.check_envelope()?;
        if !(self.ring_seconds > 0.05 && self.ring_seconds <= 600.0) {
            return Err((
                "ring-seconds",
                format!("{} is out of range 0.05..=600", self.ring_seconds),
            ));
        }
        let live = self.kind == SourceKind::Cpal;
        if live && !(self.max_lag_s >= 0.2 && self.max_lag_s < self.ring_seconds) {
            return Err((
                "max-lag-s",
                format!(
                    "{} must be at least 0.2 and below ring-seconds ({})",
                    self.max_lag_s, self.ring_seconds
                ),
            ));
        }
        if let Some(r) = self.rate {
            if !(1000..=768_000).contains(&r) {
                return Err(("rate", format!("{r} Hz is out of range 1000..=768000")));
            }
        }
        if let Some(c) = self.channels {
            if c == 0 || c > 64 {
                return Err(("channels", format!("{c} is out of range 1..=64")));
            }
        }
        match self.kind {
            SourceKind::Wav if self.path.is_none() => {
                Err(("path", "a wav source needs `path`".into()))
            }
            SourceKind::Raw if self.path.is_none() => {
                Err(("path", "a raw source needs `path` (\"-\" for stdin)".into()))
            }
            SourceKind::Raw if self.rate.is_none() => {
                Err(("rate", "a raw source needs `rate`".into()))
            }
            SourceKind::Raw if self.format.is_none() => Err((
                "format",
                "a raw source needs `format` (f32le or s16le)".into(),
            )),
            SourceKind::Cpal if self.buffer_frames == 0 => {
                Err(("buffer-frames", "must be at least 1".into()))
            }
            _ => Ok(()),
        }
    }

    /// A short human label, e.g. "wav:/path/x.wav" or "cpal:default".
    pub fn label(&self) -> String {
        match self.kind {
            SourceKind::Cpal => format!("cpal:{}", self.device.as_deref().unwrap_or("default")),
            SourceKind::Wav => format!(
                "wav:{}",
                self.path.as_deref().unwrap_or(Path::new("")).display()
            ),
            SourceKind::Raw => format!(
                "raw:{}",
                self.path.as_deref().unwrap_or(Path::new("")).display()
            ),
        }
    }
}
