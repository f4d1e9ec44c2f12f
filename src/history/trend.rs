//! Whether a machine is getting worse: the trend of a stream's anomaly
//! score in its 10 s rows, judged against the rows of its first half hour
//! of scoring (the reference).
//!
//! Designed on the six FEMTO run-to-failure bearings (docs/monitoring.md):
//! their anomaly score climbs steadily for 15 minutes to hours before
//! they fail, while their RMS barely moves until the last minutes. So the
//! stream is `degrading` when, at once,
//! - the score's last hour rises steadily: Mann-Kendall's z over the
//!   per-minute medians above [`MIN_Z`] (a monotone rise, whatever its
//!   shape; one knock or one loud minute does not make one), and
//! - its last half hour's median is above the reference's by [`MIN_RISE`]
//!   in log terms (a rise that stays within the normal's level is a
//!   machine warming up, not wearing out).
//!
//! It stays degrading until the level is back within half that rise. The
//! time to the alarm extrapolates the hour's Theil-Sen slope of the log
//! score to 1.0, the anomaly alarm's limit.

use super::Row;
use serde::{Deserialize, Serialize};

/// The reference: this long of the first rows with an anomaly score.
pub const REFERENCE_S: f64 = 1800.0;
/// The level is the median over this long.
pub const LEVEL_S: f64 = 1800.0;
/// The rise is judged over this long.
pub const WINDOW_S: f64 = 3600.0;
/// Mann-Kendall z of a steady rise (one-sided p < 3e-5 for independent minutes).
pub const MIN_Z: f64 = 4.0;
/// ln of the level's rise over the reference's: 10 %.
pub const MIN_RISE: f64 = 0.1;
/// Minutes with a score the window needs before it is judged.
const MIN_MINUTES: usize = 20;

/// The stream's normal level of the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// The rows it was taken from (Unix seconds).
    pub from: f64,
    pub to: f64,
    /// Median ln(anomaly) of those rows.
    pub level: f64,
}

/// The trend at one time: whether degrading, when judged, and on what
/// (`status` and trend events carry it as it is).
pub type Assessment = crate::monitor::TrendStatus;

fn ln_score(r: &Row) -> Option<f64> {
    r.anomaly_median
        .filter(|a| a.is_finite() && *a > 0.0)
        .map(|a| (a as f64).ln())
}

/// One stream's trend, fed its 10 s rows in time order and asked now and
/// then: the live sink, an import and the bench all judge through it.
#[derive(Default)]
pub struct Watcher {
    reference: Option<Reference>,
    /// Until the reference is complete: the scored rows since learning.
    pending: Vec<(f64, f64)>,
    /// The rows of the last hour (the longest span judged).
    recent: std::collections::VecDeque<Row>,
    degrading: bool,
    /// The time of the newest row of learning seen.
    learned_at: Option<f64>,
}

impl Watcher {
    pub fn push(&mut self, row: Row) {
        if row.state.as_deref() == Some("learning") {
            // A new normal is being learned: its own reference follows.
            *self = Self {
                learned_at: Some(row.t),
                ..Self::default()
            };
            return;
        }
        if self.reference.is_none() {
            if let Some(y) = ln_score(&row) {
                self.pending.push((row.t, y));
            }
            self.take_reference();
        }
        let keep = WINDOW_S.max(LEVEL_S);
        while self.recent.front().is_some_and(|f| f.t <= row.t - keep) {
            self.recent.pop_front();
        }
        self.recent.push_back(row);
    }

    fn take_reference(&mut self) {
        let (Some(first), Some(last)) = (self.pending.first(), self.pending.last()) else {
            return;
        };
        let from = first.0;
        if last.0 < from + REFERENCE_S {
            return;
        }
        let mut v: Vec<f64> = self
            .pending
            .iter()
            .filter(|(t, _)| *t < from + REFERENCE_S)
            .map(|p| p.1)
            .collect();
        self.reference = median(&mut v).map(|level| Reference {
            from,
            to: from + REFERENCE_S,
            level,
        });
        self.pending = Vec::new();
    }

    pub fn reference(&self) -> Option<Reference> {
        self.reference
    }

    /// Takes a reference kept from before (a restart), unless the rows
    /// pushed since show a newer learning: rows expire, a kept reference
    /// does not, so a restart weeks after learning keeps its normal.
    pub fn restore_reference(&mut self, r: Reference) {
        if self.learned_at.is_some_and(|t| t >= r.from) {
            return;
        }
        self.reference = Some(r);
        self.pending = Vec::new();
    }

    /// The start of the newest row pushed.
    pub fn newest(&self) -> Option<f64> {
        self.recent.back().map(|r| r.t)
    }

    pub fn degrading(&self) -> bool {
        self.degrading
    }

    /// Carries on from the state last announced (a restart): the next
    /// check that differs from it is the next event.
    pub fn resume(&mut self, degrading: bool) {
        self.degrading = degrading;
    }

    /// The trend at `at`; None before there is a reference and enough rows.
    pub fn check(&mut self, at: f64) -> Option<Assessment> {
        let r = self.reference?;
        let rows = self.recent.make_contiguous();
        let a = assess(rows, &r, at, self.degrading)?;
        self.degrading = a.degrading;
        Some(a)
    }
}

/// The trend at `at` from the rows before it, given the reference and
/// whether the stream was degrading.
pub fn assess(rows: &[Row], r: &Reference, at: f64, was_degrading: bool) -> Option<Assessment> {
    let recent = |span: f64| {
        rows.iter()
            .filter(move |x| x.t > at - span && x.t <= at && x.t >= r.to)
            .filter_map(|x| Some((x.t, ln_score(x)?)))
    };
    let mut level: Vec<f64> = recent(LEVEL_S).map(|p| p.1).collect();
    let level = median(&mut level)?;
    let minutes = per_minute(recent(WINDOW_S));
    if minutes.len() < MIN_MINUTES {
        return None;
    }
    let ys: Vec<f64> = minutes.iter().map(|p| p.1).collect();
    let z = mann_kendall_z(&ys);
    let slope_per_h = theil_sen(&minutes) * 3600.0;
    let rise = level - r.level;
    let degrading = if was_degrading {
        rise > MIN_RISE / 2.0
    } else {
        rise > MIN_RISE && z > MIN_Z
    };
    let eta_h = if level >= 0.0 {
        Some(0.0)
    } else {
        (slope_per_h > 0.0).then(|| -level / slope_per_h)
    };
    Some(Assessment {
        degrading,
        at,
        evidence: crate::monitor::TrendEvidence {
            level: level.exp(),
            reference: r.level.exp(),
            z,
            slope_per_h,
            eta_h,
        },
    })
}

/// The trend every `every` seconds over `rows` (one stream's, oldest
/// first), as the live sink would have judged it: the assessments where
/// `degrading` changed. What an import and the bench run.
pub fn replay(rows: &[Row], every: f64) -> Vec<Assessment> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let mut w = Watcher::default();
    let mut changes = Vec::new();
    let mut next = (first.t / every).floor() * every + every;
    let mut check = |w: &mut Watcher, at: f64| {
        let was = w.degrading();
        if let Some(a) = w.check(at).filter(|a| a.degrading != was) {
            changes.push(a);
        }
    };
    for r in rows {
        while r.t > next {
            check(&mut w, next);
            next += every;
        }
        w.push(r.clone());
    }
    check(&mut w, next);
    changes
}

/// Median of each minute's values, (minute start, median), in time order.
fn per_minute(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut cur: Option<(f64, Vec<f64>)> = None;
    for (t, y) in points {
        let m = (t / 60.0).floor() * 60.0;
        match &mut cur {
            Some((cm, v)) if *cm == m => v.push(y),
            _ => {
                if let Some((cm, mut v)) = cur.take() {
                    out.extend(median(&mut v).map(|y| (cm, y)));
                }
                cur = Some((m, vec![y]));
            }
        }
    }
    if let Some((cm, mut v)) = cur {
        out.extend(median(&mut v).map(|y| (cm, y)));
    }
    out
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Mann-Kendall's z of a monotone trend in `y` (no tie correction: the
/// values are medians of continuous scores).
pub fn mann_kendall_z(y: &[f64]) -> f64 {
    let n = y.len();
    if n < 3 {
        return 0.0;
    }
    let mut s = 0.0f64;
    for i in 0..n {
        for j in i + 1..n {
            s += (y[j] - y[i]).signum() * ((y[j] != y[i]) as u8 as f64);
        }
    }
    let n = n as f64;
    let var = n * (n - 1.0) * (2.0 * n + 5.0) / 18.0;
    (s - s.signum()) / var.sqrt()
}

/// Theil-Sen slope of the points (per second).
fn theil_sen(p: &[(f64, f64)]) -> f64 {
    let mut slopes = Vec::with_capacity(p.len() * p.len() / 2);
    for i in 0..p.len() {
        for j in i + 1..p.len() {
            let dt = p[j].0 - p[i].0;
            if dt > 0.0 {
                slopes.push((p[j].1 - p[i].1) / dt);
            }
        }
    }
    median(&mut slopes).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(score: impl Fn(f64) -> f64, hours: f64) -> Vec<Row> {
        let n = (hours * 360.0) as usize;
        (0..n)
            .map(|i| {
                let t = 1_000_000.0 + i as f64 * 10.0;
                // A deterministic wobble of +-20 % around the score.
                let wobble = 1.0 + 0.2 * ((i * 7919 % 101) as f64 / 50.0 - 1.0);
                Row {
                    stream: "s".into(),
                    step: 10,
                    t,
                    frames: 200,
                    rms: 1.0,
                    peak: 1.0,
                    anomaly_median: Some((score(t - 1_000_000.0) * wobble) as f32),
                    ..Row::default()
                }
            })
            .collect()
    }

    /// A flat score never degrades, however long it runs.
    #[test]
    fn a_steady_machine_is_not_degrading() {
        let r = rows(|_| 0.2, 24.0);
        assert!(replay(&r, 300.0).is_empty());
    }

    /// A score that doubles every hour from the third is degrading within
    /// an hour of starting to rise, with an estimate of the time to 1.0.
    #[test]
    fn a_steady_rise_is_degrading_with_a_time_to_the_limit() {
        let start = 2.0 * 3600.0;
        let r = rows(
            |t| {
                0.05 * if t < start {
                    1.0
                } else {
                    2f64.powf((t - start) / 3600.0)
                }
            },
            6.0,
        );
        let changes = replay(&r, 300.0);
        let first = changes.first().expect("degrading");
        assert!(first.degrading);
        let after = first.at - 1_000_000.0 - start;
        assert!(
            (0.0..3600.0).contains(&after),
            "{after} s after the rise began"
        );
        // An hour into the rise the window holds only the rise: ln 2 per
        // hour, and the time to 1.0 is the doublings left.
        let at = 1_000_000.0 + start + 3600.0;
        let mut w = Watcher::default();
        r.iter().for_each(|x| w.push(x.clone()));
        let reference = w.reference().expect("a reference");
        let a = assess(&r, &reference, at, true).expect("an assessment");
        assert!(a.degrading);
        assert!((a.evidence.slope_per_h - 2f64.ln()).abs() < 0.1, "{a:?}");
        let eta = a.evidence.eta_h.expect("an estimate");
        let want = (1.0 / a.evidence.level).log2();
        assert!((eta - want).abs() < 0.3, "eta {eta} h, want {want}");
    }

    /// A rise that stays within 10 % of the normal level (a machine
    /// warming up) is not degrading, however steady.
    #[test]
    fn a_small_steady_rise_is_not_degrading() {
        let r = rows(|t| 0.2 * (1.0 + 0.05 * t / 86_400.0), 24.0);
        assert!(replay(&r, 300.0).is_empty());
    }

    /// A restart weeks after learning: the rows kept start at a higher
    /// level than the normal, and the kept reference is the one judged by;
    /// a learning among the rows pushed sets a kept reference aside.
    #[test]
    fn a_kept_reference_survives_expired_rows_but_not_a_new_learning() {
        let kept = Reference {
            from: 0.0,
            to: 1800.0,
            level: 0.1f64.ln(),
        };
        let mut w = Watcher::default();
        for r in rows(|_| 0.2, 1.0) {
            w.push(r);
        }
        w.restore_reference(kept);
        assert_eq!(w.reference(), Some(kept));
        let mut learning = rows(|_| 0.2, 0.1);
        learning
            .iter_mut()
            .for_each(|r| r.state = Some("learning".into()));
        let mut w = Watcher::default();
        for r in learning.into_iter().chain(rows(|_| 0.2, 1.0)) {
            w.push(r);
        }
        let own = w.reference().expect("its own reference");
        w.restore_reference(kept);
        assert_eq!(w.reference(), Some(own));
    }

    #[test]
    fn mann_kendall_sees_the_sign_of_a_trend() {
        let up: Vec<f64> = (0..60).map(|i| i as f64).collect();
        let down: Vec<f64> = up.iter().rev().copied().collect();
        assert!(mann_kendall_z(&up) > 10.0);
        assert!(mann_kendall_z(&down) < -10.0);
        let flat: Vec<f64> = (0..60).map(|i| ((i * 37) % 11) as f64).collect();
        assert!(mann_kendall_z(&flat).abs() < 2.0);
    }
}
