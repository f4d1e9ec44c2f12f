//! Building the data path from the config, before anything runs: open each
//! source, and for each of its named channels a ring, a frame assembler, the
//! stream's analyses, monitor, snapshots and worker.

use super::StreamHandle;
use crate::analyses::{Analyses, Shared, StreamSpec};
use crate::config::{Config, SourceConfig, SourceKind};
use crate::frame::{Assembler, Conditioning};
use crate::hub::StreamHub;
use crate::manifest::Labels;
use crate::monitor::{self, Monitor, StateSaver};
use crate::pipeline::StreamPipeline;
use crate::recorder::Recorder;
use crate::ring::{ring, RingWriter};
use crate::sinks::Publisher;
use crate::snapshot::Snapshots;
use crate::source::{self, Source, SourceStatus};
use crate::worker::{Parts, StreamWorker};
use anyhow::{bail, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// A source prepared (opened, not started), with a ring writer per channel.
pub struct PreparedSource {
    pub source: Box<dyn Source>,
    pub writers: Vec<Option<RingWriter>>,
    pub status: Arc<SourceStatus>,
}

/// A stream's worker, prepared (not started), and the sender of its reloads.
pub struct PreparedWorker {
    pub worker: StreamWorker,
    pub swap: crossbeam_channel::Sender<Analyses>,
}

/// Everything one source contributes, prepared.
pub struct PreparedParts {
    pub source: PreparedSource,
    pub workers: Vec<PreparedWorker>,
    pub streams: Vec<StreamHandle>,
}

/// Opens one source and builds a worker for each channel it names.
pub fn source(
    cfg: &Config,
    sc: &SourceConfig,
    shared: &Shared,
    tx: &Publisher,
    stop: &Arc<AtomicBool>,
    recorder: &Recorder,
) -> Result<PreparedParts> {
    let src = source::open(sc)?;
    let channels = src.channels();
    if sc.streams.len() > channels {
        bail!(
            "{}: {} streams named but the source has {channels} channel(s)",
            sc.label(),
            sc.streams.len()
        );
    }
    let status = Arc::new(SourceStatus::default());
    let mut built = PreparedParts {
        source: PreparedSource {
            source: src,
            writers: Vec::new(),
            status: status.clone(),
        },
        workers: Vec::new(),
        streams: Vec::new(),
    };
    for c in 0..channels {
        let Some(name) = sc.streams.get(c).filter(|n| !n.is_empty()) else {
            built.source.writers.push(None);
            continue;
        };
        let ch = Channel {
            cfg,
            sc,
            name,
            index: c,
            rate: built.source.source.rate(),
            full_scale: built.source.source.full_scale(),
            recorder,
        };
        let (writer, parts) = ch.parts(shared, &status)?;
        let hub = parts.hub.clone();
        let (worker, swap) = StreamWorker::new(parts, tx.clone(), stop.clone());
        built.workers.push(PreparedWorker { worker, swap });
        built.streams.push(StreamHandle {
            hub,
            source: status.clone(),
            units: sc.units_label(),
            bearing: bearing_info(sc),
            denoising: cfg.denoise.is_some(),
        });
        built.source.writers.push(Some(writer));
    }
    Ok(built)
}

/// `rpm` and `bearing` as hello names them.
fn bearing_info(sc: &SourceConfig) -> Option<crate::protocol::BearingInfo> {
    let (rpm, b) = sc.rpm.zip(sc.bearing)?;
    let speed = crate::analyses::speed::SpeedSpec::new(rpm, sc.rpm_range);
    Some(crate::protocol::BearingInfo {
        rpm,
        rpm_range: speed.range,
        bpfo: b.bpfo,
        bpfi: b.bpfi,
        bsf: b.bsf,
        ftf: b.ftf,
    })
}

/// One named channel of a source: one stream.
struct Channel<'a> {
    cfg: &'a Config,
    sc: &'a SourceConfig,
    name: &'a str,
    index: usize,
    rate: u32,
    full_scale: f32,
    recorder: &'a Recorder,
}

impl Channel<'_> {
    /// The ring (its writer for the source) and the worker's parts.
    fn parts(&self, shared: &Shared, status: &Arc<SourceStatus>) -> Result<(RingWriter, Parts)> {
        let m = &shared.classifier.manifest;
        let capacity = ((self.rate as f32 * self.sc.ring_seconds) as usize).max(m.frame_length);
        let (writer, reader) = ring(capacity);
        let cond = Conditioning {
            source_rate: self.rate,
            model_rate: m.sample_rate,
            gain: self.sc.gain,
            clip_level: self.sc.clip_level.unwrap_or(self.full_scale),
        };
        let assembler = Assembler::new(cond, m.frame_length, self.cfg.hop)?;
        let mut hub = StreamHub::new(
            self.name,
            &self.sc.label(),
            self.rate,
            self.index,
            self.cfg.hop,
            m.sample_rate,
            writer.counters().clone(),
        );
        hub.resampler = assembler.resampling();
        let hub = Arc::new(hub);
        let (monitor, state) = self.monitor(&hub, m.labels());
        let analyses = Analyses::for_stream(
            shared,
            &StreamSpec::of(self.cfg, self.sc, self.name),
            hub.links(),
        )?;
        let parts = Parts {
            reader,
            pipeline: StreamPipeline::new(self.name, assembler, analyses, monitor),
            snapshots: self.snapshots(&hub, m.sample_rate),
            state,
            hub,
            source: status.clone(),
            max_lag: (self.sc.kind == SourceKind::Cpal)
                .then_some((self.rate as f32 * self.sc.max_lag_s) as usize),
            wake_period: Duration::from_secs_f64(
                self.cfg.wake_samples() as f64 / m.sample_rate as f64,
            ),
        };
        Ok((writer, parts))
    }

    fn snapshots(&self, hub: &StreamHub, model_rate: u32) -> Snapshots {
        let s = Snapshots::new(
            self.cfg.snapshots.clone(),
            self.name,
            self.rate,
            model_rate,
            self.sc.ring_seconds as f64,
            self.recorder.counting_in(hub.recorder_dropped.clone()),
        );
        match self.cfg.denoise {
            Some(_) => s.with_denoised(hub.denoised.clone()),
            None => s,
        }
    }

    /// The stream's monitor, starting from the machine state saved before a
    /// restart, if any (a fault already known is not raised again).
    fn monitor(&self, hub: &StreamHub, labels: Labels) -> (Monitor, StateSaver) {
        let mcfg = self.cfg.monitor_of(self.sc);
        let state_file = mcfg
            .state_dir
            .as_ref()
            .map(|d| monitor::state_path(d, self.name));
        let restored = state_file
            .as_deref()
            .and_then(monitor::load_state)
            .map(|s| {
                tracing::info!(
                    "{}: restored machine state {} (since {:.0})",
                    self.name,
                    s.machine.name(),
                    s.since
                );
                hub.set_machine(s.machine.clone(), s.since);
                (s.machine, 0.0)
            });
        (
            Monitor::new(mcfg, labels, restored),
            StateSaver::new(
                state_file,
                self.recorder.counting_in(hub.recorder_dropped.clone()),
            ),
        )
    }
}
