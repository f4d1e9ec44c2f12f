//! Clients that misbehave, against the real daemon: a thousand connect and
//! disconnect cycles, 10 MB without a newline, clients that never read,
//! half-closed sockets, more clients than allowed, and a user outside the
//! socket's group. A well-behaved subscriber watches throughout and must
//! miss nothing; the daemon's file descriptors and memory return to baseline.

use crate::common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_CLIENTS: usize = 24;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A subscriber that reads everything on its own thread and counts gaps.
struct Watcher {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    gaps: Arc<AtomicU64>,
    clients: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Watcher {
    fn start(d: &Daemon) -> Watcher {
        let mut c = d.connect();
        c.until("hello");
        let stop = Arc::new(AtomicBool::new(false));
        let (frames, gaps, clients) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, f, g, n) = (stop.clone(), frames.clone(), gaps.clone(), clients.clone());
        let thread = std::thread::spawn(move || {
            let mut next: Option<u64> = None;
            while !s.load(Ordering::Relaxed) {
                let v = c.next().expect("the watcher is never cut off");
                match v["type"].as_str() {
                    Some("frame") => {
                        let seq = v["seq"].as_u64().expect("seq");
                        if let Some(want) = next {
                            g.fetch_add(seq - want, Ordering::Relaxed);
                        }
                        next = Some(seq + 1);
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("status") => {
                        let k = v["clients"].as_array().map_or(0, |a| a.len());
                        n.store(k as u64, Ordering::Relaxed);
                    }
                    Some("lagged") => panic!("the watcher keeps up, yet: {v}"),
                    _ => {}
                }
            }
        });
        Watcher {
            stop,
            frames,
            gaps,
            clients,
            thread,
        }
    }

    fn wait_clients(&self, n: u64, limit: Duration) {
        let t0 = Instant::now();
        while self.clients.load(Ordering::Relaxed) != n {
            assert!(
                t0.elapsed() < limit,
                "status still lists {} clients, want {n}",
                self.clients.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn raw(d: &Daemon) -> (BufReader<UnixStream>, UnixStream) {
    let s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    (BufReader::new(s.try_clone().expect("clone")), s)
}

fn is_refusal(v: &Value) -> bool {
    v["type"] == "error"
        && v["message"]
            .as_str()
            .is_some_and(|m| m.contains("too many clients"))
}

fn line(r: &mut BufReader<UnixStream>) -> Option<Value> {
    let mut l = String::new();
    match r.read_line(&mut l) {
        Ok(0) => None,
        Ok(_) => Some(validate(l.trim_end())),
        Err(e) => panic!("read: {e}"),
    }
}

#[test]
fn misbehaving_clients_cost_the_daemon_nothing_that_lasts() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[socket]\nmax-clients = {MAX_CLIENTS}\nwrite-timeout-ms = 1500\n\
             client-queue = 64\nmax-missed = 200\nstatus-interval-ms = 250\n",
            model().display()
        ),
    )
    .expect("config");
    let wav = cwru("1797_IR_14.wav");
    let d = Daemon::start(&[
        "--config",
        cfg.to_str().expect("utf-8"),
        "--wav",
        wav.to_str().expect("utf-8"),
        "--loop",
    ]);
    let w = Watcher::start(&d);
    w.wait_clients(1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(1));
    let (fd0, rss0) = (open_fds(d.pid()), d.rss_kib());

    // 1. A thousand connect/disconnect cycles, every tenth reading its
    // first line. Each client has closed before the next connects, so a
    // departed client must never cost a newcomer its place.
    for i in 0..1000 {
        let (mut r, s) = raw(&d);
        if i % 10 == 0 {
            let v = line(&mut r).expect("a first line");
            assert_eq!(v["type"], "hello", "cycle {i}: {v}");
        }
        drop(s);
    }

    // 2. 10 MB without a newline, then a real request on the same connection.
    let (mut r, mut s) = raw(&d);
    assert_eq!(line(&mut r).expect("hello")["type"], "hello");
    let junk = vec![b'x'; 1 << 16];
    for _ in 0..160 {
        s.write_all(&junk).expect("the daemon keeps reading");
    }
    s.write_all(b"\n{\"types\":[\"status\"]}\n")
        .expect("request");
    let err = loop {
        let v = line(&mut r).expect("an answer");
        if v["type"] == "error" {
            break v;
        }
    };
    assert!(
        err["message"].as_str().unwrap_or("").contains("too long"),
        "{err}"
    );
    // The request after the junk took effect: only status from now on.
    let mut statuses = 0;
    let t0 = Instant::now();
    while statuses < 3 {
        let v = line(&mut r).expect("still connected");
        if v["type"] == "status" {
            statuses += 1;
        } else if t0.elapsed() > Duration::from_secs(1) {
            assert_ne!(v["type"], "frame", "filter ignored after the long line");
        }
    }
    drop((r, s));

    // 3. Clients that never read: cut off once their socket stays full.
    let mute: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    // 4. Half-closed clients: they will not talk, but they listen.
    let mut half: Vec<BufReader<UnixStream>> = (0..4)
        .map(|_| {
            let (r, s) = raw(&d);
            s.shutdown(std::net::Shutdown::Write).expect("half-close");
            r
        })
        .collect();
    for r in half.iter_mut() {
        let mut frames = 0;
        while frames < 10 {
            if line(r).expect("a half-closed client still gets frames")["type"] == "frame" {
                frames += 1;
            }
        }
    }
    let t_mute = Instant::now();
    for mut m in mute {
        // Wait for the daemon to give up on it: reading now drains what it
        // wrote and then meets end of file.
        let mut buf = vec![0u8; 1 << 16];
        std::thread::sleep(Duration::from_secs(8).saturating_sub(t_mute.elapsed()));
        m.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut total = 0usize;
        loop {
            match m.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("a client that never read was not cut off: {e}"),
            }
        }
        assert!(total > 0, "it had been sent data before it was cut off");
    }
    drop(half);

    // 5. Over the limit: told so, and closed.
    w.wait_clients(1, Duration::from_secs(10));
    let mut held = Vec::new();
    for _ in 0..MAX_CLIENTS - 1 {
        let (mut r, s) = raw(&d);
        assert_eq!(line(&mut r).expect("hello")["type"], "hello");
        held.push((r, s));
    }
    let (mut r, _s) = raw(&d);
    let v = line(&mut r).expect("a refusal");
    assert!(is_refusal(&v), "{v}");
    assert!(line(&mut r).is_none(), "closed after the refusal");
    drop(held);

    // Back to baseline: one client, the same descriptors, memory within 1 MB.
    w.wait_clients(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let (fd1, rss1) = (open_fds(d.pid()), d.rss_kib());
    eprintln!("fds {fd0} -> {fd1}, RSS {rss0} -> {rss1} KiB");
    assert_eq!(fd1, fd0, "file descriptors back to baseline");
    assert!(rss1 <= rss0 + 1024, "RSS {rss0} -> {rss1} KiB");

    // The watcher missed nothing through all of it.
    w.stop.store(true, Ordering::Relaxed);
    w.thread.join().expect("watcher");
    assert_eq!(
        w.gaps.load(Ordering::Relaxed),
        0,
        "watcher's seq contiguous"
    );
    assert!(w.frames.load(Ordering::Relaxed) > 100);
}

/// Needs root to switch users (CI runs as root); fails, not skips, without.
#[test]
fn a_user_outside_the_sockets_group_cannot_connect() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test switches users and needs root (CI runs as root)"
    );
    let user = "drsn-outsider";
    if !Command::new("id")
        .arg(user)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let ok = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "useradd {user}");
    }
    // A directory anyone may enter, so that only the socket's mode decides.
    let dir = tempfile::tempdir().expect("tmp");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = dir.path().join("drsn.sock");
    let wav = cwru("1797_IR_14.wav");
    let _d = Daemon::start_at(
        Some(socket.clone()),
        &["--wav", wav.to_str().expect("utf-8"), "--loop"],
        &[],
    );
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    // The binary itself is the client: `drsnd watch --json` prints the hello.
    let try_as = |regid: &str| {
        let mut child = Command::new("setpriv")
            .args([
                &format!("--reuid={user}"),
                &format!("--regid={regid}"),
                "--clear-groups",
            ])
            .arg(env!("CARGO_BIN_EXE_drsnd"))
            .args(["watch", "--json", "--socket"])
            .arg(&socket)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("setpriv");
        let t0 = Instant::now();
        while child.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Outside the group: refused, with a reason that names the socket.
    let (out, err) = try_as(user);
    assert!(!out.contains("\"hello\""), "an outsider got in: {out}");
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
    assert!(err.contains(&socket.display().to_string()), "{err}");
    // The same user in the socket's group (root's, here): let in.
    let (out, err) = try_as("0");
    assert!(
        out.contains("\"hello\""),
        "a group member was refused: {err}"
    );
}
