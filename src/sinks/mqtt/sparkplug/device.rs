//! One stream as a Sparkplug device: the metrics its DBIRTH declares (a
//! fixed set, known from `hello` before the first frame, null where the
//! stream has no such analysis), the latest values, and which of them
//! changed since the last DDATA.

use super::proto::{datatype as dt, Metric, Value};
use crate::monitor::State;
use crate::protocol::{EventMsg, EventState, TrendState, ZoneState};
use crate::sinks::mqtt::topics::FrameDigest;
use std::collections::BTreeMap;

/// Milliseconds since the epoch, as Sparkplug counts time.
pub fn ms(unix_s: f64) -> u64 {
    (unix_s.max(0.0) * 1000.0).round() as u64
}

#[derive(Debug, Default)]
pub struct Device {
    /// Name -> (datatype, value): every metric the DBIRTH declares.
    values: BTreeMap<String, (u32, Option<Value>)>,
    /// The values the consumer has (from the DBIRTH or a DDATA).
    sent: BTreeMap<String, Option<Value>>,
    /// The time of the latest frame (ms).
    at: u64,
    /// Whether a frame came since the last DDATA.
    fresh: bool,
}

fn float(v: Option<f32>) -> Option<Value> {
    v.filter(|x| x.is_finite()).map(Value::Float)
}

fn text(v: Option<&str>) -> Option<Value> {
    v.map(|s| Value::String(s.to_string()))
}

/// A machine state's name as the socket spells it (`no-signal`, ...).
pub fn state_name(s: &State) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(String::from))
        .unwrap_or_default()
}

impl Device {
    /// Every metric, null but the machine state `hello` gave; `units`:
    /// the model's shrinkage units.
    pub fn new(units: usize, state: Option<&State>) -> Self {
        let mut d = Self::default();
        let state = state.map(state_name);
        d.set("state", dt::STRING, text(state.as_deref()));
        for (name, t) in [
            ("verdict/family", dt::STRING),
            ("verdict/source", dt::STRING),
            ("trend/degrading", dt::BOOLEAN),
            ("frame/seq", dt::UINT64),
            ("class", dt::STRING),
            ("confidence", dt::FLOAT),
            ("family", dt::STRING),
            ("family_confidence", dt::FLOAT),
            ("rms", dt::FLOAT),
            ("anomaly", dt::FLOAT),
            ("velocity_rms_mm_s", dt::FLOAT),
            ("iso_zone", dt::STRING),
            ("kurtosis", dt::FLOAT),
            ("crest", dt::FLOAT),
            ("speed_rpm", dt::FLOAT),
        ] {
            d.set(name, t, None);
        }
        for i in 0..units {
            d.set(&unit_metric(i), dt::FLOAT, None);
        }
        d
    }

    fn set(&mut self, name: &str, datatype: u32, value: Option<Value>) {
        self.values.insert(name.to_string(), (datatype, value));
    }

    /// Takes a frame's values (the event metrics keep theirs); true if it
    /// brought a metric the DBIRTH did not declare (a reload swapped in a
    /// model with more units): the device must be born again.
    pub fn frame(&mut self, f: &FrameDigest) -> bool {
        let before = self.values.len();
        self.at = ms(f.time);
        self.fresh = true;
        self.set("frame/seq", dt::UINT64, Some(Value::Long(f.seq)));
        self.set("class", dt::STRING, text(Some(&f.label)));
        self.set("confidence", dt::FLOAT, float(Some(f.confidence)));
        self.set("family", dt::STRING, text(f.family.as_deref()));
        self.set("family_confidence", dt::FLOAT, float(f.family_confidence));
        self.set("rms", dt::FLOAT, float(Some(f.rms)));
        self.set("anomaly", dt::FLOAT, float(f.anomaly));
        self.set("velocity_rms_mm_s", dt::FLOAT, float(f.velocity_rms_mm_s));
        let zone = f.iso_zone.map(String::from);
        self.set("iso_zone", dt::STRING, text(zone.as_deref()));
        self.set("kurtosis", dt::FLOAT, float(f.kurtosis));
        self.set("crest", dt::FLOAT, float(f.crest));
        self.set(
            "speed_rpm",
            dt::FLOAT,
            float(f.speed.as_ref().map(|s| s.rpm)),
        );
        for (i, unit) in f.thresholds.iter().flatten().enumerate() {
            let mean = unit.iter().sum::<f32>() / unit.len().max(1) as f32;
            self.set(&unit_metric(i), dt::FLOAT, float(Some(mean)));
        }
        self.values.len() != before
    }

    /// An event's metrics (state, verdict, zone or trend), to send at once.
    /// `historical`: raised while the broker was away, replayed now.
    pub fn event(&mut self, e: &EventMsg, historical: bool) -> Vec<Metric> {
        let out: Vec<(&str, u32, Option<Value>)> = match &e.to {
            EventState::Machine(s) => {
                let family = match s {
                    State::Fault { class } => Some(class.as_str()),
                    _ => None,
                };
                let source = e.evidence.family_source.map(|s| s.as_str());
                vec![
                    ("state", dt::STRING, text(Some(&state_name(s)))),
                    ("verdict/family", dt::STRING, text(family)),
                    ("verdict/source", dt::STRING, text(source)),
                ]
            }
            EventState::Zone(ZoneState::IsoZone { zone }) => {
                vec![("iso_zone", dt::STRING, text(zone.as_deref()))]
            }
            EventState::Trend(t) => vec![(
                "trend/degrading",
                dt::BOOLEAN,
                Some(Value::Boolean(*t == TrendState::Degrading)),
            )],
        };
        let at = ms(e.time);
        out.into_iter()
            .map(|(n, d, v)| {
                self.set(n, d, v.clone());
                self.sent.insert(n.to_string(), v.clone());
                Metric {
                    is_historical: historical.then_some(true),
                    ..Metric::new(n, d, v, at)
                }
            })
            .collect()
    }

    /// Every metric, for the DBIRTH; the consumer then has them all.
    pub fn birth(&mut self) -> Vec<Metric> {
        self.sent = self
            .values
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect();
        self.fresh = false;
        let at = self.time();
        self.values
            .iter()
            .map(|(k, (d, v))| Metric::new(k, *d, v.clone(), at))
            .collect()
    }

    /// The metrics that changed since the consumer last heard (report by
    /// exception); None when no frame came since.
    pub fn changes(&mut self) -> Option<Vec<Metric>> {
        if !std::mem::take(&mut self.fresh) {
            return None;
        }
        let at = self.time();
        let mut out = Vec::new();
        for (k, (d, v)) in &self.values {
            if self.sent.get(k) != Some(v) {
                self.sent.insert(k.clone(), v.clone());
                out.push(Metric::new(k, *d, v.clone(), at));
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

impl Device {
    /// The latest frame's time, or now before the first.
    fn time(&self) -> u64 {
        if self.at > 0 {
            self.at
        } else {
            ms(crate::clock::wall_s())
        }
    }
}

/// `thresholds/unit1`.. (1-based, as a user counts units).
fn unit_metric(i: usize) -> String {
    format!("thresholds/unit{}", i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, rms: f32) -> FrameDigest {
        let line = format!(
            r#"{{"stream":"pump","seq":{seq},"time":1700000000.5,"label":"Normal","confidence":0.9,
               "rms":{rms},"thresholds":[[1.0,3.0],[0.5]],"iso_zone":"B","speed":null}}"#
        );
        serde_json::from_str(&line).expect("frame")
    }

    #[test]
    fn a_birth_declares_every_metric_and_data_only_what_changed() {
        let mut d = Device::new(2, Some(&State::Healthy));
        let before = d.birth();
        let state = before.iter().find(|m| m.name.as_deref() == Some("state"));
        assert_eq!(
            state.and_then(|m| m.value.clone()),
            Some(Value::String("healthy".into()))
        );
        assert!(!d.frame(&frame(1, 0.25)), "the frame fits the declared set");
        let birth = d.birth();
        let names: Vec<_> = birth.iter().filter_map(|m| m.name.clone()).collect();
        for want in [
            "state",
            "class",
            "velocity_rms_mm_s",
            "thresholds/unit1",
            "thresholds/unit2",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        let unit1 = birth
            .iter()
            .find(|m| m.name.as_deref() == Some("thresholds/unit1"));
        assert_eq!(unit1.and_then(|m| m.value.clone()), Some(Value::Float(2.0)));
        let velocity = birth
            .iter()
            .find(|m| m.name.as_deref() == Some("velocity_rms_mm_s"));
        assert_eq!(
            velocity.and_then(|m| m.is_null),
            Some(true),
            "no velocity: null"
        );
        assert!(d.changes().is_none(), "nothing new since the birth");
        d.frame(&frame(2, 0.25));
        let changed: Vec<_> = d
            .changes()
            .expect("a frame came")
            .into_iter()
            .filter_map(|m| m.name)
            .collect();
        assert_eq!(changed, vec!["frame/seq".to_string()], "only the seq moved");
        assert_eq!(birth[0].timestamp, Some(1_700_000_000_500));
    }
}
