//! A real audio server for capture tests: PulseAudio with a null sink,
//! whose monitor is ALSA's default input through the pulse plugin
//! (../shared/notes/audio-capture-testing.md, recipe 1).

use super::cwru;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A PulseAudio server in its own runtime dir, killed on drop.
pub struct Pulse {
    child: Child,
}

impl Pulse {
    pub fn start(runtime: &Path) -> Pulse {
        // Held at once, so that Drop reaps it whatever happens next.
        let pulse = Pulse {
            child: Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "-n",
                "--load=module-native-protocol-unix",
                "--load=module-null-sink sink_name=machine rate=48000 channels=1 format=float32le",
            ])
            .env("XDG_RUNTIME_DIR", runtime)
            .env("PULSE_RUNTIME_PATH", runtime)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio starts (scripts/setup-system.sh installs it)"),
        };
        let t0 = Instant::now();
        loop {
            let ok = Command::new("pactl")
                .args(["set-default-source", "machine.monitor"])
                .env("XDG_RUNTIME_DIR", runtime)
                .env("PULSE_RUNTIME_PATH", runtime)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return pulse;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "pulseaudio did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays a recording into the sink over and over until `stop`; a player
/// that fails (server gone) is simply started again.
pub fn player(runtime: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let runtime = runtime.to_path_buf();
    let wav = cwru("1797_IR_14.wav");
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let mut p = Command::new("paplay")
                .arg("--device=machine")
                .arg(&wav)
                .env("XDG_RUNTIME_DIR", &runtime)
                .env("PULSE_RUNTIME_PATH", &runtime)
                .stderr(Stdio::null())
                .spawn()
                .expect("paplay");
            while p.try_wait().ok().flatten().is_none() {
                if stop.load(Ordering::Relaxed) {
                    let _ = p.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}
