//! Per-machine baselines on a rig the network never saw (UESTC,
//! `../shared/uestc`), with the real binary: `drsnd baseline learn`,
//! `drsnd classify --baseline`, and the daemon fed through a FIFO (as fast
//! as it reads; the monitor runs on stream time, so the outcome is that of
//! real time).

use crate::common;

use common::{Daemon, BIN};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SPEEDS: [u32; 4] = [800, 1000, 1200, 1400];
/// The recordings' rate, and the model's (stream times are model-rate samples).
const UESTC_RATE: u32 = 20000;
const MODEL_RATE: f64 = 12000.0;

fn uestc(file: &str) -> PathBuf {
    let dir = std::env::var_os("DRSN_UESTC")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join("..").join("shared").join("uestc"));
    let p = dir.join(file);
    assert!(
        p.exists(),
        "{} is missing: the tests read the UESTC recordings from ../shared/uestc (or $DRSN_UESTC)",
        p.display()
    );
    p
}

fn read(file: &str) -> Vec<f32> {
    let (rate, x) = common::read_wav_f32(&uestc(file));
    assert_eq!(rate, UESTC_RATE, "{file}");
    x
}

fn rms(x: &[f32]) -> f64 {
    let m = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    (x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// `x` scaled to `to` RMS: without its level, only its shape tells.
fn scaled(x: &[f32], to: f64) -> Vec<f32> {
    let k = (to / rms(x)) as f32;
    x.iter().map(|v| v * k).collect()
}

fn first_seconds(x: &[f32], s: f64) -> Vec<f32> {
    x[..((s * UESTC_RATE as f64) as usize).min(x.len())].to_vec()
}

/// `drsnd CMD --model <the model> --FLAG path FILES…`, which must succeed; its stdout.
fn drsnd_ok(cmd: &[&str], flag: &str, path: &Path, files: &[PathBuf]) -> String {
    let o = Command::new(BIN)
        .args(cmd)
        .arg("--model")
        .arg(common::model())
        .arg(flag)
        .arg(path)
        .args(files)
        .output()
        .expect("drsnd runs");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn learn(out: &Path, files: &[PathBuf]) {
    drsnd_ok(&["baseline", "learn"], "--out", out, files);
}

/// The anomaly score of every frame of `wavs`.
fn scores(baseline: &Path, wavs: &[PathBuf]) -> Vec<f64> {
    drsnd_ok(&["classify", "--json"], "--baseline", baseline, wavs)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(common::is_frame)
        .map(|v| v["anomaly"].as_f64().expect("anomaly is a number"))
        .collect()
}

fn share_above_one(s: &[f64]) -> f64 {
    s.iter().filter(|&&a| a > 1.0).count() as f64 / s.len() as f64
}

fn healthy_files(rpm: u32, parts: &[u32]) -> Vec<PathBuf> {
    parts
        .iter()
        .map(|p| uestc(&format!("N_{rpm}_{p}.wav")))
        .collect()
}

#[test]
fn an_offline_baseline_passes_normal_frames_and_flags_fault_frames_at_every_speed() {
    let dir = tempfile::tempdir().expect("tmp");
    for rpm in SPEEDS {
        let b = dir.path().join(format!("{rpm}.baseline.json"));
        learn(&b, &healthy_files(rpm, &[1, 2]));
        let normal = scores(&b, &healthy_files(rpm, &[3, 4, 5]));
        let fa = share_above_one(&normal);
        eprintln!(
            "{rpm} rpm: {} normal frames, {:.2} % above 1.0",
            normal.len(),
            fa * 100.0
        );
        assert!(
            fa <= 0.002,
            "{rpm} rpm: {:.2} % of normal frames above 1.0",
            fa * 100.0
        );
        let level = rms(&read(&format!("N_{rpm}_3.wav")));
        for cond in ["B", "I", "O"] {
            let names: Vec<String> = (1..=5).map(|p| format!("{cond}_{rpm}_{p}.wav")).collect();
            let files: Vec<PathBuf> = names.iter().map(|n| uestc(n)).collect();
            let recorded = share_above_one(&scores(&b, &files));
            let quiet: Vec<PathBuf> = names
                .iter()
                .map(|n| {
                    let wav = dir.path().join(format!("scaled_{n}"));
                    common::write_wav_f32(&wav, UESTC_RATE, &scaled(&read(n), level));
                    wav
                })
                .collect();
            let quiet = share_above_one(&scores(&b, &quiet));
            let what = format!("{cond} at {rpm} rpm");
            eprintln!(
                "{what}: {:.2} % above 1.0 as recorded, {:.2} % scaled to normal RMS",
                recorded * 100.0,
                quiet * 100.0
            );
            assert!(
                recorded >= 0.995,
                "{what} as recorded: {:.2} %",
                recorded * 100.0
            );
            assert!(quiet >= 0.995, "{what} scaled: {:.2} %", quiet * 100.0);
        }
    }
}

/// A quiet machine is not a dead sensor: the healthy CWRU recording
/// scaled by 0.01 and 0.0001 (frame RMS down to 1e-5 g, under the old
/// absolute floor of 1e-4) learns a baseline and is judged as unscaled:
/// no healthy frame above 1.0, every fault frame above it.
#[test]
fn a_healthy_recording_scaled_down_10000x_learns_and_is_judged_as_unscaled() {
    let dir = tempfile::tempdir().expect("tmp");
    let (rate, healthy) = common::read_wav_f32(&common::cwru("1797_Normal_48k.wav"));
    let (fault_rate, fault) = common::read_wav_f32(&common::cwru("1797_IR_14.wav"));
    let half = healthy.len() / 2;
    let mut judged = Vec::new();
    for scale in [1.0f32, 0.01, 0.0001] {
        let wav = |name: &str, rate: u32, x: &[f32]| {
            let p = dir.path().join(format!("{name}_{scale}.wav"));
            let x: Vec<f32> = x.iter().map(|v| v * scale).collect();
            common::write_wav_f32(&p, rate, &x);
            p
        };
        let b = dir.path().join(format!("{scale}.baseline.json"));
        learn(&b, &[wav("learn", rate, &healthy[..half])]);
        let normal = scores(&b, &[wav("normal", rate, &healthy[half..])]);
        let faulty = scores(&b, &[wav("fault", fault_rate, &fault)]);
        eprintln!(
            "x{scale}: {} normal frames, {:.1} % above 1.0; {} fault frames, {:.1} % above",
            normal.len(),
            share_above_one(&normal) * 100.0,
            faulty.len(),
            share_above_one(&faulty) * 100.0
        );
        judged.push((share_above_one(&normal), share_above_one(&faulty)));
    }
    assert!(
        judged.iter().all(|&j| j == judged[0]),
        "judged alike at every scale: {judged:?}"
    );
    assert_eq!(judged[0], (0.0, 1.0), "{judged:?}");
}

use common::mkfifo;

/// A daemon reading one 20 kHz stream "bearing" from a FIFO, its state in
/// `<dir>/state`; `monitor` adds lines to `[monitor]`.
fn fifo_daemon(dir: &Path, monitor: &str) -> (PathBuf, Daemon) {
    fifo_daemon_at(dir, monitor, UESTC_RATE)
}

fn fifo_daemon_at(dir: &Path, monitor: &str, rate: u32) -> (PathBuf, Daemon) {
    let fifo = dir.join("sensor.fifo");
    if !fifo.exists() {
        mkfifo(&fifo);
    }
    let cfg = dir.join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[socket]\nstatus-interval-ms = 300\n[monitor]\nstate-dir = \"{}\"\n{monitor}\n\
             [[source]]\nkind = \"raw\"\npath = \"{}\"\nformat = \"f32le\"\nrate = {rate}\nstreams = [\"bearing\"]\n",
            common::model().display(),
            dir.join("state").display(),
            fifo.display()
        ),
    )
    .expect("config");
    let d = Daemon::start(&["--config", cfg.to_str().expect("utf8")]);
    (fifo, d)
}

fn feed(fifo: &Path, x: Vec<f32>) -> std::thread::JoinHandle<()> {
    common::feed_fifo(fifo, x, false)
}

/// What a subscriber saw of one fed stream: frames as (stream time of the
/// frame's start, anomaly), events, and the last status.
struct Seen {
    frames: Vec<(f64, Option<f64>)>,
    events: Vec<Value>,
    status: Value,
}

/// Reads until the stream goes quiet (the writer closed: no-signal for want
/// of samples), or `limit` passes.
fn watch(c: &mut common::Client, limit: Duration) -> Seen {
    let mut seen = Seen {
        frames: Vec::new(),
        events: Vec::new(),
        status: Value::Null,
    };
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < limit,
            "timed out; events: {:#?}",
            seen.events
        );
        let m = c.next().expect("daemon alive");
        match m["type"].as_str() {
            Some("frame") => seen.frames.push((
                m["sample_index"].as_f64().expect("index") / MODEL_RATE,
                m["anomaly"].as_f64(),
            )),
            Some("status") => seen.status = m,
            Some("event") => {
                let quiet = m["to"]["state"] == "no-signal"
                    && m["to"]["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("no samples"));
                seen.events.push(m);
                if quiet {
                    return seen;
                }
            }
            _ => {}
        }
    }
}

fn subscribe(d: &Daemon) -> common::Client {
    let mut c = d.connect();
    c.send("{\"thresholds\":false}\n");
    c
}

fn state(v: &Value) -> &str {
    v["state"].as_str().unwrap_or("?")
}

fn is_alarm(v: &Value) -> bool {
    matches!(state(v), "fault" | "anomaly")
}

/// An event from a calm state into an alarm (not a reclassification
/// within one, which may be confirmed just after a fault ends).
fn raises(e: &Value) -> bool {
    is_alarm(&e["to"]) && !is_alarm(&e["from"])
}

/// One stream of labelled parts, with the stream time (model rate) each starts at.
struct Script {
    x: Vec<f32>,
    rate: f64,
    parts: Vec<(String, f64, f64)>,
}

impl Script {
    fn new() -> Self {
        Self::at(UESTC_RATE as f64)
    }
    fn at(rate: f64) -> Self {
        Self {
            x: Vec::new(),
            rate,
            parts: Vec::new(),
        }
    }
    fn add(&mut self, label: &str, x: &[f32]) {
        let t0 = self.x.len() as f64 / self.rate;
        self.x.extend_from_slice(x);
        let t1 = self.x.len() as f64 / self.rate;
        self.parts.push((label.to_string(), t0, t1));
    }
    fn part_at(&self, t: f64) -> &str {
        self.parts
            .iter()
            .find(|p| p.1 <= t && t < p.2)
            .map_or("after", |p| p.0.as_str())
    }
}

/// A knock on the housing: a 2 kHz burst decaying in 5 ms, peak `peak`,
/// added once every 5 s.
fn knocked(x: &[f32], peak: f64) -> Vec<f32> {
    let rate = UESTC_RATE as f64;
    let every = (5.0 * rate) as usize;
    let len = (0.05 * rate) as usize;
    let mut y = x.to_vec();
    for start in (every / 2..y.len()).step_by(every) {
        for i in 0..len.min(y.len() - start) {
            let t = i as f64 / rate;
            let v = peak * (-t / 0.005).exp() * (2.0 * std::f64::consts::PI * 2000.0 * t).sin();
            y[start + i] += v as f32;
        }
    }
    y
}

/// At every speed, with the offline baseline in `state-dir`: normal running
/// (clean, then knocked every 5 s) raises no event; each fault, scaled to
/// the normal level and as recorded, raises an alarm within 2 s of its
/// start, and the machine returns to healthy between them.
#[test]
fn faults_on_a_learned_uestc_machine_raise_an_event_within_2_s_and_normal_running_none() {
    for rpm in SPEEDS {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
        learn(
            &dir.path().join("state/bearing.baseline.json"),
            &healthy_files(rpm, &[1, 2]),
        );
        let normal: Vec<Vec<f32>> = (3..=5).map(|p| read(&format!("N_{rpm}_{p}.wav"))).collect();
        let level = rms(&normal[0]);
        let mut s = Script::new();
        for n in &normal {
            s.add("normal", n);
        }
        let knocks: Vec<f32> = normal.concat();
        s.add("knocked", &knocked(&knocks, 10.0 * level * 2f64.sqrt()));
        for cond in ["B", "I", "O"] {
            let f = first_seconds(&read(&format!("{cond}_{rpm}_1.wav")), 6.0);
            s.add(&format!("{cond} scaled"), &scaled(&f, level));
            s.add("normal", &first_seconds(&normal[1], 10.0));
            s.add(&format!("{cond} as recorded"), &f);
            s.add("normal", &first_seconds(&normal[2], 7.0));
        }
        let (fifo, mut d) = fifo_daemon(dir.path(), "");
        let mut c = subscribe(&d);
        let writer = feed(&fifo, std::mem::take(&mut s.x));
        let seen = watch(&mut c, Duration::from_secs(300));
        writer.join().expect("fed");
        assert_eq!(d.stop().code(), Some(0));

        let base = &seen.status["streams"][0]["baseline"];
        assert_eq!(base["state"], "learned", "{rpm}: {base}");
        // Clean normal running: a share of frames above 1.0, and no alarm.
        let normal_end = s.parts[2].2;
        let clean: Vec<f64> = seen
            .frames
            .iter()
            .filter(|f| f.0 + 2048.0 / MODEL_RATE <= normal_end)
            .map(|f| f.1.expect("a score with a baseline"))
            .collect();
        let fa = share_above_one(&clean);
        eprintln!(
            "{rpm} rpm: {:.2} % of {} normal frames above 1.0",
            fa * 100.0,
            clean.len()
        );
        assert!(fa <= 0.002, "{rpm}: {:.2} %", fa * 100.0);
        // Every alarm is raised in a fault, within 2 s of its start.
        for e in seen.events.iter().filter(|e| raises(e)) {
            let since = e["stream_time_s"].as_f64().expect("t");
            let part = s.part_at(since);
            assert!(
                part.contains("scaled") || part.contains("recorded"),
                "{rpm} rpm: {} in {part} at {since:.2} s: {e}",
                state(&e["to"])
            );
        }
        for (label, t0, _) in s.parts.iter().filter(|p| p.0.contains(' ')) {
            let first = seen
                .events
                .iter()
                .filter(|e| raises(e))
                .map(|e| e["stream_time_s"].as_f64().unwrap_or(0.0))
                .find(|&t| t >= *t0);
            let delay = first.map(|t| t - t0);
            eprintln!("{rpm} rpm {label}: alarm {delay:?} s after its start");
            assert!(
                delay.is_some_and(|d| d <= 2.0),
                "{rpm} rpm {label}: alarm at {first:?} for a start at {t0:.2} s; events {:#?}",
                seen.events
            );
        }
        let into_healthy = seen
            .events
            .iter()
            .filter(|e| is_alarm(&e["from"]) && state(&e["to"]) == "healthy")
            .count();
        assert_eq!(into_healthy, 6, "{rpm}: back to healthy after each fault");
    }
}

/// Learned from 800 and 1200 rpm, the machine at 1000 rpm is still normal.
#[test]
fn a_baseline_of_two_speeds_passes_the_speed_between() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
    let mut files = healthy_files(800, &[1, 2]);
    files.extend(healthy_files(1200, &[1, 2]));
    learn(&dir.path().join("state/bearing.baseline.json"), &files);
    let mut x = Vec::new();
    for p in 1..=5 {
        x.extend(read(&format!("N_1000_{p}.wav")));
    }
    let (fifo, mut d) = fifo_daemon(dir.path(), "");
    let mut c = subscribe(&d);
    let writer = feed(&fifo, x);
    let seen = watch(&mut c, Duration::from_secs(120));
    writer.join().expect("fed");
    assert_eq!(d.stop().code(), Some(0));
    let scores: Vec<f64> = seen.frames.iter().filter_map(|f| f.1).collect();
    assert!(scores.len() > 1000, "{} frames", scores.len());
    let fa = share_above_one(&scores);
    eprintln!(
        "1000 rpm on an 800+1200 baseline: {:.2} % above 1.0",
        fa * 100.0
    );
    assert!(fa <= 0.005, "{:.2} %", fa * 100.0);
    let states: Vec<&str> = seen.events.iter().map(|e| state(&e["to"])).collect();
    assert_eq!(states, ["healthy", "no-signal"], "{:#?}", seen.events);
}

/// `learn-s`: a stream without a baseline learns one from its first
/// seconds of signal, keeps it in state-dir, then judges by it; after a
/// restart it judges by it at once; a client can make it learn anew.
#[test]
fn a_stream_learns_live_keeps_its_baseline_and_relearns_when_asked() {
    let dir = tempfile::tempdir().expect("tmp");
    let rpm = 1000;
    let normal: Vec<Vec<f32>> = (1..=5).map(|p| read(&format!("N_{rpm}_{p}.wav"))).collect();
    let level = rms(&normal[2]);
    let fault = scaled(&first_seconds(&read("O_1000_1.wav"), 6.0), level);
    let mut s = Script::new();
    s.add("learning", &normal[..2].concat());
    s.add("normal", &normal[2..].concat());
    s.add("fault", &fault);
    let (fifo, mut d) = fifo_daemon(dir.path(), "learn-s = 24");
    let mut c = subscribe(&d);
    let writer = feed(&fifo, std::mem::take(&mut s.x));
    let seen = watch(&mut c, Duration::from_secs(120));
    writer.join().expect("fed");
    let kept = dir.path().join("state/bearing.baseline.json");
    assert!(kept.exists(), "the learned baseline is kept");
    // The fit runs on its own thread while the stream goes on; fed as fast
    // as the daemon reads, some seconds of stream pass meanwhile.
    let fault_at = s.parts[2].1;
    let learned_at = seen
        .frames
        .iter()
        .find(|f| f.1.is_some())
        .map(|f| f.0)
        .expect("scores after learning");
    assert!(
        (24.0..fault_at - 3.0).contains(&learned_at),
        "scoring began at {learned_at:.2} s"
    );
    assert!(
        seen.frames
            .iter()
            .filter(|f| f.0 >= learned_at)
            .all(|f| f.1.is_some()),
        "every frame scored from then on"
    );
    let states: Vec<(&str, f64)> = seen
        .events
        .iter()
        .map(|e| (state(&e["to"]), e["stream_time_s"].as_f64().unwrap_or(0.0)))
        .collect();
    assert_eq!(states[0].0, "learning", "{states:?}");
    assert_eq!(states[1].0, "healthy", "{states:?}");
    let alarm = states.iter().find(|s| matches!(s.0, "anomaly" | "fault"));
    assert!(
        alarm.is_some_and(|a| a.1 >= fault_at && a.1 - fault_at <= 2.0),
        "{states:?}; the fault starts at {fault_at:.2} s"
    );
    assert_eq!(seen.status["streams"][0]["baseline"]["state"], "learned");
    assert_eq!(d.stop().code(), Some(0));

    // Restarted: the kept baseline judges from the first frame.
    let (fifo, mut d) = fifo_daemon(dir.path(), "learn-s = 24");
    let mut c = subscribe(&d);
    let st = c.until("status");
    assert_eq!(st["streams"][0]["baseline"]["state"], "learned", "{st}");
    // A client asks for a new baseline: acknowledged, learned from the
    // next 10 s, and kept over the old one.
    let before = std::fs::read_to_string(&kept).expect("kept");
    c.send("{\"cmd\":\"learn\",\"stream\":\"pump\",\"seconds\":10}\n");
    let err = c.until("error");
    assert!(
        err["message"].as_str().unwrap_or("").contains("pump"),
        "{err}"
    );
    c.send("{\"cmd\":\"learn\",\"stream\":\"bearing\",\"seconds\":10}\n");
    let ack = c.until("ack");
    assert_eq!(ack["seconds"], 10.0);
    let writer = feed(&fifo, normal[2..].concat());
    let seen = watch(&mut c, Duration::from_secs(120));
    writer.join().expect("fed");
    assert!(
        seen.frames.iter().take(50).all(|f| f.1.is_none()),
        "learning anew: no scores at first"
    );
    assert!(seen.frames.last().is_some_and(|f| f.1.is_some()));
    let after = std::fs::read_to_string(&kept).expect("kept");
    assert_ne!(before, after, "the new baseline replaced the old");
    let states: Vec<&str> = seen.events.iter().map(|e| state(&e["to"])).collect();
    assert!(
        !states.iter().any(|s| matches!(*s, "anomaly" | "fault")),
        "{states:?}"
    );
    assert_eq!(d.stop().code(), Some(0));
}

fn run_fails(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(BIN).args(args).output().expect("drsnd runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A corrupt, truncated or foreign baseline file stops the daemon at start
/// (exit 78 naming it) and `classify --baseline`; one of another model is
/// set aside (status says so) by the daemon and refused by classify; a
/// reload that meets a bad one keeps what runs.
#[test]
fn bad_baseline_files_are_named_and_never_used() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good.baseline.json");
    learn(&good, &healthy_files(1000, &[1]));
    let text = std::fs::read_to_string(&good).expect("good");
    let parsed: Value = serde_json::from_str(&text).expect("json");
    let mut other = parsed.clone();
    other["model_sha256"] = "ab".repeat(32).into();
    let mut negative = parsed.clone();
    negative["limit"] = (-1.0).into();
    let cases = [
        (
            "corrupt",
            "{\"kind\": \"drsnd-baseline\", \u{0}".to_string(),
        ),
        ("truncated", text[..text.len() / 2].to_string()),
        (
            "foreign",
            "{\"kind\": \"grafana-dashboard\", \"panels\": []}".to_string(),
        ),
        ("negative-limit", negative.to_string()),
    ];
    let wav = uestc("N_1000_3.wav");
    let wav = wav.to_str().expect("utf8");
    let model = common::model();
    let model = model.to_str().expect("utf8");
    for (what, body) in &cases {
        let f = dir.path().join(format!("{what}.baseline.json"));
        std::fs::write(&f, body).expect("write");
        let fs = f.to_str().expect("utf8");
        let (code, err) = run_fails(&["classify", "--model", model, "--baseline", fs, wav]);
        assert_eq!(code, Some(78), "{what}: {err}");
        assert!(err.contains(fs), "{what}: {err}");

        let sd = dir.path().join(what);
        std::fs::create_dir_all(sd.join("state")).expect("dir");
        std::fs::write(sd.join("state/bearing.baseline.json"), body).expect("write");
        let fifo = sd.join("sensor.fifo");
        mkfifo(&fifo);
        let cfg = sd.join("drsnd.toml");
        std::fs::write(
            &cfg,
            format!(
                "model = \"{model}\"\n[monitor]\nstate-dir = \"{}\"\n[[source]]\nkind = \"raw\"\n\
                 path = \"{}\"\nformat = \"f32le\"\nrate = 20000\nstreams = [\"bearing\"]\n",
                sd.join("state").display(),
                fifo.display()
            ),
        )
        .expect("cfg");
        let sock = sd.join("s.sock");
        let (code, err) = run_fails(&[
            "run",
            "--config",
            cfg.to_str().expect("utf8"),
            "--socket",
            sock.to_str().expect("utf8"),
        ]);
        assert_eq!(code, Some(78), "{what}: {err}");
        assert!(err.contains("bearing.baseline.json"), "{what}: {err}");
        let (code, err) = run_fails(&["check", "--config", cfg.to_str().expect("utf8")]);
        assert_eq!(code, Some(78), "check, {what}: {err}");
        assert!(
            err.contains("bearing.baseline.json"),
            "check, {what}: {err}"
        );
    }

    // Another model's: classify refuses it, the daemon sets it aside.
    let f = dir.path().join("other.baseline.json");
    std::fs::write(&f, other.to_string()).expect("write");
    let (code, err) = run_fails(&[
        "classify",
        "--model",
        model,
        "--baseline",
        f.to_str().expect("utf8"),
        wav,
    ]);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("other.baseline.json") && err.contains("model"),
        "{err}"
    );
    let sd = dir.path().join("other");
    std::fs::create_dir_all(sd.join("state")).expect("dir");
    std::fs::write(sd.join("state/bearing.baseline.json"), other.to_string()).expect("write");
    let (_fifo, mut d) = fifo_daemon(&sd, "");
    let mut c = d.connect();
    let st = c.until("status");
    let b = &st["streams"][0]["baseline"];
    assert_eq!(b["state"], "ignored", "{st}");
    assert!(b["note"].as_str().unwrap_or("").contains("model"), "{b}");
    assert_eq!(d.stop().code(), Some(0));

    // A reload that meets a corrupt baseline keeps the running one.
    let sd = dir.path().join("reload");
    std::fs::create_dir_all(sd.join("state")).expect("dir");
    let kept = sd.join("state/bearing.baseline.json");
    std::fs::copy(&good, &kept).expect("copy");
    let (fifo, mut d) = fifo_daemon(&sd, "");
    std::fs::write(&kept, &text[..100]).expect("corrupt");
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGHUP);
    }
    let t0 = Instant::now();
    while !d.stderr().contains("reload") && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.stderr();
    assert!(log.contains("bearing.baseline.json"), "{log}");
    let mut c = subscribe(&d);
    let writer = feed(&fifo, read("N_1000_3.wav"));
    let seen = watch(&mut c, Duration::from_secs(60));
    writer.join().expect("fed");
    assert!(
        seen.frames.len() > 100 && seen.frames.iter().all(|f| f.1.is_some()),
        "the running baseline still scores"
    );
    assert_eq!(d.stop().code(), Some(0));
}

/// CWRU: learned from the first half of the only healthy recording (0 hp),
/// the second half passes, and every fault recording at 0, 1 and 2 hp, as
/// recorded and scaled to the healthy level, is flagged frame by frame and
/// raises an alarm within 2 s.
#[test]
fn cwru_learned_from_half_its_healthy_recording_flags_every_fault_at_every_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let healthy = common::healthy_12k();
    let (first, second) = healthy.split_at(healthy.len() / 2);
    let (a, b) = (
        dir.path().join("normal_a.wav"),
        dir.path().join("normal_b.wav"),
    );
    common::write_wav_f32(&a, 12000, first);
    common::write_wav_f32(&b, 12000, second);
    std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
    let base = dir.path().join("state/bearing.baseline.json");
    learn(&base, std::slice::from_ref(&a));
    let normal = scores(&base, std::slice::from_ref(&b));
    assert!(normal.len() >= 40, "{} frames", normal.len());
    assert_eq!(share_above_one(&normal), 0.0, "{normal:?}");
    let level = rms(second);
    let mut names: Vec<String> =
        std::fs::read_dir(common::cwru("1797_IR_14.wav").parent().expect("dir"))
            .expect("cwru dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".wav") && !n.contains("Normal"))
            .collect();
    names.sort();
    assert_eq!(names.len(), 45, "{names:?}");
    let recorded: Vec<PathBuf> = names.iter().map(|n| common::cwru(n)).collect();
    let quiet: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let (_, x) = common::read_wav_f32(&common::cwru(n));
            let wav = dir.path().join(format!("scaled_{n}"));
            common::write_wav_f32(&wav, 12000, &scaled(&x, level));
            wav
        })
        .collect();
    for (what, files) in [("as recorded", &recorded), ("scaled", &quiet)] {
        let s = scores(&base, files);
        let share = share_above_one(&s);
        eprintln!(
            "CWRU faults {what}: {:.2} % of {} frames above 1.0",
            share * 100.0,
            s.len()
        );
        assert!(share >= 0.995, "{what}: {:.2} %", share * 100.0);
    }

    // Through the daemon: each fault for 3 s between 4 s of normal running.
    let mut s = Script::at(12000.0);
    let filler = [second, second].concat();
    s.add("normal", &filler);
    for (n, wav) in names.iter().zip(&quiet) {
        let (_, x) = common::read_wav_f32(&common::cwru(n));
        s.add(&format!("{n} as recorded"), &x[..36000]);
        s.add("normal", &filler);
        let (_, x) = common::read_wav_f32(wav);
        s.add(&format!("{n} scaled"), &x[..36000]);
        s.add("normal", &filler);
    }
    let (fifo, mut d) = fifo_daemon_at(dir.path(), "", 12000);
    let mut c = subscribe(&d);
    let writer = feed(&fifo, std::mem::take(&mut s.x));
    let seen = watch(&mut c, Duration::from_secs(400));
    writer.join().expect("fed");
    assert_eq!(d.stop().code(), Some(0));
    for e in seen.events.iter().filter(|e| raises(e)) {
        let t = e["stream_time_s"].as_f64().expect("t");
        let part = s.part_at(t);
        assert!(
            part.contains(' '),
            "{} in {part} at {t:.2} s: {e}",
            state(&e["to"])
        );
    }
    let mut slowest: f64 = 0.0;
    for (label, t0, _) in s.parts.iter().filter(|p| p.0.contains(' ')) {
        let first = seen
            .events
            .iter()
            .filter(|e| raises(e))
            .map(|e| e["stream_time_s"].as_f64().unwrap_or(0.0))
            .find(|&t| t >= *t0);
        let delay = first.map_or(f64::INFINITY, |t| t - t0);
        slowest = slowest.max(delay);
        assert!(delay <= 2.0, "{label}: alarm {delay:.2} s after its start");
    }
    eprintln!("CWRU: 90 faults, every alarm within {slowest:.2} s of the fault's start");
}
