//! The frame's spectrum for people to look at (the web page): Hann window,
//! real FFT, power averaged into `BANDS` equal bands, in dB (re 1 sensor
//! unit RMS), rounded to 0.1 dB to keep every frame line short. On when
//! `[http] spectrum` is (the default with a page); about 10 µs a frame.

use super::Analysis;
use crate::report::{Frame, Report};
use anyhow::{Context, Result};
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Bands of the published spectrum (for a 2048-sample frame at 12 kHz:
/// 8 FFT bins, 46.9 Hz each).
pub const BANDS: usize = 128;

pub struct Spectrum {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    input: Vec<f32>,
    output: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
}

/// The periodic Hann window of `n` samples (every analysis's FFT uses it).
pub fn hann(n: usize) -> Vec<f32> {
    let len = n as f32;
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / len).cos())
        .collect()
}

impl Spectrum {
    pub fn new(frame_len: usize) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(frame_len);
        let window = hann(frame_len);
        Self {
            input: fft.make_input_vec(),
            output: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            window,
        }
    }

    fn bands(&mut self, samples: &[f32]) -> Result<Vec<f32>> {
        for ((d, s), w) in self.input.iter_mut().zip(samples).zip(&self.window) {
            *d = s * w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch)
            .context("FFT")?;
        let n = samples.len() as f32;
        // |X|^2 * 2 / (n^2 * mean(w^2)): one-sided power; mean(w^2) = 3/8.
        let scale = 2.0 / (n * n * 0.375);
        let per = (self.output.len() - 1) / BANDS;
        Ok(self.output[1..=per * BANDS]
            .chunks(per)
            .map(|c| {
                let p = c.iter().map(|z| z.norm_sqr()).sum::<f32>() * scale;
                (10.0 * (p + 1e-20).log10() * 10.0).round() / 10.0
            })
            .collect())
    }
}

impl Analysis for Spectrum {
    fn name(&self) -> &'static str {
        "spectrum"
    }

    fn run(&mut self, frames: &[Frame], reports: &mut [Report]) -> Result<()> {
        for (f, r) in frames.iter().zip(reports.iter_mut()) {
            r.spectrum = Some(self.bands(&f.samples)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sine of RMS 1 at 1 kHz shows near 0 dB in its band and far below
    /// elsewhere.
    #[test]
    fn a_sine_lands_in_its_band() {
        let n = 2048;
        let x: Vec<f32> = (0..n)
            .map(|i| 2f32.sqrt() * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 12000.0).sin())
            .collect();
        let mut s = Spectrum::new(n);
        let b = s.bands(&x).expect("bands");
        assert_eq!(b.len(), BANDS);
        let band = (1000.0 / (12000.0 / n as f32) / 8.0) as usize;
        let near = b[band.saturating_sub(1)..=band + 1]
            .iter()
            .copied()
            .fold(f32::MIN, f32::max);
        assert!(near.abs() < 1.5, "{near} dB in the 1 kHz band");
        assert!(b[100] < -60.0, "{} dB far from it", b[100]);
    }
}
