//! The TOML config (`/etc/drsn/drsnd.toml`): serde with `deny_unknown_fields`
//! and kebab-case keys, so a typo is an error that names the key and line.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod mqtt;
pub use mqtt::{BrokerUrl, FramesMode, MqttConfig};

pub const DEFAULT_MODEL_NAME: &str = "drsn-cw-cwru10.json";
pub const DEFAULT_DENOISER_NAME: &str = "drsn-denoise.json";
/// 64 frames at hop 512 is 2.7 s: beyond that a fault would wait too long.
pub const MAX_FRAMES_PER_WAKE: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Model manifest (.json) or ONNX file with its manifest beside it.
    #[serde(default = "default_model")]
    pub model: PathBuf,
    /// Samples (at the model rate) between the starts of consecutive frames.
    #[serde(default = "default_hop")]
    pub hop: usize,
    /// Frames run together when inference has fallen behind. 1 by default:
    /// measured with tract 0.23 on the shipped model, a batch of 8 costs
    /// 0.27 ms per frame against 0.17 ms one at a time (`bench/run.sh --steps model`).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Frames a stream's worker waits for before it wakes and analyses them
    /// back to back. The first call after a pause pays for cold caches, the
    /// next ones do not, so 4 costs about a quarter less CPU per stream, and
    /// frames reach the sinks up to 3 hops (128 ms) later (bench/NOTES.md).
    #[serde(default = "default_frames_per_wake")]
    pub frames_per_wake: usize,
    #[serde(default)]
    pub socket: SocketConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub monitor: MonitorConfig,
    #[serde(default)]
    pub snapshots: SnapshotConfig,
    /// The web page, SSE and Prometheus metrics (off when absent).
    #[serde(default)]
    pub http: Option<HttpConfig>,
    /// The fleet: an MQTT broker with store-and-forward (off when absent).
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    /// The DRSN denoiser on every stream (off when absent).
    #[serde(default)]
    pub denoise: Option<DenoiseConfig>,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpConfig {
    /// Address and port; anything but loopback needs `token-file`.
    #[serde(default = "default_http_listen")]
    pub listen: std::net::SocketAddr,
    /// A file holding the bearer token (one line) that every request must
    /// carry, as `Authorization: Bearer ...` or the cookie `/?token=` sets.
    pub token_file: Option<PathBuf>,
    /// Event streams (`/events`) served at once.
    #[serde(default = "default_http_clients")]
    pub max_clients: usize,
    /// Frames per second per stream sent to a page (`/events?fps=N` asks
    /// for another rate, `fps=0` for every frame). Events are never thinned.
    #[serde(default = "default_http_fps")]
    pub frames_per_second: f64,
    /// Events kept for a page that reconnects with `Last-Event-ID`.
    #[serde(default = "default_http_replay")]
    pub replay_events: usize,
    /// Each frame carries its spectrum for the page (`spectrum_db`).
    #[serde(default = "default_true")]
    pub spectrum: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DenoiseConfig {
    /// The denoiser's manifest (.json) or ONNX file with its manifest beside it.
    pub model: PathBuf,
    /// Where each stream's denoised signal is served, as raw f32le at the
    /// model rate, on the Unix socket `<socket-dir>/<stream>.f32`.
    pub socket_dir: Option<PathBuf>,
}

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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogConfig {
    /// tracing filter, e.g. "info" or "drsnd=debug"; RUST_LOG wins if set.
    #[serde(default = "default_log_level")]
    pub level: String,
}

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
    /// The bearing's defect frequencies as multiples of shaft speed.
    pub bearing: Option<Bearing>,
    /// Band around the bearing resonance to demodulate, Hz (default: the
    /// band with the clearest defect lines, chosen per window).
    pub envelope_band: Option<[f64; 2]>,
}

/// Defect orders of a rolling bearing (from its maker's data or geometry):
/// outer race, inner race, ball spin (impacts at twice it) and cage.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bearing {
    pub bpfo: f64,
    pub bpfi: f64,
    pub bsf: f64,
    pub ftf: Option<f64>,
}

/// Shaft speeds the envelope analysis can resolve, rev/min.
pub const RPM_RANGE: std::ops::RangeInclusive<f64> = 10.0..=60_000.0;
/// Defect orders a real bearing can have.
pub const ORDER_RANGE: std::ops::RangeInclusive<f64> = 0.1..=50.0;

impl Bearing {
    /// What is wrong with the orders, naming the one.
    pub fn check(&self) -> Result<(), String> {
        for (key, v) in [("bpfo", self.bpfo), ("bpfi", self.bpfi), ("bsf", self.bsf)] {
            if !(v.is_finite() && ORDER_RANGE.contains(&v)) {
                return Err(format!(
                    "{key} = {v} is not a defect order (multiples of shaft speed, {}..={})",
                    ORDER_RANGE.start(),
                    ORDER_RANGE.end()
                ));
            }
        }
        match self.ftf {
            Some(v) if !(v.is_finite() && v > 0.0 && v < 1.0) => Err(format!(
                "ftf = {v}: the cage turns slower than the shaft (0 < ftf < 1)"
            )),
            _ => Ok(()),
        }
    }
}

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

/// Where the model is when the config names none: `models/` in the working
/// directory (a run from a checkout), else where the package installs it.
/// Nothing of the build machine is baked in.
fn default_model() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        let local = cwd.join("models").join(DEFAULT_MODEL_NAME);
        if local.exists() {
            return local;
        }
    }
    Path::new(PACKAGED_MODELS).join(DEFAULT_MODEL_NAME)
}

/// The package's model directory (scripts/build-deb.sh installs there).
pub const PACKAGED_MODELS: &str = "/usr/share/drsn/models";

fn default_http_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9750))
}
fn default_http_clients() -> usize {
    32
}
fn default_http_fps() -> f64 {
    10.0
}
fn default_http_replay() -> usize {
    10_000
}
fn default_true() -> bool {
    true
}
fn default_hop() -> usize {
    512
}
fn default_max_batch() -> usize {
    1
}
fn default_frames_per_wake() -> usize {
    1
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
fn default_log_level() -> String {
    "info".into()
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

impl Default for SocketConfig {
    fn default() -> Self {
        toml::from_str("").expect("empty socket table uses defaults")
    }
}
impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
        }
    }
}
impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("empty config uses defaults")
    }
}

// [monitor] and [snapshots] live here with the rest of the file's shape, so
// that config depends on nothing and the stages that read it depend on config.

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MonitorConfig {
    /// Frames averaged before deciding (8 frames at hop 512 = 0.34 s).
    #[serde(default = "d_smoothing")]
    pub smoothing_frames: usize,
    /// A fault (or another fault class) must hold this long to be raised.
    #[serde(default = "d_raise")]
    pub raise_after_s: f64,
    /// A fault must be gone this long to clear (longer than raising: hysteresis).
    #[serde(default = "d_clear")]
    pub clear_after_s: f64,
    /// Smoothed top probability below this is `uncertain`.
    #[serde(default = "d_conf")]
    pub min_confidence: f32,
    /// Frame standard deviation (sensor units) below this is no signal.
    #[serde(default = "d_floor")]
    pub signal_floor: f32,
    /// No samples for this long (wall clock) is no signal.
    #[serde(default = "d_no_data")]
    pub no_data_after_s: f64,
    /// The class that means "healthy".
    #[serde(default = "d_healthy")]
    pub healthy_class: String,
    /// Where each stream's state is kept across restarts (none: not kept).
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
    /// Velocity RMS limits A/B, B/C, C/D in mm/s (ISO 20816-3, group 2,
    /// rigid foundation, by default); streams with `units` only.
    #[serde(default = "d_zones")]
    pub iso_zones: [f64; 3],
    /// Seconds of signal to learn a baseline from when a stream has none.
    #[serde(default)]
    pub learn_s: Option<f64>,
    /// Frames the anomaly score is judged over (24 = 1 s at hop 512): the
    /// machine is anomalous when three quarters of them are above 1.0, so
    /// a knock on the housing lasting a few frames is not.
    #[serde(default = "d_anomaly_frames")]
    pub anomaly_frames: usize,
}

fn d_anomaly_frames() -> usize {
    24
}

/// Longest `learn-s`: a week.
pub const MAX_LEARN_S: f64 = 7.0 * 86_400.0;

impl MonitorConfig {
    /// The checks of one `[monitor]` table: (key, what is wrong).
    fn check(&self) -> Result<(), (&'static str, String)> {
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

fn d_zones() -> [f64; 3] {
    [1.4, 2.8, 4.5]
}

fn d_smoothing() -> usize {
    8
}
fn d_raise() -> f64 {
    0.5
}
fn d_clear() -> f64 {
    0.8
}
fn d_conf() -> f32 {
    0.6
}
fn d_floor() -> f32 {
    1e-4
}
fn d_no_data() -> f64 {
    1.0
}
fn d_healthy() -> String {
    "Normal".into()
}

impl Default for MonitorConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SnapshotConfig {
    /// Spool directory (none: no snapshots).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default = "d_pre")]
    pub pre_s: f64,
    #[serde(default = "d_post")]
    pub post_s: f64,
    /// Total size cap of the spool, MB.
    #[serde(default = "d_cap")]
    pub max_mb: f64,
}

fn d_pre() -> f64 {
    5.0
}
fn d_post() -> f64 {
    5.0
}
fn d_cap() -> f64 {
    200.0
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

/// A config problem, already phrased for the user (file, key, line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// The monitor settings of a source's streams: its own `[source.monitor]`
    /// or the global one, with the global `state-dir` when it names none.
    pub fn monitor_of(&self, sc: &SourceConfig) -> MonitorConfig {
        let mut m = sc.monitor.clone().unwrap_or_else(|| self.monitor.clone());
        if m.state_dir.is_none() {
            m.state_dir = self.monitor.state_dir.clone();
        }
        m
    }

    /// The source that names `stream`, and the stream's channel in it.
    pub fn stream(&self, stream: &str) -> Option<(&SourceConfig, usize)> {
        self.sources.iter().find_map(|sc| {
            let c = sc.streams.iter().position(|s| s == stream)?;
            Some((sc, c))
        })
    }

    /// Every named stream, in the order the daemon builds them.
    pub fn stream_names(&self) -> Vec<&str> {
        self.sources
            .iter()
            .flat_map(|sc| sc.streams.iter().filter(|s| !s.is_empty()))
            .map(String::as_str)
            .collect()
    }

    /// Model-rate samples between two wakes of a stream's worker.
    pub fn wake_samples(&self) -> usize {
        self.hop * self.frames_per_wake
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read config: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |s| s.start.min(text.len()));
            // For an unknown key toml points at its table; find the key itself.
            let unknown = e
                .message()
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next());
            let line = match unknown.and_then(|k| find_key(text, k, start)) {
                Some(n) => format!(" line {n}"),
                None if e.span().is_some() => {
                    format!(" line {}", text[..start].matches('\n').count() + 1)
                }
                None => String::new(),
            };
            // For a bad value, name the key it was given to.
            let line_text = text[..start].rsplit('\n').next().unwrap_or("");
            let key = match line_text.split_once('=') {
                Some((k, _)) if unknown.is_none() => format!(" key `{}`:", k.trim()),
                _ => String::new(),
            };
            ConfigError(format!("{origin}{line}:{key} {}", e.message()))
        })?;
        cfg.validate(text, origin)?;
        Ok(cfg)
    }

    /// Checks values serde cannot: ranges and per-kind requirements. Errors
    /// name the line of the very key (in the right `[[source]]`), from toml's
    /// spans of `text`.
    pub fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let lines = KeyLines::parse(text);
        let err = |path: &[Step], msg: String| {
            let key = match path.last() {
                Some(Step::Key(k)) => *k,
                _ => "",
            };
            let line = lines
                .line(path)
                .map(|n| format!(" line {n}"))
                .unwrap_or_default();
            ConfigError(format!("{origin}{line}: key `{key}`: {msg}"))
        };
        use Step::Key;
        self.monitor
            .check()
            .map_err(|(key, e)| err(&[Key("monitor"), Key(key)], e))?;
        if self.hop == 0 {
            return Err(err(&[Key("hop")], "must be at least 1".into()));
        }
        if self.max_batch == 0 || self.max_batch > 256 {
            return Err(err(
                &[Key("max-batch")],
                format!("{} is out of range 1..=256", self.max_batch),
            ));
        }
        if self.frames_per_wake == 0 || self.frames_per_wake > MAX_FRAMES_PER_WAKE {
            return Err(err(
                &[Key("frames-per-wake")],
                format!(
                    "{} is out of range 1..={MAX_FRAMES_PER_WAKE}",
                    self.frames_per_wake
                ),
            ));
        }
        if parse_mode(&self.socket.mode).is_none() {
            return Err(err(
                &[Key("socket"), Key("mode")],
                format!("{:?} is not an octal mode like \"0660\"", self.socket.mode),
            ));
        }
        if self.socket.max_clients == 0 {
            return Err(err(
                &[Key("socket"), Key("max-clients")],
                "must be at least 1".into(),
            ));
        }
        if self.socket.client_queue < 2 {
            return Err(err(
                &[Key("socket"), Key("client-queue")],
                "must be at least 2".into(),
            ));
        }
        if let Some(h) = &self.http {
            h.validate()
                .map_err(|(key, msg)| err(&[Key("http"), Key(key)], msg))?;
        }
        if let Some(m) = &self.mqtt {
            m.validate()
                .map_err(|(key, msg)| err(&[Key("mqtt"), Key(key)], msg))?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = |key| [Key("source"), Step::Index(i), Key(key)];
            s.validate().map_err(|(key, msg)| err(&at(key), msg))?;
            for n in s.streams.iter().filter(|n| !n.is_empty()) {
                if !names.insert(n.clone()) {
                    return Err(err(
                        &at("streams"),
                        format!("stream name {n:?} is used twice"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One step of a path into the file: a key, or an element of an array
/// (the n-th `[[source]]`).
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The file as toml parsed it, with the span of every key and value, so an
/// error names the line of the key that is wrong, not of the first key of
/// that name in the file.
struct KeyLines<'a> {
    text: &'a str,
    root: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

impl<'a> KeyLines<'a> {
    fn parse(text: &'a str) -> Self {
        Self {
            text,
            root: toml::de::DeTable::parse(text).ok(),
        }
    }

    /// 1-based line of the deepest step of `path` found in the file: the
    /// key itself when it is there, else the table that should hold it.
    fn line(&self, path: &[Step]) -> Option<usize> {
        use toml::de::DeValue;
        let mut table = self.root.as_ref()?.get_ref();
        let mut value: Option<&toml::Spanned<DeValue>> = None;
        let mut found = None;
        for step in path {
            if let Some(v) = value.take() {
                match (v.get_ref(), step) {
                    (DeValue::Table(t), Step::Key(_)) => table = t,
                    (DeValue::Array(a), Step::Index(i)) => {
                        let Some(e) = a.get(*i) else { break };
                        found = Some(e.span().start);
                        value = Some(e);
                        continue;
                    }
                    _ => break,
                }
            }
            let Step::Key(k) = step else { break };
            let Some((key, v)) = table.iter().find(|(key, _)| key.get_ref().as_ref() == *k) else {
                break;
            };
            found = Some(key.span().start);
            value = Some(v);
        }
        let at = found?.min(self.text.len());
        Some(self.text[..at].matches('\n').count() + 1)
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

impl HttpConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.listen.ip().is_loopback() && self.token_file.is_none() {
            return Err((
                "listen",
                format!(
                    "[http] {} is not loopback: set `token-file` so that only holders of the token can look",
                    self.listen
                ),
            ));
        }
        if self.max_clients == 0 {
            return Err(("max-clients", "must be at least 1".into()));
        }
        if !(self.frames_per_second >= 0.0 && self.frames_per_second.is_finite()) {
            return Err((
                "frames-per-second",
                format!(
                    "{} is not a rate (0 for every frame)",
                    self.frames_per_second
                ),
            ));
        }
        Ok(())
    }

    /// The token, read from `token-file` (None: no token asked for).
    pub fn token(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("[http] token-file {}: cannot read: {e}", path.display()))?;
        let token = text.trim();
        if token.len() < 16 {
            return Err(format!(
                "[http] token-file {}: the token must be at least 16 characters",
                path.display()
            ));
        }
        Ok(Some(token.to_string()))
    }
}

impl SourceConfig {
    /// `rpm`, `bearing` and `envelope-band` come together, with units.
    fn check_envelope(&self) -> Result<(), (&'static str, String)> {
        if let Some(rpm) = self.rpm {
            check_rpm(rpm).map_err(|e| ("rpm", e))?;
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

    fn validate(&self) -> Result<(), (&'static str, String)> {
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

pub fn parse_mode(s: &str) -> Option<u32> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8).ok()?;
    (m <= 0o777).then_some(m)
}

/// 1-based number of the first line at or after byte `from` that sets `key`.
fn find_key(text: &str, key: &str, from: usize) -> Option<usize> {
    let skip = text[..from].matches('\n').count();
    text.lines()
        .enumerate()
        .skip(skip)
        .find(|(_, l)| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_has_working_defaults() {
        let c = Config::parse("", "t").expect("defaults");
        assert_eq!(c.hop, 512);
        assert_eq!(c.socket.path, PathBuf::from("/run/drsn/drsn.sock"));
        assert_eq!(parse_mode(&c.socket.mode), Some(0o660));
    }

    #[test]
    fn frames_per_wake_out_of_range_names_the_key_and_value() {
        assert_eq!(Config::parse("", "t").expect("defaults").frames_per_wake, 1);
        assert_eq!(
            Config::parse("frames-per-wake = 4\n", "t")
                .expect("4")
                .frames_per_wake,
            4
        );
        for bad in ["0", "65"] {
            let e = Config::parse(&format!("hop = 512\nframes-per-wake = {bad}\n"), "f.toml")
                .unwrap_err()
                .0;
            assert!(
                e.contains("f.toml line 2")
                    && e.contains("frames-per-wake")
                    && e.contains(&format!("{bad} is out of range 1..=64")),
                "{e}"
            );
        }
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = Config::parse("hop = 512\n\n[socket]\nmax-clients = 0\n", "f.toml")
            .unwrap_err()
            .0;
        assert!(
            e.contains("f.toml line 4") && e.contains("max-clients"),
            "{e}"
        );
        let e = Config::parse("[socket]\n\npath-x = 1\n", "f.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("line 3") && e.contains("path-x"), "{e}");
        let e = Config::parse("[[source]]\nkind = \"wav\"\nstreams = [\"a\"]\npath = \"x\"\n[[source]]\nkind = \"wav\"\npath = \"y\"\nstreams = [\"a\"]\n", "f").unwrap_err().0;
        assert!(e.contains("used twice"), "{e}");
    }

    /// Each error in the third of three sources names the third one's line,
    /// not the first `key =` of that name in the file (which is what the old
    /// text search did: it said line 4 for all of these).
    #[test]
    fn an_error_in_the_third_source_names_its_own_line() {
        let src = |i: usize, extra: &str| {
            format!("[[source]]\nkind = \"raw\"\npath = \"p{i}\"\nrate = 12000\nformat = \"f32le\"\nstreams = [\"s{i}\"]\ngain = 2.0\n{extra}")
        };
        let text = |third: &str| format!("hop = 512\n{}{}{}", src(0, ""), src(1, ""), third);
        // Lines: 1 hop; sources start at 2, 9 and 16; `gain` is their 7th line.
        let e = Config::parse(
            &text(&src(2, "").replace("gain = 2.0", "gain = 0.0")),
            "f.toml",
        )
        .unwrap_err()
        .0;
        assert!(e.starts_with("f.toml line 22: key `gain`"), "{e}");
        let e = Config::parse(
            &text(&src(2, "").replace("streams = [\"s2\"]", "streams = [\"s0\"]")),
            "f.toml",
        )
        .unwrap_err()
        .0;
        assert!(
            e.starts_with("f.toml line 21: key `streams`") && e.contains("used twice"),
            "{e}"
        );
        // A key that is missing: the line of the table that lacks it.
        let e = Config::parse(&text(&src(2, "").replace("rate = 12000\n", "")), "f.toml")
            .unwrap_err()
            .0;
        assert!(e.starts_with("f.toml line 16: key `rate`"), "{e}");
        let e = Config::parse(&text(&src(2, "ring-secs = 3\n")), "f.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("line 23") && e.contains("ring-secs"), "{e}");
        let e = Config::parse(
            &text(&src(2, "").replace("rate = 12000", "rate = \"fast\"")),
            "f.toml",
        )
        .unwrap_err()
        .0;
        assert!(e.contains("line 19") && e.contains("rate"), "{e}");
    }

    #[test]
    fn a_full_source_table_parses() {
        let c = Config::parse(
            "[[source]]\nkind = \"cpal\"\ndevice = \"hw:1,0\"\nrate = 48000\nchannels = 2\nbuffer-frames = 512\n\
             streams = [\"drive-end\", \"fan-end\"]\ngain = 10.0\nclip-level = 0.99\n",
            "t",
        )
        .expect("parses");
        let s = &c.sources[0];
        assert_eq!(s.kind, SourceKind::Cpal);
        assert_eq!(s.streams, vec!["drive-end", "fan-end"]);
        assert_eq!(s.label(), "cpal:hw:1,0");
    }
}
