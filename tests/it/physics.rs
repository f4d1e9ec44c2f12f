//! Physical measures on the real binary: a synthetic 10 mm/s sine in g read
//! back as velocity RMS and ISO zone; a source without units gets none.

use crate::common;

use common::*;
use std::time::Duration;

/// A sine in g whose velocity RMS is `v_mm_s` at `hz`, at 12 kHz.
fn sine_g(hz: f64, v_mm_s: f64, seconds: f64) -> Vec<f32> {
    let a_peak = v_mm_s / 1000.0 * 2f64.sqrt() * 2.0 * std::f64::consts::PI * hz / 9.80665;
    (0..(seconds * 12_000.0) as usize)
        .map(|i| (a_peak * (2.0 * std::f64::consts::PI * hz * i as f64 / 12_000.0).sin()) as f32)
        .collect()
}

#[test]
fn velocity_and_zone_come_with_units_and_not_without() {
    let dir = tempfile::tempdir().expect("tmp");
    let g = dir.path().join("g.wav");
    write_wav_f32(&g, 12_000, &sine_g(50.0, 10.0, 4.0));
    // The same signal in volts from a 100 mV/g sensor.
    let volts: Vec<f32> = sine_g(500.0, 2.0, 4.0).iter().map(|x| x * 0.1).collect();
    let v = dir.path().join("v.wav");
    write_wav_f32(&v, 12_000, &volts);
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n\
             [[source]]\nkind = \"wav\"\npath = \"{g}\"\nstreams = [\"in-g\"]\nunits = \"g\"\n\
             [[source]]\nkind = \"wav\"\npath = \"{v}\"\nstreams = [\"in-v\"]\nunits = \"V\"\nsensitivity = 100.0\n\
             [[source]]\nkind = \"wav\"\npath = \"{g}\"\nstreams = [\"bare\"]\n",
            model().display(),
            g = g.display(),
            v = v.display()
        ),
    )
    .expect("config");
    let d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let mut c = d.connect();
    let hello = c.until("hello");
    let units: Vec<_> = hello["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s["units"].clone())
        .collect();
    assert_eq!(
        units,
        vec![
            serde_json::json!("g"),
            serde_json::json!("V at 100 mV/g"),
            serde_json::Value::Null
        ]
    );
    let want = (4 * 12_000 - 2048) / 512 + 1;
    let mut last = std::collections::HashMap::new();
    let mut seen = 0;
    let t0 = std::time::Instant::now();
    while seen < 3 * want && t0.elapsed() < Duration::from_secs(20) {
        let m = c.next().expect("daemon talking");
        if m["type"] == "frame" {
            seen += 1;
            let s = m["stream"].as_str().unwrap_or("").to_string();
            if s == "bare" {
                assert!(
                    m.get("velocity_rms_mm_s").is_none() && m.get("crest").is_none(),
                    "{m}"
                );
            } else if m["seq"].as_u64() < Some(28) {
                // The window of 16384 samples is full at the end of frame 28.
                assert!(m["velocity_rms_mm_s"].is_null(), "{m}");
            }
            last.insert(s, m);
        }
    }
    assert_eq!(
        seen,
        3 * want,
        "every frame of the three streams (real time, read from the start)"
    );
    let vel = |s: &str| last[s]["velocity_rms_mm_s"].as_f64().expect("velocity");
    assert!((vel("in-g") - 10.0).abs() <= 0.2, "in g: {}", vel("in-g"));
    assert_eq!(last["in-g"]["iso_zone"], "D");
    assert!((vel("in-v") - 2.0).abs() <= 0.05, "in V: {}", vel("in-v"));
    assert_eq!(last["in-v"]["iso_zone"], "B");
    let crest = last["in-g"]["crest"].as_f64().expect("crest");
    // 8.5 periods in a frame: its mean is not quite zero.
    assert!((crest - 2f64.sqrt()).abs() < 0.05, "sine crest {crest}");
}

#[test]
fn classify_with_units_prints_the_same_measures_offline() {
    let dir = tempfile::tempdir().expect("tmp");
    let g = dir.path().join("g.wav");
    write_wav_f32(&g, 12_000, &sine_g(500.0, 3.0, 3.0));
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("classify")
            .arg(&g)
            .args(args)
            .output()
            .expect("drsnd classify")
    };
    let out = run(&["--json", "--units", "g"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(validate)
        .filter(common::is_frame)
        .collect();
    let last = frames.last().expect("frames");
    let v = last["velocity_rms_mm_s"].as_f64().expect("velocity");
    assert!((v - 3.0).abs() <= 0.06, "{v} mm/s");
    assert_eq!(last["iso_zone"], "C");
    assert!(
        frames[0]["velocity_rms_mm_s"].is_null(),
        "the first frames have no full window"
    );
    let plain = run(&["--json"]);
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("velocity"),
        "no units, no velocity"
    );
    for bad in [
        &["--units", "V"][..],
        &["--sensitivity", "100"],
        &["--units", "V", "--sensitivity=-1"],
    ] {
        let out = run(bad);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--"),
            "names the flag"
        );
    }
}

/// Zone C and D are events of their own (whatever the network says), debounced like the
/// machine state; moving back to B clears them; the machine's own state is untouched.
#[test]
fn zones_c_and_d_raise_zone_events_and_clear() {
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("sensor.fifo");
    mkfifo(&fifo);
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[[source]]\nkind = \"raw\"\npath = \"{}\"\nformat = \"f32le\"\n\
             rate = 12000\nstreams = [\"fan\"]\nunits = \"g\"\n",
            model().display(),
            fifo.display()
        ),
    )
    .expect("config");
    let d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let mut c = d.connect();
    c.send("{\"types\":[\"event\",\"status\"]}\n");
    let steps = [(2.0, "B"), (3.6, "C"), (8.0, "D"), (2.0, "B")];
    let x: Vec<f32> = steps.iter().flat_map(|s| sine_g(80.0, s.0, 4.0)).collect();
    let writer = feed_fifo(&fifo, x, false);
    let mut zone_events = Vec::new();
    let t0 = std::time::Instant::now();
    let mut status = serde_json::Value::Null;
    while zone_events.len() < 3 && t0.elapsed() < Duration::from_secs(60) {
        let m = c.next().expect("daemon talking");
        if m["type"] == "status" {
            status = m;
        } else if m["to"]["state"] == "iso-zone" {
            zone_events.push(m);
        } else {
            assert_ne!(m["from"]["state"], "iso-zone", "a machine event: {m}");
        }
    }
    writer.join().expect("fed");
    let got: Vec<(String, String, f64)> = zone_events
        .iter()
        .map(|e| {
            (
                e["from"]["zone"].as_str().unwrap_or("-").to_string(),
                e["to"]["zone"].as_str().unwrap_or("-").to_string(),
                e["stream_time_s"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    eprintln!("zone events: {got:?}");
    let pairs: Vec<(&str, &str)> = got.iter().map(|g| (g.0.as_str(), g.1.as_str())).collect();
    assert_eq!(
        pairs,
        [("B", "C"), ("C", "D"), ("D", "B")],
        "{zone_events:#?}"
    );
    for (i, (_, _, t)) in got.iter().enumerate() {
        let start = 4.0 * (i + 1) as f64;
        assert!(
            (start..start + 2.5).contains(t),
            "zone event {i} at {t:.2} s for a step at {start} s"
        );
        let v = zone_events[i]["evidence"]["mean_velocity_mm_s"]
            .as_f64()
            .expect("velocity");
        assert!(v > 0.5, "{v}");
    }
    if let Some(m) = status["streams"][0]["machine"]["state"].as_str() {
        assert_ne!(m, "iso-zone");
    }
}
