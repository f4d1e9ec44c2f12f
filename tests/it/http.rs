//! The HTTP sink on the real binary: the page in a real headless Chromium
//! (WebDriver), `/metrics` through `promtool check metrics` and against
//! `status`, SSE reconnection with `Last-Event-ID`, and bad requests.

use crate::common;

use common::web::{self, Browser};
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(dir: &Path, port: u16, http_extra: &str, sources: &[(&str, &Path, &str)]) -> PathBuf {
    let mut text = format!(
        "model = \"{}\"\n[socket]\nstatus-interval-ms = 500\n[http]\nlisten = \"127.0.0.1:{port}\"\n{http_extra}\n",
        model().display()
    );
    for (name, path, extra) in sources {
        text += &format!(
            "[[source]]\nkind = \"wav\"\npath = \"{}\"\nstreams = [\"{name}\"]\n{extra}\n",
            path.display()
        );
    }
    let p = dir.join("drsnd.toml");
    std::fs::write(&p, text).expect("config");
    p
}

fn start(cfg: &Path) -> Daemon {
    Daemon::start(&["--config", cfg.to_str().expect("utf-8")])
}

/// Where test artefacts (screenshots) go.
fn artefacts() -> PathBuf {
    root().join("target").join("test-artifacts")
}

#[test]
fn the_page_shows_every_stream_turns_to_fault_and_draws_the_thresholds() {
    let dir = tempfile::tempdir().expect("tmp");
    // pump: 6 s healthy, then 10 s of an inner-race fault; motor: healthy throughout.
    // The healthy recording is 4 s long: repeated as needed.
    let healthy: Vec<f32> = healthy_12k()
        .iter()
        .copied()
        .cycle()
        .take(20 * 12_000)
        .collect();
    let mut pump = healthy[..6 * 12_000].to_vec();
    pump.extend(fault("1797_IR_14.wav", 10.0));
    let pump_wav = dir.path().join("pump.wav");
    write_wav_f32(&pump_wav, 12_000, &pump);
    let motor_wav = dir.path().join("motor.wav");
    write_wav_f32(&motor_wav, 12_000, &healthy[..20 * 12_000]);
    let port = web::free_port();
    let cfg = config(
        dir.path(),
        port,
        "",
        // The pump's source says its units, speed and bearing: velocity, zone
        // and the envelope's family on the page too.
        &[
            (
                "pump",
                &pump_wav,
                "units = \"g\"\nrpm = 1797\nbearing = { bpfo = 3.5848, bpfi = 5.4152, bsf = 2.357 }",
            ),
            ("motor", &motor_wav, ""),
        ],
    );
    let d = start(&cfg);
    let mut c = d.connect();
    c.until("hello");
    let browser = Browser::start();
    let url = format!("http://127.0.0.1:{port}/");
    let t0 = Instant::now();
    browser.open(&url);
    eprintln!("the page loaded in {:?}", t0.elapsed());
    let both = "const t = [...document.querySelectorAll('.tile')]; \
                return ['pump','motor'].every(n => t.some(x => x.dataset.stream === n && x.dataset.state));";
    let shown = browser.wait_for(both, Duration::from_secs(3));
    eprintln!("both streams shown {shown:?} after the load");
    assert!(
        shown.is_some(),
        "the page did not show both streams with a state within 3 s of loading"
    );
    browser.eval("document.querySelector('.tile[data-stream=pump]').click(); return true;");

    // The daemon's event, then the band on the page.
    let event = loop {
        let m = c.next().expect("daemon talking");
        if m["type"] == "event" && m["stream"] == "pump" && m["to"]["state"] == "fault" {
            break m;
        }
    };
    let seen = Instant::now();
    let turned = browser.wait_for(
        "return document.getElementById('band').dataset.lastState === 'fault';",
        Duration::from_secs(2),
    );
    assert!(
        turned.is_some(),
        "the state band did not turn to fault within 2 s of the event {event}"
    );
    eprintln!("band turned {:?} after the event", seen.elapsed());
    // The tile names the family (what the state follows) before the fine class.
    let lb = "return document.querySelector('.tile[data-stream=pump] .lb').textContent.startsWith('inner ');";
    assert!(
        browser.wait_for(lb, Duration::from_secs(2)).is_some(),
        "the pump tile does not name the fault family: {}",
        browser.eval("return document.querySelector('.tile[data-stream=pump] .lb').textContent;")
    );
    // Beside the verdict, the envelope's evidence names the same family.
    let env = "return document.querySelector('.tile[data-stream=pump] .lb').textContent.includes('envelope inner');";
    assert!(
        browser.wait_for(env, Duration::from_secs(5)).is_some(),
        "the pump tile does not show the envelope's family: {}",
        browser.eval("return document.querySelector('.tile[data-stream=pump] .lb').textContent;")
    );
    // The state says who named the fault (the verdict's source).
    let named = "return document.querySelector('.tile[data-stream=pump] .st').textContent.includes('named by network');";
    assert!(
        browser.wait_for(named, Duration::from_secs(2)).is_some(),
        "the pump tile does not say who named the fault: {}",
        browser.eval("return document.querySelector('.tile[data-stream=pump] .st').textContent;")
    );
    std::thread::sleep(Duration::from_millis(1500));
    // The heatmap has drawn: painted pixels, and more than one colour.
    let painted = browser.eval(
        "const c = document.getElementById('heatmap'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
         let n = 0; const colours = new Set(); \
         for (let i = 0; i < d.length; i += 4) { if (d[i + 3] > 0) { n++; colours.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]); } } \
         return [n, colours.size, c.width, c.height];",
    );
    let (n, colours) = (
        painted[0].as_u64().unwrap_or(0),
        painted[1].as_u64().unwrap_or(0),
    );
    assert!(n > 1000 && colours > 10, "heatmap not drawn: {painted}");
    // The page asked nothing of anyone but the daemon.
    let origins = browser.eval(
        "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));",
    );
    let urls: Vec<&str> = origins
        .as_array()
        .expect("urls")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(urls.len() >= 4, "{urls:?}");
    for u in &urls {
        assert!(u.starts_with(&url), "the page requested {u}");
    }
    // The velocity trend and zone of the pump (its source has units).
    let zone = browser.wait_for(
        "return !document.getElementById('velpanel').hidden && \
                /^[ABCD]$/.test(document.getElementById('zone').textContent) && \
                document.querySelectorAll('#vel canvas').length > 0;",
        Duration::from_secs(2),
    );
    assert!(zone.is_some(), "no velocity chart and zone for the pump");
    browser.screenshot(&artefacts().join("page-fault.png"));
    // The spectrum came with the frames, and the chart has data.
    let spectrum = browser.eval("return document.querySelectorAll('#spectrum canvas').length;");
    assert!(spectrum.as_u64() >= Some(1), "no spectrum chart");
}

/// The value of `name{labels}` in a Prometheus text exposition.
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_pass_promtool_and_agree_with_status() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut x = healthy_12k()[..4 * 12_000].to_vec();
    x.extend(fault("1797_IR_14.wav", 6.0));
    let wav = dir.path().join("pump.wav");
    write_wav_f32(&wav, 12_000, &x);
    let port = web::free_port();
    let source = "pace = \"fast\"\nunits = \"g\"";
    let cfg = config(dir.path(), port, "", &[("pump", &wav, source)]);
    let mut d = start(&cfg);
    let mut c = d.connect();
    let want_frames = (x.len() as u64 - 2048) / 512 + 1;
    let status = loop {
        let m = c.next().expect("daemon talking");
        if m["type"] == "status" && m["streams"][0]["frames"].as_u64() == Some(want_frames) {
            break m;
        }
    };
    // Every event since the start, from the replay record (a fast replay can
    // raise the first before the socket client is connected).
    let replay = Sse::open(port, Some(0));
    std::thread::sleep(Duration::from_millis(500));
    let events = replay.events().len();
    replay.kill();
    let r = web::get(port, "/metrics");
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        r.head
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/setup-system.sh installs prometheus)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(r.body.as_bytes())
        .expect("feed promtool");
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s = &status["streams"][0];
    let m = |k: &str| metric(&r.body, k).unwrap_or_else(|| panic!("no {k} in\n{}", r.body));
    assert_eq!(
        m("drsnd_frames_total{stream=\"pump\"}"),
        s["frames"].as_f64().expect("frames")
    );
    assert_eq!(
        m("drsnd_captured_samples_total{stream=\"pump\"}"),
        s["captured_samples"].as_f64().expect("captured")
    );
    for k in [
        "overrun_samples",
        "gap_samples",
        "dropped_frames",
        "nonfinite_frames",
        "clipped_frames",
    ] {
        assert_eq!(
            m(&format!("drsnd_{k}_total{{stream=\"pump\"}}")),
            s[k].as_f64().expect(k),
            "{k}"
        );
    }
    assert_eq!(
        m("drsnd_analysis_duration_seconds_count{stream=\"pump\"}"),
        want_frames as f64
    );
    let state = s["machine"]["state"].as_str().expect("state");
    assert_eq!(
        m(&format!(
            "drsnd_machine_state{{stream=\"pump\",state=\"{state}\"}}"
        )),
        1.0
    );
    let total_events: f64 = ["starting", "healthy", "fault", "uncertain", "no-signal"]
        .iter()
        .map(|k| {
            m(&format!(
                "drsnd_events_total{{stream=\"pump\",state=\"{k}\"}}"
            ))
        })
        .sum();
    assert_eq!(
        total_events, events as f64,
        "events counted against events seen"
    );
    assert!(m("drsnd_events_total{stream=\"pump\",state=\"fault\"}") >= 1.0);
    // The source has units: its velocity (m/s, base units) is a gauge.
    let v = m("drsnd_velocity_rms_meters_per_second{stream=\"pump\"}");
    assert!(v.is_finite() && v > 0.0 && v < 0.1, "velocity {v} m/s");
    let sha = status["model"]["sha256"].as_str().expect("sha");
    assert!(
        r.body.contains(&format!("sha256=\"{sha}\"}} 1")),
        "model info"
    );
    assert_eq!(m("drsnd_clients{sink=\"socket\"}"), 1.0);
    // /api/status is the last status message.
    let api = web::get(port, "/api/status");
    assert_eq!(api.status, 200);
    let v: Value = serde_json::from_str(&api.body).expect("status JSON");
    validate(&api.body);
    assert_eq!(v["streams"][0]["frames"].as_u64(), Some(want_frames));
    assert_eq!(d.stop().code(), Some(0));
}

/// (id, message) pairs as they came.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(Option<u64>, Value)>>>;

/// An SSE connection read on a thread: (id, message) pairs as they come.
struct Sse {
    stream: TcpStream,
    got: Received,
}

impl Sse {
    fn open(port: u16, last_id: Option<u64>) -> Sse {
        Sse::open_at(port, "/events", last_id)
    }

    fn open_at(port: u16, path: &str, last_id: Option<u64>) -> Sse {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_id {
            req += &format!("Last-Event-ID: {id}\r\n");
        }
        req += "\r\n";
        s.write_all(req.as_bytes()).expect("send");
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (out, rd) = (got.clone(), s.try_clone().expect("clone"));
        std::thread::spawn(move || {
            let mut id = None;
            // The body is chunked: data lines still arrive whole, with chunk
            // sizes on lines of their own that match neither prefix.
            for line in BufReader::new(rd).lines().map_while(Result::ok) {
                if let Some(v) = line
                    .strip_prefix("id: ")
                    .or_else(|| line.strip_prefix("id:"))
                {
                    id = v.trim().parse().ok();
                } else if let Some(d) = line
                    .strip_prefix("data: ")
                    .or_else(|| line.strip_prefix("data:"))
                {
                    if let Ok(v) = serde_json::from_str::<Value>(d) {
                        out.lock().expect("sse").push((id.take(), v));
                    }
                }
            }
        });
        Sse { stream: s, got }
    }

    fn frames(&self) -> Vec<Value> {
        let got = self.got.lock().expect("sse");
        got.iter()
            .filter(|(_, v)| v["type"] == "frame")
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn events(&self) -> Vec<(Option<u64>, Value)> {
        self.got
            .lock()
            .expect("sse")
            .iter()
            .filter(|(_, v)| v["type"] == "event")
            .cloned()
            .collect()
    }

    fn last_id(&self) -> Option<u64> {
        self.got
            .lock()
            .expect("sse")
            .iter()
            .filter_map(|(id, _)| *id)
            .max()
    }

    fn kill(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

fn key(e: &Value) -> String {
    format!("{} {} {}", e["stream"], e["stream_time_s"], e["to"])
}

#[test]
fn a_page_that_reconnects_with_last_event_id_misses_no_event() {
    let dir = tempfile::tempdir().expect("tmp");
    // Two faults in turn every 1.2 s: a state change about every 1.2 s.
    let x = two_faults_in_turn(8, 1.2);
    let wav = dir.path().join("flap.wav");
    write_wav_f32(&wav, 12_000, &x);
    let port = web::free_port();
    let cfg = config(dir.path(), port, "", &[("pump", &wav, "")]);
    let d = start(&cfg);
    let mut c = d.connect();
    c.until("hello");
    let first = Sse::open(port, None);
    let mut on_socket = Vec::new();
    let read_socket = |c: &mut Client, d: Duration, into: &mut Vec<Value>| {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            let m = c.next().expect("daemon talking");
            if m["type"] == "event" {
                into.push(m);
            }
        }
    };
    read_socket(&mut c, Duration::from_secs(6), &mut on_socket);
    let last = first.last_id().expect("ids on the first connection");
    let before = first.events();
    first.kill();
    // Events happen while the page is away.
    let away = on_socket.len();
    read_socket(&mut c, Duration::from_secs(4), &mut on_socket);
    assert!(
        on_socket.len() >= away + 2,
        "events while away: {}",
        on_socket.len() - away
    );
    let second = Sse::open(port, Some(last));
    read_socket(&mut c, Duration::from_secs(10), &mut on_socket);
    std::thread::sleep(Duration::from_millis(500));
    let after = second.events();
    let mut ids: Vec<u64> = before
        .iter()
        .chain(&after)
        .filter_map(|(id, _)| *id)
        .collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "an event came twice");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "events out of order: {ids:?}"
    );
    let via_sse: Vec<String> = before.iter().chain(&after).map(|(_, v)| key(v)).collect();
    let via_socket: Vec<String> = on_socket.iter().map(key).collect();
    assert!(
        via_socket.len() >= 8,
        "{} events on the socket",
        via_socket.len()
    );
    assert_eq!(
        via_sse, via_socket,
        "the page's events (both connections) against the socket's"
    );
    second.kill();
}

#[test]
fn a_focused_page_gets_the_other_streams_as_tiles_at_ten_frames_a_second() {
    let dir = tempfile::tempdir().expect("tmp");
    let healthy: Vec<f32> = healthy_12k()
        .iter()
        .copied()
        .cycle()
        .take(12 * 12_000)
        .collect();
    let wav = dir.path().join("healthy.wav");
    write_wav_f32(&wav, 12_000, &healthy);
    let port = web::free_port();
    let cfg = config(
        dir.path(),
        port,
        "",
        &[("pump", &wav, ""), ("fan", &wav, "")],
    );
    let d = start(&cfg);
    let mut c = d.connect();
    c.until("hello");
    // An id from an earlier run of the daemon (larger than any given yet)
    // must not hold back what this run sends.
    let focused = Sse::open_at(port, "/events?focus=pump&after=999999999", None);
    let plain = Sse::open(port, None);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        c.next().expect("daemon talking");
    }
    let per_stream = |frames: &[Value], name: &str| -> Vec<Value> {
        frames
            .iter()
            .filter(|f| f["stream"] == name)
            .cloned()
            .collect()
    };
    let (f, p) = (focused.frames(), plain.frames());
    for (who, frames) in [("focused", &f), ("plain", &p)] {
        for name in ["pump", "fan"] {
            let n = per_stream(frames, name).len();
            // 5 s at 10 per second (23.4 are made), give or take start-up.
            assert!(
                (25..=60).contains(&n),
                "{who} page, {name}: {n} frames in 5 s"
            );
        }
    }
    let has = |f: &Value, k: &str| f.get(k).is_some_and(|v| !v.is_null());
    assert!(per_stream(&f, "pump")
        .iter()
        .all(|f| has(f, "thresholds") && has(f, "spectrum_db")));
    assert!(
        per_stream(&f, "fan")
            .iter()
            .all(|f| !has(f, "thresholds") && !has(f, "spectrum_db")),
        "the focused page got the fan's thresholds"
    );
    assert!(per_stream(&f, "fan")
        .iter()
        .all(|f| f["probs"].is_array() && f["rms"].is_number()));
    assert!(
        p.iter().all(|f| has(f, "thresholds")),
        "the plain page lost thresholds"
    );
    focused.kill();
    plain.kill();
}

#[test]
fn bad_requests_get_their_status_and_cost_the_stream_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let token = "0123456789abcdef-test-token";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token");
    let port = web::free_port();
    let cfg = config(
        dir.path(),
        port,
        &format!(
            "token-file = \"{}\"\nmax-clients = 2\n",
            token_file.display()
        ),
        &[("motor", &cwru("1797_IR_14.wav"), "loop = true")],
    );
    let d = start(&cfg);
    let mut c = d.connect();
    c.until("hello");
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(web::get(port, "/").status, 401, "no token");
    assert_eq!(
        web::request(
            port,
            "GET",
            "/metrics",
            &["Authorization: Bearer wrong-token-0000000"]
        )
        .status,
        401
    );
    assert_eq!(web::get(port, "/?token=nope").status, 401);
    let r = web::get(port, &format!("/?token={token}"));
    assert_eq!(r.status, 303, "{}", r.head);
    assert!(
        r.head.contains("drsnd_token=") && r.head.contains("HttpOnly"),
        "{}",
        r.head
    );
    assert_eq!(
        web::request(port, "GET", "/", &[&format!("Cookie: drsnd_token={token}")]).status,
        200
    );
    let page = web::request(port, "GET", "/", &[&bearer]);
    assert_eq!(page.status, 200);
    assert!(
        !page
            .head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "no CORS"
    );
    assert!(page.body.len() < 300 * 1024);
    assert_eq!(web::request(port, "GET", "/nope", &[&bearer]).status, 404);
    assert_eq!(
        web::request(port, "POST", "/metrics", &[&bearer, "Content-Length: 0"]).status,
        405
    );
    let huge = format!("X-Junk: {}", "x".repeat(40_000));
    let r = web::request(port, "GET", "/", &[&bearer, &huge]);
    assert_eq!(r.status, 431, "{}", r.head);
    // Slow: half a request head, then nothing; the daemon hangs up.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "a slow request held on for {:?}",
        t0.elapsed()
    );
    // The event-stream limit: two open, the third refused.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(format!("GET /events HTTP/1.1\r\nHost: x\r\n{bearer}\r\n\r\n").as_bytes())
                .expect("send");
            let mut first = [0u8; 12];
            s.read_exact(&mut first).expect("reply");
            assert_eq!(&first, b"HTTP/1.1 200");
            s
        })
        .collect();
    assert_eq!(web::request(port, "GET", "/events", &[&bearer]).status, 503);
    drop(held);
    // Through all of it the stream went on, frame after frame.
    let mut seq = None;
    let t0 = Instant::now();
    let mut frames = 0;
    while frames < 20 {
        assert!(t0.elapsed() < Duration::from_secs(10));
        let m = c.next().expect("daemon talking");
        if m["type"] == "frame" {
            let s = m["seq"].as_u64().expect("seq");
            if let Some(p) = seq {
                assert_eq!(s, p + 1, "a frame was lost");
            }
            seq = Some(s);
            frames += 1;
        }
    }
    let st = c.until("status");
    assert_eq!(st["streams"][0]["dropped_frames"], 0);
}

#[test]
fn an_open_address_without_a_token_or_a_missing_token_file_exits_78() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = cwru("1797_IR_14.wav");
    for (extra, listen, needle) in [
        ("", "0.0.0.0", "token-file"),
        (
            "token-file = \"/nonexistent/token\"\n",
            "127.0.0.1",
            "/nonexistent/token",
        ),
    ] {
        let text = format!(
            "model = \"{}\"\n[http]\nlisten = \"{listen}:{}\"\n{extra}[[source]]\nkind = \"wav\"\npath = \"{}\"\n",
            model().display(),
            web::free_port(),
            wav.display()
        );
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, text).expect("config");
        let out = Command::new(BIN)
            .args(["run", "--config", p.to_str().expect("utf-8"), "--socket"])
            .arg(dir.path().join("s.sock"))
            .output()
            .expect("drsnd runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{err}");
        assert!(err.contains(needle) && err.contains("http"), "{err}");
    }
}
