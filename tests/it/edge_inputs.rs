//! Inputs at the edges, through the real binary: sample rates from 8 to
//! 192 kHz, 1 to 8 channels, hops from 1 sample to the frame length,
//! denormals and huge values, and frames that cross the capture ring's
//! wrap-around. Each gives the right frames (count, position, finite
//! numbers) or a clear error.

use crate::common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn write_wav(path: &Path, rate: u32, channels: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav create");
    for i in 0..channels[0].len() {
        for c in channels {
            w.write_sample(c[i]).expect("write");
        }
    }
    w.finalize().expect("finalize");
}

fn classify(file: &Path, extra: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_drsnd"))
        .arg("classify")
        .arg("--json")
        .arg("--model")
        .arg(model())
        .args(extra)
        .arg(file)
        .output()
        .expect("classify runs");
    assert!(
        out.status.success(),
        "classify {} {extra:?} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(validate)
        .filter(common::is_frame)
        .collect()
}

/// Every number a frame carries is finite, and probabilities sum to 1.
fn check_finite(frames: &[Value]) {
    for f in frames {
        let probs: Vec<f64> = f["probs"]
            .as_array()
            .expect("probs")
            .iter()
            .map(|p| p.as_f64().expect("number"))
            .collect();
        assert!(probs.iter().all(|p| p.is_finite()), "{f}");
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-3, "{f}");
        for unit in f["thresholds"].as_array().expect("thresholds") {
            for t in unit.as_array().expect("unit") {
                let t = t.as_f64().expect("tau");
                assert!(t.is_finite() && t >= 0.0, "{f}");
            }
        }
        for k in ["rms", "peak"] {
            assert!(f[k].as_f64().is_some_and(f64::is_finite), "{k}: {f}");
        }
    }
}

/// Frames of 2048 at `hop` from `n` model-rate samples.
fn expected(n: usize, hop: usize) -> usize {
    if n < 2048 {
        0
    } else {
        (n - 2048) / hop + 1
    }
}

#[test]
fn every_rate_from_8_to_192_khz_gives_the_frames_its_length_implies() {
    let dir = tempfile::tempdir().expect("tmp");
    for rate in [
        8_000u32, 11_025, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000,
    ] {
        let x = signal(rate, 2.0, 0.5);
        let path = dir.path().join(format!("r{rate}.wav"));
        write_wav(&path, rate, &[x]);
        let frames = classify(&path, &["--hop", "512"]);
        let n12 = 2 * 12_000;
        let want = expected(n12, 512);
        // The resampler's filter may hold back its last few samples.
        assert!(
            frames.len() + 1 >= want && frames.len() <= want,
            "{rate} Hz: {} frames, want {want}",
            frames.len()
        );
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(
                f["sample_index"].as_u64(),
                Some(k as u64 * 512),
                "{rate} Hz"
            );
            // The sine's RMS survives resampling (0.5 * sqrt(1.09/2) ~ 0.37, plus noise).
            let rms = f["rms"].as_f64().expect("rms");
            assert!((0.3..0.45).contains(&rms), "{rate} Hz frame {k}: rms {rms}");
        }
        check_finite(&frames);
    }
}

#[test]
fn one_to_eight_channels_each_readable_on_its_own() {
    let dir = tempfile::tempdir().expect("tmp");
    for channels in [1usize, 2, 3, 8] {
        // Channel c carries the signal at amplitude (c+1)/10; the others differ.
        let chans: Vec<Vec<f32>> = (0..channels)
            .map(|c| signal(48_000, 1.0, (c + 1) as f32 / 10.0))
            .collect();
        let path = dir.path().join(format!("c{channels}.wav"));
        write_wav(&path, 48_000, &chans);
        for c in 0..channels {
            let frames = classify(&path, &["--channel", &c.to_string()]);
            assert_eq!(
                frames.len(),
                expected(12_000, 512),
                "{channels} ch, channel {c}"
            );
            let rms = frames[0]["rms"].as_f64().expect("rms");
            let want = (c + 1) as f64 / 10.0 * 0.74;
            assert!(
                (rms / want - 1.0).abs() < 0.15,
                "{channels} ch, channel {c}: rms {rms}, want ~{want}"
            );
        }
    }
    // A channel the file does not have: a clear error naming it.
    let out = Command::new(env!("CARGO_BIN_EXE_drsnd"))
        .args(["classify", "--json", "--channel", "8", "--model"])
        .arg(model())
        .arg(dir.path().join("c8.wav"))
        .output()
        .expect("classify runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("c8.wav") && err.contains("channel"), "{err}");
}

#[test]
fn hops_from_one_sample_to_the_frame_length() {
    let dir = tempfile::tempdir().expect("tmp");
    let x = signal(12_000, 0.4, 0.5);
    let path = dir.path().join("short.wav");
    write_wav(&path, 12_000, std::slice::from_ref(&x));
    for hop in [1usize, 7, 512, 2047, 2048] {
        let frames = classify(&path, &["--hop", &hop.to_string()]);
        assert_eq!(frames.len(), expected(x.len(), hop), "hop {hop}");
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(
                f["sample_index"].as_u64(),
                Some((k * hop) as u64),
                "hop {hop}"
            );
        }
        check_finite(&frames);
    }
    // Hop 0 is refused with the reason.
    let out = Command::new(env!("CARGO_BIN_EXE_drsnd"))
        .args(["classify", "--json", "--hop", "0", "--model"])
        .arg(model())
        .arg(&path)
        .output()
        .expect("classify runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hop"));
}

#[test]
fn denormals_and_huge_values_give_finite_frames_or_flags() {
    let dir = tempfile::tempdir().expect("tmp");
    let n = 12_000;
    let cases: [(&str, Vec<f32>); 4] = [
        (
            "denormal",
            (0..n)
                .map(|i| if i % 2 == 0 { 1e-40 } else { -3e-41 })
                .collect(),
        ),
        ("tiny", signal(12_000, 1.0, 1e-30)),
        ("large", signal(12_000, 1.0, 1e10)),
        ("beyond", signal(12_000, 1.0, 1e30)),
    ];
    for (name, x) in cases {
        let path = dir.path().join(format!("{name}.wav"));
        write_wav(&path, 12_000, &[x]);
        for rate_args in [&[][..], &["--hop", "256"][..]] {
            let frames = classify(&path, rate_args);
            assert_eq!(
                frames.len(),
                expected(n, if rate_args.is_empty() { 512 } else { 256 }),
                "{name}"
            );
            check_finite(&frames);
            let flagged = frames.iter().all(|f| {
                f["flags"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "nonfinite"))
            });
            // Beyond 1e15 a sample is no measurement: zeroed and flagged.
            assert_eq!(flagged, name == "beyond", "{name}: flags");
        }
    }
    // The same through resampling (a huge value once overflowed rubato's FFT).
    let x: Vec<f32> = signal(48_000, 1.0, 1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 997 == 0 { 3e38 } else { *v })
        .collect();
    let path = dir.path().join("spikes48k.wav");
    write_wav(&path, 48_000, &[x]);
    let frames = classify(&path, &[]);
    assert_eq!(frames.len(), expected(12_000, 512));
    check_finite(&frames);
}

/// A ring of 0.23 s (2760 samples: not a multiple of the frame or hop)
/// wraps around every few frames; the daemon's frames equal classify's.
#[test]
fn frames_across_the_ring_wrap_around_equal_the_offline_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_, x) = read_wav_f32(&cwru("1797_IR_14.wav"));
    let x = &x[..12_000 * 6];
    let wav = dir.path().join("ref.wav");
    write_wav_f32(&wav, 12_000, x);
    let offline = classify(&wav, &["--hop", "512"]);
    let fifo = dir.path().join("in.fifo");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("cstr");
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[[source]]\nkind = \"raw\"\npath = \"{}\"\nformat = \"f32le\"\nrate = 12000\nstreams = [\"s\"]\nring-seconds = 0.23\n",
            model().display(),
            fifo.display()
        ),
    )
    .expect("config");
    let d = Daemon::start(&[
        "--config",
        cfg.to_str().expect("utf-8"),
        "--model",
        model().to_str().expect("utf-8"),
    ]);
    let mut client = d.connect();
    client.until("hello");
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("fifo");
        // Odd-sized writes, so chunk edges land everywhere.
        for chunk in bytes.chunks(4 * 1237) {
            f.write_all(chunk).expect("write");
        }
    });
    let mut live = Vec::new();
    while live.len() < offline.len() {
        let v = client.next().expect("frames");
        if v["type"] == "frame" {
            live.push(v);
        }
    }
    writer.join().expect("fed");
    for (a, b) in live.iter().zip(&offline) {
        assert_eq!(a["sample_index"], b["sample_index"]);
        assert_eq!(a["label"], b["label"]);
        let (pa, pb) = (
            a["probs"].as_array().expect("p"),
            b["probs"].as_array().expect("p"),
        );
        for (u, v) in pa.iter().zip(pb) {
            let (u, v) = (u.as_f64().expect("f"), v.as_f64().expect("f"));
            assert!((u - v).abs() < 1e-5, "{u} vs {v} at {}", a["sample_index"]);
        }
    }
}
