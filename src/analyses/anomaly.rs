//! The anomaly score: each frame's distance from the stream's learned
//! normal ([`baseline`](super::baseline)), 1.0 at its alarm limit. Without
//! a baseline the stream learns one when `learn-s` says so or a client asks
//! (`{"cmd":"learn"}`), from frames of signal only (no silence, no clipped,
//! non-finite or post-gap frames), then keeps it in `state-dir`.

use super::baseline::{
    add_window, calls_normal, learnable, Baseline, Features, LoadError, Origin,
    MIN_ENVELOPE_WINDOWS,
};
use super::Analysis;
use crate::hub::{BaselineCell, BaselineStatus};
use crate::report::{Frame, Report};
use anyhow::Result;
use std::path::PathBuf;
use std::sync::Arc;

/// Most frames kept while learning; longer learning keeps every k-th
/// frame (600 s at hop 512 is 14 000 frames).
pub const MAX_LEARN_FRAMES: usize = 8192;

/// What the stream's baseline depends on besides the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BaselineSpec {
    /// The stream's name, for the log.
    pub stream: String,
    /// Where the stream's baseline is kept (none: no state-dir).
    pub file: Option<PathBuf>,
    /// Learn this many seconds of signal when there is no usable baseline.
    pub learn_s: Option<f64>,
    /// Below this standard deviation a frame is no signal (not learned).
    pub signal_floor: f32,
    pub hop: usize,
    /// The stream has envelope evidence (`rpm` and `bearing`): the
    /// baseline learns it on the healthy machine and judges it after.
    pub envelope: bool,
}

/// Envelope windows a live baseline keeps (one per 8192 samples: 45 min
/// at 12 kHz; a longer learning keeps the first ones).
const MAX_ENVELOPE_WINDOWS: usize = 4096;

enum Mode {
    Off,
    Learning(Learner),
    /// The fit runs on a thread of its own (seconds for thousands of
    /// frames): the stream goes on meanwhile, still `learning`.
    Fitting(std::sync::mpsc::Receiver<Result<Baseline>>),
    Scoring(Box<Baseline>),
}

struct Learner {
    rows: Vec<f32>,
    /// Frames of signal to see, and seen so far.
    target: usize,
    seen: usize,
    /// Of the frames kept, those the network called normal.
    normal: usize,
    /// Each envelope window's z per defect, healthy frames only.
    envelope: Vec<[f32; 3]>,
    /// Every `stride`-th frame of signal is kept.
    stride: usize,
    seconds: f64,
}

pub struct Anomaly {
    features: Features,
    row: Vec<f64>,
    z: Vec<f64>,
    mode: Mode,
    cell: Arc<BaselineCell>,
    spec: BaselineSpec,
    /// What a live-learned baseline records of its model and framing.
    origin: Origin,
    labels: crate::manifest::Labels,
}

impl Anomaly {
    /// Loads the stream's baseline if it has one. A baseline file that
    /// cannot be read is an error (the daemon does not start, a reload
    /// keeps the running analyses); one learned with another model is not
    /// used, and the stream relearns if `learn-s` is set.
    pub fn new(
        manifest: &crate::manifest::Manifest,
        spec: &BaselineSpec,
        cell: Arc<BaselineCell>,
    ) -> Result<Self> {
        let features = Features::for_model(manifest);
        let d = features.dims();
        let mut a = Self {
            features,
            row: vec![0.0; d],
            z: vec![0.0; d],
            mode: Mode::Off,
            cell,
            spec: spec.clone(),
            origin: Origin::of(manifest, spec.hop, vec!["live".into()]),
            labels: manifest.labels(),
        };
        let loaded = match spec.file.as_deref().filter(|f| f.exists()) {
            Some(path) => match Baseline::load(path, &a.origin.model_sha256, &a.features) {
                Ok(b) => Some(b),
                Err(e @ LoadError::OtherModel { .. }) => {
                    tracing::warn!("{e}");
                    a.cell.set(BaselineStatus::Ignored {
                        note: e.to_string(),
                    });
                    None
                }
                Err(LoadError::Bad(e)) => return Err(e),
            },
            None => None,
        };
        match (loaded, spec.learn_s) {
            (Some(b), _) => a.score_with(b),
            (None, Some(s)) => a.start_learning(s),
            (None, None) => {}
        }
        Ok(a)
    }

    fn score_with(&mut self, b: Baseline) {
        if self.spec.envelope && b.envelope.is_none() {
            let file = self
                .spec
                .file
                .as_ref()
                .map_or("(live)".into(), |f| f.display().to_string());
            tracing::warn!(
                stream = %self.spec.stream,
                "baseline {file} holds no envelope evidence (learned without `rpm` and `bearing`, \
                 or from under {MIN_ENVELOPE_WINDOWS} envelope windows): bearing defects are judged \
                 against the global null only; relearn it to judge them against this machine's normal"
            );
        }
        self.cell.set(BaselineStatus::Learned {
            frames: b.frames,
            seconds: b.seconds,
            learned_at: b.learned_at,
            file: self.spec.file.as_ref().map(|f| f.display().to_string()),
        });
        self.mode = Mode::Scoring(Box::new(b));
    }

    fn start_learning(&mut self, seconds: f64) {
        let per_s = self.origin.sample_rate as f64 / self.spec.hop.max(1) as f64;
        let target = ((seconds * per_s).ceil() as usize).max(1);
        let stride = target.div_ceil(MAX_LEARN_FRAMES).max(1);
        let kept = target.div_ceil(stride);
        self.mode = Mode::Learning(Learner {
            rows: Vec::with_capacity(kept * self.features.dims()),
            target,
            seen: 0,
            normal: 0,
            envelope: Vec::with_capacity(if self.spec.envelope {
                MAX_ENVELOPE_WINDOWS
            } else {
                0
            }),
            stride,
            seconds,
        });
        self.cell.set(BaselineStatus::Learning {
            progress: 0.0,
            seconds,
        });
    }

    /// Hands the learned frames to a fitting thread; `frame` takes up its result.
    fn finish_learning(&mut self, l: Learner) {
        let origin = self.origin.clone();
        // The fitting thread's own: only its names and length are read.
        let features = self.features.like();
        let file = self.spec.file.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let stream = self.spec.stream.clone();
        let fit = move || {
            let t = std::time::Instant::now();
            let learned = Baseline::learn(&l.rows, &features, l.seconds, origin)
                .map(|b| b.with_network_normal(l.normal).with_envelope(&l.envelope));
            tracing::debug!(%stream, "baseline fitted in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
            let saved = learned.and_then(|b| match &file {
                Some(path) => b.save(path).map(|_| b),
                None => Ok(b),
            });
            let _ = tx.send(saved);
        };
        let spawned = std::thread::Builder::new()
            .name("baseline-fit".into())
            .spawn(fit);
        match spawned {
            Ok(_) => self.mode = Mode::Fitting(rx),
            Err(e) => self.fitted(Err(anyhow::Error::new(e).context("cannot start the fit"))),
        }
    }

    fn fitted(&mut self, result: Result<Baseline>) {
        match result {
            Ok(b) => {
                tracing::info!(
                    stream = %self.spec.stream,
                    frames = b.frames,
                    "baseline learned from {:.0} s of signal",
                    b.seconds
                );
                self.score_with(b);
            }
            Err(e) => {
                tracing::warn!(stream = %self.spec.stream, "baseline learning failed: {e:#}");
                self.cell.set(BaselineStatus::Failed {
                    reason: format!("{e:#}"),
                });
                self.mode = Mode::Off;
            }
        }
    }

    fn frame(&mut self, f: &Frame, r: &mut Report) -> Result<()> {
        let learnable = learnable(f, self.spec.signal_floor);
        match &mut self.mode {
            Mode::Off => {}
            Mode::Fitting(rx) => {
                r.learning = Some(1.0);
                match rx.try_recv() {
                    Ok(result) => self.fitted(result),
                    Err(std::sync::mpsc::TryRecvError::Empty) => {}
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => self.fitted(Err(
                        anyhow::anyhow!("the fitting thread ended without a result"),
                    )),
                }
            }
            Mode::Scoring(b) => {
                self.features
                    .compute(&f.samples, &r.prediction.embedding, &mut self.row)?;
                r.anomaly = Some(b.score(&self.row, &mut self.z) as f32);
                r.network_normal = b.network_normal.map(|s| s as f32);
                // A defect counts by how far it stands above this machine's normal.
                if let (Some(normal), Some(e)) = (&b.envelope, envelope_of(r)) {
                    e.family = normal.judge(e);
                }
            }
            Mode::Learning(l) => {
                if learnable {
                    if l.seen % l.stride == 0 {
                        self.features.compute(
                            &f.samples,
                            &r.prediction.embedding,
                            &mut self.row,
                        )?;
                        l.rows.extend(self.row.iter().map(|&v| v as f32));
                        l.normal += calls_normal(&self.labels, &r.prediction) as usize;
                    }
                    if let Some(e) = envelope_of(r) {
                        let max = l.envelope.capacity();
                        add_window(&mut l.envelope, e, max);
                    }
                    l.seen += 1;
                }
                let progress = l.seen as f32 / l.target as f32;
                r.learning = Some(progress.min(1.0));
                // Progress for `status` about once a second, not per frame.
                if l.seen % 25 == 0 {
                    self.cell.set(BaselineStatus::Learning {
                        progress,
                        seconds: l.seconds,
                    });
                }
                if l.seen >= l.target {
                    if let Mode::Learning(l) = std::mem::replace(&mut self.mode, Mode::Off) {
                        self.finish_learning(l);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The frame's envelope evidence, if its window is full.
fn envelope_of(r: &mut Report) -> Option<&mut crate::report::Evidence> {
    r.physical.as_mut()?.envelope.as_mut()?.as_mut()
}

impl Analysis for Anomaly {
    fn name(&self) -> &'static str {
        "anomaly"
    }

    fn run(&mut self, frames: &[Frame], reports: &mut [Report]) -> Result<()> {
        if let Some(seconds) = self.cell.take_request() {
            tracing::info!(
                stream = %self.spec.stream,
                "learning a new baseline from the next {seconds:.0} s of signal"
            );
            self.start_learning(seconds);
        }
        for (f, r) in frames.iter().zip(reports.iter_mut()) {
            self.frame(f, r)?;
        }
        Ok(())
    }
}
