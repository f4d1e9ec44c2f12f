//! Soak: one stream replayed as fast as the machine goes, for the frames of
//! `DRSN_SOAK_HOURS` of audio (default 0.5 h in CI; the 24-hour run is
//! `DRSN_SOAK_HOURS=24 cargo test --release --test soak -- --nocapture`,
//! reported in docs/reliability.md), while subscribers join and leave at
//! random. The subscriber that stays must see every frame in order; the
//! daemon must not panic, drop or lose a frame, and its memory must not grow.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The seq of a frame line without parsing all of it (the keeper must keep
/// up with thousands of frames a second).
fn frame_seq(line: &str) -> Option<u64> {
    if !line.starts_with("{\"type\":\"frame\"") {
        return None;
    }
    let rest = &line[line.find("\"seq\":")? + 6..];
    rest[..rest.find(',')?].parse().ok()
}

#[test]
fn a_long_fast_replay_with_churning_subscribers_loses_nothing_and_does_not_grow() {
    let hours: f64 = std::env::var("DRSN_SOAK_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.5);
    let frames_wanted = (hours * 3600.0 * 12_000.0 / 512.0) as u64;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[socket]\nclient-queue = 65536\nmax-missed = 1000000000\nstatus-interval-ms = 500\n",
            model().display()
        ),
    )
    .expect("config");
    let wav = cwru("1797_IR_14.wav");
    let mut d = Daemon::start(&[
        "--config",
        cfg.to_str().expect("utf-8"),
        "--model",
        model().to_str().expect("utf-8"),
        "--wav",
        wav.to_str().expect("utf-8"),
        "--fast",
        "--loop",
    ]);

    // The keeper: stays to the end, reads every line.
    let keeper = UnixStream::connect(&d.socket).expect("connect");
    let (seen, gaps, last_status) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(std::sync::Mutex::new(String::new())),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let keeper_thread = {
        let (seen, gaps, last_status, stop) = (
            seen.clone(),
            gaps.clone(),
            last_status.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 20, keeper);
            let mut line = String::new();
            let mut next: Option<u64> = None;
            while !stop.load(Ordering::Relaxed) {
                line.clear();
                if r.read_line(&mut line).expect("keeper reads") == 0 {
                    break;
                }
                if let Some(s) = frame_seq(&line) {
                    if let Some(want) = next {
                        gaps.fetch_add(
                            s.saturating_sub(want) + want.saturating_sub(s),
                            Ordering::Relaxed,
                        );
                    }
                    next = Some(s + 1);
                    seen.fetch_add(1, Ordering::Relaxed);
                } else if line.starts_with("{\"type\":\"status\"") {
                    *last_status.lock().expect("lock") = line.clone();
                } else if line.starts_with("{\"type\":\"lagged\"") {
                    panic!("the keeper fell behind: {line}");
                }
            }
        })
    };

    // Churn: subscribers that join, read a random number of lines, and go.
    let churned = Arc::new(AtomicU64::new(0));
    let churn = {
        let (socket, stop, churned) = (d.socket.clone(), stop.clone(), churned.clone());
        std::thread::spawn(move || {
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            while !stop.load(Ordering::Relaxed) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let Ok(s) = UnixStream::connect(&socket) else {
                    continue;
                };
                let mut r = BufReader::new(s);
                let mut line = String::new();
                for _ in 0..(rng % 2000) {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                }
                churned.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(rng % 50));
            }
        })
    };

    let t0 = Instant::now();
    let warm = frames_wanted / 10;
    let mut rss_warm = None;
    let mut rss_max = 0;
    while seen.load(Ordering::Relaxed) < frames_wanted {
        std::thread::sleep(Duration::from_millis(200));
        let rss = d.rss_kib();
        if rss_warm.is_none() && seen.load(Ordering::Relaxed) >= warm {
            rss_warm = Some(rss);
        }
        rss_max = rss_max.max(rss);
        assert!(
            d.child.try_wait().expect("wait").is_none(),
            "the daemon died: {}",
            d.stderr()
        );
        assert!(t0.elapsed() < Duration::from_secs(3600 * 3), "too slow");
    }
    let rss_end = d.rss_kib();
    stop.store(true, Ordering::Relaxed);
    churn.join().expect("churn");
    let status = last_status.lock().expect("lock").clone();
    assert!(d.stop().success(), "clean exit");
    keeper_thread.join().expect("keeper");
    let n = seen.load(Ordering::Relaxed);
    let rss_warm = rss_warm.expect("warmed up");
    let st: serde_json::Value = validate(status.trim_end());
    let s = &st["streams"][0];
    eprintln!(
        "soak: {n} frames ({:.1} h of audio) in {:.0} s, {} subscribers came and went; RSS after warm-up {rss_warm} KiB, end {rss_end} KiB, max {rss_max} KiB; dropped {} overrun {}",
        n as f64 * 512.0 / 12_000.0 / 3600.0,
        t0.elapsed().as_secs_f64(),
        churned.load(Ordering::Relaxed),
        s["dropped_frames"],
        s["overrun_samples"]
    );
    assert!(n >= frames_wanted);
    assert_eq!(
        gaps.load(Ordering::Relaxed),
        0,
        "the keeper's seq is contiguous"
    );
    assert!(churned.load(Ordering::Relaxed) > 10, "subscribers churned");
    assert_eq!(s["dropped_frames"], 0, "no frame dropped: {s}");
    assert_eq!(s["overrun_samples"], 0, "{s}");
    assert!(
        rss_end <= rss_warm + 1024,
        "RSS grew {rss_warm} -> {rss_end} KiB"
    );
}
