//! End-to-end benchmark harness: feeds real-time raw f32 streams into a
//! daemon's FIFOs, subscribes to its socket, and measures what a user sees.
//!
//! For every frame, latency runs from the moment the feeder's write of the
//! frame's last sample returned to the moment a subscriber has parsed the
//! frame's JSON line. CPU time and peak RSS are read from /proc for the daemon
//! process. The daemon is any command: `{dir}` in it becomes the harness's
//! working folder, which holds the FIFOs `s0.fifo`.., the socket `drsn.sock`
//! and a drsnd config `drsnd.toml` for those.
//!
//! `cargo run --release --example e2e_bench -- --streams 1 --seconds 60
//!  --wav ../shared/cwru/1797_IR_14.wav -- target/release/drsnd run --config {dir}/drsnd.toml`
//! prints one JSON object; bench/run.sh runs the whole set.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RATE: usize = 12_000;
const FRAME: usize = 2048;
const HOP: usize = 512;

struct Opts {
    streams: usize,
    subscribers: usize,
    seconds: f64,
    warmup: f64,
    wav: PathBuf,
    model: PathBuf,
    command: Vec<String>,
    /// `[http]` on this loopback port (0: off).
    http_port: u16,
    /// Event-stream readers (`/events`), as open pages would be.
    page_clients: usize,
    /// `[mqtt]` to this broker (summaries every second), if set.
    mqtt: Option<String>,
    /// With `--mqtt`: Sparkplug B and Home Assistant discovery on too.
    plants: bool,
    /// `units` of every source (turns the physical measures on), if set.
    units: Option<String>,
    /// `rpm` of every source, with the CWRU bearing's orders (turns the
    /// envelope evidence on; needs `units`), if set.
    rpm: Option<f64>,
    /// `rpm-range` of every source (`[rpm, rpm]` pins the speed: no
    /// measuring), if set.
    rpm_range: Option<String>,
    /// A baseline file every stream scores by (copied into a state-dir), if set.
    baseline: Option<PathBuf>,
    /// `[denoise] model` (with a socket-dir and one reader per stream), if set.
    denoise: Option<PathBuf>,
    /// `frames-per-wake` of the daemon.
    frames_per_wake: usize,
    /// `[snapshots]` on (2 s before and after each alarm) and the machine
    /// state kept (`[monitor] state-dir`), both in the run's folder: the
    /// files a daemon writes at each alarm.
    snapshots: bool,
    /// `[history]` on (the store in the run's temp dir, default settings).
    history: bool,
    /// Streams' chunks spread over the hop instead of all at once.
    stagger: bool,
    /// Extra top-level config lines (`--pool-wake`, `--worker-threads`).
    top_level: String,
}

fn parse_args() -> Result<Opts> {
    let mut o = Opts {
        streams: 1,
        subscribers: 1,
        seconds: 60.0,
        warmup: 5.0,
        wav: "../shared/cwru/1797_IR_14.wav".into(),
        model: "models/drsn-cw-cwru10.json".into(),
        command: Vec::new(),
        http_port: 0,
        page_clients: 0,
        mqtt: None,
        plants: false,
        units: None,
        rpm: None,
        rpm_range: None,
        baseline: None,
        denoise: None,
        frames_per_wake: 1,
        snapshots: false,
        history: false,
        stagger: false,
        top_level: String::new(),
    };
    let mut http = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--" {
            o.command = args.by_ref().collect();
            break;
        }
        let v = args.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--streams" => o.streams = v.parse().context("--streams")?,
            "--subscribers" => o.subscribers = v.parse().context("--subscribers")?,
            "--seconds" => o.seconds = v.parse().context("--seconds")?,
            "--warmup" => o.warmup = v.parse().context("--warmup")?,
            "--wav" => o.wav = v.into(),
            "--model" => o.model = v.into(),
            "--http" => http = v == "on",
            "--page-clients" => o.page_clients = v.parse().context("--page-clients")?,
            "--mqtt" => o.mqtt = Some(v),
            "--plants" => o.plants = v == "on",
            "--units" => o.units = Some(v),
            "--rpm" => o.rpm = Some(v.parse().context("--rpm")?),
            "--rpm-range" => o.rpm_range = Some(v),
            "--baseline" => o.baseline = Some(v.into()),
            "--denoise" => o.denoise = Some(v.into()),
            "--frames-per-wake" => o.frames_per_wake = v.parse().context("--frames-per-wake")?,
            "--snapshots" => o.snapshots = v == "on",
            "--history" => o.history = v == "on",
            "--stagger" => o.stagger = v == "on",
            "--pool-wake" => o.top_level += &format!("pool-wake = \"{v}\"\n"),
            "--worker-threads" => o.top_level += &format!("worker-threads = {v}\n"),
            _ => bail!("unknown option {a}"),
        }
    }
    if o.command.is_empty() {
        bail!("usage: e2e_bench [--streams N] [--subscribers M] [--http on|off] [--page-clients P] [--mqtt URL] [--plants on|off] [--units g] [--rpm R] [--rpm-range LO,HI] [--baseline FILE] [--denoise MODEL] [--frames-per-wake N] [--snapshots on|off] [--history on|off] [--stagger on|off] [--pool-wake frame|hop] [--worker-threads N] [--seconds S] [--warmup S] [--wav F] -- COMMAND ({{dir}} is replaced)");
    }
    if http || o.page_clients > 0 {
        o.http_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
    }
    Ok(o)
}

/// Frame k of a stream ends at sample FRAME + k*HOP; its feed time in ns
/// since the harness started (0 = not fed yet).
struct FeedTimes {
    per_stream: Vec<Vec<AtomicU64>>,
}

impl FeedTimes {
    fn new(streams: usize, frames: usize) -> Self {
        let per_stream = (0..streams)
            .map(|_| (0..frames).map(|_| AtomicU64::new(0)).collect())
            .collect();
        Self { per_stream }
    }
    fn get(&self, stream: usize, sample_index: u64) -> Option<u64> {
        let k = (sample_index as usize) / HOP;
        let t = self.per_stream.get(stream)?.get(k)?.load(Ordering::Acquire);
        (t != 0).then_some(t)
    }
}

#[derive(Default)]
struct SubResult {
    frames: Vec<u64>, // per stream
    gaps: u64,
    latencies_us: Vec<f64>,
    last_status: Option<serde_json::Value>,
    lagged: u64,
}

fn main() -> Result<()> {
    let o = parse_args()?;
    raise_fd_limit();
    let dir = tempfile::tempdir()?;
    let signal = read_signal(&o.wav)?;
    for i in 0..o.streams {
        mkfifo(&dir.path().join(format!("s{i}.fifo")))?;
    }
    write_config(dir.path(), &o)?;
    let socket = dir.path().join("drsn.sock");
    let mut child = spawn(&o.command, dir.path())?;
    let pid = child.id();
    wait_for_socket(&socket, &mut child)?;

    let start = Instant::now();
    let total_frames = ((o.seconds * RATE as f64) as usize).saturating_sub(FRAME) / HOP + 1;
    let times = Arc::new(FeedTimes::new(o.streams, total_frames + 1));
    let warm_ns = (o.warmup * 1e9) as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::new();
    for _ in 0..o.subscribers {
        let s = UnixStream::connect(&socket).context("connect")?;
        let (times, stop) = (times.clone(), stop.clone());
        let n = o.streams;
        subs.push(std::thread::spawn(move || {
            subscribe(s, n, &times, start, warm_ns, &stop)
        }));
    }
    // A reader on each stream's denoised socket, as a user's recorder would be.
    let readers: Vec<_> = match &o.denoise {
        Some(_) => (0..o.streams)
            .map(|i| denoised_reader(&dir.path().join(format!("denoised/s{i}.f32")), stop.clone()))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let pages: Vec<_> = (0..o.page_clients)
        .map(|_| page_client(o.http_port, stop.clone()))
        .collect::<Result<_>>()?;
    std::thread::sleep(Duration::from_millis(300));

    let cpu_at_warm = Arc::new(Mutex::new(None));
    let feeder = {
        let (dir, times, cpu) = (dir.path().to_path_buf(), times.clone(), cpu_at_warm.clone());
        let (streams, seconds, warmup, stagger) = (o.streams, o.seconds, o.warmup, o.stagger);
        std::thread::spawn(move || {
            feed(
                &dir, streams, &signal, seconds, warmup, start, &times, pid, &cpu, stagger,
            )
        })
    };
    let feed_stats = feeder
        .join()
        .map_err(|_| anyhow::anyhow!("feeder panicked"))??;
    let cpu_end = cpu_seconds(pid)?;
    let wall_end = start.elapsed().as_secs_f64();
    let mem = memory(pid)?;
    let threads = thread_cpu(pid);
    // Let the last frames arrive, then stop everyone.
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let mut results = Vec::new();
    for s in subs {
        results.push(
            s.join()
                .map_err(|_| anyhow::anyhow!("subscriber panicked"))?,
        );
    }
    let _ = child.wait();
    let denoised_bytes: u64 = readers.into_iter().map(|r| r.join().unwrap_or(0)).sum();
    let page = pages
        .into_iter()
        .map(|p| p.join().unwrap_or((0, 0)))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));

    let (cpu_warm, wall_warm) = cpu_at_warm
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .context("the feed ended before the warm-up did")?;
    let audio_s = (wall_end - wall_warm) * o.streams as f64;
    let run = Run {
        cpu_s: cpu_end - cpu_warm,
        wall_s: wall_end - wall_warm,
        audio_s,
        mem,
        threads,
        denoised_samples: denoised_bytes / 4,
        snapshots: count_wavs(&dir.path().join("snapshots")),
    };
    report(&o, &results, feed_stats, run, page)
}

/// One open page: reads `/events` focused on the first stream, as the page
/// does with one stream selected, until stop, counting its messages and
/// their bytes.
fn page_client(port: u16, stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<(u64, u64)>> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).context("connect to [http]")?;
    s.write_all(
        b"GET /events?focus=s0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
    )?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    Ok(std::thread::spawn(move || {
        let (mut n, mut bytes) = (0, 0);
        let mut r = BufReader::new(s);
        let mut line = String::new();
        while !stop.load(Ordering::Acquire) {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => break,
                Ok(k) if line.starts_with("data:") => {
                    n += 1;
                    bytes += k as u64;
                }
                _ => {}
            }
        }
        (n, bytes)
    }))
}

fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn read_signal(path: &Path) -> Result<Vec<f32>> {
    let mut r = hound::WavReader::open(path).with_context(|| format!("{}", path.display()))?;
    let spec = r.spec();
    if spec.sample_rate as usize != RATE || spec.sample_format != hound::SampleFormat::Float {
        bail!("{}: want a 12 kHz float WAV", path.display());
    }
    let ch = spec.channels as usize;
    let all: Vec<f32> = r.samples::<f32>().collect::<Result<_, _>>()?;
    Ok(all.iter().step_by(ch).copied().collect())
}

fn mkfifo(path: &Path) -> Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        bail!(
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn write_config(dir: &Path, o: &Opts) -> Result<()> {
    let model =
        std::fs::canonicalize(&o.model).with_context(|| format!("{}", o.model.display()))?;
    let mut cfg = format!(
        "model = \"{}\"\nhop = {HOP}\nframes-per-wake = {}\n{}[socket]\npath = \"{}/drsn.sock\"\nmax-clients = 4096\n\
         [log]\nlevel = \"warn\"\n",
        model.display(),
        o.frames_per_wake,
        o.top_level,
        dir.display()
    );
    if o.http_port != 0 {
        cfg += &format!(
            "[http]\nlisten = \"127.0.0.1:{}\"\nmax-clients = 256\n",
            o.http_port
        );
    }
    if let Some(url) = &o.mqtt {
        cfg += &format!(
            "[mqtt]\nbroker = \"{url}\"\nnode = \"bench-{}\"\nspool-dir = \"{}/spool\"\n",
            std::process::id(),
            dir.display()
        );
        if o.plants {
            cfg += "sparkplug = true\ngroup-id = \"bench\"\nhomeassistant = true\n";
        }
    }
    if let Some(m) = &o.denoise {
        cfg += &format!(
            "[denoise]\nmodel = \"{}\"\nsocket-dir = \"{}/denoised\"\n",
            std::fs::canonicalize(m)?.display(),
            dir.display()
        );
    }
    if o.snapshots {
        cfg += &format!(
            "[snapshots]\ndir = \"{}/snapshots\"\npre-s = 2\npost-s = 2\n",
            dir.display()
        );
    }
    if o.history {
        cfg += &format!("[history]\npath = \"{}/history.sqlite\"\n", dir.display());
    }
    let state = dir.join("state");
    if let Some(b) = &o.baseline {
        std::fs::create_dir_all(&state)?;
        for i in 0..o.streams {
            std::fs::copy(b, state.join(format!("s{i}.baseline.json")))
                .with_context(|| format!("{}", b.display()))?;
        }
    }
    if o.baseline.is_some() || o.snapshots {
        cfg += &format!("[monitor]\nstate-dir = \"{}\"\n", state.display());
    }
    for i in 0..o.streams {
        cfg += &format!(
            "[[source]]\nkind = \"raw\"\npath = \"{}/s{i}.fifo\"\nformat = \"f32le\"\nrate = {RATE}\nstreams = [\"s{i}\"]\n",
            dir.display()
        );
        if let Some(u) = &o.units {
            cfg += &format!("units = \"{u}\"\n");
        }
        if let Some(rpm) = o.rpm {
            cfg += &format!(
                "rpm = {rpm}\nbearing = {{ bpfo = 3.5848, bpfi = 5.4152, bsf = 2.357, ftf = 0.39828 }}\n"
            );
            if let Some(r) = &o.rpm_range {
                cfg += &format!("rpm-range = [{r}]\n");
            }
        }
    }
    std::fs::write(dir.join("drsnd.toml"), cfg)?;
    Ok(())
}

/// Reads a denoised socket until `stop`; returns the bytes read.
fn denoised_reader(path: &Path, stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<u64>> {
    let mut s = UnixStream::connect(path).with_context(|| format!("{}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        while !stop.load(Ordering::Acquire) {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(_) => continue,
            }
        }
        total
    }))
}

fn spawn(command: &[String], dir: &Path) -> Result<Child> {
    let args: Vec<String> = command
        .iter()
        .map(|a| a.replace("{dir}", &dir.display().to_string()))
        .collect();
    let log = File::create(dir.join("daemon.log"))?;
    Command::new(&args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", args[0]))
}

fn wait_for_socket(socket: &Path, child: &mut Child) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if UnixStream::connect(socket).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let log =
                std::fs::read_to_string(socket.with_file_name("daemon.log")).unwrap_or_default();
            bail!("the daemon exited ({status}) before its socket answered:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("no socket at {} after 60 s", socket.display())
}

struct FeedStats {
    late_ticks: u64,
    max_late_ms: f64,
    samples_per_stream: usize,
}

/// Writes every stream's chunk when its last sample is due: the first chunk
/// is a whole frame, then one hop at a time, so each write completes a frame.
#[allow(clippy::too_many_arguments)]
fn feed(
    dir: &Path,
    streams: usize,
    signal: &[f32],
    seconds: f64,
    warmup: f64,
    start: Instant,
    times: &FeedTimes,
    pid: u32,
    cpu_at_warm: &Mutex<Option<(f64, f64)>>,
    stagger: bool,
) -> Result<FeedStats> {
    let mut fifos = Vec::new();
    for i in 0..streams {
        let p = dir.join(format!("s{i}.fifo"));
        fifos.push(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .with_context(|| format!("{}", p.display()))?,
        );
    }
    let t0 = Instant::now();
    let total = (seconds * RATE as f64) as usize;
    let (mut pos, mut k) = (0usize, 0usize);
    let mut stats = FeedStats {
        late_ticks: 0,
        max_late_ms: 0.0,
        samples_per_stream: 0,
    };
    let mut bytes = Vec::with_capacity(FRAME * 4);
    while pos + HOP <= total {
        let end = if k == 0 { FRAME } else { pos + HOP };
        let due = t0 + Duration::from_secs_f64(end as f64 / RATE as f64);
        for (i, f) in fifos.iter_mut().enumerate() {
            // Staggered: stream i's chunk is due i/N of a hop later, as
            // with N sensors whose clocks do not share a phase.
            let shift = if stagger {
                i as f64 * HOP as f64 / streams as f64 / RATE as f64
            } else {
                0.0
            };
            if i == 0 || stagger {
                wait_until(due + Duration::from_secs_f64(shift), &mut stats);
            }
            // Streams start at different offsets so they do not share frames.
            let off = i * 7919;
            bytes.clear();
            for n in pos..end {
                let s = signal[(n + off) % signal.len()];
                bytes.extend_from_slice(&s.to_le_bytes());
            }
            f.write_all(&bytes).context("write to the daemon's FIFO")?;
            times.per_stream[i][k].store(start.elapsed().as_nanos() as u64, Ordering::Release);
        }
        if cpu_at_warm.lock().map(|g| g.is_none()).unwrap_or(false)
            && t0.elapsed().as_secs_f64() >= warmup
        {
            if let Ok(mut g) = cpu_at_warm.lock() {
                *g = Some((cpu_seconds(pid)?, start.elapsed().as_secs_f64()));
            }
        }
        pos = end;
        k += 1;
    }
    stats.samples_per_stream = pos;
    Ok(stats)
}

/// Sleeps until `due`; a tick more than 5 ms late is counted.
fn wait_until(due: Instant, stats: &mut FeedStats) {
    let now = Instant::now();
    if now < due {
        std::thread::sleep(due - now);
    } else {
        let late = (now - due).as_secs_f64() * 1e3;
        if late > 5.0 {
            stats.late_ticks += 1;
        }
        stats.max_late_ms = stats.max_late_ms.max(late);
    }
}

fn subscribe(
    s: UnixStream,
    streams: usize,
    times: &FeedTimes,
    start: Instant,
    warm_ns: u64,
    stop: &AtomicBool,
) -> SubResult {
    let mut r = SubResult {
        frames: vec![0; streams],
        ..Default::default()
    };
    let mut next_seq: Vec<Option<u64>> = vec![None; streams];
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut lines = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) if !stop.load(Ordering::Acquire) => continue,
            Err(_) => break,
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let now = start.elapsed().as_nanos() as u64;
        match v["type"].as_str() {
            Some("frame") => {
                let Some(i) = v["stream"]
                    .as_str()
                    .and_then(|s| s.strip_prefix('s'))
                    .and_then(|s| s.parse::<usize>().ok())
                else {
                    continue;
                };
                if i >= streams {
                    continue;
                }
                let seq = v["seq"].as_u64().unwrap_or(0);
                if let Some(want) = next_seq[i] {
                    if seq != want {
                        r.gaps += seq.saturating_sub(want);
                    }
                }
                next_seq[i] = Some(seq + 1);
                r.frames[i] += 1;
                let ix = v["sample_index"].as_u64().unwrap_or(0);
                if let Some(fed) = times.get(i, ix) {
                    if fed >= warm_ns && now >= fed {
                        r.latencies_us.push((now - fed) as f64 / 1e3);
                    }
                }
            }
            Some("status") => r.last_status = Some(v),
            Some("lagged") => r.lagged += v["missed"].as_u64().unwrap_or(0),
            _ => {}
        }
    }
    r
}

fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|x| x.1).context("/proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// CPU seconds since start per thread name (threads of one name summed).
fn thread_cpu(pid: u32) -> serde_json::Map<String, serde_json::Value> {
    let mut by_name = std::collections::BTreeMap::<String, f64>::new();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map(|x| x.1).unwrap_or("?");
        // Numbered workers ("drsn-infer-3") count as one kind.
        let kind = name
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches('-');
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *by_name.entry(kind.to_string()).or_default() += ticks / hz;
    }
    by_name
        .into_iter()
        .map(|(k, v)| (k, serde_json::json!(v)))
        .collect()
}

struct Run {
    /// Denoised samples the socket readers got.
    denoised_samples: u64,
    cpu_s: f64,
    wall_s: f64,
    audio_s: f64,
    mem: (u64, u64),
    threads: serde_json::Map<String, serde_json::Value>,
    /// Evidence WAVs written by the end of the run.
    snapshots: usize,
}

/// (VmHWM, VmRSS) in KiB.
fn memory(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((kib("VmHWM:"), kib("VmRSS:")))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(
    o: &Opts,
    results: &[SubResult],
    feed: FeedStats,
    run: Run,
    page: (u64, u64),
) -> Result<()> {
    let Run {
        cpu_s,
        wall_s,
        audio_s,
        mem,
        threads,
        denoised_samples,
        snapshots,
    } = run;
    let fed_frames = (feed.samples_per_stream - FRAME) / HOP + 1;
    let mut lat: Vec<f64> = results
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    lat.sort_by(f64::total_cmp);
    let complete = results
        .iter()
        .filter(|r| r.gaps == 0 && r.frames.iter().all(|&n| n as usize == fed_frames))
        .count();
    let status = results.iter().find_map(|r| r.last_status.as_ref());
    let (mut overrun, mut dropped) = (0u64, 0u64);
    if let Some(st) = status {
        for s in st["streams"].as_array().into_iter().flatten() {
            overrun += s["overrun_samples"].as_u64().unwrap_or(0);
            dropped += s["dropped_frames"].as_u64().unwrap_or(0);
        }
    }
    let out = serde_json::json!({
        "command": o.command.join(" "),
        "streams": o.streams,
        "stagger": o.stagger,
        "config_top_level": o.top_level,
        "subscribers": o.subscribers,
        "http": o.http_port != 0,
        "page_clients": o.page_clients,
        "mqtt": o.mqtt.is_some(),
        "plants": o.plants,
        "units": o.units,
        "rpm": o.rpm,
        "rpm_range": o.rpm_range,
        "baseline": o.baseline.as_ref().map(|b| b.display().to_string()),
        "denoise": o.denoise.as_ref().map(|b| b.display().to_string()),
        "frames_per_wake": o.frames_per_wake,
        "snapshots_written": snapshots,
        "denoised_samples_read": denoised_samples,
        "page_messages": page.0,
        "page_bytes": page.1,
        "seconds": o.seconds,
        "warmup_s": o.warmup,
        "frames_fed_per_stream": fed_frames,
        "subscribers_with_every_frame": complete,
        "seq_gaps": results.iter().map(|r| r.gaps).sum::<u64>(),
        "lagged_missed": results.iter().map(|r| r.lagged).sum::<u64>(),
        "frames_received": results.iter().map(|r| r.frames.iter().sum::<u64>()).sum::<u64>(),
        "latency_samples": lat.len(),
        "latency_ms": {
            "p50": percentile(&lat, 0.5) / 1e3,
            "p99": percentile(&lat, 0.99) / 1e3,
            "p999": percentile(&lat, 0.999) / 1e3,
            "max": lat.last().copied().unwrap_or(f64::NAN) / 1e3,
        },
        "cpu_seconds": cpu_s,
        "wall_seconds": wall_s,
        "cpu_percent_of_one_core": 100.0 * cpu_s / wall_s,
        "cpu_seconds_per_audio_second": cpu_s / audio_s,
        "cpu_seconds_by_thread_since_start": threads,
        "peak_rss_kib": mem.0,
        "rss_kib": mem.1,
        "feeder_late_ticks": feed.late_ticks,
        "feeder_max_late_ms": feed.max_late_ms,
        "daemon_overrun_samples": status.map(|_| overrun),
        "daemon_dropped_frames": status.map(|_| dropped),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Evidence WAVs the daemon wrote into `dir` (0: none, or no folder).
fn count_wavs(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
            .count()
    })
}
