//! Acceptance 4: 100 subscribers each receive every frame in order over a
//! 60 s real-time replay. A stalled subscriber (never reads) is cut off and
//! a slow one is told it lagged; neither delays the others, and the
//! daemon's memory does not grow.

use crate::common;

use common::{cwru, Client, Daemon};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SUBSCRIBERS: usize = 100;
const RUN: Duration = Duration::from_secs(60);
/// The stalled and slow clients join at this point.
const TROUBLE_AT: Duration = Duration::from_secs(30);

struct Received {
    frames: usize,
    /// (frame time, latency in ms)
    latencies: Vec<(f64, f64)>,
    lagged: u64,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn subscribe(
    mut c: Client,
    stop: Arc<AtomicBool>,
    pause: Option<(Duration, Duration)>,
) -> Received {
    let t0 = Instant::now();
    let mut last: Option<u64> = None;
    let mut r = Received {
        frames: 0,
        latencies: Vec::new(),
        lagged: 0,
    };
    let mut paused = false;
    while !stop.load(Ordering::Relaxed) {
        if let Some((at, len)) = pause {
            if !paused && t0.elapsed() >= at {
                paused = true;
                std::thread::sleep(len);
            }
        }
        let Some(m) = c.next() else { break };
        match m["type"].as_str() {
            Some("frame") => {
                let seq = m["seq"].as_u64().expect("seq");
                if let Some(prev) = last {
                    if r.lagged == 0 {
                        assert_eq!(
                            seq,
                            prev + 1,
                            "seq not contiguous for a subscriber that keeps up"
                        );
                    } else {
                        assert!(seq > prev, "seq went backwards");
                    }
                }
                last = Some(seq);
                r.frames += 1;
                let t = m["time"].as_f64().expect("time");
                r.latencies.push((t, (now() - t) * 1e3));
            }
            Some("lagged") => r.lagged += m["missed"].as_u64().expect("missed"),
            _ => {}
        }
    }
    r
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
fn hundred_subscribers_get_every_frame_and_a_stalled_one_hurts_nobody() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[socket]\nclient-queue = 16\nwrite-timeout-ms = 8000\nstatus-interval-ms = 1000\n\
             [[source]]\nkind = \"wav\"\npath = \"{}\"\nloop = true\nstreams = [\"motor\"]\n",
            common::model().display(),
            cwru("1797_IR_14.wav").display()
        ),
    )
    .expect("config");
    let mut daemon = Daemon::start(&["--config", cfg.to_str().expect("utf8")]);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let subs: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let c = daemon.connect();
            let stop = stop.clone();
            std::thread::spawn(move || subscribe(c, stop, None))
        })
        .collect();

    std::thread::sleep(TROUBLE_AT.saturating_sub(start.elapsed()));
    let trouble_time = now();
    let stalled = daemon.connect(); // never reads
    let slow_client = daemon.connect();
    let slow_stop = stop.clone();
    let slow = std::thread::spawn(move || {
        subscribe(
            slow_client,
            slow_stop,
            Some((Duration::from_secs(3), Duration::from_secs(6))),
        )
    });
    std::thread::sleep(Duration::from_secs(10));
    let rss_before = daemon.rss_kib();

    std::thread::sleep(RUN.saturating_sub(start.elapsed()));
    let rss_after = daemon.rss_kib();
    let expected = ((RUN.as_secs_f64() - 0.5) * 12000.0 / 512.0) as usize;

    // The stalled client was cut off: after what its socket held, EOF.
    let mut s = stalled.reader.into_inner();
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut sink = Vec::new();
    let eof = s.read_to_end(&mut sink).is_ok();
    assert!(eof, "the stalled client was never cut off");

    stop.store(true, Ordering::Relaxed);
    let results: Vec<Received> = subs
        .into_iter()
        .map(|h| h.join().expect("subscriber ok"))
        .collect();
    let slow = slow.join().expect("slow ok");
    assert_eq!(daemon.stop().code(), Some(0));

    let mut before = Vec::new();
    let mut after = Vec::new();
    for r in &results {
        assert_eq!(r.lagged, 0, "a subscriber that keeps up was told it lagged");
        assert!(
            r.frames >= expected - 30,
            "a subscriber got {} frames of ~{expected}",
            r.frames
        );
        for &(t, ms) in &r.latencies {
            if t < trouble_time {
                before.push(ms);
            } else if t > trouble_time + 12.0 {
                after.push(ms);
            }
        }
    }
    let (p50b, p99b) = (percentile(before.clone(), 0.5), percentile(before, 0.99));
    let (p50a, p99a) = (percentile(after.clone(), 0.5), percentile(after, 0.99));
    eprintln!(
        "latency without trouble p50 {p50b:.2} ms p99 {p99b:.2} ms; with a stalled client p50 {p50a:.2} ms p99 {p99a:.2} ms; \
         RSS {rss_before} -> {rss_after} KiB; slow client missed {} and got {} frames",
        slow.lagged, slow.frames
    );
    assert!(
        p99a <= p99b * 1.5 + 5.0,
        "a stalled client delayed the others: p99 {p99b:.2} -> {p99a:.2} ms"
    );
    assert!(slow.lagged > 0, "the slow client was never told it lagged");
    assert!(
        slow.frames > 100,
        "the slow client stopped getting frames after lagging"
    );
    assert!(
        rss_after <= rss_before + 2048,
        "RSS grew {rss_before} -> {rss_after} KiB"
    );
}
