//! Sparkplug B on the real binary against a real mosquitto, read by a real
//! Sparkplug host (tests/tools/sparkplug_listen.py: pysparkplug, a library
//! independent of drsnd's encoder): the births' metrics, DDATA equal to the
//! socket's frames and events, seq continuous over 300 messages, a rebirth
//! on NCMD, events of a broker outage replayed as historical, and the
//! NDEATH with the birth's bdSeq after SIGKILL.

use crate::common;
use crate::mqtt::{config, mqtt_table};

use common::broker::Broker;
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Python Sparkplug host, its decoded messages as they come.
struct Host {
    child: Child,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Host {
    fn start(port: u16, group: &str) -> Host {
        let python = root().join("tests/.venv/bin/python");
        assert!(
            python.exists(),
            "{} missing: run scripts/setup-python.sh",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(root().join("tests/tools/sparkplug_listen.py"))
            .args([&port.to_string(), group])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sparkplug_listen.py");
        let out = child.stdout.take().expect("stdout");
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    g.lock().expect("got").push(v);
                }
            }
        });
        let h = Host { child, got };
        assert!(h.wait(Duration::from_secs(10), |m| m
            .iter()
            .any(|v| v["type"] == "subscribed")));
        h
    }

    fn all(&self) -> Vec<Value> {
        self.got.lock().expect("got").clone()
    }

    fn of(&self, kind: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|v| v["type"] == kind)
            .collect()
    }

    fn wait(&self, limit: Duration, pred: impl Fn(&[Value]) -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if pred(&self.all()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        pred(&self.all())
    }

    fn rebirth(&mut self, node: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "rebirth {node}").expect("write");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric<'a>(msg: &'a Value, name: &str) -> Option<&'a Value> {
    msg["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}

fn bd_seq(msg: &Value) -> u64 {
    metric(msg, "bdSeq")
        .and_then(|m| m["value"].as_u64())
        .expect("bdSeq")
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(1.0),
        _ => a == b,
    }
}

/// Every DDATA that carries a frame's values equals that socket frame.
fn check_frames(msgs: &[Value], frames: &HashMap<u64, Value>) -> usize {
    let mut checked = 0;
    for m in msgs.iter().filter(|m| m["type"] == "DDATA") {
        let Some(seq) = metric(m, "frame/seq").and_then(|s| s["value"].as_u64()) else {
            continue;
        };
        let Some(f) = frames.get(&seq) else { continue };
        for (name, key) in [
            ("class", "label"),
            ("confidence", "confidence"),
            ("rms", "rms"),
        ] {
            if let Some(v) = metric(m, name) {
                assert!(
                    close(&v["value"], &f[key]),
                    "{name}: {} vs frame {seq} {key} {}",
                    v["value"],
                    f[key]
                );
            }
        }
        let ts = metric(m, "frame/seq").and_then(|s| s["timestamp"].as_u64());
        let want = (f["time"].as_f64().expect("time") * 1000.0).round() as u64;
        assert_eq!(ts, Some(want), "the metric's time is the frame's");
        checked += 1;
    }
    checked
}

/// The DDATA whose `state` metric an event set: (ms, state, historical).
fn states(msgs: &[Value]) -> Vec<(u64, String, bool)> {
    msgs.iter()
        .filter(|m| m["type"] == "DDATA")
        .filter_map(|m| metric(m, "state"))
        .map(|s| {
            (
                s["timestamp"].as_u64().unwrap_or(0),
                s["value"].as_str().unwrap_or("").to_string(),
                s["is_historical"] == true,
            )
        })
        .collect()
}

fn machine_events(events: &[Value]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter(|e| {
            !matches!(
                e["to"]["state"].as_str(),
                Some("iso-zone" | "degrading" | "steady")
            )
        })
        .map(|e| {
            let ms = (e["time"].as_f64().expect("time") * 1000.0).round() as u64;
            (ms, e["to"]["state"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn a_sparkplug_host_reads_births_data_rebirth_history_and_death() {
    let dir = tempfile::tempdir().expect("tmp");
    let bdir = dir.path().join("broker");
    std::fs::create_dir_all(&bdir).expect("dir");
    // The host's session keeps even QoS 0 messages while it is away.
    let mut broker = Broker::start(&bdir, "queue_qos0_messages true");
    let mut host = Host::start(broker.port, "plant");
    let wav = dir.path().join("flap.wav");
    write_wav_f32(&wav, 12_000, &two_faults_in_turn(2, 1.2));
    let spool = dir.path().join("spool");
    let mqtt = mqtt_table(
        broker.port,
        &spool,
        "frame-interval-s = 0.05\nsparkplug = true\ngroup-id = \"plant\"",
    );
    let cfg = config(dir.path(), &mqtt, &wav, "loop = true");
    let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let mut c = d.connect();
    let mut frames = HashMap::new();
    let mut events = Vec::new();
    let read =
        |c: &mut Client, d: Duration, frames: &mut HashMap<u64, Value>, events: &mut Vec<Value>| {
            let t0 = Instant::now();
            while t0.elapsed() < d {
                let Some(m) = c.next() else { break };
                match m["type"].as_str() {
                    Some("frame") => {
                        frames.insert(m["seq"].as_u64().expect("seq"), m);
                    }
                    Some("event") => events.push(m),
                    _ => {}
                }
            }
        };
    // 1. Births, then 300 messages of one birth.
    let t0 = Instant::now();
    while host.all().len() < 320 && t0.elapsed() < Duration::from_secs(40) {
        read(&mut c, Duration::from_millis(500), &mut frames, &mut events);
    }
    let msgs = host.all();
    let nbirth = msgs
        .iter()
        .position(|m| m["type"] == "NBIRTH")
        .expect("an NBIRTH");
    let birth = &msgs[nbirth];
    assert_eq!(birth["seq"], 0, "{birth}");
    assert_eq!(
        metric(birth, "bdSeq").map(|m| &m["datatype"]),
        Some(&Value::from("INT64"))
    );
    assert_eq!(
        metric(birth, "Node Control/Rebirth").map(|m| &m["value"]),
        Some(&Value::from(false))
    );
    let dbirth = msgs
        .iter()
        .find(|m| m["type"] == "DBIRTH")
        .expect("a DBIRTH");
    assert_eq!(dbirth["device"], "pump");
    let declared: HashMap<String, String> = dbirth["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["datatype"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for (name, t) in [
        ("state", "STRING"),
        ("class", "STRING"),
        ("confidence", "FLOAT"),
        ("family", "STRING"),
        ("anomaly", "FLOAT"),
        ("velocity_rms_mm_s", "FLOAT"),
        ("iso_zone", "STRING"),
        ("kurtosis", "FLOAT"),
        ("crest", "FLOAT"),
        ("speed_rpm", "FLOAT"),
        ("rms", "FLOAT"),
        ("frame/seq", "UINT64"),
        ("thresholds/unit1", "FLOAT"),
        ("verdict/family", "STRING"),
        ("verdict/source", "STRING"),
        ("trend/degrading", "BOOLEAN"),
    ] {
        assert_eq!(
            declared.get(name).map(String::as_str),
            Some(t),
            "{name} in {declared:?}"
        );
    }
    let after: Vec<&Value> = msgs[nbirth..]
        .iter()
        .filter(|m| m["seq"].is_u64())
        .collect();
    assert!(after.len() >= 300, "{} messages", after.len());
    for w in after.windows(2) {
        let (a, b) = (
            w[0]["seq"].as_u64().unwrap_or(0),
            w[1]["seq"].as_u64().unwrap_or(0),
        );
        assert_eq!(b, (a + 1) % 256, "seq jumps from {a} to {b}");
    }
    assert!(
        after.iter().all(|m| m.get("error").is_none()),
        "a payload pysparkplug cannot read"
    );
    let checked = check_frames(&msgs, &frames);
    assert!(
        checked >= 100,
        "only {checked} DDATA matched a socket frame"
    );
    let live = states(&msgs);
    let evs = machine_events(&events);
    assert!(evs.len() >= 2, "{} events", evs.len());
    for e in &evs {
        assert!(
            live.iter().any(|(t, s, h)| (t, s) == (&e.0, &e.1) && !h),
            "event {e:?} not in DDATA {live:?}"
        );
    }
    eprintln!(
        "{} messages, {checked} frames matched, {} events",
        after.len(),
        evs.len()
    );

    // 2. A rebirth on NCMD: NBIRTH seq 0 with the same bdSeq, and the DBIRTH.
    let births = host.of("NBIRTH").len();
    host.rebirth("box1");
    assert!(host.wait(Duration::from_secs(5), |m| m
        .iter()
        .filter(|v| v["type"] == "NBIRTH")
        .count()
        > births));
    let all = host.all();
    let i = all
        .iter()
        .rposition(|m| m["type"] == "NBIRTH")
        .expect("rebirth");
    assert_eq!(all[i]["seq"], 0);
    assert_eq!(
        bd_seq(&all[i]),
        bd_seq(birth),
        "a rebirth keeps the connection's bdSeq"
    );
    assert!(host.wait(Duration::from_secs(3), |m| m[i..]
        .iter()
        .any(|v| v["type"] == "DBIRTH")));

    // 3. A broker outage with events: replayed after the new birth, historical.
    let mut outage_events = Vec::new();
    broker.stop();
    let t0 = Instant::now();
    while machine_events(&outage_events).len() < 2 && t0.elapsed() < Duration::from_secs(20) {
        read(
            &mut c,
            Duration::from_millis(500),
            &mut frames,
            &mut outage_events,
        );
    }
    let during = machine_events(&outage_events);
    assert!(during.len() >= 2, "{} events in the outage", during.len());
    let seen = host.all().len();
    broker.restart();
    let replayed = |m: &[Value]| {
        let st = states(&m[seen.min(m.len())..]);
        during
            .iter()
            .all(|e| st.iter().any(|(t, s, h)| (t, s) == (&e.0, &e.1) && *h))
    };
    assert!(
        host.wait(Duration::from_secs(40), replayed),
        "outage events {during:?} not replayed as historical: {:?}",
        states(&host.all()[seen.min(host.all().len())..])
    );
    let all = host.all();
    let reborn = all[seen..]
        .iter()
        .find(|m| m["type"] == "NBIRTH")
        .expect("a new NBIRTH");
    // One more per CONNECT, and the reconnection took a few attempts.
    let want_bd = bd_seq(reborn);
    assert_ne!(want_bd, bd_seq(birth), "a new connection, a new bdSeq");

    // 4. SIGKILL: the broker sends the will, the NDEATH with that bdSeq.
    let deaths = host.of("NDEATH").len();
    unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) };
    let _ = d.child.wait();
    assert!(host.wait(Duration::from_secs(5), |m| m
        .iter()
        .filter(|v| v["type"] == "NDEATH")
        .count()
        > deaths));
    let death = host.of("NDEATH").pop().expect("NDEATH");
    assert_eq!(bd_seq(&death), want_bd, "{death}");
}
