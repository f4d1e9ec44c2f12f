//! The ISO 20816 zone as an alarm of its own: a machine vibrating in zone
//! C (limited operation) or D (damage likely) raises an `event` whatever
//! the network says, debounced like the machine state. Moves between A
//! and B are not events (both are fine to run); the zone letter there is
//! only kept so the next event says where the machine came from.

use super::{Tally, Transition};
use crate::report::Report;

/// The ISO zone a zone event leads from or to; None before the first zone
/// was known. Not a machine state: status, hello and the state file never
/// hold one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub Option<char>);

impl Zone {
    pub fn name(&self) -> String {
        format!("iso-zone({})", self.0.unwrap_or('?'))
    }
}

/// 0: A or B, 1: C, 2: D.
fn level(zone: char) -> u8 {
    match zone {
        'C' => 1,
        'D' => 2,
        _ => 0,
    }
}

#[derive(Default)]
pub struct ZoneWatch {
    /// The zone last confirmed (or, while calm, last seen); None before any.
    current: Option<char>,
    /// A zone of another level, and when it was first seen.
    candidate: Option<(char, f64)>,
    tally: Tally,
}

impl ZoneWatch {
    /// One frame's zone (None while the velocity window fills or after a
    /// gap); returns the zone event it completes, if any.
    pub fn frame(
        &mut self,
        report: &Report,
        t_s: f64,
        raise_after_s: f64,
        clear_after_s: f64,
    ) -> Option<Transition<Zone>> {
        let phys = report.physical.as_ref()?;
        let Some(zone) = phys.iso_zone else {
            self.candidate = None;
            return None;
        };
        let now = self.current.map_or(0, level);
        if level(zone) == now {
            if now == 0 {
                self.current = Some(zone);
            }
            self.candidate = None;
            self.tally = Tally::default();
            return None;
        }
        let since = match self.candidate {
            Some((c, since)) if level(c) == level(zone) => since,
            _ => {
                self.tally = Tally::default();
                t_s
            }
        };
        self.candidate = Some((zone, since));
        self.tally.add(&report.prediction, report.anomaly);
        if let Some(v) = phys.velocity_rms_mm_s {
            self.tally.add_velocity(v);
        }
        let hold = if level(zone) > now {
            raise_after_s
        } else {
            clear_after_s
        };
        if t_s - since < hold {
            return None;
        }
        let from = Zone(self.current);
        self.current = Some(zone);
        self.candidate = None;
        Some(Transition {
            from,
            to: Zone(Some(zone)),
            since_s: since,
            at_s: t_s,
            confidence: 1.0,
            evidence: std::mem::take(&mut self.tally).evidence(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Physical, Prediction};

    fn report(zone: char, v: f32) -> Report {
        Report {
            prediction: Prediction {
                probs: vec![1.0, 0.0],
                thresholds: vec![vec![0.1]],
                ..Prediction::default()
            },
            physical: Some(Physical {
                velocity_rms_mm_s: Some(v),
                iso_zone: Some(zone),
                crest: 1.4,
                kurtosis: 1.5,
                envelope: None,
                speed: None,
            }),
            ..Report::default()
        }
    }

    #[test]
    fn zone_c_and_d_are_raised_held_and_cleared_and_a_b_moves_are_not_events() {
        let mut w = ZoneWatch::default();
        let mut events = Vec::new();
        let zones = [
            ('A', 20),
            ('B', 20),
            ('C', 5),
            ('B', 5),
            ('C', 30),
            ('D', 30),
            ('B', 30),
        ];
        let mut t = 0.0;
        for (z, n) in zones {
            for _ in 0..n {
                t += 0.05;
                if let Some(tr) = w.frame(&report(z, 3.0), t, 0.5, 0.8) {
                    events.push((tr.from.name(), tr.to.name(), tr.evidence.mean_velocity_mm_s));
                }
            }
        }
        let names: Vec<(String, String)> =
            events.iter().map(|e| (e.0.clone(), e.1.clone())).collect();
        let want = [
            ("iso-zone(B)", "iso-zone(C)"),
            ("iso-zone(C)", "iso-zone(D)"),
            ("iso-zone(D)", "iso-zone(B)"),
        ];
        assert_eq!(
            names,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec(),
            "a 0.25 s excursion into C is not an event"
        );
        assert_eq!(events[0].2, Some(3.0));
    }
}
