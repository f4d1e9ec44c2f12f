//! Envelope spectrum evidence: does the acceleration carry impacts at a
//! bearing defect frequency? The check engineers make by hand (Randall &
//! Antoni, "Rolling element bearing diagnostics - a tutorial", 2011), run
//! on the physics window (`physics::WINDOW`, 1.37 s at 12 kHz: 0.73 Hz bins,
//! enough to tell BPFO from BPFI at any speed in `config::RPM_RANGE`).
//!
//! Every `UPDATE` new samples (the bands spread over the next frames, see
//! `Envelope::update`):
//! 1. the window's spectrum is whitened (every bin set to magnitude 1), so
//!    that gear and shaft lines and the sensor's own resonances do not
//!    decide the band and only the impacts' periodicity is left;
//! 2. for each band (by default 22 bands of 750, 1500 and 3000 Hz from
//!    250 Hz up, a coarse protrugram; or the one `envelope-band`), the band
//!    is shifted to 0 Hz and inverse transformed: its analytic signal, whose
//!    squared magnitude is the squared envelope; its spectrum has the
//!    window's resolution at a fraction of a full-length transform;
//! 3. a line's prominence is its peak (within ±0.5 % of the expected
//!    frequency, for slip) over the median of the envelope spectrum within
//!    ±20 Hz, in dB, averaged over the first three harmonics. BSF counts at
//!    2xBSF (a ball strikes both races per spin);
//! 4. the same prominence at ~60 orders where no defect or shaft line lies
//!    is the band's null: a defect line counts by how many robust standard
//!    deviations (z) it stands above that null. The band where a defect
//!    stands out most is kept, and its defect with the largest z is the
//!    family when z > `MIN_Z`, calibrated on Gaussian noise (the tests).
//!
//! Everything is planned and allocated in `new`; `update` allocates nothing.

use super::speed::SpeedSpec;
use crate::config::Bearing;
use crate::report::{Evidence, Family, Speed};
use anyhow::{bail, Result};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// New samples between two evaluations (0.68 s at 12 kHz, half the
/// window): with 22 bands one evaluation costs about 5 ms, so every 4096
/// samples would be 1.6 % of a core per stream, every 8192 half that.
pub const UPDATE: usize = 8192;
/// Harmonics of each defect line averaged.
const HARMONICS: usize = 3;
/// A line may sit this far (relative) from where the orders put it: slip.
const TOLERANCE: f64 = 0.005;
/// Half-width of the local floor around a line, Hz.
const FLOOR_HZ: f64 = 20.0;
/// Default bands: these widths, from `LOWEST_HZ` up, overlapping by half.
const WIDTHS_HZ: [f64; 3] = [750.0, 1500.0, 3000.0];
const LOWEST_HZ: f64 = 250.0;
/// Null lines a band needs for its z to mean anything.
const MIN_NULL_LINES: usize = 20;
/// z above which a defect line names the family. On Gaussian noise (the
/// test `gaussian_noise_names_a_family_rarely`, 524 windows) the largest z
/// over all bands and defects had median 2.25 and 95th percentile 3.22: a
/// window of pure noise names a family about one time in fifty.
pub const MIN_Z: f32 = 3.5;

/// The stream's bearing: what `rpm`, `rpm-range` and `bearing` say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvelopeSpec {
    pub speed: SpeedSpec,
    pub bearing: Bearing,
    /// A fixed band, Hz (None: chosen per window).
    pub band: Option<[f64; 2]>,
}

/// One band to demodulate: bins `lo..lo + bins` of the window's spectrum,
/// analysed with transforms of `m` points.
struct Band {
    lo: usize,
    bins: usize,
    plan: usize,
}

/// The transforms of one size `m`, shared by the bands that use it.
struct Plan {
    m: usize,
    inverse: Arc<dyn Fft<f32>>,
    forward: Arc<dyn RealToComplex<f32>>,
    hann: Vec<f32>,
}

pub struct Envelope {
    /// Hz per bin of the window's spectrum, and so of every envelope spectrum.
    df: f64,
    /// Orders of BPFO, BPFI and 2xBSF, and where no defect, shaft or cage
    /// line lies.
    orders: [f64; 3],
    null_orders: Vec<f64>,
    /// The evaluation's speed, and the orders' lines at it, Hz.
    speed: Speed,
    defects: [f64; 3],
    null_hz: Vec<f64>,
    bands: Vec<Band>,
    plans: Vec<Plan>,
    window_fft: Arc<dyn RealToComplex<f32>>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    analytic: Vec<Complex<f32>>,
    squared: Vec<f32>,
    envelope: Vec<Complex<f32>>,
    power: Vec<f32>,
    scratch: Vec<Complex<f32>>,
    floor: Vec<f32>,
    /// A line's floor bins, as bits (see `line_db`).
    bits: Vec<u32>,
    null: Vec<f32>,
    /// New samples since the last evaluation began, its result, and the
    /// one under way.
    since: usize,
    last: Option<Evidence>,
    pending: Option<Pending>,
}

/// An evaluation under way: the next band to demodulate, the best so far.
struct Pending {
    next: usize,
    best: Option<Evidence>,
}

impl Envelope {
    /// Plans every transform for windows of `window` samples at `rate`.
    /// An error names the key that cannot work at this rate.
    pub fn new(spec: &EnvelopeSpec, rate: u32, window: usize) -> Result<Self> {
        let rate = rate as f64;
        let df = rate / window as f64;
        let nyquist = rate / 2.0;
        // The fastest speed the range allows decides what must fit.
        let shaft = spec.speed.range[1].max(spec.speed.rpm) / 60.0;
        let b = &spec.bearing;
        let orders = [b.bpfo, b.bpfi, 2.0 * b.bsf];
        let defects = orders.map(|o| o * shaft);
        let ranges: Vec<(f64, f64)> = match spec.band {
            Some([lo, hi]) if hi >= nyquist => bail!(
                "envelope-band [{lo}, {hi}]: reaches the model rate's Nyquist frequency \
                 ({nyquist} Hz); keep it below"
            ),
            Some([lo, hi]) => vec![(lo, hi)],
            None => default_bands(0.49 * rate),
        };
        let highest = HARMONICS as f64 * defects.iter().cloned().fold(0.0, f64::max);
        if highest + FLOOR_HZ >= nyquist / 2.0 {
            bail!(
                "rpm = {} (rpm-range up to {}): the third harmonic of a defect line \
                 ({highest:.0} Hz) is out of reach at {rate} Hz",
                spec.speed.rpm,
                spec.speed.range[1]
            );
        }
        let mut planner = FftPlanner::<f32>::new();
        let mut real = RealFftPlanner::<f32>::new();
        let mut plans: Vec<Plan> = Vec::new();
        let mut bands = Vec::new();
        for (lo_hz, hi_hz) in ranges {
            let lo = (lo_hz / df).ceil() as usize;
            let bins = ((hi_hz / df).floor() as usize).saturating_sub(lo).max(1);
            let m = (2 * bins).next_power_of_two();
            let plan = match plans.iter().position(|p| p.m == m) {
                Some(i) => i,
                None => {
                    plans.push(Plan {
                        m,
                        inverse: planner.plan_fft_inverse(m),
                        forward: real.plan_fft_forward(m),
                        hann: super::spectrum::hann(m),
                    });
                    plans.len() - 1
                }
            };
            bands.push(Band { lo, bins, plan });
        }
        let window_fft = real.plan_fft_forward(window);
        let m_max = plans.iter().map(|p| p.m).max().unwrap_or(1);
        let scratch_len = plans
            .iter()
            .flat_map(|p| {
                [
                    p.inverse.get_inplace_scratch_len(),
                    p.forward.get_scratch_len(),
                ]
            })
            .chain([window_fft.get_scratch_len()])
            .max()
            .unwrap_or(0);
        let null_orders = null_orders(b);
        // `floor` also holds the null lines' deviations.
        let floor_bins = 2 * (FLOOR_HZ / df).ceil() as usize + 8;
        let floor_len = floor_bins.max(null_orders.len());
        Ok(Self {
            df,
            orders,
            defects,
            speed: spec.speed.nominal(0.0),
            null: Vec::with_capacity(null_orders.len()),
            null_hz: Vec::with_capacity(null_orders.len()),
            null_orders,
            bands,
            input: window_fft.make_input_vec(),
            spectrum: window_fft.make_output_vec(),
            window_fft,
            analytic: vec![Complex::default(); m_max],
            squared: vec![0.0; m_max],
            envelope: vec![Complex::default(); m_max / 2 + 1],
            power: vec![0.0; m_max / 2 + 1],
            scratch: vec![Complex::default(); scratch_len],
            floor: Vec::with_capacity(floor_len),
            bits: Vec::with_capacity(floor_bins),
            plans,
            since: 0,
            last: None,
            pending: None,
        })
    }

    /// The evidence for the window `history` (oldest first), of which the
    /// last `filled` samples are real, `fresh` of them new since the last
    /// call, with the lines placed at `speed`; None until full. The first
    /// window is evaluated at once. Later ones, every `UPDATE` new samples,
    /// are spread over the next calls a
    /// few bands at a time (see `bands_per_call`): one whole evaluation
    /// takes about 5 ms, and a frame that waited for it was the daemon's
    /// p99 latency. Until the new evidence is complete the last one stands.
    pub fn update(
        &mut self,
        history: &[f32],
        filled: usize,
        fresh: usize,
        speed: Speed,
    ) -> Result<Option<Evidence>> {
        if filled < history.len() {
            self.last = None;
            self.pending = None;
            return Ok(None);
        }
        self.since += fresh;
        if self.last.is_none() {
            self.since = 0;
            self.last = Some(self.evaluate(history, speed)?);
            return Ok(self.last);
        }
        if self.pending.is_none() && self.since >= UPDATE {
            self.since = 0;
            self.start(history, speed)?;
        }
        if self.pending.is_some() {
            self.step(self.bands_per_call(fresh))?;
        }
        Ok(self.last)
    }

    /// Enough bands per call that an evaluation ends within half of
    /// `UPDATE` new samples, whatever the hop: 3 of the 22 default bands
    /// per frame at hop 512.
    fn bands_per_call(&self, fresh: usize) -> usize {
        (self.bands.len() * fresh).div_ceil(UPDATE / 2).max(1)
    }

    /// The whole evaluation of one window, at once.
    fn evaluate(&mut self, history: &[f32], speed: Speed) -> Result<Evidence> {
        self.start(history, speed)?;
        self.step(self.bands.len())?;
        self.last
            .ok_or_else(|| anyhow::anyhow!("envelope: no band"))
    }

    /// Takes the window's spectrum and places the lines at `speed`; the
    /// bands are demodulated by `step`.
    fn start(&mut self, history: &[f32], speed: Speed) -> Result<()> {
        let shaft = speed.rpm as f64 / 60.0;
        self.speed = speed;
        self.defects = self.orders.map(|o| o * shaft);
        self.null_hz.clear();
        self.null_hz
            .extend(self.null_orders.iter().map(|o| o * shaft));
        let mean = history.iter().map(|&v| v as f64).sum::<f64>() / history.len().max(1) as f64;
        for (d, s) in self.input.iter_mut().zip(history) {
            *d = s - mean as f32;
        }
        self.window_fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .map_err(|e| anyhow::anyhow!("envelope: window FFT: {e}"))?;
        self.pending = Some(Pending {
            next: 0,
            best: None,
        });
        Ok(())
    }

    /// Demodulates up to `n` more bands of the pending evaluation, keeping
    /// the band where a defect stands out most; after the last band its
    /// evidence becomes `last`.
    fn step(&mut self, n: usize) -> Result<()> {
        let Some(mut p) = self.pending.take() else {
            return Ok(());
        };
        let end = (p.next + n).min(self.bands.len());
        let score = |e: &Evidence| e.z.iter().cloned().fold(f32::MIN, f32::max);
        for i in p.next..end {
            let e = self.band(i)?;
            if p.best.as_ref().is_none_or(|b| score(&e) > score(b)) {
                p.best = Some(e);
            }
        }
        p.next = end;
        if end < self.bands.len() {
            self.pending = Some(p);
            return Ok(());
        }
        let mut e = p.best.ok_or_else(|| anyhow::anyhow!("envelope: no band"))?;
        let (top, z) =
            e.z.iter()
                .enumerate()
                .fold((0, f32::MIN), |a, (i, &z)| if z > a.1 { (i, z) } else { a });
        e.family = (z > MIN_Z).then_some(Family::ALL[top]);
        self.last = Some(e);
        Ok(())
    }

    /// The evidence of band `i`: its squared envelope spectrum in `power`,
    /// then the defect lines against the null lines.
    fn band(&mut self, i: usize) -> Result<Evidence> {
        let Band { lo, bins, plan } = self.bands[i];
        let p = &self.plans[plan];
        let m = p.m;
        let a = &mut self.analytic[..m];
        a.fill(Complex::default());
        for (d, s) in a
            .iter_mut()
            .zip(&self.spectrum[lo.min(self.spectrum.len())..])
            .take(bins)
        {
            let n = s.norm();
            if n > 0.0 && n.is_finite() {
                *d = s / n;
            }
        }
        let scratch = &mut self.scratch[..p.inverse.get_inplace_scratch_len()];
        p.inverse.process_with_scratch(a, scratch);
        let sq = &mut self.squared[..m];
        for (d, z) in sq.iter_mut().zip(a.iter()) {
            *d = z.norm_sqr();
        }
        let mean = sq.iter().sum::<f32>() / m as f32;
        for (d, w) in sq.iter_mut().zip(&p.hann) {
            *d = (*d - mean) * w;
        }
        let out = &mut self.envelope[..m / 2 + 1];
        let scratch = &mut self.scratch[..p.forward.get_scratch_len()];
        p.forward
            .process_with_scratch(sq, out, scratch)
            .map_err(|e| anyhow::anyhow!("envelope: band FFT: {e}"))?;
        for (d, z) in self.power.iter_mut().zip(out.iter()) {
            *d = z.norm_sqr();
        }
        let power = &self.power[..m / 2 + 1];
        let (df, bits) = (self.df, &mut self.bits);
        let mut prominence_db = [f32::NAN; 3];
        for (d, &hz) in prominence_db.iter_mut().zip(&self.defects) {
            *d = lines_db(power, hz, df, bits).unwrap_or(f32::NAN);
        }
        self.null.clear();
        for &hz in &self.null_hz {
            if let Some(v) = lines_db(power, hz, df, bits) {
                self.null.push(v);
            }
        }
        // Too few null lines fit in a narrow band at a high speed: no verdict.
        let usable = self.null.len() >= MIN_NULL_LINES;
        let (centre, spread) = median_and_spread(&mut self.null, &mut self.floor);
        let z = prominence_db.map(|p| {
            if p.is_finite() && usable {
                (p - centre) / spread
            } else {
                f32::MIN
            }
        });
        Ok(Evidence {
            prominence_db,
            z,
            family: None,
            band_hz: [(lo as f64 * df) as f32, ((lo + bins) as f64 * df) as f32],
            speed: self.speed,
            line_hz: self.defects.map(|d| d as f32),
        })
    }
}

/// The default bands up to `top` Hz: each width from `LOWEST_HZ`, stepping
/// by half a width.
fn default_bands(top: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for w in WIDTHS_HZ {
        let mut lo = LOWEST_HZ;
        while lo + w <= top {
            out.push((lo, lo + w));
            lo += w / 2.0;
        }
    }
    out
}

/// Orders 1.5..7.5 that are neither a defect line (nor its harmonics, nor
/// the cage's) within 3 %, nor within 0.05 of a shaft harmonic: where an
/// envelope spectrum of this bearing shows only its floor.
fn null_orders(b: &Bearing) -> Vec<f64> {
    let lines: Vec<f64> = [b.bpfo, b.bpfi, b.bsf, 2.0 * b.bsf]
        .into_iter()
        .chain(b.ftf)
        .flat_map(|o| (1..=HARMONICS).map(move |h| o * h as f64))
        .collect();
    (0..)
        .map(|i| 1.5 + 0.074 * i as f64)
        .take_while(|o| *o <= 7.5)
        .filter(|o| (o - o.round()).abs() > 0.05)
        .filter(|o| lines.iter().all(|l| (o - l).abs() > 0.03 * l))
        .collect()
}

/// The mean prominence (dB) of the first harmonics of a line at `hz` in
/// the envelope power spectrum `p`; None if none fits in it.
fn lines_db(p: &[f32], hz: f64, df: f64, floor: &mut Vec<u32>) -> Option<f32> {
    let (mut sum, mut n) = (0.0f32, 0);
    for h in 1..=HARMONICS {
        if let Some(v) = line_db(p, h as f64 * hz, df, floor) {
            sum += v;
            n += 1;
        }
    }
    (n > 0).then(|| sum / n as f32)
}

/// Peak near `hz` over the median of its ±`FLOOR_HZ` surroundings, dB.
/// The median is taken on the bits: `p` is a power spectrum (|z|², never
/// negative), where the bits order as the values do, and integer selection
/// is the cheaper; these medians were two thirds of an evaluation.
fn line_db(p: &[f32], hz: f64, df: f64, floor: &mut Vec<u32>) -> Option<f32> {
    let c = hz / df;
    let tol = (c * TOLERANCE).max(1.0);
    let w = (FLOOR_HZ / df).ceil();
    let (lo, hi) = ((c - tol).floor() as usize, (c + tol).ceil() as usize);
    let (start, end) = ((c - w).floor(), (c + w).ceil() as usize);
    if start < 1.0 || end >= p.len() || lo <= start as usize || hi >= end {
        return None;
    }
    let peak = p[lo..=hi].iter().cloned().fold(0.0f32, f32::max);
    floor.clear();
    floor.extend(
        p[start as usize..lo]
            .iter()
            .chain(&p[hi + 1..=end])
            .map(|v| v.to_bits()),
    );
    if floor.is_empty() {
        return None;
    }
    let mid = floor.len() / 2;
    let median = f32::from_bits(*floor.select_nth_unstable(mid).1);
    (median > 0.0 && peak > 0.0).then(|| 10.0 * (peak / median).log10())
}

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// Median and robust standard deviation (1.4826 MAD, at least 0.25 dB so
/// that a spotless synthetic spectrum does not divide by zero) of `v`.
fn median_and_spread(v: &mut [f32], scratch: &mut Vec<f32>) -> (f32, f32) {
    let centre = median(v);
    scratch.clear();
    scratch.extend(v.iter().map(|x| (x - centre).abs()));
    (centre, (1.4826 * median(scratch)).max(0.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 12_000;
    const CWRU: Bearing = Bearing::from_orders(3.5848, 5.4152, 2.357, Some(0.39828));

    /// A small deterministic Gaussian source (no rand crate needed).
    struct Noise(u64);
    impl Noise {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn gauss(&mut self) -> f64 {
            let (u, v) = (self.uniform().max(1e-12), self.uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    /// Impacts at `hz` (1 % jitter, as slip gives) ringing a 3 kHz
    /// resonance, in Gaussian noise of RMS `noise`.
    fn impacts(hz: f64, noise: f64, seconds: f64, seed: u64) -> Vec<f32> {
        let rate = RATE as f64;
        let n = (seconds * rate) as usize;
        let mut rng = Noise(seed);
        let mut x: Vec<f64> = (0..n).map(|_| noise * rng.gauss()).collect();
        let mut t = 0.0;
        while t < seconds {
            let start = (t * rate) as usize;
            for (k, v) in x.iter_mut().skip(start).take(200).enumerate() {
                let s = k as f64 / rate;
                *v += (-s / 0.001).exp() * (2.0 * std::f64::consts::PI * 3000.0 * s).sin();
            }
            t += (1.0 + 0.01 * (rng.uniform() - 0.5)) / hz;
        }
        x.into_iter().map(|v| v as f32).collect()
    }

    fn gaussian(seconds: f64, seed: u64) -> Vec<f32> {
        let mut rng = Noise(seed);
        (0..(seconds * RATE as f64) as usize)
            .map(|_| rng.gauss() as f32)
            .collect()
    }

    fn evidence_of(x: &[f32], spec: &EnvelopeSpec) -> Vec<Evidence> {
        let window = crate::analyses::physics::WINDOW;
        let mut e = Envelope::new(spec, RATE, window).expect("plans");
        x.windows(window)
            .step_by(4096)
            .map(|w| e.evaluate(w, nominal()).expect("runs"))
            .collect()
    }

    fn nominal() -> Speed {
        spec(None).speed.nominal(0.0)
    }

    fn spec(band: Option<[f64; 2]>) -> EnvelopeSpec {
        EnvelopeSpec {
            speed: SpeedSpec::new(1797.0, None),
            bearing: CWRU,
            band,
        }
    }

    #[test]
    fn a_later_evaluation_is_spread_over_frames_and_equals_the_whole_one() {
        let window = crate::analyses::physics::WINDOW;
        let hop = 512;
        let shaft = 1797.0 / 60.0;
        // Inner-race impacts, then outer-race ones: the evidence must move.
        let mut x = impacts(CWRU.bpfi * shaft, 0.3, 2.0, 7);
        x.extend(impacts(CWRU.bpfo * shaft, 0.3, 3.0, 8));
        let mut e = Envelope::new(&spec(None), RATE, window).expect("plans");
        let mut whole = Envelope::new(&spec(None), RATE, window).expect("plans");
        let calls = e.bands.len().div_ceil(e.bands_per_call(hop));
        assert!(calls > 1, "{} bands in {calls} call", e.bands.len());
        let (mut published, mut starts) = (Vec::new(), Vec::new());
        for (k, end) in (window..=x.len()).step_by(hop).enumerate() {
            let w = &x[end - window..end];
            let idle = e.pending.is_none();
            let fresh = if k == 0 { window } else { hop };
            published.push(
                e.update(w, window, fresh, nominal())
                    .expect("runs")
                    .expect("full"),
            );
            if k > 0 && idle && e.pending.is_some() {
                starts.push((k, whole.evaluate(w, nominal()).expect("runs")));
            }
        }
        assert!(starts.len() >= 2, "{} evaluations", starts.len());
        for (k, want) in &starts {
            let (k, done) = (*k, k + calls - 1);
            if done >= published.len() {
                continue;
            }
            assert!(
                published[k..done].iter().all(|p| *p == published[k - 1]),
                "call {k}: the last evidence stands until the new one is complete"
            );
            assert_eq!(
                published[done], *want,
                "call {done}: the window of call {k}"
            );
        }
        assert_eq!(published[0].family, Some(Family::Inner));
        assert_eq!(published.last().and_then(|p| p.family), Some(Family::Outer));
    }

    #[test]
    fn impacts_at_each_defect_rate_name_that_family() {
        let shaft = 1797.0 / 60.0;
        for (hz, want) in [
            (CWRU.bpfo * shaft, Family::Outer),
            (CWRU.bpfi * shaft, Family::Inner),
            (2.0 * CWRU.bsf * shaft, Family::Ball),
        ] {
            for band in [None, Some([2000.0, 4500.0])] {
                let ev = evidence_of(&impacts(hz, 0.3, 4.0, 7), &spec(band));
                assert!(ev.len() >= 6, "{} windows", ev.len());
                for e in &ev {
                    assert_eq!(e.family, Some(want), "{hz:.1} Hz, band {band:?}: {e:?}");
                    let i = Family::ALL
                        .iter()
                        .position(|f| *f == want)
                        .expect("a family");
                    assert!(e.prominence_db[i] > 10.0, "{e:?}");
                }
                if band.is_none() {
                    // The chosen band holds the 3 kHz resonance.
                    let [lo, hi] = ev[0].band_hz;
                    assert!(lo < 3000.0 && hi > 3000.0, "band {lo}..{hi}");
                }
            }
        }
    }

    #[test]
    fn gaussian_noise_names_a_family_rarely() {
        let x = gaussian(180.0, 11);
        let ev = evidence_of(&x, &spec(None));
        let named = ev.iter().filter(|e| e.family.is_some()).count();
        let mut top: Vec<f32> = ev
            .iter()
            .map(|e| e.z.iter().cloned().fold(f32::MIN, f32::max))
            .collect();
        top.sort_by(f32::total_cmp);
        let q95 = top[top.len() * 95 / 100];
        eprintln!(
            "noise: {named} of {} windows named a family; z q50 {:.2} q95 {q95:.2}",
            ev.len(),
            top[top.len() / 2]
        );
        assert!(ev.len() >= 500, "{} windows", ev.len());
        assert!(
            named * 100 <= 4 * ev.len(),
            "{named} of {} windows",
            ev.len()
        );
    }

    #[test]
    fn nothing_until_the_window_is_full_and_again_after_a_gap() {
        let window = crate::analyses::physics::WINDOW;
        let mut e = Envelope::new(&spec(None), RATE, window).expect("plans");
        let x = impacts(100.0, 0.1, 2.0, 3);
        let s = nominal();
        assert_eq!(
            e.update(&x[..window], window - 1, 512, s).expect("runs"),
            None
        );
        assert!(e
            .update(&x[..window], window, 512, s)
            .expect("runs")
            .is_some());
        assert_eq!(e.update(&x[..window], 100, 100, s).expect("runs"), None);
    }

    #[test]
    fn bands_and_speeds_out_of_reach_are_refused_naming_the_key() {
        let err = Envelope::new(&spec(Some([3000.0, 6000.0])), RATE, 16384)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("envelope-band"), "{err}");
        let fast = EnvelopeSpec {
            speed: SpeedSpec::new(60_000.0, None),
            ..spec(None)
        };
        let err = Envelope::new(&fast, RATE, 16384).err().expect("refused");
        assert!(err.to_string().contains("rpm"), "{err}");
    }

    #[test]
    fn null_orders_avoid_defect_and_shaft_lines() {
        let orders = null_orders(&CWRU);
        assert!(orders.len() >= 40, "{}", orders.len());
        for o in &orders {
            assert!((o - o.round()).abs() > 0.05, "{o}");
            assert!(
                (o - CWRU.bpfi).abs() > 0.1 && (o - CWRU.bpfo).abs() > 0.1,
                "{o}"
            );
        }
    }
}
