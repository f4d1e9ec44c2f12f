//! Raw interleaved PCM (f32le or s16le) from stdin, a file or a FIFO, for
//! sensors that are not audio devices. Reading waits on the writer, so the
//! pace is the writer's. A FIFO is reopened when its writer goes away, so a
//! restarted sensor process picks up where the stream left off.

use super::{Running, Source, SourceStatus};
use crate::clock::mono_ns as now_ns;
use crate::config::{RawFormat, SourceConfig};
use crate::ring::RingWriter;
use anyhow::{Context, Result};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

pub struct RawSource {
    path: PathBuf,
    rate: u32,
    channels: usize,
    format: RawFormat,
}

impl RawSource {
    pub fn open(cfg: &SourceConfig) -> Result<Self> {
        let path = cfg.path.clone().context("raw source without `path`")?;
        if path.as_os_str() != "-" && !path.exists() {
            anyhow::bail!(
                "{}: no such file or FIFO for the raw source",
                path.display()
            );
        }
        Ok(Self {
            path,
            rate: cfg.rate.context("raw source without `rate`")?,
            channels: cfg.channels.unwrap_or(1) as usize,
            format: cfg.format.context("raw source without `format`")?,
        })
    }

    fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    fn is_fifo(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.file_type().is_fifo())
    }

    fn input(&self) -> Result<Box<dyn Read>> {
        if self.is_stdin() {
            return Ok(Box::new(std::io::stdin()));
        }
        let f = std::fs::File::open(&self.path)
            .with_context(|| format!("{}: cannot open", self.path.display()))?;
        Ok(Box::new(f))
    }

    fn bytes_per_sample(&self) -> usize {
        match self.format {
            RawFormat::F32le => 4,
            RawFormat::S16le => 2,
        }
    }

    /// Reads until end of input (or `stop`); returns the samples per channel read.
    fn pump(
        &self,
        input: &mut dyn Read,
        writers: &mut [Option<RingWriter>],
        stop: &AtomicBool,
    ) -> Result<u64> {
        let frame_bytes = self.bytes_per_sample() * self.channels;
        let mut bytes = vec![0u8; frame_bytes * 1024];
        let mut decoder = Decoder::new(self.format, self.channels);
        let mut samples = Vec::with_capacity(1024 * self.channels);
        let mut chan = Vec::with_capacity(1024);
        let mut frames_total = 0u64;
        loop {
            if stop.load(Relaxed) {
                return Ok(frames_total);
            }
            let n = match input.read(&mut bytes) {
                Ok(0) => return Ok(frames_total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("{}: read failed", self.path.display()))
                }
            };
            let frames = decoder.feed(&bytes[..n], &mut samples);
            if frames == 0 {
                continue;
            }
            frames_total += frames as u64;
            let t = now_ns();
            if !super::deliver(writers, &samples, self.channels, t, stop, &mut chan) {
                return Ok(frames_total);
            }
        }
    }
}

/// Bytes in, whole frames of samples out; a partial frame waits for the
/// rest, however the input was split.
pub struct Decoder {
    format: RawFormat,
    frame_bytes: usize,
    carry: Vec<u8>,
}

impl Decoder {
    pub fn new(format: RawFormat, channels: usize) -> Self {
        let width = match format {
            RawFormat::F32le => 4,
            RawFormat::S16le => 2,
        };
        Self {
            format,
            frame_bytes: width * channels.max(1),
            carry: Vec::with_capacity(width * channels.max(1)),
        }
    }

    /// Replaces `out` with the interleaved samples of every frame completed
    /// by `bytes`; returns how many frames that is.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<f32>) -> usize {
        out.clear();
        if !self.carry.is_empty() {
            let need = (self.frame_bytes - self.carry.len()).min(bytes.len());
            self.carry.extend_from_slice(&bytes[..need]);
            bytes = &bytes[need..];
            if self.carry.len() < self.frame_bytes {
                return 0;
            }
            let carry = std::mem::take(&mut self.carry);
            self.decode(&carry, out);
            self.carry = carry;
            self.carry.clear();
        }
        let whole = bytes.len() / self.frame_bytes * self.frame_bytes;
        self.decode(&bytes[..whole], out);
        self.carry.extend_from_slice(&bytes[whole..]);
        out.len() / (self.frame_bytes / self.width())
    }

    fn width(&self) -> usize {
        match self.format {
            RawFormat::F32le => 4,
            RawFormat::S16le => 2,
        }
    }

    fn decode(&self, bytes: &[u8], out: &mut Vec<f32>) {
        match self.format {
            RawFormat::F32le => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            RawFormat::S16le => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0),
            ),
        }
    }
}

impl Source for RawSource {
    fn rate(&self) -> u32 {
        self.rate
    }
    fn channels(&self) -> usize {
        self.channels
    }
    fn full_scale(&self) -> f32 {
        match self.format {
            RawFormat::F32le => f32::INFINITY,
            RawFormat::S16le => 32767.0 / 32768.0,
        }
    }

    fn start(
        self: Box<Self>,
        writers: Vec<Option<RingWriter>>,
        stop: Arc<AtomicBool>,
        status: Arc<SourceStatus>,
    ) -> Result<Running> {
        super::spawn_reader("raw-source".into(), writers, move |writers| {
            let fifo = self.is_fifo();
            loop {
                let result = self
                    .input()
                    .and_then(|mut i| self.pump(&mut *i, writers, &stop));
                match result {
                    Err(e) => {
                        tracing::error!("{e:#}");
                        status.set(format!("error: {e:#}"));
                        break;
                    }
                    Ok(_) if fifo && !stop.load(Relaxed) => {
                        tracing::warn!(
                            "{}: writer went away; waiting for a new one",
                            self.path.display()
                        );
                        status.set("waiting for writer");
                    }
                    Ok(_) => {
                        status.set("ended");
                        break;
                    }
                }
            }
        })
    }
}
