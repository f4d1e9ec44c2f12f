//! The socket protocol: newline-delimited JSON, one object per line.
//! `docs/protocol.md` documents it and `docs/schema/` holds a JSON Schema for
//! each message type; tests validate every line the daemon sends.

use crate::manifest::{Class, Labels, Manifest, ThresholdOutput};
use crate::monitor::zone::Zone;
use crate::monitor::{Evidence, State, Transition};
use crate::report::{Frame, Report};
use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Hello(Hello),
    Frame(FrameMsg),
    Status(Status),
    Lagged(Lagged),
    Error(ErrorMsg),
    Event(EventMsg),
    Ack(AckMsg),
}

/// The answer to a client command that changes state (`learn`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckMsg {
    pub cmd: String,
    pub stream: String,
    pub seconds: f64,
}

/// A machine-state transition of one stream (see `monitor`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventMsg {
    pub stream: String,
    pub from: EventState,
    pub to: EventState,
    /// Wall-clock time of the frame that confirmed the change (Unix seconds).
    pub time: f64,
    /// When the new state was first seen (Unix seconds): the best estimate of the change.
    pub since: f64,
    /// Stream time of the confirmation, seconds since the stream started.
    pub stream_time_s: f64,
    pub confidence: f32,
    pub evidence: Evidence,
    /// Into an alarm (`fault`, `anomaly`): the evidence WAV (and .json sidecar) being written; it
    /// appears once `post-s` seconds after the change have been captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// `from` and `to` of an event: a machine state, or in a zone event the
/// ISO zone (`{"state":"iso-zone","zone":"C"}`), which is not one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventState {
    Machine(State),
    Zone(ZoneState),
    Trend(TrendState),
}

/// A trend event's `from` and `to` (`{"state":"degrading"}`): whether the
/// history's trend analysis finds the machine getting worse. Not a
/// machine state either: a degrading machine may still be healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum TrendState {
    Steady,
    Degrading,
}

/// An ISO zone on the wire; `zone` null before the first was known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ZoneState {
    IsoZone { zone: Option<String> },
}

impl From<State> for EventState {
    fn from(s: State) -> Self {
        EventState::Machine(s)
    }
}

impl From<Zone> for EventState {
    fn from(z: Zone) -> Self {
        EventState::Zone(ZoneState::IsoZone {
            zone: z.0.map(String::from),
        })
    }
}

impl EventState {
    /// The machine state, for a machine event.
    pub fn machine(&self) -> Option<&State> {
        match self {
            EventState::Machine(s) => Some(s),
            EventState::Zone(_) | EventState::Trend(_) => None,
        }
    }

    pub fn name(&self) -> String {
        match self {
            EventState::Machine(s) => s.name(),
            EventState::Zone(ZoneState::IsoZone { zone }) => {
                format!("iso-zone({})", zone.as_deref().unwrap_or("?"))
            }
            EventState::Trend(TrendState::Steady) => "steady".into(),
            EventState::Trend(TrendState::Degrading) => "degrading".into(),
        }
    }

    /// `machine`, `iso-zone` or `trend`: what kind of event it is.
    pub fn kind(&self) -> &'static str {
        match self {
            EventState::Machine(_) => "machine",
            EventState::Zone(_) => "iso-zone",
            EventState::Trend(_) => "trend",
        }
    }
}

impl EventMsg {
    /// A trend event: the stream started or stopped degrading at `time`
    /// (Unix seconds), `stream_time_s` into the stream.
    pub fn trend(
        stream: String,
        degrading: bool,
        trend: crate::monitor::TrendEvidence,
        time: f64,
        stream_time_s: f64,
    ) -> Self {
        let (from, to) = match degrading {
            true => (TrendState::Steady, TrendState::Degrading),
            false => (TrendState::Degrading, TrendState::Steady),
        };
        Self {
            stream,
            from: EventState::Trend(from),
            to: EventState::Trend(to),
            time,
            since: time,
            stream_time_s,
            confidence: 1.0,
            evidence: Evidence {
                mean_anomaly: Some(trend.level as f32),
                trend: Some(trend),
                ..Evidence::default()
            },
            snapshot: None,
        }
    }

    /// The event of a transition (of the machine or its zone) confirmed
    /// at wall-clock `time`.
    pub fn new<S: Into<EventState>>(stream: String, tr: Transition<S>, time: f64) -> Self {
        Self {
            stream,
            since: time - (tr.at_s - tr.since_s),
            from: tr.from.into(),
            to: tr.to.into(),
            time,
            stream_time_s: tr.at_s,
            confidence: tr.confidence,
            evidence: tr.evidence,
            snapshot: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub daemon: String,
    pub model: ModelInfo,
    /// The denoiser every stream runs (`[denoise]`); null: none.
    #[serde(default)]
    pub denoiser: Option<DenoiserInfo>,
    pub streams: Vec<StreamInfo>,
}

/// The denoiser, as a subscriber needs it to read a frame's `denoise`
/// object and the denoised signal's sockets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DenoiserInfo {
    #[serde(flatten)]
    pub model: ModelRef,
    pub architecture: String,
    /// The denoised signal's rate (Hz): the model rate.
    pub sample_rate: u32,
    /// Frames are denoised this many samples apart and overlap-added.
    pub hop: usize,
    /// Its shrinkage units, in the order of `denoise.thresholds`.
    pub thresholds: Vec<ThresholdOutput>,
    /// Where each stream's `<stream>.f32` socket is; null: no sockets.
    pub socket_dir: Option<String>,
}

impl DenoiserInfo {
    pub fn new(m: &Manifest, socket_dir: Option<&std::path::Path>) -> Self {
        Self {
            model: ModelRef::from(m),
            architecture: m.architecture.clone(),
            sample_rate: m.sample_rate,
            hop: m.frame_length / 2,
            thresholds: m.thresholds.clone(),
            socket_dir: socket_dir.map(|d| d.display().to_string()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub architecture: String,
    pub sample_rate: u32,
    pub frame_length: usize,
    pub classes: Vec<Class>,
    /// The family head's families, in the order of a frame's
    /// `family_probs` (empty: the model has no family head).
    #[serde(default)]
    pub families: Vec<String>,
    pub thresholds: Vec<ThresholdOutput>,
}

impl From<&Manifest> for ModelInfo {
    fn from(m: &Manifest) -> Self {
        Self {
            name: m.name.clone(),
            version: m.version.clone(),
            sha256: m.sha256.clone(),
            architecture: m.architecture.clone(),
            sample_rate: m.sample_rate,
            frame_length: m.frame_length,
            classes: m.classes.clone(),
            families: m.head_families(),
            thresholds: m.thresholds.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamInfo {
    pub name: String,
    pub source: String,
    pub channel: usize,
    pub source_rate: u32,
    pub hop: usize,
    /// The stream's machine state when this hello was sent, and since when (Unix s).
    pub machine: State,
    pub machine_since: f64,
    /// What its samples measure ("g", "m/s2", "V at 100 mV/g"); null: the
    /// source names no units and its frames carry no physical figures.
    pub units: Option<String>,
    /// Shaft speed and bearing orders of the envelope evidence; null: the
    /// source names no `rpm` and `bearing`, and frames carry no `envelope`.
    #[serde(default)]
    pub bearing: Option<BearingInfo>,
}

/// `rpm` and `bearing` as the config gives them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BearingInfo {
    /// The nominal speed, and where the real one is measured within.
    pub rpm: f64,
    #[serde(default)]
    pub rpm_range: [f64; 2],
    pub bpfo: f64,
    pub bpfi: f64,
    pub bsf: f64,
    pub ftf: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FrameMsg {
    /// Per stream, contiguous from 0.
    pub seq: u64,
    pub stream: String,
    /// Model-rate index of the frame's first sample since the stream started.
    pub sample_index: u64,
    /// Wall-clock time of the frame's last sample, seconds since the Unix epoch.
    pub time: f64,
    /// The fine class, its probability and every class's.
    pub label: String,
    pub confidence: f32,
    pub probs: Vec<f32>,
    /// The fault family (normal, ball, inner, outer), its probability and
    /// every family's in `hello`'s order; null for a model without a
    /// family head.
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub family_confidence: Option<f32>,
    #[serde(default)]
    pub family_probs: Option<Vec<f32>>,
    /// One array per shrinkage unit, τ per channel; absent when filtered out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<Vec<f32>>>,
    pub rms: f32,
    pub peak: f32,
    pub flags: Vec<String>,
    /// From the frame's last sample being captured to its result, ms.
    pub latency_ms: f64,
    /// sha256 of the model that labelled this frame (changes on reload).
    pub model: String,
    /// Band powers in dB over 0..Nyquist in equal bands, with `[http] spectrum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spectrum_db: Option<Vec<f32>>,
    /// Velocity RMS over 10-1000 Hz in mm/s (streams with `units`; null
    /// for the first 1.4 s and after a gap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub velocity_rms_mm_s: Option<Option<f32>>,
    /// ISO 20816 zone of that velocity, "A" to "D".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso_zone: Option<Option<char>>,
    /// Crest factor and kurtosis of the frame (streams with `units`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crest: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kurtosis: Option<f32>,
    /// Envelope spectrum evidence per bearing defect (streams with `rpm`
    /// and `bearing`; null until its window is full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Option<EnvelopeMsg>>,
    /// The shaft speed now (streams with `rpm` and `bearing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedMsg>,
    /// Distance from the stream's learned normal, 1.0 at its alarm limit;
    /// null without a baseline.
    #[serde(default)]
    pub anomaly: Option<f32>,
    /// While the stream learns its baseline: how far, 0..1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<f32>,
    /// The denoiser's view of the frame (with `[denoise]`; null until the
    /// stream's first denoised frame and after a gap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denoise: Option<Option<DenoiseMsg>>,
}

/// A frame's `denoise`: the input SNR estimated from what the denoiser
/// removed, and each of its shrinkage units' mean threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiseMsg {
    pub snr_db: Option<f32>,
    pub thresholds: Vec<f32>,
}

impl From<crate::report::DenoiseInfo> for DenoiseMsg {
    fn from(d: crate::report::DenoiseInfo) -> Self {
        Self {
            snr_db: d.snr_db,
            thresholds: d.thresholds,
        }
    }
}

/// A frame's `envelope`: each defect's line prominence in dB and the
/// family the envelope names ("none" when no line stands out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeMsg {
    pub bpfo: f32,
    pub bpfi: f32,
    pub bsf: f32,
    pub family: String,
    /// The band demodulated, Hz.
    pub band_hz: [f32; 2],
    /// The shaft speed the defect lines were placed at, rev/min.
    #[serde(default)]
    pub speed_rpm: f32,
}

/// A frame's `speed`: measured from the shaft's lines (`signal`), or the
/// configured `rpm` (`nominal`: no clear line; `fixed`: pinned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedMsg {
    pub rpm: f32,
    pub confidence: f32,
    pub source: String,
}

impl From<crate::report::Speed> for SpeedMsg {
    fn from(s: crate::report::Speed) -> Self {
        Self {
            rpm: s.rpm,
            confidence: s.confidence,
            source: s.source.as_str().to_string(),
        }
    }
}

impl From<crate::report::Evidence> for EnvelopeMsg {
    fn from(e: crate::report::Evidence) -> Self {
        // NaN (no harmonic fits the band) is not JSON: 0 dB, no line.
        let db = |v: f32| if v.is_finite() { v } else { 0.0 };
        Self {
            bpfo: db(e.prominence_db[0]),
            bpfi: db(e.prominence_db[1]),
            bsf: db(e.prominence_db[2]),
            family: e.family.map_or("none", |f| f.as_str()).to_string(),
            band_hz: e.band_hz,
            speed_rpm: e.speed.rpm,
        }
    }
}

/// Who says what a frame is: the stream and the model that labelled it.
#[derive(Debug, Clone, Copy)]
pub struct FrameOrigin<'a> {
    pub stream: &'a str,
    pub labels: &'a Labels,
    /// sha256 of the model.
    pub model: &'a str,
    /// Whether the stream runs the denoiser (frames then carry `denoise`).
    pub denoising: bool,
}

impl FrameMsg {
    /// The message for `frame` and everything the analyses found in it;
    /// `time` in Unix seconds live (stream seconds offline), no latency yet.
    pub fn from_report(
        origin: FrameOrigin,
        seq: u64,
        frame: &Frame,
        report: Report,
        time: f64,
    ) -> Self {
        let pred = report.prediction;
        let labels = origin.labels;
        let (top, confidence) = pred.top();
        let family = pred
            .top_family()
            .and_then(|(i, p)| Some((labels.families.get(i)?.clone(), p)));
        let has_family = family.is_some();
        let mut msg = Self {
            seq,
            stream: origin.stream.to_string(),
            sample_index: frame.index,
            time,
            label: labels.classes.get(top).cloned().unwrap_or_default(),
            confidence,
            probs: pred.probs,
            family_confidence: family.as_ref().map(|f| f.1),
            family: family.map(|f| f.0),
            family_probs: has_family.then_some(pred.family_probs),
            thresholds: Some(pred.thresholds),
            rms: frame.rms,
            peak: frame.peak,
            flags: frame.flags.names().into_iter().map(String::from).collect(),
            latency_ms: 0.0,
            model: origin.model.to_string(),
            spectrum_db: report.spectrum,
            anomaly: report.anomaly,
            learning: report.learning,
            denoise: origin.denoising.then(|| report.denoise.map(Into::into)),
            ..Self::default()
        };
        msg.set_physical(report.physical);
        msg
    }

    /// The physical measures' fields (absent for a stream without units).
    fn set_physical(&mut self, p: Option<crate::report::Physical>) {
        if let Some(p) = p {
            self.velocity_rms_mm_s = Some(p.velocity_rms_mm_s);
            self.iso_zone = Some(p.iso_zone);
            self.crest = Some(p.crest);
            self.kurtosis = Some(p.kurtosis);
            self.envelope = p.envelope.map(|e| e.map(EnvelopeMsg::from));
            self.speed = p.speed.map(SpeedMsg::from);
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub state: String,
    pub uptime_s: f64,
    pub model: ModelRef,
    pub streams: Vec<StreamStatus>,
    pub clients: Vec<ClientStatus>,
    /// The outcome of the last reload (SIGHUP), if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadStatus>,
    /// The fleet sink, with `[mqtt]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttStatus>,
    /// The history store, with `[history]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryStatus>,
    /// Each `[[notify]]` target's counters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifyStatus>,
}

/// One `[[notify]]` target: what it delivered, held back, or could not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NotifyStatus {
    pub name: String,
    /// Scheme, host and port (the path of a webhook is a secret), or the program.
    pub target: String,
    pub sent: u64,
    /// Given up on after every retry.
    pub failed: u64,
    /// Failed attempts that were tried again.
    pub retries: u64,
    /// Held back: another of the same stream and kind went out within `interval-s`.
    pub suppressed: u64,
    /// Not queued: the target's queue was full.
    pub dropped: u64,
    /// Queued or being delivered now.
    pub pending: u64,
    pub last_error: Option<String>,
}

/// The history store: what it wrote, what it could not, and its size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistoryStatus {
    pub path: String,
    pub rows_written: u64,
    pub events_written: u64,
    /// Rows and events waiting for the next write.
    pub pending: u64,
    /// Rows and events never stored: the writer's queue was full, or
    /// writes kept failing until the backlog was full (oldest first).
    pub lost: u64,
    /// Frames the sink never saw (it fell behind the bus).
    pub frames_missed: u64,
    pub write_errors: u64,
    pub last_error: Option<String>,
    /// The file's size, as of the last write.
    pub bytes: u64,
    /// Where an unusable store found at start was moved.
    pub moved_aside: Option<String>,
}

/// The MQTT sink: the connection, and what the spool still owes the broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MqttStatus {
    pub broker: String,
    pub connected: bool,
    pub connect_attempts: u64,
    /// Events and states waiting for the broker's acknowledgement.
    pub spool_entries: u64,
    pub spool_bytes: u64,
    /// Entries dropped unsent because the spool was full.
    pub spool_dropped: u64,
    pub acknowledged: u64,
    pub frames_sent: u64,
    /// Frame messages not sent while the broker was away (never spooled).
    pub frames_not_sent: u64,
    /// Why the last connection failed (refused credentials, TLS, ...).
    pub last_error: Option<String>,
    /// The Sparkplug B connection, with `sparkplug = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparkplug: Option<SparkplugStatus>,
}

/// The Sparkplug B connection's counters (`[mqtt] sparkplug`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SparkplugStatus {
    pub group_id: String,
    pub connected: bool,
    /// The bdSeq of the current (or last) connection's NBIRTH and will.
    pub bd_seq: u64,
    /// NBIRTHs sent: one per connection, one more per rebirth request.
    pub births: u64,
    pub rebirth_requests: u64,
    pub messages_sent: u64,
    /// Refused by the client's full queue (never while connected and idle).
    pub messages_not_sent: u64,
    /// Events raised while the broker was away, replayed with is_historical.
    pub historical_sent: u64,
    /// Events not yet written to the broker.
    pub spool_entries: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadStatus {
    pub ok: bool,
    /// What was loaded, or why the old config and model stay in force.
    pub message: String,
    /// Daemon uptime when it happened.
    pub at_uptime_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

impl From<&Manifest> for ModelRef {
    fn from(m: &Manifest) -> Self {
        Self {
            name: m.name.clone(),
            version: m.version.clone(),
            sha256: m.sha256.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamStatus {
    pub name: String,
    pub source_state: String,
    pub frames: u64,
    pub captured_samples: u64,
    /// Samples dropped because the capture ring was full.
    pub overrun_samples: u64,
    /// Samples never captured while the device was gone (see docs/reliability.md).
    pub gap_samples: u64,
    /// Frames computed but not published (publisher queue full or inference error).
    pub dropped_frames: u64,
    pub nonfinite_frames: u64,
    pub clipped_frames: u64,
    pub resampler: Option<ResamplerState>,
    pub latency_ms_mean: f64,
    pub latency_ms_max: f64,
    pub machine: State,
    /// Unix seconds.
    pub machine_since: f64,
    /// In a fault: who named its family (`network`, `envelope`,
    /// `network+envelope`, or `none` for `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_source: Option<crate::monitor::verdict::Source>,
    /// The stream's learned normal.
    pub baseline: crate::hub::BaselineStatus,
    /// The denoised signal's hand-over to its socket (with `[denoise]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denoised: Option<DenoisedStatus>,
    /// The trend of its history (with `[history]`, once judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<crate::monitor::TrendStatus>,
}

impl StreamStatus {
    /// A stream's part of `status`: its hub read once, with what its
    /// source says of itself (`source_state`).
    pub fn new(s: crate::hub::Snapshot, source_state: String, denoising: bool) -> Self {
        let d = s.denoised;
        Self {
            name: s.name,
            source_state,
            frames: s.frames,
            captured_samples: s.captured_samples,
            overrun_samples: s.overrun_samples,
            gap_samples: s.gap_samples,
            dropped_frames: s.dropped_frames,
            nonfinite_frames: s.nonfinite_frames,
            clipped_frames: s.clipped_frames,
            resampler: s.resampler.map(|(from, to)| ResamplerState { from, to }),
            latency_ms_mean: s.latency_ms_mean,
            latency_ms_max: s.latency_ms_max,
            machine: s.machine,
            machine_since: s.machine_since,
            family_source: s.family_source,
            baseline: s.baseline,
            trend: s.trend,
            denoised: denoising.then_some(DenoisedStatus {
                samples: d.samples,
                dropped_samples: d.dropped_samples,
                readers: d.readers,
                readers_dropped: d.readers_dropped,
                readers_refused: d.readers_refused,
            }),
        }
    }
}

/// Counters of a stream's denoised signal: samples handed to its socket's
/// thread (with `socket-dir`) and dropped because that thread fell 4 s
/// behind, readers now, dropped for not reading, and turned away.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DenoisedStatus {
    pub samples: u64,
    pub dropped_samples: u64,
    pub readers: u64,
    pub readers_dropped: u64,
    pub readers_refused: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResamplerState {
    pub from: u32,
    pub to: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientStatus {
    pub id: u64,
    /// Messages queued for this client and not yet written.
    pub lag: u64,
    /// Messages this client missed so far.
    pub missed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lagged {
    /// Messages skipped for this client since the last one it got.
    pub missed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorMsg {
    pub message: String,
}

/// What a client may send (one JSON object per line) to choose what it gets.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Message types wanted ("frame", "status"); absent: all.
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// Streams wanted by name; absent: all.
    #[serde(default)]
    pub streams: Option<Vec<String>>,
    /// Include thresholds in frames (default true).
    #[serde(default)]
    pub thresholds: Option<bool>,
}

/// A client line: a filter, or a command naming itself with `cmd`.
#[derive(Debug, Clone)]
pub enum Command {
    Filter(Filter),
    /// `{"cmd":"learn","stream":"pump","seconds":600}`: (re)learn the
    /// stream's baseline from its next `seconds` of signal.
    Learn {
        stream: String,
        seconds: f64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnLine {
    #[allow(dead_code)]
    cmd: String,
    stream: String,
    seconds: f64,
}

impl Command {
    /// Parses one client line; the error says what was wrong with it.
    pub fn parse(line: &str, streams: &[String]) -> Result<Command, String> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("bad command: {e}"))?;
        let Some(cmd) = v.get("cmd") else {
            return Filter::parse(line, streams).map(Command::Filter);
        };
        if cmd != "learn" {
            return Err(format!(
                "bad command: unknown cmd {cmd} (expected \"learn\")"
            ));
        }
        let l: LearnLine =
            serde_json::from_value(v).map_err(|e| format!("bad command: learn: {e}"))?;
        if !streams.contains(&l.stream) {
            return Err(format!(
                "bad command: learn: unknown stream {:?} (streams: {streams:?})",
                l.stream
            ));
        }
        let max = crate::config::MAX_LEARN_S;
        if !(l.seconds.is_finite() && (10.0..=max).contains(&l.seconds)) {
            return Err(format!(
                "bad command: learn: seconds {} is out of range 10..={max}",
                l.seconds
            ));
        }
        Ok(Command::Learn {
            stream: l.stream,
            seconds: l.seconds,
        })
    }
}

pub const FILTERABLE_TYPES: [&str; 3] = ["frame", "status", "event"];

impl Filter {
    /// Parses one client line; the error says what was wrong with it.
    pub fn parse(line: &str, streams: &[String]) -> Result<Filter, String> {
        let f: Filter = serde_json::from_str(line).map_err(|e| format!("bad command: {e}"))?;
        for t in f.types.iter().flatten() {
            if !FILTERABLE_TYPES.contains(&t.as_str()) {
                return Err(format!("bad command: unknown message type {t:?} (expected one of {FILTERABLE_TYPES:?})"));
            }
        }
        for s in f.streams.iter().flatten() {
            if !streams.contains(s) {
                return Err(format!(
                    "bad command: unknown stream {s:?} (streams: {streams:?})"
                ));
            }
        }
        Ok(f)
    }
}
