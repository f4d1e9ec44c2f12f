//! A stream's learned normal: a Gaussian over per-frame features, scored
//! by Mahalanobis distance and scaled so that 1.0 is the alarm limit.
//!
//! Features per frame: the network's embedding (the pooled features its
//! classifier reads), the frame's level (log standard deviation), the log
//! crest factor and kurtosis, and the log share of power in 16
//! log-spaced bands (the spectrum's shape, independent of level). The
//! Gaussian has a full covariance in standardised units, shrunk toward
//! the identity (`(1-λ)R + λI`): with a few hundred frames and ~80
//! features the sample covariance alone would be ill-conditioned.
//!
//! Two such Gaussians are kept, and a frame's score is the larger of the
//! two: one over every feature, and one over the signal's own measures
//! (level, crest, kurtosis, band shares) alone. In ~80 dimensions a change
//! confined to a few bands (a fault at a speed between two learned ones)
//! is diluted by the spread of the rest; the 19-feature part still sees it.
//!
//! Learning splits the frames into five contiguous blocks; each block is
//! scored by the Gaussian fitted to the other four. λ is the one whose
//! held-out likelihood is highest, and the limit is the 99th percentile of
//! the held-out distances times `MARGIN`: set by frames the fit did not
//! see, as every later frame will be. The 99th and not the 99.9th: from a
//! few hundred frames the 99.9th is the one worst frame of learning, and
//! a limit set by it was loose enough to pass a quarter of the faults at
//! a speed between two learned ones (docs/monitoring.md). The stored
//! model is then fitted to every frame.

use super::physics::crest_and_kurtosis;
use crate::manifest::Manifest;
use crate::report::Frame;
use anyhow::{bail, Context, Result};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// What a baseline file says it is.
pub const KIND: &str = "drsnd-baseline";
pub const FORMAT: u32 = 2;
/// Log-spaced bands of the spectrum's shape.
pub const BANDS: usize = 16;
/// The limit over the held-out `QUANTILE` distance.
pub const MARGIN: f64 = 2.0;
/// The quantile of held-out distances the limit is set from.
pub const QUANTILE: f64 = 0.99;
/// The held-out likelihood picks among these: little shrinkage for long
/// learning, much for a short one.
const SHRINKAGE: [f64; 7] = [0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8];
const FOLDS: usize = 5;
/// Fewest frames to learn from (2 s at hop 512); a minute or more is
/// better (see docs/monitoring.md).
pub const MIN_FRAMES: usize = 40;

/// A part's name, the features it covers, and their groups.
type PartSpec = (&'static str, Range<usize>, Vec<Range<usize>>);

/// The per-frame features, with the FFT and buffers made once.
pub struct Features {
    embedding_dims: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    input: Vec<f32>,
    output: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Band edges in FFT bins.
    edges: Vec<usize>,
}

impl Features {
    pub fn new(frame_len: usize, embedding_dims: usize) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(frame_len);
        let window = super::spectrum::hann(frame_len);
        Self {
            embedding_dims,
            input: fft.make_input_vec(),
            output: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            edges: band_edges(frame_len / 2),
            fft,
            window,
        }
    }

    /// Another set of the same features (with buffers of its own).
    pub fn like(&self) -> Self {
        Self::new(self.window.len(), self.embedding_dims)
    }

    /// The features for `m`: its frame, and its embedding if it has one.
    pub fn for_model(m: &Manifest) -> Self {
        Self::new(
            m.frame_length,
            m.embedding_output.as_ref().map_or(0, |e| e.dims),
        )
    }

    pub fn dims(&self) -> usize {
        self.embedding_dims + 3 + BANDS
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = (0..self.embedding_dims)
            .map(|i| format!("embedding_{i}"))
            .collect();
        v.extend(["log_std", "log_crest", "log_kurtosis"].map(String::from));
        v.extend((0..BANDS).map(|b| format!("band_{b}")));
        v
    }

    /// The parts of the baseline: (name, the features it covers, their
    /// groups relative to its first feature). Each group's scale floor is
    /// set from its own features.
    fn parts(&self) -> Vec<PartSpec> {
        let e = self.embedding_dims;
        let signal = ("signal", e..e + 3 + BANDS, vec![0..3, 3..3 + BANDS]);
        if e == 0 {
            return vec![signal];
        }
        let all = (
            "all",
            0..e + 3 + BANDS,
            vec![0..e, e..e + 3, e + 3..e + 3 + BANDS],
        );
        vec![all, signal]
    }

    /// Fills `out` (len() long) from a frame's samples and embedding.
    pub fn compute(&mut self, samples: &[f32], embedding: &[f32], out: &mut [f64]) -> Result<()> {
        let e = self.embedding_dims;
        if embedding.len() != e || out.len() != self.dims() {
            bail!(
                "the baseline wants {e} embedding values, the model gave {}",
                embedding.len()
            );
        }
        for (o, v) in out.iter_mut().zip(embedding) {
            *o = *v as f64;
        }
        let (crest, kurtosis) = crest_and_kurtosis(samples);
        let n = samples.len().max(1) as f64;
        let mean = samples.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = samples
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        out[e] = (var.sqrt() + 1e-12).log10();
        out[e + 1] = (crest as f64).max(1e-6).ln();
        out[e + 2] = (kurtosis as f64).max(1e-6).ln();
        for ((d, s), w) in self.input.iter_mut().zip(samples).zip(&self.window) {
            *d = (s - mean as f32) * w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch)
            .context("baseline FFT")?;
        let total: f64 = self.output[self.edges[0]..self.edges[BANDS]]
            .iter()
            .map(|z| z.norm_sqr() as f64)
            .sum::<f64>()
            + 1e-30;
        for b in 0..BANDS {
            let p: f64 = self.output[self.edges[b]..self.edges[b + 1]]
                .iter()
                .map(|z| z.norm_sqr() as f64)
                .sum();
            out[e + 3 + b] = (p / total + 1e-12).log10();
        }
        Ok(())
    }
}

/// `BANDS` + 1 edges from bin 2 to `half` bins, log-spaced, each band at
/// least one bin wide.
fn band_edges(half: usize) -> Vec<usize> {
    let (lo, hi) = (2.0f64, half as f64);
    let mut edges = Vec::with_capacity(BANDS + 1);
    for k in 0..=BANDS {
        let e = (lo * (hi / lo).powf(k as f64 / BANDS as f64)).round() as usize;
        let min = edges.last().map_or(2, |&p: &usize| p + 1);
        edges.push(e.max(min).min(half));
    }
    edges
}

/// Where a stream's baseline is kept in `state-dir`.
pub fn path_in(state_dir: &Path, stream: &str) -> std::path::PathBuf {
    state_dir.join(format!(
        "{}.baseline.json",
        crate::monitor::file_safe(stream)
    ))
}

/// A learned normal, as stored in `<state-dir>/<stream>.baseline.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub kind: String,
    pub format: u32,
    /// The model whose embedding it was learned from.
    pub model_sha256: String,
    pub model: String,
    pub sample_rate: u32,
    pub frame_length: usize,
    pub hop: usize,
    pub features: Vec<String>,
    /// The Gaussians; a frame's score is the largest of theirs.
    pub parts: Vec<Part>,
    pub frames: usize,
    pub seconds: f64,
    /// Unix seconds.
    pub learned_at: f64,
    /// The recordings it was learned from, or "live".
    pub from: Vec<String>,
    /// The share of those frames the network called normal: whether it is
    /// in its own domain on this machine (the monitor's verdict). Absent
    /// in baselines of before 0.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_normal: Option<f64>,
    /// The envelope's evidence on the healthy machine (learned where the
    /// stream has `rpm` and `bearing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<EnvelopeNormal>,
}

/// How far each defect's lines stood out on the healthy machine, so that a
/// defect counts by how far it stands above *this* machine's level: a
/// machine with a shaft or gear line near a defect frequency does not name
/// that defect for ever.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeNormal {
    /// Envelope windows learned from.
    pub windows: usize,
    /// The 95th percentile of each defect's z over them (BPFO, BPFI,
    /// 2xBSF).
    pub z95: [f64; 3],
}

/// Adds a frame's envelope window to those learned from, once (a window's
/// evidence repeats on the frames until the next), up to `max` windows.
pub fn add_window(windows: &mut Vec<[f32; 3]>, e: &crate::report::Evidence, max: usize) {
    if windows.last() != Some(&e.z) && windows.len() < max {
        windows.push(e.z);
    }
}

/// Fewer envelope windows than this learn no envelope normal (about 3.4 s).
pub const MIN_ENVELOPE_WINDOWS: usize = 5;
/// A defect counts when its z exceeds its healthy 95th percentile by this.
/// The envelope whitens the spectrum: it measures how periodic the impacts
/// are, not how strong, so a defect at the frequency of the machine's own
/// healthy line counts once it is clearly more periodic than that line was
/// (its growth in strength shows in the anomaly score instead). The
/// prominence in dB was tried and dropped: the best band's "nothing" stood
/// 7-8 dB out on a healthy machine, as high as a clear inner-race defect.
pub const ENVELOPE_MARGIN: f64 = 1.5;

impl EnvelopeNormal {
    /// From each learned window's z per defect; None with too few windows.
    pub fn learn(z: &[[f32; 3]]) -> Option<Self> {
        if z.len() < MIN_ENVELOPE_WINDOWS {
            return None;
        }
        let z95 = std::array::from_fn(|i| {
            // f32::MIN: no line fitted the band; not a level.
            let mut v: Vec<f64> = z
                .iter()
                .map(|w| w[i] as f64)
                .filter(|v| v.is_finite() && *v > f32::MIN as f64)
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(((v.len() as f64 * 0.95) as usize).min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        });
        Some(Self {
            windows: z.len(),
            z95,
        })
    }

    /// The family a window names against this machine's normal: the
    /// defect with the largest z of those over the global threshold and,
    /// where the healthy machine itself reached it (a line of its own at
    /// that frequency), `ENVELOPE_MARGIN` over that healthy level.
    pub fn judge(&self, e: &crate::report::Evidence) -> Option<crate::report::Family> {
        let min_z = super::envelope::MIN_Z as f64;
        let over = |i: usize| {
            let z = e.z[i] as f64;
            let healthy = self.z95[i];
            z > min_z && (healthy < min_z || z > healthy + ENVELOPE_MARGIN)
        };
        (0..3)
            .filter(|&i| over(i))
            .max_by(|&a, &b| e.z[a].total_cmp(&e.z[b]))
            .map(|i| crate::report::Family::ALL[i])
    }
}

/// One Gaussian over `len` features from `first`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub name: String,
    pub first: usize,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    /// Lower Cholesky factor of the shrunk correlation, row by row.
    pub cholesky: Vec<f64>,
    pub shrinkage: f64,
    /// Mahalanobis distance at anomaly 1.0.
    pub limit: f64,
}

impl Part {
    /// Learns from the `cols` of `rows` (`d` values per frame).
    fn learn(
        name: &str,
        rows: &[f32],
        d: usize,
        cols: Range<usize>,
        groups: &[Range<usize>],
    ) -> Result<Self> {
        let k = cols.len();
        let sub: Vec<f32> = rows
            .chunks_exact(d)
            .flat_map(|r| r[cols.clone()].iter().copied())
            .collect();
        let n = sub.len() / k.max(1);
        let mut best: Option<(f64, f64, Vec<f64>)> = None;
        for &lambda in &SHRINKAGE {
            let (loglik, distances) = held_out(&sub, k, n, lambda, groups)?;
            if best.as_ref().is_none_or(|b| loglik > b.0) {
                best = Some((loglik, lambda, distances));
            }
        }
        let (_, lambda, mut distances) = best.context("no shrinkage tried")?;
        distances.sort_by(f64::total_cmp);
        let q = distances
            [((distances.len() as f64 * QUANTILE).ceil() as usize).min(distances.len()) - 1];
        let g = Gaussian::fit(&sub, k, 0..n, lambda, groups)?;
        Ok(Self {
            name: name.into(),
            first: cols.start,
            mean: g.mean,
            scale: g.scale,
            cholesky: g.chol,
            shrinkage: lambda,
            limit: q * MARGIN,
        })
    }

    fn score(&self, x: &[f64], z: &mut [f64]) -> f64 {
        let k = self.mean.len();
        let x = &x[self.first..self.first + k];
        mahalanobis(&self.mean, &self.scale, &self.cholesky, x, &mut z[..k]) / self.limit
    }

    fn check(&self, cols: &Range<usize>) -> Result<()> {
        let d = cols.len();
        let name = &self.name;
        if self.first != cols.start
            || self.mean.len() != d
            || self.scale.len() != d
            || self.cholesky.len() != d * (d + 1) / 2
        {
            bail!(
                "its part {name:?} does not cover the {d} features from {}",
                cols.start
            );
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !finite(&self.mean) || !finite(&self.cholesky) || !finite(&self.scale) {
            bail!("its part {name:?} holds a value that is not a finite number");
        }
        if self.scale.iter().any(|&s| s <= 0.0) || !(self.limit > 0.0 && self.limit.is_finite()) {
            bail!("its part {name:?}: scale and limit must be positive");
        }
        if (0..d).any(|i| self.cholesky[i * (i + 1) / 2 + i] <= 0.0) {
            bail!("its part {name:?}: the cholesky factor is not positive definite");
        }
        Ok(())
    }
}

/// A frame the baseline may learn from: signal, and nothing odd about it
/// (the daemon and `drsnd baseline learn` use this one rule).
pub fn learnable(f: &Frame, signal_floor: f32) -> bool {
    let fl = f.flags;
    f.no_signal(signal_floor).is_none() && !(fl.nonfinite || fl.clipped || fl.after_gap)
}

/// Whether the network calls the frame normal: the top family is the
/// normal one (models with a family head), else the top class is `Normal`.
pub fn calls_normal(labels: &crate::manifest::Labels, p: &crate::report::Prediction) -> bool {
    use crate::report::argmax;
    if labels.families.is_empty() {
        let (top, _) = argmax(&p.probs);
        labels.classes.get(top).is_some_and(|c| c == "Normal")
    } else {
        let (top, _) = argmax(&p.family_probs);
        labels
            .families
            .get(top)
            .is_some_and(|f| f == crate::manifest::NORMAL_FAMILY)
    }
}

/// Where a baseline came from, for its file.
#[derive(Debug, Clone)]
pub struct Origin {
    pub model_sha256: String,
    pub model: String,
    pub sample_rate: u32,
    pub frame_length: usize,
    pub hop: usize,
    pub from: Vec<String>,
}

impl Origin {
    pub fn of(m: &Manifest, hop: usize, from: Vec<String>) -> Self {
        Self {
            model_sha256: m.sha256.clone(),
            model: format!("{} {}", m.name, m.version),
            sample_rate: m.sample_rate,
            frame_length: m.frame_length,
            hop,
            from,
        }
    }
}

/// Why a stored baseline cannot be used.
#[derive(Debug)]
pub enum LoadError {
    /// Made with another model: not an error of the file, just not ours.
    OtherModel {
        path: String,
        sha256: String,
    },
    Bad(anyhow::Error),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::OtherModel { path, sha256 } => write!(
                f,
                "{path}: learned with another model (sha256 {}…); not used",
                &sha256[..12.min(sha256.len())]
            ),
            LoadError::Bad(e) => write!(f, "{e:#}"),
        }
    }
}

impl Baseline {
    /// Reads and checks a baseline for `model_sha256` and `features`.
    pub fn load(path: &Path, model_sha256: &str, features: &Features) -> Result<Self, LoadError> {
        let shown = path.display().to_string();
        let bad = |e: anyhow::Error| LoadError::Bad(e.context(shown.clone()));
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(anyhow::Error::new(e).context("cannot read")))?;
        let b: Baseline = serde_json::from_str(&text)
            .map_err(|e| bad(anyhow::anyhow!("not a drsnd baseline file: {e}")))?;
        if b.kind != KIND || b.format != FORMAT {
            return Err(bad(anyhow::anyhow!(
                "kind {:?} format {}; expected {KIND:?} format {FORMAT}",
                b.kind,
                b.format
            )));
        }
        if b.model_sha256 != model_sha256 {
            return Err(LoadError::OtherModel {
                path: shown,
                sha256: b.model_sha256,
            });
        }
        b.check(features).map_err(bad)?;
        Ok(b)
    }

    fn check(&self, features: &Features) -> Result<()> {
        let d = features.dims();
        if self.features != features.names() {
            bail!(
                "its {} features are not the {d} this drsnd computes",
                self.features.len()
            );
        }
        let want = features.parts();
        let names: Vec<&str> = self.parts.iter().map(|p| p.name.as_str()).collect();
        if names != want.iter().map(|w| w.0).collect::<Vec<_>>() {
            bail!("its parts {names:?} are not the ones this drsnd scores by");
        }
        for (p, (_, cols, _)) in self.parts.iter().zip(&want) {
            p.check(cols)?;
        }
        Ok(())
    }

    /// Survives a power cut whole: relearning costs the user minutes.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        crate::atomic::write(path, text.as_bytes(), crate::atomic::Durability::Whole)
            .with_context(|| format!("{}: cannot write", path.display()))
    }

    /// Learns from `rows` (features.dims() values per frame, frame order).
    pub fn learn(rows: &[f32], features: &Features, seconds: f64, origin: Origin) -> Result<Self> {
        let d = features.dims();
        let n = rows.len() / d;
        if n < MIN_FRAMES {
            bail!("{n} frames of signal to learn from; a baseline needs at least {MIN_FRAMES}");
        }
        let parts = features
            .parts()
            .into_iter()
            .map(|(name, cols, groups)| Part::learn(name, rows, d, cols, &groups))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            kind: KIND.into(),
            format: FORMAT,
            model_sha256: origin.model_sha256,
            model: origin.model,
            sample_rate: origin.sample_rate,
            frame_length: origin.frame_length,
            hop: origin.hop,
            features: features.names(),
            parts,
            frames: n,
            seconds,
            learned_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            from: origin.from,
            network_normal: None,
            envelope: None,
        })
    }

    /// Records the envelope's evidence on the healthy machine, if any.
    pub fn with_envelope(mut self, windows: &[[f32; 3]]) -> Self {
        self.envelope = EnvelopeNormal::learn(windows);
        self
    }

    /// Records how many of the `n` frames learned the network called normal.
    pub fn with_network_normal(mut self, normal: usize) -> Self {
        self.network_normal = Some(normal as f64 / self.frames.max(1) as f64);
        self
    }

    /// The anomaly score of one frame's features: 1.0 at the limit.
    /// `z` is scratch of the same length.
    pub fn score(&self, x: &[f64], z: &mut [f64]) -> f64 {
        self.parts.iter().map(|p| p.score(x, z)).fold(0.0, f64::max)
    }
}

/// Held-out log-likelihood (up to a constant) and the held-out distances
/// of every frame, over `FOLDS` contiguous blocks.
fn held_out(
    rows: &[f32],
    d: usize,
    n: usize,
    lambda: f64,
    groups: &[Range<usize>],
) -> Result<(f64, Vec<f64>)> {
    let mut loglik = 0.0;
    let mut distances = Vec::with_capacity(n);
    let mut x = vec![0.0; d];
    let mut z = vec![0.0; d];
    for k in 0..FOLDS {
        let (lo, hi) = (k * n / FOLDS, (k + 1) * n / FOLDS);
        let rest = (0..lo).chain(hi..n);
        let g = Gaussian::fit(rows, d, rest, lambda, groups)?;
        let log_det = g.log_det();
        for i in lo..hi {
            for (xv, r) in x.iter_mut().zip(&rows[i * d..(i + 1) * d]) {
                *xv = *r as f64;
            }
            let m = mahalanobis(&g.mean, &g.scale, &g.chol, &x, &mut z);
            loglik -= 0.5 * (m * m + log_det);
            distances.push(m);
        }
    }
    Ok((loglik, distances))
}

struct Gaussian {
    mean: Vec<f64>,
    scale: Vec<f64>,
    chol: Vec<f64>,
}

impl Gaussian {
    /// Fits to the frames `which` of `rows`.
    fn fit(
        rows: &[f32],
        d: usize,
        which: impl Iterator<Item = usize> + Clone,
        lambda: f64,
        groups: &[Range<usize>],
    ) -> Result<Self> {
        let n = which.clone().count().max(1) as f64;
        let row = |i: usize| &rows[i * d..(i + 1) * d];
        let mut mean = vec![0.0; d];
        for i in which.clone() {
            for (m, v) in mean.iter_mut().zip(row(i)) {
                *m += *v as f64 / n;
            }
        }
        let mut var = vec![0.0; d];
        for i in which.clone() {
            for ((s, v), m) in var.iter_mut().zip(row(i)).zip(&mean) {
                *s += (*v as f64 - m).powi(2) / n;
            }
        }
        let mut scale: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
        // A feature that hardly moves while learning (an embedding channel
        // that is always 0) must not turn its first small move into an
        // alarm: each scale is at least a tenth of its group's median.
        for g in groups {
            let mut s: Vec<f64> = scale[g.clone()].to_vec();
            s.sort_by(f64::total_cmp);
            let floor = (s.get(s.len() / 2).copied().unwrap_or(0.0) * 0.1).max(1e-9);
            for v in &mut scale[g.clone()] {
                *v = v.max(floor);
            }
        }
        let mut corr = vec![0.0; d * d];
        let mut zrow = vec![0.0; d];
        for i in which {
            for ((z, v), (m, s)) in zrow.iter_mut().zip(row(i)).zip(mean.iter().zip(&scale)) {
                *z = (*v as f64 - m) / s;
            }
            for a in 0..d {
                let za = zrow[a] / n;
                for b in 0..=a {
                    corr[a * d + b] += za * zrow[b];
                }
            }
        }
        for a in 0..d {
            for b in 0..a {
                corr[a * d + b] *= 1.0 - lambda;
            }
            corr[a * d + a] = (1.0 - lambda) * corr[a * d + a] + lambda;
        }
        let chol = cholesky(&corr, d).context("the learning frames' covariance is degenerate")?;
        Ok(Self { mean, scale, chol })
    }

    fn log_det(&self) -> f64 {
        let d = self.mean.len();
        let chol: f64 = (0..d)
            .map(|i| self.chol[i * (i + 1) / 2 + i].ln())
            .sum::<f64>();
        2.0 * chol + 2.0 * self.scale.iter().map(|s| s.ln()).sum::<f64>()
    }
}

/// Lower Cholesky factor of the symmetric `a` (its lower triangle is read),
/// packed row by row.
fn cholesky(a: &[f64], d: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0; d * (d + 1) / 2];
    let at = |i: usize, j: usize| i * (i + 1) / 2 + j;
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= l[at(i, k)] * l[at(j, k)];
            }
            if i == j {
                if s.is_nan() || s <= 0.0 {
                    bail!("not positive definite at {i}");
                }
                l[at(i, i)] = s.sqrt();
            } else {
                l[at(i, j)] = s / l[at(j, j)];
            }
        }
    }
    Ok(l)
}

/// ‖L⁻¹ (x − μ)/s‖ by forward substitution; `z` is scratch.
fn mahalanobis(mean: &[f64], scale: &[f64], chol: &[f64], x: &[f64], z: &mut [f64]) -> f64 {
    let d = mean.len();
    let mut sum = 0.0;
    let mut k = 0;
    for i in 0..d {
        let mut v = (x[i] - mean[i]) / scale[i];
        for j in 0..i {
            v -= chol[k + j] * z[j];
        }
        v /= chol[k + i];
        z[i] = v;
        sum += v * v;
        k += i + 1;
    }
    if sum.is_finite() {
        sum.sqrt()
    } else {
        f64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            model_sha256: "abc".into(),
            model: "m".into(),
            sample_rate: 12_000,
            frame_length: 256,
            hop: 128,
            from: vec!["test".into()],
        }
    }

    /// Frames of noise with a sine whose frequency is `hz`; embeddings of 4.
    fn rows(f: &mut Features, frames: usize, hz: f32, level: f32, seed: u64) -> Vec<f32> {
        let mut state = seed;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let mut out = Vec::new();
        let mut x = vec![0.0f64; f.dims()];
        for k in 0..frames {
            let s: Vec<f32> = (0..256)
                .map(|i| {
                    let t = (k * 128 + i) as f32 / 12_000.0;
                    level * ((2.0 * std::f32::consts::PI * hz * t).sin() + 0.3 * noise())
                })
                .collect();
            let emb = [noise().abs(), noise().abs(), 0.0, 1.0 + 0.1 * noise()];
            f.compute(&s, &emb, &mut x).expect("features");
            out.extend(x.iter().map(|&v| v as f32));
        }
        out
    }

    fn window(z: [f32; 3], db: [f32; 3]) -> crate::report::Evidence {
        use crate::report::{Speed, SpeedSource};
        crate::report::Evidence {
            prominence_db: db,
            z,
            family: None,
            band_hz: [2000.0, 3500.0],
            speed: Speed {
                rpm: 1797.0,
                confidence: 5.0,
                source: SpeedSource::Signal,
            },
            line_hz: [107.1, 161.8, 141.2],
        }
    }

    #[test]
    fn a_defect_counts_by_how_far_it_stands_above_this_machines_healthy_level() {
        use crate::report::Family;
        assert!(
            EnvelopeNormal::learn(&[[1.0; 3]; 4]).is_none(),
            "too few windows"
        );
        // A healthy machine whose BPFO line always stands out (a shaft or
        // gear line there): z 4-6 at BPFO, 1-2 elsewhere, 2xBSF never fits.
        let healthy: Vec<[f32; 3]> = (0..40)
            .map(|i| {
                [
                    4.0 + (i % 5) as f32 * 0.5,
                    1.0 + (i % 3) as f32 * 0.5,
                    f32::MIN,
                ]
            })
            .collect();
        let n = EnvelopeNormal::learn(&healthy).expect("40 windows");
        assert_eq!(n.windows, 40);
        assert_eq!(n.z95, [6.0, 2.0, 0.0]);
        // Its usual BPFO line names nothing here, though over the global 3.5.
        assert_eq!(n.judge(&window([5.5, 1.0, 1.0], [9.0; 3])), None);
        // A defect far more periodic than that line names it; an inner one
        // is judged against the inner line's own healthy level.
        let outer = window([12.0, 1.0, 1.0], [14.0; 3]);
        assert_eq!(n.judge(&outer), Some(Family::Outer));
        let inner = window([5.5, 4.0, 1.0], [9.0; 3]);
        assert_eq!(n.judge(&inner), Some(Family::Inner));
        let weak = window([5.5, 3.2, 1.0], [9.0; 3]);
        assert_eq!(n.judge(&weak), None, "under the global 3.5");
        // Where the healthy machine never reached 3.5, the global 3.5 alone.
        let just = window([5.5, 3.6, 1.0], [9.0; 3]);
        assert_eq!(n.judge(&just), Some(Family::Inner));
    }

    #[test]
    fn learned_frames_score_below_one_and_a_changed_machine_far_above() {
        let mut f = Features::new(256, 4);
        let learn = rows(&mut f, 400, 500.0, 1.0, 1);
        let b = Baseline::learn(&learn, &f, 10.0, origin()).expect("learns");
        let d = f.dims();
        let mut z = vec![0.0; d];
        let score = |r: &[f32], z: &mut [f64]| {
            let x: Vec<f64> = r.iter().map(|&v| v as f64).collect();
            b.score(&x, z)
        };
        let same = rows(&mut f, 200, 500.0, 1.0, 2);
        let above = same.chunks(d).filter(|r| score(r, &mut z) > 1.0).count();
        assert!(above <= 2, "{above} of 200 healthy frames above the limit");
        let louder = rows(&mut f, 50, 500.0, 4.0, 3);
        assert!(
            louder.chunks(d).all(|r| score(r, &mut z) > 1.0),
            "4x the level"
        );
        let other = rows(&mut f, 50, 2000.0, 1.0, 4);
        assert!(
            other.chunks(d).all(|r| score(r, &mut z) > 1.0),
            "another tone"
        );
    }

    #[test]
    fn a_file_round_trips_and_bad_files_say_why() {
        let mut f = Features::new(256, 4);
        let b =
            Baseline::learn(&rows(&mut f, 200, 300.0, 1.0, 5), &f, 5.0, origin()).expect("learns");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("s.baseline.json");
        b.save(&path).expect("saves");
        assert_eq!(Baseline::load(&path, "abc", &f).expect("loads"), b);
        let err = Baseline::load(&path, "other", &f).expect_err("other model");
        assert!(matches!(err, LoadError::OtherModel { .. }), "{err}");
        assert!(err.to_string().contains("another model"), "{err}");
        let err = Baseline::load(&path, "abc", &Features::new(256, 5)).expect_err("features");
        assert!(err.to_string().contains("features"), "{err}");
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, &text[..text.len() / 2]).expect("truncate");
        let err = Baseline::load(&path, "abc", &f).expect_err("truncated");
        assert!(err.to_string().contains("s.baseline.json"), "{err}");
        std::fs::write(&path, text.replacen("\"limit\": ", "\"limit\": -", 1)).expect("write");
        let err = Baseline::load(&path, "abc", &f).expect_err("negative limit");
        assert!(err.to_string().contains("positive"), "{err}");
    }

    #[test]
    fn too_few_frames_is_an_error_that_says_how_many_are_needed() {
        let mut f = Features::new(256, 4);
        let err = Baseline::learn(&rows(&mut f, 20, 300.0, 1.0, 6), &f, 1.0, origin())
            .expect_err("too few");
        assert!(err.to_string().contains("at least"), "{err}");
    }

    #[test]
    fn band_edges_rise() {
        let e = band_edges(1024);
        assert_eq!(e.len(), BANDS + 1);
        assert!(e.windows(2).all(|w| w[0] < w[1]), "{e:?}");
        assert_eq!((e[0], e[BANDS]), (2, 1024));
    }
}
