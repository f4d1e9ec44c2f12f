//! Acceptance 2: the held-out last 20 % of every 10-class recording, replayed
//! in real time through `drsnd run` (one wav stream each), is labelled
//! correctly by a socket subscriber (>= 97 % per class), and `drsnd classify`
//! gives the same labels for the same frames.

use crate::common;

use common::{class_files, classify_json, cwru, read_wav_f32, write_wav_f32, Daemon, CLASSES};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[test]
fn held_out_recordings_are_labelled_right_live_and_offline() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut files = Vec::new();
    let mut truth = HashMap::new();
    for class in CLASSES {
        for f in class_files(class) {
            let (rate, x) = read_wav_f32(&cwru(&f));
            let tail = &x[x.len() * 8 / 10..];
            let stem = f.trim_end_matches(".wav").to_string() + "_last20";
            let path = tmp.path().join(format!("{stem}.wav"));
            write_wav_f32(&path, rate, tail);
            truth.insert(stem, class);
            files.push(path);
        }
    }
    let mut args: Vec<String> = Vec::new();
    for f in &files {
        args.push("--wav".into());
        args.push(f.display().to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut daemon = Daemon::start(&argv);
    let mut client = daemon.connect();
    let hello = client.until("hello");
    assert_eq!(
        hello["streams"].as_array().expect("streams").len(),
        files.len()
    );

    // (stream, sample_index) -> label, and seq continuity per stream.
    let mut live: HashMap<(String, u64), String> = HashMap::new();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "replay did not finish"
        );
        let m = client.next().expect("daemon open");
        match m["type"].as_str() {
            Some("frame") => {
                let stream = m["stream"].as_str().expect("stream").to_string();
                let seq = m["seq"].as_u64().expect("seq");
                if let Some(prev) = last_seq.insert(stream.clone(), seq) {
                    assert_eq!(seq, prev + 1, "{stream}: seq not contiguous");
                } else {
                    assert_eq!(seq, 0, "{stream}: first frame missed");
                }
                live.insert(
                    (stream, m["sample_index"].as_u64().expect("index")),
                    m["label"].as_str().expect("label").to_string(),
                );
            }
            Some("status") => {
                let streams = m["streams"].as_array().expect("streams");
                let done = streams.iter().all(|s| {
                    s["source_state"] == "ended"
                        && s["frames"].as_u64()
                            == last_seq
                                .get(s["name"].as_str().unwrap_or(""))
                                .map(|q| q + 1)
                });
                if done {
                    for s in streams {
                        assert_eq!(s["overrun_samples"], 0);
                        assert_eq!(s["dropped_frames"], 0);
                    }
                    break;
                }
            }
            _ => {}
        }
    }
    assert_eq!(daemon.stop().code(), Some(0));

    // Per-class accuracy of the live labels.
    let mut per_class: HashMap<&str, (usize, usize)> = HashMap::new();
    for ((stream, _), label) in &live {
        let want = truth[stream.as_str()];
        let e = per_class.entry(want).or_default();
        e.1 += 1;
        if label == want {
            e.0 += 1;
        }
    }
    let mut report = Vec::new();
    for class in CLASSES {
        let (ok, n) = per_class.get(class).copied().unwrap_or_default();
        assert!(n >= 10, "{class}: only {n} frames");
        let acc = ok as f64 / n as f64;
        report.push(format!("{class} {:.1}% of {n}", acc * 100.0));
        assert!(
            acc >= 0.97,
            "{class}: {:.2}% correct (< 97%): {report:?}",
            acc * 100.0
        );
    }
    eprintln!("live accuracy per class: {}", report.join(", "));

    // Offline, same frames, same labels.
    let offline = classify_json(&files, 512);
    let mut compared = 0;
    for m in &offline {
        let stem = std::path::Path::new(m["stream"].as_str().expect("stream"))
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let key = (stem, m["sample_index"].as_u64().expect("index"));
        let live_label = live
            .get(&key)
            .unwrap_or_else(|| panic!("daemon never published frame {key:?}"));
        assert_eq!(
            live_label,
            m["label"].as_str().expect("label"),
            "frame {key:?}"
        );
        compared += 1;
    }
    assert_eq!(
        compared,
        live.len(),
        "classify and the daemon cut different frames"
    );
}
