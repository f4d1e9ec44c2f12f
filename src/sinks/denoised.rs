//! Each stream's denoised signal on a Unix socket of its own,
//! `<socket-dir>/<stream>.f32`: raw f32le at the model rate, from the
//! moment a reader connects, to every reader at once. One small thread per
//! stream, woken by the worker after each chunk (`tap::DenoisedTap`).
//!
//! A reader is never waited for: writes are non-blocking, and a reader
//! whose socket buffer is full (several seconds of signal unread) is
//! dropped and counted, while the other readers and the frames go on.

use super::{Running, Shutdown, Sink};
use crate::hub::StreamHub;
use crate::tap::DenoisedTap;
use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Readers served at once per stream.
const MAX_READERS: usize = 16;

/// The socket path of one stream's denoised signal.
pub fn path_in(dir: &Path, stream: &str) -> PathBuf {
    dir.join(format!("{stream}.f32"))
}

/// Every stream's denoised-signal socket, bound.
pub struct Denoised {
    /// Per stream: its socket, its tap and its name; taken at start.
    sockets: Vec<(UnixListener, Arc<DenoisedTap>, PathBuf, String)>,
}

impl Denoised {
    /// Binds every stream's socket in `dir`; an error names the path.
    pub fn bind(dir: &Path, mode: u32, streams: &[Arc<StreamHub>]) -> Result<Self> {
        let mut sockets = Vec::new();
        for s in streams {
            let path = path_in(dir, &s.name);
            let listener = super::socket::bind_std(&path, mode)?;
            listener
                .set_nonblocking(true)
                .with_context(|| format!("{}: cannot make non-blocking", path.display()))?;
            sockets.push((listener, s.denoised.clone(), path, s.name.clone()));
        }
        Ok(Self { sockets })
    }
}

impl Sink for Denoised {
    fn name(&self) -> &'static str {
        "denoised"
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// A thread per stream, which ends (removing its socket) at the shutdown.
    fn start(&mut self, shutdown: Shutdown) -> Result<Running> {
        let mut threads = Vec::new();
        for (listener, tap, path, name) in self.sockets.drain(..) {
            let stop = shutdown.clone();
            let t = std::thread::Builder::new()
                .name(format!("denoised-{name}"))
                .spawn(move || serve(listener, &tap, &stop, &path))
                .context("cannot start a denoised-signal thread")?;
            threads.push(t);
        }
        Ok(Running::Threads(threads))
    }
}

fn serve(listener: UnixListener, tap: &DenoisedTap, stop: &Shutdown, path: &Path) {
    let Some(mut reader) = tap.take_reader() else {
        return;
    };
    let mut readers: Vec<UnixStream> = Vec::new();
    let mut bytes: Vec<u8> = Vec::with_capacity(reader.buffer().capacity() * 4);
    while !stop.is_raised() {
        std::thread::park_timeout(Duration::from_millis(200));
        accept(&listener, &mut readers, tap);
        let n = reader.slots();
        let Ok(chunk) = reader.read_chunk(n) else {
            continue;
        };
        bytes.clear();
        for v in chunk {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        if bytes.is_empty() {
            continue;
        }
        let before = readers.len();
        // A short write leaves a reader mid-sample: it goes too.
        readers.retain_mut(|r| matches!(r.write(&bytes), Ok(k) if k == bytes.len()));
        let gone = before - readers.len();
        if gone > 0 {
            tap.readers_dropped.fetch_add(gone as u64, Relaxed);
            tap.readers.store(readers.len() as u64, Relaxed);
        }
    }
    let _ = std::fs::remove_file(path);
}

fn accept(listener: &UnixListener, readers: &mut Vec<UnixStream>, tap: &DenoisedTap) {
    while let Ok((s, _)) = listener.accept() {
        if readers.len() >= MAX_READERS || s.set_nonblocking(true).is_err() {
            tap.readers_refused.fetch_add(1, Relaxed);
            continue;
        }
        readers.push(s);
    }
    tap.readers.store(readers.len() as u64, Relaxed);
}
