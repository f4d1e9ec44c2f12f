//! `[[notify]]` on the real binary: local HTTP receivers (plain std TCP
//! servers in the test) and a real command. One notification per alarm
//! transition with the event's fields; a flapping machine held back by the
//! interval, with the count reported; a receiver that comes back late gets
//! its notification by retry; a hung receiver never delays a frame; bad
//! settings name their key.

use crate::common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A webhook receiver: records each POST's body, answers 200, or (hung)
/// reads the request and never answers.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<(String, Value)>>>,
    stop: Arc<AtomicBool>,
}

fn request(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((path, body))
}

impl Receiver {
    fn on(port: u16, hung: bool) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !st.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let Some((path, body)) = request(&mut s) else {
                    continue;
                };
                if hung {
                    held.push(s); // never answered
                    continue;
                }
                let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                g.lock().expect("got").push((path, v));
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Receiver { port, got, stop }
    }

    fn all(&self) -> Vec<(String, Value)> {
        self.got.lock().expect("got").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn config(dir: &Path, wav: &Path, source_extra: &str, notify: &str) -> PathBuf {
    let p = dir.join("drsnd.toml");
    std::fs::write(
        &p,
        format!(
            "model = \"{}\"\n[socket]\nstatus-interval-ms = 300\n{notify}\n\
             [[source]]\nkind = \"wav\"\npath = \"{}\"\nstreams = [\"pump\"]\n{source_extra}\n",
            model().display(),
            wav.display()
        ),
    )
    .expect("config");
    p
}

/// Reads frames, events and the last status for `d`.
fn read(
    c: &mut Client,
    d: Duration,
    frames: &mut Vec<Value>,
    events: &mut Vec<Value>,
) -> Option<Value> {
    let t0 = Instant::now();
    let mut status = None;
    while t0.elapsed() < d {
        let Some(m) = c.next() else { break };
        match m["type"].as_str() {
            Some("frame") => frames.push(m),
            Some("event") => events.push(m),
            Some("status") => status = Some(m),
            _ => {}
        }
    }
    status
}

fn wait_until(limit: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    pred()
}

#[test]
fn each_alarm_notifies_once_flapping_is_held_back_and_a_late_receiver_gets_it_by_retry() {
    let dir = tempfile::tempdir().expect("tmp");
    let every = Receiver::on(0, false);
    let debounced = Receiver::on(0, false);
    // Reserved now, listening only later: the first attempts are refused.
    let late_port = Receiver::on(0, true).port;
    let lines = dir.path().join("command.out");
    let wav = dir.path().join("flap.wav");
    write_wav_f32(&wav, 12_000, &two_faults_in_turn(3, 2.0));
    let target = |name: &str, port: u16, extra: &str| {
        format!(
            "[[notify]]\nname = \"{name}\"\non = [\"fault\", \"zone-d\"]\nurl = \"http://127.0.0.1:{port}/hook\"\n{extra}\n"
        )
    };
    let notify = [
        target("every", every.port, "interval-s = 0"),
        target("debounced", debounced.port, "interval-s = 3600"),
        target("late", late_port, "interval-s = 3600\nretries = 10\ntimeout-s = 1"),
        format!(
            "[[notify]]\nname = \"cmd\"\non = [\"fault\"]\ninterval-s = 0\ncommand = [\"sh\", \"-c\", \"cat >> {}; echo >> {}\"]\n",
            lines.display(),
            lines.display()
        ),
    ]
    .concat();
    let cfg = config(dir.path(), &wav, "", &notify);
    let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let mut c = d.connect();
    let (mut frames, mut events) = (Vec::new(), Vec::new());
    let mut status = None;
    // The recording is 12 s of real time; then the source ends.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(14) {
        status = read(&mut c, Duration::from_millis(500), &mut frames, &mut events).or(status);
    }
    let late = Receiver::on(late_port, false);
    let faults: Vec<Value> = (events.iter())
        .filter(|e| e["to"]["state"] == "fault")
        .cloned()
        .collect();
    assert!(
        faults.len() >= 3,
        "{} fault events: {events:?}",
        faults.len()
    );
    assert!(wait_until(Duration::from_secs(5), || every.all().len() >= faults.len()));
    std::thread::sleep(Duration::from_millis(500));
    let got = every.all();
    assert_eq!(got.len(), faults.len(), "one per fault transition: {got:?}");
    for (e, (path, n)) in faults.iter().zip(&got) {
        assert_eq!(path, "/hook");
        assert_eq!(n["kind"], "fault");
        assert_eq!(n["stream"], "pump");
        assert_eq!(n["event"]["time"], e["time"], "the event itself, in order");
        assert_eq!(n["event"]["to"], e["to"]);
        assert_eq!(n["suppressed"], 0);
        let class = e["to"]["class"].as_str().expect("class");
        assert!(
            n["title"].as_str().unwrap_or("").contains(class),
            "{}",
            n["title"]
        );
    }
    // Flapping faster than an hour: the first only, the rest counted.
    assert_eq!(debounced.all().len(), 1, "{:?}", debounced.all());
    let st = read(&mut c, Duration::from_secs(1), &mut frames, &mut events)
        .or(status)
        .expect("status");
    let by_name = |name: &str| -> Value {
        st["notify"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        by_name("debounced")["suppressed"],
        faults.len() as u64 - 1,
        "{}",
        st["notify"]
    );
    assert_eq!(by_name("every")["sent"], faults.len() as u64);
    // The command got the same, one body per run on its stdin.
    let ran = std::fs::read_to_string(&lines).unwrap_or_default();
    let bodies: Vec<Value> = ran
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(bodies.len(), faults.len(), "{ran}");
    // The late receiver: refused at first, then retried until it answered.
    assert!(
        wait_until(Duration::from_secs(20), || late.all().len() == 1),
        "the late receiver got {:?}",
        late.all()
    );
    let mut st = Value::Null;
    assert!(wait_until(Duration::from_secs(3), || {
        st = read(&mut c, Duration::from_millis(400), &mut frames, &mut events)
            .unwrap_or(Value::Null);
        st["notify"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["name"] == "late" && t["sent"] == 1))
    }));
    let late_st = st["notify"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "late"))
        .cloned()
        .unwrap_or_default();
    assert!(late_st["retries"].as_u64().unwrap_or(0) >= 1, "{late_st}");
    d.stop();
}

/// p99 of the frames' latency (ms).
fn p99(frames: &[Value]) -> f64 {
    let mut l: Vec<f64> = frames
        .iter()
        .filter_map(|f| f["latency_ms"].as_f64())
        .collect();
    l.sort_by(f64::total_cmp);
    l.get(l.len() * 99 / 100).copied().unwrap_or(f64::NAN)
}

#[test]
fn a_hung_receiver_never_delays_a_frame() {
    let dir = tempfile::tempdir().expect("tmp");
    let hung = Receiver::on(0, true);
    let wav = dir.path().join("flap.wav");
    write_wav_f32(&wav, 12_000, &two_faults_in_turn(2, 1.2));
    let port = common::web::free_port();
    // The page's /metrics, read at the end of the run.
    let run = |notify: &str| -> (Vec<Value>, Value, String) {
        let cfg = config(dir.path(), &wav, "loop = true", notify);
        let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
        let mut c = d.connect();
        let (mut frames, mut events) = (Vec::new(), Vec::new());
        let st = read(&mut c, Duration::from_secs(10), &mut frames, &mut events).expect("status");
        let metrics = common::web::get(port, "/metrics").body;
        d.stop();
        assert!(events.len() >= 3, "{} events", events.len());
        (frames, st, metrics)
    };
    let http = format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    let (plain, _, _) = run(&http);
    let (frames, st, metrics) = run(&format!(
        "{http}[[notify]]\non = [\"fault\"]\ninterval-s = 0\ntimeout-s = 1\nurl = \"http://127.0.0.1:{}/\"\n",
        hung.port
    ));
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "frames not contiguous"
    );
    assert_eq!(st["streams"][0]["dropped_frames"], 0);
    let t = &st["notify"][0];
    assert!(
        t["retries"].as_u64().unwrap_or(0) >= 1,
        "the receiver never answered: {t}"
    );
    assert!(
        t["last_error"].as_str().unwrap_or("").contains("no answer"),
        "{t}"
    );
    // /metrics says the same, and promtool reads it.
    let retries = metrics
        .lines()
        .find_map(|l| l.strip_prefix("drsnd_notify_retries_total{target=\"notify-1\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(retries.is_some_and(|r| r >= 1.0), "{metrics}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (scripts/setup-system.sh installs prometheus)");
    let mut stdin = promtool.stdin.take().expect("stdin");
    stdin.write_all(metrics.as_bytes()).expect("feed promtool");
    drop(stdin);
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (p99(&plain), p99(&frames));
    eprintln!("frame latency p99: {a:.2} ms without, {b:.2} ms with a hung receiver");
    assert!(b <= 2.0 * a + 5.0, "p99 {b:.2} ms against {a:.2} ms");
}

#[test]
fn bad_notify_and_sparkplug_settings_exit_78_naming_the_key_and_a_reload_keeps_the_old() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = dir.path().join("healthy.wav");
    write_wav_f32(&wav, 12_000, &healthy_12k());
    let spool = dir.path().join("spool");
    let cases = [
        ("[[notify]]\non = [\"fault\"]\nurl = \"ftp://files.plant/x\"".to_string(), "key `url`: \"ftp:"),
        ("[[notify]]\non = [\"fault\"]\ncommand = [\"/usr/bin/no-such-notifier\"]".to_string(), "key `command`"),
        ("[[notify]]\non = [\"fire\"]\nurl = \"http://h/\"".to_string(), "fire"),
        ("[[notify]]\non = [\"fault\"]\nurl-file = \"/nonexistent/hook\"".to_string(), "url-file /nonexistent/hook"),
        (
            format!("[mqtt]\nbroker = \"mqtt://h\"\nspool-dir = \"{}\"\nsparkplug = true\ngroup-id = \"plant/+\"", spool.display()),
            "key `group-id`",
        ),
    ];
    for (table, want) in &cases {
        let cfg = config(dir.path(), &wav, "", table);
        for cmd in ["run", "check"] {
            let out = Command::new(env!("CARGO_BIN_EXE_drsnd"))
                .args([cmd, "--config"])
                .arg(&cfg)
                .output()
                .expect("drsnd");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{cmd} {table}: {err}");
            assert!(
                err.contains(want),
                "{cmd} {table}: wanted {want:?} in {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // A reload with a broken target keeps the running ones.
    let good = Receiver::on(0, false);
    let table = format!(
        "[[notify]]\non = [\"fault\"]\nurl = \"http://127.0.0.1:{}/\"",
        good.port
    );
    let cfg = config(dir.path(), &wav, "loop = true", &table);
    let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let mut c = d.connect();
    let (mut f, mut e) = (Vec::new(), Vec::new());
    read(&mut c, Duration::from_secs(1), &mut f, &mut e);
    config(dir.path(), &wav, "loop = true", &cases[1].0);
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    let st = read(&mut c, Duration::from_secs(3), &mut f, &mut e).expect("status");
    assert_eq!(st["reload"]["ok"], false, "{}", st["reload"]);
    let msg = st["reload"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("command"), "{msg}");
    assert_eq!(
        st["notify"][0]["name"], "notify-1",
        "the old target stays: {}",
        st["notify"]
    );
    d.stop();
}

#[test]
fn a_webhook_over_https_trusts_its_ca_file_and_sends_the_token_from_its_file() {
    let dir = tempfile::tempdir().expect("tmp");
    common::tls::certificates(dir.path());
    let port = common::web::free_port();
    let out = dir.path().join("received.jsonl");
    let mut receiver = Command::new("python3")
        .arg(root().join("tests/tools/https_receiver.py"))
        .arg(port.to_string())
        .arg(dir.path().join("server.pem"))
        .arg(dir.path().join("server.key"))
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("https_receiver.py");
    let mut ready = String::new();
    BufReader::new(receiver.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("ready line");
    assert_eq!(ready.trim(), "ready");
    std::fs::write(dir.path().join("token"), "s3cret\n").expect("token");
    let wav = dir.path().join("flap.wav");
    write_wav_f32(&wav, 12_000, &two_faults_in_turn(2, 1.2));
    let target = |name: &str, ca: &str| {
        format!(
            "[[notify]]\nname = \"{name}\"\non = [\"fault\"]\ninterval-s = 0\nretries = 1\nformat = \"ntfy\"\n\
             url = \"https://127.0.0.1:{port}/pump-7\"\nca-file = \"{}\"\ntoken-file = \"{}\"\n",
            dir.path().join(ca).display(),
            dir.path().join("token").display()
        )
    };
    let notify = target("phone", "ca.pem") + &target("wrong-ca", "other-ca.pem");
    let cfg = config(dir.path(), &wav, "", &notify);
    let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let mut c = d.connect();
    let (mut frames, mut events) = (Vec::new(), Vec::new());
    let mut st = Value::Null;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(9) {
        st = read(&mut c, Duration::from_millis(500), &mut frames, &mut events).unwrap_or(st);
    }
    let faults = events
        .iter()
        .filter(|e| e["to"]["state"] == "fault")
        .count();
    assert!(faults >= 2, "{events:?}");
    let got: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(got.len(), faults, "one per fault over TLS: {got:?}");
    for g in &got {
        assert_eq!(g["path"], "/pump-7");
        assert_eq!(
            g["authorization"], "Bearer s3cret",
            "the token from its file"
        );
        assert!(
            g["title"].as_str().unwrap_or("").contains("pump: fault"),
            "{g}"
        );
        assert!(g["body"].as_str().unwrap_or("").contains("pump on"), "{g}");
    }
    let wrong = st["notify"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "wrong-ca").cloned())
        .unwrap_or_default();
    assert_eq!(wrong["sent"], 0, "{wrong}");
    assert!(
        wrong["last_error"].as_str().unwrap_or("").contains("TLS"),
        "{wrong}"
    );
    assert!(
        wrong["target"]
            .as_str()
            .unwrap_or("")
            .ends_with(":{port}/…".replace("{port}", &port.to_string()).as_str()),
        "the path stays secret: {wrong}"
    );
    d.stop();
    let _ = receiver.kill();
    let _ = receiver.wait();
}
