//! A real mosquitto (Debian's, installed by scripts/setup-system.sh) on a
//! loopback port of its own, and a real subscriber (`mosquitto_sub`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Broker {
    pub port: u16,
    pub dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// A broker that keeps its sessions on disk (a subscriber's queued
    /// messages survive a restart of the broker), with `extra` config lines.
    pub fn start(dir: &Path, extra: &str) -> Broker {
        let port = super::web::free_port();
        Self::start_on(
            dir,
            port,
            &format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}"),
        )
    }

    /// A broker with exactly this listener config (TLS tests write their own).
    pub fn start_on(dir: &Path, port: u16, listener: &str) -> Broker {
        let conf = dir.join("mosquitto.conf");
        // As root, mosquitto would switch to its own user, which cannot
        // write into the test's private temp dir.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root\n"
        } else {
            ""
        };
        let text = format!(
            "{user}persistence true\npersistence_location {}/\nautosave_interval 1\nlog_dest stderr\nlog_type error\n{listener}\n",
            dir.display()
        );
        std::fs::write(&conf, text).expect("mosquitto.conf");
        let mut b = Broker {
            port,
            dir: dir.to_path_buf(),
            conf,
            child: None,
        };
        b.restart();
        b
    }

    /// (Re)starts the broker on its port and waits until it accepts.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker runs already");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (scripts/setup-system.sh installs it)");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it (SIGTERM: it saves its sessions) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Retained messages under `filter`, as (topic, payload).
    pub fn retained(&self, filter: &str) -> Vec<(String, String)> {
        let out = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                filter,
            ])
            .args(["--retained-only", "-W", "1", "-F", "%t %p"])
            .output()
            .expect("mosquitto_sub");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(t, p)| (t.to_string(), p.to_string()))
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One message a subscriber received: topic, payload, when.
#[derive(Debug, Clone)]
pub struct Got {
    pub topic: String,
    pub payload: String,
    pub at: Instant,
}

/// `mosquitto_sub` with a persistent session (QoS 1, clean session off),
/// restarted whenever it exits (as when the broker goes away), so that it
/// gets what was queued for it meanwhile.
pub struct Subscriber {
    pub got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
}

impl Subscriber {
    pub fn start(port: u16, filter: &str, id: &str) -> Subscriber {
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let child: Arc<Mutex<Option<Child>>> = Arc::new(Mutex::new(None));
        let (g, s, c) = (got.clone(), stop.clone(), child.clone());
        let (filter, id) = (filter.to_string(), id.to_string());
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let spawned = Command::new("mosquitto_sub")
                    .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", &filter])
                    .args(["-q", "1", "-c", "-i", &id, "-F", "%t %p"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn();
                let Ok(mut ch) = spawned else { return };
                let out = ch.stdout.take();
                *c.lock().expect("sub") = Some(ch);
                if let Some(out) = out {
                    for l in BufReader::new(out).lines().map_while(Result::ok) {
                        if let Some((t, p)) = l.split_once(' ') {
                            g.lock().expect("got").push(Got {
                                topic: t.to_string(),
                                payload: p.to_string(),
                                at: Instant::now(),
                            });
                        }
                    }
                }
                if let Some(mut ch) = c.lock().expect("sub").take() {
                    let _ = ch.wait();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        // mosquitto_sub subscribes within a few ms; make sure it has.
        std::thread::sleep(Duration::from_millis(300));
        Subscriber { got, stop, child }
    }

    pub fn all(&self) -> Vec<Got> {
        self.got.lock().expect("got").clone()
    }

    /// Payloads (as JSON) of topics ending in `/suffix`.
    pub fn json(&self, suffix: &str) -> Vec<serde_json::Value> {
        self.all()
            .iter()
            .filter(|g| g.topic.ends_with(&format!("/{suffix}")))
            .filter_map(|g| serde_json::from_str(&g.payload).ok())
            .collect()
    }

    /// Waits until `pred` holds of what came, or `limit`.
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&[Got]) -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if pred(&self.all()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        pred(&self.all())
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(mut c) = self.child.lock().ok().and_then(|mut c| c.take()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
