//! The MQTT sink on the real binary against a real mosquitto: a broker
//! outage in the middle of a fault sequence, SIGKILL and restart, TLS with
//! client certificates and refused credentials, the spool's cap, bad
//! settings, and `drsnd fleet`.

use crate::common;

use common::broker::{Broker, Subscriber};
use common::tls::certificates;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A config with one WAV stream `pump` and the `[mqtt]` table `mqtt`
/// (`extra`: more source keys). Also used by the Sparkplug and Home
/// Assistant tests.
pub(crate) fn config(dir: &Path, mqtt: &str, wav: &Path, extra: &str) -> PathBuf {
    let text = format!(
        "model = \"{}\"\n[socket]\nstatus-interval-ms = 500\n[mqtt]\n{mqtt}\n\
         [[source]]\nkind = \"wav\"\npath = \"{}\"\nstreams = [\"pump\"]\n{extra}\n",
        model().display(),
        wav.display()
    );
    let p = dir.join("drsnd.toml");
    std::fs::write(&p, text).expect("config");
    p
}

pub(crate) fn mqtt_table(port: u16, spool: &Path, extra: &str) -> String {
    format!(
        "broker = \"mqtt://127.0.0.1:{port}\"\nsite = \"test\"\nnode = \"box1\"\n\
         keep-alive-s = 2\nspool-dir = \"{}\"\n{extra}",
        spool.display()
    )
}

fn start(cfg: &Path) -> Daemon {
    Daemon::start(&["--config", cfg.to_str().expect("utf-8")])
}

/// Reads the socket for `d`, keeping events, and the last status.
fn read_for(c: &mut Client, d: Duration, events: &mut Vec<Value>) -> Option<Value> {
    let t0 = Instant::now();
    let mut status = None;
    while t0.elapsed() < d {
        let Some(m) = c.next() else { break };
        match m["type"].as_str() {
            Some("event") => events.push(m),
            Some("status") => status = Some(m),
            _ => {}
        }
    }
    status
}

fn key(e: &Value) -> String {
    format!("{} {} {}", e["stream"], e["stream_time_s"], e["to"])
}

/// The events a subscriber got, first copy of each id, in arrival order;
/// and how many copies were repeats.
fn by_id(sub: &Subscriber) -> (Vec<Value>, usize) {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut repeats = 0;
    for e in sub.json("event") {
        let id = e["id"].as_u64().expect("every event has an id");
        if seen.insert(id) {
            out.push(e);
        } else {
            repeats += 1;
        }
    }
    (out, repeats)
}

#[test]
fn every_event_reaches_the_subscriber_once_by_id_across_a_20_s_broker_outage() {
    let dir = tempfile::tempdir().expect("tmp");
    let bdir = dir.path().join("broker");
    std::fs::create_dir_all(&bdir).expect("dir");
    let mut broker = Broker::start(&bdir, "");
    let sub = Subscriber::start(broker.port, "drsnd/v1/test/#", "outage-sub");
    // Two faults in turn every 1.2 s for 50 s: an event about every 1.2 s.
    let wav = dir.path().join("flap.wav");
    write_wav_f32(&wav, 12_000, &two_faults_in_turn(21, 1.2));
    let cfg = config(
        dir.path(),
        &mqtt_table(broker.port, &dir.path().join("spool"), ""),
        &wav,
        "",
    );
    let mut d = start(&cfg);
    let mut c = d.connect();
    let mut on_socket = Vec::new();
    read_for(&mut c, Duration::from_secs(12), &mut on_socket);
    let stopped_at = unix_now();
    broker.stop();
    let down_at = on_socket.len();
    let status = read_for(&mut c, Duration::from_secs(20), &mut on_socket).expect("status");
    assert!(
        on_socket.len() >= down_at + 10,
        "events while the broker was away"
    );
    assert_eq!(status["mqtt"]["connected"], false, "{}", status["mqtt"]);
    assert!(
        status["mqtt"]["spool_entries"].as_u64().unwrap_or(0) >= 10,
        "{}",
        status["mqtt"]
    );
    broker.restart();
    let restarted_at = unix_now();
    // The rest of the recording, then until the spool is empty.
    let mut last = read_for(&mut c, Duration::from_secs(20), &mut on_socket).expect("status");
    let t0 = Instant::now();
    while last["mqtt"]["spool_entries"] != 0 && t0.elapsed() < Duration::from_secs(40) {
        last = read_for(&mut c, Duration::from_secs(1), &mut on_socket).unwrap_or(last);
    }
    assert_eq!(last["mqtt"]["spool_entries"], 0, "{}", last["mqtt"]);
    assert_eq!(last["mqtt"]["spool_dropped"], 0);
    let want: Vec<String> = on_socket.iter().map(key).collect();
    assert!(
        sub.wait_for(Duration::from_secs(10), |_| by_id(&sub).0.len()
            >= want.len())
    );
    let (got, repeats) = by_id(&sub);
    eprintln!(
        "{} events, {} repeated copies on the wire",
        got.len(),
        repeats
    );
    let ids: Vec<u64> = got.iter().map(|e| e["id"].as_u64().unwrap_or(0)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
    assert_eq!(
        got.iter().map(key).collect::<Vec<_>>(),
        want,
        "the broker's events against the socket's"
    );
    for (g, s) in got.iter().zip(&on_socket) {
        assert_eq!(g["time"], s["time"], "original time kept");
        assert_eq!(g["node"], "box1");
    }
    // The retained state is the daemon's final state.
    let final_state = &last["streams"][0]["machine"];
    let retained = broker.retained("drsnd/v1/test/box1/pump/state");
    assert_eq!(retained.len(), 1, "{retained:?}");
    let r: Value = serde_json::from_str(&retained[0].1).expect("json");
    assert_eq!(
        &r["state"], final_state,
        "retained {r} against status {final_state}"
    );
    // Summaries came while connected, and none of the outage's was kept
    // for later (QoS 0: best effort). Counted per connected span, not per
    // wall-clock window: after a 20 s outage the reconnect backoff (up to
    // 30 s) may come after the recording's end, so no count after it is due.
    let frames = sub.json("frame");
    let time = |f: &Value| f["time"].as_f64().unwrap_or(0.0);
    let before = frames.iter().filter(|f| time(f) < stopped_at).count();
    let during = frames
        .iter()
        .filter(|f| time(f) > stopped_at + 1.5 && time(f) < restarted_at)
        .count();
    eprintln!(
        "{} summaries: {before} before the outage, {during} from it",
        frames.len()
    );
    assert!(before >= 3, "{before} summaries in 12 s connected");
    assert_eq!(during, 0, "a summary of the outage was kept and sent late");
    assert!(frames
        .iter()
        .all(|f| f["frames"].as_u64().unwrap_or(0) >= 1 && f["rms"].is_number()));
    assert!(last["mqtt"]["frames_not_sent"].as_u64().unwrap_or(0) >= 10);
    d.stop();
}

#[test]
fn a_killed_daemon_is_offline_at_once_and_a_restart_delivers_what_it_had_spooled() {
    let dir = tempfile::tempdir().expect("tmp");
    let bdir = dir.path().join("broker");
    std::fs::create_dir_all(&bdir).expect("dir");
    let mut broker = Broker::start(&bdir, "");
    let sub = Subscriber::start(broker.port, "drsnd/v1/test/#", "kill-sub");
    let wav = dir.path().join("flap.wav");
    write_wav_f32(&wav, 12_000, &two_faults_in_turn(10, 1.2));
    let spool = dir.path().join("spool");
    let cfg = config(dir.path(), &mqtt_table(broker.port, &spool, ""), &wav, "");
    let status_of = |sub: &Subscriber| -> Vec<String> {
        sub.json("status")
            .iter()
            .map(|s| s["status"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let mut d = start(&cfg);
    assert!(sub.wait_for(Duration::from_secs(10), |_| status_of(&sub)
        .last()
        .map(String::as_str)
        == Some("online")));
    unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    assert!(
        sub.wait_for(Duration::from_secs(3), |_| status_of(&sub)
            .last()
            .map(String::as_str)
            == Some("offline")),
        "no offline within keep-alive x 1.5 = 3 s: {:?}",
        status_of(&sub)
    );
    eprintln!("offline {:?} after SIGKILL", killed.elapsed());
    let _ = d.child.wait();
    // Again, and now the broker goes away while events happen.
    let mut d = start(&cfg);
    assert!(sub.wait_for(Duration::from_secs(10), |_| status_of(&sub)
        .last()
        .map(String::as_str)
        == Some("online")));
    let mut c = d.connect();
    let mut before = Vec::new();
    read_for(&mut c, Duration::from_secs(3), &mut before);
    broker.stop();
    let mut spooled = Vec::new();
    let mut st = read_for(&mut c, Duration::from_secs(6), &mut spooled).expect("status");
    assert!(
        spooled.len() >= 3,
        "{} events while the broker was away",
        spooled.len()
    );
    // The sink spools on its own thread, a moment after the socket has the
    // event: kill only once every event seen here is in the spool (an event
    // and the state it leads to are two entries), else the last one may be
    // killed in flight and the check below asks for an event never spooled.
    let t0 = Instant::now();
    while st["mqtt"]["spool_entries"].as_u64().unwrap_or(0) < 2 * spooled.len() as u64 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the spool stays behind the socket's {} events: {}",
            spooled.len(),
            st["mqtt"]
        );
        if let Some(s) = read_for(&mut c, Duration::from_millis(600), &mut spooled) {
            st = s;
        }
    }
    assert!(
        st["mqtt"]["spool_entries"].as_u64().unwrap_or(0) >= 6,
        "{}",
        st["mqtt"]
    );
    unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) };
    let _ = d.child.wait();
    broker.restart();
    // A healthy recording this time: the spool's events are the old ones.
    let healthy = dir.path().join("healthy.wav");
    write_wav_f32(&healthy, 12_000, &healthy_12k());
    let cfg2 = config(
        dir.path(),
        &mqtt_table(broker.port, &spool, ""),
        &healthy,
        "",
    );
    let mut d = start(&cfg2);
    let want: HashSet<String> = spooled.iter().map(key).collect();
    let arrived = |sub: &Subscriber| {
        let got: HashSet<String> = by_id(sub).0.iter().map(key).collect();
        want.is_subset(&got)
    };
    if !sub.wait_for(Duration::from_secs(15), |_| arrived(&sub)) {
        let mut c = d.connect();
        let st = read_for(&mut c, Duration::from_secs(1), &mut Vec::new());
        let got: Vec<String> = by_id(&sub).0.iter().map(key).collect();
        panic!(
            "spooled events did not arrive: wanted {want:?}, got {got:?}; status {:?}; log {}",
            st.map(|s| s["mqtt"].clone()),
            d.stderr()
        );
    }
    let (got, repeats) = by_id(&sub);
    assert_eq!(repeats, 0, "an event came twice by id");
    let ids: Vec<u64> = got.iter().map(|e| e["id"].as_u64().unwrap_or(0)).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids across restarts: {ids:?}"
    );
    d.stop();
    assert_eq!(
        status_of(&sub).last().map(String::as_str),
        Some("offline"),
        "a clean stop says offline"
    );
}

#[test]
fn a_full_spool_stays_under_its_cap_and_counts_what_it_dropped() {
    let dir = tempfile::tempdir().expect("tmp");
    // Nobody listens on this port: a five-minute outage, replayed fast.
    let port = common::web::free_port();
    let wav = dir.path().join("flap.wav");
    write_wav_f32(&wav, 12_000, &two_faults_in_turn(125, 1.2));
    let spool = dir.path().join("spool");
    let table = mqtt_table(port, &spool, "spool-max-mb = 0.05\n");
    let cfg = config(dir.path(), &table, &wav, "pace = \"fast\"");
    let mut d = start(&cfg);
    let mut c = d.connect();
    let mut events = Vec::new();
    let mut last = None;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(120) {
        last = read_for(&mut c, Duration::from_secs(1), &mut events).or(last);
        if last
            .as_ref()
            .is_some_and(|s| s["streams"][0]["source_state"] == "ended")
        {
            last = read_for(&mut c, Duration::from_secs(1), &mut events).or(last);
            break;
        }
    }
    let st = last.expect("status");
    let m = &st["mqtt"];
    assert!(
        events.len() >= 150,
        "{} events in 5 minutes of flapping",
        events.len()
    );
    let dropped = m["spool_dropped"].as_u64().expect("dropped");
    assert!(dropped > 0, "{m}");
    assert!(m["spool_bytes"].as_u64().expect("bytes") <= 50_000, "{m}");
    let on_disk = std::fs::metadata(spool.join("spool.log"))
        .expect("log")
        .len();
    assert!(on_disk <= 50_000 + 4096, "spool.log is {on_disk} bytes");
    // Two entries an event (the event and its state): all accounted for.
    assert_eq!(
        m["spool_entries"].as_u64().unwrap_or(0) + dropped,
        2 * events.len() as u64,
        "{m}"
    );
    assert!(d.stderr().contains("is full"), "the log says so");
    // Every event it kept is the latest: no state is older than the last event's.
    d.stop();
}

#[test]
fn tls_with_client_certificates_connects_and_a_wrong_ca_or_password_is_refused_without_a_tight_loop(
) {
    let dir = tempfile::tempdir().expect("tmp");
    let d0 = dir.path();
    certificates(d0);
    let out = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(d0.join("passwd"))
        .args(["box1", "right-password"])
        .output()
        .expect("mosquitto_passwd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = common::web::free_port();
    let p = |f: &str| d0.join(f).display().to_string();
    let listener = format!(
        "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        p("passwd"), p("ca.pem"), p("server.pem"), p("server.key")
    );
    let bdir = d0.join("broker");
    std::fs::create_dir_all(&bdir).expect("dir");
    let _broker = Broker::start_on(&bdir, port, &listener);
    std::fs::write(d0.join("good-pass"), "right-password\n").expect("pw");
    std::fs::write(d0.join("bad-pass"), "wrong-password\n").expect("pw");
    let wav = d0.join("healthy.wav");
    write_wav_f32(&wav, 12_000, &healthy_12k());
    let table = |name: &str, ca: &str, pass: &str| {
        format!(
            "broker = \"mqtts://127.0.0.1:{port}\"\nsite = \"tls\"\nnode = \"{name}\"\nusername = \"box1\"\n\
             password-file = \"{}\"\nca-file = \"{}\"\ncert-file = \"{}\"\nkey-file = \"{}\"\nspool-dir = \"{}\"\n",
            p(pass), p(ca), p("client.pem"), p("client.key"), p(&format!("spool-{name}"))
        )
    };
    let run = |name: &str, ca: &str, pass: &str| {
        let sub = d0.join(name);
        std::fs::create_dir_all(&sub).expect("dir");
        let cfg = config(&sub, &table(name, ca, pass), &wav, "loop = true");
        start(&cfg)
    };
    let mut good = run("good", "ca.pem", "good-pass");
    let mut wrong_ca = run("wrongca", "other-ca.pem", "good-pass");
    let mut wrong_pw = run("wrongpw", "ca.pem", "bad-pass");
    let t0 = Instant::now();
    let mut cg = good.connect();
    let mut ev = Vec::new();
    let mut g = read_for(&mut cg, Duration::from_secs(3), &mut ev).expect("status");
    assert_eq!(
        g["mqtt"]["connected"], true,
        "TLS with a client certificate: {}",
        g["mqtt"]
    );
    // 30 s of refusals.
    while t0.elapsed() < Duration::from_secs(30) {
        g = read_for(&mut cg, Duration::from_secs(1), &mut ev).unwrap_or(g);
    }
    // Fresh connections: their first status is the current one.
    let c = read_for(&mut wrong_ca.connect(), Duration::from_secs(1), &mut ev).expect("status");
    let w = read_for(&mut wrong_pw.connect(), Duration::from_secs(1), &mut ev).expect("status");
    for (what, st) in [("wrong CA", &c), ("wrong password", &w)] {
        let m = &st["mqtt"];
        assert_eq!(m["connected"], false, "{what}: {m}");
        let attempts = m["connect_attempts"].as_u64().unwrap_or(0);
        eprintln!("{what}: {attempts} attempts in 30 s; {}", m["last_error"]);
        // Backoff from 0.5 s doubling to 30 s: 7 or 8 in 30 s; a tight loop hundreds.
        assert!(
            (3..=9).contains(&attempts),
            "{what}: {attempts} attempts in 30 s"
        );
    }
    let why = |st: &Value| {
        st["mqtt"]["last_error"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    assert!(
        why(&w).contains("refused") && why(&w).contains("password"),
        "{}",
        why(&w)
    );
    assert!(
        why(&c).contains("certificate") || why(&c).contains("tls"),
        "{}",
        why(&c)
    );
    assert!(wrong_pw.stderr().contains("refused"), "the log says so");
    assert_eq!(g["mqtt"]["connected"], true);
    for d in [&mut good, &mut wrong_ca, &mut wrong_pw] {
        d.stop();
    }
}

#[test]
fn bad_mqtt_settings_exit_78_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let wav = dir.path().join("healthy.wav");
    write_wav_f32(&wav, 12_000, &healthy_12k());
    let spool = dir.path().join("spool").display().to_string();
    let cases = [
        (format!("broker = \"broker.plant:1883\"\nspool-dir = \"{spool}\""), "broker"),
        (format!("broker = \"mqtts://h:8883\"\nca-file = \"/nonexistent/ca.pem\"\nspool-dir = \"{spool}\""), "ca-file /nonexistent/ca.pem"),
        (format!("broker = \"mqtts://h:8883\"\ncert-file = \"/nonexistent/c.pem\"\nkey-file = \"/nonexistent/k.pem\"\nspool-dir = \"{spool}\""), "cert-file /nonexistent/c.pem"),
        ("broker = \"mqtt://h\"\nspool-dir = \"/proc/drsnd-spool\"".to_string(), "spool-dir /proc/drsnd-spool"),
        (format!("broker = \"mqtt://h\"\nframes = \"some\"\nspool-dir = \"{spool}\""), "line 6: key `frames`"),
    ];
    for (table, want) in cases {
        let cfg = config(dir.path(), &table, &wav, "");
        let out = Command::new(env!("CARGO_BIN_EXE_drsnd"))
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--socket")
            .arg(dir.path().join("s.sock"))
            .output()
            .expect("drsnd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{table}: {err}");
        assert!(err.contains(want), "{table}: wanted {want:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // `drsnd check` reads the same files.
    let table = format!(
        "broker = \"mqtts://h:8883\"\nca-file = \"/nonexistent/ca.pem\"\nspool-dir = \"{spool}\""
    );
    let cfg = config(dir.path(), &table, &wav, "");
    let out = Command::new(env!("CARGO_BIN_EXE_drsnd"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("drsnd check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("ca-file /nonexistent/ca.pem"), "{err}");
}

#[test]
fn a_reload_with_a_broken_mqtt_table_keeps_the_old_settings() {
    let dir = tempfile::tempdir().expect("tmp");
    let bdir = dir.path().join("broker");
    std::fs::create_dir_all(&bdir).expect("dir");
    let broker = Broker::start(&bdir, "");
    let wav = dir.path().join("healthy.wav");
    write_wav_f32(&wav, 12_000, &healthy_12k());
    let spool = dir.path().join("spool");
    let cfg = config(
        dir.path(),
        &mqtt_table(broker.port, &spool, ""),
        &wav,
        "loop = true",
    );
    let mut d = start(&cfg);
    let mut c = d.connect();
    let mut ev = Vec::new();
    let st = read_for(&mut c, Duration::from_secs(2), &mut ev).expect("status");
    assert_eq!(st["mqtt"]["connected"], true, "{}", st["mqtt"]);
    let broken = mqtt_table(
        broker.port,
        &spool,
        "cert-file = \"/nonexistent/c.pem\"\nkey-file = \"/nonexistent/k.pem\"\n",
    )
    .replace("mqtt://", "mqtts://");
    config(dir.path(), &broken, &wav, "loop = true");
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    let st = read_for(&mut c, Duration::from_secs(3), &mut ev).expect("status");
    assert_eq!(st["reload"]["ok"], false, "{}", st["reload"]);
    let msg = st["reload"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("cert-file /nonexistent/c.pem"), "{msg}");
    assert_eq!(st["mqtt"]["connected"], true, "the old settings stay");
    d.stop();
}

#[test]
fn drsnd_fleet_lists_every_node_and_stream_the_broker_knows() {
    let dir = tempfile::tempdir().expect("tmp");
    let bdir = dir.path().join("broker");
    std::fs::create_dir_all(&bdir).expect("dir");
    let broker = Broker::start(&bdir, "");
    let mut x = healthy_12k();
    x.extend(fault("1797_IR_14.wav", 3.0));
    let wav = dir.path().join("pump.wav");
    write_wav_f32(&wav, 12_000, &x);
    let mut daemons = Vec::new();
    for node in ["box1", "box2"] {
        let sub = dir.path().join(node);
        std::fs::create_dir_all(&sub).expect("dir");
        let table = mqtt_table(broker.port, &sub.join("spool"), "").replace("box1", node);
        daemons.push(start(&config(&sub, &table, &wav, "pace = \"fast\"")));
    }
    let t0 = Instant::now();
    let mut states = BTreeMap::new();
    while t0.elapsed() < Duration::from_secs(15) {
        states = broker
            .retained("drsnd/v1/test/+/pump/state")
            .into_iter()
            .collect::<BTreeMap<_, _>>();
        if states.len() == 2 && states.values().all(|v| v.contains("fault")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(states.len(), 2, "{states:?}");
    let fleet = || {
        let out = Command::new(env!("CARGO_BIN_EXE_drsnd"))
            .args([
                "fleet",
                "--broker",
                &format!("mqtt://127.0.0.1:{}", broker.port),
            ])
            .args(["--site", "test", "--once"])
            .output()
            .expect("drsnd fleet");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (out, text)
    };
    let (out, text) = fleet();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in ["box1", "box2"] {
        let line = text
            .lines()
            .find(|l| l.contains(node) && l.contains("pump"))
            .unwrap_or_else(|| panic!("no {node}/pump in\n{text}"));
        assert!(
            line.contains("fault (inner)") && line.contains("online"),
            "{line}"
        );
    }
    for d in &mut daemons {
        d.stop();
    }
    let (_, text) = fleet();
    assert_eq!(
        text.lines().filter(|l| l.contains("offline")).count(),
        2,
        "{text}"
    );
}

/// Wall-clock now, Unix seconds (the summaries' `time`).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
