//! Home Assistant discovery against a real Home Assistant (2024.3.3 from
//! PyPI, tests/.venv-ha) whose MQTT integration reads the test mosquitto:
//! drsnd's entities appear with live values through HA's REST API within
//! 10 s of the daemon's start, the velocity with its unit and
//! `state_class: measurement` (HA's long-term statistics), a stale stream's
//! config is cleared, and every entity goes unavailable after SIGKILL.

use crate::common;
use crate::mqtt::{config, mqtt_table};

use common::broker::{Broker, Subscriber};
use common::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct HomeAssistant {
    child: Child,
    port: u16,
    token: String,
}

impl HomeAssistant {
    fn start(dir: &std::path::Path, mqtt_port: u16) -> HomeAssistant {
        let python = root().join("tests/.venv-ha/bin/python");
        assert!(
            python.exists(),
            "{} missing: run scripts/setup-python.sh",
            python.display()
        );
        let port = common::web::free_port();
        let log = std::fs::File::create(dir.join("hass.out")).expect("log");
        let child = Command::new(python)
            .arg(root().join("tests/tools/home_assistant.py"))
            .arg(dir)
            .args([mqtt_port.to_string(), port.to_string()])
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("home_assistant.py");
        let mut ha = HomeAssistant {
            child,
            port,
            token: String::new(),
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(120) {
            ha.token = std::fs::read_to_string(dir.join("token")).unwrap_or_default();
            if !ha.token.is_empty() && ha.get("/api/").is_some() {
                eprintln!("Home Assistant up after {:?}", t0.elapsed());
                return ha;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let out = std::fs::read_to_string(dir.join("hass.out")).unwrap_or_default();
        panic!("Home Assistant did not answer in 120 s:\n{out}");
    }

    fn get(&self, path: &str) -> Option<Value> {
        let out = Command::new("curl")
            .args(["-sf", "-m", "5", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// entity_id -> state object, of drsnd's entities (`*box1_*`).
    fn states(&self) -> Vec<Value> {
        self.get("/api/states")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s["entity_id"].as_str().unwrap_or("").contains("box1_"))
            .collect()
    }
}

impl Drop for HomeAssistant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state_of<'a>(states: &'a [Value], id: &str) -> Option<&'a Value> {
    states.iter().find(|s| s["entity_id"] == id)
}

fn live(s: Option<&Value>) -> bool {
    s.and_then(|s| s["state"].as_str())
        .is_some_and(|v| v != "unknown" && v != "unavailable")
}

#[test]
fn home_assistant_shows_the_streams_live_and_unavailable_after_sigkill() {
    let dir = tempfile::tempdir().expect("tmp");
    let bdir = dir.path().join("broker");
    let hdir = dir.path().join("ha");
    std::fs::create_dir_all(&bdir).expect("dir");
    std::fs::create_dir_all(&hdir).expect("dir");
    let broker = Broker::start(&bdir, "");
    // A stream this node had before (a retained config of an earlier run).
    let stale = "homeassistant/sensor/drsnd_box1/old_state/config";
    let pub_ok = Command::new("mosquitto_pub")
        .args(["-p", &broker.port.to_string(), "-r", "-t", stale, "-m"])
        .arg(r#"{"name":"State","state_topic":"drsnd/v1/test/box1/old/state","unique_id":"drsnd_box1_old_state","object_id":"box1_old_state","device":{"identifiers":["drsnd_box1_old"],"name":"box1 old"}}"#)
        .status()
        .expect("mosquitto_pub");
    assert!(pub_ok.success());
    let ha = HomeAssistant::start(&hdir, broker.port);
    let frames = Subscriber::start(broker.port, "drsnd/v1/test/box1/pump/frame", "ha-frames");
    let wav = dir.path().join("pump.wav");
    write_wav_f32(&wav, 12_000, &two_faults_in_turn(2, 2.0));
    let mqtt = mqtt_table(
        broker.port,
        &dir.path().join("spool"),
        "homeassistant = true",
    );
    let cfg = config(dir.path(), &mqtt, &wav, "units = \"g\"\nloop = true");
    let mut d = Daemon::start(&["--config", cfg.to_str().expect("utf-8")]);
    let started = Instant::now();
    let ids = [
        "sensor.box1_pump_state",
        "sensor.box1_pump_family",
        "sensor.box1_pump_anomaly",
        "sensor.box1_pump_velocity_rms",
        "sensor.box1_pump_iso_zone",
        "sensor.box1_pump_kurtosis",
        "binary_sensor.box1_pump_alarm",
    ];
    // The anomaly score needs a baseline, which this stream has not: its
    // entity exists and is `unknown`; every other one has a value.
    let has_values = |s: &[Value]| {
        ids.iter()
            .filter(|id| !id.ends_with("anomaly"))
            .all(|id| live(state_of(s, id)))
            && state_of(s, ids[2]).is_some()
    };
    let mut states = Vec::new();
    while started.elapsed() < Duration::from_secs(10) && !has_values(&states) {
        std::thread::sleep(Duration::from_millis(250));
        states = ha.states();
    }
    let took = started.elapsed();
    assert!(
        has_values(&states),
        "after {took:?}: {}",
        serde_json::to_string_pretty(&states).unwrap_or_default()
    );
    eprintln!("every entity live {took:?} after the daemon's start");
    let velocity = state_of(&states, "sensor.box1_pump_velocity_rms").expect("velocity");
    assert_eq!(velocity["attributes"]["unit_of_measurement"], "mm/s");
    assert_eq!(velocity["attributes"]["state_class"], "measurement");
    // The value HA shows is one drsnd published.
    let v: f64 = velocity["state"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a number");
    let published: Vec<f64> = frames
        .json("frame")
        .iter()
        .filter_map(|f| f["velocity_rms_mm_s"].as_f64())
        .collect();
    assert!(
        published
            .iter()
            .any(|p| (p - v).abs() <= 1e-9 * p.abs().max(1.0)),
        "HA shows {v}, drsnd published {published:?}"
    );
    let machine = state_of(&states, "sensor.box1_pump_state").expect("state");
    let alarm = state_of(&states, "binary_sensor.box1_pump_alarm").expect("alarm");
    let alarming = matches!(
        machine["state"].as_str(),
        Some("fault" | "anomaly" | "no-signal")
    );
    assert_eq!(
        alarm["state"],
        if alarming { "on" } else { "off" },
        "{machine}"
    );
    // The stale stream's config is cleared, and HA dropped its entity.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5)
        && (broker.retained(stale).iter().any(|(_, p)| !p.is_empty())
            || state_of(&ha.states(), "sensor.box1_old_state").is_some())
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        broker.retained(stale).iter().all(|(_, p)| p.is_empty()),
        "still retained"
    );
    assert!(state_of(&ha.states(), "sensor.box1_old_state").is_none());
    // SIGKILL: the will says offline, HA marks every entity unavailable.
    unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) };
    let _ = d.child.wait();
    let killed = Instant::now();
    let all_gone = |s: &[Value]| {
        ids.iter()
            .all(|id| state_of(s, id).is_some_and(|e| e["state"] == "unavailable"))
    };
    while killed.elapsed() < Duration::from_secs(8) && !all_gone(&ha.states()) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(all_gone(&ha.states()), "{:?}", ha.states());
    eprintln!("unavailable {:?} after SIGKILL", killed.elapsed());
}
