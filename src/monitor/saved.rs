//! The machine state kept across a restart: one small JSON file per
//! stream in `state-dir`, written by the recorder (never on the worker's
//! thread), at most once per `SAVE_EVERY` while a machine flaps.

use super::State;
use crate::recorder::Recorder;
use serde::{Deserialize, Serialize};

/// What is kept across a restart, one small JSON file per stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub stream: String,
    pub machine: State,
    /// Unix seconds.
    pub since: f64,
}

/// A stream name as a file-name part: anything but [A-Za-z0-9-_] becomes '_'.
pub fn file_safe(stream: &str) -> String {
    stream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn state_path(dir: &std::path::Path, stream: &str) -> std::path::PathBuf {
    dir.join(format!("{}.state.json", file_safe(stream)))
}

/// Reads a saved state; a missing or unreadable file means none (logged).
pub fn load_state(path: &std::path::Path) -> Option<Saved> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("{}: ignoring unreadable state file: {e}", path.display());
            None
        }
    }
}

/// How often a flapping machine's state may be written (each save is an fsync).
pub const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Saves the machine state so that a restart knows it. A change after a
/// quiet spell is saved at once. A change within `SAVE_EVERY` of the last
/// save waits until that has passed, and only the latest is written: a
/// machine flapping between two states costs one fsync per `SAVE_EVERY`, not
/// one per change, on an edge box's SD card. The write itself is the
/// recorder's, off the worker's thread.
pub struct StateSaver {
    path: Option<std::path::PathBuf>,
    last_ns: Option<u64>,
    waiting: Option<Saved>,
    recorder: Recorder,
}

impl StateSaver {
    /// `path`: the state file, or none to save nothing.
    pub fn new(path: Option<std::path::PathBuf>, recorder: Recorder) -> Self {
        Self {
            path,
            last_ns: None,
            waiting: None,
            recorder,
        }
    }

    /// A state change at `now_ns`: saved now, or once it is due.
    pub fn change(&mut self, saved: Saved, now_ns: u64) {
        if self.path.is_some() {
            self.waiting = Some(saved);
            self.save_if_due(now_ns);
        }
    }

    /// Saves a waiting change once `SAVE_EVERY` has passed since the last save.
    pub fn save_if_due(&mut self, now_ns: u64) {
        let due = self
            .last_ns
            .is_none_or(|t| now_ns.saturating_sub(t) >= SAVE_EVERY.as_nanos() as u64);
        if due && self.waiting.is_some() {
            self.save_now(now_ns);
        }
    }

    /// Saves a waiting change whether due or not (the stream is ending).
    pub fn save_now(&mut self, now_ns: u64) {
        let (Some(path), Some(saved)) = (&self.path, self.waiting.take()) else {
            return;
        };
        let what = format!("{}: cannot save state", path.display());
        let path = path.clone();
        self.recorder
            .submit(what, move || Ok(save_state(&path, &saved)?));
        self.last_ns = Some(now_ns);
    }
}

/// Survives a power cut whole: the state must be there after a restart.
fn save_state(path: &std::path::Path, saved: &Saved) -> std::io::Result<()> {
    let text = serde_json::to_string(saved).map_err(std::io::Error::other)?;
    crate::atomic::write(path, text.as_bytes(), crate::atomic::Durability::Whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn saved(class: &str) -> Saved {
        Saved {
            stream: "s".into(),
            machine: State::Fault {
                class: class.into(),
            },
            since: 0.0,
        }
    }

    fn on_disk(path: &std::path::Path) -> String {
        load_state(path).map_or("none".into(), |s| s.machine.name())
    }

    #[test]
    fn a_flapping_state_is_saved_once_per_interval_and_the_last_one_wins() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("s.state.json");
        let mut saver = StateSaver::new(Some(path.clone()), Recorder::inline());
        let every = SAVE_EVERY.as_secs();
        saver.change(saved("A"), 100 * S);
        assert_eq!(
            on_disk(&path),
            "fault(A)",
            "the first change is saved at once"
        );
        saver.change(saved("B"), 101 * S);
        saver.change(saved("C"), 102 * S);
        saver.save_if_due((100 + every - 1) * S);
        assert_eq!(
            on_disk(&path),
            "fault(A)",
            "changes within the interval wait"
        );
        saver.save_if_due((100 + every) * S);
        assert_eq!(
            on_disk(&path),
            "fault(C)",
            "then only the latest is written"
        );
        saver.change(saved("D"), (100 + 3 * every) * S);
        assert_eq!(
            on_disk(&path),
            "fault(D)",
            "after a quiet spell, at once again"
        );
        saver.change(saved("E"), (101 + 3 * every) * S);
        assert_eq!(on_disk(&path), "fault(D)");
        saver.save_now((102 + 3 * every) * S);
        assert_eq!(
            on_disk(&path),
            "fault(E)",
            "the stream's end saves what waits"
        );
    }

    #[test]
    fn without_a_state_file_nothing_is_written() {
        let mut saver = StateSaver::new(None, Recorder::inline());
        saver.change(saved("A"), S);
        saver.save_now(2 * S);
        assert!(saver.waiting.is_none() && saver.last_ns.is_none());
    }
}
