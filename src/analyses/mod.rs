//! The per-frame analyses of a stream, run in order on every frame by the
//! stream's pipeline ([`crate::pipeline`]). Each analysis adds its own
//! fields to the frame's [`Report`], which the monitor, the snapshots and
//! every output read. The list: the DRSN classifier, the denoiser, the
//! spectrum (for the page), the physical measures with the envelope
//! evidence, and the anomaly score against the stream's baseline. A new one
//! is a file here and an entry in [`Analyses::for_stream`], not a branch in
//! the worker loop (docs/architecture.md).

pub mod anomaly;
pub mod baseline;
pub mod classifier;
pub mod denoise;
pub mod envelope;
pub mod physics;
pub mod spectrum;
pub mod speed;

use crate::config::{Config, SourceConfig};
use crate::hub::Links;
use crate::infer::denoiser::Denoiser;
use crate::infer::Model;
use crate::manifest::{Labels, Manifest, ModelFiles};
use crate::report::{Frame, Report};
use anyhow::Result;

/// One analysis of a stream's frames.
pub trait Analysis: Send {
    /// A short name for logs and errors.
    fn name(&self) -> &'static str;
    /// Largest batch it takes in one call (a worker that has fallen behind
    /// hands over what waits, up to the smallest of these).
    fn max_batch(&self) -> usize {
        usize::MAX
    }
    /// Analyses `frames`, filling its fields of `reports[i]` for `frames[i]`.
    fn run(&mut self, frames: &[Frame], reports: &mut [Report]) -> Result<()>;
}

/// What is loaded once and shared by every stream's analyses (the models):
/// built at start and again, whole, on reload.
pub struct Shared {
    pub classifier: Model,
    /// The denoiser, with `[denoise] model`.
    pub denoiser: Option<Denoiser>,
    /// Whether frames carry their spectrum (the web page wants it).
    pub spectrum: bool,
}

impl Shared {
    /// The models the config names, loaded and checked, and what runs on
    /// every frame ([http] spectrum).
    pub fn load(cfg: &Config) -> Result<Self> {
        let files = ModelFiles::load(&cfg.model)?;
        let model = Model::load_checked(&files, cfg.max_batch)?;
        let m = &model.manifest;
        tracing::info!(
            "model {} {} ({}), {} Hz, frames of {}, {} threshold outputs",
            m.name,
            m.version,
            files.onnx_path.display(),
            m.sample_rate,
            m.frame_length,
            m.thresholds.len()
        );
        let denoiser = cfg
            .denoise
            .as_ref()
            .map(|d| denoise::load(d, m, cfg.hop))
            .transpose()?;
        Ok(Self {
            denoiser,
            classifier: model,
            spectrum: cfg.http.as_ref().is_some_and(|h| h.spectrum),
        })
    }
}

/// What one stream's analyses depend on besides the models.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    /// Sensor units to m/s² (None: no physical measures).
    pub to_ms2: Option<f64>,
    pub iso_zones: [f64; 3],
    /// Shaft speed and bearing orders (None: no envelope evidence).
    pub envelope: Option<envelope::EnvelopeSpec>,
    pub baseline: anomaly::BaselineSpec,
}

impl StreamSpec {
    pub fn of(cfg: &Config, sc: &SourceConfig, stream: &str) -> Self {
        let monitor = cfg.monitor_of(sc);
        let state_dir = monitor.state_dir.as_ref();
        Self {
            to_ms2: sc.to_ms2(),
            iso_zones: monitor.iso_zones,
            envelope: sc
                .rpm
                .zip(sc.bearing)
                .map(|(rpm, bearing)| envelope::EnvelopeSpec {
                    speed: speed::SpeedSpec::new(rpm, sc.rpm_range),
                    bearing,
                    band: sc.envelope_band,
                }),
            baseline: anomaly::BaselineSpec {
                stream: stream.to_string(),
                file: state_dir.map(|d| baseline::path_in(d, stream)),
                learn_s: monitor.learn_s,
                signal_floor: monitor.signal_floor,
                hop: cfg.hop,
                envelope: sc.rpm.is_some() && sc.bearing.is_some(),
            },
        }
    }

    /// Every stream's, in the order the daemon builds them (sources in
    /// order, each one's named channels in order).
    pub fn all(cfg: &Config) -> Vec<Self> {
        cfg.sources
            .iter()
            .flat_map(|sc| {
                sc.streams
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(move |name| Self::of(cfg, sc, name))
            })
            .collect()
    }
}

/// One stream's analyses, in order. A reload builds a new `Analyses` for
/// every stream before any stream takes one: all swap, or none.
pub struct Analyses {
    /// The classifier's manifest: class names and the model's sha256 for
    /// every frame message, and the monitor's classes.
    pub manifest: Manifest,
    /// The manifest's class and family ids, made once (every frame message
    /// names them).
    pub labels: Labels,
    /// Whether frames carry `denoise` (the denoiser runs).
    pub denoising: bool,
    stages: Vec<Box<dyn Analysis>>,
}

impl Analyses {
    /// The analyses of one stream, sharing the loaded models. `links`: the
    /// stream's baseline requests and status, and its denoised signal.
    pub fn for_stream(shared: &Shared, spec: &StreamSpec, links: Links) -> Result<Self> {
        crate::fault::fail_a_fork()?;
        let mut stages: Vec<Box<dyn Analysis>> = vec![Box::new(classifier::Classifier::new(
            shared.classifier.fork()?,
        ))];
        if let Some(d) = &shared.denoiser {
            stages.push(Box::new(denoise::Denoise::new(d.fork()?, links.denoised)));
        }
        if shared.spectrum {
            let n = shared.classifier.manifest.frame_length;
            stages.push(Box::new(spectrum::Spectrum::new(n)));
        }
        if let Some(to_ms2) = spec.to_ms2 {
            let rate = shared.classifier.manifest.sample_rate;
            stages.push(Box::new(physics::Physics::new(
                rate,
                to_ms2,
                spec.iso_zones,
                spec.envelope.as_ref(),
            )?));
        }
        let manifest = shared.classifier.manifest.clone();
        // Last: it reads the embedding the classifier filled.
        stages.push(Box::new(anomaly::Anomaly::new(
            &manifest,
            &spec.baseline,
            links.baseline,
        )?));
        Ok(Self {
            denoising: shared.denoiser.is_some(),
            labels: manifest.labels(),
            manifest,
            stages,
        })
    }

    pub fn max_batch(&self) -> usize {
        self.stages
            .iter()
            .map(|s| s.max_batch())
            .min()
            .unwrap_or(1)
            .max(1)
    }

    /// Runs every analysis on `frames`, in order; `reports` is refilled with
    /// one report per frame. An error names the analysis that failed.
    pub fn run(&mut self, frames: &[Frame], reports: &mut Vec<Report>) -> Result<()> {
        reports.clear();
        reports.resize_with(frames.len(), Report::default);
        for stage in &mut self.stages {
            let name = stage.name();
            stage
                .run(frames, reports)
                .map_err(|e| e.context(format!("{name} failed")))?;
        }
        Ok(())
    }
}
