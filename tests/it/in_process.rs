//! The daemon driven in process (`daemon::prepare` and `daemon::serve`),
//! as a program embedding drsnd would: stopped through its control
//! channel, with no signal sent to the process.

use crate::common;
use drsnd::config::Config;
use drsnd::daemon::{prepare, serve, Control};
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A daemon run in-process stops on its control channel, with no signal
/// sent to the process: a subscriber gets the last status ("stopping")
/// and the socket is gone when `serve` returns.
#[test]
fn a_daemon_stops_on_its_control_channel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("pump.wav");
    // Two seconds of a shaft tone.
    let x: Vec<f32> = (0..24_000)
        .map(|i| 0.2 * (i as f32 / 12_000.0 * std::f32::consts::TAU * 30.0).sin())
        .collect();
    common::write_wav_f32(&wav, 12_000, &x);
    let sock = dir.path().join("drsn.sock");
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/drsn-cw-cwru10.json");
    let toml = format!(
        "model = {model:?}\n[socket]\npath = {sock:?}\n\
         [[source]]\nkind = \"wav\"\npath = {wav:?}\nstreams = [\"pump\"]\n"
    );
    let cfg = Config::parse(&toml, "test.toml").expect("config");
    drsnd::infer::set_trial_executable(std::path::Path::new(env!("CARGO_BIN_EXE_drsnd")));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let daemon = std::thread::spawn(move || {
        let p = prepare(cfg, None).expect("prepared");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(serve(p, rx))
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        match UnixStream::connect(&sock) {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => panic!("no socket: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut lines = BufReader::new(client).lines();
    let first = lines.next().expect("a line").expect("readable");
    assert!(first.contains("\"type\":\"hello\""), "{first}");
    let frame = lines.find(|l| l.as_ref().is_ok_and(|l| l.contains("\"frame\"")));
    assert!(frame.is_some(), "no frame before the stop");
    tx.send(Control::Stop).expect("the daemon listens");
    let last = lines
        .map_while(|l| l.ok())
        .filter(|l| l.contains("\"type\":\"status\""))
        .last()
        .expect("a status before the socket closed");
    assert!(last.contains("\"state\":\"stopping\""), "{last}");
    daemon.join().expect("no panic").expect("serve ended well");
    assert!(!sock.exists(), "the socket file was removed");
}
