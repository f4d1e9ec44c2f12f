//! Where samples come from: a cpal input device, a WAV recording, or raw PCM
//! from stdin or a FIFO. Opening a source tells its rate and channel count
//! (so rings and resamplers can be sized); starting it hands it one ring
//! writer per channel (None for a channel no stream uses).

pub mod cpal;
pub mod raw;
pub mod wav;

use crate::config::{SourceConfig, SourceKind};
use crate::ring::RingWriter;
use anyhow::Result;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Shared with the daemon: why a source stopped, if it did.
#[derive(Debug, Default)]
pub struct SourceStatus {
    pub message: Mutex<Option<String>>,
}

impl SourceStatus {
    pub fn set(&self, msg: impl Into<String>) {
        if let Ok(mut g) = self.message.lock() {
            *g = Some(msg.into());
        }
    }
    pub fn clear(&self) {
        if let Ok(mut g) = self.message.lock() {
            *g = None;
        }
    }
    pub fn get(&self) -> Option<String> {
        self.message.lock().ok().and_then(|g| g.clone())
    }
}

pub trait Source {
    fn rate(&self) -> u32;
    fn channels(&self) -> usize;
    /// |sample| at which the data is at full scale (infinite for float data).
    fn full_scale(&self) -> f32;
    /// Starts delivering; `writers[c]` receives channel c.
    fn start(
        self: Box<Self>,
        writers: Vec<Option<RingWriter>>,
        stop: Arc<AtomicBool>,
        status: Arc<SourceStatus>,
    ) -> Result<Running>;
}

/// A started source; dropping it stops capture (the cpal stream, if any, is
/// closed; reader threads see `stop`).
pub struct Running {
    pub cpal_stream: Option<::cpal::Stream>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

/// Runs `body` on a named reader thread (file and pipe sources). When it
/// returns, the writers are woken one last time and dropped, which tells
/// the inference threads that the stream has ended.
pub fn spawn_reader(
    name: String,
    writers: Vec<Option<RingWriter>>,
    body: impl FnOnce(&mut [Option<RingWriter>]) + Send + 'static,
) -> Result<Running> {
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        let mut writers = writers;
        body(&mut writers);
        for w in writers.iter().flatten() {
            w.wake();
        }
    })?;
    Ok(Running {
        cpal_stream: None,
        thread: Some(thread),
    })
}

/// De-interleaves `samples` (frames x `channels`) into each channel's ring,
/// waiting for room (file and pipe sources lose nothing by waiting).
/// Returns false if `stop` was raised meanwhile.
pub fn deliver(
    writers: &mut [Option<RingWriter>],
    samples: &[f32],
    channels: usize,
    time_ns: u64,
    stop: &AtomicBool,
    scratch: &mut Vec<f32>,
) -> bool {
    let frames = samples.len() / channels;
    for (c, w) in writers.iter_mut().enumerate() {
        let Some(w) = w else { continue };
        scratch.clear();
        scratch.extend(samples.iter().skip(c).step_by(channels).take(frames));
        if !w.push_waiting(scratch, time_ns, &|| {
            stop.load(std::sync::atomic::Ordering::Relaxed)
        }) {
            return false;
        }
    }
    true
}

pub fn open(cfg: &SourceConfig) -> Result<Box<dyn Source>> {
    Ok(match cfg.kind {
        SourceKind::Cpal => Box::new(cpal::CpalSource::open(cfg)?),
        SourceKind::Wav => Box::new(wav::WavSource::open(cfg)?),
        SourceKind::Raw => Box::new(raw::RawSource::open(cfg)?),
    })
}
