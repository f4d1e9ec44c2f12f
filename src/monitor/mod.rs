//! Machine state from the frame stream, the way condition-monitoring
//! products present it: per-frame labels flicker, so the state is debounced.
//!
//! Probabilities are smoothed over the last `smoothing-frames` frames. A
//! candidate state must hold for `raise-after-s` (entering a fault, or
//! switching fault class) or `clear-after-s` (leaving a fault) of *stream*
//! time before it becomes the state, so a replay at any speed behaves alike.
//! A quiet or flat-lined sensor, or one that stops delivering, is
//! `no-signal`: a sensor problem is not a machine fault.
//!
//! With a model that has a family head, the state follows the smoothed
//! *family*: `fault(inner)` names what holds on any bearing, and the fine
//! class (IR_14 or IR_21) is only the event's detail, so a network torn
//! between two sizes of one fault neither flaps nor goes `uncertain`, and
//! `healthy` needs the normal family itself to be confident.
//!
//! What a restart keeps (the state file) is in `saved`.

pub use crate::config::MonitorConfig;
use crate::manifest::{Labels, NORMAL_FAMILY};
use crate::report::{argmax, Frame, Prediction, Report};
use serde::{Deserialize, Serialize};

mod saved;
pub mod verdict;
pub mod zone;

pub use saved::{file_safe, load_state, state_path, Saved, StateSaver, SAVE_EVERY};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Not enough frames seen yet.
    Starting,
    Healthy,
    Fault {
        /// The fault family (`inner`, `outer`, `ball`) for a model with a
        /// family head, else the fine class.
        class: String,
    },
    /// No class is confident enough.
    Uncertain,
    NoSignal {
        reason: String,
    },
    /// The stream is learning its baseline (no fault named meanwhile).
    Learning,
    /// Outside its learned normal while the network names no fault.
    Anomaly,
    /// The network names a fault, but the machine is within its learned
    /// normal: not an alarm, a disagreement worth a look.
    Suspect {
        class: String,
    },
}

/// Every kind of state, in a fixed order (metrics label them by it).
pub const STATE_KINDS: [&str; 8] = [
    "starting",
    "healthy",
    "fault",
    "uncertain",
    "no-signal",
    "learning",
    "anomaly",
    "suspect",
];

impl State {
    /// The state's kind, without its detail (fault class, no-signal reason).
    pub fn kind(&self) -> &'static str {
        STATE_KINDS[self.kind_index()]
    }

    /// Index of the kind in [`STATE_KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            State::Starting => 0,
            State::Healthy => 1,
            State::Fault { .. } => 2,
            State::Uncertain => 3,
            State::NoSignal { .. } => 4,
            State::Learning => 5,
            State::Anomaly => 6,
            State::Suspect { .. } => 7,
        }
    }

    /// A state an alarm is raised for.
    pub fn is_alarm(&self) -> bool {
        matches!(self, State::Fault { .. } | State::Anomaly)
    }

    pub fn name(&self) -> String {
        match self {
            State::Fault { class } => format!("fault({class})"),
            State::Suspect { class } => format!("suspect({class})"),
            State::Learning => "learning".into(),
            State::Anomaly => "anomaly".into(),
            State::NoSignal { .. } => "no-signal".into(),
            State::Starting => "starting".into(),
            State::Healthy => "healthy".into(),
            State::Uncertain => "uncertain".into(),
        }
    }
}

/// What a transition carries as evidence: the frames that made the case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub frames: u64,
    pub mean_probs: Vec<f32>,
    /// Mean family probabilities (models with a family head).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mean_family_probs: Vec<f32>,
    /// Into a fault: the fine class, when those frames name one of the
    /// fault's family with confidence (models with a family head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Mean τ per unit and channel over those frames.
    pub mean_thresholds: Vec<Vec<f32>>,
    /// Mean anomaly score over those frames (streams with a baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_anomaly: Option<f32>,
    /// Mean velocity RMS over those frames (zone events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_velocity_mm_s: Option<f32>,
    /// Into a fault: who named its family (`none` for `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_source: Option<verdict::Source>,
    /// The network's opinion when the state changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<verdict::NetworkSaid>,
    /// The envelope's standing opinion then (streams with `rpm` and
    /// `bearing`, while the majority of its windows names a family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<verdict::EnvelopeSaid>,
    /// Trend events: what the history's trend analysis measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<TrendEvidence>,
}

/// A trend event's evidence: the anomaly score's level now and in the
/// reference, how steadily and how fast it rises, and when it would
/// reach the alarm limit (1.0) at that rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TrendEvidence {
    /// Median anomaly score of the last half hour, and of the reference.
    pub level: f64,
    pub reference: f64,
    /// Mann-Kendall z of the last hour's per-minute medians.
    pub z: f64,
    /// Growth of the score, ln units per hour.
    pub slope_per_h: f64,
    /// Hours until the score reaches 1.0 (0: there; null: not rising).
    pub eta_h: Option<f64>,
}

/// A stream's trend as last judged (`status`, the page): whether it is
/// degrading, when it was judged (Unix seconds), and on what.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrendStatus {
    pub degrading: bool,
    pub at: f64,
    #[serde(flatten)]
    pub evidence: TrendEvidence,
}

/// A confirmed change: of the machine's [`State`], or of its ISO zone
/// (`Transition<zone::Zone>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition<S = State> {
    pub from: S,
    pub to: S,
    /// Stream time (s) when the new state was first seen, and when it was confirmed.
    pub since_s: f64,
    pub at_s: f64,
    pub confidence: f32,
    pub evidence: Evidence,
}

/// Running evidence for the current candidate.
#[derive(Debug, Default)]
struct Tally {
    frames: u64,
    probs: Vec<f64>,
    family_probs: Vec<f64>,
    taus: Vec<Vec<f64>>,
    /// Sum of anomaly scores, and how many frames had one.
    anomaly: (f64, u64),
    /// The same for velocity RMS.
    velocity: (f64, u64),
}

impl Tally {
    fn add_velocity(&mut self, v: f32) {
        self.velocity.0 += v as f64;
        self.velocity.1 += 1;
    }

    fn add(&mut self, p: &Prediction, anomaly: Option<f32>) {
        if let Some(a) = anomaly {
            self.anomaly.0 += a as f64;
            self.anomaly.1 += 1;
        }
        if self.frames == 0 {
            self.probs = vec![0.0; p.probs.len()];
            self.family_probs = vec![0.0; p.family_probs.len()];
            self.taus = p.thresholds.iter().map(|t| vec![0.0; t.len()]).collect();
        }
        self.frames += 1;
        for (s, v) in self.probs.iter_mut().zip(&p.probs) {
            *s += *v as f64;
        }
        for (s, v) in self.family_probs.iter_mut().zip(&p.family_probs) {
            *s += *v as f64;
        }
        for (s, t) in self.taus.iter_mut().zip(&p.thresholds) {
            for (a, b) in s.iter_mut().zip(t) {
                *a += *b as f64;
            }
        }
    }

    fn evidence(&self) -> Evidence {
        let n = self.frames.max(1) as f64;
        Evidence {
            frames: self.frames,
            mean_probs: self.probs.iter().map(|v| (v / n) as f32).collect(),
            mean_family_probs: self.family_probs.iter().map(|v| (v / n) as f32).collect(),
            class: None,
            mean_thresholds: self
                .taus
                .iter()
                .map(|t| t.iter().map(|v| (v / n) as f32).collect())
                .collect(),
            mean_anomaly: (self.anomaly.1 > 0)
                .then(|| (self.anomaly.0 / self.anomaly.1 as f64) as f32),
            mean_velocity_mm_s: (self.velocity.1 > 0)
                .then(|| (self.velocity.0 / self.velocity.1 as f64) as f32),
            ..Evidence::default()
        }
    }
}

pub struct Monitor {
    cfg: MonitorConfig,
    labels: Labels,
    state: State,
    /// Stream time the current state began.
    state_since_s: f64,
    window: std::collections::VecDeque<Vec<f32>>,
    /// The last `anomaly_frames` anomaly scores, and scratch to rank them.
    anomaly_window: std::collections::VecDeque<f32>,
    ranked: Vec<f32>,
    candidate: Option<(State, f64)>,
    tally: Tally,
    last_confidence: f32,
    /// In no-signal for want of samples, and the source has not yet said why.
    awaiting_reason: bool,
    zone: zone::ZoneWatch,
    /// The envelope's recent families (`verdict`).
    votes: verdict::EnvelopeVotes,
    /// The latest frame's opinions (the network's state, confidence and
    /// trust; the envelope's) and who named its verdict. Kept as they are
    /// (moved, not formatted) and stated only when an event is made:
    /// nothing is allocated for them per frame.
    said: (State, f32, bool, Option<verdict::EnvelopeOpinion>),
    source: Option<verdict::Source>,
}

impl Monitor {
    /// `restored`: the state (and since when) saved before a restart.
    pub fn new(cfg: MonitorConfig, labels: Labels, restored: Option<(State, f64)>) -> Self {
        let (state, since) = restored.unwrap_or((State::Starting, 0.0));
        Self {
            window: std::collections::VecDeque::with_capacity(cfg.smoothing_frames.max(1)),
            anomaly_window: std::collections::VecDeque::with_capacity(cfg.anomaly_frames.max(1)),
            ranked: Vec::with_capacity(cfg.anomaly_frames.max(1)),
            // About 6 envelope windows: one or two are no majority (`verdict`).
            votes: verdict::EnvelopeVotes::new(4 * cfg.anomaly_frames),
            cfg,
            labels,
            state,
            state_since_s: since,
            candidate: None,
            tally: Tally::default(),
            last_confidence: 0.0,
            awaiting_reason: false,
            zone: zone::ZoneWatch::default(),
            said: (State::Starting, 0.0, false, None),
            source: None,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_since_s(&self) -> f64 {
        self.state_since_s
    }

    /// A reloaded model's labels. The smoothing window restarts: the old
    /// model's probabilities may not even have the new one's length.
    pub fn set_labels(&mut self, labels: Labels) {
        if labels != self.labels {
            self.window.clear();
        }
        self.labels = labels;
    }

    /// What the current frame (after smoothing) argues for: the network's
    /// and the envelope's opinions, weighed against the learned normal
    /// where there is one (`verdict`).
    fn judge(&mut self, frame: &Frame, report: &Report) -> (State, f32) {
        let (net, conf) = self.judge_network(frame, &report.prediction);
        self.source = None;
        if matches!(net, State::NoSignal { .. }) {
            self.anomaly_window.clear();
            self.votes.clear();
        }
        if matches!(net, State::NoSignal { .. } | State::Starting) {
            return (net, conf);
        }
        let envelope = report.physical.and_then(|p| p.envelope).flatten();
        self.votes.push(envelope.as_ref());
        let envelope = self.votes.opinion();
        let anomaly = report.anomaly.map(|a| self.smoothed_anomaly(a));
        let learning = report.learning.is_some();
        let trusted =
            anomaly.is_none() || verdict::trusted(self.cfg.trust_network, report.network_normal);
        let (state, source) = verdict::decide(&verdict::Opinions {
            network: &net,
            envelope: envelope.as_ref(),
            anomaly,
            learning,
            trusted,
        });
        self.said = (net, conf, trusted, envelope);
        self.source = source;
        (state, conf)
    }

    /// The score three quarters of the last `anomaly_frames` frames reach:
    /// a persistent change, not a knock lasting a few frames.
    fn smoothed_anomaly(&mut self, a: f32) -> f32 {
        if self.anomaly_window.len() >= self.cfg.anomaly_frames.max(1) {
            self.anomaly_window.pop_front();
        }
        self.anomaly_window
            .push_back(if a.is_nan() { f32::MAX } else { a });
        self.ranked.clear();
        self.ranked.extend(self.anomaly_window.iter().copied());
        let k = self.ranked.len() / 4;
        *self.ranked.select_nth_unstable_by(k, f32::total_cmp).1
    }

    /// What the network's smoothed probabilities argue for.
    fn judge_network(&mut self, frame: &Frame, pred: &Prediction) -> (State, f32) {
        if let Some(reason) = frame.no_signal(self.cfg.signal_floor) {
            self.window.clear();
            return (
                State::NoSignal {
                    reason: reason.into(),
                },
                0.0,
            );
        }
        // The family head where there is one: the verdict that holds on
        // other bearings. Else the fine classes.
        let probs = if self.labels.families.is_empty() {
            &pred.probs
        } else {
            &pred.family_probs
        };
        if self.window.len() == self.cfg.smoothing_frames.max(1) {
            self.window.pop_front();
        }
        self.window.push_back(probs.clone());
        if self.window.len() < self.cfg.smoothing_frames.max(1) {
            return (State::Starting, 0.0);
        }
        let n = self.window.len() as f32;
        let mut mean = vec![0f32; probs.len()];
        for p in &self.window {
            for (m, v) in mean.iter_mut().zip(p) {
                *m += v / n;
            }
        }
        let (top, conf) = argmax(&mean);
        let (name, healthy) = if self.labels.families.is_empty() {
            (
                self.labels.classes.get(top),
                self.cfg.healthy_class.as_str(),
            )
        } else {
            (self.labels.families.get(top), NORMAL_FAMILY)
        };
        let name = name.cloned().unwrap_or_default();
        let state = if conf < self.cfg.min_confidence {
            State::Uncertain
        } else if name == healthy {
            State::Healthy
        } else {
            State::Fault { class: name }
        };
        (state, conf)
    }

    /// Into a fault named by family: the fine class those frames agree on,
    /// if it is confident and of that family (IR_21 for `inner`).
    fn fine_detail(&self, to: &State, ev: &Evidence) -> Option<String> {
        let State::Fault { class: family } = to else {
            return None;
        };
        let fam = self.labels.families.iter().position(|f| f == family)?;
        let (top, conf) = argmax(&ev.mean_probs);
        let of_family = self.labels.class_family.get(top).copied().flatten() == Some(fam);
        (conf >= self.cfg.min_confidence && of_family)
            .then(|| self.labels.classes.get(top).cloned())
            .flatten()
    }

    /// How long `to` must hold before it replaces the current state.
    fn hold_for(&self, to: &State) -> f64 {
        match (&self.state, to) {
            (State::Starting, State::Starting) => f64::INFINITY,
            // A restored or first judgement of a healthy/uncertain machine needs no wait,
            // but an alarm is never raised without holding.
            (State::Starting, State::Healthy | State::Uncertain | State::Learning) => 0.0,
            (from, to) if from.is_alarm() && !to.is_alarm() => self.cfg.clear_after_s,
            _ => self.cfg.raise_after_s,
        }
    }

    /// Feeds one frame; returns the transition it completes, if any.
    /// `t_s` is the stream time of the frame's last sample.
    pub fn frame(&mut self, frame: &Frame, report: &Report, t_s: f64) -> Option<Transition> {
        let (judged, conf) = self.judge(frame, report);
        self.last_confidence = conf;
        if judged == State::Starting && self.state != State::Starting {
            // Refilling the window (after a restart or no-signal): keep the state.
            return None;
        }
        self.consider(
            judged,
            conf,
            t_s,
            Some((&report.prediction, report.anomaly)),
        )
    }

    /// The frame's ISO zone, for zone events (streams with units only).
    pub fn zone_frame(&mut self, report: &Report, t_s: f64) -> Option<Transition<zone::Zone>> {
        let (raise, clear) = (self.cfg.raise_after_s, self.cfg.clear_after_s);
        self.zone.frame(report, t_s, raise, clear)
    }

    /// Called while no frames arrive: no samples for `idle_s` of wall clock.
    /// `why` is the source's own account, if it has one ("device lost ...").
    pub fn idle(&mut self, idle_s: f64, t_s: f64, why: Option<String>) -> Option<Transition> {
        if idle_s < self.cfg.no_data_after_s || matches!(self.state, State::NoSignal { .. }) {
            return None;
        }
        self.window.clear();
        let awaiting = why.is_none();
        let reason = match why {
            Some(w) => format!("no samples for {idle_s:.1} s: {w}"),
            None => format!("no samples for {idle_s:.1} s"),
        };
        let to = State::NoSignal { reason };
        self.candidate = None;
        self.tally = Tally::default();
        let tr = self.enter(to, t_s, t_s, 0.0);
        self.awaiting_reason = awaiting;
        Some(tr)
    }

    /// While in no-signal for want of samples: when the source later says
    /// why ("device lost ..."), the state is announced again, once, with
    /// that reason. Later changes of the source's account (retry timings)
    /// are for status, not events.
    pub fn explain(&mut self, why: &str, t_s: f64) -> Option<Transition> {
        if !self.awaiting_reason {
            return None;
        }
        let State::NoSignal { reason } = &self.state else {
            return None;
        };
        let to = State::NoSignal {
            reason: format!("{reason}: {why}"),
        };
        Some(self.enter(to, t_s, t_s, 0.0))
    }

    fn consider(
        &mut self,
        judged: State,
        conf: f32,
        t_s: f64,
        pred: Option<(&Prediction, Option<f32>)>,
    ) -> Option<Transition> {
        if judged == self.state {
            self.candidate = None;
            self.tally = Tally::default();
            return None;
        }
        // With a baseline every alarm candidate is outside the normal, so
        // from a calm state any alarm held for the delay raises the latest:
        // a network torn between two fault classes must not postpone it.
        // Without one, a class must hold on its own (flicker is noise).
        let raising = !self.state.is_alarm() && pred.is_some_and(|p| p.1.is_some());
        match &mut self.candidate {
            Some((c, _)) if raising && c.is_alarm() && judged.is_alarm() => *c = judged.clone(),
            Some((c, _))
                if *c == judged
                    || matches!(
                        (&*c, &judged),
                        (State::NoSignal { .. }, State::NoSignal { .. })
                    ) => {}
            _ => {
                self.candidate = Some((judged.clone(), t_s));
                self.tally = Tally::default();
            }
        }
        if let Some((p, anomaly)) = pred {
            self.tally.add(p, anomaly);
        }
        let since = self.candidate.as_ref().map_or(t_s, |c| c.1);
        if t_s - since >= self.hold_for(&judged) {
            return Some(self.enter(judged, since, t_s, conf));
        }
        None
    }

    fn enter(&mut self, to: State, since_s: f64, at_s: f64, confidence: f32) -> Transition {
        // Only `idle` enters a state that waits for the source's reason.
        self.awaiting_reason = false;
        let from = std::mem::replace(&mut self.state, to.clone());
        self.state_since_s = since_s;
        let mut evidence = std::mem::take(&mut self.tally).evidence();
        evidence.class = self.fine_detail(&to, &evidence);
        evidence.family_source = matches!(to, State::Fault { .. })
            .then_some(self.source)
            .flatten();
        let (net, conf, trusted, envelope) = &self.said;
        evidence.network = verdict::NetworkSaid::of(net, *conf, *trusted);
        evidence.envelope = envelope.as_ref().map(verdict::EnvelopeSaid::from);
        self.candidate = None;
        Transition {
            from,
            to,
            since_s,
            at_s,
            confidence,
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source's reason for a silence is announced once, and only for a
    /// no-signal that `idle` entered without one; the decision rests on a
    /// flag, not on the text of the reason (which a reason containing ": "
    /// or a new wording would have fooled).
    #[test]
    fn a_late_reason_for_no_samples_is_announced_once() {
        let mut m = Monitor::new(
            MonitorConfig::default(),
            Labels::classes(vec!["Normal".into()]),
            None,
        );
        assert!(m.explain("device lost", 0.0).is_none(), "not in no-signal");
        let tr = m.idle(2.0, 1.0, None).expect("no-signal");
        assert!(matches!(tr.to, State::NoSignal { .. }));
        let tr = m
            .explain("device lost (x: y)", 1.5)
            .expect("the reason, once");
        let State::NoSignal { reason } = tr.to else {
            panic!("still no-signal")
        };
        assert!(reason.ends_with(": device lost (x: y)"), "{reason}");
        assert!(m.explain("retrying every 2 s", 2.0).is_none(), "only once");
        let mut m = Monitor::new(
            MonitorConfig::default(),
            Labels::classes(vec!["Normal".into()]),
            None,
        );
        m.idle(2.0, 1.0, Some("device lost".into()))
            .expect("no-signal");
        assert!(
            m.explain("device lost", 1.5).is_none(),
            "the reason was known"
        );
    }

    #[test]
    fn a_few_loud_frames_do_not_lift_the_smoothed_anomaly() {
        let mut m = Monitor::new(
            MonitorConfig::default(),
            Labels::classes(vec!["Normal".into()]),
            None,
        );
        let n = m.cfg.anomaly_frames;
        let mut last = 0.0;
        for i in 0..3 * n {
            // A knock: 3 loud frames in every `n`.
            last = m.smoothed_anomaly(if i % n < 3 { 50.0 } else { 0.4 });
        }
        assert_eq!(last, 0.4);
        for _ in 0..n {
            last = m.smoothed_anomaly(f32::NAN);
        }
        assert!(last > 1.0, "non-finite scores count as far out: {last}");
    }

    fn family_labels() -> Labels {
        Labels {
            classes: ["Normal", "B_7", "IR_7", "IR_14"]
                .map(String::from)
                .to_vec(),
            families: ["normal", "ball", "inner", "outer"]
                .map(String::from)
                .to_vec(),
            class_family: vec![Some(0), Some(1), Some(2), Some(2)],
        }
    }

    /// Feeds `n` frames (hop 512 at 12 kHz) from `t0`, each `pred(i)`;
    /// returns every transition.
    fn feed(
        m: &mut Monitor,
        t0: f64,
        n: usize,
        pred: impl Fn(usize) -> Prediction,
    ) -> Vec<Transition> {
        let frame = Frame {
            index: 0,
            end_ns: 0,
            samples: Vec::new(),
            rms: 1.0,
            peak: 1.0,
            std: 1.0,
            flags: Default::default(),
        };
        (0..n)
            .filter_map(|i| {
                let report = Report {
                    prediction: pred(i),
                    ..Report::default()
                };
                m.frame(&frame, &report, t0 + i as f64 * 512.0 / 12_000.0)
            })
            .collect()
    }

    fn pred(probs: [f32; 4], family: [f32; 4]) -> Prediction {
        Prediction {
            probs: probs.to_vec(),
            family_probs: family.to_vec(),
            thresholds: vec![vec![0.1]],
            ..Prediction::default()
        }
    }

    #[test]
    fn fine_classes_of_one_family_that_disagree_neither_flap_nor_go_uncertain() {
        let mut m = Monitor::new(MonitorConfig::default(), family_labels(), None);
        // Healthy first: the normal family is confident.
        let tr = feed(&mut m, 0.0, 40, |_| {
            pred([0.9, 0.05, 0.03, 0.02], [0.95, 0.02, 0.02, 0.01])
        });
        assert_eq!(tr.last().map(|t| t.to.name()), Some("healthy".into()));
        // An inner-race fault whose size flips every frame: IR_7, IR_14, ...
        let tr = feed(&mut m, 2.0, 200, |i| {
            let (a, b) = if i % 2 == 0 { (0.7, 0.2) } else { (0.2, 0.7) };
            pred([0.05, 0.05, a, b], [0.03, 0.02, 0.9, 0.05])
        });
        let names: Vec<String> = tr.iter().map(|t| t.to.name()).collect();
        assert_eq!(names, ["fault(inner)"], "one transition, no flapping");
        assert_eq!(tr[0].evidence.class, None, "no fine class is confident");
        assert_eq!(tr[0].evidence.mean_family_probs.len(), 4);
        assert!(tr[0].at_s - 2.0 <= 1.0, "raised within a second");
    }

    #[test]
    fn a_confident_fine_class_is_the_detail_of_its_family_only() {
        let mut m = Monitor::new(MonitorConfig::default(), family_labels(), None);
        feed(&mut m, 0.0, 40, |_| {
            pred([0.9, 0.05, 0.03, 0.02], [0.95, 0.02, 0.02, 0.01])
        });
        let tr = feed(&mut m, 2.0, 60, |_| {
            pred([0.05, 0.05, 0.1, 0.8], [0.03, 0.02, 0.9, 0.05])
        });
        assert_eq!(tr.len(), 1);
        assert_eq!(
            tr[0].to,
            State::Fault {
                class: "inner".into()
            }
        );
        assert_eq!(tr[0].evidence.class.as_deref(), Some("IR_14"));
        // A confident fine class of another family is no detail of `ball`.
        let mut m = Monitor::new(MonitorConfig::default(), family_labels(), None);
        let tr = feed(&mut m, 0.0, 60, |_| {
            pred([0.05, 0.05, 0.1, 0.8], [0.03, 0.9, 0.05, 0.02])
        });
        assert_eq!(tr.last().map(|t| t.to.name()), Some("fault(ball)".into()));
        assert_eq!(tr.last().and_then(|t| t.evidence.class.clone()), None);
    }

    #[test]
    fn healthy_needs_the_normal_family_not_the_fine_class() {
        let mut m = Monitor::new(MonitorConfig::default(), family_labels(), None);
        // The fine head says Normal with confidence, but the family head
        // is split: no `healthy` on the fine class's word.
        let tr = feed(&mut m, 0.0, 60, |_| {
            pred([0.9, 0.05, 0.03, 0.02], [0.5, 0.0, 0.3, 0.2])
        });
        let names: Vec<String> = tr.iter().map(|t| t.to.name()).collect();
        assert_eq!(names, ["uncertain"]);
        // A model without a family head keeps following the fine classes.
        let labels = Labels::classes(family_labels().classes);
        let mut m = Monitor::new(MonitorConfig::default(), labels, None);
        let tr = feed(&mut m, 0.0, 60, |_| {
            pred([0.9, 0.05, 0.03, 0.02], [0.5, 0.0, 0.3, 0.2])
        });
        assert_eq!(tr.last().map(|t| t.to.name()), Some("healthy".into()));
    }
}
