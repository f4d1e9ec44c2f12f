//! Plays systemd's part: READY=1 only once the socket answers, WATCHDOG=1
//! while inference makes progress and not when it stalls, STOPPING=1 and a
//! clean exit on SIGTERM.

mod common;

use common::{cwru, BIN};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn recv(sock: &UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Counts WATCHDOG=1 datagrams over `d`.
fn pings(sock: &UnixDatagram, d: Duration) -> usize {
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < d {
        if let Some(m) = recv(sock, Duration::from_millis(50)) {
            n += m.lines().filter(|l| *l == "WATCHDOG=1").count();
        }
    }
    n
}

#[test]
fn notify_ready_watchdog_and_stopping_follow_the_real_state() {
    let dir = tempfile::tempdir().expect("tmp");
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify");
    let sock = dir.path().join("drsn.sock");
    let stall = dir.path().join("stall");
    let mut child = Command::new(BIN)
        .args(["run", "--model"])
        .arg(common::model())
        .arg("--socket")
        .arg(&sock)
        .arg("--wav")
        .arg(cwru("1797_IR_14.wav"))
        .arg("--loop")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .env("DRSN_TEST_STALL_FILE", &stall)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");

    let ready = loop {
        let m = recv(&notify, Duration::from_secs(60)).expect("READY=1 within 60 s");
        if m.lines().any(|l| l == "READY=1") {
            break m;
        }
    };
    assert!(UnixStream::connect(&sock).is_ok(), "READY=1 ({ready}) came before the socket answered");

    let alive = pings(&notify, Duration::from_secs(2));
    assert!(alive >= 6, "only {alive} watchdog pings in 2 s at a 400 ms watchdog");

    std::fs::write(&stall, "").expect("stall");
    std::thread::sleep(Duration::from_millis(400));
    let stalled = pings(&notify, Duration::from_secs(2));
    assert_eq!(stalled, 0, "watchdog kept pinging while inference was stalled");

    std::fs::remove_file(&stall).expect("unstall");
    std::thread::sleep(Duration::from_millis(300));
    let back = pings(&notify, Duration::from_secs(1));
    assert!(back >= 2, "watchdog did not resume: {back}");

    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let t0 = Instant::now();
    let mut stopping = false;
    while t0.elapsed() < Duration::from_secs(3) && !stopping {
        if let Some(m) = recv(&notify, Duration::from_millis(100)) {
            stopping |= m.lines().any(|l| l == "STOPPING=1");
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "did not exit within 2 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "socket left behind");
}
