//! Acceptance 1: real cpal capture with no sound card. An ALSA `file` PCM
//! plugin, defined in a temporary ALSA config, serves a raw PCM file as a
//! capture device at 48 kHz; the daemon captures it through cpal, resamples
//! to 12 kHz, and a subscriber gets frames whose labels match the recording.
//!
//! The plugin delivers as fast as cpal reads, so the ring overruns: the test
//! also checks that overruns are counted and that frame positions still point
//! into the file (every dropped sample is accounted for in sample_index).
//! The load-shedding lag is set just under the ring's size: shedding would
//! only skip more of the file, and this test is about what the ring keeps.

use crate::common;

use common::{cwru, read_wav_f32, Daemon};
use std::time::{Duration, Instant};

#[test]
fn cpal_capture_from_alsa_file_plugin_is_resampled_and_labelled() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_, x) = read_wav_f32(&cwru("1797_IR_14.wav"));
    let held_out = &x[x.len() * 8 / 10..];
    let samples = common::s16_at_48k(held_out);
    let one: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    let repeats = 10;
    let raw = dir.path().join("capture.raw");
    std::fs::write(&raw, one.repeat(repeats)).expect("raw");
    let file_len_model = (samples.len() * repeats / 4) as u64;

    let asound = dir.path().join("asound.conf");
    std::fs::write(
        &asound,
        format!(
            "pcm.drsnraw {{ type file; slave.pcm \"null\"; file \"/dev/null\"; infile \"{}\"; format \"raw\" }}\n\
             pcm.drsncap {{\n type plug\n slave {{ pcm \"drsnraw\"; format S16_LE; rate 48000; channels 1 }}\n\
             hint {{ show on; description \"file-backed capture (plug)\" }}\n}}\n",
            raw.display()
        ),
    )
    .expect("asound");
    let cfg = dir.path().join("drsnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = \"{}\"\n[socket]\nstatus-interval-ms = 300\n\
             [[source]]\nkind = \"cpal\"\ndevice = \"drsncap\"\nrate = 48000\nchannels = 1\ngain = 16.0\nstreams = [\"accel\"]\n\
             ring-seconds = 4.0\nmax-lag-s = 3.9\n",
            common::model().display()
        ),
    )
    .expect("config");
    let alsa_path = format!("/usr/share/alsa/alsa.conf:{}", asound.display());
    let mut d = Daemon::start_with(
        &["--config", cfg.to_str().expect("utf8")],
        &[("ALSA_CONFIG_PATH", &alsa_path)],
    );
    let mut c = d.connect();
    let hello = c.until("hello");
    assert_eq!(hello["streams"][0]["source_rate"], 48000);

    let mut in_file = Vec::new();
    let mut status = serde_json::Value::Null;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        let m = c.next().expect("daemon alive");
        match m["type"].as_str() {
            Some("frame")
                if m["sample_index"].as_u64().expect("index") + 2048 <= file_len_model =>
            {
                in_file.push(m)
            }
            Some("status") => status = m,
            _ => {}
        }
    }
    assert_eq!(d.stop().code(), Some(0));
    let ir14 = in_file.iter().filter(|f| f["label"] == "IR_14").count();
    eprintln!(
        "{} frames inside the file, {ir14} labelled IR_14; status {status}",
        in_file.len()
    );
    assert!(
        in_file.len() >= 20,
        "too few frames from the file: {}",
        in_file.len()
    );
    assert!(
        ir14 as f64 >= 0.9 * in_file.len() as f64,
        "{ir14} of {} frames are IR_14",
        in_file.len()
    );
    let s = &status["streams"][0];
    assert_eq!(s["resampler"]["from"], 48000);
    assert_eq!(s["resampler"]["to"], 12000);
    assert!(s["captured_samples"].as_u64() > Some(0));
}
