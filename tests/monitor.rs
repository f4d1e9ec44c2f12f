//! Machine state through the real daemon (raw FIFO source, fed by the test
//! as fast as the daemon reads; debouncing runs on stream time, so the
//! outcome is the same as in real time).

mod common;

use common::{cwru, read_wav_f32, Daemon};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const RATE: f64 = 12000.0;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().expect("utf8")).expect("cstr");
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn healthy_12k() -> Vec<f32> {
    let (_, x) = read_wav_f32(&cwru("1797_Normal_48k.wav"));
    let mut r = drsnd::resample::Resampler::new(48000, 12000).expect("resampler");
    let mut out = Vec::new();
    r.push(&x, |y| out.extend_from_slice(y)).expect("resample");
    out
}

fn fault(file: &str, seconds: f64) -> Vec<f32> {
    let (_, x) = read_wav_f32(&cwru(file));
    x[..(seconds * RATE) as usize].to_vec()
}

fn config(dir: &Path, fifo: &Path, state_dir: Option<&Path>) -> std::path::PathBuf {
    config_with(dir, fifo, state_dir, "")
}

/// `extra`: more tables (e.g. [snapshots]) for the config.
fn config_with(
    dir: &Path,
    fifo: &Path,
    state_dir: Option<&Path>,
    extra: &str,
) -> std::path::PathBuf {
    let cfg = dir.join("drsnd.toml");
    let state = state_dir
        .map(|d| format!("state-dir = \"{}\"\n", d.display()))
        .unwrap_or_default();
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n{extra}\n[socket]\nstatus-interval-ms = 300\n[monitor]\n{state}\
             [[source]]\nkind = \"raw\"\npath = \"{}\"\nformat = \"f32le\"\nrate = 12000\nstreams = [\"bearing\"]\n",
            common::model().display(),
            fifo.display()
        ),
    )
    .expect("config");
    cfg
}

/// Feeds samples into the FIFO from a thread (the writer closes at the end).
fn feed(fifo: &Path, x: Vec<f32>) -> std::thread::JoinHandle<()> {
    feed_at(fifo, x, false)
}

/// As `feed`; `realtime` paces it like a sensor (100 ms blocks).
fn feed_at(fifo: &Path, x: Vec<f32>, realtime: bool) -> std::thread::JoinHandle<()> {
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open fifo");
        let block = if realtime { 1200 } else { x.len().max(1) };
        for chunk in x.chunks(block) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            f.write_all(&bytes).expect("feed");
            if realtime {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

/// Collects events until `done` says stop (or 60 s pass).
fn events_until(c: &mut common::Client, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut ev = Vec::new();
    let t0 = Instant::now();
    while !done(&ev) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "timed out; events so far: {ev:#?}"
        );
        let m = c.next().expect("daemon alive");
        if m["type"] == "event" {
            ev.push(m);
        }
    }
    ev
}

fn name(s: &Value) -> String {
    match s["state"].as_str() {
        Some("fault") => format!("fault({})", s["class"].as_str().unwrap_or("")),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

#[test]
fn healthy_ir14_healthy_or21_gives_exactly_those_transitions_in_time_then_no_signal() {
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("sensor.fifo");
    mkfifo(&fifo);
    let spool = dir.path().join("spool");
    let snap = format!(
        "[snapshots]\ndir = \"{}\"\npre-s = 3.0\npost-s = 2.0\n",
        spool.display()
    );
    let cfg = config_with(dir.path(), &fifo, None, &snap);
    let d = Daemon::start(&["--config", cfg.to_str().expect("utf8")]);
    let mut c = d.connect();
    c.send("{\"types\":[\"event\",\"status\"]}\n");
    let healthy = healthy_12k();
    let segments: Vec<(&str, Vec<f32>)> = vec![
        ("healthy", healthy.clone()),
        ("fault(IR_14)", fault("1797_IR_14.wav", 6.0)),
        ("healthy", healthy),
        ("fault(OR6_21)", fault("1797_OR6_21.wav", 6.0)),
    ];
    let mut stream = Vec::new();
    let mut changes = Vec::new();
    for (label, x) in &segments {
        changes.push((label.to_string(), stream.len() as f64 / RATE));
        stream.extend_from_slice(x);
    }
    let writer = feed(&fifo, stream);
    let ev = events_until(&mut c, |e| e.len() >= 4);
    writer.join().expect("fed");
    let got: Vec<(String, String)> = ev
        .iter()
        .map(|e| (name(&e["from"]), name(&e["to"])))
        .collect();
    let want = vec![
        ("starting".to_string(), "healthy".to_string()),
        ("healthy".into(), "fault(IR_14)".into()),
        ("fault(IR_14)".into(), "healthy".into()),
        ("healthy".into(), "fault(OR6_21)".into()),
    ];
    assert_eq!(got, want, "{ev:#?}");
    for (e, (label, at)) in ev.iter().zip(&changes).skip(1) {
        let t = e["stream_time_s"].as_f64().expect("t");
        eprintln!(
            "{label}: true change at {at:.2} s, confirmed at {t:.2} s (+{:.2} s)",
            t - at
        );
        assert!(
            t >= *at && t - at <= 1.5,
            "{label}: confirmed at {t:.2} s for a change at {at:.2} s"
        );
        let ev = &e["evidence"];
        assert!(ev["frames"].as_u64() > Some(0));
        assert_eq!(ev["mean_thresholds"].as_array().map(Vec::len), Some(6));
        // Every fault has its snapshot, and the snapshot holds the change.
        if e["to"]["state"] == "fault" {
            let wav = std::path::PathBuf::from(
                e["snapshot"]
                    .as_str()
                    .expect("fault event names its snapshot"),
            );
            let t0 = Instant::now();
            while !wav.with_extension("json").exists() && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let side: Value = serde_json::from_str(
                &std::fs::read_to_string(wav.with_extension("json")).expect("sidecar"),
            )
            .expect("json");
            let (a, b) = (
                side["start_stream_time_s"].as_f64().expect("start"),
                side["end_stream_time_s"].as_f64().expect("end"),
            );
            assert!(
                a < *at && *at < b,
                "{label}: snapshot {a:.2}..{b:.2} s misses the change at {at:.2} s"
            );
            let (rate, x) = read_wav_f32(&wav);
            assert_eq!(rate, 12000);
            assert!(
                (x.len() as f64 / RATE - (b - a)).abs() < 0.01,
                "{} samples for {a:.2}..{b:.2}",
                x.len()
            );
            assert!(side["frames"].as_array().is_some_and(|f| f.len() > 50));
        }
    }

    // The writer is gone: no samples, so no signal (never a fault).
    let ev = events_until(&mut c, |e| !e.is_empty());
    assert_eq!(name(&ev[0]["to"]), "no-signal", "{ev:#?}");
    assert!(ev[0]["to"]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("no samples"));

    // Silence, then a flat-lined sensor: still no signal, no fault.
    let mut quiet = vec![0f32; 36000];
    quiet.extend(vec![0.7f32; 36000]);
    // Then the machine again: recovery to the right state.
    quiet.extend(fault("1797_IR_14.wav", 5.0));
    let writer = feed(&fifo, quiet);
    let ev = events_until(&mut c, |e| {
        e.iter().any(|x| name(&x["to"]).starts_with("fault"))
    });
    writer.join().expect("fed");
    for e in &ev[..ev.len() - 1] {
        assert_eq!(name(&e["to"]), "no-signal", "{ev:#?}");
    }
    let last = ev.last().expect("an event");
    assert_eq!(name(&last["from"]), "no-signal");
    assert_eq!(name(&last["to"]), "fault(IR_14)");
    let st = c.until("status");
    assert_eq!(name(&st["streams"][0]["machine"]), "fault(IR_14)");
}

#[test]
fn a_fault_known_before_sigkill_is_not_raised_again_after_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let state_dir = dir.path().join("state");
    let fifo = dir.path().join("sensor.fifo");
    mkfifo(&fifo);
    let cfg = config(dir.path(), &fifo, Some(&state_dir));
    let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf8")]);
    let mut c = d.connect();
    c.send("{\"types\":[\"event\"]}\n");
    let w = feed(&fifo, fault("1797_IR_14.wav", 4.0));
    let ev = events_until(&mut c, |e| {
        e.iter().any(|x| name(&x["to"]) == "fault(IR_14)")
    });
    w.join().expect("fed");
    assert!(state_dir.join("bearing.state.json").exists());
    d.child.kill().expect("SIGKILL");
    d.child.wait().expect("reaped");
    drop(ev);

    // Same input after the restart: the state is known at once, no new event.
    let _ = std::fs::remove_file(&d.socket);
    let d2 = Daemon::start_at(
        Some(d.socket.clone()),
        &["--config", cfg.to_str().expect("utf8")],
        &[],
    );
    let mut c2 = d2.connect();
    let hello = c2.until("hello");
    assert_eq!(
        name(&hello["streams"][0]["machine"]),
        "fault(IR_14)",
        "{hello}"
    );
    c2.send("{\"types\":[\"event\",\"status\"]}\n");
    let w = feed_at(&fifo, fault("1797_IR_14.wav", 6.0), true);
    let t0 = Instant::now();
    let mut statuses = 0;
    while t0.elapsed() < Duration::from_secs(4) {
        let m = c2.next().expect("alive");
        assert_ne!(m["type"], "event", "a second alarm after restart: {m}");
        if m["type"] == "status" {
            statuses += 1;
            assert_eq!(name(&m["streams"][0]["machine"]), "fault(IR_14)");
        }
    }
    w.join().expect("fed");
    assert!(statuses >= 3);
}

#[test]
fn the_snapshot_spool_stays_under_its_cap_through_repeated_faults() {
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("sensor.fifo");
    mkfifo(&fifo);
    let spool = dir.path().join("spool");
    let cap_mb = 1.5;
    let snap = format!(
        "[snapshots]\ndir = \"{}\"\npre-s = 1.0\npost-s = 1.0\nmax-mb = {cap_mb}\n",
        spool.display()
    );
    let cfg = config_with(dir.path(), &fifo, None, &snap);
    let d = Daemon::start(&["--config", cfg.to_str().expect("utf8")]);
    let mut c = d.connect();
    c.send("{\"types\":[\"event\"]}\n");
    let mut x = Vec::new();
    for _ in 0..6 {
        x.extend(fault("1797_IR_14.wav", 3.0));
        x.extend(fault("1797_OR6_21.wav", 3.0));
    }
    let w = feed(&fifo, x);
    let ev = events_until(&mut c, |e| {
        e.iter().filter(|x| x["to"]["state"] == "fault").count() >= 10
    });
    w.join().expect("fed");
    std::thread::sleep(Duration::from_millis(500));
    let size: u64 = std::fs::read_dir(&spool)
        .expect("spool")
        .flatten()
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    let wavs = std::fs::read_dir(&spool)
        .expect("spool")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
        .count();
    eprintln!(
        "{} fault events, spool {size} bytes in {wavs} snapshots (cap {cap_mb} MB)",
        ev.len()
    );
    assert!(
        size as f64 <= cap_mb * 1e6,
        "spool {size} bytes over the {cap_mb} MB cap"
    );
    assert!(wavs >= 1, "no snapshot left at all");
}
