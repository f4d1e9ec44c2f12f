//! Envelope evidence on the real binary with real CWRU recordings: offline
//! (`classify --rpm --bearing-orders`) and in the daemon (`rpm`, `bearing`),
//! and every bad setting refused naming its key, at start and at reload.

use crate::common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const ORDERS: &str = "3.5848,5.4152,2.357,0.39828";
const BEARING: &str = "bearing = { bpfo = 3.5848, bpfi = 5.4152, bsf = 2.357, ftf = 0.39828 }";
/// The same bearing (SKF 6205) by its catalogue geometry.
const GEOMETRY: &str = "bearing = { balls = 9, ball-mm = 7.94, pitch-mm = 39.04 }";

fn classify(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("classify")
        .args(args)
        .output()
        .expect("drsnd classify")
}

/// The family of each distinct envelope evaluation (they repeat between updates).
fn families(frames: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut last = Value::Null;
    for f in frames {
        let e = &f["envelope"];
        if !e.is_null() && *e != last {
            out.push(e["family"].as_str().unwrap_or("?").to_string());
            last = e.clone();
        }
    }
    out
}

fn classify_frames(args: &[&str]) -> Vec<Value> {
    frames_of(&classify(args))
}

fn share(fams: &[String], want: &str) -> f64 {
    fams.iter().filter(|f| *f == want).count() as f64 / fams.len().max(1) as f64
}

#[test]
fn classify_names_inner_on_an_inner_race_fault_and_outer_on_an_outer_race_fault() {
    for (file, rpm, want) in [
        ("1797_IR_7.wav", "1797", "inner"),
        ("1772_IR_21.wav", "1772", "inner"),
        ("1750_OR6_7.wav", "1750", "outer"),
    ] {
        let path = cwru(file);
        let p = path.to_str().expect("utf-8");
        let out = classify(&[
            p,
            "--json",
            "--units",
            "g",
            "--rpm",
            rpm,
            "--bearing-orders",
            ORDERS,
        ]);
        let frames = frames_of(&out);
        // The window of 16384 samples is full at the end of frame 28.
        assert!(frames[..28].iter().all(|f| f["envelope"].is_null()));
        assert!(frames[28..].iter().all(|f| f["envelope"].is_object()));
        let fams = families(&frames);
        eprintln!("{file}: {fams:?}");
        assert!(fams.len() >= 10, "{file}: {} windows", fams.len());
        assert!(share(&fams, want) >= 0.9, "{file}: {fams:?}");
    }
    // Without them, no envelope field at all.
    let out = classify(&[
        cwru("1797_IR_7.wav").to_str().expect("utf-8"),
        "--json",
        "--units",
        "g",
    ]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("envelope"));
}

#[test]
fn classify_refuses_bad_envelope_flags_naming_them() {
    let path = cwru("1797_IR_7.wav");
    let p = path.to_str().expect("utf-8");
    for (bad, names) in [
        (
            &["--units", "g", "--rpm", "0", "--bearing-orders", ORDERS][..],
            "--rpm",
        ),
        (
            &["--units", "g", "--rpm=-1797", "--bearing-orders", ORDERS],
            "--rpm",
        ),
        (
            &[
                "--units",
                "g",
                "--rpm",
                "1797",
                "--bearing-orders",
                "3.5,60,2.3",
            ],
            "bpfi",
        ),
        (
            &[
                "--units",
                "g",
                "--rpm",
                "1797",
                "--bearing-orders",
                "3.5,5.4",
            ],
            "--bearing-orders",
        ),
        (
            &[
                "--units",
                "g",
                "--rpm",
                "1797",
                "--bearing-orders",
                "3.5,5.4,2.3,1.5",
            ],
            "ftf",
        ),
        (&["--rpm", "1797", "--bearing-orders", ORDERS], "--units"),
        (&["--units", "g", "--rpm", "1797"], "--bearing-orders"),
        (
            &[
                "--units",
                "g",
                "--rpm",
                "1797",
                "--bearing-orders",
                ORDERS,
                "--envelope-band",
                "3000,3010",
            ],
            "--envelope-band",
        ),
    ] {
        let mut args = vec![p, "--json"];
        args.extend_from_slice(bad);
        let out = classify(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{bad:?}: {err}");
        assert!(err.contains(names), "{bad:?} should name {names}: {err}");
    }
}

fn config(dir: &std::path::Path, wav: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[[source]]\nkind = \"wav\"\npath = \"{}\"\nloop = true\n\
             streams = [\"pump\"]\n{extra}\n",
            model().display(),
            wav.display()
        ),
    )
    .expect("config");
    cfg
}

#[test]
fn the_daemon_publishes_envelope_evidence_and_a_bad_reload_keeps_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = cwru("1797_IR_21.wav");
    let good = format!("units = \"g\"\nrpm = 1797\n{BEARING}");
    let cfg = config(dir.path(), &wav, &good);
    let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let mut c = d.connect();
    let hello = c.until("hello");
    let b = &hello["streams"][0]["bearing"];
    assert_eq!(b["rpm"], 1797.0, "{hello}");
    assert_eq!(b["bpfi"], 5.4152, "{hello}");
    // The speed is measured within rpm ±5 % by default.
    let range = b["rpm_range"].as_array().expect("rpm_range");
    assert!(
        (range[0].as_f64().unwrap_or(0.0) - 1707.15).abs() < 0.01
            && (range[1].as_f64().unwrap_or(0.0) - 1886.85).abs() < 0.01,
        "{hello}"
    );
    let take = |c: &mut Client, n: usize| -> Vec<Value> {
        let mut frames = Vec::new();
        let t0 = Instant::now();
        while frames.len() < n && t0.elapsed() < Duration::from_secs(30) {
            let m = c.next().expect("daemon talking");
            if m["type"] == "frame" {
                frames.push(m);
            }
        }
        frames
    };
    let frames = take(&mut c, 150);
    let fams = families(&frames);
    assert!(fams.len() >= 4, "{} windows", fams.len());
    assert!(share(&fams, "inner") >= 0.9, "{fams:?}");

    // A reload with rpm = 0 fails naming it; the stream goes on as it was.
    config(dir.path(), &wav, &good.replace("rpm = 1797", "rpm = 0"));
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    let t0 = Instant::now();
    let mut status = Value::Null;
    while t0.elapsed() < Duration::from_secs(20) {
        let m = c.next().expect("daemon talking");
        if m["type"] == "status" && m["reload"]["ok"] == false {
            status = m;
            break;
        }
    }
    let msg = status["reload"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("rpm") && msg.contains("drsnd.toml"),
        "{status}"
    );
    let after = take(&mut c, 90);
    assert!(share(&families(&after), "inner") >= 0.9, "{after:?}");
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn bad_envelope_settings_stop_the_start_naming_the_key_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = cwru("1797_IR_7.wav");
    let cases = [
        (
            format!("units = \"g\"\nrpm = 0\n{BEARING}"),
            "`rpm`",
            "0 is not a shaft speed",
        ),
        (
            format!("units = \"g\"\nrpm = -1797\n{BEARING}"),
            "`rpm`",
            "-1797",
        ),
        (
            format!(
                "units = \"g\"\nrpm = 1797\n{}",
                BEARING.replace("5.4152", "540")
            ),
            "`bearing`",
            "bpfi = 540",
        ),
        (
            format!(
                "units = \"g\"\nrpm = 1797\n{}",
                BEARING.replace("0.39828", "1.2")
            ),
            "`bearing`",
            "ftf = 1.2",
        ),
        (
            format!("rpm = 1797\n{BEARING}"),
            "`bearing`",
            "needs `units`",
        ),
        (
            "units = \"g\"\nrpm = 1797\n".to_string(),
            "`rpm`",
            "needs `bearing`",
        ),
        (
            format!("units = \"g\"\nrpm = 1797\n{BEARING}\nenvelope-band = [5000, 4000]"),
            "`envelope-band`",
            "[5000.0, 4000.0]",
        ),
        (
            format!(
                "units = \"g\"\nrpm = 1797\n{}",
                BEARING.replace("ftf", "fff")
            ),
            "fff",
            "unknown field",
        ),
        (
            format!("units = \"g\"\nrpm = 1797\n{}", GEOMETRY.replace("9", "0")),
            "`bearing`",
            "balls = 0",
        ),
        (
            format!(
                "units = \"g\"\nrpm = 1797\n{}",
                GEOMETRY.replace("7.94", "39.04")
            ),
            "`bearing`",
            "ball-mm = 39.04 is not below half of pitch-mm",
        ),
        (
            "units = \"g\"\nrpm = 1797\nbearing = { balls = 9, bpfo = 3.5 }".to_string(),
            "`bearing`",
            "not both",
        ),
        (
            format!("units = \"g\"\nrpm = 1797\n{BEARING}\nrpm-range = [1000, 1500]"),
            "`rpm-range`",
            "does not hold the nominal rpm = 1797",
        ),
        (
            format!("units = \"g\"\n{BEARING}\nrpm-range = [1700, 1800]"),
            "`rpm-range`",
            "needs `rpm`, the nominal speed",
        ),
    ];
    for (extra, key, what) in cases {
        let cfg = config(dir.path(), &wav, &extra);
        for verb in ["run", "check"] {
            let out = std::process::Command::new(BIN)
                .args([verb, "--config", cfg.to_str().expect("utf-8")])
                .output()
                .expect("drsnd");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{verb} {extra:?}: {err}");
            assert!(
                err.contains(key) && err.contains(what) && err.contains("drsnd.toml"),
                "{verb} {extra:?} should name {key} ({what}): {err}"
            );
        }
    }
}

/// A bearing given by its geometry: `drsnd check` shows the orders the
/// kinematic formulas give (the 6205's published ones) and their
/// frequencies at the configured speed.
#[test]
fn a_bearing_by_its_geometry_gets_its_orders_shown_by_check() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = cwru("1797_IR_7.wav");
    let cfg = config(
        dir.path(),
        &wav,
        &format!("units = \"g\"\nrpm = 1797\n{GEOMETRY}"),
    );
    let out = std::process::Command::new(BIN)
        .args(["check", "--config", cfg.to_str().expect("utf-8")])
        .output()
        .expect("drsnd");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("bearing"))
        .unwrap_or_else(|| panic!("no bearing line: {text}"));
    for want in [
        "BPFO 3.5848",
        "BPFI 5.4152",
        "BSF 2.3567",
        "FTF 0.39831",
        "107.4 / 162.2 / 70.6 Hz",
        "from 9 balls of 7.94 mm on a 39.04 mm pitch",
        "speed measured within 1707..1887 rpm",
    ] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }
}

/// A machine at 1797 rpm whose housing rings at 3 kHz under impacts at
/// BPFO and at BPFI of strengths `impacts` (g), in 0.05 g of noise.
fn ringing_machine(seconds: f64, impacts: [f64; 2], seed: u64) -> Vec<f32> {
    let rate = 12_000.0;
    let mut s = seed | 1;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let n = (seconds * rate) as usize;
    let mut x: Vec<f64> = (0..n)
        .map(|_| 0.05 * (uniform() + uniform() + uniform() - 1.5) * 2.0)
        .collect();
    for (order, impact) in [3.5848, 5.4152].into_iter().zip(impacts) {
        let period = rate / (order * 1797.0 / 60.0);
        let mut at = 0.0;
        while impact > 0.0 && (at as usize) < n {
            let a = impact * (1.0 + 0.2 * (uniform() - 0.5));
            for (k, v) in x.iter_mut().skip(at as usize).take(120).enumerate() {
                let t = k as f64 / rate;
                *v += a * (-t / 0.002).exp() * (2.0 * std::f64::consts::PI * 3000.0 * t).sin();
            }
            at += period;
        }
    }
    x.into_iter().map(|v| v as f32).collect()
}

/// A healthy machine whose own impacts put a line at BPFO names `outer`
/// by the global null alone; a baseline that learned its envelope judges
/// each defect against this machine's healthy level of it: the usual BPFO
/// line names nothing, an inner-race defect that develops still names
/// `inner`.
#[test]
fn a_baseline_learns_the_healthy_envelope_and_judges_defects_against_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = |name: &str, x: &[f32]| {
        let p = dir.path().join(name);
        write_wav_f32(&p, 12_000, x);
        p.to_str().expect("utf-8").to_string()
    };
    let healthy = wav("healthy.wav", &ringing_machine(30.0, [0.15, 0.0], 1));
    let later = wav("later.wav", &ringing_machine(10.0, [0.15, 0.0], 2));
    let fault = wav("fault.wav", &ringing_machine(10.0, [0.15, 0.6], 3));
    let baseline = dir.path().join("m.baseline.json");
    let sensor = [
        "--units",
        "g",
        "--rpm",
        "1797",
        "--rpm-range",
        "1797,1797",
        "--bearing-orders",
        ORDERS,
    ];
    let out = std::process::Command::new(BIN)
        .args(["baseline", "learn", "--out"])
        .arg(&baseline)
        .args(sensor)
        .arg(&healthy)
        .output()
        .expect("drsnd baseline learn");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("envelope from"), "{said}");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&baseline).expect("baseline")).expect("json");
    assert!(
        file["envelope"]["windows"].as_u64().unwrap_or(0) >= 30,
        "{}",
        file["envelope"]
    );
    let share_of = |path: &str, with: bool, family: &str| {
        let mut args = vec![path, "--json"];
        args.extend(sensor);
        let b = baseline.to_str().expect("utf-8");
        if with {
            args.extend(["--baseline", b]);
        }
        let frames = classify_frames(&args);
        share(&families(&frames), family)
    };
    let (alone, judged) = (
        share_of(&later, false, "outer"),
        share_of(&later, true, "outer"),
    );
    let (inner_alone, inner) = (
        share_of(&fault, false, "inner"),
        share_of(&fault, true, "inner"),
    );
    eprintln!(
        "healthy: outer in {alone:.2} of windows alone, {judged:.2} against its normal; \
         inner fault: inner in {inner_alone:.2} alone, {inner:.2} against its normal; {}",
        file["envelope"]
    );
    assert!(
        alone >= 0.2,
        "the healthy line names outer by the global null: {alone}"
    );
    assert!(
        judged <= 0.05,
        "against this machine's normal it names nothing: {judged}"
    );
    assert!(
        inner >= 0.5 && inner >= inner_alone - 0.05,
        "a developing inner-race defect still names inner: {inner} (alone {inner_alone})"
    );
}
