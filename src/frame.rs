//! From captured chunks to model frames.
//!
//! [`Assembler`] takes source-rate chunks and gaps (from the ring), cleans
//! each sample (non-finite -> 0, flagged; clipping flagged; gain applied),
//! resamples to the model rate when needed, and cuts frames of the model's
//! length every `hop` samples. Frames carry their position, the monotonic
//! capture time of their last sample, RMS, peak and flags. Chunk sizes never change
//! the frames: the same samples give the same frames however they arrive.

pub use crate::report::{Flags, Frame};
use crate::resample::Resampler;
use anyhow::Result;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
struct Mark {
    start: u64,
    end: u64,
}

/// Cuts frames of `len` samples every `hop` samples from a model-rate stream.
pub struct Framer {
    len: usize,
    hop: usize,
    buf: Vec<f32>,
    /// Model-rate index of `buf[0]`.
    start: u64,
    /// Samples still to discard before the next frame starts (hop > len).
    skip: usize,
    /// Bad-sample ranges ahead of and inside the current frame, one queue
    /// per kind ([non-finite, clipped]), each sorted and merged when they
    /// touch.
    marks: [VecDeque<Mark>; 2],
    after_gap: bool,
}

/// Ranges kept per kind at most. Merged ranges are disjoint, and they only
/// span the frame plus the samples not yet framed (under 9000 model
/// samples), so this is never reached. It is only a memory bound. Were it
/// reached, the last range would grow, and flags would err on the safe side.
const MAX_MARKS: usize = 8192;

impl Framer {
    pub fn new(len: usize, hop: usize) -> Self {
        Self {
            len,
            hop: hop.max(1),
            buf: Vec::with_capacity(len + 8192),
            start: 0,
            skip: 0,
            marks: [VecDeque::new(), VecDeque::new()],
            after_gap: false,
        }
    }

    /// Index the next pushed sample will get.
    pub fn next_index(&self) -> u64 {
        self.start + self.buf.len() as u64 + self.skip as u64
    }

    /// Marks model-rate samples [start, end) as non-finite or clipped.
    pub fn mark(&mut self, start: u64, end: u64, nonfinite: bool) {
        let marks = &mut self.marks[if nonfinite { 0 } else { 1 }];
        let full = marks.len() == MAX_MARKS;
        if let Some(last) = marks.back_mut() {
            if start <= last.end || full {
                last.end = last.end.max(end);
                return;
            }
        }
        marks.push_back(Mark { start, end });
    }

    /// `n` samples are missing: the partial frame is dropped and framing
    /// restarts after the gap.
    pub fn gap(&mut self, n: u64) {
        let next = self.next_index() + n;
        self.buf.clear();
        self.skip = 0;
        self.start = next;
        self.after_gap = true;
    }

    /// Appends samples; pushes every completed frame to `out`.
    pub fn push(&mut self, mut x: &[f32], mut out: impl FnMut(Frame)) {
        while !x.is_empty() {
            if self.skip > 0 {
                let k = self.skip.min(x.len());
                self.skip -= k;
                self.start += k as u64;
                x = &x[k..];
                continue;
            }
            let k = (self.len - self.buf.len()).min(x.len());
            let at = self.start + self.buf.len() as u64;
            self.buf.extend_from_slice(&x[..k]);
            // Through the Assembler every sample is already finite and
            // bounded (MAX_MAGNITUDE, so the resampler cannot overflow
            // either); this guards a Framer fed directly. One compare a
            // sample, so it stays.
            let fresh = self.buf.len() - k;
            for i in fresh..self.buf.len() {
                if !self.buf[i].is_finite() {
                    self.buf[i] = 0.0;
                    let p = at + (i - fresh) as u64;
                    self.mark(p, p + 1, true);
                }
            }
            x = &x[k..];
            if self.buf.len() == self.len {
                out(self.emit());
                self.advance();
            }
        }
    }

    fn emit(&mut self) -> Frame {
        let end = self.start + self.len as u64;
        let mut flags = Flags {
            after_gap: std::mem::take(&mut self.after_gap),
            ..Flags::default()
        };
        let overlaps = |m: &Mark| m.start < end && m.end > self.start;
        flags.nonfinite = self.marks[0].iter().any(overlaps);
        flags.clipped = self.marks[1].iter().any(overlaps);
        let (sum_sq, peak) = self.buf.iter().fold((0f64, 0f32), |(s, p), &v| {
            (s + (v as f64) * (v as f64), p.max(v.abs()))
        });
        let mean = self.buf.iter().map(|&v| v as f64).sum::<f64>() / self.len as f64;
        let var = self
            .buf
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / self.len as f64;
        Frame {
            index: self.start,
            end_ns: 0,
            samples: self.buf.clone(),
            rms: (sum_sq / self.len as f64).sqrt() as f32,
            peak,
            std: var.sqrt() as f32,
            flags,
        }
    }

    fn advance(&mut self) {
        if self.hop >= self.len {
            self.skip = self.hop - self.len;
            self.buf.clear();
            self.start += self.len as u64;
        } else {
            self.buf.drain(..self.hop);
            self.start += self.hop as u64;
        }
        let start = self.start;
        for marks in &mut self.marks {
            while marks.front().is_some_and(|m| m.end <= start) {
                marks.pop_front();
            }
        }
    }
}

/// How a source's samples become model input.
#[derive(Debug, Clone, Copy)]
pub struct Conditioning {
    pub source_rate: u32,
    pub model_rate: u32,
    /// Multiplies every sample (sensor units per full scale, e.g. g).
    pub gain: f32,
    /// |sample| at or above this (before gain) counts as clipped.
    pub clip_level: f32,
}

/// Source-rate chunks in, model-rate frames out. See the module comment.
pub struct Assembler {
    cond: Conditioning,
    resampler: Option<Resampler>,
    framer: Framer,
    /// Source samples seen, including dropped ones.
    src_pos: u64,
    /// (source position just past a sample, its capture time, monotonic ns).
    anchor: (u64, u64),
    clean: Vec<f32>,
}

/// Capture time (monotonic ns) of model-rate sample `index`, extrapolated back from the
/// anchor (the latest source sample and its capture time).
fn time_of(cond: Conditioning, anchor: (u64, u64), index: u64) -> u64 {
    let src = index as f64 * cond.source_rate as f64 / cond.model_rate as f64;
    let back = (anchor.0 as f64 - 1.0 - src) / cond.source_rate as f64;
    (anchor.1 as f64 - back * 1e9).max(0.0) as u64
}

/// Beyond this a sample is no measurement (and would overflow the
/// resampler's FFT into NaN): it is treated like NaN, zeroed and flagged.
pub const MAX_MAGNITUDE: f32 = 1e15;

/// Flag ranges widen by this many model-rate samples when resampling, since
/// the resampler's filter spreads every input sample over its neighbours.
const RESAMPLE_SPREAD: u64 = 16;

impl Assembler {
    pub fn new(cond: Conditioning, frame_len: usize, hop: usize) -> Result<Self> {
        let resampler = if cond.source_rate != cond.model_rate {
            Some(Resampler::new(cond.source_rate, cond.model_rate)?)
        } else {
            None
        };
        Ok(Self {
            cond,
            resampler,
            framer: Framer::new(frame_len, hop),
            src_pos: 0,
            anchor: (0, 0),
            clean: Vec::with_capacity(4096),
        })
    }

    pub fn resampling(&self) -> Option<(u32, u32)> {
        self.resampler.as_ref().map(|r| (r.from, r.to))
    }

    /// Source samples seen so far, dropped ones included.
    pub fn source_position(&self) -> u64 {
        self.src_pos
    }

    fn to_model(&self, src: u64) -> u64 {
        (src as u128 * self.cond.model_rate as u128 / self.cond.source_rate as u128) as u64
    }

    /// Adds a chunk whose last sample was captured at `last_ns`.
    pub fn push(&mut self, x: &[f32], last_ns: u64, out: &mut Vec<Frame>) -> Result<()> {
        let ns_per_sample = 1e9 / self.cond.source_rate as f64;
        let mut left = x.len();
        for part in x.chunks(self.clean.capacity()) {
            left -= part.len();
            self.clean_into_scratch(part);
            self.src_pos += part.len() as u64;
            let part_last_ns = last_ns.saturating_sub((left as f64 * ns_per_sample) as u64);
            self.anchor = (self.src_pos, part_last_ns);
            let first_new = out.len();
            let framer = &mut self.framer;
            match self.resampler.as_mut() {
                Some(r) => r.push(&self.clean, |y| framer.push(y, |f| out.push(f)))?,
                None => framer.push(&self.clean, |f| out.push(f)),
            }
            for f in &mut out[first_new..] {
                let last = f.index + f.samples.len() as u64 - 1;
                f.end_ns = time_of(self.cond, self.anchor, last);
            }
        }
        Ok(())
    }

    fn clean_into_scratch(&mut self, part: &[f32]) {
        self.clean.clear();
        let c = self.cond;
        for (i, &v) in part.iter().enumerate() {
            let (y, bad) = if !v.is_finite() || (v * c.gain).abs() > MAX_MAGNITUDE {
                (0.0, Some(true))
            } else if v.abs() >= c.clip_level {
                (v * c.gain, Some(false))
            } else {
                (v * c.gain, None)
            };
            self.clean.push(y);
            if let Some(nonfinite) = bad {
                let p = self.src_pos + i as u64;
                let spread = if self.resampler.is_some() {
                    RESAMPLE_SPREAD
                } else {
                    0
                };
                let start = self.to_model(p).saturating_sub(spread);
                let end = self.to_model(p + 1).max(self.to_model(p) + 1) + spread;
                self.framer.mark(start, end, nonfinite);
            }
        }
    }

    /// `n` source samples are missing here.
    pub fn gap(&mut self, n: u64) {
        self.src_pos += n;
        if let Some(r) = self.resampler.as_mut() {
            r.reset();
        }
        let target = self.to_model(self.src_pos);
        let next = self.framer.next_index();
        self.framer.gap(target.saturating_sub(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(source_rate: u32) -> Conditioning {
        Conditioning {
            source_rate,
            model_rate: 12000,
            gain: 1.0,
            clip_level: f32::INFINITY,
        }
    }

    fn signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect()
    }

    fn frames_in_chunks(x: &[f32], chunk: usize, source_rate: u32, hop: usize) -> Vec<Frame> {
        let mut a = Assembler::new(cond(source_rate), 256, hop).expect("assembler");
        let mut out = Vec::new();
        for c in x.chunks(chunk) {
            a.push(c, 1, &mut out).expect("push");
        }
        out
    }

    #[test]
    fn chunk_size_does_not_change_the_frames() {
        let x = signal(20_000);
        for (rate, hop) in [(12000, 64), (12000, 256), (12000, 300), (48000, 100)] {
            let whole = frames_in_chunks(&x, x.len(), rate, hop);
            assert!(!whole.is_empty());
            for chunk in [1, 7, 255, 256, 1000, 4097] {
                let got = frames_in_chunks(&x, chunk, rate, hop);
                assert_eq!(
                    got.len(),
                    whole.len(),
                    "rate {rate} hop {hop} chunk {chunk}"
                );
                for (g, w) in got.iter().zip(&whole) {
                    assert_eq!(g.index, w.index);
                    assert_eq!(
                        g.samples, w.samples,
                        "rate {rate} hop {hop} chunk {chunk} frame {}",
                        w.index
                    );
                }
            }
        }
    }

    #[test]
    fn frames_start_every_hop_even_when_hop_exceeds_the_frame() {
        let x = signal(5000);
        let f = frames_in_chunks(&x, 333, 12000, 1000);
        let idx: Vec<u64> = f.iter().map(|f| f.index).collect();
        assert_eq!(idx, vec![0, 1000, 2000, 3000, 4000]);
        assert_eq!(f[2].samples, x[2000..2256].to_vec());
    }

    #[test]
    fn a_gap_restarts_framing_after_the_missing_samples() {
        let mut a = Assembler::new(cond(12000), 256, 128).expect("assembler");
        let x = signal(1000);
        let mut out = Vec::new();
        a.push(&x[..300], 1, &mut out).expect("push");
        a.gap(500);
        a.push(&x[300..], 1, &mut out).expect("push");
        // Before the gap: frames at 0. After: framing restarts at 800.
        let idx: Vec<u64> = out.iter().map(|f| f.index).collect();
        assert_eq!(idx, vec![0, 800, 928, 1056, 1184]);
        assert!(out[1].flags.after_gap && !out[2].flags.after_gap);
        assert_eq!(out[1].samples, x[300..556].to_vec());
    }

    #[test]
    fn bad_samples_are_zeroed_and_flag_only_their_frames() {
        let mut a = Assembler::new(
            Conditioning {
                clip_level: 0.9,
                ..cond(12000)
            },
            256,
            256,
        )
        .expect("assembler");
        let mut x = vec![0.1f32; 1024];
        x[300] = f32::NAN;
        x[700] = 0.95;
        let mut out = Vec::new();
        a.push(&x, 1, &mut out).expect("push");
        let flags: Vec<(bool, bool)> = out
            .iter()
            .map(|f| (f.flags.nonfinite, f.flags.clipped))
            .collect();
        assert_eq!(
            flags,
            vec![(false, false), (true, false), (false, true), (false, false)]
        );
        assert_eq!(out[1].samples[300 - 256], 0.0);
        assert!(out.iter().all(|f| f.rms.is_finite() && f.peak.is_finite()));
    }

    #[test]
    fn frame_times_count_back_from_the_chunk_end() {
        let mut a = Assembler::new(cond(12000), 256, 256).expect("assembler");
        let mut out = Vec::new();
        // 512 samples whose last one was captured at t = 10 s.
        a.push(&signal(512), 10_000_000_000, &mut out)
            .expect("push");
        assert_eq!(out.len(), 2);
        let dt = out[1].end_ns - out[0].end_ns;
        assert!((dt as f64 - 256.0 / 12000.0 * 1e9).abs() < 1e3, "{dt}");
        assert!(out[1].end_ns.abs_diff(10_000_000_000) < 1000);
    }
}
