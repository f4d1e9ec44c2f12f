//! The TOML config (`/etc/drsn/drsnd.toml`): serde with `deny_unknown_fields`
//! and kebab-case keys, so a typo is an error that names the key and line.
//! One file per table, its defaults beside its struct; here the top level,
//! loading, and the checks serde cannot make.

use serde::Deserialize;
use std::path::{Path, PathBuf};

mod bearing;
mod denoise;
mod history;
mod http;
mod log;
mod monitor;
mod mqtt;
mod notify;
mod snapshots;
mod socket;
mod source;
mod spans;

pub use bearing::{Bearing, Geometry, ORDER_RANGE};
pub use denoise::DenoiseConfig;
pub use history::HistoryConfig;
pub use http::HttpConfig;
pub use log::LogConfig;
pub use monitor::{MonitorConfig, MAX_LEARN_S};
pub use mqtt::{hostname, BrokerUrl, FramesMode, MqttConfig};
pub use notify::{check_url, AlarmKind, Format, NotifyConfig};
pub use snapshots::SnapshotConfig;
pub use socket::SocketConfig;
pub use source::{
    check_band, check_rpm, check_rpm_range, Pace, RawFormat, SourceConfig, SourceKind, Units,
    RPM_RANGE, STANDARD_G,
};
use spans::{find_key, KeyLines, Step};

pub const DEFAULT_MODEL_NAME: &str = "drsn-cw-cwru10.json";
pub const DEFAULT_DENOISER_NAME: &str = "drsn-denoise.json";
/// 64 frames at hop 512 is 2.7 s: beyond that a fault would wait too long.
pub const MAX_FRAMES_PER_WAKE: usize = 64;
/// More threads than this would be a thread per stream again, at scale.
pub const MAX_WORKER_THREADS: usize = 1024;

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
    /// Analysis threads serving every stream; 0 (the default): one per
    /// core. Streams that share a thread run back to back on one wake-up,
    /// on warm caches (bench/NOTES.md, issue 36).
    #[serde(default)]
    pub worker_threads: usize,
    /// When an analysis thread wakes: "frame" (as soon as one of its
    /// streams has a frame due) or "hop" (once per hop, for all of them).
    #[serde(default)]
    pub pool_wake: PoolWake,
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
    /// Per-stream summaries kept on the box (off when absent).
    #[serde(default)]
    pub history: Option<HistoryConfig>,
    /// Alarm notifications: webhooks or commands (none when absent).
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
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

fn default_hop() -> usize {
    512
}
fn default_max_batch() -> usize {
    1
}
fn default_frames_per_wake() -> usize {
    1
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("empty config uses defaults")
    }
}

/// When an analysis thread wakes (see `worker::pool`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolWake {
    /// As soon as a frame of any of its streams is due: no added latency.
    #[default]
    Frame,
    /// Once per hop: streams whose frames fall due at different instants
    /// share one wake-up; a frame waits up to one hop more.
    Hop,
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

    /// Where `[denoise]` serves each stream's `<stream>.f32` socket, if anywhere.
    pub fn denoise_socket_dir(&self) -> Option<&Path> {
        self.denoise.as_ref()?.socket_dir.as_deref()
    }

    /// Where `[history]` keeps its store, if it is on.
    pub fn history_path(&self) -> Option<PathBuf> {
        let h = self.history.as_ref()?;
        h.path
            .clone()
            .or_else(|| Some(self.monitor.state_dir.as_ref()?.join("history.sqlite")))
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
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(err(
                &[Key("worker-threads")],
                format!(
                    "{} is out of range 0..={MAX_WORKER_THREADS} (0: one per core)",
                    self.worker_threads
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
        if let Some(h) = &self.history {
            h.validate()
                .map_err(|(key, msg)| err(&[Key("history"), Key(key)], msg))?;
            if h.path.is_none() && self.monitor.state_dir.is_none() {
                return Err(err(
                    &[Key("history"), Key("path")],
                    "is needed when [monitor] names no state-dir".into(),
                ));
            }
        }
        for (i, n) in self.notify.iter().enumerate() {
            n.validate()
                .map_err(|(key, msg)| err(&[Key("notify"), Step::Index(i), Key(key)], msg))?;
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

pub fn parse_mode(s: &str) -> Option<u32> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8).ok()?;
    (m <= 0o777).then_some(m)
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
    fn worker_threads_and_pool_wake_parse_and_bad_values_name_the_key() {
        let c = Config::parse("", "t").expect("defaults");
        assert_eq!((c.worker_threads, c.pool_wake), (0, PoolWake::Frame));
        let c = Config::parse("worker-threads = 3\npool-wake = \"hop\"\n", "t").expect("set");
        assert_eq!((c.worker_threads, c.pool_wake), (3, PoolWake::Hop));
        let e = Config::parse("hop = 512\nworker-threads = 5000\n", "f.toml")
            .unwrap_err()
            .0;
        assert!(
            e.contains("f.toml line 2")
                && e.contains("worker-threads")
                && e.contains("5000 is out of range"),
            "{e}"
        );
        let e = Config::parse("pool-wake = \"sometimes\"\n", "f.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("sometimes") && e.contains("frame"), "{e}");
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
