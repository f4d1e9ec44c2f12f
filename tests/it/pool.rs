//! The analysis threads are shared: streams take turns on one thread. A
//! fault in one stream's analyses must not hold the others up. Two
//! real-time streams share a single thread (`worker-threads = 1`); one gets
//! a NaN storm and the daemon reloads its models twice meanwhile (a good
//! reload and one that meets a broken model); the other stream's frames
//! all arrive, in order, none later than one hop beyond its usual latency.

use crate::common;

use common::{mkfifo, model, signal, Daemon};
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

const RATE: u32 = 12_000;
const SECONDS: f64 = 12.0;
const HOP: usize = 512;
const FRAME: usize = 2048;

fn config(dir: &std::path::Path, model_path: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("drsnd.toml");
    let source = |name: &str| {
        format!(
            "[[source]]\nkind = \"raw\"\npath = \"{}/{name}.fifo\"\nformat = \"f32le\"\n\
             rate = {RATE}\nstreams = [\"{name}\"]\n",
            dir.display()
        )
    };
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\nhop = {HOP}\nworker-threads = 1\n[socket]\nstatus-interval-ms = 200\n{}{}",
            model_path.display(),
            source("calm"),
            source("storm")
        ),
    )
    .expect("config");
    cfg
}

/// The storm: a sine, then NaN for most of the run, then the sine again.
fn storm() -> Vec<f32> {
    let mut x = signal(RATE, SECONDS, 0.2);
    let n = x.len();
    for v in &mut x[n / 6..n * 5 / 6] {
        *v = f32::NAN;
    }
    x
}

/// Writes `x` into the FIFO half a hop at a time at real-time pace (on
/// deadlines, so the pace does not drift): a frame's latency is then the
/// daemon's, not the feeder's block size.
fn feed(fifo: std::path::PathBuf, x: Vec<f32>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open fifo");
        let block = HOP / 2;
        let t0 = Instant::now();
        for (i, chunk) in x.chunks(block).enumerate() {
            let due = t0 + Duration::from_secs_f64((i * block) as f64 / RATE as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            f.write_all(&bytes).expect("feed");
        }
    })
}

fn hup(d: &Daemon) {
    // SAFETY: a signal to the child we started.
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGHUP);
    }
}

#[test]
fn a_nan_storm_and_reloads_in_one_stream_never_hold_up_another_on_its_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The model is a copy, so that the second reload can find it broken.
    let models = dir.path().join("models");
    std::fs::create_dir(&models).expect("models dir");
    let src = model();
    let src_dir = src.parent().expect("models dir");
    let stem = src.file_stem().and_then(|s| s.to_str()).expect("stem");
    for ext in ["json", "onnx"] {
        let f = format!("{stem}.{ext}");
        std::fs::copy(src_dir.join(&f), models.join(&f)).expect("copy model");
    }
    let cfg = config(dir.path(), &models.join(format!("{stem}.json")));
    for name in ["calm", "storm"] {
        mkfifo(&dir.path().join(format!("{name}.fifo")));
    }
    let d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let mut c = d.connect();
    c.until("hello");
    let calm = signal(RATE, SECONDS, 0.2);
    let frames = ((calm.len() - FRAME) / HOP + 1) as u64;
    let feeders = [
        feed(dir.path().join("calm.fifo"), calm),
        feed(dir.path().join("storm.fifo"), storm()),
    ];

    let t0 = Instant::now();
    let (mut hups, mut calm_lat, mut next) = (0, Vec::new(), 0u64);
    let (mut storm_frames, mut flagged, mut reloads) = (0u64, 0u64, Vec::<Value>::new());
    while next < frames && t0.elapsed() < Duration::from_secs(40) {
        // A good reload at 4 s, one that meets a broken model at 7 s.
        if hups == 0 && t0.elapsed() > Duration::from_secs(4) {
            hup(&d);
            hups = 1;
        } else if hups == 1 && t0.elapsed() > Duration::from_secs(7) {
            std::fs::write(models.join(format!("{stem}.onnx")), b"not a model").expect("break");
            hup(&d);
            hups = 2;
        }
        let Some(m) = c.next() else { break };
        match (m["type"].as_str(), m["stream"].as_str()) {
            (Some("frame"), Some("calm")) => {
                assert_eq!(m["seq"].as_u64(), Some(next), "calm's frames in order");
                next += 1;
                calm_lat.push(m["latency_ms"].as_f64().expect("latency_ms"));
            }
            (Some("frame"), Some("storm")) => {
                storm_frames += 1;
                let flags = m["flags"].as_array().cloned().unwrap_or_default();
                flagged += flags.iter().any(|f| f == "nonfinite") as u64;
            }
            (Some("status"), _) => {
                if let Some(r) = m.get("reload").filter(|r| !r.is_null()) {
                    if reloads.last() != Some(r) {
                        reloads.push(r.clone());
                    }
                }
            }
            _ => {}
        }
    }
    for f in feeders {
        f.join().expect("feeder");
    }
    assert_eq!(next, frames, "calm's frames: {next} of {frames}");
    assert!(
        flagged > frames / 2,
        "the storm went through the pipeline: {flagged} of {storm_frames} frames flagged"
    );
    let oks: Vec<bool> = reloads.iter().filter_map(|r| r["ok"].as_bool()).collect();
    assert_eq!(
        oks,
        [true, false],
        "a good reload, then a broken one: {reloads:?}"
    );

    let hop_ms = HOP as f64 * 1e3 / RATE as f64;
    let mut sorted = calm_lat.clone();
    sorted.sort_by(f64::total_cmp);
    let (median, worst) = (sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
    eprintln!("calm latency: median {median:.2} ms, worst {worst:.2} ms (hop {hop_ms:.1} ms)");
    assert!(
        worst <= median + hop_ms,
        "a calm frame waited {worst:.1} ms against a median of {median:.1} ms: more than a hop ({hop_ms:.1} ms) late"
    );
}
