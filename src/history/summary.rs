//! One stream's frames summed up every `STEP` seconds of stream time into
//! a [`Row`]: what an engineer reads a trend from. The live sink and
//! `drsnd history import` feed the same frame lines through this, so both
//! write the same rows for the same signal.

use serde::{Deserialize, Serialize};

/// Seconds of stream time in a row of the finest tier.
pub const STEP: f64 = 10.0;

/// The fields of a frame line the history keeps (the rest, thresholds
/// above all, is skipped by the parser).
#[derive(Debug, Default, Deserialize)]
pub struct Digest {
    pub stream: String,
    pub sample_index: u64,
    pub time: f64,
    pub rms: f32,
    pub peak: f32,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub velocity_rms_mm_s: Option<f32>,
    #[serde(default)]
    pub iso_zone: Option<char>,
    #[serde(default)]
    pub crest: Option<f32>,
    #[serde(default)]
    pub kurtosis: Option<f32>,
    #[serde(default)]
    pub anomaly: Option<f32>,
    #[serde(default)]
    pub envelope: Option<EnvelopeDigest>,
    #[serde(default)]
    pub speed: Option<SpeedDigest>,
    #[serde(default)]
    pub family_probs: Option<Vec<f32>>,
    #[serde(default)]
    pub denoise: Option<DenoiseDigest>,
}

#[derive(Debug, Default, Deserialize)]
pub struct EnvelopeDigest {
    pub bpfo: f32,
    pub bpfi: f32,
    pub bsf: f32,
    pub family: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SpeedDigest {
    pub rpm: f32,
    pub source: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct DenoiseDigest {
    #[serde(default)]
    pub snr_db: Option<f32>,
}

impl Digest {
    /// A frame line's digest; None for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Tagged {
            #[serde(rename = "type")]
            kind: String,
            #[serde(flatten)]
            frame: Digest,
        }
        let t: Tagged = serde_json::from_str(line).ok()?;
        (t.kind == "frame").then_some(t.frame)
    }
}

/// One stream's summary over `step` seconds from `t`: the finest tier
/// sums frames, coarser tiers sum rows ([`Row::roll_up`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub stream: String,
    /// Seconds a row covers: 10, 60 or 3600.
    pub step: u32,
    /// Its start, Unix seconds.
    pub t: f64,
    pub frames: u32,
    /// Quadratic mean of the frames' RMS, and their highest peak.
    pub rms: f32,
    pub peak: f32,
    /// Quadratic mean of the velocity RMS (mm/s) and the worst ISO zone.
    pub velocity: Option<f32>,
    pub zone: Option<String>,
    pub crest: Option<f32>,
    pub kurtosis: Option<f32>,
    pub anomaly_median: Option<f32>,
    pub anomaly_max: Option<f32>,
    /// Mean envelope prominences (dB) and the family most of its windows named.
    pub bpfo: Option<f32>,
    pub bpfi: Option<f32>,
    pub bsf: Option<f32>,
    pub envelope_family: Option<String>,
    /// Mean shaft speed measured from the signal (rev/min).
    pub speed_rpm: Option<f32>,
    /// The network's mean family probabilities and their top family.
    pub family: Option<String>,
    pub family_probs: Option<Vec<f32>>,
    pub snr_db: Option<f32>,
    /// The machine state at the row's end.
    pub state: Option<String>,
}

/// Running sums of one row's frames.
#[derive(Default)]
struct Acc {
    frames: u32,
    rms_sq: f64,
    peak: f32,
    vel: Mean,
    vel_sq: f64,
    zone: Option<char>,
    crest: Mean,
    kurtosis: Mean,
    anomaly: Vec<f32>,
    env: [Mean; 3],
    env_votes: Votes,
    speed: Mean,
    probs: Vec<f64>,
    probs_n: u32,
    snr: Mean,
}

#[derive(Default, Clone, Copy)]
struct Mean {
    sum: f64,
    n: u32,
}

impl Mean {
    fn add(&mut self, v: Option<f32>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.sum += v as f64;
            self.n += 1;
        }
    }
    fn get(&self) -> Option<f32> {
        (self.n > 0).then(|| (self.sum / self.n as f64) as f32)
    }
}

/// Counts of the names given; the most frequent wins, the first on a tie.
#[derive(Default)]
pub(crate) struct Votes(Vec<(String, u32)>);

impl Votes {
    pub(crate) fn add(&mut self, name: &str, n: u32) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some((_, c)) => *c += n,
            None => self.0.push((name.to_string(), n)),
        }
    }
    pub(crate) fn winner(&self) -> Option<String> {
        let mut best: Option<&(String, u32)> = None;
        for v in &self.0 {
            if best.is_none_or(|b| v.1 > b.1) {
                best = Some(v);
            }
        }
        best.map(|b| b.0.clone())
    }
}

/// The rows of one stream, cut every [`STEP`] seconds of a timeline the
/// caller gives with each frame.
pub struct Summariser {
    stream: String,
    families: Vec<String>,
    /// The open row: its bucket number, start time, and sums.
    open: Option<(i64, f64, Acc)>,
    state: Option<String>,
}

impl Summariser {
    /// `families`: the model's family names, in its order.
    pub fn new(stream: &str, families: Vec<String>, state: Option<String>) -> Self {
        Self {
            stream: stream.to_string(),
            families,
            open: None,
            state,
        }
    }

    /// The machine state from now on (an event's `to`).
    pub fn set_state(&mut self, state: String) {
        self.state = Some(state);
    }

    /// Adds a frame at `key_s` seconds of the timeline rows are cut on
    /// (stream time live) and `wall` Unix seconds. Returns the row it
    /// closed, if the frame opened the next one.
    pub fn push(&mut self, f: &Digest, key_s: f64, wall: f64) -> Option<Row> {
        let bucket = (key_s / STEP).floor() as i64;
        let closed = match &self.open {
            Some((b, _, _)) if *b != bucket => self.close(),
            _ => None,
        };
        let (_, _, acc) = self.open.get_or_insert_with(|| {
            // The row's start in wall time: where its timeline bucket began.
            let start = wall - (key_s - bucket as f64 * STEP);
            (bucket, start, Acc::default())
        });
        acc.add(f);
        closed
    }

    /// Closes the open row (at the end of a recording, or a gap).
    pub fn close(&mut self) -> Option<Row> {
        let (_, t, acc) = self.open.take()?;
        Some(acc.row(&self.stream, t, &self.families, self.state.clone()))
    }
}

impl Acc {
    fn add(&mut self, f: &Digest) {
        self.frames += 1;
        self.rms_sq += (f.rms as f64).powi(2);
        self.peak = self.peak.max(f.peak);
        if let Some(v) = f.velocity_rms_mm_s.filter(|v| v.is_finite()) {
            self.vel.add(Some(v));
            self.vel_sq += (v as f64).powi(2);
        }
        if let Some(z) = f.iso_zone {
            self.zone = Some(self.zone.map_or(z, |w| w.max(z)));
        }
        self.crest.add(f.crest);
        self.kurtosis.add(f.kurtosis);
        if let Some(a) = f.anomaly.filter(|a| a.is_finite()) {
            self.anomaly.push(a);
        }
        if let Some(e) = &f.envelope {
            for (m, v) in self.env.iter_mut().zip([e.bpfo, e.bpfi, e.bsf]) {
                m.add(Some(v));
            }
            self.env_votes.add(&e.family, 1);
        }
        if let Some(s) = f.speed.as_ref().filter(|s| s.source == "signal") {
            self.speed.add(Some(s.rpm));
        }
        if let Some(p) = &f.family_probs {
            if self.probs.len() != p.len() {
                self.probs = vec![0.0; p.len()];
                self.probs_n = 0;
            }
            for (s, v) in self.probs.iter_mut().zip(p) {
                *s += *v as f64;
            }
            self.probs_n += 1;
        }
        self.snr.add(f.denoise.as_ref().and_then(|d| d.snr_db));
    }

    fn row(mut self, stream: &str, t: f64, families: &[String], state: Option<String>) -> Row {
        let n = self.frames.max(1) as f64;
        self.anomaly.sort_by(f32::total_cmp);
        let probs = (self.probs_n > 0).then(|| {
            self.probs
                .iter()
                .map(|s| (s / self.probs_n as f64) as f32)
                .collect::<Vec<f32>>()
        });
        Row {
            stream: stream.to_string(),
            step: STEP as u32,
            t,
            frames: self.frames,
            rms: (self.rms_sq / n).sqrt() as f32,
            peak: self.peak,
            velocity: (self.vel.n > 0).then(|| (self.vel_sq / self.vel.n as f64).sqrt() as f32),
            zone: self.zone.map(String::from),
            crest: self.crest.get(),
            kurtosis: self.kurtosis.get(),
            anomaly_median: median(&self.anomaly),
            anomaly_max: self.anomaly.last().copied(),
            bpfo: self.env[0].get(),
            bpfi: self.env[1].get(),
            bsf: self.env[2].get(),
            envelope_family: self.env_votes.winner(),
            speed_rpm: self.speed.get(),
            family: probs.as_deref().and_then(|p| top(p, families)),
            family_probs: probs,
            snr_db: self.snr.get(),
            state,
        }
    }
}

/// The middle value of sorted `v`.
pub(crate) fn median(v: &[f32]) -> Option<f32> {
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The name of the largest of `p`.
pub(crate) fn top(p: &[f32], names: &[String]) -> Option<String> {
    let (i, _) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    names.get(i).cloned()
}

impl Row {
    /// The row over `step` seconds from `t` made of finer `rows` (one
    /// stream's, all inside it): sums weighted by their frames.
    pub fn roll_up(rows: &[Row], step: u32, t: f64) -> Option<Row> {
        let last = rows.last()?;
        let frames: u32 = rows.iter().map(|r| r.frames).sum();
        let w = |r: &Row| r.frames as f64;
        let total = frames.max(1) as f64;
        let wmean = |get: &dyn Fn(&Row) -> Option<f32>| {
            let (s, n) = rows.iter().fold((0.0, 0.0), |(s, n), r| match get(r) {
                Some(v) => (s + v as f64 * w(r), n + w(r)),
                None => (s, n),
            });
            (n > 0.0).then(|| (s / n) as f32)
        };
        let qmean = |get: &dyn Fn(&Row) -> Option<f32>| {
            let (s, n) = rows.iter().fold((0.0, 0.0), |(s, n), r| match get(r) {
                Some(v) => (s + (v as f64).powi(2) * w(r), n + w(r)),
                None => (s, n),
            });
            (n > 0.0).then(|| (s / n).sqrt() as f32)
        };
        let fold_max =
            |get: &dyn Fn(&Row) -> Option<f32>| rows.iter().filter_map(get).reduce(f32::max);
        let (mut env_votes, mut family) = (Votes::default(), Votes::default());
        for r in rows {
            if let Some(f) = &r.envelope_family {
                env_votes.add(f, r.frames);
            }
            if let Some(f) = &r.family {
                family.add(f, r.frames);
            }
        }
        // The typical anomaly of the period: the median of its rows' medians.
        let mut medians: Vec<f32> = rows.iter().filter_map(|r| r.anomaly_median).collect();
        medians.sort_by(f32::total_cmp);
        Some(Row {
            stream: last.stream.clone(),
            step,
            t,
            frames,
            rms: (rows
                .iter()
                .map(|r| (r.rms as f64).powi(2) * w(r))
                .sum::<f64>()
                / total)
                .sqrt() as f32,
            peak: rows.iter().map(|r| r.peak).fold(0.0, f32::max),
            velocity: qmean(&|r| r.velocity),
            zone: rows.iter().filter_map(|r| r.zone.clone()).max(),
            crest: wmean(&|r| r.crest),
            kurtosis: wmean(&|r| r.kurtosis),
            anomaly_median: median(&medians),
            anomaly_max: fold_max(&|r| r.anomaly_max),
            bpfo: wmean(&|r| r.bpfo),
            bpfi: wmean(&|r| r.bpfi),
            bsf: wmean(&|r| r.bsf),
            envelope_family: env_votes.winner(),
            speed_rpm: wmean(&|r| r.speed_rpm),
            family: family.winner(),
            family_probs: mean_probs(rows),
            snr_db: wmean(&|r| r.snr_db),
            state: last.state.clone(),
        })
    }
}

/// The frame-weighted mean of the rows' family probabilities (rows of one
/// model: those of another length are left out).
fn mean_probs(rows: &[Row]) -> Option<Vec<f32>> {
    let len = rows
        .iter()
        .rev()
        .find_map(|r| r.family_probs.as_ref())?
        .len();
    let mut sum = vec![0.0f64; len];
    let mut n = 0.0;
    for r in rows {
        if let Some(p) = r.family_probs.as_ref().filter(|p| p.len() == len) {
            for (s, v) in sum.iter_mut().zip(p) {
                *s += *v as f64 * r.frames as f64;
            }
            n += r.frames as f64;
        }
    }
    (n > 0.0).then(|| sum.iter().map(|s| (s / n) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(rms: f32, anomaly: f32) -> Digest {
        Digest {
            stream: "s".into(),
            rms,
            peak: rms * 3.0,
            anomaly: Some(anomaly),
            velocity_rms_mm_s: Some(rms * 10.0),
            iso_zone: Some(if rms > 1.0 { 'C' } else { 'A' }),
            family_probs: Some(vec![0.5, 0.5]),
            ..Digest::default()
        }
    }

    /// Rows close when the timeline enters the next 10 s, start where
    /// their bucket began in wall time, and sum their own frames only.
    #[test]
    fn rows_cut_on_the_timeline_and_sum_their_frames() {
        let fam = vec!["normal".to_string(), "outer".to_string()];
        let mut s = Summariser::new("s", fam, Some("normal".into()));
        let mut rows = Vec::new();
        // 25 s of frames every 0.5 s; wall time 1000 s ahead of stream time.
        for i in 0..50 {
            let k = i as f64 * 0.5;
            let rms = if k < 10.0 { 1.0 } else { 2.0 };
            rows.extend(s.push(&frame(rms, k as f32), k, 1000.0 + k));
        }
        rows.extend(s.close());
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows.iter().map(|r| r.t).collect::<Vec<_>>(),
            vec![1000.0, 1010.0, 1020.0]
        );
        assert_eq!(
            rows.iter().map(|r| r.frames).collect::<Vec<_>>(),
            vec![20, 20, 10]
        );
        assert_eq!(rows[0].rms, 1.0);
        assert_eq!(rows[1].rms, 2.0);
        assert_eq!(rows[0].zone.as_deref(), Some("A"));
        assert_eq!(rows[1].zone.as_deref(), Some("C"));
        // Anomalies 0, 0.5 .. 9.5 in the first row: the median of 20 values.
        assert_eq!(rows[0].anomaly_median, Some(4.75));
        assert_eq!(rows[0].anomaly_max, Some(9.5));
        assert_eq!(rows[0].state.as_deref(), Some("normal"));

        let up = Row::roll_up(&rows, 60, 960.0).expect("a row");
        assert_eq!(up.frames, 50);
        // Quadratic mean, weighted by frames: 20 at 1, 30 at 2.
        let want = ((20.0 + 30.0 * 4.0) / 50.0f64).sqrt() as f32;
        assert!((up.rms - want).abs() < 1e-6, "{} vs {want}", up.rms);
        assert_eq!(up.peak, 6.0);
        assert_eq!(up.zone.as_deref(), Some("C"));
        assert_eq!(up.anomaly_max, Some(24.5));
    }

    #[test]
    fn only_frame_lines_are_digested() {
        let f = Digest::parse(
            r#"{"type":"frame","seq":3,"stream":"a","sample_index":512,"time":1.5,"rms":0.5,"peak":1.0,"thresholds":[[0.1,0.2]],"anomaly":null,"speed":{"rpm":1797.0,"confidence":0.9,"source":"signal"}}"#,
        )
        .expect("a frame");
        assert_eq!((f.stream.as_str(), f.sample_index, f.rms), ("a", 512, 0.5));
        assert_eq!(f.speed.map(|s| s.rpm), Some(1797.0));
        assert!(Digest::parse(r#"{"type":"status","state":"running"}"#).is_none());
        assert!(Digest::parse("not json").is_none());
    }
}
