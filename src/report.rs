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
