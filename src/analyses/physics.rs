//! The measures a vibration engineer checks before believing any network:
//! velocity RMS over 10-1000 Hz with its ISO 20816 zone, and the crest
//! factor and kurtosis of the acceleration (classic bearing indicators).
//! Only for a stream whose source says its units (`units`, `sensitivity`);
//! with `rpm` and `bearing` too, the envelope spectrum's evidence of a
//! bearing defect on the same window (`envelope`).
//!
//! Velocity is integrated in the frequency domain (V = A / 2πf) over the
//! last `WINDOW` samples (1.37 s at 12 kHz, 0.73 Hz bins), not over one
//! frame: with a 2048-sample frame (5.9 Hz bins) the window's leakage
//! around a 50 Hz line would be weighted by 1/f² unevenly and read several
//! per cent high. The window's transform is redone every `VELOCITY_EVERY`
//! new samples, not every frame: consecutive windows would share 97 % of
//! their samples, and the 16384-point FFT was a third of the physics'
//! cost. All buffers are made at start; nothing is allocated per frame.

use super::envelope::{Envelope, EnvelopeSpec};
use super::speed::SpeedTracker;
use super::Analysis;
use crate::report::{Frame, Physical, Report};
use anyhow::{Context, Result};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Samples in the velocity window.
pub const WINDOW: usize = 16384;
/// New samples between two velocity transforms (0.17 s at 12 kHz; every
/// 4th frame at hop 512). Frames in between repeat the last figure.
pub const VELOCITY_EVERY: usize = 2048;
/// The ISO 20816 velocity band, Hz.
pub const BAND: (f64, f64) = (10.0, 1000.0);

pub struct Physics {
    /// Sensor units to m/s².
    to_ms2: f64,
    /// Zone limits A/B, B/C, C/D in mm/s.
    zones: [f64; 3],
    rate: f64,
    history: Vec<f32>,
    /// Samples in `history` (up to WINDOW), newest last.
    filled: usize,
    /// Model-rate index just after the last sample taken in.
    next_index: Option<u64>,
    /// New samples since the last velocity transform, and its result.
    since_velocity: usize,
    velocity: Option<f64>,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    input: Vec<f32>,
    output: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// With `rpm` and `bearing`: the envelope, and the speed its lines are
    /// placed at.
    envelope: Option<(Envelope, SpeedTracker)>,
}

impl Physics {
    /// An error names the envelope setting that cannot work at `rate`.
    pub fn new(
        rate: u32,
        to_ms2: f64,
        zones: [f64; 3],
        envelope: Option<&EnvelopeSpec>,
    ) -> Result<Self> {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(WINDOW);
        let window = super::spectrum::hann(WINDOW);
        let envelope = envelope
            .map(|e| -> Result<_> {
                Ok((
                    Envelope::new(e, rate, WINDOW)?,
                    SpeedTracker::new(&e.speed, rate)?,
                ))
            })
            .transpose()?;
        Ok(Self {
            to_ms2,
            zones,
            rate: rate as f64,
            history: vec![0.0; WINDOW],
            filled: 0,
            next_index: None,
            since_velocity: 0,
            velocity: None,
            input: fft.make_input_vec(),
            output: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            window,
            envelope,
        })
    }

    /// Takes in the frame's samples not seen yet (frames overlap by the
    /// frame length minus the hop); a gap starts the window afresh.
    /// Returns how many were new.
    fn take(&mut self, f: &Frame) -> usize {
        let end = f.index + f.samples.len() as u64;
        let new = match self.next_index {
            Some(next) if next >= f.index && next <= end => &f.samples[(next - f.index) as usize..],
            _ => {
                self.filled = 0;
                if let Some((_, speed)) = self.envelope.as_mut() {
                    speed.reset();
                }
                &f.samples[..]
            }
        };
        if let Some((_, speed)) = self.envelope.as_mut() {
            speed.push(new);
        }
        self.next_index = Some(end);
        let k = new.len().min(WINDOW);
        let new = &new[new.len() - k..];
        self.history.copy_within(k.., 0);
        self.history[WINDOW - k..].copy_from_slice(new);
        self.filled = (self.filled + k).min(WINDOW);
        k
    }

    /// Velocity RMS in mm/s over `BAND` once the window is full, transformed
    /// again when `VELOCITY_EVERY` samples have come in since the last time.
    fn velocity(&mut self, fresh: usize) -> Result<Option<f64>> {
        if self.filled < WINDOW {
            self.velocity = None;
            return Ok(None);
        }
        self.since_velocity += fresh;
        if self.velocity.is_none() || self.since_velocity >= VELOCITY_EVERY {
            self.since_velocity = 0;
            self.velocity = Some(self.transform_velocity()?);
        }
        Ok(self.velocity)
    }

    fn transform_velocity(&mut self) -> Result<f64> {
        for ((d, s), w) in self.input.iter_mut().zip(&self.history).zip(&self.window) {
            *d = s * w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch)
            .context("velocity FFT")?;
        let df = self.rate / WINDOW as f64;
        let lo = (BAND.0 / df).ceil() as usize;
        let hi = ((BAND.1 / df).floor() as usize).min(self.output.len() - 1);
        let mut sum = 0.0f64;
        for (k, z) in self.output.iter().enumerate().take(hi + 1).skip(lo) {
            let omega = 2.0 * std::f64::consts::PI * k as f64 * df;
            sum += z.norm_sqr() as f64 / (omega * omega);
        }
        // One-sided power with the Hann window's mean square (3/8).
        let n = WINDOW as f64;
        let ms = sum * 2.0 / (n * n * 0.375) * self.to_ms2 * self.to_ms2;
        Ok(ms.sqrt() * 1000.0)
    }

    fn zone(&self, v: f64) -> char {
        match self.zones.iter().position(|&limit| v < limit) {
            Some(0) => 'A',
            Some(1) => 'B',
            Some(2) => 'C',
            _ => 'D',
        }
    }
}

/// Crest factor (peak over RMS) and kurtosis (m4 / m2², 3 for Gaussian
/// noise) of one frame, its mean removed.
pub fn crest_and_kurtosis(x: &[f32]) -> (f32, f32) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut m2, mut m4, mut peak) = (0.0f64, 0.0f64, 0.0f64);
    for &v in x {
        let d = v as f64 - mean;
        let d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
        peak = peak.max(d.abs());
    }
    let (m2, m4) = (m2 / n, m4 / n);
    if m2 <= 0.0 || !m2.is_finite() {
        return (0.0, 0.0);
    }
    ((peak / m2.sqrt()) as f32, (m4 / (m2 * m2)) as f32)
}

impl Analysis for Physics {
    fn name(&self) -> &'static str {
        "physics"
    }

    fn run(&mut self, frames: &[Frame], reports: &mut [Report]) -> Result<()> {
        for (f, r) in frames.iter().zip(reports.iter_mut()) {
            let fresh = self.take(f);
            let velocity = self.velocity(fresh)?;
            let (crest, kurtosis) = crest_and_kurtosis(&f.samples);
            let (envelope, speed) = match self.envelope.as_mut() {
                Some((e, tracker)) => {
                    let speed = tracker.update()?;
                    let evidence = e.update(&self.history, self.filled, fresh, speed)?;
                    (Some(evidence), Some(speed))
                }
                None => (None, None),
            };
            r.physical = Some(Physical {
                velocity_rms_mm_s: velocity.map(|v| v as f32),
                iso_zone: velocity.map(|v| self.zone(v)),
                crest,
                kurtosis,
                envelope,
                speed,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: f64 = 9.80665;

    /// A sine in g whose velocity RMS is `v_mm_s` at `hz`.
    fn sine_g(hz: f64, v_mm_s: f64, seconds: f64) -> Vec<f32> {
        let rate = 12_000.0;
        // v_rms = a_rms / ω: a peak = v_rms·√2·ω.
        let a_peak = v_mm_s / 1000.0 * 2f64.sqrt() * 2.0 * std::f64::consts::PI * hz / G;
        (0..(seconds * rate) as usize)
            .map(|i| (a_peak * (2.0 * std::f64::consts::PI * hz * i as f64 / rate).sin()) as f32)
            .collect()
    }

    /// The frame of 2048 samples of `x` from `start`.
    fn frame(x: &[f32], start: usize) -> Frame {
        Frame {
            index: start as u64,
            end_ns: 0,
            samples: x[start..start + 2048].to_vec(),
            rms: 0.0,
            peak: 0.0,
            std: 0.0,
            flags: Default::default(),
        }
    }

    /// Runs the analysis over `x` in frames of 2048 at hop 512; the last report.
    fn last(x: &[f32]) -> Physical {
        let mut p = Physics::new(12_000, G, [1.4, 2.8, 4.5], None).expect("plans");
        let mut out = None;
        for start in (0..x.len() - 2048).step_by(512) {
            let mut r = vec![Report::default()];
            p.run(&[frame(x, start)], &mut r).expect("runs");
            out = r.pop().and_then(|r| r.physical);
        }
        out.expect("a report")
    }

    #[test]
    fn a_10_mm_s_sine_reads_10_in_band_and_much_less_outside() {
        for hz in [50.0, 500.0] {
            let v = last(&sine_g(hz, 10.0, 3.0))
                .velocity_rms_mm_s
                .expect("full window");
            assert!((v - 10.0).abs() <= 0.2, "{hz} Hz: {v} mm/s");
        }
        for hz in [5.0, 2000.0] {
            let v = last(&sine_g(hz, 10.0, 3.0))
                .velocity_rms_mm_s
                .expect("full window");
            assert!(v < 1.0, "{hz} Hz is outside 10-1000 Hz: {v} mm/s");
        }
    }

    #[test]
    fn velocity_is_transformed_every_velocity_every_samples_and_follows_a_change() {
        let mut x = sine_g(100.0, 10.0, 2.0);
        x.extend(sine_g(100.0, 5.0, 2.0));
        let mut p = Physics::new(12_000, G, [1.4, 2.8, 4.5], None).expect("plans");
        let mut readings = Vec::new();
        for start in (0..x.len() - 2048).step_by(512) {
            let mut r = vec![Report::default()];
            p.run(&[frame(&x, start)], &mut r).expect("runs");
            readings.push(r[0].physical.and_then(|p| p.velocity_rms_mm_s));
        }
        let full: Vec<f32> = readings.iter().flatten().cloned().collect();
        // A figure stands for VELOCITY_EVERY / hop frames: it can change at
        // most that often (a steady sine may repeat a figure to the bit).
        let changes = full.windows(2).filter(|w| w[0] != w[1]).count();
        let most = full.len() / (VELOCITY_EVERY / 512) + 1;
        assert!(
            (2..=most).contains(&changes),
            "{changes} changes in {} frames",
            full.len()
        );
        assert!(
            (full[0] - 10.0).abs() <= 0.2,
            "before the step: {} mm/s",
            full[0]
        );
        let last = *full.last().expect("readings");
        assert!((last - 5.0).abs() <= 0.1, "after the step: {last} mm/s");
    }

    #[test]
    fn zones_follow_the_limits() {
        for (v, zone) in [(1.0, 'A'), (2.0, 'B'), (4.0, 'C'), (7.1, 'D')] {
            assert_eq!(
                last(&sine_g(100.0, v, 3.0)).iso_zone,
                Some(zone),
                "{v} mm/s"
            );
        }
    }

    #[test]
    fn crest_and_kurtosis_of_a_sine_and_of_impulses() {
        let s = sine_g(100.0, 1.0, 1.0);
        let (c, k) = crest_and_kurtosis(&s);
        assert!((c - 2f32.sqrt()).abs() < 0.01, "sine crest {c}");
        assert!((k - 1.5).abs() < 0.01, "sine kurtosis {k}");
        let mut spikes = vec![0.01f32; 2048];
        for i in (0..2048).step_by(256) {
            spikes[i] = 1.0;
        }
        let (c, k) = crest_and_kurtosis(&spikes);
        assert!(c > 5.0 && k > 20.0, "impulses: crest {c}, kurtosis {k}");
        assert_eq!(crest_and_kurtosis(&[0.5; 64]), (0.0, 0.0), "flat line");
    }

    #[test]
    fn no_velocity_until_the_window_is_full() {
        let x = sine_g(50.0, 10.0, 1.0);
        assert_eq!(last(&x).velocity_rms_mm_s, None);
    }
}
