//! `frames-per-wake`: a stream's worker waits for that many frames and
//! analyses them back to back. Two daemons replay the same synthetic
//! recording in real time side by side, one waking per frame and one per 4
//! frames: both publish every frame in order, and the grouped one's frames
//! wait for their group (a frame that completes first waits 3 hops for the
//! fourth), which a daemon that ignored the key could not show.

use crate::common;

use common::{model, signal, write_wav_f32, Daemon};
use std::time::{Duration, Instant};

const RATE: u32 = 12_000;
const SECONDS: f64 = 5.0;
const HOP: usize = 512;
const FRAME: usize = 2048;

fn start(dir: &std::path::Path, wav: &std::path::Path, group: usize) -> Daemon {
    let cfg = dir.join(format!("wake-{group}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\nhop = {HOP}\nframes-per-wake = {group}\n\
             [[source]]\nkind = \"wav\"\npath = \"{}\"\nstreams = [\"pump\"]\n",
            model().display(),
            wav.display()
        ),
    )
    .expect("config");
    Daemon::start(&["--config", cfg.to_str().expect("utf-8")])
}

/// `latency_ms` of every frame from the first one seen (the replay starts
/// as the socket opens, so a frame or two may go out before we connect) up
/// to the last one, `frames - 1`, checking that seq runs on without a gap.
fn latencies(d: &Daemon, frames: u64) -> Vec<f64> {
    let mut c = d.connect();
    let mut out = Vec::new();
    let mut next = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while next != Some(frames) && Instant::now() < deadline {
        let Some(m) = c.next() else { break };
        if m["type"] == "frame" {
            let seq = m["seq"].as_u64().expect("seq");
            assert!(next.is_none_or(|n| n == seq), "seq {seq} after {next:?}");
            next = Some(seq + 1);
            out.push(m["latency_ms"].as_f64().expect("latency_ms"));
        }
    }
    assert_eq!(next, Some(frames), "the last frame never came");
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn a_stream_woken_every_four_frames_publishes_every_frame_a_group_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("pump.wav");
    let x = signal(RATE, SECONDS, 0.2);
    write_wav_f32(&wav, RATE, &x);
    let frames = ((x.len() - FRAME) / HOP + 1) as u64;

    let one = start(dir.path(), &wav, 1);
    let four = start(dir.path(), &wav, 4);
    let (l1, l4) = std::thread::scope(|s| {
        let a = s.spawn(|| latencies(&one, frames));
        let b = s.spawn(|| latencies(&four, frames));
        (a.join().expect("reader"), b.join().expect("reader"))
    });
    // Every frame up to the last, whose group is incomplete.
    for (l, what) in [(&l1, "one frame per wake"), (&l4, "four frames per wake")] {
        assert!(
            l.len() as u64 > frames - 10,
            "{what}: only {} frames",
            l.len()
        );
    }

    let hop_ms = HOP as f64 * 1e3 / RATE as f64;
    let (m1, m4) = (median(l1.clone()), median(l4.clone()));
    let worst4 = l4.iter().copied().fold(0.0, f64::max);
    eprintln!("latency median {m1:.1} ms (1 per wake), {m4:.1} ms (4 per wake); worst of 4: {worst4:.1} ms");
    // A group's frames wait at least 3, 2, 1 and 0 hops for its last one.
    assert!(
        worst4 > 2.5 * hop_ms,
        "no frame waited for its group: worst latency {worst4:.1} ms"
    );
    assert!(
        m4 > m1 + 0.7 * hop_ms,
        "grouped frames should wait about 1.5 hops more: median {m4:.1} ms against {m1:.1} ms"
    );
}
