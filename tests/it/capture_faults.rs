//! Faults of live capture, through real cpal capture, paced in real time.
//! - A PulseAudio server with a null sink is a device (its monitor is ALSA's
//!   default input via the pulse plugin). Killing the server is the device being unplugged; a new server is its
//!   return. Another stream in the same daemon must not notice.
//! - An ALSA `file`-plugin card fed from a FIFO is unplugged (its data
//!   stops and its definition leaves the ALSA config) and comes back under
//!   another id with the same description: it is found again by name.
//! - Stalling inference ($DRSN_TEST_STALL_FILE) is a machine too slow for
//!   its streams: the backlog beyond max-lag-s is skipped and counted, and
//!   latency comes back down.

use crate::common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads until `pred` holds for a message, or panics after `limit`.
fn read_until(
    c: &mut Client,
    limit: Duration,
    what: &str,
    mut f: impl FnMut(&Value) -> bool,
) -> Value {
    let t0 = Instant::now();
    let mut last = Value::Null;
    loop {
        assert!(
            t0.elapsed() < limit,
            "no {what} within {limit:?}; last message: {last}"
        );
        let v = c
            .next()
            .unwrap_or_else(|| panic!("connection closed waiting for {what}"));
        last = v.clone();
        if f(&v) {
            return v;
        }
    }
}

/// What the test saw of each stream's frames.
#[derive(Default)]
struct Seen {
    pump_seq: u64,
    pump_index: u64,
    motor_seq: Option<u64>,
    motor_gaps: u64,
}

impl Seen {
    /// Reads on to the next status, seeing every frame on the way.
    fn status(&mut self, c: &mut Client) -> Value {
        read_until(c, Duration::from_secs(5), "status", |v| {
            self.see(v);
            v["type"] == "status"
        })
    }

    /// After an outage of over 3 s: frame indices kept wall-clock time, the
    /// stream runs again, and the outage is a counted gap, not an overrun.
    /// Returns the gap in source samples (48 kHz).
    fn back_after_outage(&mut self, c: &mut Client, index_before: u64) -> u64 {
        assert!(
            self.pump_index >= index_before + 3 * 12_000,
            "frame indices keep wall time: {} after {index_before}",
            self.pump_index
        );
        let st = self.status(c);
        let pump = stream_status(&st, "pump");
        assert_eq!(pump["source_state"], "running", "{pump}");
        assert_eq!(pump["overrun_samples"], 0, "{pump}");
        let gap = pump["gap_samples"].as_u64().expect("gap_samples");
        assert!(gap >= 48_000 * 3, "gap of {gap} samples for a 3+ s outage");
        gap
    }

    /// The other stream, a WAV replay, never noticed.
    fn motor_untouched(&self, st: &Value) {
        assert!(
            self.motor_seq.is_some_and(|s| s > 50),
            "motor frames throughout"
        );
        assert_eq!(self.motor_gaps, 0, "motor frames contiguous");
        assert_eq!(stream_status(st, "motor")["source_state"], "running");
    }

    fn see(&mut self, v: &Value) {
        if v["type"] != "frame" {
            return;
        }
        let s = v["seq"].as_u64().expect("seq");
        if v["stream"] == "motor" {
            if let Some(p) = self.motor_seq {
                self.motor_gaps += s - p - 1;
            }
            self.motor_seq = Some(s);
        } else if v["stream"] == "pump" {
            assert_eq!(s, self.pump_seq, "pump frames are contiguous");
            self.pump_seq = s + 1;
            self.pump_index = v["sample_index"].as_u64().expect("sample_index");
        }
    }
}

/// Starts the daemon on `cfg` with `env`, its log passed through, and reads
/// until 20 frames of the captured stream "pump" have come.
fn start_capturing(cfg: &Path, env: &[(&str, &str)]) -> (Daemon, Client, Seen) {
    let d = Daemon::start_with(&["--config", cfg.to_str().expect("utf-8")], env);
    d.echo_log();
    let mut c = d.connect();
    c.until("hello");
    let mut seen = Seen::default();
    read_until(&mut c, Duration::from_secs(20), "20 pump frames", |v| {
        seen.see(v);
        seen.pump_seq >= 20
    });
    (d, c, seen)
}

fn stream_status<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no stream {name} in {st}"))
}

#[test]
fn a_vanished_capture_device_goes_no_signal_is_reopened_and_other_streams_carry_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let runtime = dir.path().join("pulse");
    std::fs::create_dir(&runtime).expect("runtime dir");
    let pulse = Pulse::start(&runtime);
    let stop = Arc::new(AtomicBool::new(false));
    let play = player(&runtime, stop.clone());

    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[socket]\nstatus-interval-ms = 300\n\
             [[source]]\nkind = \"cpal\"\ndevice = \"default\"\nrate = 48000\nchannels = 1\nbuffer-frames = 1024\nstreams = [\"pump\"]\n\
             [[source]]\nkind = \"wav\"\npath = \"{}\"\nloop = true\nstreams = [\"motor\"]\n",
            model().display(),
            cwru("1797_OR6_21.wav").display()
        ),
    )
    .expect("config");
    let rt = runtime.to_str().expect("utf-8 path");
    let (mut d, mut c, mut seen) =
        start_capturing(&cfg, &[("XDG_RUNTIME_DIR", rt), ("PULSE_RUNTIME_PATH", rt)]);

    // Unplugged.
    let t_kill = Instant::now();
    pulse.kill();
    let ev = read_until(
        &mut c,
        Duration::from_secs(10),
        "a no-signal event for pump",
        |v| {
            seen.see(v);
            v["type"] == "event"
                && v["stream"] == "pump"
                && v["to"]["state"] == "no-signal"
                && v["to"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("device lost"))
        },
    );
    let reason = ev["to"]["reason"].as_str().unwrap_or("").to_string();
    assert!(
        reason.contains("device lost"),
        "reason names the loss: {reason}"
    );
    let st = seen.status(&mut c);
    let pump = stream_status(&st, "pump");
    assert!(
        pump["source_state"]
            .as_str()
            .unwrap_or("")
            .starts_with("device lost"),
        "status tells: {pump}"
    );
    eprintln!(
        "no-signal {:.1} s after the kill: {reason}",
        t_kill.elapsed().as_secs_f64()
    );
    let (seq_before, index_before) = (seen.pump_seq, seen.pump_index);

    // Gone for a while, then back (a new server: a fresh device).
    std::thread::sleep(Duration::from_secs(3));
    let pulse = Pulse::start(&runtime);
    let t_back = Instant::now();
    read_until(&mut c, Duration::from_secs(20), "pump frames again", |v| {
        seen.see(v);
        seen.pump_seq > seq_before
    });
    eprintln!(
        "frames again {:.1} s after the device returned",
        t_back.elapsed().as_secs_f64()
    );
    let gap = seen.back_after_outage(&mut c, index_before);
    eprintln!("gap {gap} samples ({:.1} s)", gap as f64 / 48_000.0);

    for _ in 0..30 {
        let v = c.next().expect("more");
        seen.see(&v);
    }
    let st = seen.status(&mut c);
    seen.motor_untouched(&st);

    stop.store(true, Ordering::Relaxed);
    let _ = play.join();
    drop(pulse);
    assert!(d.stop().success());
}

#[test]
fn an_overloaded_stream_sheds_its_backlog_counts_it_and_recovers() {
    needs_fault_injection();
    let dir = tempfile::tempdir().expect("tmp");
    let runtime = dir.path().join("pulse");
    std::fs::create_dir(&runtime).expect("runtime dir");
    let _pulse = Pulse::start(&runtime);
    let stop = Arc::new(AtomicBool::new(false));
    let play = player(&runtime, stop.clone());
    let stall = dir.path().join("stall");
    let rt = runtime.to_str().expect("utf-8 path");
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[socket]\nstatus-interval-ms = 300\n\
             [[source]]\nkind = \"cpal\"\ndevice = \"default\"\nrate = 48000\nchannels = 1\n\
             buffer-frames = 1024\nstreams = [\"pump\"]\nmax-lag-s = 1.0\nring-seconds = 4.0\n",
            model().display()
        ),
    )
    .expect("config");
    let stall_path = stall.to_str().expect("utf-8");
    let (mut d, mut c, mut seen) = start_capturing(
        &cfg,
        &[
            ("XDG_RUNTIME_DIR", rt),
            ("PULSE_RUNTIME_PATH", rt),
            ("DRSN_TEST_STALL_FILE", stall_path),
        ],
    );
    let rss0 = d.rss_kib();
    let index_before = seen.pump_index;

    // Three seconds in which inference does nothing: a machine far too slow.
    std::fs::write(&stall, b"").expect("stall");
    std::thread::sleep(Duration::from_secs(3));
    std::fs::remove_file(&stall).expect("unstall");
    let t_free = Instant::now();

    // The first frames after: the backlog beyond 1 s was skipped, so the
    // stream resumes within about a second of real time, not three.
    let mut worst_after = 0f64;
    let mut recovered_at = None;
    while recovered_at.is_none() {
        assert!(
            t_free.elapsed() < Duration::from_secs(10),
            "latency never came back down"
        );
        let v = c.next().expect("frames");
        seen.see(&v);
        if v["type"] == "frame" && seen.pump_index > index_before + 12_000 {
            let l = v["latency_ms"].as_f64().expect("latency_ms");
            worst_after = worst_after.max(l);
            if l < 100.0 {
                recovered_at = Some(t_free.elapsed());
            }
        }
    }
    assert!(
        worst_after < 1600.0,
        "latency after shedding {worst_after:.0} ms"
    );
    let skipped_index = seen.pump_index;
    let st = seen.status(&mut c);
    let pump = stream_status(&st, "pump");
    let overrun = pump["overrun_samples"].as_u64().expect("overrun_samples");
    // About 2 s of the 3 s backlog at 48 kHz skipped (not a sample more than the stall).
    assert!(
        (48_000..=3 * 48_000).contains(&overrun),
        "overrun {overrun} samples for a 3 s stall with max-lag 1 s"
    );
    assert_eq!(pump["gap_samples"], 0, "{pump}");
    assert!(
        skipped_index >= index_before + 12_000,
        "frame indices skip the shed audio"
    );
    let rss1 = d.rss_kib();
    eprintln!(
        "shed {overrun} samples ({:.2} s); worst latency after {worst_after:.0} ms; back under 100 ms after {:.2} s; RSS {rss0} -> {rss1} KiB",
        overrun as f64 / 48_000.0,
        recovered_at.map_or(f64::NAN, |d| d.as_secs_f64())
    );
    assert!(rss1 < rss0 + 4096, "memory bounded: {rss0} -> {rss1} KiB");
    stop.store(true, Ordering::Relaxed);
    let _ = play.join();
    assert!(d.stop().success());
}

/// Feeds a FIFO-backed ALSA capture device at real-time pace from a thread,
/// counting every sample it delivered. The `file` plugin reads its input
/// into a period of the device's buffer, padding a short read and dropping
/// what a long one got beyond the period, so the feeder writes whole periods
/// (BLOCK frames, atomic in a pipe), one at a time, for the device to pass on
/// exactly what was fed.
struct Feeder {
    state: Arc<AtomicU8>,
    written: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

/// The capture period asked for (`buffer-frames`), in samples.
const BLOCK: usize = 1024;
const FEED: u8 = 0;
const HOLD: u8 = 1;
const CLOSE: u8 = 2;

impl Feeder {
    fn start(fifo: &Path, samples: Arc<Vec<i16>>) -> Feeder {
        let (state, written) = (Arc::new(AtomicU8::new(FEED)), Arc::new(AtomicU64::new(0)));
        let (st, wr, fifo) = (state.clone(), written.clone(), fifo.to_path_buf());
        let thread = std::thread::spawn(move || {
            // Blocks until the device is opened for capture.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .expect("open fifo");
            let mut next = Instant::now();
            for block in samples.chunks(BLOCK).cycle() {
                loop {
                    match st.load(Ordering::Relaxed) {
                        CLOSE => return,
                        HOLD => {
                            std::thread::sleep(Duration::from_millis(10));
                            next = Instant::now();
                            continue;
                        }
                        _ => {}
                    }
                    // One block in the pipe at a time: a read takes all
                    // there is, but the plugin passes on one period of it.
                    if unread(&f) > 0 {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    let bytes: Vec<u8> = block.iter().flat_map(|v| v.to_le_bytes()).collect();
                    // At most PIPE_BUF bytes: written whole or not at all. A
                    // broken pipe is a moment with no reader (cpal probing
                    // the device); the block is tried again.
                    match f.write_all(&bytes) {
                        Ok(()) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(e) => panic!("feeding {}: {e}", fifo.display()),
                    }
                }
                wr.fetch_add(block.len() as u64, Ordering::Relaxed);
                next += Duration::from_secs_f64(BLOCK as f64 / 48_000.0);
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        });
        Feeder {
            state,
            written,
            thread,
        }
    }

    fn set(&self, s: u8) {
        self.state.store(s, Ordering::Relaxed);
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn close(self) -> u64 {
        self.set(CLOSE);
        self.thread.join().expect("feeder");
        self.written.load(Ordering::Relaxed)
    }
}

/// Bytes waiting in a pipe (FIONREAD works on either end).
fn unread(f: &std::fs::File) -> i32 {
    use std::os::unix::io::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r == 0 {
        n
    } else {
        0
    }
}

/// An ALSA config naming one capture PCM `id`, described as every card of
/// this model is, whose samples come from `fifo`. Replaced by rename, so
/// that the daemon's ALSA library sees a new file and reloads it.
fn plug_in(conf: &Path, card: Option<(&str, &Path)>) {
    let text = card.map_or(String::new(), |(id, fifo)| {
        format!(
            "pcm.{id}_raw {{ type file; slave.pcm \"null\"; file \"/dev/null\"; infile \"{}\"; format \"raw\" }}\n\
             pcm.{id} {{\n type plug\n slave {{ pcm \"{id}_raw\"; format S16_LE; rate 48000; channels 1 }}\n\
             hint {{ show on; description \"Vibration probe VP-3\" }}\n}}\n",
            fifo.display()
        )
    });
    let tmp = conf.with_extension("new");
    std::fs::write(&tmp, text).expect("alsa config");
    std::fs::rename(&tmp, conf).expect("alsa config in place");
}

use common::mkfifo;

#[test]
fn an_unplugged_alsa_card_is_found_again_by_name_under_another_id() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_, x) = read_wav_f32(&cwru("1797_IR_14.wav"));
    let samples = Arc::new(s16_at_48k(&x));
    let (fifo1, fifo2) = (dir.path().join("card1.fifo"), dir.path().join("card2.fifo"));
    mkfifo(&fifo1);
    mkfifo(&fifo2);
    let conf = dir.path().join("asound.conf");
    plug_in(&conf, Some(("vp_card1", &fifo1)));
    let feeder1 = Feeder::start(&fifo1, samples.clone());

    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[socket]\nstatus-interval-ms = 300\n\
             [[source]]\nkind = \"cpal\"\ndevice = \"vp_card1\"\nrate = 48000\nchannels = 1\ngain = 16.0\n\
             buffer-frames = 1024\nstreams = [\"pump\"]\n\
             [[source]]\nkind = \"wav\"\npath = \"{}\"\nloop = true\nstreams = [\"motor\"]\n",
            model().display(),
            cwru("1797_OR6_21.wav").display()
        ),
    )
    .expect("config");
    let alsa_path = format!("/usr/share/alsa/alsa.conf:{}", conf.display());
    let (mut d, mut c, mut seen) = start_capturing(&cfg, &[("ALSA_CONFIG_PATH", &alsa_path)]);

    // Unplugged: the card's data stops and its name leaves ALSA's list.
    feeder1.set(HOLD);
    plug_in(&conf, None);
    let t_unplug = Instant::now();
    let ev = read_until(&mut c, Duration::from_secs(10), "no-signal for pump", |v| {
        seen.see(v);
        v["type"] == "event" && v["stream"] == "pump" && v["to"]["state"] == "no-signal"
    });
    eprintln!(
        "no-signal {:.1} s after the unplug: {}",
        t_unplug.elapsed().as_secs_f64(),
        ev["to"]["reason"]
    );
    // It keeps trying, and says why it cannot yet.
    let st = read_until(&mut c, Duration::from_secs(10), "a failed reopen", |v| {
        seen.see(v);
        v["type"] == "status"
            && stream_status(v, "pump")["source_state"]
                .as_str()
                .is_some_and(|s| s.contains("no audio input device matches \"vp_card1\""))
    });
    let pump = stream_status(&st, "pump");
    eprintln!("while gone: {}", pump["source_state"]);
    // Everything fed to the card before it went was captured, except at
    // most the one period a card can hold when it is pulled (as real cards
    // do); its time is inside the counted gap.
    let before = feeder1.written();
    let captured = pump["captured_samples"].as_u64().expect("captured_samples");
    assert!(
        captured <= before && before - captured <= BLOCK as u64,
        "fed {before}, captured {captured}: {pump}"
    );
    let (seq_before, index_before) = (seen.pump_seq, seen.pump_index);

    // Back after 3 s, as another card number with the same description.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(t_unplug.elapsed()));
    let feeder2 = Feeder::start(&fifo2, samples.clone());
    plug_in(&conf, Some(("vp_card2", &fifo2)));
    let t_back = Instant::now();
    read_until(&mut c, Duration::from_secs(20), "pump frames again", |v| {
        seen.see(v);
        seen.pump_seq > seq_before
    });
    let outage = t_unplug.elapsed();
    eprintln!(
        "frames again {:.1} s after the card returned ({:.1} s after the unplug)",
        t_back.elapsed().as_secs_f64(),
        outage.as_secs_f64()
    );
    // The old card's last reader can now finish.
    assert_eq!(
        feeder1.close(),
        before,
        "nothing more went into the old card"
    );

    // The outage is one counted gap, no longer than it; then every new
    // sample arrives.
    let gap = seen.back_after_outage(&mut c, index_before);
    let outage_samples = outage.as_secs_f64() * 48_000.0;
    assert!(
        (gap as f64) <= outage_samples,
        "gap of {gap} samples for an outage of {outage:?}"
    );
    feeder2.set(HOLD);
    std::thread::sleep(Duration::from_millis(200));
    let after = feeder2.written();
    let st = seen.status(&mut c);
    let pump = stream_status(&st, "pump");
    eprintln!(
        "gap {gap} samples ({:.2} s); captured {captured} of {before} fed before, {} of {after} after",
        gap as f64 / 48_000.0,
        pump["captured_samples"].as_u64().unwrap_or(0).saturating_sub(captured),
    );
    let total = pump["captured_samples"].as_u64().expect("captured_samples");
    assert!(
        total - captured <= after && after - (total - captured) <= BLOCK as u64,
        "fed {after} to the new card, captured {}: {pump}",
        total - captured
    );

    seen.motor_untouched(&st);
    assert!(d.stop().success());
    feeder2.close();
}
