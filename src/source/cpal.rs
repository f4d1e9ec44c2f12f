//! Live capture through cpal (ALSA on Linux; USB audio interfaces carry most
//! accelerometers and microphones).
//!
//! The device is chosen by ALSA id ("default", "hw:1,0", "plughw:...") or by
//! part of its description; rate, channels and sample format are negotiated
//! from what it supports, and a fixed buffer size is requested because ALSA's
//! default can be seconds long.
//!
//! A supervisor thread watches the stream. When the device reports an error
//! or its callbacks stop, the stream is closed and the device opened again
//! with backoff, found by its description, since a USB device may come back
//! under another card number. The ring writers are lent to each stream's
//! callback and taken back when it is lost (see [`Lease`]). The outage is
//! marked in the ring as a gap of the samples it lasted.

use super::{Running, Source, SourceStatus};
use crate::clock::mono_ns as now_ns;
use crate::config::SourceConfig;
use crate::ring::RingWriter;
use anyhow::{bail, Context, Result};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig, SupportedBufferSize};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

/// Reopen attempts start this soon after a loss and back off to the max.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Callbacks missing for this many buffer periods (and at least
/// STALL_MIN) mean the device is gone even if cpal reported nothing.
/// PulseAudio's ALSA plugin can pause for most of a second between
/// callbacks, and a new stream may take longer still to start (FIRST_MIN).
const STALL_PERIODS: u32 = 16;
const STALL_MIN: Duration = Duration::from_secs(1);
const FIRST_MIN: Duration = Duration::from_secs(3);

/// Formats in order of preference: float first, then the widest integers.
const FORMATS: [SampleFormat; 9] = [
    SampleFormat::F32,
    SampleFormat::I32,
    SampleFormat::I24,
    SampleFormat::I16,
    SampleFormat::U16,
    SampleFormat::U32,
    SampleFormat::I8,
    SampleFormat::U8,
    SampleFormat::F64,
];

pub struct CpalSource {
    device: cpal::Device,
    /// What the config asked for ("default", an ALSA id or a description).
    spec: String,
    /// The opened device's description: how it is recognised when it returns.
    description: String,
    label: String,
    config: StreamConfig,
    format: SampleFormat,
}

/// One line per input device: id, description, and supported configs.
pub fn list_devices() -> Result<Vec<String>> {
    let host = cpal::default_host();
    let mut out = Vec::new();
    for d in host
        .input_devices()
        .context("cannot list audio input devices")?
    {
        let id = d
            .id()
            .map(|i| i.id().to_string())
            .unwrap_or_else(|_| "?".into());
        let desc = d
            .description()
            .map(|x| x.name().to_string())
            .unwrap_or_default();
        out.push(format!("{id}\t{desc}"));
        if let Ok(cfgs) = d.supported_input_configs() {
            for c in cfgs {
                out.push(format!(
                    "\t{} ch, {}-{} Hz, {:?}, buffer {:?}",
                    c.channels(),
                    c.min_sample_rate(),
                    c.max_sample_rate(),
                    c.sample_format(),
                    c.buffer_size()
                ));
            }
        }
    }
    Ok(out)
}

fn find_device(spec: &str) -> Result<cpal::Device> {
    let host = cpal::default_host();
    if spec == "default" {
        return host
            .default_input_device()
            .context("no default audio input device");
    }
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .context("cannot list audio input devices")?
        .collect();
    let id_of = |d: &cpal::Device| d.id().map(|i| i.id().to_string()).unwrap_or_default();
    let desc_of = |d: &cpal::Device| {
        d.description()
            .map(|x| x.name().to_string())
            .unwrap_or_default()
    };
    if let Some(d) = devices.iter().find(|d| id_of(d) == spec) {
        return Ok(d.clone());
    }
    let want = spec.to_lowercase();
    if let Some(d) = devices
        .iter()
        .find(|d| desc_of(d).to_lowercase().contains(&want))
    {
        return Ok(d.clone());
    }
    // ALSA ids such as hw:1,0 are valid even when the hint list omits them.
    if let Ok(id) = format!("alsa:{spec}").parse::<cpal::DeviceId>() {
        if let Some(d) = host.device_by_id(&id) {
            return Ok(d);
        }
    }
    let names: Vec<String> = devices
        .iter()
        .map(|d| format!("{} ({})", id_of(d), desc_of(d)))
        .collect();
    bail!(
        "no audio input device matches {spec:?}; devices: {}",
        names.join(", ")
    )
}

impl CpalSource {
    pub fn open(cfg: &SourceConfig) -> Result<Self> {
        let spec = cfg.device.clone().unwrap_or_else(|| "default".into());
        let device = find_device(&spec)?;
        let description = device
            .description()
            .map(|d| d.name().to_string())
            .unwrap_or_default();
        let label = format!("{spec} ({description})");
        let ranges: Vec<_> = device
            .supported_input_configs()
            .with_context(|| format!("{label}: cannot read supported configs"))?
            .collect();
        let default = device.default_input_config().ok();
        let channels = cfg
            .channels
            .or_else(|| default.as_ref().map(|d| d.channels()))
            .unwrap_or(1);
        let rate = cfg
            .rate
            .or_else(|| default.as_ref().map(|d| d.sample_rate()))
            .unwrap_or(48_000);
        let pick = FORMATS.iter().find_map(|f| {
            ranges.iter().find(|r| {
                r.sample_format() == *f
                    && r.channels() == channels
                    && (r.min_sample_rate()..=r.max_sample_rate()).contains(&rate)
            })
        });
        let Some(range) = pick else {
            bail!("{label}: no supported input config with {channels} channels at {rate} Hz; see `drsnd devices`");
        };
        let frames = match range.buffer_size() {
            SupportedBufferSize::Range { min, max } => cfg.buffer_frames.clamp(*min, *max),
            SupportedBufferSize::Unknown => cfg.buffer_frames,
        };
        let config = StreamConfig {
            channels,
            sample_rate: rate,
            buffer_size: cpal::BufferSize::Fixed(frames),
        };
        tracing::info!(
            "{label}: {channels} ch at {rate} Hz, {:?}, buffer {frames} frames",
            range.sample_format()
        );
        Ok(Self {
            device,
            spec,
            description,
            label,
            config,
            format: range.sample_format(),
        })
    }

    /// The device again after a loss: by description first, then as configured.
    fn find_again(&self) -> Result<cpal::Device> {
        if self.spec != "default" && !self.description.is_empty() {
            let host = cpal::default_host();
            let found = host
                .input_devices()
                .context("cannot list audio input devices")?
                .find(|d| {
                    d.description()
                        .is_ok_and(|x| x.name() == self.description.as_str())
                });
            if let Some(d) = found {
                return Ok(d);
            }
        }
        find_device(&self.spec)
    }

    /// Opens and starts a stream on `device`; its callback owns `lent`.
    fn open_stream(
        &self,
        device: &cpal::Device,
        lease: Arc<Lease>,
        errors: crossbeam_channel::Sender<cpal::Error>,
    ) -> Result<cpal::Stream> {
        let stream = match self.format {
            SampleFormat::F32 => self.build::<f32>(device, lease, errors)?,
            SampleFormat::F64 => self.build::<f64>(device, lease, errors)?,
            SampleFormat::I32 => self.build::<i32>(device, lease, errors)?,
            SampleFormat::I24 => self.build::<cpal::I24>(device, lease, errors)?,
            SampleFormat::I16 => self.build::<i16>(device, lease, errors)?,
            SampleFormat::I8 => self.build::<i8>(device, lease, errors)?,
            SampleFormat::U32 => self.build::<u32>(device, lease, errors)?,
            SampleFormat::U16 => self.build::<u16>(device, lease, errors)?,
            SampleFormat::U8 => self.build::<u8>(device, lease, errors)?,
            f => bail!("{}: sample format {f:?} is not supported", self.label),
        };
        stream
            .play()
            .with_context(|| format!("{}: cannot start capture", self.label))?;
        Ok(stream)
    }

    fn build<T>(
        &self,
        device: &cpal::Device,
        lease: Arc<Lease>,
        errors: crossbeam_channel::Sender<cpal::Error>,
    ) -> Result<cpal::Stream>
    where
        T: SizedSample + Send + 'static,
        f32: FromSample<T>,
    {
        let ch = self.config.channels as usize;
        // The capture callback: converts and pushes, nothing else. No
        // allocation, log or wait: one try_lock that never blocks to borrow
        // the writers (see Lease), and RingWriter::push is wait-free.
        let data = move |data: &[T], _: &cpal::InputCallbackInfo| {
            let frames = data.len() / ch;
            let t = now_ns();
            lease.with(|writers| {
                for (c, w) in writers.iter_mut().enumerate() {
                    if let Some(w) = w {
                        w.push(
                            frames,
                            data.iter()
                                .skip(c)
                                .step_by(ch)
                                .map(|&s| s.to_sample::<f32>()),
                            t,
                        );
                    }
                }
            });
        };
        // Errors are rare and off the data path; the supervisor decides.
        let error = move |e: cpal::Error| {
            let _ = errors.try_send(e);
        };
        device
            .build_input_stream::<T, _, _>(self.config, data, error, None)
            .with_context(|| format!("{}: cannot open capture stream", self.label))
    }

    /// How long without a callback means the device is gone.
    fn stall_after(&self) -> Duration {
        let frames = match self.config.buffer_size {
            cpal::BufferSize::Fixed(n) => n,
            cpal::BufferSize::Default => 4096,
        };
        let period = Duration::from_secs_f64(frames as f64 / self.config.sample_rate as f64);
        (period * STALL_PERIODS).max(STALL_MIN)
    }
}

/// The ring writers, lent to one stream's callback at a time. A lost
/// stream cannot always be closed (PulseAudio's ALSA plugin can deadlock in
/// it when the server dies), so the supervisor does not wait for its
/// callback to be dropped: it revokes the lease, which the callback honours
/// from its next call on, and takes the writers back.
///
/// A plain mutex, but the callback only ever `try_lock`s it: it never waits.
/// The lock is contended only in the instant the supervisor revokes the
/// lease, and a callback that finds it held skips that one buffer, whose
/// time the outage's gap then covers (the lease is being revoked because the
/// stream is lost).
struct Lease {
    /// None once revoked.
    writers: Mutex<Option<Vec<Option<RingWriter>>>>,
}

impl Lease {
    fn new(writers: Vec<Option<RingWriter>>) -> Arc<Self> {
        Arc::new(Self {
            writers: Mutex::new(Some(writers)),
        })
    }

    /// For the callback: never waits, and a no-op once revoked.
    fn with(&self, f: impl FnOnce(&mut Vec<Option<RingWriter>>)) {
        let guard = match self.writers.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let mut guard = guard;
        if let Some(w) = guard.as_mut() {
            f(w);
        }
    }

    /// For the supervisor: ends the lease and takes the writers back. A
    /// callback inside `with` holds it for microseconds; None only if one
    /// never lets go, or it was revoked before.
    fn revoke(&self) -> Option<Vec<Option<RingWriter>>> {
        let until = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            match self.writers.try_lock() {
                Ok(mut g) => return g.take(),
                Err(TryLockError::Poisoned(p)) => return p.into_inner().take(),
                Err(TryLockError::WouldBlock) if std::time::Instant::now() > until => return None,
                Err(TryLockError::WouldBlock) => std::thread::yield_now(),
            }
        }
    }
}

/// A running stream, its error reports, and the lease of its writers.
type Opened = (
    cpal::Stream,
    crossbeam_channel::Receiver<cpal::Error>,
    Arc<Lease>,
);
/// Why a stream did not open, and the writers back.
type Refused = (anyhow::Error, Vec<Option<RingWriter>>);

/// Closes a stream without waiting on it: a dead one may never close.
fn retire(stream: cpal::Stream) {
    let _ = std::thread::Builder::new()
        .name("capture-retire".into())
        .spawn(move || drop(stream));
}

/// One stream's life: open, watch, and on loss close and open again.
struct Supervisor {
    src: CpalSource,
    stop: Arc<AtomicBool>,
    status: Arc<SourceStatus>,
    counters: Option<Arc<crate::ring::RingCounters>>,
}

enum Ended {
    Stopped,
    /// Why, and the time of the last sample (monotonic ns).
    Lost(String, u64),
}

impl Supervisor {
    /// Opens a stream lending it `writers`; on failure they come back.
    fn open(
        &self,
        device: &cpal::Device,
        writers: Vec<Option<RingWriter>>,
    ) -> Result<Opened, Refused> {
        let (err_tx, err_rx) = crossbeam_channel::bounded(4);
        let lease = Lease::new(writers);
        match self.src.open_stream(device, lease.clone(), err_tx) {
            Ok(stream) => Ok((stream, err_rx, lease)),
            Err(e) => Err((e, lease.revoke().unwrap_or_default())),
        }
    }

    /// When the callback last pushed samples (monotonic ns; 0 never).
    fn last_chunk_ns(&self) -> u64 {
        self.counters
            .as_ref()
            .map_or(0, |c| c.last_chunk_ns.load(Relaxed))
    }

    /// Waits until stop, a reported error, or callbacks that stop coming.
    fn watch(&self, errors: &crossbeam_channel::Receiver<cpal::Error>) -> Ended {
        let started = now_ns();
        let stall = self.src.stall_after().as_nanos() as u64;
        let first = (FIRST_MIN.as_nanos() as u64).max(stall);
        let before = self.last_chunk_ns();
        let last = || self.last_chunk_ns().max(started);
        loop {
            if self.stop.load(Relaxed) {
                return Ended::Stopped;
            }
            if let Ok(e) = errors.recv_timeout(Duration::from_millis(100)) {
                // An xrun loses samples but the stream goes on; cpal does not
                // say how many, so it is logged (the ring's counters hold
                // what drsnd itself dropped).
                if matches!(
                    e.kind(),
                    cpal::ErrorKind::Xrun
                        | cpal::ErrorKind::RealtimeDenied
                        | cpal::ErrorKind::DeviceChanged
                ) {
                    tracing::warn!("{}: {e}", self.src.label);
                    continue;
                }
                return Ended::Lost(e.to_string(), last());
            }
            let quiet = now_ns().saturating_sub(last());
            let started_yet = self.last_chunk_ns() > before;
            if quiet > if started_yet { stall } else { first } {
                return Ended::Lost(
                    format!("no audio callbacks for {:.1} s", quiet as f64 / 1e9),
                    last(),
                );
            }
        }
    }

    /// Sleeps `d` unless stop is raised first; false if it was.
    fn pause(&self, d: Duration) -> bool {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until {
            if self.stop.load(Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        !self.stop.load(Relaxed)
    }

    fn run(
        self,
        mut stream: cpal::Stream,
        mut errors: crossbeam_channel::Receiver<cpal::Error>,
        mut lease: Arc<Lease>,
    ) {
        let label = self.src.label.clone();
        let rate = self.src.config.sample_rate as f64;
        loop {
            // Samples stop at the last callback; the gap is counted from there.
            let (reason, mut gap_from) = match self.watch(&errors) {
                Ended::Stopped => return,
                Ended::Lost(r, last) => (r, last),
            };
            tracing::warn!("{label}: device lost ({reason}); reopening");
            self.status
                .set(format!("device lost ({reason}); reopening"));
            let taken = lease.revoke();
            retire(stream);
            let Some(mut writers) = taken else {
                self.status
                    .set(format!("device lost ({reason}); cannot reopen"));
                return;
            };
            let lost_at = std::time::Instant::now();
            let mut backoff = BACKOFF_MIN;
            loop {
                if !self.pause(backoff) {
                    return;
                }
                let now = now_ns();
                let gap = (now.saturating_sub(gap_from) as f64 / 1e9 * rate) as u64;
                for w in writers.iter_mut().flatten() {
                    w.skip(gap, now);
                }
                gap_from = now;
                let attempt = self
                    .src
                    .find_again()
                    .map_err(|e| (e, std::mem::take(&mut writers)))
                    .and_then(|d| self.open(&d, std::mem::take(&mut writers)));
                match attempt {
                    Ok((s, e, r)) => {
                        (stream, errors, lease) = (s, e, r);
                        break;
                    }
                    Err((e, back)) => {
                        writers = back;
                        if writers.iter().all(Option::is_none) {
                            self.status
                                .set(format!("device lost ({reason}); cannot reopen"));
                            return;
                        }
                        tracing::debug!("{label}: reopen failed: {e:#}");
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        self.status.set(format!(
                            "device lost ({reason}); reopening every {:.1} s: {e:#}",
                            backoff.as_secs_f64()
                        ));
                    }
                }
            }
            tracing::info!(
                "{label}: capturing again after {:.1} s",
                lost_at.elapsed().as_secs_f64()
            );
            self.status.clear();
        }
    }
}

impl Source for CpalSource {
    fn rate(&self) -> u32 {
        self.config.sample_rate
    }
    fn channels(&self) -> usize {
        self.config.channels as usize
    }
    fn full_scale(&self) -> f32 {
        // Audio devices deliver ±1 full scale in every format once converted.
        1.0
    }

    fn start(
        self: Box<Self>,
        writers: Vec<Option<RingWriter>>,
        stop: Arc<AtomicBool>,
        status: Arc<SourceStatus>,
    ) -> Result<Running> {
        let counters = writers
            .iter()
            .flatten()
            .next()
            .map(|w| w.counters().clone());
        let sup = Supervisor {
            src: *self,
            stop,
            status,
            counters,
        };
        // cpal streams need not be Send, so each is opened on the supervisor
        // thread and stays there. The first open reports back, so that a bad
        // device still fails startup.
        let (tx, rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("capture-supervisor".into())
            .spawn(move || {
                let device = sup.src.device.clone();
                match sup.open(&device, writers) {
                    Ok((stream, errors, lease)) => {
                        let _ = tx.send(Ok(()));
                        sup.run(stream, errors, lease);
                    }
                    Err((e, _)) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!("the capture thread ended before opening the device"),
        }
        Ok(Running {
            cpal_stream: None,
            thread: Some(thread),
        })
    }
}
