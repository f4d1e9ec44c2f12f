//! The DRSN denoiser on a stream: every other frame (one per half frame) is
//! denoised and the outputs are overlap-added with a periodic Hann window,
//! which sums to exactly 1 at 50 % overlap, into one continuous cleaned
//! signal at the model rate. It goes to the stream's [`DenoisedTap`] (the
//! `<stream>.f32` socket); each frame's report gets the denoiser's view of
//! it (input SNR, mean threshold per unit).
//!
//! Where no other frame overlaps (the first half of a run's first frame,
//! the second half of its last) the weight is 1. `drsnd denoise` and the
//! training recipe (`denoise_fit.ola_weights`) use the same rule, so the
//! daemon's socket and the offline file carry the same samples.
//!
//! Latency: sample t leaves with the frame that starts at or before it by
//! less than one hop, at most one frame plus one hop after it arrived.

use super::Analysis;
use crate::config::DenoiseConfig;
use crate::infer::denoiser::Denoiser;
use crate::manifest::{Manifest, ModelFiles};
use crate::report::{DenoiseInfo, Frame, Report};
use crate::tap::DenoisedTap;
use anyhow::{bail, Result};
use std::sync::Arc;

/// Loads `[denoise] model` for frames made for `classifier` at `hop`: the
/// two models must take the same frames, and the frames must fall on the
/// denoiser's half-frame grid.
pub fn load(dc: &DenoiseConfig, classifier: &Manifest, hop: usize) -> Result<Denoiser> {
    let files = ModelFiles::load(&dc.model)?;
    let m = &files.manifest;
    let path = files.manifest_path.display();
    if m.sample_rate != classifier.sample_rate || m.frame_length != classifier.frame_length {
        bail!(
            "{path}: the denoiser takes {} samples at {} Hz, the classifier {} at {} Hz: \
             they must take the same frames",
            m.frame_length,
            m.sample_rate,
            classifier.frame_length,
            classifier.sample_rate
        );
    }
    let half = m.frame_length / 2;
    if half % hop != 0 {
        bail!(
            "key `hop`: {hop} does not divide the denoiser's hop of {half} samples \
             (half its frame); with [denoise] use a divisor of {half}"
        );
    }
    let d = Denoiser::load_checked(&files)?;
    tracing::info!(
        "denoiser {} {} ({}), hop {half}, {} threshold outputs",
        m.name,
        m.version,
        files.onnx_path.display(),
        m.thresholds.len()
    );
    Ok(d)
}

/// Overlap-add of frames that start `hop` = frame/2 apart.
pub struct Ola {
    window: Vec<f32>,
    /// The last frame's second half, not yet weighted.
    pending: Vec<f32>,
    have_pending: bool,
    done: Vec<f32>,
}

impl Ola {
    pub fn new(frame: usize) -> Self {
        let hop = frame / 2;
        let window = (0..frame)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / frame as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        Self {
            window,
            pending: vec![0.0; hop],
            have_pending: false,
            done: vec![0.0; hop],
        }
    }

    pub fn hop(&self) -> usize {
        self.pending.len()
    }

    /// Adds the next frame's output; returns the `hop` samples now complete
    /// (those the new frame starts with).
    pub fn push(&mut self, y: &[f32]) -> &[f32] {
        let h = self.hop();
        let (first, second) = y.split_at(h);
        if self.have_pending {
            let (w1, w2) = self.window.split_at(h);
            for i in 0..h {
                self.done[i] = w2[i] * self.pending[i] + w1[i] * first[i];
            }
        } else {
            self.done.copy_from_slice(first);
        }
        self.pending.copy_from_slice(second);
        self.have_pending = true;
        &self.done
    }

    /// The end of a run: the last frame's second half at weight 1, once.
    pub fn flush(&mut self) -> Option<&[f32]> {
        if !std::mem::take(&mut self.have_pending) {
            return None;
        }
        Some(&self.pending)
    }
}

/// A whole signal through the denoiser, as the daemon would (frames at
/// every hop from sample 0), the end padded with zeros to a whole hop and
/// cut again: the output is aligned with `x`, sample for sample.
pub fn denoise_signal(model: &mut Denoiser, x: &[f32]) -> Result<Vec<f32>> {
    let n = model.manifest.frame_length;
    let mut ola = Ola::new(n);
    let hop = ola.hop();
    let frames = 1 + x.len().saturating_sub(n).div_ceil(hop);
    let mut padded = x.to_vec();
    padded.resize((frames - 1) * hop + n, 0.0);
    let mut out = Vec::with_capacity(padded.len());
    let (mut y, mut taus) = (vec![0.0; n], Vec::new());
    for k in 0..frames {
        model.run(&padded[k * hop..k * hop + n], &mut y, &mut taus)?;
        out.extend_from_slice(ola.push(&y));
    }
    if let Some(tail) = ola.flush() {
        out.extend_from_slice(tail);
    }
    out.truncate(x.len());
    Ok(out)
}

/// The input's SNR as the denoiser sees it: its model's estimate when it
/// has one (denoiser 2.0.0 on), else what it kept over what it removed.
fn frame_snr_db(model: &Denoiser, x: &[f32], y: &[f32]) -> Option<f32> {
    match model.snr_db() {
        Some(v) => Some(v.clamp(-99.0, 99.0)),
        None => snr_db(x, y),
    }
}

/// What a denoiser kept over what it removed, in dB (None when it removed
/// nothing).
pub fn snr_db(x: &[f32], y: &[f32]) -> Option<f32> {
    let (mut kept, mut removed) = (0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(y) {
        kept += (b as f64) * (b as f64);
        removed += ((a - b) as f64) * ((a - b) as f64);
    }
    (removed > 0.0 && kept > 0.0)
        .then(|| (10.0 * (kept / removed).log10()).clamp(-99.0, 99.0) as f32)
}

pub struct Denoise {
    model: Denoiser,
    ola: Ola,
    tap: Arc<DenoisedTap>,
    /// Index of the next frame to denoise (None: the next frame starts a run).
    next: Option<u64>,
    out: Vec<f32>,
    taus: Vec<f32>,
    last: Option<DenoiseInfo>,
}

impl Denoise {
    pub fn new(model: Denoiser, tap: Arc<DenoisedTap>) -> Self {
        let n = model.manifest.frame_length;
        // After a reload, carry on where the stage it replaces stopped: its
        // next frame on the same grid starts this run, so the signal goes
        // on without a hole (the old stage's last half is not added in).
        let next = match tap.next_index.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            i => Some(i),
        };
        Self {
            ola: Ola::new(n),
            out: vec![0.0; n],
            taus: Vec::with_capacity(model.manifest.thresholds.len()),
            model,
            tap,
            next,
            last: None,
        }
    }

    /// Ends the current run: the pending half goes out at weight 1.
    fn end_run(&mut self) {
        if let Some(next) = self.next.take() {
            if let Some(tail) = self.ola.flush() {
                self.tap.write(next, tail);
            }
        }
    }

    fn denoise(&mut self, f: &Frame) -> Result<()> {
        self.model.run(&f.samples, &mut self.out, &mut self.taus)?;
        let done = self.ola.push(&self.out);
        self.tap.write(f.index, done);
        self.next = Some(f.index + done.len() as u64);
        self.last = Some(DenoiseInfo {
            snr_db: frame_snr_db(&self.model, &f.samples, &self.out),
            thresholds: self.taus.clone(),
        });
        Ok(())
    }
}

impl Analysis for Denoise {
    fn name(&self) -> &'static str {
        "denoiser"
    }

    fn run(&mut self, frames: &[Frame], reports: &mut [Report]) -> Result<()> {
        for (f, r) in frames.iter().zip(reports.iter_mut()) {
            // A gap, or frames that skipped the next aligned one: a new run.
            if f.flags.after_gap || self.next.is_some_and(|n| f.index > n) {
                self.end_run();
                self.last = None;
            }
            if self.next.is_none_or(|n| n == f.index) {
                self.denoise(f)?;
            }
            r.denoise = self.last.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OLA of unchanged frames gives back the signal: the windows sum
    /// to 1 everywhere, the edges included.
    #[test]
    fn overlap_add_of_identity_frames_is_the_signal() {
        let n = 16;
        let x: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin() + 0.1).collect();
        let mut ola = Ola::new(n);
        let hop = ola.hop();
        let frames = 1 + (x.len() - n).div_ceil(hop);
        let mut padded = x.clone();
        padded.resize((frames - 1) * hop + n, 0.0);
        let mut out = Vec::new();
        for k in 0..frames {
            out.extend_from_slice(ola.push(&padded[k * hop..k * hop + n]));
        }
        out.extend_from_slice(ola.flush().unwrap());
        assert!(ola.flush().is_none(), "a run flushes once");
        for (i, (a, b)) in x.iter().zip(&out).enumerate() {
            assert!((a - b).abs() < 1e-6, "sample {i}: {a} vs {b}");
        }
    }

    fn frame(index: u64, after_gap: bool) -> Frame {
        Frame {
            index,
            end_ns: 0,
            samples: (0..2048)
                .map(|i| ((index + i) as f32 * 0.21).sin() * 0.1)
                .collect(),
            rms: 0.07,
            peak: 0.1,
            std: 0.07,
            flags: crate::report::Flags {
                after_gap,
                ..Default::default()
            },
        }
    }

    /// The shipped denoiser on every other frame at hop 512; a gap ends
    /// the run (its last half goes out) and the next frame starts one.
    #[test]
    fn every_other_frame_is_denoised_and_a_gap_starts_a_new_run() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/drsn-denoise.json");
        let files = ModelFiles::load(&path).expect("shipped denoiser");
        let tap = Arc::new(DenoisedTap::new(12000));
        let mut d = Denoise::new(Denoiser::load(&files).expect("loads"), tap.clone());
        let frames: Vec<Frame> = (0..6).map(|k| frame(k * 512, false)).collect();
        let mut reports = vec![Report::default(); frames.len()];
        d.run(&frames, &mut reports).expect("runs");
        assert!(reports.iter().all(|r| r.denoise.is_some()));
        // Frames 0, 1024 and 2048 denoised: 3 hops out.
        assert_eq!(
            tap.next_index.load(std::sync::atomic::Ordering::Relaxed),
            3072
        );
        // A gap: the run's last half is written, then a new run at 10000.
        let after = [
            frame(10_000, true),
            frame(10_512, false),
            frame(11_024, false),
        ];
        let mut reports = vec![Report::default(); after.len()];
        d.run(&after, &mut reports).expect("runs");
        assert!(reports.iter().all(|r| r.denoise.is_some()));
        assert_eq!(
            tap.next_index.load(std::sync::atomic::Ordering::Relaxed),
            11_024 + 1024
        );
        let t = &reports[0].denoise.as_ref().expect("info").thresholds;
        assert_eq!(t.len(), 4);
        assert!(t.iter().all(|v| *v > 0.0 && v.is_finite()), "{t:?}");
    }

    #[test]
    fn snr_estimate_is_kept_over_removed() {
        let x = [2.0, 0.0, -2.0, 0.0];
        let y = [1.0, 0.0, -1.0, 0.0];
        assert!((snr_db(&x, &y).unwrap() - 0.0).abs() < 1e-6);
        assert_eq!(snr_db(&x, &x), None);
    }
}
