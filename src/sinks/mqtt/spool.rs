//! The store-and-forward spool: every event and state change is written
//! here (and synced) before it is sent, and leaves only when the broker has
//! acknowledged it (PUBACK). It is the source of truth: the MQTT client's
//! own queue is thrown away with each connection, and after an outage or a
//! restart whatever the spool holds is sent again, in order, with its
//! original id and time. Frames are never spooled: a summary that comes
//! late is worth nothing, an alarm that comes late is still an alarm.
//!
//! On disk: `spool.log`, one JSON line per entry, appended; `acked`, the
//! highest id below which everything was acknowledged (or dropped). The log
//! is emptied once nothing in it is waiting and rewritten when it is mostly
//! acknowledged. At `spool-max-mb` the oldest entries are dropped, state
//! updates that a later one of the same stream supersedes first; each drop
//! is counted and logged.

use crate::atomic::{self, Durability};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Per node, across restarts: the `id` of the message it carries.
    pub id: u64,
    pub topic: String,
    pub retain: bool,
    pub payload: String,
    /// Acknowledged, but not yet at the front.
    #[serde(skip)]
    pub acked: bool,
}

impl Entry {
    fn size(&self) -> u64 {
        (self.topic.len() + self.payload.len() + 64) as u64
    }
}

pub struct Spool {
    dir: PathBuf,
    log: File,
    /// Waiting entries in id order (acknowledged ones until they reach the front).
    pending: VecDeque<Entry>,
    /// Entries of `pending` not acknowledged (kept, not counted: a replay
    /// of a full spool asks for it on every PUBACK).
    unacked: usize,
    /// Every id up to this one has been acknowledged or dropped.
    watermark: u64,
    next_id: u64,
    bytes: u64,
    log_bytes: u64,
    max_bytes: u64,
    /// Entries dropped because the spool was full (since start).
    pub dropped: u64,
    /// Lines of the log that could not be read back at start.
    pub unreadable: u64,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`; the error names the directory.
    pub fn open(dir: &Path, max_mb: f64) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("[mqtt] spool-dir {}: cannot create", dir.display()))?;
        let probe = dir.join(".probe");
        std::fs::write(&probe, b"")
            .with_context(|| format!("[mqtt] spool-dir {}: cannot write", dir.display()))?;
        let _ = std::fs::remove_file(probe);
        let watermark = std::fs::read_to_string(dir.join("acked"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let path = dir.join("spool.log");
        let (pending, unreadable) = read_log(&path, watermark);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("[mqtt] spool {}: cannot open", path.display()))?;
        let log_bytes = log.metadata().map(|m| m.len()).unwrap_or(0);
        let next_id = pending.back().map_or(watermark, |e| e.id.max(watermark)) + 1;
        let mut s = Self {
            dir: dir.to_path_buf(),
            log,
            bytes: pending.iter().map(Entry::size).sum(),
            unacked: pending.len(),
            pending,
            watermark,
            next_id,
            log_bytes,
            max_bytes: (max_mb * 1e6) as u64,
            dropped: 0,
            unreadable,
        };
        if s.unreadable > 0 {
            // A line cut short would run into the next one appended.
            s.rewrite()?;
        }
        s.enforce_cap()?;
        Ok(s)
    }

    /// Appends an entry and syncs it to disk; returns its id.
    pub fn push(
        &mut self,
        topic: String,
        retain: bool,
        payload: impl FnOnce(u64) -> String,
    ) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let e = Entry {
            id,
            topic,
            retain,
            payload: payload(id),
            acked: false,
        };
        let mut line = serde_json::to_string(&e).context("spool entry")?;
        line.push('\n');
        self.log
            .write_all(line.as_bytes())
            .and_then(|()| self.log.sync_data())
            .with_context(|| format!("[mqtt] spool {}: cannot write", self.dir.display()))?;
        self.log_bytes += line.len() as u64;
        self.bytes += e.size();
        self.pending.push_back(e);
        self.unacked += 1;
        self.enforce_cap()?;
        Ok(id)
    }

    /// Waiting entries, oldest first, that are not acknowledged.
    #[cfg(test)]
    pub fn unacked(&self) -> impl Iterator<Item = &Entry> {
        self.pending.iter().filter(|e| !e.acked)
    }

    /// The first unacknowledged entry after id `after`.
    pub fn next_after(&self, after: u64) -> Option<&Entry> {
        let start = self.pending.partition_point(|e| e.id <= after);
        self.pending.range(start..).find(|e| !e.acked)
    }

    /// The id of the newest entry pushed (0 before any).
    pub fn last_id(&self) -> u64 {
        self.next_id.saturating_sub(1)
    }

    pub fn len(&self) -> usize {
        self.unacked
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The broker acknowledged `id`.
    pub fn ack(&mut self, id: u64) -> Result<()> {
        let i = self.pending.partition_point(|e| e.id < id);
        match self.pending.get_mut(i) {
            Some(e) if e.id == id && !e.acked => e.acked = true,
            _ => return Ok(()),
        }
        self.unacked -= 1;
        let before = self.watermark;
        while self.pending.front().is_some_and(|e| e.acked) {
            if let Some(e) = self.pending.pop_front() {
                self.bytes -= e.size();
                self.watermark = e.id;
            }
        }
        if self.watermark != before {
            self.save_watermark()?;
            self.compact()?;
        }
        Ok(())
    }

    fn save_watermark(&self) -> Result<()> {
        // The mark may lag after a power cut: entries are then sent twice, never lost.
        let mark = format!("{}\n", self.watermark);
        atomic::write(&self.dir.join("acked"), mark.as_bytes(), Durability::Crash)
            .with_context(|| format!("[mqtt] spool {}: cannot save", self.dir.display()))
    }

    /// Empties the log when nothing waits, rewrites it when it is mostly
    /// acknowledged lines.
    fn compact(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            self.log
                .set_len(0)
                .context("[mqtt] spool: cannot truncate")?;
            self.log_bytes = 0;
        } else if self.log_bytes > 4 * self.bytes + (1 << 20) {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Writes the waiting entries to a new log and swaps it in.
    fn rewrite(&mut self) -> Result<()> {
        let mut out = String::new();
        for e in &self.pending {
            out.push_str(&serde_json::to_string(e).context("spool entry")?);
            out.push('\n');
        }
        let path = self.dir.join("spool.log");
        atomic::write(&path, out.as_bytes(), Durability::Contents)
            .and_then(|()| OpenOptions::new().append(true).open(&path))
            .with_context(|| format!("[mqtt] spool {}: cannot rewrite", path.display()))
            .map(|f| {
                self.log = f;
                self.log_bytes = out.len() as u64;
            })
    }

    /// Over the cap: drops down to 90 % of it, superseded states first,
    /// then the oldest, and says so.
    fn enforce_cap(&mut self) -> Result<()> {
        if self.bytes <= self.max_bytes {
            return Ok(());
        }
        let target = self.max_bytes / 10 * 9;
        let mut bytes = self.bytes;
        let mut keep = vec![true; self.pending.len()];
        let mut cut = |i: usize, e: &Entry, bytes: &mut u64| {
            if keep[i] && *bytes > target {
                keep[i] = false;
                *bytes -= e.size();
            }
        };
        // A retained state with a later one on the same topic is superseded.
        let mut seen = std::collections::HashSet::new();
        for (i, e) in self.pending.iter().enumerate().rev() {
            if e.retain && !seen.insert(e.topic.as_str()) {
                cut(i, e, &mut bytes);
            }
        }
        for (i, e) in self.pending.iter().enumerate() {
            cut(i, e, &mut bytes);
        }
        let lost = self
            .pending
            .iter()
            .zip(&keep)
            .filter(|(e, k)| !**k && !e.acked)
            .count() as u64;
        let mut k = keep.into_iter();
        self.pending.retain(|_| k.next().unwrap_or(true));
        self.bytes = bytes;
        self.dropped += lost;
        self.unacked -= lost as usize;
        // Everything before the first entry kept is now done with.
        let first = self.pending.front().map_or(self.next_id, |e| e.id);
        self.watermark = self.watermark.max(first - 1);
        tracing::warn!(
            "[mqtt] spool {} is full ({:.1} MB): dropped {lost} unsent entries, {} in all; the broker will not see them",
            self.dir.display(),
            self.max_bytes as f64 / 1e6,
            self.dropped
        );
        self.save_watermark()?;
        self.rewrite()
    }
}

/// The waiting entries of a log (after `watermark`), and how many lines
/// could not be read (a line cut short by a crash, say).
fn read_log(path: &Path, watermark: u64) -> (VecDeque<Entry>, u64) {
    let mut pending = VecDeque::new();
    let mut bad = 0;
    let Ok(f) = File::open(path) else {
        return (pending, 0);
    };
    for line in BufReader::new(f).lines() {
        let Ok(line) = line else {
            bad += 1;
            continue;
        };
        match serde_json::from_str::<Entry>(&line) {
            Ok(e) if e.id > watermark && pending.back().is_none_or(|b: &Entry| b.id < e.id) => {
                pending.push_back(e)
            }
            Ok(_) => {}
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        tracing::warn!(
            "[mqtt] spool {}: {bad} unreadable line(s) skipped",
            path.display()
        );
    }
    (pending, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(s: &mut Spool, topic: &str, retain: bool) -> u64 {
        s.push(topic.into(), retain, |id| format!("{{\"id\":{id}}}"))
            .expect("push")
    }

    #[test]
    fn what_was_not_acknowledged_comes_back_after_a_restart_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path(), 1.0).expect("open");
        let ids: Vec<u64> = (0..5).map(|_| push(&mut s, "a/event", false)).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        s.ack(1).expect("ack");
        s.ack(3).expect("ack"); // out of order: 2 still waits
        drop(s);
        let s = Spool::open(dir.path(), 1.0).expect("reopen");
        let back: Vec<u64> = s.unacked().map(|e| e.id).collect();
        // 3 was acknowledged past the watermark: sent again (a duplicate by id).
        assert_eq!(back, vec![2, 3, 4, 5]);
        assert_eq!(
            s.unacked().next().map(|e| e.payload.as_str()),
            Some("{\"id\":2}")
        );
        let mut s = s;
        assert_eq!(
            push(&mut s, "a/event", false),
            6,
            "ids go on across restarts"
        );
        for id in 2..=6 {
            s.ack(id).expect("ack");
        }
        assert_eq!(s.len(), 0);
        assert_eq!(
            std::fs::metadata(dir.path().join("spool.log"))
                .expect("log")
                .len(),
            0
        );
        drop(s);
        let mut s = Spool::open(dir.path(), 1.0).expect("reopen");
        assert_eq!(s.unacked().count(), 0);
        assert_eq!(
            push(&mut s, "a/event", false),
            7,
            "ids go on after an empty log"
        );
    }

    #[test]
    fn a_full_spool_drops_superseded_states_first_then_the_oldest_and_counts() {
        let dir = tempfile::tempdir().expect("tmp");
        // About 100 entries of ~90 bytes fit in 0.01 MB.
        let mut s = Spool::open(dir.path(), 0.01).expect("open");
        let first_event = push(&mut s, "n/pump/event", false);
        for _ in 0..150 {
            push(&mut s, "n/pump/state", true);
        }
        let last_state = push(&mut s, "n/pump/state", true);
        assert!(s.bytes() <= 10_000, "{} bytes", s.bytes());
        assert!(s.dropped > 0);
        let left: Vec<&Entry> = s.unacked().collect();
        assert_eq!(
            left[0].id, first_event,
            "the event outlived the superseded states"
        );
        assert_eq!(left.last().map(|e| e.id), Some(last_state));
        let dropped = s.dropped;
        drop(s);
        let s = Spool::open(dir.path(), 0.01).expect("reopen");
        assert_eq!(
            s.unacked().count() as u64,
            152 - dropped,
            "the log holds what is left"
        );
        // Events alone: the oldest go.
        let mut s = s;
        for _ in 0..300 {
            push(&mut s, "n/pump/event", false);
        }
        assert!(s.unacked().all(|e| e.id > first_event));
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = Spool::open(dir.path(), 1.0).expect("open");
        push(&mut s, "a", false);
        drop(s);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("spool.log"))
            .expect("log");
        f.write_all(b"{\"id\":2,\"topic\":\"a\",\"ret")
            .expect("write");
        let s = Spool::open(dir.path(), 1.0).expect("reopen");
        assert_eq!(s.unreadable, 1);
        assert_eq!(s.unacked().map(|e| e.id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn an_unwritable_directory_is_named() {
        let e = Spool::open(Path::new("/proc/drsnd-spool"), 1.0)
            .err()
            .expect("fails");
        assert!(
            format!("{e:#}").contains("spool-dir /proc/drsnd-spool"),
            "{e:#}"
        );
    }
}
