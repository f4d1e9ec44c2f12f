//! Acceptance 5: bad input gives a clear error or a flagged frame, never a
//! panic, and the daemon keeps serving where the input allows.

use crate::common;

use common::{crash_model, cwru, read_wav_f32, sha256_hex, Daemon, BIN};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn run_fails(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN).args(args).output().expect("drsnd runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "drsnd panicked: {err}");
    (out.status.code(), err)
}

fn sine(n: usize, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (i as f32 * 2.0 * std::f32::consts::PI * 157.0 / 12000.0).sin())
        .collect()
}

fn config_with(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("drsnd.toml");
    let text = format!(
        "model = \"{}\"\n[socket]\nstatus-interval-ms = 200\n{body}",
        common::model().display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

use common::mkfifo;

/// Reads until `want[i].1` frames of stream `want[i].0` have arrived.
fn collect_frames(client: &mut common::Client, want: &[(&str, usize)]) -> (Vec<Value>, Value) {
    let mut frames: Vec<Value> = Vec::new();
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "expected frames did not arrive: {} of {want:?}",
            frames.len()
        );
        let m = client.next().expect("daemon alive");
        match m["type"].as_str() {
            Some("frame") => frames.push(m),
            Some("status") => {
                let have = |s: &str| frames.iter().filter(|f| f["stream"] == s).count();
                if want.iter().all(|(s, n)| have(s) >= *n) {
                    return (frames, m);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn nan_inf_zero_and_clipped_samples_give_flagged_finite_frames() {
    let dir = tempfile::tempdir().expect("tmp");
    // f32le: 1 s of zeros, 1 s of sine with NaN and ±Inf, 1 s of huge values.
    let mut x = vec![0f32; 12000];
    let mut bad = sine(12000, 0.5);
    bad[3000] = f32::NAN;
    bad[7000] = f32::INFINITY;
    bad[9000] = f32::NEG_INFINITY;
    x.extend(bad);
    x.extend(sine(12000, 3.0e6));
    let float_bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    // s16le at full scale: clipped.
    let clip: Vec<u8> = sine(24000, 2.0)
        .iter()
        .flat_map(|v| ((v.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    mkfifo(&dir.path().join("float.fifo"));
    mkfifo(&dir.path().join("clip.fifo"));
    let cfg = config_with(
        dir.path(),
        &format!(
            "[[source]]\nkind = \"raw\"\npath = \"{0}/float.fifo\"\nformat = \"f32le\"\nrate = 12000\nstreams = [\"float\"]\n\
             [[source]]\nkind = \"raw\"\npath = \"{0}/clip.fifo\"\nformat = \"s16le\"\nrate = 12000\nstreams = [\"clip\"]\n",
            dir.path().display()
        ),
    );
    let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf8")]);
    let mut c = d.connect();
    c.until("hello");
    // The sensors start writing once we listen; writers close (EOF) after.
    std::fs::write(dir.path().join("float.fifo"), &float_bytes).expect("feed float");
    std::fs::write(dir.path().join("clip.fifo"), &clip).expect("feed clip");
    let expect = |n: usize| (n - 2048) / 512 + 1;
    let (frames, status) =
        collect_frames(&mut c, &[("float", expect(36000)), ("clip", expect(24000))]);
    // Every frame validated against the schema, so probs and thresholds are
    // numbers (serde_json would write NaN as null).
    let flagged = |stream: &str, flag: &str| {
        frames
            .iter()
            .filter(|f| {
                f["stream"] == stream
                    && f["flags"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|v| v == flag))
            })
            .count()
    };
    assert!(
        flagged("float", "nonfinite") >= 3,
        "NaN/Inf frames not flagged"
    );
    assert!(
        flagged("clip", "clipped") >= 10,
        "clipped frames not flagged"
    );
    let contains_bad = |f: &&Value| {
        let i = f["sample_index"].as_u64().unwrap_or(0);
        f["stream"] == "float"
            && [15000, 19000, 21000]
                .iter()
                .any(|&p| i <= p && p < i + 2048)
    };
    let bad_frames: Vec<&Value> = frames.iter().filter(contains_bad).collect();
    assert!(bad_frames.len() >= 8);
    assert!(bad_frames.iter().all(|f| f["flags"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "nonfinite"))));
    let zero_frames: Vec<&Value> = frames
        .iter()
        .filter(|f| {
            f["stream"] == "float" && f["sample_index"].as_u64().unwrap_or(99999) + 2048 <= 12000
        })
        .collect();
    assert!(!zero_frames.is_empty());
    assert!(zero_frames.iter().all(|f| f["rms"] == 0.0));
    let huge: Vec<&Value> = frames
        .iter()
        .filter(|f| f["stream"] == "float" && f["sample_index"].as_u64().unwrap_or(0) >= 24000)
        .collect();
    assert!(!huge.is_empty() && huge.iter().all(|f| f["rms"].as_f64().unwrap_or(0.0) > 1e6));
    let streams = status["streams"].as_array().expect("streams");
    assert!(streams
        .iter()
        .any(|s| s["name"] == "float" && s["nonfinite_frames"].as_u64() >= Some(3)));
    assert!(streams
        .iter()
        .any(|s| s["name"] == "clip" && s["clipped_frames"].as_u64() >= Some(10)));
    // The writers went away: the daemon waits for new ones and keeps serving.
    let s = c.until("status");
    assert!(
        s["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .all(|s| s["source_state"] == "waiting for writer"),
        "{s}"
    );
    assert_eq!(d.stop().code(), Some(0));
}

fn excerpt() -> Vec<f32> {
    let (_, x) = read_wav_f32(&cwru("1797_IR_14.wav"));
    x[x.len() * 8 / 10..].to_vec()
}

fn write_int_wav(path: &Path, rate: u32, channels: u16, bits: u16, frames: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create");
    let full = ((1i64 << (bits - 1)) - 1) as f32;
    for i in 0..frames[0].len() {
        for ch in frames {
            let v = (ch[i] * full).round() as i32;
            if bits == 8 {
                w.write_sample(v as i8).expect("write");
            } else {
                w.write_sample(v).expect("write");
            }
        }
    }
    w.finalize().expect("finalize");
}

fn upsample4(x: &[f32]) -> Vec<f32> {
    let mut r = drsnd::resample::Resampler::new(12000, 48000).expect("resampler");
    let mut out = Vec::new();
    r.push(x, |y| out.extend_from_slice(y)).expect("resample");
    out
}

#[test]
fn wav_formats_rates_and_channels_all_classify_alike() {
    let dir = tempfile::tempdir().expect("tmp");
    let x = excerpt();
    let peak = x.iter().fold(0f32, |m, v| m.max(v.abs())) * 1.05;
    let scaled: Vec<f32> = x.iter().map(|v| v / peak).collect();
    let other: Vec<f32> = sine(scaled.len(), 0.3);
    let mut files = Vec::new();
    for bits in [8u16, 16, 24] {
        let p = dir.path().join(format!("int{bits}.wav"));
        write_int_wav(&p, 12000, 1, bits, std::slice::from_ref(&scaled));
        files.push(p);
    }
    let p = dir.path().join("stereo16.wav");
    write_int_wav(&p, 12000, 2, 16, &[scaled.clone(), other]);
    files.push(p);
    let p = dir.path().join("float48k.wav");
    common::write_wav_f32(&p, 48000, &upsample4(&x));
    files.push(p);
    let out = Command::new(BIN)
        .arg("classify")
        .arg("--model")
        .arg(common::model())
        .args(&files)
        .output()
        .expect("classify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in &files {
        let row = text
            .lines()
            .find(|l| l.starts_with(&f.display().to_string()))
            .unwrap_or_else(|| panic!("no row for {}:\n{text}", f.display()));
        let cols: Vec<&str> = row.split_whitespace().collect();
        let frames: usize = cols[1].parse().expect("frames");
        let share: f64 = cols[3].trim_end_matches('%').parse().expect("share");
        assert!(frames >= 40, "{row}");
        assert_eq!(cols[2], "IR_14", "{row}");
        assert!(share >= 90.0, "{row}");
    }
}

#[test]
fn truncated_wav_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("cut.wav");
    common::write_wav_f32(&p, 12000, &excerpt());
    let len = std::fs::metadata(&p).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .expect("open");
    f.set_len(len - 10_001).expect("truncate"); // mid-sample, mid-stream
    let (code, err) = run_fails(&[
        "classify",
        "--model",
        common::model().to_str().expect("utf8"),
        p.to_str().expect("utf8"),
    ]);
    // EX_DATAERR: an unusable input file, not a config or model problem
    // (this said 78 before issue 13 made the exit codes say which).
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("cut.wav"), "{err}");
    // The daemon publishes what it could read, says why it stopped, keeps serving.
    let mut d = Daemon::start(&["--wav", p.to_str().expect("utf8"), "--fast"]);
    let mut c = d.connect();
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(30));
        let m = c.until("status");
        let s = &m["streams"][0];
        if s["source_state"]
            .as_str()
            .is_some_and(|v| v.starts_with("error"))
        {
            assert!(
                s["source_state"].as_str().unwrap_or("").contains("cut.wav"),
                "{s}"
            );
            // Every whole frame before the cut was published.
            let captured = s["captured_samples"].as_u64().unwrap_or(0);
            assert!(captured > 12000, "{s}");
            assert_eq!(
                s["frames"].as_u64(),
                Some((captured - 2048) / 512 + 1),
                "{s}"
            );
            break;
        }
    }
    assert_eq!(d.stop().code(), Some(0));
}

fn copy_model(dir: &Path) -> (PathBuf, PathBuf, Value) {
    let m = common::model();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&m).expect("manifest")).expect("json");
    let onnx = m.with_file_name(manifest["onnx"].as_str().expect("onnx"));
    let dst_onnx = dir.join("m.onnx");
    std::fs::copy(&onnx, &dst_onnx).expect("copy");
    (dir.join("m.json"), dst_onnx, manifest)
}

fn run_with_model(model: &Path) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("s.sock");
    let wav = cwru("1797_IR_14.wav");
    run_fails(&[
        "run",
        "--model",
        model.to_str().expect("utf8"),
        "--socket",
        sock.to_str().expect("utf8"),
        "--wav",
        wav.to_str().expect("utf8"),
    ])
}

#[test]
fn missing_corrupt_and_disagreeing_models_exit_78_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    // Missing.
    let (code, err) = run_with_model(&dir.path().join("nope.json"));
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("nope.json"), "{err}");

    // Corrupt ONNX, manifest sha updated so only the content is wrong.
    let (manifest_path, onnx, mut manifest) = copy_model(dir.path());
    let junk: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&onnx, &junk).expect("junk");
    manifest["onnx"] = "m.onnx".into();
    manifest["sha256"] = sha256_hex(&junk).into();
    std::fs::write(&manifest_path, manifest.to_string()).expect("write");
    let (code, err) = run_with_model(&manifest_path);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("m.onnx") && err.contains("ONNX"), "{err}");

    // Wrong sha.
    let (manifest_path, onnx, mut manifest) = copy_model(dir.path());
    let bytes = std::fs::read(&onnx).expect("read");
    manifest["onnx"] = "m.onnx".into();
    manifest["sha256"] = "0".repeat(64).into();
    std::fs::write(&manifest_path, manifest.to_string()).expect("write");
    let (code, err) = run_with_model(&manifest_path);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("disagree"), "{err}");

    // Right sha, but a threshold layout the graph does not have.
    manifest["sha256"] = sha256_hex(&bytes).into();
    manifest["thresholds"][0]["channels"] = 7.into();
    std::fs::write(&manifest_path, manifest.to_string()).expect("write");
    let (code, err) = run_with_model(&manifest_path);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("channels") && err.contains('7'), "{err}");

    // A valid ONNX model that makes tract panic (tests/fixtures): refused
    // with exit 78 and a reason, not an abort that systemd would restart.
    let crash = dir.path().join("crash");
    std::fs::create_dir_all(&crash).expect("dir");
    let crash_json = crash_model(&crash, &manifest);
    let (code, err) = run_with_model(&crash_json);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("crash.json") && err.contains("crashed while loading"),
        "{err}"
    );
    // The offline commands refuse it the same way instead of aborting.
    let crash_arg = crash_json.to_str().expect("utf8");
    let (code, err) = run_fails(&["check", "--model", crash_arg]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("crashed while loading"), "check: {err}");
    let wav = cwru("1797_IR_14.wav");
    let (code, err) = run_fails(&[
        "classify",
        "--model",
        crash_arg,
        wav.to_str().expect("utf8"),
    ]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("crashed while loading"), "classify: {err}");

    // An output name the graph does not have.
    manifest["thresholds"][0]["channels"] = 16.into();
    manifest["thresholds"][0]["name"] = "tau_99".into();
    std::fs::write(&manifest_path, manifest.to_string()).expect("write");
    let (code, err) = run_with_model(&manifest_path);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("tau_99"), "{err}");
}

#[test]
fn bad_config_values_name_the_key_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let cases = [
        ("hop = 0\n", "hop", "line 1"),
        ("\n\nhopp = 3\n", "hopp", "line 3"),
        ("hop = \"many\"\n", "hop", "line 1"),
        ("[socket]\nmode = \"rw\"\n", "mode", "line 2"),
        (
            "[[source]]\nkind = \"raw\"\npath = \"-\"\nformat = \"f32le\"\n",
            "rate",
            "",
        ),
        ("[[source]]\nkind = \"tape\"\n", "tape", "line 2"),
    ];
    for (text, key, line) in cases {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, text).expect("write");
        let (code, err) = run_fails(&["run", "--config", p.to_str().expect("utf8")]);
        assert_eq!(code, Some(78), "{text:?}: {err}");
        assert!(
            err.contains(key) && err.contains(line) && err.contains("bad.toml"),
            "{text:?} should name {key} {line}: {err}"
        );
        let (code, _) = run_fails(&["check", "--config", p.to_str().expect("utf8")]);
        assert_eq!(code, Some(78));
    }
}

#[test]
fn junk_and_overlong_client_lines_get_an_error_and_the_stream_goes_on() {
    let wav = cwru("1797_IR_14.wav");
    let mut d = Daemon::start(&["--wav", wav.to_str().expect("utf8"), "--loop"]);
    let mut c = d.connect();
    let mut other = d.connect();
    c.until("frame");
    c.send("this is not json\n");
    let e = c.until("error");
    assert!(
        e["message"].as_str().unwrap_or("").contains("bad command"),
        "{e}"
    );
    c.send("{\"types\":[\"telepathy\"]}\n");
    assert!(c.until("error")["message"]
        .as_str()
        .unwrap_or("")
        .contains("telepathy"));
    c.send("{\"streams\":[\"nope\"]}\n");
    assert!(c.until("error")["message"]
        .as_str()
        .unwrap_or("")
        .contains("nope"));
    let long = "x".repeat(200_000);
    c.send(&long);
    c.send("\n");
    assert!(c.until("error")["message"]
        .as_str()
        .unwrap_or("")
        .contains("too long"));
    // A valid filter: frames without thresholds.
    c.send("{\"types\":[\"frame\"],\"thresholds\":false}\n");
    let t0 = Instant::now();
    let mut lite = 0;
    while lite < 5 {
        assert!(t0.elapsed() < Duration::from_secs(20));
        let m = c.next().expect("open");
        if m["type"] == "frame" && m.get("thresholds").is_none() {
            lite += 1;
        }
    }
    // A status-only filter.
    c.send("{\"types\":[\"status\"]}\n");
    let mut statuses = 0;
    let mut frames_after = 0;
    let t0 = Instant::now();
    while statuses < 3 && t0.elapsed() < Duration::from_secs(20) {
        let m = c.next().expect("open");
        match m["type"].as_str() {
            Some("status") => statuses += 1,
            Some("frame") if statuses > 0 => frames_after += 1,
            _ => {}
        }
    }
    assert_eq!(statuses, 3);
    assert_eq!(frames_after, 0, "status-only client still got frames");
    // The other client never noticed, and still gets thresholds.
    let f = other.until("frame");
    assert!(f["thresholds"].as_array().is_some_and(|t| !t.is_empty()));
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn socket_path_is_taken_over_only_when_stale() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = cwru("1797_IR_14.wav");
    let sock = dir.path().join("s.sock");
    // A regular file is not ours to remove.
    std::fs::write(&sock, "precious").expect("write");
    let (code, err) = run_fails(&[
        "run",
        "--model",
        common::model().to_str().expect("utf8"),
        "--socket",
        sock.to_str().expect("utf8"),
        "--wav",
        wav.to_str().expect("utf8"),
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&sock).expect("kept"), "precious");
    std::fs::remove_file(&sock).expect("rm");
    // A stale socket (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
    assert!(sock.exists());
    let mut d = Daemon::start_at(
        Some(sock.clone()),
        &["--wav", wav.to_str().expect("utf8")],
        &[],
    );
    drop(d.connect());
    assert_eq!(d.stop().code(), Some(0));
    assert!(!sock.exists(), "socket not removed on exit");
    // A live one is not.
    let d1 = Daemon::start(&["--wav", wav.to_str().expect("utf8")]);
    let (code, err) = run_fails(&[
        "run",
        "--model",
        common::model().to_str().expect("utf8"),
        "--socket",
        d1.socket.to_str().expect("utf8"),
        "--wav",
        wav.to_str().expect("utf8"),
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("another daemon"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&d1.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
}

/// Files drsnd cannot sensibly classify say so, by name and reason, instead
/// of giving 0 frames and exit 0; no frame from any file is EX_DATAERR (65).
/// Before the fix an 8-channel 24-bit WAV at 7 Hz gave 0 frames, exit 0 and
/// no word why.
#[test]
fn odd_input_files_are_named_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = common::model();
    let model = model.to_str().expect("utf8");
    let x = excerpt();
    let peak = x.iter().fold(0f32, |m, v| m.max(v.abs())) * 1.05;
    let scaled: Vec<f32> = x.iter().map(|v| v / peak).collect();
    let eight: Vec<Vec<f32>> = (0..8).map(|_| scaled[..2000].to_vec()).collect();
    let slow = dir.path().join("eight-at-7hz.wav");
    write_int_wav(&slow, 7, 8, 24, &eight);
    let short = dir.path().join("short.wav");
    common::write_wav_f32(&short, 12000, &x[..1000]);
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"RIFF not a wave file at all").expect("junk");
    let good = dir.path().join("good.wav");
    let wide: Vec<Vec<f32>> = (0..3).map(|_| scaled.clone()).collect();
    write_int_wav(&good, 12000, 3, 16, &wide);
    let arg = |p: &Path| p.to_str().expect("utf8").to_string();

    let (code, err) = run_fails(&["classify", "--model", model, &arg(&slow)]);
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains("eight-at-7hz.wav") && err.contains("7 Hz") && err.contains("far below"),
        "{err}"
    );
    assert!(err.contains("no file gave a frame"), "{err}");

    let (code, err) = run_fails(&["classify", "--model", model, &arg(&short)]);
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains("short.wav") && err.contains("shorter than one frame"),
        "{err}"
    );

    let (code, err) = run_fails(&["classify", "--model", model, &arg(&junk)]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("junk.wav"), "{err}");

    // A usable file beside an unusable one: its rows come out, the other
    // is named, and the exit is 0 only when nothing was unreadable.
    let out = Command::new(BIN)
        .args(["classify", "--model", model, &arg(&good), &arg(&short)])
        .output()
        .expect("classify");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("good.wav"), "{stdout}");
    assert!(
        stderr.contains("good.wav: 3 channels, reading channel 0"),
        "which channel is read: {stderr}"
    );
    assert!(stderr.contains("short.wav"), "{stderr}");
    let out = Command::new(BIN)
        .args(["classify", "--model", model, &arg(&good), &arg(&junk)])
        .output()
        .expect("classify");
    assert_eq!(out.status.code(), Some(65));
}

/// With no config and no --model, a run from a checkout finds `models/` in
/// its working directory and anywhere else looks where the package installs
/// the model: the build machine's path is not baked into the binary (it
/// was: `CARGO_MANIFEST_DIR/models` came first).
#[test]
fn the_default_model_is_found_without_the_build_machines_path() {
    assert!(
        !std::path::Path::new("/etc/drsn/drsnd.toml").exists(),
        "this test needs a machine without /etc/drsn/drsnd.toml"
    );
    let elsewhere = tempfile::tempdir().expect("tmp");
    let out = Command::new(BIN)
        .arg("check")
        .current_dir(elsewhere.path())
        .output()
        .expect("check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("/usr/share/drsn/models/drsn-cw-cwru10.json"),
        "looks where the package puts it: {err}"
    );
    let checkout = tempfile::tempdir().expect("tmp");
    std::os::unix::fs::symlink(
        common::root().join("models"),
        checkout.path().join("models"),
    )
    .expect("symlink");
    let out = Command::new(BIN)
        .args(["classify", "--json"])
        .arg(cwru("1797_IR_14.wav"))
        .current_dir(checkout.path())
        .output()
        .expect("classify");
    assert!(
        out.status.success(),
        "finds models/ in the working directory: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = std::fs::read(BIN).expect("binary");
    let baked = format!("{}/models", env!("CARGO_MANIFEST_DIR"));
    assert!(
        !bin.windows(baked.len()).any(|w| w == baked.as_bytes()),
        "the binary holds {baked}"
    );
}
