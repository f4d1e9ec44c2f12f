//! Evidence snapshots: on every transition into an alarm (`fault` or
//! `anomaly`), the raw samples from `pre-s` before the change to `post-s`
//! after it, as a WAV at the source rate, with a JSON sidecar of the frames
//! (labels, probabilities, thresholds) over that span. They go to a spool directory whose total size
//! is capped (oldest removed first). This is how users check an alarm and
//! collect data to retrain.

use crate::atomic::{self, Durability};
pub use crate::config::SnapshotConfig;
use crate::protocol::FrameMsg;
use crate::recorder::Recorder;
use crate::tap::DenoisedTap;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One frame as the sidecar lists it.
#[derive(Debug, Clone, Serialize)]
struct FrameRecord {
    sample_index: u64,
    stream_time_s: f64,
    label: String,
    probs: Vec<f32>,
    thresholds: Vec<Vec<f32>>,
}

struct Pending {
    path: PathBuf,
    /// Source-rate span [start, end).
    start: u64,
    end: u64,
    event: serde_json::Value,
}

/// Keeps the recent raw samples and frames of one stream, and writes the
/// snapshots that transitions ask for once their "after" part has arrived.
pub struct Snapshots {
    cfg: SnapshotConfig,
    stream: String,
    rate: u32,
    model_rate: u32,
    /// Recent samples; `history_end` is the source position after the last.
    history: VecDeque<f32>,
    history_end: u64,
    frames: VecDeque<FrameRecord>,
    pending: Vec<Pending>,
    /// Samples of history kept.
    keep: usize,
    /// The stream's denoised signal, with `[denoise]`: written beside the
    /// raw one as `<name>.denoised.wav` at the model rate.
    denoised: Option<Arc<DenoisedTap>>,
    /// Writes the files, off the worker's thread.
    recorder: Recorder,
}

impl Snapshots {
    /// `lag_s`: how far the samples may run ahead of the frames (the capture
    /// ring's length), which the history must cover too.
    pub fn new(
        cfg: SnapshotConfig,
        stream: &str,
        rate: u32,
        model_rate: u32,
        lag_s: f64,
        recorder: Recorder,
    ) -> Self {
        let keep = if cfg.dir.is_some() {
            ((cfg.pre_s + cfg.post_s + lag_s + 1.0) * rate as f64) as usize
        } else {
            0
        };
        Self {
            keep,
            cfg,
            stream: stream.to_string(),
            rate,
            model_rate,
            history: VecDeque::with_capacity(keep),
            history_end: 0,
            frames: VecDeque::new(),
            pending: Vec::new(),
            denoised: None,
            recorder,
        }
    }

    /// Snapshots carry the denoised signal from `tap` too.
    pub fn with_denoised(mut self, tap: Arc<DenoisedTap>) -> Self {
        if self.enabled() {
            let keep = self.keep as f64 * self.model_rate as f64 / self.rate as f64;
            tap.keep_recent(keep as usize);
            self.denoised = Some(tap);
        }
        self
    }

    fn enabled(&self) -> bool {
        self.cfg.dir.is_some()
    }

    fn keep(&self) -> usize {
        self.keep
    }

    /// Records raw samples (source rate) as they arrive.
    pub fn samples(&mut self, x: &[f32]) {
        if !self.enabled() {
            return;
        }
        self.history.extend(x);
        self.history_end += x.len() as u64;
        let keep = self.keep();
        if self.history.len() > keep {
            self.history.drain(..self.history.len() - keep);
        }
        self.flush();
    }

    /// Missing samples (overrun) are kept as zeros, so positions stay right.
    pub fn gap(&mut self, n: u64) {
        if self.enabled() {
            let z = vec![0f32; n.min(self.keep() as u64) as usize];
            self.history_end += n - z.len() as u64;
            self.samples(&z);
        }
    }

    /// Records a frame's message; `t`: stream time of its last sample.
    pub fn frame(&mut self, msg: &FrameMsg, t: f64) {
        if !self.enabled() {
            return;
        }
        self.frames.push_back(FrameRecord {
            sample_index: msg.sample_index,
            stream_time_s: t,
            label: msg.label.clone(),
            probs: msg.probs.clone(),
            thresholds: msg.thresholds.clone().unwrap_or_default(),
        });
        // The denoised signal may have been what a snapshot waited for.
        self.flush();
        let horizon = self.cfg.pre_s + self.cfg.post_s + 1.0;
        while self
            .frames
            .front()
            .is_some_and(|r| r.stream_time_s < t - horizon)
        {
            self.frames.pop_front();
        }
    }

    /// Plans a snapshot around a change first seen at stream time `since_s`;
    /// returns the file it will be written to.
    pub fn plan(
        &mut self,
        since_s: f64,
        unix_time: f64,
        event: serde_json::Value,
    ) -> Option<PathBuf> {
        let dir = self.cfg.dir.clone()?;
        let at = (since_s * self.rate as f64) as u64;
        let start = at.saturating_sub((self.cfg.pre_s * self.rate as f64) as u64);
        let end = at + (self.cfg.post_s * self.rate as f64) as u64;
        let safe = crate::monitor::file_safe(&self.stream);
        let path = dir.join(format!(
            "{safe}-{:.0}-{}.wav",
            unix_time * 1000.0,
            event["to"]["class"]
                .as_str()
                .or(event["to"]["state"].as_str())
                .unwrap_or("alarm")
        ));
        self.pending.push(Pending {
            path: path.clone(),
            start,
            end,
            event,
        });
        self.flush();
        Some(path)
    }

    /// Whether a snapshot ending at `end` can be written: its raw end is
    /// captured and, with a denoiser, denoised too (or 2 s later than
    /// that, should the denoiser be held up: the rest is left out).
    fn ready(&self, end: u64) -> bool {
        if end > self.history_end {
            return false;
        }
        let Some(tap) = &self.denoised else {
            return true;
        };
        let want = end as f64 * self.model_rate as f64 / self.rate as f64;
        let denoised = tap.next_index.load(std::sync::atomic::Ordering::Relaxed);
        denoised as f64 >= want || self.history_end >= end + 2 * self.rate as u64
    }

    /// Writes every planned snapshot whose end has been captured.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let ready: Vec<Pending> = {
            let (done, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|p| self.ready(p.end));
            self.pending = wait;
            done
        };
        for p in ready {
            let what = format!("snapshot {}", p.path.display());
            match self.files(p) {
                Ok(files) => {
                    let cap = (self.cfg.max_mb * 1e6) as u64;
                    self.recorder.submit(what, move || files.write(cap));
                }
                Err(e) => tracing::warn!("{what}: not written: {e:#}"),
            }
        }
    }

    /// Copies what a planned snapshot holds (raw samples, the denoised
    /// ones, the frames, the sidecar), for the recorder to write.
    fn files(&self, p: Pending) -> anyhow::Result<SnapshotFiles> {
        let first = self.history_end - self.history.len() as u64;
        if p.end <= first {
            anyhow::bail!("its samples are no longer in the history");
        }
        let start = p.start.max(first);
        let a = (start - first) as usize;
        let b = ((p.end - first) as usize).min(self.history.len());
        let t0 = start as f64 / self.rate as f64;
        let t1 = p.end as f64 / self.rate as f64;
        let denoised = self.denoised_span(t0, t1);
        let frames: Vec<&FrameRecord> = self
            .frames
            .iter()
            .filter(|r| r.stream_time_s >= t0 && r.stream_time_s <= t1 + 0.2)
            .collect();
        let denoised_path = p.path.with_extension("denoised.wav");
        let denoised_json = match &denoised {
            None => serde_json::Value::Null,
            Some((start, x)) => serde_json::json!({
                "wav": denoised_path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "sample_rate": self.model_rate,
                "start_stream_time_s": *start as f64 / self.model_rate as f64,
                "end_stream_time_s": (*start + x.len() as u64) as f64 / self.model_rate as f64,
            }),
        };
        let sidecar = serde_json::json!({
            "stream": self.stream,
            "wav": p.path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "sample_rate": self.rate,
            "start_stream_time_s": t0,
            "end_stream_time_s": t1,
            "event": p.event,
            "denoised": denoised_json,
            "frames": frames,
        });
        Ok(SnapshotFiles {
            raw: (
                p.path,
                self.rate,
                self.history.range(a..b).copied().collect(),
            ),
            denoised: denoised.map(|(_, x)| (denoised_path, self.model_rate, x)),
            sidecar,
        })
    }

    /// The denoised signal over stream times [t0, t1) as far as it has been
    /// denoised (it lags the raw signal by up to a frame and a hop): its
    /// first model-rate index and samples; None without a denoiser.
    fn denoised_span(&self, t0: f64, t1: f64) -> Option<(u64, Vec<f32>)> {
        let tap = self.denoised.as_ref()?;
        let mr = self.model_rate as f64;
        let r = tap.recent()?;
        let first = r.end - r.samples.len() as u64;
        let a = ((t0 * mr) as u64).max(first);
        let b = ((t1 * mr) as u64).min(r.end);
        (b > a).then(|| {
            let x = r.samples.range((a - first) as usize..(b - first) as usize);
            (a, x.copied().collect())
        })
    }
}

/// A snapshot's files, ready to write: (path, rate, samples) of the raw
/// and the denoised WAV, and the JSON sidecar.
struct SnapshotFiles {
    raw: (PathBuf, u32, Vec<f32>),
    denoised: Option<(PathBuf, u32, Vec<f32>)>,
    sidecar: serde_json::Value,
}

impl SnapshotFiles {
    /// Writes them (on the recorder's thread), then trims the spool to `cap` bytes.
    fn write(self, cap: u64) -> anyhow::Result<()> {
        let (path, rate, x) = &self.raw;
        write_wav(path, *rate, x)?;
        if let Some((path, rate, x)) = &self.denoised {
            write_wav(path, *rate, x)?;
        }
        let sidecar = serde_json::to_vec_pretty(&self.sidecar)?;
        atomic::write(&path.with_extension("json"), &sidecar, Durability::Crash)?;
        if let Some(dir) = path.parent() {
            enforce_cap(dir, cap);
        }
        tracing::info!(
            "snapshot {} ({:.1} s)",
            path.display(),
            x.len() as f64 / *rate as f64
        );
        Ok(())
    }
}

/// A mono 32-bit float WAV, whole or not at all; not flushed (evidence
/// is worth a crash of drsnd, not an SD card's wear).
fn write_wav(path: &Path, rate: u32, x: &[f32]) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    atomic::write_with(path, Durability::Crash, |f| {
        let mut w = hound::WavWriter::new(std::io::BufWriter::new(f), spec)
            .map_err(std::io::Error::other)?;
        for &v in x {
            w.write_sample(v).map_err(std::io::Error::other)?;
        }
        w.finalize().map_err(std::io::Error::other)
    })?;
    Ok(())
}

/// Removes the oldest snapshots (WAV with its sidecar) until the spool fits.
pub fn enforce_cap(dir: &Path, cap: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut wavs: Vec<(std::time::SystemTime, PathBuf, u64)> = Vec::new();
    let mut total = 0u64;
    for e in entries.flatten() {
        let path = e.path();
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        total += meta.len();
        if path.extension().is_some_and(|x| x == "wav") {
            let side = std::fs::metadata(path.with_extension("json")).map_or(0, |m| m.len());
            wavs.push((
                meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                path,
                meta.len() + side,
            ));
        }
    }
    wavs.sort();
    for (_, path, size) in wavs {
        if total <= cap {
            break;
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("json"));
        total = total.saturating_sub(size);
    }
}
