//! Shaft speed from the signal. A machine's real speed is rarely its
//! nameplate's: an induction motor slips 1-3 % with load and a drive (VFD)
//! sets any speed, while the envelope's defect lines must be found within
//! ±0.5 %. So the speed is measured, the way an analyst reads the 1x line
//! and its harmonics off a long spectrum:
//!
//! 1. the acceleration is low-pass filtered and decimated so that the first
//!    `HARMONICS` shaft harmonics at the top of `rpm-range` fit, and the
//!    last `WINDOW_S` seconds are kept (0.125 Hz bins: an 8 s window
//!    resolves 0.5 % at 25 Hz where the 1.37 s physics window could not);
//! 2. every `EVERY` new samples the window's log power spectrum is taken
//!    and its local median (±10 % of the nominal speed) subtracted, so that
//!    only lines count, not the spectrum's slope or resonances;
//! 3. a harmonic comb scores every candidate speed in `rpm-range`: the mean
//!    height of its harmonics minus the mean height half-way between them.
//!    The half-way term is the guard against locking onto twice the speed
//!    (whose comb hits every other harmonic of the real one, and whose
//!    half-way points are the real odd harmonics);
//! 4. the best candidate's score over the others' (median and 1.4826 MAD)
//!    is the confidence. With enough of it, and a high enough score, the
//!    candidate is a measurement; else there is no clear shaft line;
//! 5. the speed stated is the median of the measurements among the last
//!    `MEDIAN` estimates (3.4 s), so that one window whose comb locks on
//!    another line series (an inner-race fault's sidebands, a gear) does
//!    not move the defect lines, while a real change of speed comes through
//!    once it holds in most of them. Through up to `HOLD` unclear
//!    estimates in a row the last measured speed is kept (a shaft does not
//!    change speed because a window was noisy); after that the nominal
//!    speed stands, said in the frame (`source: nominal`).
//!
//! On CWRU (bench/speed_eval.py, docs/monitoring.md) this agrees with the
//! recordings' rpm within 0.5 % with the nominal speed set 3 % off on 42
//! of 46 recordings: two whose shaft lines barely show, one whose file
//! name's speed its own lines contradict, and a 4 s one, shorter than the
//! window.
//! Everything is allocated in `new`; `push` and `update` allocate nothing.

use crate::report::{Speed, SpeedSource};
use anyhow::{bail, Result};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Shaft harmonics the comb adds up.
const HARMONICS: usize = 6;
/// Seconds of signal a speed is measured over. Over 6 s an inner-race
/// fault's sideband lattice outscored the shaft on some UESTC recordings
/// (a comb at 0.93 of the speed); over 10 s the speed followed a change too
/// slowly (bench/verdict_eval.py, docs/monitoring.md).
const WINDOW_S: f64 = 8.0;
/// New samples (at the model rate) between two estimates: 0.68 s at 12 kHz.
pub const EVERY: usize = 8192;
/// A shaft line must stand out twice: its comb's z over the other
/// candidates' at least `MIN_CONFIDENCE`, and its harmonics on average
/// `MIN_SCORE` (natural log of power: 13 dB) above the local floor minus
/// the half-way points. White noise alone reached z 4.9 but score 2.8;
/// on CWRU the right speeds scored z 3.0-11 and 3.1-9.9 (6 s windows),
/// except the 28-mil ball faults, whose shaft lines barely show (z 2.1-3.3
/// over 8 s: nominal speed then).
pub const MIN_CONFIDENCE: f32 = 3.0;
pub const MIN_SCORE: f32 = 3.0;
/// A candidate whose 1st, 3rd and 5th harmonics stand (median) less than
/// this share as high over the floor as twice its do is half the real
/// speed. In the test `twice_the_speed_in_range_does_not_win` half the
/// speed won the comb in 4 of 5 windows (a 50 Hz line at its 5th
/// harmonic); its odd harmonics stood 0.7-1.6, the real speed's 5.6-6.2.
const ODD_SHARE: f32 = 0.5;
/// Default `rpm-range` around the nominal speed: ±5 %.
pub const DEFAULT_RANGE: f64 = 0.05;
/// Estimates whose measurements the stated speed is the median of.
const MEDIAN: usize = 5;
/// Unclear estimates in a row through which the last measured speed is
/// kept: 10 s at 12 kHz.
const HOLD: usize = 15;

/// What the source says of the speed: the nominal rpm and the range the
/// real one stays in (equal bounds pin it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedSpec {
    pub rpm: f64,
    pub range: [f64; 2],
}

impl SpeedSpec {
    /// `range` defaults to `rpm` ±5 %.
    pub fn new(rpm: f64, range: Option<[f64; 2]>) -> Self {
        let range = range.unwrap_or([rpm * (1.0 - DEFAULT_RANGE), rpm * (1.0 + DEFAULT_RANGE)]);
        Self { rpm, range }
    }

    fn pinned(&self) -> bool {
        self.range[0] >= self.range[1]
    }

    /// The configured speed as a measurement would state it.
    pub fn nominal(&self, confidence: f32) -> Speed {
        Speed {
            rpm: self.rpm as f32,
            confidence,
            source: if self.pinned() {
                SpeedSource::Fixed
            } else {
                SpeedSource::Nominal
            },
        }
    }
}

pub struct SpeedTracker {
    spec: SpeedSpec,
    /// Decimation factor and the low-pass filter in front of it.
    decimate: usize,
    taps: Vec<f32>,
    /// The last `taps.len()` inputs, written twice so that they are always
    /// one contiguous slice at `pos..pos + taps.len()`.
    delay: Vec<f32>,
    pos: usize,
    /// Inputs since the last decimated output.
    phase: usize,
    /// Decimated samples, newest last, and how many are real.
    window: Vec<f32>,
    filled: usize,
    since: usize,
    /// Hz per bin of the window's spectrum.
    df: f64,
    fft: Arc<dyn RealToComplex<f32>>,
    hann: Vec<f32>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Log power of the bins the floor reaches, and that minus its local
    /// median, bins up to the comb's reach.
    log: Vec<f32>,
    flat: Vec<f32>,
    ranked: Vec<f32>,
    scores: Vec<f32>,
    /// The speeds of the last `MEDIAN` estimates (rpm; NaN where unclear),
    /// how many estimates were made, and the unclear ones since the last
    /// measurement.
    recent: [f32; MEDIAN],
    estimates: usize,
    unclear: usize,
    last: Speed,
}

impl SpeedTracker {
    /// An error names the key whose speeds cannot be measured at `rate`.
    pub fn new(spec: &SpeedSpec, rate: u32) -> Result<Self> {
        let rate_hz = rate as f64;
        let [lo, hi] = spec.range.map(|r| r / 60.0);
        // Two harmonics at least, below 0.4 of the model rate.
        let fit = (0.4 * rate_hz / hi).floor() as usize;
        if fit < 2 {
            bail!(
                "rpm-range [{}, {}]: twice the top speed is out of reach at {rate} Hz",
                spec.range[0],
                spec.range[1]
            );
        }
        let harmonics = HARMONICS.min(fit);
        let decimate = ((0.4 * rate_hz) / (harmonics as f64 * hi))
            .floor()
            .clamp(1.0, 64.0) as usize;
        let out_rate = rate_hz / decimate as f64;
        // Longer for slow shafts: at least 60 turns of the slowest.
        let seconds = WINDOW_S.max(60.0 / lo.max(0.1)).min(30.0);
        let n = ((seconds * out_rate) as usize).max(64);
        let df = out_rate / n as f64;
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        // Comb reach: the top harmonic of the top speed, plus the floor.
        let reach = ((harmonics as f64 + 0.5) * hi / df) as usize + floor_bins(spec, df) + 2;
        let bins = reach.min(n / 2);
        let candidates = if spec.pinned() {
            0
        } else {
            (((hi - lo) / step(df, harmonics)).ceil() as usize + 1).min(100_000)
        };
        let taps = lowpass(decimate);
        Ok(Self {
            spec: *spec,
            decimate,
            delay: vec![0.0; 2 * taps.len()],
            taps,
            pos: 0,
            phase: 0,
            window: vec![0.0; n],
            filled: 0,
            since: 0,
            df,
            hann: super::spectrum::hann(n),
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            log: vec![0.0; (bins + floor_bins(spec, df) + 1).min(n / 2 + 1)],
            flat: vec![0.0; bins],
            ranked: Vec::with_capacity(2 * floor_bins(spec, df) + 1),
            scores: Vec::with_capacity(candidates),
            recent: [f32::NAN; MEDIAN],
            estimates: 0,
            unclear: 0,
            last: spec.nominal(0.0),
        })
    }

    /// Forgets the window (after a gap in the samples).
    pub fn reset(&mut self) {
        self.filled = 0;
        self.since = 0;
        self.phase = 0;
        self.delay.fill(0.0);
        self.recent = [f32::NAN; MEDIAN];
        self.estimates = 0;
        self.unclear = 0;
        self.last = self.spec.nominal(0.0);
    }

    /// Takes in new samples at the model rate.
    pub fn push(&mut self, samples: &[f32]) {
        if self.spec.pinned() {
            return;
        }
        let l = self.taps.len();
        for &s in samples {
            let s = if s.is_finite() { s } else { 0.0 };
            self.delay[self.pos] = s;
            self.delay[self.pos + l] = s;
            self.pos = (self.pos + 1) % l;
            self.phase += 1;
            if self.phase == self.decimate {
                self.phase = 0;
                // Oldest first from `pos`: the filter is symmetric anyway.
                let y: f32 = self.delay[self.pos..self.pos + l]
                    .iter()
                    .zip(&self.taps)
                    .map(|(a, b)| a * b)
                    .sum();
                self.window.copy_within(1.., 0);
                if let Some(last) = self.window.last_mut() {
                    *last = y;
                }
                self.filled = (self.filled + 1).min(self.window.len());
            }
        }
        self.since += samples.len();
    }

    /// The speed now: measured again every `EVERY` samples once the window
    /// is full, the nominal speed until then.
    pub fn update(&mut self) -> Result<Speed> {
        if self.spec.pinned() || self.filled < self.window.len() {
            return Ok(self.last);
        }
        if self.since >= EVERY || self.last.confidence == 0.0 {
            self.since = 0;
            let estimate = self.estimate()?;
            self.last = self.settle(estimate);
        }
        Ok(self.last)
    }

    /// The speed to state after `estimate`: the median of the recent
    /// measurements, the last measured one held, or the nominal one.
    fn settle(&mut self, estimate: Speed) -> Speed {
        let measured = estimate.source == SpeedSource::Signal;
        self.recent[self.estimates % MEDIAN] = if measured { estimate.rpm } else { f32::NAN };
        self.estimates += 1;
        if !measured {
            self.unclear += 1;
            let held = self.last.source == SpeedSource::Signal && self.unclear <= HOLD;
            return if held { self.last } else { estimate };
        }
        self.unclear = 0;
        let n = self.recent.iter().filter(|r| r.is_finite()).count();
        // Two are no majority: the newer stands.
        if n <= 2 {
            return estimate;
        }
        // The NaNs of unclear estimates sort after every speed.
        let mut sorted = self.recent;
        sorted.sort_unstable_by(f32::total_cmp);
        Speed {
            rpm: sorted[n / 2],
            ..estimate
        }
    }

    fn estimate(&mut self) -> Result<Speed> {
        let mean = self.window.iter().sum::<f32>() / self.window.len() as f32;
        for ((d, s), w) in self.input.iter_mut().zip(&self.window).zip(&self.hann) {
            *d = (s - mean) * w;
        }
        self.fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .map_err(|e| anyhow::anyhow!("speed: FFT: {e}"))?;
        self.flatten();
        let harmonics = self.harmonics();
        let [lo, hi] = self.spec.range.map(|r| r / 60.0);
        let step = step(self.df, harmonics);
        self.scores.clear();
        let (mut best, mut best_hz) = (f32::MIN, self.spec.rpm / 60.0);
        let mut f = lo;
        while f <= hi && self.scores.len() < self.scores.capacity() {
            let s = self.comb(f, harmonics);
            if s > best {
                (best, best_hz) = (s, f);
            }
            self.scores.push(s);
            f += step;
        }
        // Half the real speed: its even harmonics are the real ones, and a
        // line that is not the shaft's (50 Hz mains) at one of its odd ones
        // can tip the comb its way. A shaft shows its odd harmonics too
        // (the 1x above all); where the best candidate's stand out less
        // than half as much as twice its, and twice it is in range, twice
        // it is the speed.
        if 2.0 * best_hz <= hi
            && self.odd_height(best_hz) < ODD_SHARE * self.odd_height(2.0 * best_hz)
        {
            best_hz *= 2.0;
            best = self.comb(best_hz, harmonics);
        }
        let confidence = self.confidence(best);
        Ok(if confidence >= MIN_CONFIDENCE && best >= MIN_SCORE {
            Speed {
                rpm: (best_hz * 60.0) as f32,
                confidence,
                source: SpeedSource::Signal,
            }
        } else {
            // No clear shaft line: the nominal speed, and how unclear.
            self.spec.nominal(confidence.max(f32::MIN_POSITIVE))
        })
    }

    fn harmonics(&self) -> usize {
        let hi = self.spec.range[1] / 60.0;
        let top = (self.flat.len() as f64 * self.df) / hi;
        (top as usize).clamp(1, HARMONICS)
    }

    /// Log power of each bin minus the median of its neighbours.
    fn flatten(&mut self) {
        let w = floor_bins(&self.spec, self.df);
        let n = self.flat.len();
        // Each bin's log once: every median window holds 2w+1 of them.
        let m = self.log.len();
        for (d, z) in self.log.iter_mut().zip(&self.spectrum) {
            *d = (z.norm_sqr() + 1e-30).ln();
        }
        for i in 0..n {
            let (a, b) = (i.saturating_sub(w), (i + w + 1).min(m));
            self.ranked.clear();
            self.ranked.extend_from_slice(&self.log[a..b]);
            let mid = self.ranked.len() / 2;
            let median = *self.ranked.select_nth_unstable_by(mid, f32::total_cmp).1;
            self.flat[i] = self.log[i] - median;
        }
    }

    /// The flattened spectrum at `hz`, interpolated between bins.
    fn at(&self, hz: f64) -> f32 {
        let b = hz / self.df;
        let i = b.floor() as usize;
        if i + 1 >= self.flat.len() {
            return 0.0;
        }
        let a = (b - i as f64) as f32;
        self.flat[i] * (1.0 - a) + self.flat[i + 1] * a
    }

    /// The flattened spectrum's best within half a bin of `hz`.
    fn peak(&self, hz: f64) -> f32 {
        let h = self.df * 0.5;
        self.at(hz - h).max(self.at(hz)).max(self.at(hz + h))
    }

    /// Mean height of the harmonics of `hz` (each the best within half a
    /// bin) minus the mean height half-way between them.
    fn comb(&self, hz: f64, harmonics: usize) -> f32 {
        let (mut on, mut off) = (0.0f32, 0.0f32);
        for k in 1..=harmonics {
            let f = k as f64 * hz;
            on += self.peak(f);
            off += self.at(f - 0.5 * hz);
        }
        (on - off) / harmonics as f32
    }

    /// The median height of the 1st, 3rd and 5th harmonics of `hz`.
    fn odd_height(&self, hz: f64) -> f32 {
        let mut odd = [1.0, 3.0, 5.0].map(|k| self.peak(k * hz));
        odd.sort_unstable_by(f32::total_cmp);
        odd[1]
    }

    /// The best score's z over every candidate's.
    fn confidence(&mut self, best: f32) -> f32 {
        let n = self.scores.len();
        if n < 8 {
            return 0.0;
        }
        let median = *self.scores.select_nth_unstable_by(n / 2, f32::total_cmp).1;
        for s in self.scores.iter_mut() {
            *s = (*s - median).abs();
        }
        let mad = *self.scores.select_nth_unstable_by(n / 2, f32::total_cmp).1;
        let z = (best - median) / (1.4826 * mad).max(1e-6);
        if z.is_finite() {
            z
        } else {
            0.0
        }
    }
}

/// Candidate step: a quarter of a bin at the top harmonic.
fn step(df: f64, harmonics: usize) -> f64 {
    df / (4.0 * harmonics as f64)
}

/// Half-width of the local median, bins: ±10 % of the nominal shaft
/// frequency, at least 4 bins.
fn floor_bins(spec: &SpeedSpec, df: f64) -> usize {
    ((0.1 * spec.rpm / 60.0 / df).round() as usize).max(4)
}

/// A windowed-sinc low-pass for decimation by `d`: cut at 0.4 of the
/// output rate, Blackman window, long enough (27.5 d taps) that what lies
/// above 0.6 of the output rate, which would fold onto the harmonics, is
/// attenuated by the window's 74 dB.
fn lowpass(d: usize) -> Vec<f32> {
    if d == 1 {
        return vec![1.0];
    }
    let n = (27.5 * d as f64) as usize | 1;
    let fc = 0.4 / d as f64;
    let mid = (n / 2) as f64;
    let mut taps: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 - mid;
            let sinc = if t == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * t).sin() / (std::f64::consts::PI * t)
            };
            let x = 2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64;
            sinc * (0.42 - 0.5 * x.cos() + 0.08 * (2.0 * x).cos())
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    for t in taps.iter_mut() {
        *t /= sum;
    }
    taps.into_iter().map(|t| t as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 12_000;

    /// A machine at `hz`: shaft harmonics 1-8 with falling amplitudes and
    /// a random phase each, a 50 Hz mains line, in white noise (0 Hz: no
    /// shaft lines).
    fn machine(hz: f64, seconds: f64, noise: f64, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut uniform = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let phases: Vec<f64> = (0..8).map(|_| uniform() * std::f64::consts::TAU).collect();
        let tau = 2.0 * std::f64::consts::PI;
        (0..(seconds * RATE as f64) as usize)
            .map(|i| {
                let t = i as f64 / RATE as f64;
                let lines: f64 = (1..=8)
                    .map(|k| (tau * k as f64 * hz * t + phases[k - 1]).sin() / k as f64)
                    .sum();
                let n = (uniform() + uniform() + uniform() - 1.5) * 2.0 * noise;
                (0.1 * lines + 0.05 * (tau * 50.0 * t).sin() + n) as f32
            })
            .collect()
    }

    fn track(spec: &SpeedSpec, x: &[f32]) -> Vec<Speed> {
        let mut t = SpeedTracker::new(spec, RATE).expect("plans");
        x.chunks(512)
            .map(|c| {
                t.push(c);
                t.update().expect("runs")
            })
            .collect()
    }

    #[test]
    fn the_real_speed_is_found_with_the_nominal_one_three_per_cent_off() {
        let real = 1772.0;
        for (off, seed) in [(-0.03, 1), (0.0, 2), (0.03, 3)] {
            let spec = SpeedSpec::new(real * (1.0 + off), None);
            let x = machine(real / 60.0, 11.0, 0.3, seed);
            let speeds = track(&spec, &x);
            let first = speeds[0];
            assert_eq!(
                first.source,
                SpeedSource::Nominal,
                "until the window is full"
            );
            let last = speeds.last().copied().expect("speeds");
            assert_eq!(last.source, SpeedSource::Signal, "{last:?}");
            assert!(
                (last.rpm as f64 / real - 1.0).abs() < 0.002,
                "nominal {off:+}: {last:?}"
            );
            assert!(last.confidence >= MIN_CONFIDENCE, "{last:?}");
        }
    }

    #[test]
    fn twice_the_speed_in_range_does_not_win() {
        // A drive from 600 to 3600 rpm; the machine runs at 1200: every
        // other harmonic of it is a harmonic of 2400 rpm too.
        let spec = SpeedSpec::new(1800.0, Some([600.0, 3600.0]));
        let x = machine(20.0, 11.0, 0.2, 5);
        let last = *track(&spec, &x).last().expect("speeds");
        assert_eq!(last.source, SpeedSource::Signal, "{last:?}");
        assert!((last.rpm - 1200.0).abs() < 3.0, "{last:?}");
    }

    #[test]
    fn noise_without_shaft_lines_falls_back_to_the_nominal_speed() {
        let spec = SpeedSpec::new(1797.0, None);
        for seed in 1..9 {
            let last = *track(&spec, &machine(0.0, 11.0, 0.3, seed))
                .last()
                .expect("speeds");
            assert_eq!(last.source, SpeedSource::Nominal, "{last:?}");
            assert_eq!(last.rpm, 1797.0);
        }
    }

    #[test]
    fn one_stray_measurement_does_not_move_the_speed_and_a_short_gap_holds_it() {
        let spec = SpeedSpec::new(1000.0, None);
        let mut t = SpeedTracker::new(&spec, RATE).expect("plans");
        let measured = |rpm: f32| Speed {
            rpm,
            confidence: 5.0,
            source: SpeedSource::Signal,
        };
        for rpm in [1012.0, 1013.0, 1011.0, 1012.5] {
            t.last = t.settle(measured(rpm));
        }
        // A window locked on a sideband series 8 % below.
        t.last = t.settle(measured(931.0));
        assert_eq!(t.last.rpm, 1012.0, "{:?}", t.last);
        // Unclear windows: the measured speed is held, then given up.
        for _ in 0..HOLD {
            t.last = t.settle(spec.nominal(1.0));
            assert_eq!((t.last.rpm, t.last.source), (1012.0, SpeedSource::Signal));
        }
        t.last = t.settle(spec.nominal(1.0));
        assert_eq!((t.last.rpm, t.last.source), (1000.0, SpeedSource::Nominal));
        // And a new measurement after that starts afresh.
        t.last = t.settle(measured(990.0));
        assert_eq!(t.last.rpm, 990.0);
    }

    #[test]
    fn a_pinned_speed_is_never_measured_and_out_of_reach_is_refused() {
        let spec = SpeedSpec::new(1500.0, Some([1500.0, 1500.0]));
        let last = *track(&spec, &machine(25.5, 8.0, 0.1, 9))
            .last()
            .expect("speeds");
        assert_eq!((last.rpm, last.source), (1500.0, SpeedSource::Fixed));
        let err = SpeedTracker::new(&SpeedSpec::new(200_000.0, None), RATE)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("rpm-range"), "{err}");
    }

    #[test]
    fn the_lowpass_passes_its_band_and_stops_what_would_fold() {
        let d = 25;
        let taps = lowpass(d);
        let gain = |f: f64| {
            let (mut re, mut im) = (0.0, 0.0);
            for (i, t) in taps.iter().enumerate() {
                let w = 2.0 * std::f64::consts::PI * f * i as f64;
                re += *t as f64 * w.cos();
                im += *t as f64 * w.sin();
            }
            (re * re + im * im).sqrt()
        };
        let out = 1.0 / d as f64;
        assert!((gain(0.3 * out) - 1.0).abs() < 0.01, "{}", gain(0.3 * out));
        assert!(gain(0.62 * out) < 1e-3, "{}", gain(0.62 * out));
    }
}
