//! Sample-rate conversion to the model's rate (rubato's FFT resampler: fixed
//! ratio, band-limited, so a 48 kHz sensor is filtered before decimation).

use anyhow::{Context, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// Input chunk in source samples; small enough to keep latency to a few ms.
const CHUNK: usize = 512;

pub struct Resampler {
    inner: Fft<f32>,
    pending: Vec<f32>,
    out: Vec<f32>,
    /// Output samples still to discard: the resampler's start-up delay, so
    /// that output index i lines up with input time i / to.
    to_skip: usize,
    pub from: u32,
    pub to: u32,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Self> {
        let inner = Fft::<f32>::new(from as usize, to as usize, CHUNK, 1, FixedSync::Input)
            .with_context(|| format!("cannot resample {from} Hz to {to} Hz"))?;
        let out = vec![0.0; inner.output_frames_max()];
        let to_skip = inner.output_delay();
        Ok(Self {
            inner,
            pending: Vec::with_capacity(CHUNK),
            out,
            to_skip,
            from,
            to,
        })
    }

    /// Forgets buffered input (after a gap) and re-arms the delay trim.
    pub fn reset(&mut self) {
        self.inner.reset();
        self.pending.clear();
        self.to_skip = self.inner.output_delay();
    }

    /// Feeds `x`; hands each block of resampled output to `emit`.
    pub fn push(&mut self, mut x: &[f32], mut emit: impl FnMut(&[f32])) -> Result<()> {
        while !x.is_empty() {
            let need = self.inner.input_frames_next() - self.pending.len();
            let k = need.min(x.len());
            self.pending.extend_from_slice(&x[..k]);
            x = &x[k..];
            if self.pending.len() < self.inner.input_frames_next() {
                break;
            }
            let frames_in = self.pending.len();
            let frames_out = self.out.len();
            let input = InterleavedSlice::new(&self.pending[..], 1, frames_in)?;
            let mut output = InterleavedSlice::new_mut(&mut self.out[..], 1, frames_out)?;
            let (_, produced) = self
                .inner
                .process_into_buffer(&input, &mut output, None)
                .context("resampler failed")?;
            self.pending.clear();
            let skip = self.to_skip.min(produced);
            self.to_skip -= skip;
            if produced > skip {
                emit(&self.out[skip..produced]);
            }
        }
        Ok(())
    }
}
