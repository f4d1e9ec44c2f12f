//! Shared test helpers: start the real `drsnd` binary, talk to its socket
//! as a subscriber would, and validate every line against docs/schema.
#![allow(dead_code)]

pub mod broker;
pub mod pulse;
pub mod tls;
pub mod web;
#[allow(unused_imports)]
pub use pulse::{player, Pulse};

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_drsnd");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn model() -> PathBuf {
    root().join("models").join("drsn-cw-cwru10.json")
}

/// The real recordings. Tests that need them fail loudly without them.
pub fn cwru(file: &str) -> PathBuf {
    let dir = std::env::var_os("DRSN_CWRU")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("..").join("shared").join("cwru"));
    let p = dir.join(file);
    assert!(
        p.exists(),
        "{} is missing: the tests read the CWRU recordings from ../shared/cwru (or $DRSN_CWRU)",
        p.display()
    );
    p
}

/// A named pipe at `path`, for the raw source.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("cstr");
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Writes `x` as f32le into the FIFO from a thread, then closes it;
/// `realtime` paces it like a sensor (100 ms blocks at 12 kHz).
pub fn feed_fifo(fifo: &Path, x: Vec<f32>, realtime: bool) -> std::thread::JoinHandle<()> {
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open fifo");
        let block = if realtime { 1200 } else { x.len().max(1) };
        for chunk in x.chunks(block) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            f.write_all(&bytes).expect("feed");
            if realtime {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

pub fn read_wav_f32(path: &Path) -> (u32, Vec<f32>) {
    let mut r = hound::WavReader::open(path).expect("wav opens");
    let rate = r.spec().sample_rate;
    let x = r.samples::<f32>().map(|s| s.expect("sample")).collect();
    (rate, x)
}

pub fn write_wav_f32(path: &Path, rate: u32, x: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav create");
    for &v in x {
        w.write_sample(v).expect("write");
    }
    w.finalize().expect("finalize");
}

/// A 12 kHz recording as an accelerometer on a 48 kHz audio interface
/// would send it: resampled to 48 kHz, S16 at 1/16 scale (the recordings
/// peak above 1 g), so a source with `gain = 16.0` reads g again.
pub fn s16_at_48k(x: &[f32]) -> Vec<i16> {
    let mut up = Vec::new();
    let mut r = drsnd::resample::Resampler::new(12000, 48000).expect("resampler");
    r.push(x, |y| up.extend_from_slice(y)).expect("resample");
    up.iter()
        .map(|v| ((v / 16.0).clamp(-1.0, 1.0) * 32767.0).round() as i16)
        .collect()
}

/// The ten classes and the recordings of each at the three loads.
pub const CLASSES: [&str; 10] = [
    "Normal", "B_7", "B_14", "B_21", "IR_7", "IR_14", "IR_21", "OR6_7", "OR6_14", "OR6_21",
];

pub fn class_files(class: &str) -> Vec<String> {
    if class == "Normal" {
        vec!["1797_Normal_48k.wav".into()]
    } else {
        ["1797", "1772", "1750"]
            .iter()
            .map(|rpm| format!("{rpm}_{class}.wav"))
            .collect()
    }
}

fn validators() -> &'static HashMap<String, jsonschema::Validator> {
    static V: OnceLock<HashMap<String, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        let mut m = HashMap::new();
        for t in [
            "hello", "frame", "status", "lagged", "error", "event", "ack",
        ] {
            let path = root().join("docs").join("schema").join(format!("{t}.json"));
            let text = std::fs::read_to_string(&path).expect("schema file");
            let schema: Value = serde_json::from_str(&text).expect("schema json");
            m.insert(
                t.to_string(),
                jsonschema::validator_for(&schema).expect("valid schema"),
            );
        }
        m
    })
}

/// Parses one line from the daemon and checks it against its schema.
pub fn validate(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let t = v["type"]
        .as_str()
        .unwrap_or_else(|| panic!("no type: {line}"))
        .to_string();
    let validator = validators()
        .get(&t)
        .unwrap_or_else(|| panic!("unknown message type {t}: {line}"));
    if let Err(e) = validator.validate(&v) {
        panic!("{t} message violates docs/schema/{t}.json: {e}\n{line}");
    }
    v
}

/// A running daemon; killed on drop. Its log is read as it comes (a full
/// pipe would block the daemon) and kept for failure messages.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
    log: Arc<Log>,
}

/// The daemon's log as read so far: the last LOG_KEEP bytes, and whether
/// each line is passed through to the test's own stderr as well.
#[derive(Default)]
struct Log {
    tail: Mutex<String>,
    echo: AtomicBool,
}

const LOG_KEEP: usize = 256 * 1024;

impl Log {
    fn drain(self: Arc<Self>, from: impl std::io::Read + Send + 'static) {
        std::thread::spawn(move || {
            for l in BufReader::new(from).lines().map_while(Result::ok) {
                if self.echo.load(Ordering::Relaxed) {
                    eprintln!("drsnd: {l}");
                }
                let mut t = self.tail.lock().unwrap_or_else(|e| e.into_inner());
                t.push_str(&l);
                t.push('\n');
                if t.len() > 2 * LOG_KEEP {
                    let cut = t.len() - LOG_KEEP;
                    let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(0);
                    t.drain(..cut);
                }
            }
        });
    }
}

impl Daemon {
    /// Starts `drsnd run` with `args` and a socket in a fresh temp dir, and
    /// waits until the socket answers.
    pub fn start(args: &[&str]) -> Daemon {
        Self::start_with(args, &[])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::start_at(None, args, env)
    }

    /// As `start`, on a given socket path (default: a fresh temp dir).
    pub fn start_at(socket: Option<PathBuf>, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = socket.unwrap_or_else(|| dir.path().join("drsn.sock"));
        let mut cmd = Command::new(BIN);
        cmd.arg("run").arg("--socket").arg(&socket).args(args);
        if !args.contains(&"--model") && !args.contains(&"--config") {
            cmd.arg("--model").arg(model());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("drsnd starts");
        let log = Arc::new(Log::default());
        if let Some(e) = child.stderr.take() {
            log.clone().drain(e);
        }
        let mut d = Daemon {
            child,
            socket,
            dir,
            log,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("drsnd exited early ({status}): {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("drsnd did not open {} within 60 s", self.socket.display());
    }

    /// The log so far (its last LOG_KEEP bytes or more). After an exit,
    /// waits briefly for the last lines to be read.
    pub fn stderr(&mut self) -> String {
        if self.child.try_wait().ok().flatten().is_some() {
            std::thread::sleep(Duration::from_millis(200));
        }
        self.log
            .tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Passes the daemon's log through to the test's stderr from now on.
    pub fn echo_log(&self) {
        self.log.echo.store(true, Ordering::Relaxed);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM, then waits for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let t0 = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                let log = self.stderr();
                let from = (log.len().saturating_sub(4000)..log.len())
                    .find(|&i| log.is_char_boundary(i))
                    .unwrap_or(0);
                let tail = &log[from..];
                panic!("drsnd did not exit within 10 s of SIGTERM; its log ends:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.socket)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A subscriber: every line it reads is schema-checked.
pub struct Client {
    pub reader: BufReader<UnixStream>,
    pub writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Client {
        let s = UnixStream::connect(path).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        Client {
            writer: s.try_clone().expect("clone"),
            reader: BufReader::new(s),
        }
    }

    /// Next message, schema-checked; None at end of stream.
    pub fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(validate(line.trim_end())),
            Err(e) => panic!("read from daemon failed: {e}"),
        }
    }

    pub fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).expect("send");
    }

    /// Reads until a message of type `t`, returning it.
    pub fn until(&mut self, t: &str) -> Value {
        loop {
            let v = self
                .next()
                .unwrap_or_else(|| panic!("connection closed before a {t} message"));
            if v["type"] == t {
                return v;
            }
        }
    }
}

/// Runs `drsnd classify --json` on files; returns frame messages.
pub fn classify_json(files: &[PathBuf], hop: usize) -> Vec<Value> {
    classify_json_with(&model(), files, hop)
}

/// As `classify_json`, with another model's manifest.
pub fn classify_json_with(model: &Path, files: &[PathBuf], hop: usize) -> Vec<Value> {
    let out = Command::new(BIN)
        .arg("classify")
        .arg("--json")
        .arg("--model")
        .arg(model)
        .arg("--hop")
        .arg(hop.to_string())
        .args(files)
        .output()
        .expect("classify runs");
    frames_of(&out)
}

/// The frame lines of a `drsnd classify --json` that must have succeeded,
/// each checked against the protocol's schema.
pub fn frames_of(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "classify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(validate)
        .filter(is_frame)
        .collect()
}

/// A `frame` line of `drsnd classify --json` (which prints the daemon's
/// `event` lines too).
pub fn is_frame(v: &Value) -> bool {
    v["type"] == "frame"
}

/// Tests that use the fault-injection hooks (src/fault.rs) fail loudly
/// without them rather than pass without testing anything.
pub fn needs_fault_injection() {
    if !cfg!(feature = "fault-injection") {
        panic!("this test needs `cargo test --features fault-injection` (scripts/test.sh sets it)");
    }
}

/// A vibration-like test signal: a shaft tone, a resonance and a little noise.
pub fn signal(rate: u32, seconds: f64, amplitude: f32) -> Vec<f32> {
    let n = (rate as f64 * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let noise = ((i.wrapping_mul(2_654_435_761)) % 1000) as f32 / 5000.0 - 0.1;
            amplitude
                * ((t * 2.0 * std::f32::consts::PI * 162.0).sin()
                    + 0.3 * (t * 2.0 * std::f32::consts::PI * 2900.0).sin()
                    + noise)
        })
        .collect()
}

/// The healthy CWRU recording at the model's 12 kHz.
pub fn healthy_12k() -> Vec<f32> {
    let (_, x) = read_wav_f32(&cwru("1797_Normal_48k.wav"));
    let mut r = drsnd::resample::Resampler::new(48000, 12000).expect("resampler");
    let mut out = Vec::new();
    r.push(&x, |y| out.extend_from_slice(y)).expect("resample");
    out
}

/// The first `seconds` of a 12 kHz fault recording.
pub fn fault(file: &str, seconds: f64) -> Vec<f32> {
    let (_, x) = read_wav_f32(&cwru(file));
    x[..(seconds * 12_000.0) as usize].to_vec()
}

/// IR_14 then OR6_21, `seconds` each, `times` over: a fault class change each time.
pub fn two_faults_in_turn(times: usize, seconds: f64) -> Vec<f32> {
    let (a, b) = (
        fault("1797_IR_14.wav", seconds),
        fault("1797_OR6_21.wav", seconds),
    );
    (0..times)
        .flat_map(|_| a.iter().chain(&b).copied())
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A manifest for tests/fixtures/tract-crash.onnx (a valid ONNX model that
/// tract panics on), copied into `dir`.
pub fn crash_model(dir: &Path, like: &Value) -> PathBuf {
    let fixture = root().join("tests/fixtures/tract-crash.onnx");
    let bytes = std::fs::read(&fixture).expect("tests/fixtures/tract-crash.onnx");
    std::fs::write(dir.join("crash.onnx"), &bytes).expect("crash.onnx");
    let mut m = like.clone();
    m["version"] = "crash".into();
    m["onnx"] = "crash.onnx".into();
    m["sha256"] = sha256_hex(&bytes).into();
    m["thresholds"] = serde_json::json!([{"name": "tau_1", "unit": 1, "channels": 10}]);
    // The fixture has neither an embedding nor a family head; the manifest
    // must not promise them.
    for key in ["embedding_output", "family_output"] {
        m.as_object_mut().expect("object").remove(key);
    }
    let path = dir.join("crash.json");
    std::fs::write(&path, m.to_string()).expect("crash.json");
    path
}
