//! One stream's analysis without I/O: source samples in, frame messages and
//! machine state changes out. No threads, clocks, files or atomics live
//! here, so the daemon's worker (on its own thread, live) and `drsnd
//! classify` (offline, per file) drive the same code and say the same
//! things about the same samples.
//!
//! Times are stream times: a message's `time` is the stream time of the
//! frame's last sample and its `latency_ms` is 0; the worker stamps both
//! with the wall clock before it publishes.

use crate::analyses::Analyses;
use crate::frame::Assembler;
use crate::monitor::{Monitor, Transition};
use crate::protocol::{FrameMsg, FrameOrigin};
use crate::report::{Flags, Frame, Report};

/// One analysed frame and the changes it completed.
#[derive(Debug)]
pub struct Analysed {
    /// The frame message, with stream time in `time` and no latency.
    pub msg: FrameMsg,
    /// Capture time of the frame's last sample, monotonic ns (0 offline).
    pub end_ns: u64,
    /// Stream time of the frame's last sample, s.
    pub t_s: f64,
    pub flags: Flags,
    /// A change of machine state this frame confirmed.
    pub change: Option<Transition>,
    /// A change of ISO zone this frame confirmed (streams with units).
    pub zone: Option<Transition<crate::monitor::zone::Zone>>,
}

/// A batch whose analyses failed: its frames are lost (their seqs skipped).
#[derive(Debug)]
pub struct Failed {
    pub frames: u64,
    pub error: anyhow::Error,
}

pub struct StreamPipeline {
    name: String,
    assembler: Assembler,
    analyses: Analyses,
    monitor: Monitor,
    /// Frames made so far (published or lost): the next frame's seq.
    seq: u64,
    /// Frames cut but not yet handed on; those before `done` are.
    pending: Vec<Frame>,
    done: usize,
    /// Reports of the batch analysed last, for `pending[done..]`.
    reports: Vec<Report>,
}

impl StreamPipeline {
    pub fn new(name: &str, assembler: Assembler, analyses: Analyses, monitor: Monitor) -> Self {
        Self {
            name: name.to_string(),
            assembler,
            analyses,
            monitor,
            seq: 0,
            pending: Vec::with_capacity(64),
            done: 0,
            reports: Vec::with_capacity(64),
        }
    }

    /// Frames made so far: the next frame's seq.
    pub fn frames_made(&self) -> u64 {
        self.seq
    }

    /// A reload's analyses, taken between frames; the monitor learns the
    /// (maybe new) classes.
    pub fn swap_analyses(&mut self, analyses: Analyses) {
        self.analyses = analyses;
        self.monitor.set_labels(self.analyses.labels.clone());
    }

    /// Adds source samples whose last was captured at `last_ns` (monotonic
    /// ns; 0 offline). Frames they complete wait for [`Self::analyse`].
    pub fn push(&mut self, x: &[f32], last_ns: u64) -> anyhow::Result<()> {
        self.assembler.push(x, last_ns, &mut self.pending)
    }

    /// `n` source samples are missing here (an overrun, or shed load).
    pub fn gap(&mut self, n: u64) {
        self.assembler.gap(n);
    }

    /// Whether frames wait for analysis.
    pub fn has_pending(&self) -> bool {
        self.done < self.pending.len()
    }

    /// Runs the analyses on the next batch of waiting frames (at most what
    /// every analysis takes at once). Ok(n): n frames, to be taken with
    /// [`Self::emit`]. A failed batch is lost, counted in its seqs.
    pub fn analyse(&mut self) -> Result<usize, Failed> {
        let max = self.analyses.max_batch();
        let end = (self.done + max).min(self.pending.len());
        let batch = &self.pending[self.done..end];
        if let Err(error) = self.analyses.run(batch, &mut self.reports) {
            let frames = batch.len() as u64;
            self.seq += frames;
            self.reports.clear();
            self.advance(end);
            return Err(Failed { frames, error });
        }
        Ok(batch.len())
    }

    /// Hands on every frame of the batch [`Self::analyse`] ran, in order,
    /// after the monitor has seen it.
    pub fn emit(&mut self, mut out: impl FnMut(Analysed)) {
        let start = self.done;
        let end = start + self.reports.len();
        // Taken and put back (drained), so its allocation is kept.
        let mut reports = std::mem::take(&mut self.reports);
        for (frame, report) in self.pending[start..end].iter().zip(reports.drain(..)) {
            let a = judge(
                &mut self.monitor,
                &self.analyses,
                &self.name,
                self.seq,
                frame,
                report,
            );
            self.seq += 1;
            out(a);
        }
        self.reports = reports;
        self.advance(end);
    }

    fn advance(&mut self, to: usize) {
        self.done = to;
        if self.done >= self.pending.len() {
            self.pending.clear();
            self.done = 0;
        }
    }

    /// Stream time of the latest source sample, s.
    pub fn stream_time_s(&self, source_rate: u32) -> f64 {
        self.assembler.source_position() as f64 / source_rate.max(1) as f64
    }

    /// No samples for `idle_s` of wall clock: maybe `no-signal`; `why` is
    /// the source's own account ("device lost ..."), announced once.
    pub fn idle(&mut self, idle_s: f64, t_s: f64, why: Option<String>) -> Option<Transition> {
        match self.monitor.idle(idle_s, t_s, why.clone()) {
            Some(tr) => Some(tr),
            None => why.and_then(|w| self.monitor.explain(&w, t_s)),
        }
    }
}

/// One frame through the monitor, and its message.
fn judge(
    monitor: &mut Monitor,
    analyses: &Analyses,
    stream: &str,
    seq: u64,
    frame: &Frame,
    report: Report,
) -> Analysed {
    let rate = analyses.manifest.sample_rate as f64;
    let t_s = (frame.index + frame.samples.len() as u64) as f64 / rate;
    let change = monitor.frame(frame, &report, t_s);
    let origin = FrameOrigin {
        stream,
        labels: &analyses.labels,
        model: &analyses.manifest.sha256,
        denoising: analyses.denoising,
    };
    let zone = monitor.zone_frame(&report, t_s);
    Analysed {
        msg: FrameMsg::from_report(origin, seq, frame, report, t_s),
        end_ns: frame.end_ns,
        t_s,
        flags: frame.flags,
        change,
        zone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyses::{anomaly::BaselineSpec, Shared, StreamSpec};
    use crate::config::MonitorConfig;
    use crate::frame::Conditioning;
    use crate::infer::Model;
    use crate::manifest::ModelFiles;
    use crate::monitor::State;

    /// The shipped classifier, physics in g, the default monitor.
    fn pipeline() -> StreamPipeline {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/drsn-cw-cwru10.json");
        let files = ModelFiles::load(&path).expect("the shipped model");
        let shared = Shared {
            classifier: Model::load(&files, 1).expect("model"),
            denoiser: None,
            spectrum: false,
        };
        let monitor = MonitorConfig::default();
        let spec = StreamSpec {
            to_ms2: Some(crate::config::STANDARD_G),
            iso_zones: monitor.iso_zones,
            envelope: None,
            baseline: BaselineSpec {
                hop: 512,
                ..BaselineSpec::default()
            },
        };
        let m = &shared.classifier.manifest;
        let links = crate::hub::Links::detached(m.sample_rate);
        let cond = Conditioning {
            source_rate: 12_000,
            model_rate: m.sample_rate,
            gain: 1.0,
            clip_level: f32::MAX,
        };
        let assembler = Assembler::new(cond, m.frame_length, 512).expect("assembler");
        let analyses = Analyses::for_stream(&shared, &spec, links).expect("analyses");
        let monitor = Monitor::new(monitor, m.labels(), None);
        StreamPipeline::new("pump", assembler, analyses, monitor)
    }

    /// A shaft tone with a resonance and a little noise, then silence.
    fn signal() -> Vec<f32> {
        let mut x: Vec<f32> = (0..36_000)
            .map(|i| {
                let t = i as f32 / 12_000.0;
                let noise = ((i as u64 * 2_654_435_761) % 1000) as f32 / 5000.0 - 0.1;
                0.2 * ((t * std::f32::consts::TAU * 30.0).sin()
                    + 0.3 * (t * std::f32::consts::TAU * 2900.0).sin()
                    + noise)
            })
            .collect();
        x.extend(std::iter::repeat_n(0.0, 24_000));
        x
    }

    /// Every message the pipeline gives for `x` cut into `chunk`-sized pushes.
    fn run(x: &[f32], chunk: usize) -> (Vec<FrameMsg>, Vec<Transition>) {
        let mut p = pipeline();
        let (mut frames, mut changes) = (Vec::new(), Vec::new());
        for part in x.chunks(chunk) {
            p.push(part, 0).expect("push");
            while p.has_pending() {
                p.analyse().expect("analyses");
                p.emit(|a| {
                    changes.extend(a.change);
                    frames.push(a.msg);
                });
            }
        }
        (frames, changes)
    }

    #[test]
    fn samples_in_messages_and_changes_out_whatever_the_chunks() {
        let x = signal();
        let (frames, changes) = run(&x, 997);
        let want = (x.len() - 2048) / 512 + 1;
        assert_eq!(frames.len(), want);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.seq, i as u64);
            assert_eq!(f.sample_index, i as u64 * 512);
            assert_eq!(
                f.time,
                (f.sample_index + 2048) as f64 / 12_000.0,
                "stream time"
            );
            assert_eq!(f.latency_ms, 0.0);
            assert!(f.crest.is_some(), "physics ran");
        }
        let last = changes.last().expect("changes");
        assert!(
            matches!(last.to, State::NoSignal { .. }),
            "silence ends in no-signal: {:?}",
            changes.iter().map(|c| c.to.name()).collect::<Vec<_>>()
        );
        assert!(last.at_s > 3.0 && last.at_s < 5.0, "{}", last.at_s);
        let (again, changes_again) = run(&x, x.len());
        let json = |v: &[FrameMsg]| serde_json::to_string(v).expect("json");
        assert_eq!(json(&frames), json(&again), "one chunk or many");
        assert_eq!(changes, changes_again);
    }
}
