//! Offline equals live: one recording through the daemon (a wav source at
//! real-time pace, so that the subscriber, connected after the start, sees
//! the first frame; its outcome would be the same as fast) and through `drsnd classify --config --stream --json`
//! gives the same frame lines (every field but the wall-clock `time` and
//! `latency_ms`) and the same event lines (but their wall-clock `time` and
//! `since`, and the live snapshot's path), for a stream with units, speed,
//! bearing, a baseline and the denoiser.

use crate::common;

use common::{cwru, healthy_12k, read_wav_f32, write_wav_f32, Daemon, BIN};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Healthy (the second half of the healthy recording, learned from the
/// first) -> inner-race fault -> healthy, at 12 kHz.
fn spliced(dir: &Path) -> std::path::PathBuf {
    let healthy = healthy_12k();
    let (learn, rest) = healthy.split_at(healthy.len() / 2);
    write_wav_f32(&dir.join("learn.wav"), 12_000, learn);
    let (rate, fault) = read_wav_f32(&cwru("1797_IR_14.wav"));
    assert_eq!(rate, 12_000);
    let mut x = rest.to_vec();
    x.extend_from_slice(&fault[..5 * 12_000]);
    x.extend_from_slice(rest);
    x.extend_from_slice(rest);
    let path = dir.join("spliced.wav");
    write_wav_f32(&path, 12_000, &x);
    path
}

fn config(dir: &Path, wav: &Path) -> std::path::PathBuf {
    let root = common::root();
    let text = format!(
        r#"model = "{model}"
[monitor]
state-dir = "{state}"
raise-after-s = 1.0
clear-after-s = 2.0
[denoise]
model = "{denoiser}"
[[source]]
kind = "wav"
path = "{wav}"
streams = ["pump"]
units = "g"
rpm = 1797
bearing = {{ bpfo = 3.5848, bpfi = 5.4152, bsf = 2.357, ftf = 0.39828 }}
"#,
        model = root.join("models/drsn-cw-cwru10.json").display(),
        denoiser = root.join("models/drsn-denoise.json").display(),
        state = dir.join("state").display(),
        wav = wav.display(),
    );
    let path = dir.join("drsnd.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn run_ok(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("drsnd runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every frame and event line the daemon publishes for the recording.
fn live(cfg: &Path) -> Vec<Value> {
    let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let mut c = d.connect();
    let mut lines = Vec::new();
    let mut frames = 0u64;
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "replay did not end"
        );
        let m = c.next().expect("daemon open");
        match m["type"].as_str() {
            Some("frame") => {
                frames += 1;
                lines.push(m);
            }
            Some("event") => lines.push(m),
            Some("status") => {
                let s = &m["streams"][0];
                if s["source_state"] == "ended" && s["frames"].as_u64() == Some(frames) {
                    assert_eq!(s["dropped_frames"], 0, "{s}");
                    break;
                }
            }
            _ => {}
        }
    }
    assert_eq!(d.stop().code(), Some(0));
    lines
}

/// A line without the fields that depend on the wall clock or the box.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    let o = v.as_object_mut().expect("object");
    for key in ["time", "latency_ms", "since", "snapshot"] {
        o.remove(key);
    }
    v
}

#[test]
fn a_recording_gives_the_same_frames_and_events_live_and_offline() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = spliced(dir.path());
    std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
    let baseline = dir.path().join("state/pump.baseline.json");
    run_ok(&[
        "baseline",
        "learn",
        "--out",
        baseline.to_str().expect("utf-8"),
        dir.path().join("learn.wav").to_str().expect("utf-8"),
    ]);
    let cfg = config(dir.path(), &wav);
    let live = live(&cfg);
    let offline: Vec<Value> = run_ok(&[
        "classify",
        "--config",
        cfg.to_str().expect("utf-8"),
        "--stream",
        "pump",
        "--json",
        wav.to_str().expect("utf-8"),
    ])
    .lines()
    .map(common::validate)
    .collect();

    let events = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .filter(|m| m["type"] == "event")
            .map(comparable)
            .collect()
    };
    let (live_events, offline_events) = (events(&live), events(&offline));
    let states: Vec<String> = offline_events
        .iter()
        .map(|e| format!("{}", e["to"]))
        .collect();
    eprintln!("offline events: {states:?}");
    // The recording is one the monitor must act on: an alarm, then healthy.
    let alarm = offline_events
        .iter()
        .position(|e| e["to"]["state"] == "fault" && e["to"]["class"] == "inner")
        .unwrap_or_else(|| panic!("no fault(inner) among {states:?}"));
    // Named by the verdict from both opinions, each stated in the event.
    let ev = &offline_events[alarm]["evidence"];
    assert_eq!(ev["family_source"], "network+envelope", "{ev}");
    assert_eq!(ev["network"]["family"], "inner", "{ev}");
    assert_eq!(ev["envelope"]["family"], "inner", "{ev}");
    let line = ev["envelope"]["line_hz"].as_f64().unwrap_or(0.0);
    let rpm = ev["envelope"]["speed_rpm"].as_f64().unwrap_or(0.0);
    assert!(
        (line / (5.4152 * rpm / 60.0) - 1.0).abs() < 1e-3 && (rpm / 1797.0 - 1.0).abs() < 0.05,
        "the BPFI line at the speed used: {ev}"
    );
    assert!(
        offline_events[alarm..]
            .iter()
            .any(|e| e["to"]["state"] == "healthy"),
        "never healthy again: {states:?}"
    );
    assert_eq!(live_events, offline_events, "events live against offline");
    // Offline, times are stream times; live the same span of wall clock.
    for (l, o) in live
        .iter()
        .filter(|m| m["type"] == "event")
        .zip(offline.iter().filter(|m| m["type"] == "event"))
    {
        let span =
            |e: &Value| e["time"].as_f64().unwrap_or(0.0) - e["since"].as_f64().unwrap_or(0.0);
        assert!((span(l) - span(o)).abs() < 1e-3, "{l} against {o}");
        assert_eq!(o["time"], o["stream_time_s"]);
    }

    let (lf, of): (Vec<Value>, Vec<Value>) = (
        live.iter()
            .filter(|m| m["type"] == "frame")
            .map(comparable)
            .collect(),
        offline
            .iter()
            .filter(|m| m["type"] == "frame")
            .map(comparable)
            .collect(),
    );
    assert!(lf.len() > 200, "{} frames", lf.len());
    assert_eq!(lf.len(), of.len(), "frame counts");
    for (l, o) in lf.iter().zip(&of) {
        assert_eq!(l, o, "frame {} live against offline", l["seq"]);
    }
    // Every analysis was on: denoiser, baseline, physics with the envelope.
    let last = of.last().expect("frames");
    for key in ["denoise", "anomaly", "velocity_rms_mm_s", "envelope"] {
        assert!(!last[key].is_null(), "{key} missing: {last}");
    }
    // Both say it in the same order: each event just before its frame.
    let order = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|m| format!("{}{}", m["type"], m["seq"]))
            .collect()
    };
    assert_eq!(order(&live), order(&offline));
}
