//! One stream as a Sparkplug device: the metrics its DBIRTH declares (a
//! fixed set, null where the stream has no such analysis, so the set never
//! changes and needs no rebirth), the latest values, and which of them
//! changed since the last DDATA.

use super::proto::{datatype as dt, Metric, Value};
use crate::monitor::State;
use crate::protocol::{EventMsg, EventState, SpeedMsg, TrendState, ZoneState};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The parts of a frame the device publishes (everything else is skipped).
#[derive(Debug, Deserialize)]
pub struct SpFrame {
    pub stream: String,
    pub seq: u64,
    pub time: f64,
    pub label: String,
    pub confidence: f32,
    pub rms: f32,
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub family_confidence: Option<f32>,
    #[serde(default)]
    pub thresholds: Option<Vec<Vec<f32>>>,
    #[serde(default)]
    pub velocity_rms_mm_s: Option<f32>,
    #[serde(default)]
    pub iso_zone: Option<char>,
    #[serde(default)]
    pub kurtosis: Option<f32>,
    #[serde(default)]
    pub crest: Option<f32>,
    #[serde(default)]
    pub speed: Option<SpeedMsg>,
    #[serde(default)]
    pub anomaly: Option<f32>,
}

/// Milliseconds since the epoch, as Sparkplug counts time.
pub fn ms(unix_s: f64) -> u64 {
    (unix_s.max(0.0) * 1000.0).round() as u64
}

#[derive(Debug, Default)]
pub struct Device {
    /// Name -> (datatype, value); the set is fixed at the first frame.
    values: BTreeMap<String, (u32, Option<Value>)>,
    /// The machine state before the first frame (from `hello`).
    initial: Option<State>,
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
    pub fn starting_in(state: Option<&State>) -> Self {
        Self {
            initial: state.cloned(),
            ..Self::default()
        }
    }

    pub fn has_frame(&self) -> bool {
        !self.values.is_empty()
    }

    fn set(&mut self, name: &str, datatype: u32, value: Option<Value>) {
        self.values.insert(name.to_string(), (datatype, value));
    }

    /// Takes a frame's values (the event metrics keep theirs).
    pub fn frame(&mut self, f: &SpFrame) {
        if !self.has_frame() {
            // The event metrics exist from birth: the state hello gave,
            // the rest null until an event.
            let state = self.initial.take().map(|s| state_name(&s));
            self.set("state", dt::STRING, text(state.as_deref()));
            self.set("verdict/family", dt::STRING, None);
            self.set("verdict/source", dt::STRING, None);
            self.set("trend/degrading", dt::BOOLEAN, None);
        }
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
            self.set(
                &format!("thresholds/unit{}", i + 1),
                dt::FLOAT,
                float(Some(mean)),
            );
        }
    }

    /// An event's metrics (state, verdict, zone or trend), to send at once.
    pub fn event(&mut self, e: &EventMsg) -> Vec<(String, u32, Option<Value>)> {
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
        out.into_iter()
            .map(|(n, d, v)| {
                if self.values.contains_key(n) {
                    self.set(n, d, v.clone());
                    self.sent.insert(n.to_string(), v.clone());
                }
                (n.to_string(), d, v)
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
        let at = self.at;
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
        let at = self.at;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, rms: f32) -> SpFrame {
        let line = format!(
            r#"{{"stream":"pump","seq":{seq},"time":1700000000.5,"label":"Normal","confidence":0.9,
               "rms":{rms},"thresholds":[[1.0,3.0],[0.5]],"iso_zone":"B","speed":null}}"#
        );
        serde_json::from_str(&line).expect("frame")
    }

    #[test]
    fn a_birth_declares_every_metric_and_data_only_what_changed() {
        let mut d = Device::default();
        d.frame(&frame(1, 0.25));
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
