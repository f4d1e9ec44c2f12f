//! WAV recordings (hound), replayed at real-time pace or as fast as the
//! inference thread takes them, optionally looped. Integer data is scaled to
//! ±1 full scale; float data is passed as is (CWRU files are in g).

use super::{Running, Source, SourceStatus};
use crate::clock::mono_ns as now_ns;
use crate::config::{Pace, SourceConfig};
use crate::ring::RingWriter;
use anyhow::{bail, Context, Result};
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct WavSource {
    path: PathBuf,
    spec: hound::WavSpec,
    pace: Pace,
    looping: bool,
}

pub type Reader = hound::WavReader<BufReader<std::fs::File>>;

pub fn open_reader(path: &std::path::Path) -> Result<Reader> {
    let r = hound::WavReader::open(path)
        .with_context(|| format!("{}: cannot open as WAV", path.display()))?;
    check_spec(&r.spec()).with_context(|| path.display().to_string())?;
    Ok(r)
}

/// Whether drsnd can read data of this header.
pub fn check_spec(spec: &hound::WavSpec) -> Result<()> {
    if spec.channels == 0 || spec.sample_rate == 0 {
        bail!(
            "WAV header says {} channels at {} Hz",
            spec.channels,
            spec.sample_rate
        );
    }
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 8 | 16 | 24 | 32) | (hound::SampleFormat::Float, 32) => Ok(()),
        (f, b) => bail!("unsupported WAV sample format {f:?} with {b} bits"),
    }
}

/// Reads up to `max` interleaved samples as f32 into `out` (cleared first).
/// Returns Ok(false) at the end of the data.
pub fn read_block<R: std::io::Read>(
    r: &mut hound::WavReader<R>,
    out: &mut Vec<f32>,
    max: usize,
) -> Result<bool> {
    out.clear();
    let spec = r.spec();
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for s in r.samples::<f32>().take(max) {
                out.push(s?);
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            for s in r.samples::<i32>().take(max) {
                out.push(s? as f32 * scale);
            }
        }
    }
    Ok(!out.is_empty())
}

pub fn full_scale(spec: &hound::WavSpec) -> f32 {
    match spec.sample_format {
        hound::SampleFormat::Float => f32::INFINITY,
        hound::SampleFormat::Int => 1.0 - 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32,
    }
}

impl WavSource {
    pub fn open(cfg: &SourceConfig) -> Result<Self> {
        let path = cfg.path.clone().context("wav source without `path`")?;
        let spec = open_reader(&path)?.spec();
        Ok(Self {
            path,
            spec,
            pace: cfg.pace,
            looping: cfg.looping,
        })
    }
}

impl Source for WavSource {
    fn rate(&self) -> u32 {
        self.spec.sample_rate
    }
    fn channels(&self) -> usize {
        self.spec.channels as usize
    }
    fn full_scale(&self) -> f32 {
        full_scale(&self.spec)
    }

    fn start(
        self: Box<Self>,
        writers: Vec<Option<RingWriter>>,
        stop: Arc<AtomicBool>,
        status: Arc<SourceStatus>,
    ) -> Result<Running> {
        let name = format!(
            "wav-{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        super::spawn_reader(name, writers, move |writers| {
            match self.replay(writers, &stop) {
                Ok(()) => status.set("ended"),
                Err(e) => {
                    tracing::error!("{e:#}");
                    status.set(format!("error: {e:#}"));
                }
            }
        })
    }
}

impl WavSource {
    fn replay(&self, writers: &mut [Option<RingWriter>], stop: &AtomicBool) -> Result<()> {
        let ch = self.channels();
        let rate = self.rate() as f64;
        // 10 ms blocks, like a sound card's period.
        let block = ((rate / 100.0).ceil() as usize).max(1) * ch;
        let mut buf = Vec::with_capacity(block);
        let mut chan = Vec::with_capacity(block / ch + 1);
        let start = Instant::now();
        let mut sent = 0u64; // frames (per channel) delivered so far
        loop {
            let mut r = open_reader(&self.path)?;
            loop {
                if stop.load(Relaxed) {
                    return Ok(());
                }
                let more = read_block(&mut r, &mut buf, block).with_context(|| {
                    format!(
                        "{}: read failed after {} samples (truncated file?)",
                        self.path.display(),
                        sent
                    )
                })?;
                if !more {
                    break;
                }
                let frames = buf.len() / ch;
                sent += frames as u64;
                let t = if self.pace == Pace::Realtime {
                    let due = start + Duration::from_secs_f64(sent as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    now_ns()
                } else {
                    now_ns()
                };
                if !super::deliver(writers, &buf, ch, t, stop, &mut chan) {
                    return Ok(());
                }
            }
            if !self.looping {
                return Ok(());
            }
        }
    }
}
