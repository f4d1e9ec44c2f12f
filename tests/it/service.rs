//! Plays systemd's part: READY=1 only once the socket answers, WATCHDOG=1
//! while inference makes progress and not when it stalls, STOPPING=1 and a
//! clean exit on SIGTERM.

use crate::common;

use common::{crash_model, cwru, sha256_hex, BIN};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn recv(sock: &UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
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
    common::needs_fault_injection();
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
    assert!(
        UnixStream::connect(&sock).is_ok(),
        "READY=1 ({ready}) came before the socket answered"
    );

    let alive = pings(&notify, Duration::from_secs(2));
    assert!(
        alive >= 6,
        "only {alive} watchdog pings in 2 s at a 400 ms watchdog"
    );

    std::fs::write(&stall, "").expect("stall");
    std::thread::sleep(Duration::from_millis(400));
    // Pings sent before the stall was seen wait in the socket; they are
    // not pings during it.
    while recv(&notify, Duration::from_millis(1)).is_some() {}
    let stalled = pings(&notify, Duration::from_secs(2));
    assert_eq!(
        stalled, 0,
        "watchdog kept pinging while inference was stalled"
    );

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
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "did not exit within 2 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "socket left behind");
}

fn write_config(path: &std::path::Path, model: &std::path::Path) {
    let text = format!(
        "model = \"{}\"\n[socket]\nstatus-interval-ms = 500\n[[source]]\nkind = \"wav\"\npath = \"{}\"\nloop = true\nstreams = [\"motor\"]\n",
        model.display(),
        cwru("1797_IR_14.wav").display()
    );
    std::fs::write(path, text).expect("config");
}

fn hup(d: &common::Daemon) {
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGHUP);
    }
}

/// Frames keep coming with contiguous seq while reading until `pred`.
fn until(
    c: &mut common::Client,
    last_seq: &mut Option<u64>,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(30), "timed out");
        let m = c.next().expect("still connected");
        if m["type"] == "frame" {
            let seq = m["seq"].as_u64().expect("seq");
            if let Some(prev) = *last_seq {
                assert_eq!(seq, prev + 1, "a frame was lost across the reload");
            }
            *last_seq = Some(seq);
        }
        if pred(&m) {
            return m;
        }
    }
}

/// Reads on (frames contiguous) to the `status` of a failed reload whose
/// message mentions `needle`.
fn failed_reload(
    c: &mut common::Client,
    last_seq: &mut Option<u64>,
    needle: &str,
) -> serde_json::Value {
    let st = until(c, last_seq, |m| {
        m["type"] == "status"
            && m["reload"]["message"]
                .as_str()
                .is_some_and(|s| s.contains(needle))
    });
    assert_eq!(st["reload"]["ok"], false, "{st}");
    st
}

#[test]
fn sighup_swaps_the_model_between_frames_or_keeps_the_old_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = common::model();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&src).expect("read")).expect("json");
    let onnx = src.with_file_name(manifest["onnx"].as_str().expect("onnx"));
    std::fs::copy(&onnx, dir.path().join(onnx.file_name().expect("name"))).expect("copy");
    let v1 = dir.path().join("v1.json");
    std::fs::write(&v1, manifest.to_string()).expect("v1");
    // The same weights in a different file: an unknown protobuf field
    // (number 1000, varint 1) appended to the ModelProto changes the sha256.
    let mut bytes = std::fs::read(&onnx).expect("onnx");
    bytes.extend_from_slice(&[0xC0, 0x3E, 0x01]);
    std::fs::write(dir.path().join("v2.onnx"), &bytes).expect("v2.onnx");
    let sha2 = sha256_hex(&bytes);
    let sha1 = manifest["sha256"].as_str().expect("sha").to_string();
    let mut m2 = manifest.clone();
    m2["version"] = "2.0.0-test".into();
    m2["onnx"] = "v2.onnx".into();
    m2["sha256"] = sha2.clone().into();
    let v2 = dir.path().join("v2.json");
    std::fs::write(&v2, m2.to_string()).expect("v2");
    let mut broken = manifest.clone();
    broken["onnx"] = "missing.onnx".into();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, broken.to_string()).expect("bad");

    let cfg = dir.path().join("drsnd.toml");
    write_config(&cfg, &v1);
    let d = common::Daemon::start(&["--config", cfg.to_str().expect("utf8")]);
    let mut c = d.connect();
    let mut seq = None;
    let f = until(&mut c, &mut seq, |m| {
        m["type"] == "frame" && m["seq"].as_u64() >= Some(3)
    });
    assert_eq!(f["model"], sha1.as_str());

    // A valid new model: swapped between frames, subscribers told with a new hello.
    write_config(&cfg, &v2);
    hup(&d);
    let hello = until(&mut c, &mut seq, |m| m["type"] == "hello");
    assert_eq!(hello["model"]["version"], "2.0.0-test");
    let st = until(&mut c, &mut seq, |m| {
        m["type"] == "status" && !m["reload"].is_null()
    });
    assert_eq!(st["reload"]["ok"], true, "{st}");
    assert_eq!(st["model"]["version"], "2.0.0-test");
    // Frames labelled by the new model say so; none was lost or repeated.
    let f = until(&mut c, &mut seq, |m| {
        m["type"] == "frame" && m["model"] == sha2.as_str()
    });
    assert!(f["label"].is_string());
    let f = until(&mut c, &mut seq, |m| m["type"] == "frame");
    assert_eq!(
        f["model"],
        sha2.as_str(),
        "an old-model frame after the swap"
    );

    // A broken model: the old one stays, status says why.
    write_config(&cfg, &bad);
    hup(&d);
    let st = until(&mut c, &mut seq, |m| {
        m["type"] == "status" && m["reload"]["ok"] == false
    });
    assert!(
        st["reload"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("missing.onnx"),
        "{st}"
    );
    assert_eq!(st["model"]["version"], "2.0.0-test");

    // A model that makes tract panic: tried in a child process first, so
    // the daemon (which aborts on a panic) lives on with the old model.
    let crash = crash_model(dir.path(), &manifest);
    write_config(&cfg, &crash);
    hup(&d);
    let st = failed_reload(&mut c, &mut seq, "crashed");
    assert!(
        st["reload"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("crash.json"),
        "{st}"
    );
    assert_eq!(st["model"]["version"], "2.0.0-test");
    let f = until(&mut c, &mut seq, |m| m["type"] == "frame");
    assert_eq!(f["model"], sha2.as_str());

    // A broken config: the same.
    std::fs::write(&cfg, "hop = \"x\"\n").expect("write");
    hup(&d);
    failed_reload(&mut c, &mut seq, "hop");
    let f = until(&mut c, &mut seq, |m| m["type"] == "frame");
    assert!(f["label"].is_string());
}

#[test]
fn sigterm_publishes_every_captured_frame_then_exits_cleanly() {
    let mut d = common::Daemon::start(&[
        "--wav",
        cwru("1797_IR_14.wav").to_str().expect("utf8"),
        "--loop",
    ]);
    let mut c = d.connect();
    let mut seq = None;
    until(&mut c, &mut seq, |m| {
        m["type"] == "frame" && m["seq"].as_u64() >= Some(20)
    });
    unsafe {
        libc::kill(d.pid() as i32, libc::SIGTERM);
    }
    // Read to the end: frames (contiguous), then the final status, then EOF.
    let mut last_status = None;
    while let Some(m) = c.next() {
        match m["type"].as_str() {
            Some("frame") => {
                let s = m["seq"].as_u64().expect("seq");
                assert_eq!(
                    Some(s),
                    seq.map(|p| p + 1),
                    "frame lost or repeated at shutdown"
                );
                seq = Some(s);
            }
            Some("status") => last_status = Some(m),
            _ => {}
        }
    }
    let st = last_status.expect("a final status");
    assert_eq!(st["state"], "stopping");
    let s = &st["streams"][0];
    // Every frame whose samples were captured was published and received.
    let captured = s["captured_samples"].as_u64().expect("captured");
    let expected = (captured - 2048) / 512 + 1;
    assert_eq!(s["frames"].as_u64(), Some(expected), "{s}");
    assert_eq!(seq.map(|q| q + 1), Some(expected));
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = d.child.try_wait().expect("wait") {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "not gone within 2 s");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert!(!d.socket.exists(), "socket file left behind");
}

/// A reload is all-or-nothing: when the new analyses cannot be built for
/// one stream (the second copy of the reload fails, by fault injection),
/// no stream runs the new model; status says the reload failed and every
/// stream goes on with the old one. Before the fix, streams were swapped one
/// by one as their copies were made, so the first stream ran the new model
/// while status reported the failure. A later reload then swaps them all.
#[test]
fn a_reload_that_fails_for_one_stream_swaps_none() {
    common::needs_fault_injection();
    let dir = tempfile::tempdir().expect("tmp");
    let src = common::model();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&src).expect("read")).expect("json");
    let onnx = src.with_file_name(manifest["onnx"].as_str().expect("onnx"));
    let mut bytes = std::fs::read(&onnx).expect("onnx");
    bytes.extend_from_slice(&[0xC0, 0x3E, 0x01]); // same weights, another sha256
    std::fs::write(dir.path().join("v2.onnx"), &bytes).expect("v2.onnx");
    let (sha1, sha2) = (
        manifest["sha256"].as_str().expect("sha").to_string(),
        sha256_hex(&bytes),
    );
    let mut m2 = manifest.clone();
    m2["onnx"] = "v2.onnx".into();
    m2["sha256"] = sha2.clone().into();
    let v2 = dir.path().join("v2.json");
    std::fs::write(&v2, m2.to_string()).expect("v2");
    let config = |model: &std::path::Path| {
        let mut text = format!(
            "model = \"{}\"\n[socket]\nstatus-interval-ms = 300\n",
            model.display()
        );
        for (name, file) in [
            ("a", "1797_IR_14.wav"),
            ("b", "1797_B_14.wav"),
            ("c", "1797_OR6_14.wav"),
        ] {
            text += &format!(
                "[[source]]\nkind = \"wav\"\npath = \"{}\"\nloop = true\nstreams = [\"{name}\"]\n",
                cwru(file).display()
            );
        }
        text
    };
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(&cfg, config(&src)).expect("config");
    // Start-up makes copies 1-3; the first reload 4-6, of which 5 fails.
    let d = common::Daemon::start_with(
        &["--config", cfg.to_str().expect("utf8")],
        &[("DRSN_TEST_FAIL_FORK", "5")],
    );
    let mut c = d.connect();
    let models_of_next_frames = |c: &mut common::Client, n: usize| {
        let mut seen: std::collections::HashMap<String, std::collections::HashSet<String>> =
            Default::default();
        let mut counts: std::collections::HashMap<String, usize> = Default::default();
        while ["a", "b", "c"]
            .iter()
            .any(|s| counts.get(*s).copied().unwrap_or(0) < n)
        {
            let m = c.next().expect("connected");
            if m["type"] == "frame" {
                let s = m["stream"].as_str().expect("stream").to_string();
                *counts.entry(s.clone()).or_default() += 1;
                seen.entry(s)
                    .or_default()
                    .insert(m["model"].as_str().expect("model").into());
            }
        }
        seen
    };
    models_of_next_frames(&mut c, 3);
    std::fs::write(&cfg, config(&v2)).expect("config");
    hup(&d);
    let mut seq = None;
    let st = c_until_reload(&mut c, &mut seq);
    assert_eq!(st["reload"]["ok"], false, "{st}");
    let msg = st["reload"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("DRSN_TEST_FAIL_FORK") && msg.contains("every stream"),
        "{msg}"
    );
    assert_eq!(st["model"]["sha256"], sha1.as_str());
    for (stream, models) in models_of_next_frames(&mut c, 25) {
        assert_eq!(
            models.into_iter().collect::<Vec<_>>(),
            vec![sha1.clone()],
            "stream {stream} runs another model after a failed reload"
        );
    }
    // Copies 7-9 all work: every stream swaps.
    hup(&d);
    let st = c_until_reload(&mut c, &mut seq);
    assert_eq!(st["reload"]["ok"], true, "{st}");
    // Frames already made with the old model may still be queued.
    models_of_next_frames(&mut c, 10);
    for (stream, models) in models_of_next_frames(&mut c, 10) {
        assert_eq!(
            models.into_iter().collect::<Vec<_>>(),
            vec![sha2.clone()],
            "stream {stream} kept the old model after a reload that worked"
        );
    }
}

/// The status after a reload (ignoring frames' seq across three streams).
fn c_until_reload(c: &mut common::Client, reloads_seen: &mut Option<u64>) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(30), "no reload status");
        let m = c.next().expect("connected");
        if m["type"] != "status" || m["reload"].is_null() {
            continue;
        }
        let at = (m["reload"]["at_uptime_s"].as_f64().unwrap_or(0.0) * 1000.0) as u64;
        if Some(at) != *reloads_seen {
            *reloads_seen = Some(at);
            return m;
        }
    }
}
