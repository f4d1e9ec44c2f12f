//! Topics and payloads (docs/fleet.md): `drsnd/v1/<site>/<node>/...`, JSON
//! with `"v": 1`. Events and states carry the spool id, unique per node
//! across restarts, so a subscriber that sees one twice (at-least-once
//! delivery after an outage) can tell.

use crate::protocol::{DenoiseMsg, EnvelopeMsg, EventMsg, Hello, SpeedMsg};
use serde::Deserialize;
use serde_json::json;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

impl Topics {
    pub fn new(site: &str, node: &str) -> Self {
        Self {
            base: format!("drsnd/v{VERSION}/{site}/{node}"),
        }
    }
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }
    pub fn meta(&self) -> String {
        format!("{}/meta", self.base)
    }
    pub fn state(&self, stream: &str) -> String {
        format!("{}/{stream}/state", self.base)
    }
    /// Retained: the ISO zone a zone event moved the stream to.
    pub fn zone(&self, stream: &str) -> String {
        format!("{}/{stream}/zone", self.base)
    }
    /// Retained: whether the stream is degrading, with the trend's figures.
    pub fn trend(&self, stream: &str) -> String {
        format!("{}/{stream}/trend", self.base)
    }
    pub fn event(&self, stream: &str) -> String {
        format!("{}/{stream}/event", self.base)
    }
    pub fn frame(&self, stream: &str) -> String {
        format!("{}/{stream}/frame", self.base)
    }
}

/// `status`: online (on connect) or offline (the will, and a clean stop).
pub fn status(online: bool, node: &str, time: f64) -> String {
    let status = if online { "online" } else { "offline" };
    json!({"v": VERSION, "status": status, "node": node, "time": time}).to_string()
}

/// The will: sent by the broker when the node vanishes, so it has no time.
pub fn will(node: &str) -> String {
    json!({"v": VERSION, "status": "offline", "node": node, "reason": "connection lost"})
        .to_string()
}

/// `meta`: what the node runs.
pub fn meta(hello: &Hello, node: &str, site: &str, frames: &str, interval_s: f64) -> String {
    json!({
        "v": VERSION,
        "node": node,
        "site": site,
        "daemon": hello.daemon,
        "model": {
            "name": hello.model.name,
            "version": hello.model.version,
            "sha256": hello.model.sha256,
            "classes": hello.model.classes.iter().map(|c| &c.id).collect::<Vec<_>>(),
        },
        "streams": hello.streams.iter().map(|s| &s.name).collect::<Vec<_>>(),
        "frames": frames,
        "frame_interval_s": interval_s,
    })
    .to_string()
}

/// `<stream>/event`: the socket's event with the spool id.
pub fn event(id: u64, node: &str, e: &EventMsg) -> String {
    let mut v = serde_json::to_value(e).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("v".into(), json!(VERSION));
        o.insert("id".into(), json!(id));
        o.insert("node".into(), json!(node));
    }
    v.to_string()
}

/// `<stream>/state` (retained): the state an event moved the stream to,
/// and for a fault who named its family; `<stream>/zone` and
/// `<stream>/trend` (retained) the same for zone and trend events, the
/// latter with the trend's figures.
pub fn state(id: u64, e: &EventMsg) -> String {
    let mut v = json!({
        "v": VERSION,
        "id": id,
        "stream": e.stream,
        "state": e.to,
        "since": e.since,
        "time": e.time,
    });
    if let (Some(source), Some(o)) = (e.evidence.family_source, v.as_object_mut()) {
        o.insert("family_source".into(), json!(source.as_str()));
    }
    if let (Some(trend), Some(o)) = (e.evidence.trend, v.as_object_mut()) {
        o.insert("trend".into(), json!(trend));
    }
    v.to_string()
}

/// The parts of a frame a summary or a Sparkplug device needs
/// (everything else is skipped).
#[derive(Debug, Deserialize)]
pub struct FrameDigest {
    pub stream: String,
    #[serde(default)]
    pub seq: u64,
    pub time: f64,
    pub label: String,
    pub confidence: f32,
    pub rms: f32,
    #[serde(default)]
    pub family_confidence: Option<f32>,
    #[serde(default)]
    pub crest: Option<f32>,
    #[serde(default)]
    pub speed: Option<SpeedMsg>,
    #[serde(default)]
    pub thresholds: Option<Vec<Vec<f32>>>,
    #[serde(default)]
    pub velocity_rms_mm_s: Option<f32>,
    #[serde(default)]
    pub iso_zone: Option<char>,
    #[serde(default)]
    pub kurtosis: Option<f32>,
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub anomaly: Option<f32>,
    /// Null while the envelope's window fills.
    #[serde(default)]
    pub envelope: Option<EnvelopeMsg>,
    #[serde(default)]
    pub denoise: Option<DenoiseMsg>,
}

/// One stream's frames since the last summary.
#[derive(Debug, Default)]
pub struct Summary {
    frames: u64,
    rms_sum: f64,
    time: f64,
    label: String,
    confidence: f32,
    /// The last frame's family and anomaly score (null without them).
    family: Option<String>,
    anomaly: Option<f32>,
    tau_sum: Vec<f64>,
    /// Velocity: sum and count of the frames that had one, the last zone.
    velocity_sum: f64,
    velocity_n: u64,
    zone: Option<char>,
    /// The last frame's kurtosis (streams with units).
    kurtosis: Option<f32>,
    /// The last envelope family of the interval (streams with rpm and bearing).
    envelope: Option<String>,
    /// Sum and count of the denoiser's input SNR (streams with [denoise]).
    snr_sum: f64,
    snr_n: u64,
}

impl Summary {
    pub fn add(&mut self, f: &FrameDigest) {
        self.frames += 1;
        self.rms_sum += f.rms as f64;
        self.time = f.time;
        self.label.clone_from(&f.label);
        self.confidence = f.confidence;
        self.family.clone_from(&f.family);
        self.anomaly = f.anomaly;
        self.kurtosis = f.kurtosis.or(self.kurtosis);
        if let Some(v) = f.velocity_rms_mm_s {
            self.velocity_sum += v as f64;
            self.velocity_n += 1;
            self.zone = f.iso_zone;
        }
        if let Some(e) = &f.envelope {
            self.envelope = Some(e.family.clone());
        }
        if let Some(snr) = f.denoise.as_ref().and_then(|d| d.snr_db) {
            self.snr_sum += snr as f64;
            self.snr_n += 1;
        }
        if let Some(t) = &f.thresholds {
            self.tau_sum.resize(t.len(), 0.0);
            for (sum, unit) in self.tau_sum.iter_mut().zip(t) {
                *sum += unit.iter().map(|&x| x as f64).sum::<f64>() / unit.len().max(1) as f64;
            }
        }
    }

    /// The payload, and a fresh start; None when no frame came.
    pub fn take(&mut self, stream: &str) -> Option<String> {
        if self.frames == 0 {
            return None;
        }
        let n = self.frames as f64;
        let taus: Vec<f64> = self.tau_sum.iter().map(|s| s / n).collect();
        let out = json!({
            "v": VERSION,
            "stream": stream,
            "time": self.time,
            "frames": self.frames,
            "label": self.label,
            "confidence": self.confidence,
            "family": self.family,
            "anomaly": self.anomaly,
            "rms": self.rms_sum / n,
            "thresholds_mean": taus,
        });
        let mut out = out;
        if self.velocity_n > 0 {
            out["velocity_rms_mm_s"] = json!(self.velocity_sum / self.velocity_n as f64);
            out["iso_zone"] = json!(self.zone.map(String::from));
        }
        if let Some(k) = self.kurtosis {
            out["kurtosis"] = json!(k);
        }
        if let Some(family) = &self.envelope {
            out["envelope"] = json!(family);
        }
        if self.snr_n > 0 {
            out["denoise_snr_db"] = json!(self.snr_sum / self.snr_n as f64);
        }
        *self = Self::default();
        Some(out.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retained_state_says_who_named_a_fault() {
        use crate::monitor::{verdict::Source, Evidence, State, Transition};
        let tr = |to: State, source| Transition {
            from: State::Healthy,
            to,
            since_s: 1.0,
            at_s: 1.5,
            confidence: 0.9,
            evidence: Evidence {
                family_source: source,
                ..Evidence::default()
            },
        };
        let fault = State::Fault {
            class: "inner".into(),
        };
        let e = EventMsg::new("pump".into(), tr(fault, Some(Source::Both)), 100.0);
        let v: serde_json::Value = serde_json::from_str(&state(7, &e)).expect("json");
        assert_eq!(v["family_source"], "network+envelope");
        assert_eq!(v["state"]["class"], "inner");
        let e = EventMsg::new("pump".into(), tr(State::Anomaly, None), 100.0);
        let v: serde_json::Value = serde_json::from_str(&state(8, &e)).expect("json");
        assert!(v.get("family_source").is_none(), "{v}");
    }

    #[test]
    fn a_summary_averages_rms_and_each_units_thresholds() {
        let mut s = Summary::default();
        assert!(s.take("pump").is_none());
        for (rms, tau) in [(1.0, [0.5, 1.5]), (3.0, [1.0, 1.0])] {
            s.add(&FrameDigest {
                stream: "pump".into(),
                seq: 1,
                family_confidence: None,
                crest: None,
                speed: None,
                time: 10.0,
                label: "IR_14".into(),
                confidence: 0.9,
                rms,
                thresholds: Some(vec![tau.to_vec(), vec![2.0]]),
                velocity_rms_mm_s: Some(rms * 2.0),
                iso_zone: Some('C'),
                kurtosis: Some(rms * 4.0),
                family: Some("inner".into()),
                anomaly: Some(rms),
                envelope: Some(EnvelopeMsg {
                    bpfo: 0.0,
                    bpfi: 9.0,
                    bsf: 0.0,
                    family: if rms > 2.0 { "inner" } else { "none" }.into(),
                    band_hz: [2000.0, 3500.0],
                    speed_rpm: 1797.0,
                }),
                denoise: Some(DenoiseMsg {
                    snr_db: Some(rms * 3.0),
                    thresholds: vec![0.1; 4],
                }),
            });
        }
        let v: serde_json::Value =
            serde_json::from_str(&s.take("pump").expect("one")).expect("json");
        assert_eq!(v["frames"], 2);
        assert_eq!(v["rms"], 2.0);
        assert_eq!(v["thresholds_mean"], json!([1.0, 2.0]));
        assert_eq!(v["label"], "IR_14");
        assert_eq!(v["family"], "inner", "the last frame's family");
        assert_eq!(v["anomaly"], 3.0, "and its anomaly score");
        assert_eq!(v["velocity_rms_mm_s"], 4.0);
        assert_eq!(v["iso_zone"], "C");
        assert_eq!(v["kurtosis"], 12.0, "the last frame's kurtosis");
        assert_eq!(v["envelope"], "inner", "the last frame's envelope family");
        assert_eq!(v["denoise_snr_db"], 6.0, "the mean input SNR");
        assert!(s.take("pump").is_none(), "a summary starts afresh");
    }

    #[test]
    fn a_summary_of_frames_without_the_other_analyses_has_no_keys_for_them() {
        let line = r#"{"stream":"fan","time":1.0,"label":"Normal","confidence":0.9,"rms":0.1,
                       "envelope":null,"denoise":null}"#;
        let f: FrameDigest = serde_json::from_str(line).expect("digest");
        let mut s = Summary::default();
        s.add(&f);
        let v: serde_json::Value =
            serde_json::from_str(&s.take("fan").expect("one")).expect("json");
        for key in ["envelope", "denoise_snr_db", "velocity_rms_mm_s"] {
            assert!(v.get(key).is_none(), "{key} in {v}");
        }
    }

    #[test]
    fn topics_follow_the_documented_tree() {
        let t = Topics::new("plant-a", "box-7");
        assert_eq!(t.status(), "drsnd/v1/plant-a/box-7/status");
        assert_eq!(t.state("pump"), "drsnd/v1/plant-a/box-7/pump/state");
        assert_eq!(t.event("pump"), "drsnd/v1/plant-a/box-7/pump/event");
        assert_eq!(t.frame("pump"), "drsnd/v1/plant-a/box-7/pump/frame");
    }
}
