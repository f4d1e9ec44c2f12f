//! The data every stage hands on: a frame, what the analyses found in it,
//! and nothing else. A leaf: it uses no other module of the crate, so the
//! stages above it (analyses, monitor, snapshots, sinks) share these types
//! without depending on each other.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// At least one sample was NaN or infinite (replaced by 0 for the model).
    pub nonfinite: bool,
    /// At least one sample reached the source's clip level.
    pub clipped: bool,
    /// The first frame after samples were dropped (overrun).
    pub after_gap: bool,
}

impl Flags {
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.nonfinite {
            v.push("nonfinite");
        }
        if self.clipped {
            v.push("clipped");
        }
        if self.after_gap {
            v.push("gap");
        }
        v
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Index of the first sample at the model rate, counting dropped samples.
    pub index: u64,
    /// Capture time of the last sample, monotonic ns ([`crate::clock`]).
    pub end_ns: u64,
    pub samples: Vec<f32>,
    pub rms: f32,
    pub peak: f32,
    /// Standard deviation: the signal without its DC part (0 when flat-lined).
    pub std: f32,
    pub flags: Flags,
}

/// A frame flat to this fraction of its peak holds a constant value: the
/// rounding noise of a constant in f32 is under 1.2e-7 of it.
const FLAT: f64 = 1e-6;
/// Spanning this many quantisation steps or fewer, a frame holds only the
/// converter's noise (a sensor unplugged from an integer-format input).
const QUANTISATION_STEPS: f32 = 4.0;

impl Frame {
    /// Why the frame holds no signal from the machine, if it holds none.
    /// Judged from the signal itself, whatever its level in sensor units
    /// (a quiet machine on a sensitive scale is still a machine): no
    /// sample at all, a constant value, or nothing but quantisation steps;
    /// and, if one is set, under the absolute `floor` (standard deviation).
    pub fn no_signal(&self, floor: f32) -> Option<&'static str> {
        if self.peak == 0.0 {
            return Some("silence");
        }
        if (self.std as f64) <= FLAT * self.peak as f64 {
            return Some("flat-lined sensor (constant value)");
        }
        if self.std < floor {
            return Some("under signal-floor");
        }
        quantisation_only(&self.samples).then_some("only quantisation noise (sensor disconnected?)")
    }
}

/// Whether every sample is one of a few multiples of one step: the
/// converter's noise with no signal (only before resampling shows it).
fn quantisation_only(x: &[f32]) -> bool {
    let (mut lo, mut hi, mut step) = (f32::MAX, f32::MIN, f32::MAX);
    for w in x.windows(2) {
        let d = (w[1] - w[0]).abs();
        if d > 0.0 {
            step = step.min(d);
        }
        lo = lo.min(w[0]);
        hi = hi.max(w[0]);
    }
    if let Some(&last) = x.last() {
        (lo, hi) = (lo.min(last), hi.max(last));
    }
    if step == f32::MAX || hi - lo > QUANTISATION_STEPS * step * 1.001 {
        return false;
    }
    x.iter().all(|v| {
        let k = (v - lo) / step;
        (k - k.round()).abs() < 1e-3
    })
}

/// One frame's outputs: class (and family) probabilities and every unit's
/// thresholds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prediction {
    pub probs: Vec<f32>,
    /// Over the manifest's `families` (empty for a model without a family head).
    pub family_probs: Vec<f32>,
    pub thresholds: Vec<Vec<f32>>,
    /// The pooled features before the classifier's last layer (empty for a
    /// model without an embedding output).
    pub embedding: Vec<f32>,
}

impl Prediction {
    /// Index and probability of the most likely class.
    pub fn top(&self) -> (usize, f32) {
        argmax(&self.probs)
    }

    /// Index and probability of the most likely family, if the model has a
    /// family head.
    pub fn top_family(&self) -> Option<(usize, f32)> {
        (!self.family_probs.is_empty()).then(|| argmax(&self.family_probs))
    }
}

/// Index and value of the largest entry (0 and f32::MIN when empty).
pub fn argmax(v: &[f32]) -> (usize, f32) {
    v.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

/// Everything the analyses found in one frame; the monitor, snapshots and
/// every output read it. Each analysis fills its own fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The DRSN classifier's class probabilities and thresholds.
    pub prediction: Prediction,
    /// Band powers in dB, when the spectrum analysis runs (for the page).
    pub spectrum: Option<Vec<f32>>,
    /// Physical measures, for a stream whose source says its units.
    pub physical: Option<Physical>,
    /// Distance from the stream's learned normal, 1.0 at its alarm limit
    /// (None without a baseline).
    pub anomaly: Option<f32>,
    /// While a baseline is being learned: how far, 0..1.
    pub learning: Option<f32>,
    /// With a baseline that recorded it: the share of its frames the
    /// network called normal (is the network in its own domain here?).
    pub network_normal: Option<f32>,
    /// The denoiser's view of the frame, with `[denoise]` (None until it
    /// has run in this run of frames).
    pub denoise: Option<DenoiseInfo>,
}

/// What `analyses::denoise` says of the latest frame it denoised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DenoiseInfo {
    /// The input's SNR estimated from what the denoiser removed, dB.
    pub snr_db: Option<f32>,
    /// Each shrinkage unit's mean threshold.
    pub thresholds: Vec<f32>,
}

/// What `analyses::physics` measures in a frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Physical {
    /// Velocity RMS over 10-1000 Hz, mm/s; None until its window is full.
    pub velocity_rms_mm_s: Option<f32>,
    /// ISO 20816 zone of that velocity: A, B, C or D.
    pub iso_zone: Option<char>,
    pub crest: f32,
    pub kurtosis: f32,
    /// Envelope evidence, for a stream with `rpm` and `bearing`; the inner
    /// None until its window is full.
    pub envelope: Option<Option<Evidence>>,
    /// The shaft speed now, for a stream with `rpm` and `bearing`.
    pub speed: Option<Speed>,
}

/// The bearing defect family the envelope spectrum names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Outer,
    Inner,
    Ball,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::Outer, Family::Inner, Family::Ball];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Outer => "outer",
            Family::Inner => "inner",
            Family::Ball => "ball",
        }
    }
}

/// One window's envelope evidence (`analyses::envelope`), in the band
/// where a defect stood out most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Prominence of each defect's lines over the local floor, dB:
    /// BPFO, BPFI and 2xBSF (the order of `Family::ALL`).
    pub prominence_db: [f32; 3],
    /// Each one's z over the band's null lines.
    pub z: [f32; 3],
    /// The family named, if a line stands out by more than `MIN_Z`.
    pub family: Option<Family>,
    pub band_hz: [f32; 2],
    /// The shaft speed the defect lines were placed at, rev/min.
    pub speed: Speed,
    /// Each defect's first line at that speed, Hz (BPFO, BPFI, 2xBSF).
    pub line_hz: [f32; 3],
}

impl Evidence {
    /// The named family's prominence and line frequency.
    pub fn named_line(&self) -> Option<(Family, f32, f32)> {
        let f = self.family?;
        let i = Family::ALL.iter().position(|x| *x == f)?;
        Some((f, self.prominence_db[i], self.line_hz[i]))
    }
}

/// The shaft speed the envelope used (`analyses::speed`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed {
    pub rpm: f32,
    /// The harmonic comb's z over the other candidate speeds (0 before
    /// the first measurement and for a pinned speed).
    pub confidence: f32,
    pub source: SpeedSource,
}

/// Where a speed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeedSource {
    /// Measured from the shaft's lines.
    Signal,
    /// The configured `rpm`: no clear shaft line (yet).
    Nominal,
    /// The configured `rpm`, pinned by `rpm-range = [rpm, rpm]`.
    Fixed,
}

impl SpeedSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SpeedSource::Signal => "signal",
            SpeedSource::Nominal => "nominal",
            SpeedSource::Fixed => "fixed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(samples: Vec<f32>) -> Frame {
        let n = samples.len() as f64;
        let (sum, sum_sq) = samples.iter().fold((0.0, 0.0), |(s, q), &v| {
            (s + v as f64, q + (v as f64).powi(2))
        });
        let var = (sum_sq / n - (sum / n).powi(2)).max(0.0);
        Frame {
            index: 0,
            end_ns: 0,
            peak: samples.iter().fold(0f32, |p, v| p.max(v.abs())),
            rms: (sum_sq / n).sqrt() as f32,
            std: var.sqrt() as f32,
            samples,
            flags: Flags::default(),
        }
    }

    /// A machine-like signal: a few lines in noise, RMS about 0.1.
    fn machine(scale: f32) -> Vec<f32> {
        let mut s = 0x9E37_79B9u32;
        (0..2048)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let noise = (s as f32 / u32::MAX as f32 - 0.5) * 0.2;
                let t = i as f32 / 12_000.0;
                scale * (0.1 * (std::f32::consts::TAU * 29.95 * t).sin() + noise)
            })
            .collect()
    }

    #[test]
    fn a_quiet_machine_is_signal_at_any_scale() {
        for scale in [1.0, 1e-2, 1e-4, 1e-6] {
            assert_eq!(frame(machine(scale)).no_signal(0.0), None, "x{scale}");
        }
        // An absolute floor, where a user sets one, still counts.
        let quiet = frame(machine(1e-4));
        assert_eq!(quiet.no_signal(1e-4), Some("under signal-floor"));
    }

    #[test]
    fn silence_a_constant_and_bare_quantisation_are_no_signal() {
        assert_eq!(frame(vec![0.0; 2048]).no_signal(0.0), Some("silence"));
        let flat = frame(vec![0.7; 2048]);
        assert_eq!(
            flat.no_signal(0.0),
            Some("flat-lined sensor (constant value)")
        );
        // A 16-bit input with nothing on it: -1, 0 and +1 LSB around an offset.
        let lsb = 1.0 / 32768.0;
        let q: Vec<f32> = machine(1.0)
            .iter()
            .map(|v| 100.0 * lsb + (v * 15.0).round().clamp(-1.0, 1.0) * lsb)
            .collect();
        let q = frame(q);
        assert!(q.std > 0.0);
        assert_eq!(
            q.no_signal(0.0),
            Some("only quantisation noise (sensor disconnected?)")
        );
        // The same input with a machine on it: many steps, signal.
        let live: Vec<f32> = machine(1.0)
            .iter()
            .map(|v| (v * 32768.0).round() * lsb)
            .collect();
        assert_eq!(frame(live).no_signal(0.0), None);
    }
}
