//! `drsnd classify --json`: the daemon's own [`StreamPipeline`] run over WAV
//! files, one pipeline per file, printing exactly the `frame` lines the
//! daemon would publish for that recording and the `event` lines (machine
//! state and ISO zone changes) it would raise, in stream time. The stream
//! is one of a config's (`--config --stream`: its units, speed, bearing,
//! monitor and baseline from `state-dir`, the denoiser) or made of the flags.

use super::classify::{Unusable, WavChannel};
use crate::analyses::anomaly::BaselineSpec;
use crate::analyses::{Analyses, Shared, StreamSpec};
use crate::config::{Config, MonitorConfig};
use crate::frame::{Assembler, Conditioning};
use crate::hub::Links;
use crate::monitor::Monitor;
use crate::pipeline::StreamPipeline;
use crate::protocol::{EventMsg, Message};
use crate::source::wav;
use anyhow::Result;
use std::path::Path;

/// One stream as the daemon would run it, for files offline.
pub struct Offline {
    pub shared: Shared,
    pub spec: StreamSpec,
    pub monitor: MonitorConfig,
    pub hop: usize,
    /// Multiplies samples into sensor units, and the clip level (default:
    /// the file's full scale), as the source's `gain` and `clip-level`.
    pub gain: f32,
    pub clip_level: Option<f32>,
    /// The stream's name in every line; None: each file's path.
    pub stream: Option<String>,
    /// The file channel to read.
    pub channel: usize,
}

impl Offline {
    /// The stream `name` of the daemon's config `cfg`, with its models.
    pub fn from_config(cfg: &Config, name: &str) -> Result<Self, String> {
        let Some((sc, channel)) = cfg.stream(name) else {
            return Err(format!(
                "--stream {name}: the config names no such stream (it has: {})",
                cfg.stream_names().join(", ")
            ));
        };
        let mut spec = StreamSpec::of(cfg, sc, name);
        // Offline never writes: a baseline is used if there is one, and
        // one learned here is not saved.
        spec.baseline.file = spec.baseline.file.filter(|f| f.exists());
        let shared = Shared::load(cfg).map_err(|e| format!("{e:#}"))?;
        Ok(Self {
            shared,
            spec,
            monitor: cfg.monitor_of(sc),
            hop: cfg.hop,
            gain: sc.gain,
            clip_level: sc.clip_level,
            stream: Some(name.to_string()),
            channel,
        })
    }

    /// Runs one file through a new pipeline, handing `emit` every message
    /// the daemon would publish for it, in its order.
    pub fn run_file(
        &self,
        path: &Path,
        mut emit: impl FnMut(Message) -> std::io::Result<()>,
    ) -> Result<(), FileError> {
        let m = &self.shared.classifier.manifest;
        let mut w = WavChannel::open(path, self.channel, m).map_err(FileError::Unusable)?;
        let name = match &self.stream {
            Some(s) => s.clone(),
            None => path.display().to_string(),
        };
        let mut pipeline = self
            .pipeline(&name, &w.spec)
            .map_err(|e| FileError::Unusable(Unusable::Unreadable(e)))?;
        let (mut frames, mut failed) = (0u64, None);
        let samples = w
            .for_each_block(|x| {
                pipeline.push(x, 0)?;
                frames += drain(&mut pipeline, &mut failed, &mut emit)?;
                Ok(())
            })
            .map_err(FileError::Unusable)?;
        if let Some(e) = failed {
            return Err(FileError::Failed(e));
        }
        if frames == 0 {
            return Err(FileError::Unusable(w.too_short(samples, m)));
        }
        Ok(())
    }

    fn pipeline(&self, name: &str, spec: &hound::WavSpec) -> Result<StreamPipeline> {
        let m = &self.shared.classifier.manifest;
        let cond = Conditioning {
            source_rate: spec.sample_rate,
            model_rate: m.sample_rate,
            gain: self.gain,
            clip_level: self.clip_level.unwrap_or(wav::full_scale(spec)),
        };
        let assembler = Assembler::new(cond, m.frame_length, self.hop)?;
        let links = Links::detached(m.sample_rate);
        let mut spec = self.spec.clone();
        spec.baseline.stream = name.to_string();
        let analyses = Analyses::for_stream(&self.shared, &spec, links)?;
        let monitor = Monitor::new(self.monitor.clone(), m.labels(), None);
        Ok(StreamPipeline::new(name, assembler, analyses, monitor))
    }
}

/// Analyses every frame that waits and hands on its messages: the events
/// a frame confirmed, then the frame, as the daemon publishes them.
fn drain(
    p: &mut StreamPipeline,
    failed: &mut Option<anyhow::Error>,
    emit: &mut impl FnMut(Message) -> std::io::Result<()>,
) -> Result<u64> {
    let mut analysed = Vec::new();
    while p.has_pending() {
        match p.analyse() {
            Ok(_) => p.emit(|a| analysed.push(a)),
            Err(f) => {
                failed.get_or_insert(f.error);
            }
        }
    }
    let n = analysed.len() as u64;
    for a in analysed {
        let stream = &a.msg.stream;
        // In stream time: offline, the confirmation's time is its `at_s`.
        let machine = a.change.map(|tr| {
            let at = tr.at_s;
            EventMsg::new(stream.clone(), tr, at)
        });
        let zone = a.zone.map(|tr| {
            let at = tr.at_s;
            EventMsg::new(stream.clone(), tr, at)
        });
        for e in machine.into_iter().chain(zone) {
            emit(Message::Event(e))?;
        }
        emit(Message::Frame(a.msg))?;
    }
    Ok(n)
}

/// Why a file gave no lines: it cannot be used, or the analyses failed.
#[derive(Debug)]
pub enum FileError {
    Unusable(Unusable),
    Failed(anyhow::Error),
}

/// The stream the flags describe: the model, units, envelope and baseline
/// given, the default monitor, each file its own stream.
pub fn from_flags(
    shared: Shared,
    spec_parts: (Option<f64>, Option<crate::analyses::envelope::EnvelopeSpec>),
    baseline: Option<&Path>,
    hop: usize,
    channel: usize,
) -> Offline {
    let monitor = MonitorConfig::default();
    let spec = StreamSpec {
        to_ms2: spec_parts.0,
        iso_zones: monitor.iso_zones,
        baseline: BaselineSpec {
            stream: String::new(),
            file: baseline.map(Path::to_path_buf),
            learn_s: None,
            signal_floor: monitor.signal_floor,
            hop,
            envelope: spec_parts.1.is_some(),
        },
        envelope: spec_parts.1,
    };
    Offline {
        shared,
        spec,
        monitor,
        hop,
        gain: 1.0,
        clip_level: None,
        stream: None,
        channel,
    }
}
