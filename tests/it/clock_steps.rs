//! The wall clock steps while the daemon runs, as on an edge box without a
//! real-time clock when NTP syncs: libfaketime (Debian `faketime`) moves
//! the daemon's wall clock by +1 h and back, leaving its monotonic clock
//! alone. Capture is real: cpal through a PulseAudio null sink, and a raw
//! FIFO fed at real-time pace. Nothing may look like a dead device, a gap or
//! silence; the watchdog keeps its beat; latency stays real; `time` fields
//! follow the new wall clock; and a real stall right after a backward step
//! is still seen as soon as usual.

use crate::common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STEP_S: f64 = 3600.0;
const WATCHDOG_S: f64 = 1.0;

fn libfaketime() -> PathBuf {
    // The multi-threaded build: the daemon reads the clock from many threads.
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("libfaketime is missing: scripts/setup-system.sh installs the `faketime` package")
}

fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Feeds a recording into a FIFO as f32le at 12 kHz, paced in real time,
/// until told to stall (the writer stays open and writes nothing, as a
/// hung sensor would) or to stop.
struct Feeder {
    stall: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    fn start(fifo: &Path) -> Feeder {
        let (_, x) = read_wav_f32(&cwru("1797_IR_14.wav"));
        let stall = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, path) = (stall.clone(), stop.clone(), fifo.to_path_buf());
        let thread = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open fifo");
            let t0 = Instant::now();
            let mut sent = 0usize;
            const BLOCK: usize = 480; // 40 ms
            while !sp.load(Relaxed) {
                if st.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let due = t0 + Duration::from_secs_f64(sent as f64 / 12_000.0);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                let bytes: Vec<u8> = (0..BLOCK)
                    .flat_map(|i| x[(sent + i) % x.len()].to_le_bytes())
                    .collect();
                if f.write_all(&bytes).is_err() {
                    return;
                }
                sent += BLOCK;
            }
        });
        Feeder {
            stall,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Collects the times of WATCHDOG=1 pings.
fn watch_pings(sock: UnixDatagram) -> Arc<Mutex<Vec<Instant>>> {
    let pings = Arc::new(Mutex::new(Vec::new()));
    let out = pings.clone();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = sock.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "WATCHDOG=1")
                {
                    out.lock().expect("pings").push(Instant::now());
                }
            }
        }
    });
    pings
}

/// What a stretch of reading saw.
#[derive(Default)]
struct Seen {
    next_seq: std::collections::HashMap<String, u64>,
    frames: u64,
    events: Vec<Value>,
    max_latency_ms: f64,
    /// Largest |time - (test's wall clock + offset)| over the frames.
    max_time_error_s: f64,
}

impl Seen {
    fn see(&mut self, v: &Value, offset_s: f64) {
        match v["type"].as_str() {
            Some("frame") => {
                let stream = v["stream"].as_str().expect("stream").to_string();
                let seq = v["seq"].as_u64().expect("seq");
                if let Some(want) = self.next_seq.get(&stream) {
                    assert_eq!(seq, *want, "{stream}: frames are contiguous");
                }
                self.next_seq.insert(stream, seq + 1);
                self.frames += 1;
                let lat = v["latency_ms"].as_f64().expect("latency");
                self.max_latency_ms = self.max_latency_ms.max(lat);
                let t = v["time"].as_f64().expect("time");
                let err = (t - (wall_now() + offset_s)).abs();
                self.max_time_error_s = self.max_time_error_s.max(err);
            }
            Some("event") => self.events.push(v.clone()),
            _ => {}
        }
    }

    /// Reads for `d`, expecting the daemon's wall clock at `offset_s`.
    fn read_for(&mut self, c: &mut Client, d: Duration, offset_s: f64) {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            let v = c.next().expect("daemon still talking");
            self.see(&v, offset_s);
        }
    }
}

fn set_offset(file: &Path, offset_s: f64) {
    std::fs::write(file, format!("{:+}\n", offset_s as i64)).expect("faketime file");
}

fn stream<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no stream {name} in {st}"))
}

#[test]
fn wall_clock_steps_change_only_the_time_fields() {
    let lib = libfaketime();
    let dir = tempfile::tempdir().expect("tmp");
    let runtime = dir.path().join("pulse");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    let pulse = Pulse::start(&runtime);
    let stop_player = Arc::new(AtomicBool::new(false));
    let play = player(&runtime, stop_player.clone());
    let fifo = dir.path().join("sensor.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[socket]\nstatus-interval-ms = 500\n\
             [[source]]\nkind = \"cpal\"\ndevice = \"default\"\nrate = 48000\nchannels = 1\nstreams = [\"pump\"]\n\
             [[source]]\nkind = \"raw\"\npath = \"{}\"\nformat = \"f32le\"\nrate = 12000\nstreams = [\"fifo\"]\n",
            model().display(),
            fifo.display()
        ),
    )
    .expect("config");
    let clock = dir.path().join("faketime");
    set_offset(&clock, 0.0);
    let notify_path = dir.path().join("notify");
    let pings = watch_pings(UnixDatagram::bind(&notify_path).expect("notify socket"));
    let rt = runtime.to_str().expect("utf-8");
    let env = [
        ("LD_PRELOAD", lib.to_str().expect("utf-8")),
        ("FAKETIME_TIMESTAMP_FILE", clock.to_str().expect("utf-8")),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ("NOTIFY_SOCKET", notify_path.to_str().expect("utf-8")),
        ("WATCHDOG_USEC", "1000000"),
        ("XDG_RUNTIME_DIR", rt),
        ("PULSE_RUNTIME_PATH", rt),
    ];
    // The raw source opens the FIFO at start, so the writer must be there.
    let feeder = Feeder::start(&fifo);
    let mut d = Daemon::start_with(&["--config", cfg.to_str().expect("utf-8")], &env);
    let mut c = d.connect();
    c.until("hello");

    d.echo_log();
    let mut seen = Seen::default();
    let t0 = Instant::now();
    while seen.next_seq.len() < 2 || seen.next_seq.values().any(|n| *n < 20) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "both streams run before the steps: {:?}",
            seen.next_seq
        );
        seen.read_for(&mut c, Duration::from_millis(200), 0.0);
    }
    // Start-up's own events (the first judgement of each machine) are not
    // the steps' business; wait until the machines have settled.
    seen.read_for(&mut c, Duration::from_secs(2), 0.0);
    seen.events.clear();
    let before = Instant::now();
    for (offset, what) in [(STEP_S, "+1 h"), (0.0, "-1 h")] {
        set_offset(&clock, offset);
        // The first frames after a step may have been stamped before it.
        seen.read_for(&mut c, Duration::from_millis(500), offset);
        seen.max_time_error_s = 0.0;
        seen.read_for(&mut c, Duration::from_secs(4), offset);
        assert!(
            seen.max_time_error_s < 1.0,
            "after the {what} step, `time` is off the daemon's wall clock by {:.1} s",
            seen.max_time_error_s
        );
    }
    assert!(
        seen.events.is_empty(),
        "a wall-clock step raised events: {:?}",
        seen.events
    );
    assert!(
        seen.max_latency_ms < 100.0,
        "latency {:.1} ms across the steps",
        seen.max_latency_ms
    );
    let st = c.until("status");
    for name in ["pump", "fifo"] {
        let s = stream(&st, name);
        assert_eq!(s["source_state"], "running", "{s}");
        assert_eq!(s["gap_samples"], 0, "{s}");
        assert_eq!(s["overrun_samples"], 0, "{s}");
    }
    let beat: Vec<Instant> = pings
        .lock()
        .expect("pings")
        .iter()
        .copied()
        .filter(|t| *t >= before)
        .collect();
    let worst = beat
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .fold(0.0, f64::max);
    assert!(
        beat.len() >= 14 && worst < 0.8 * WATCHDOG_S,
        "{} watchdog pings across the steps, longest pause {worst:.2} s (pinged every {:.1} s)",
        beat.len(),
        WATCHDOG_S / 2.0
    );

    // A real stall right after a backward step is seen in its usual time:
    // the FIFO's writer hangs (no-data-after-s = 1 s) and the audio server
    // dies (no callbacks for the stall time, 1 s at least).
    set_offset(&clock, -STEP_S);
    std::thread::sleep(Duration::from_millis(200));
    let stalled_at = Instant::now();
    feeder.stall.store(true, Relaxed);
    pulse.kill();
    let mut no_signal = std::collections::HashMap::new();
    while no_signal.len() < 2 && stalled_at.elapsed() < Duration::from_secs(10) {
        let v = c.next().expect("daemon still talking");
        if v["type"] == "event" && v["to"]["state"] == "no-signal" {
            let name = v["stream"].as_str().expect("stream").to_string();
            no_signal.entry(name).or_insert(stalled_at.elapsed());
        }
    }
    let fifo_after = no_signal.get("fifo").copied();
    let pump_after = no_signal.get("pump").copied();
    assert!(
        fifo_after.is_some_and(|t| t < Duration::from_millis(2500)),
        "the stalled FIFO went no-signal after {fifo_after:?} (want about 1 s)"
    );
    assert!(
        pump_after.is_some_and(|t| t < Duration::from_secs(4)),
        "the dead audio server was seen after {pump_after:?} (want 1-3 s)"
    );
    stop_player.store(true, Relaxed);
    let _ = play.join();
    drop(feeder);
    assert_eq!(d.stop().code(), Some(0));
    let log = d.stderr();
    assert_eq!(
        log.matches("device lost").count(),
        1,
        "only the real outage is a lost device:\n{log}"
    );
}
