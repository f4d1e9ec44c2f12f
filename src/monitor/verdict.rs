//! One verdict from all the evidence, the way an analyst gives it: the
//! learned normal says *whether* something is wrong, and the cause is
//! named only when the evidence for it holds on this machine.
//!
//! - The **envelope** names a bearing defect by physics; it is reliable
//!   when its lines were placed at a measured (or pinned) shaft speed. Its
//!   opinion is the family the majority of the recent frames name (4 x
//!   `anomaly-frames`, about 6 of its windows: over 1-2 windows the verdict
//!   named a wrong family on 6 of 243 runs of bench/verdict_eval.py, over
//!   6 on 1).
//! - The **network** names a family well only on machines like the ones it
//!   was trained on (near chance elsewhere: models/RESULTS.md), and nothing
//!   drsnd can measure tells such a machine apart (see `trusted`). With a
//!   baseline its family alone counts only where the user says it was
//!   trained on this machine (`trust-network`); else it counts when the
//!   envelope agrees.
//! - Evidence that disagrees, or a network out of its domain with nothing
//!   to back it, gives `fault(unknown)`: an alarm that says something is
//!   wrong and the cause is not clear, never a guessed family.

use super::State;
use crate::report::{Evidence, Family, SpeedSource};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The family of a fault whose cause the evidence does not settle.
pub const UNKNOWN: &str = "unknown";
/// Share of the baseline's frames a trusted network must have called normal.
pub const TRUST_SHARE: f64 = 0.9;

/// Who named the fault's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Network,
    Envelope,
    /// Both named the same family.
    #[serde(rename = "network+envelope")]
    Both,
    /// Nobody could: the family is `unknown`.
    None,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Network => "network",
            Source::Envelope => "envelope",
            Source::Both => "network+envelope",
            Source::None => "none",
        }
    }
}

/// The envelope's standing opinion: a family named by the majority of the
/// recent frames, with the latest window that named it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvelopeOpinion {
    pub family: Family,
    pub evidence: Evidence,
}

impl EnvelopeOpinion {
    /// Placed at a measured or pinned speed (not a fallback to nominal).
    pub fn reliable(&self) -> bool {
        self.evidence.speed.source != SpeedSource::Nominal
    }
}

/// The envelope's family over the last frames (allocated once).
#[derive(Debug)]
pub struct EnvelopeVotes {
    votes: VecDeque<Option<Family>>,
    last: [Option<Evidence>; 3],
}

impl EnvelopeVotes {
    pub fn new(frames: usize) -> Self {
        Self {
            votes: VecDeque::with_capacity(frames.max(1)),
            last: [None; 3],
        }
    }

    pub fn clear(&mut self) {
        self.votes.clear();
        self.last = [None; 3];
    }

    /// One frame's envelope evidence (None: the window is not full yet).
    pub fn push(&mut self, e: Option<&Evidence>) {
        if self.votes.len() == self.votes.capacity() {
            self.votes.pop_front();
        }
        let family = e.and_then(|e| e.family);
        if let (Some(f), Some(e)) = (family, e) {
            self.last[index(f)] = Some(*e);
        }
        self.votes.push_back(family);
    }

    /// The family more than half of a full window of frames name.
    pub fn opinion(&self) -> Option<EnvelopeOpinion> {
        if self.votes.len() < self.votes.capacity() {
            return None;
        }
        let family = Family::ALL.into_iter().find(|f| {
            2 * self.votes.iter().filter(|v| **v == Some(*f)).count() > self.votes.len()
        })?;
        let evidence = self.last[index(family)]?;
        Some(EnvelopeOpinion { family, evidence })
    }
}

fn index(f: Family) -> usize {
    Family::ALL.iter().position(|x| *x == f).unwrap_or(0)
}

/// The network's opinion as an event states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSaid {
    /// Its smoothed family (`normal` when it calls the machine healthy),
    /// and that family's mean probability.
    pub family: String,
    pub probability: f32,
    /// Whether it is in its own domain on this machine.
    pub trusted: bool,
}

impl NetworkSaid {
    pub fn of(net: &State, probability: f32, trusted: bool) -> Option<Self> {
        let family = match net {
            State::Fault { class } => class.clone(),
            State::Healthy => crate::manifest::NORMAL_FAMILY.to_string(),
            _ => return None,
        };
        Some(Self {
            family,
            probability,
            trusted,
        })
    }
}

/// The envelope's opinion as an event states it: the family, its line and
/// how far it stands out, and the speed it was placed at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeSaid {
    pub family: String,
    pub line_hz: f32,
    pub prominence_db: f32,
    pub speed_rpm: f32,
    /// `signal`, `nominal` or `fixed` (see the frame's `speed`).
    pub speed_source: String,
}

impl From<&EnvelopeOpinion> for EnvelopeSaid {
    fn from(o: &EnvelopeOpinion) -> Self {
        let i = index(o.family);
        let finite = |v: f32| if v.is_finite() { v } else { 0.0 };
        Self {
            family: o.family.as_str().to_string(),
            line_hz: finite(o.evidence.line_hz[i]),
            prominence_db: finite(o.evidence.prominence_db[i]),
            speed_rpm: o.evidence.speed.rpm,
            speed_source: o.evidence.speed.source.as_str().to_string(),
        }
    }
}

/// Whether the network's family alone may name a fault on a machine with a
/// baseline: the user says it was trained on this machine (`trust-network`),
/// and it called the baseline's healthy frames normal (`network_normal`,
/// where the baseline recorded it). The second alone proves nothing: a
/// network trained on CWRU only called 98 % of UESTC's healthy frames
/// normal and named 80 % of its inner-race frames `outer`.
pub fn trusted(trust_network: bool, network_normal: Option<f32>) -> bool {
    trust_network && network_normal.is_none_or(|s| s as f64 >= TRUST_SHARE)
}

/// Everything the verdict is made of, for one (smoothed) frame.
#[derive(Debug, Clone, Copy)]
pub struct Opinions<'a> {
    /// The network's smoothed state: healthy, uncertain or fault(family).
    pub network: &'a State,
    pub envelope: Option<&'a EnvelopeOpinion>,
    /// The smoothed anomaly score (None without a baseline).
    pub anomaly: Option<f32>,
    pub learning: bool,
    /// The network is in its own domain (always, without a baseline to
    /// learn it from).
    pub trusted: bool,
}

/// The machine state, and who named the fault's family (faults only).
pub fn decide(o: &Opinions) -> (State, Option<Source>) {
    let net = match o.network {
        State::Fault { class } => Some(class.as_str()),
        _ => None,
    };
    // Two sources that agree are evidence even at a fallback speed; alone
    // the envelope counts only at a measured or pinned one.
    let agreed = o.envelope.map(|e| e.family.as_str());
    let env = o
        .envelope
        .filter(|e| e.reliable())
        .map(|e| e.family.as_str());
    let fault = |class: &str, source| {
        (
            State::Fault {
                class: class.into(),
            },
            Some(source),
        )
    };
    match o.anomaly {
        // Within its normal the machine is healthy whatever one source
        // says; a fault the network names is only `suspect`.
        Some(a) if a <= 1.0 => match net {
            Some(class) => (
                State::Suspect {
                    class: class.into(),
                },
                None,
            ),
            None => (State::Healthy, None),
        },
        // Outside it: name the family the evidence settles.
        Some(_) => match (net, env) {
            (Some(n), _) if Some(n) == agreed => fault(n, Source::Both),
            (Some(_), Some(_)) if o.trusted => fault(UNKNOWN, Source::None),
            (_, Some(e)) => fault(e, Source::Envelope),
            (Some(n), None) if o.trusted => fault(n, Source::Network),
            (Some(_), None) => fault(UNKNOWN, Source::None),
            (None, None) => (State::Anomaly, None),
        },
        // No baseline: the network's word, unless physics contradicts it.
        None => match (net, env) {
            (Some(n), _) if Some(n) == agreed => fault(n, Source::Both),
            (Some(_), Some(_)) => fault(UNKNOWN, Source::None),
            (Some(n), None) => fault(n, Source::Network),
            (None, _) if o.learning => (State::Learning, None),
            (None, _) => (o.network.clone(), None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Speed;

    fn evidence(family: Option<Family>, source: SpeedSource) -> Evidence {
        Evidence {
            prominence_db: [12.0, 3.0, 2.0],
            z: [9.0, 1.0, 0.5],
            family,
            band_hz: [2000.0, 3500.0],
            speed: Speed {
                rpm: 1750.0,
                confidence: 6.0,
                source,
            },
            line_hz: [104.6, 157.9, 68.8],
        }
    }

    fn opinion(family: Family, reliable: bool) -> EnvelopeOpinion {
        let source = if reliable {
            SpeedSource::Signal
        } else {
            SpeedSource::Nominal
        };
        EnvelopeOpinion {
            family,
            evidence: evidence(Some(family), source),
        }
    }

    fn fault(c: &str) -> State {
        State::Fault { class: c.into() }
    }

    fn verdict(
        network: &State,
        envelope: Option<&EnvelopeOpinion>,
        anomaly: Option<f32>,
        trusted: bool,
    ) -> (State, Option<Source>) {
        decide(&Opinions {
            network,
            envelope,
            anomaly,
            learning: false,
            trusted,
        })
    }

    #[test]
    fn outside_the_normal_the_family_is_named_only_when_the_evidence_settles_it() {
        let outer = opinion(Family::Outer, true);
        let cases = [
            // network, envelope, trusted -> verdict
            (
                fault("outer"),
                Some(&outer),
                false,
                fault("outer"),
                Source::Both,
            ),
            (
                fault("inner"),
                Some(&outer),
                true,
                fault(UNKNOWN),
                Source::None,
            ),
            (
                fault("inner"),
                Some(&outer),
                false,
                fault("outer"),
                Source::Envelope,
            ),
            (
                State::Healthy,
                Some(&outer),
                true,
                fault("outer"),
                Source::Envelope,
            ),
            (fault("inner"), None, true, fault("inner"), Source::Network),
            (fault("inner"), None, false, fault(UNKNOWN), Source::None),
        ];
        for (net, env, trusted, state, source) in cases {
            let v = verdict(&net, env, Some(2.0), trusted);
            assert_eq!(v, (state, Some(source)), "{net:?} {env:?} {trusted}");
        }
        assert_eq!(
            verdict(&State::Uncertain, None, Some(2.0), true),
            (State::Anomaly, None)
        );
        // An envelope at a fallback speed is no evidence on its own.
        let unsure = opinion(Family::Outer, false);
        assert_eq!(
            verdict(&State::Healthy, Some(&unsure), Some(2.0), true),
            (State::Anomaly, None)
        );
    }

    #[test]
    fn within_the_normal_one_source_alone_raises_nothing() {
        let outer = opinion(Family::Outer, true);
        assert_eq!(
            verdict(&State::Healthy, Some(&outer), Some(0.8), true),
            (State::Healthy, None)
        );
        assert_eq!(
            verdict(&fault("outer"), Some(&outer), Some(0.8), true),
            (
                State::Suspect {
                    class: "outer".into()
                },
                None
            )
        );
    }

    #[test]
    fn without_a_baseline_physics_can_only_overrule_the_network() {
        let outer = opinion(Family::Outer, true);
        assert_eq!(
            verdict(&fault("inner"), None, None, true),
            (fault("inner"), Some(Source::Network))
        );
        assert_eq!(
            verdict(&fault("inner"), Some(&outer), None, true),
            (fault(UNKNOWN), Some(Source::None))
        );
        assert_eq!(
            verdict(&fault("outer"), Some(&outer), None, true),
            (fault("outer"), Some(Source::Both))
        );
        assert_eq!(
            verdict(&State::Healthy, Some(&outer), None, true),
            (State::Healthy, None)
        );
    }

    /// What the network alone decided before the envelope joined it still
    /// holds where the envelope has nothing to say.
    #[test]
    fn without_the_envelope_the_learned_normal_overrules_the_network_both_ways() {
        let learning = |net: &State| {
            decide(&Opinions {
                network: net,
                envelope: None,
                anomaly: None,
                learning: true,
                trusted: true,
            })
            .0
        };
        assert_eq!(
            learning(&fault("IR")),
            fault("IR"),
            "a fault shows while learning"
        );
        assert_eq!(learning(&State::Healthy), State::Learning);
        assert_eq!(
            verdict(&State::Uncertain, None, None, true).0,
            State::Uncertain
        );
        assert_eq!(
            verdict(&State::Uncertain, None, Some(1.5), true).0,
            State::Anomaly
        );
        assert_eq!(
            verdict(&State::Uncertain, None, Some(0.5), true).0,
            State::Healthy
        );
        assert_eq!(
            verdict(&State::Healthy, None, Some(1.5), true).0,
            State::Anomaly
        );
        assert!(!State::Suspect { class: "IR".into() }.is_alarm());
        assert!(State::Anomaly.is_alarm() && fault("IR").is_alarm());
    }

    #[test]
    fn the_envelope_opinion_is_a_majority_of_a_full_window() {
        let mut v = EnvelopeVotes::new(4);
        let outer = evidence(Some(Family::Outer), SpeedSource::Signal);
        let none = evidence(None, SpeedSource::Signal);
        v.push(Some(&outer));
        v.push(Some(&outer));
        v.push(Some(&outer));
        assert!(v.opinion().is_none(), "window not full");
        v.push(None);
        let o = v.opinion().expect("3 of 4 name outer");
        assert_eq!((o.family, o.reliable()), (Family::Outer, true));
        v.push(Some(&none));
        assert!(v.opinion().is_none(), "2 of 4 is no majority");
        let nominal = evidence(Some(Family::Outer), SpeedSource::Nominal);
        for _ in 0..4 {
            v.push(Some(&nominal));
        }
        assert!(!v.opinion().expect("outer").reliable());
    }

    #[test]
    fn the_network_is_trusted_only_when_the_user_says_so_and_the_baseline_agrees() {
        assert!(
            !trusted(false, Some(1.0)),
            "calling the healthy normal proves nothing"
        );
        assert!(trusted(true, None), "a baseline of before 0.9");
        assert!(trusted(true, Some(0.95)));
        assert!(
            !trusted(true, Some(0.6)),
            "it called this healthy machine faulty"
        );
    }

    #[test]
    fn agreement_counts_even_at_the_nominal_speed() {
        let unsure = opinion(Family::Inner, false);
        assert_eq!(
            verdict(&fault("inner"), Some(&unsure), Some(2.0), false),
            (fault("inner"), Some(Source::Both))
        );
        assert_eq!(
            verdict(&fault("outer"), Some(&unsure), Some(2.0), false),
            (fault(UNKNOWN), Some(Source::None))
        );
    }
}
