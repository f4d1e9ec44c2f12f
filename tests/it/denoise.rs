//! The DRSN denoiser on the real binary: tract against PyTorch, `drsnd
//! denoise` on real recordings with noise added, and the daemon's
//! per-stream socket giving the offline file's samples, dropping a reader
//! that stops reading while the other goes on, and a reload that keeps the
//! running denoiser when the new file is broken.

use crate::common;

use common::*;
use drsnd::infer::denoiser::Denoiser;
use drsnd::manifest::ModelFiles;
use serde_json::Value;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn denoiser() -> PathBuf {
    root().join("models").join("drsn-denoise.json")
}

fn uestc(file: &str) -> PathBuf {
    let p = root().join("..").join("shared").join("uestc").join(file);
    assert!(p.exists(), "{} is missing (../shared/uestc)", p.display());
    p
}

/// Gaussian noise at `snr_db` below the signal's power, from a fixed seed.
fn add_noise(x: &[f32], snr_db: f64, seed: u64) -> Vec<f32> {
    let power = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64;
    let sigma = (power / 10f64.powf(snr_db / 10.0)).sqrt();
    let mut s = seed;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    x.iter()
        .map(|&v| {
            let (a, b) = (uniform(), uniform());
            let n = (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos();
            (v as f64 + sigma * n) as f32
        })
        .collect()
}

fn snr_db(clean: &[f32], est: &[f32]) -> f64 {
    let (mut s, mut e) = (0f64, 0f64);
    for (c, y) in clean.iter().zip(est) {
        s += (*c as f64).powi(2);
        e += (*y as f64 - *c as f64).powi(2);
    }
    10.0 * (s / e).log10()
}

fn run_denoise(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("denoise")
        .args(args)
        .output()
        .expect("drsnd denoise")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn tract_matches_pytorch_on_the_denoised_frame_and_every_threshold() {
    let files = ModelFiles::load(&denoiser()).expect("denoiser loads");
    let mut d = Denoiser::load(&files).expect("denoiser optimises");
    let text =
        std::fs::read_to_string(denoiser().with_extension("parity.json")).expect("parity vectors");
    let doc: Value = serde_json::from_str(&text).expect("json");
    let tol = doc["tolerance"].as_f64().expect("tolerance");
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    };
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 5);
    let n = files.manifest.frame_length;
    for case in cases {
        let x: Vec<f32> = nums(&case["signal"]).iter().map(|&v| v as f32).collect();
        let mut y = vec![0.0; n];
        let mut taus = Vec::new();
        d.run(&x, &mut y, &mut taus).expect("runs");
        let want = nums(&case["outputs"]["denoised"]);
        let scale = want.iter().fold(1f64, |m, v| m.max(v.abs()));
        let worst = want
            .iter()
            .zip(&y)
            .map(|(w, g)| (w - *g as f64).abs())
            .fold(0f64, f64::max);
        assert!(
            worst / scale <= tol,
            "{}: {worst:e} (scale {scale})",
            case["name"]
        );
        // The frame reports each unit's mean threshold.
        for (t, got) in files.manifest.thresholds.iter().zip(&taus) {
            let w = nums(&case["outputs"][&t.name]);
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            assert!(
                (mean - *got as f64).abs() <= tol * mean.abs().max(1.0),
                "{}",
                t.name
            );
        }
        assert_eq!(taus.len(), files.manifest.thresholds.len());
        // A model with an SNR output reports it, as PyTorch computed it.
        match files.manifest.snr_output.as_deref() {
            Some(name) => {
                let w = nums(&case["outputs"][name])[0];
                let got = d.snr_db().expect("the SNR output is read") as f64;
                // In dB where the parity file says so (python export.save_parity).
                let allowed = doc["absolute"][name]
                    .as_f64()
                    .unwrap_or(tol * w.abs().max(1.0));
                assert!((w - got).abs() <= allowed, "{name}: {got} vs {w}");
            }
            None => assert_eq!(d.snr_db(), None),
        }
    }
}

#[test]
fn denoise_raises_the_snr_of_real_recordings_and_keeps_them_aligned() {
    let dir = tempfile::tempdir().expect("tmp");
    for file in ["1797_OR6_7.wav", "1772_IR_14.wav"] {
        let (rate, clean) = read_wav_f32(&cwru(file));
        let noisy = add_noise(&clean, 0.0, 7);
        let (inp, out) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
        write_wav_f32(&inp, rate, &noisy);
        let o = run_denoise(&[s(&inp), s(&out), "--model", s(&denoiser())]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (orate, y) = read_wav_f32(&out);
        assert_eq!(
            (orate, y.len()),
            (12000, clean.len()),
            "{file}: same rate, same length"
        );
        let gain = snr_db(&clean, &y) - snr_db(&clean, &noisy);
        assert!(gain >= 3.0, "{file}: SNR gain {gain:.2} dB at 0 dB input");
        // Clean in, nearly the same out.
        write_wav_f32(&inp, rate, &clean);
        assert!(run_denoise(&[s(&inp), s(&out)]).status.success());
        let (_, y) = read_wav_f32(&out);
        let t = snr_db(&clean, &y);
        assert!(
            t >= 20.0,
            "{file}: clean input changed, output vs input {t:.1} dB"
        );
    }
    // Another rate is resampled first; the output says 12 kHz and lasts as long.
    let path = uestc("O_1000_1.wav");
    let (rate, x) = read_wav_f32(&path);
    let out = dir.path().join("uestc.wav");
    let o = run_denoise(&[s(&path), s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resampled"));
    let (orate, y) = read_wav_f32(&out);
    assert_eq!(orate, 12000);
    assert_eq!(y.len(), x.len() * 12000 / rate as usize);
    assert!(y.iter().all(|v| v.is_finite()));
}

/// The median `denoise.snr_db` of the frames `drsnd classify` prints for
/// `wav`, as the daemon would run it with the shipped denoiser.
fn median_frame_snr(dir: &Path, wav: &Path) -> f64 {
    let cfg = config(dir, wav, &denoiser(), "");
    let o = std::process::Command::new(BIN)
        .args([
            "classify",
            "--config",
            s(&cfg),
            "--stream",
            "pump",
            "--json",
            s(wav),
        ])
        .output()
        .expect("drsnd classify");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut v: Vec<f64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(common::validate)
        .filter_map(|f| f["denoise"]["snr_db"].as_f64())
        .collect();
    assert!(v.len() >= 20, "{} frames with an SNR", v.len());
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn every_frame_carries_the_models_estimate_of_the_input_snr() {
    // The estimate (denoiser 2's own output) follows the truth: within
    // 2 dB at -4 and +4 dB, and a clean recording reads as clean.
    let dir = tempfile::tempdir().expect("tmp");
    let (rate, clean) = read_wav_f32(&cwru("1797_IR_14.wav"));
    let wav = dir.path().join("in.wav");
    for want in [-4.0, 4.0] {
        write_wav_f32(&wav, rate, &add_noise(&clean, want, 11));
        let got = median_frame_snr(dir.path(), &wav);
        assert!(
            (got - want).abs() <= 2.0,
            "input at {want} dB reads {got:.2} dB"
        );
    }
    write_wav_f32(&wav, rate, &clean);
    let got = median_frame_snr(dir.path(), &wav);
    assert!(got >= 20.0, "the clean recording reads {got:.2} dB");
}

#[test]
fn denoise_refuses_bad_input_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("o.wav");
    let missing = dir.path().join("missing.wav");
    let o = run_denoise(&[s(&missing), s(&out)]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.wav"));
    let o = run_denoise(&[s(&cwru("1797_IR_7.wav")), s(&out), "--model", s(&model())]);
    assert_eq!(o.status.code(), Some(78));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("drsn-cw-cwru10.json") && err.contains("kind"),
        "{err}"
    );
    // A short file still gives its samples back, one padded frame.
    let short = dir.path().join("short.wav");
    write_wav_f32(&short, 12000, &[0.5f32; 700]);
    assert!(run_denoise(&[s(&short), s(&out)]).status.success());
    assert_eq!(read_wav_f32(&out).1.len(), 700);
}

/// `extra`: more tables, before the source.
fn config(dir: &Path, wav: &Path, model: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[denoise]\nmodel = \"{}\"\nsocket-dir = \"{}\"\n{extra}\n[[source]]\nkind = \"wav\"\n\
             path = \"{}\"\nloop = true\nstreams = [\"pump\"]\n",
            model.display(),
            dir.join("denoised").display(),
            wav.display()
        ),
    )
    .expect("config");
    cfg
}

fn connect_when_there(path: &Path) -> UnixStream {
    let t0 = Instant::now();
    loop {
        if let Ok(s) = UnixStream::connect(path) {
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_samples(s: &mut UnixStream, n: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; n * 4];
    s.read_exact(&mut bytes).expect("denoised samples");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Where `got` starts in `want`: the one offset (on the hop grid) where
/// the first samples agree.
fn offset_in(want: &[f32], got: &[f32]) -> usize {
    (0..want.len() - got.len())
        .step_by(512)
        .find(|&o| (0..64).all(|i| (want[o + i] - got[i]).abs() <= 1e-6))
        .expect("the socket's samples are found in the offline output")
}

#[test]
fn the_stream_socket_gives_the_offline_samples_and_drops_a_reader_that_stops() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = cwru("1797_IR_7.wav");
    let cfg = config(dir.path(), &wav, &denoiser(), "");
    let mut d = Daemon::start(&["--config", s(&cfg)]);
    let sock = dir.path().join("denoised").join("pump.f32");
    let mut a = connect_when_there(&sock);
    let _idle = connect_when_there(&sock); // connects, never reads
    let got = read_samples(&mut a, 24000);

    let out = dir.path().join("offline.wav");
    let o = run_denoise(&[s(&wav), s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, want) = read_wav_f32(&out);
    let at = offset_in(&want, &got);
    assert!(
        at + got.len() <= want.len() - 1024,
        "compare within one pass"
    );
    let worst = got
        .iter()
        .zip(&want[at..])
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-6, "socket vs offline: {worst:e}");

    // Every frame says what the denoiser saw.
    let mut c = d.connect();
    let hello = c.until("hello");
    assert!(hello["streams"].is_array());
    let f = c.until("frame");
    let dn = &f["denoise"];
    assert!(dn["snr_db"].as_f64().is_some(), "{f}");
    assert_eq!(dn["thresholds"].as_array().map(Vec::len), Some(4), "{f}");
    // hello names the denoiser: what it is, and where its sockets are.
    let shipped: Value =
        serde_json::from_slice(&std::fs::read(denoiser()).expect("manifest")).expect("json");
    let hd = &hello["denoiser"];
    assert_eq!(hd["sha256"], shipped["sha256"], "{hello}");
    assert_eq!(hd["hop"], 1024, "{hello}");
    assert_eq!(
        hd["thresholds"].as_array().map(Vec::len),
        Some(4),
        "{hello}"
    );
    let sockets = dir.path().join("denoised");
    assert_eq!(hd["socket_dir"].as_str(), Some(s(&sockets)), "{hello}");

    // The idle reader's socket buffer fills within seconds: it is dropped,
    // and the other reader goes on getting samples.
    let t0 = Instant::now();
    let mut dropped = Value::Null;
    while t0.elapsed() < Duration::from_secs(30) {
        read_samples(&mut a, 1200);
        let m = c.next().expect("daemon talking");
        if m["type"] == "status" {
            let st = &m["streams"][0]["denoised"];
            if st["readers_dropped"].as_u64().unwrap_or(0) >= 1 {
                dropped = st.clone();
                break;
            }
        }
    }
    assert_eq!(dropped["readers"], 1, "{dropped}");
    assert_eq!(dropped["dropped_samples"], 0, "{dropped}");
    let more = read_samples(&mut a, 12000);
    assert!(more.iter().any(|v| *v != 0.0));
    assert_eq!(d.stop().code(), Some(0));
    assert!(!sock.exists(), "the socket is removed at stop");
}

#[test]
fn a_reload_swaps_the_denoiser_and_a_broken_one_keeps_the_old_and_snapshots_carry_it() {
    let dir = tempfile::tempdir().expect("tmp");
    // A copy of the shipped denoiser, to break and mend.
    let models = dir.path().join("m");
    std::fs::create_dir(&models).expect("dir");
    for ext in ["json", "onnx"] {
        std::fs::copy(
            denoiser().with_extension(ext),
            models.join(format!("d.{ext}")),
        )
        .expect("copy");
    }
    let manifest = models.join("d.json");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let text = text.replace("\"drsn-denoise.onnx\"", "\"d.onnx\"");
    std::fs::write(&manifest, &text).expect("manifest");
    let spool = dir.path().join("spool");
    let snapshots = format!(
        "[snapshots]\ndir = \"{}\"\npre-s = 1.0\npost-s = 1.0\n",
        spool.display()
    );
    let cfg = config(dir.path(), &cwru("1797_IR_7.wav"), &manifest, &snapshots);
    let mut d = Daemon::start(&["--config", s(&cfg)]);
    let mut c = d.connect();
    c.until("frame");
    // The reload's own status: a later one than any seen before.
    let mut last_at = -1.0;
    let mut reload = |c: &mut Client, d: &Daemon| -> Value {
        unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            let m = c.next().expect("daemon talking");
            let at = m["reload"]["at_uptime_s"].as_f64().unwrap_or(-1.0);
            if m["type"] == "status" && at > last_at {
                last_at = at;
                return m["reload"].clone();
            }
        }
        panic!("no reload status");
    };
    std::fs::write(models.join("d.onnx"), b"not an onnx model").expect("break");
    let r = reload(&mut c, &d);
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["message"].as_str().unwrap_or("").contains("d.onnx"),
        "{r}"
    );
    let f = c.until("frame");
    assert!(
        f["denoise"]["thresholds"].is_array(),
        "still denoising: {f}"
    );
    std::fs::copy(denoiser().with_extension("onnx"), models.join("d.onnx")).expect("mend");
    // A new version number, for hello to show that it follows the reload.
    let text = text.replacen("\"version\": \"", "\"version\": \"9.9.9-", 1);
    std::fs::write(&manifest, &text).expect("manifest");
    let r = reload(&mut c, &d);
    assert_eq!(r["ok"], true, "{r}");
    let hello = d.connect().until("hello");
    let version = hello["denoiser"]["version"].as_str().unwrap_or("");
    assert!(version.starts_with("9.9.9-"), "{hello}");
    // The swap happens between two frames. The new denoiser starts on the
    // old one's grid, so at most one frame at the swap has `denoise` null
    // (the one before the new denoiser's first), and every frame after has it.
    let frames: Vec<Value> = (0..8).map(|_| c.until("frame")).collect();
    let nulls = frames
        .iter()
        .filter(|f| !f["denoise"]["thresholds"].is_array())
        .count();
    assert!(nulls <= 1, "{frames:?}");
    assert!(frames[6..]
        .iter()
        .all(|f| f["denoise"]["thresholds"].is_array()));

    // The fault's snapshot (the IR_7 recording raises one within seconds)
    // has the denoised signal beside the raw one.
    let t0 = Instant::now();
    let mut side = None;
    while side.is_none() && t0.elapsed() < Duration::from_secs(60) {
        side = std::fs::read_dir(&spool).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    let side = side.expect("a snapshot sidecar in the spool");
    let wav = side.with_extension("wav");
    // The sidecar may still be being written when it first appears.
    let t0 = Instant::now();
    let doc: Value = loop {
        let bytes = std::fs::read(&side).expect("sidecar");
        match serde_json::from_slice(&bytes) {
            Ok(v) => break v,
            Err(e) if t0.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{}: {e}", side.display()),
        }
    };
    let dn = &doc["denoised"];
    assert_eq!(dn["sample_rate"], 12000, "{dn}");
    let (rate, y) = read_wav_f32(&wav.with_extension("denoised.wav"));
    assert_eq!(rate, 12000);
    let span = dn["end_stream_time_s"].as_f64().expect("end")
        - dn["start_stream_time_s"].as_f64().expect("start");
    assert!(
        y.len() > 12000 && (y.len() as f64 - span * 12000.0).abs() < 1.0,
        "{} samples, {dn}; raw {} .. {} s",
        doc["start_stream_time_s"],
        doc["end_stream_time_s"],
        y.len()
    );
    assert!(y.iter().any(|v| *v != 0.0));
    assert_eq!(d.stop().code(), Some(0));
}
