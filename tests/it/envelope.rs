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
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let frames: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(validate)
            .filter(common::is_frame)
            .collect();
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
    ] {
        assert!(line.contains(want), "{want:?} not in {line}");
    }
}
