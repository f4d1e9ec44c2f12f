//! The history file: SQLite, so that a user can open it with any tool
//! (`sqlite3`, Python, Grafana's SQLite data source). Three tiers of one
//! table, `summary`: 10 s rows, and 1 min and 1 h rows rolled up from the
//! tier below in the same transaction that writes, so a tier is complete
//! before the finer one is deleted. Events go to `event`. WAL, one
//! transaction per batch.

use super::summary::Row;
use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// "drsh" in the file header: a SQLite file of anything else is foreign.
const APPLICATION_ID: i64 = 0x6472_7368;
const SCHEMA_VERSION: i64 = 1;
/// The tiers' steps, finest first.
pub const STEPS: [u32; 3] = [10, 60, 3600];
const DAY: f64 = 86_400.0;
/// What the size cap deletes first: the oldest 1 min rows down to their
/// last 30 days, then the 10 s rows down to their last day, then the 1 min
/// and 1 h rows down to theirs.
const CAP_ORDER: [(u32, f64); 4] = [(60, 30.0), (10, 1.0), (60, 1.0), (3600, 1.0)];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS summary (
    stream TEXT NOT NULL, step INTEGER NOT NULL, t REAL NOT NULL,
    frames INTEGER NOT NULL, rms REAL, peak REAL, velocity REAL, zone TEXT,
    crest REAL, kurtosis REAL, anomaly_median REAL, anomaly_max REAL,
    bpfo REAL, bpfi REAL, bsf REAL, envelope_family TEXT, speed_rpm REAL,
    family TEXT, family_probs BLOB, snr_db REAL, state TEXT,
    PRIMARY KEY (stream, step, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event (
    stream TEXT NOT NULL, t REAL NOT NULL, kind TEXT NOT NULL,
    from_state TEXT, to_state TEXT, snapshot TEXT, line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS event_by_time ON event (stream, t);
CREATE TABLE IF NOT EXISTS stream (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trend_reference (
    stream TEXT PRIMARY KEY, ref_from REAL NOT NULL, ref_to REAL NOT NULL, level REAL NOT NULL
) WITHOUT ROWID;
";

const COLUMNS: &str = "stream, step, t, frames, rms, peak, velocity, zone, crest, kurtosis, \
    anomaly_median, anomaly_max, bpfo, bpfi, bsf, envelope_family, speed_rpm, family, \
    family_probs, snr_db, state";

/// How long each tier keeps its rows, and the file's cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub keep_days: [f64; 3],
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_days: [14.0, 365.0, 3650.0],
            max_bytes: 2560 << 20,
        }
    }
}

/// An event as kept: its line as sent, and the fields a query filters on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventRow {
    pub stream: String,
    pub t: f64,
    /// `machine`, `iso-zone` or `trend`.
    pub kind: String,
    pub from: String,
    pub to: String,
    pub snapshot: Option<String>,
    pub line: String,
}

impl From<&crate::config::HistoryConfig> for Retention {
    fn from(h: &crate::config::HistoryConfig) -> Self {
        Self {
            keep_days: h.keep_days,
            max_bytes: (h.max_mb * 1_048_576.0) as u64,
        }
    }
}

impl EventRow {
    /// An event as stored: its line as the bus sends it (no newline).
    pub fn from_event(e: &crate::protocol::EventMsg) -> Self {
        let msg = crate::protocol::Message::Event(e.clone());
        Self {
            stream: e.stream.clone(),
            t: e.time,
            kind: e.to.kind().into(),
            from: e.from.name(),
            to: e.to.name(),
            snapshot: e.snapshot.clone(),
            line: serde_json::to_string(&msg).unwrap_or_default(),
        }
    }
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    retention: Retention,
    /// Set when the file found at open could not be used and was moved here.
    pub moved_aside: Option<PathBuf>,
}

impl Store {
    /// Opens (or makes) the store at `path`. A file that is not one of
    /// ours or not readable as SQLite is moved aside (`moved_aside`) and
    /// a new one made: the daemon keeps monitoring and says so.
    pub fn open(path: &Path, retention: Retention) -> Result<Self> {
        match Self::open_checked(path, retention) {
            Ok(s) => Ok(s),
            Err(e) if path.exists() => {
                let aside = aside_name(path);
                std::fs::rename(path, &aside).with_context(|| {
                    format!(
                        "{}: unusable ({e:#}) and cannot be moved aside",
                        path.display()
                    )
                })?;
                for ext in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(with_suffix(path, ext));
                }
                let mut s = Self::open_checked(path, retention)?;
                tracing::error!(
                    "history store {}: {e:#}; moved aside to {}, a new one started",
                    path.display(),
                    aside.display()
                );
                s.moved_aside = Some(aside);
                Ok(s)
            }
            Err(e) => Err(e),
        }
    }

    fn open_checked(path: &Path, retention: Retention) -> Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("{}: cannot open the history store", path.display()))?;
        let found: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .with_context(|| format!("{}: not an SQLite file", path.display()))?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if found != APPLICATION_ID && (found != 0 || tables > 0) {
            bail!(
                "{}: an SQLite file of something else (application_id {found:#x})",
                path.display()
            );
        }
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            bail!(
                "{}: written by a newer drsnd (schema {version}, this one knows {SCHEMA_VERSION})",
                path.display()
            );
        }
        let check: String = conn.pragma_query_value(None, "quick_check", |r| r.get(0))?;
        if check != "ok" {
            bail!("{}: corrupt ({check})", path.display());
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL with NORMAL: a power cut loses at most the last transaction,
        // never the file.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("{}: cannot make the tables", path.display()))?;
        // The streams' names, so that retention deletes by primary key
        // (a delete by step and time alone scans the whole table).
        let known: i64 = conn.query_row("SELECT count(*) FROM stream", [], |r| r.get(0))?;
        if known == 0 {
            conn.execute_batch(
                "INSERT OR IGNORE INTO stream SELECT DISTINCT stream FROM summary; \
                 INSERT OR IGNORE INTO stream SELECT DISTINCT stream FROM event;",
            )?;
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            retention,
            moved_aside: None,
        })
    }

    /// A read-only handle on the same file (queries from the page while
    /// the writer writes: WAL lets both go on).
    pub fn open_read(path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("{}: cannot open the history store", path.display()))?;
        let found: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        if found != APPLICATION_ID {
            bail!("{}: not a drsnd history store", path.display());
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            retention: Retention::default(),
            moved_aside: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes 10 s rows and events in one transaction, rolls the periods
    /// they touch up into the coarser tiers, and applies the retention
    /// as of `now` (Unix seconds).
    pub fn write(&mut self, rows: &[Row], events: &[EventRow], now: f64) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut known = tx.prepare_cached("INSERT OR IGNORE INTO stream (name) VALUES (?1)")?;
            let names: BTreeSet<&str> = rows
                .iter()
                .map(|r| r.stream.as_str())
                .chain(events.iter().map(|e| e.stream.as_str()))
                .collect();
            for n in names {
                known.execute([n])?;
            }
            let mut ins = tx.prepare_cached(&insert_sql())?;
            for r in rows {
                insert(&mut ins, r)?;
            }
            let mut ev = tx.prepare_cached(
                "INSERT INTO event (stream, t, kind, from_state, to_state, snapshot, line) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in events {
                ev.execute(params![
                    e.stream, e.t, e.kind, e.from, e.to, e.snapshot, e.line
                ])?;
            }
        }
        for w in 1..STEPS.len() {
            let periods: BTreeSet<(String, i64)> = rows
                .iter()
                .map(|r| (r.stream.clone(), period(r.t, STEPS[w])))
                .collect();
            for (stream, start) in periods {
                roll_up(&tx, &stream, STEPS[w - 1], STEPS[w], start as f64)?;
            }
        }
        expire(&tx, &self.retention, now)?;
        tx.commit().context("history: commit")?;
        self.cap()
    }

    /// Deletes the oldest rows while the file holds more than its cap, in
    /// [`CAP_ORDER`]: resolution is lost, never a period (a coarser tier
    /// holds every row deleted).
    fn cap(&mut self) -> Result<()> {
        let streams = self.streams()?;
        for (step, keep_days) in CAP_ORDER {
            while self.used_bytes()? > self.retention.max_bytes {
                let (mut lo, mut hi) = (f64::MAX, f64::MIN);
                for s in &streams {
                    let (a, b): (Option<f64>, Option<f64>) = self.conn.query_row(
                        "SELECT min(t), max(t) FROM summary WHERE stream = ?1 AND step = ?2",
                        params![s, step],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    lo = lo.min(a.unwrap_or(f64::MAX));
                    hi = hi.max(b.unwrap_or(f64::MIN));
                }
                if lo > hi {
                    break;
                }
                let until = (lo + (hi - lo) / 10.0 + 1.0).min(hi - keep_days * DAY);
                if until <= lo {
                    break;
                }
                for s in &streams {
                    self.conn.execute(
                        "DELETE FROM summary WHERE stream = ?1 AND step = ?2 AND t < ?3",
                        params![s, step, until],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Bytes the file's pages in use take (freed pages are reused).
    pub fn used_bytes(&self) -> Result<u64> {
        let q =
            |p: &str| -> Result<i64> { Ok(self.conn.pragma_query_value(None, p, |r| r.get(0))?) };
        let used = q("page_count")? - q("freelist_count")?;
        Ok((used.max(0) * q("page_size")?) as u64)
    }

    /// One stream's rows of tier `step` (10, 60 or 3600) with `from <= t < to`.
    pub fn rows(&self, stream: &str, step: u32, from: f64, to: f64) -> Result<Vec<Row>> {
        let mut q = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM summary WHERE stream = ?1 AND step = ?2 AND t >= ?3 AND t < ?4 ORDER BY t"
        ))?;
        let rows = q
            .query_map(params![stream, step, from, to], read_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The streams the store holds rows of.
    pub fn streams(&self) -> Result<Vec<String>> {
        let mut q = self
            .conn
            .prepare_cached("SELECT name FROM stream ORDER BY name")?;
        let v = q
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(v)
    }

    /// Keeps a stream's trend reference (written at once: it changes
    /// only after a learning).
    pub fn save_reference(&mut self, stream: &str, r: &super::trend::Reference) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO trend_reference (stream, ref_from, ref_to, level) \
             VALUES (?1, ?2, ?3, ?4)",
            params![stream, r.from, r.to, r.level],
        )?;
        Ok(())
    }

    /// The trend reference kept for a stream, if any.
    pub fn reference(&self, stream: &str) -> Result<Option<super::trend::Reference>> {
        let mut q = self.conn.prepare_cached(
            "SELECT ref_from, ref_to, level FROM trend_reference WHERE stream = ?1",
        )?;
        let mut rows = q.query_map([stream], |r| {
            Ok(super::trend::Reference {
                from: r.get(0)?,
                to: r.get(1)?,
                level: r.get(2)?,
            })
        })?;
        Ok(rows.next().transpose()?)
    }

    /// One stream's events with `from <= t < to`, oldest first.
    pub fn events(&self, stream: &str, from: f64, to: f64) -> Result<Vec<EventRow>> {
        let mut q = self.conn.prepare_cached(
            "SELECT stream, t, kind, from_state, to_state, snapshot, line FROM event \
             WHERE stream = ?1 AND t >= ?2 AND t < ?3 ORDER BY t",
        )?;
        let v = q
            .query_map(params![stream, from, to], |r| {
                Ok(EventRow {
                    stream: r.get(0)?,
                    t: r.get(1)?,
                    kind: r.get(2)?,
                    from: r.get(3)?,
                    to: r.get(4)?,
                    snapshot: r.get(5)?,
                    line: r.get(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    }

    /// The newest row time of a stream's finest tier (None: no rows).
    pub fn newest(&self, stream: &str) -> Result<Option<f64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT max(t) FROM summary WHERE stream = ?1 AND step = ?2",
                params![stream, STEPS[0]],
                |r| r.get::<_, Option<f64>>(0),
            )
            .optional()?
            .flatten())
    }
}

fn insert_sql() -> String {
    format!(
        "INSERT OR REPLACE INTO summary ({COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
    )
}

fn insert(ins: &mut rusqlite::CachedStatement, r: &Row) -> Result<()> {
    let probs = r.family_probs.as_deref().map(probs_to_blob);
    ins.execute(params![
        r.stream,
        r.step,
        r.t,
        r.frames,
        r.rms,
        r.peak,
        r.velocity,
        r.zone,
        r.crest,
        r.kurtosis,
        r.anomaly_median,
        r.anomaly_max,
        r.bpfo,
        r.bpfi,
        r.bsf,
        r.envelope_family,
        r.speed_rpm,
        r.family,
        probs,
        r.snr_db,
        r.state,
    ])?;
    Ok(())
}

fn read_row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    // A blob; text (JSON) in stores of the first development builds.
    let probs = match r.get::<_, rusqlite::types::Value>(18)? {
        rusqlite::types::Value::Blob(b) => Some(probs_from_blob(&b)),
        rusqlite::types::Value::Text(t) => serde_json::from_str(&t).ok(),
        _ => None,
    };
    Ok(Row {
        stream: r.get(0)?,
        step: r.get(1)?,
        t: r.get(2)?,
        frames: r.get(3)?,
        rms: r.get::<_, Option<f32>>(4)?.unwrap_or(0.0),
        peak: r.get::<_, Option<f32>>(5)?.unwrap_or(0.0),
        velocity: r.get(6)?,
        zone: r.get(7)?,
        crest: r.get(8)?,
        kurtosis: r.get(9)?,
        anomaly_median: r.get(10)?,
        anomaly_max: r.get(11)?,
        bpfo: r.get(12)?,
        bpfi: r.get(13)?,
        bsf: r.get(14)?,
        envelope_family: r.get(15)?,
        speed_rpm: r.get(16)?,
        family: r.get(17)?,
        family_probs: probs,
        snr_db: r.get(19)?,
        state: r.get(20)?,
    })
}

/// Family probabilities as stored: little-endian f32 each, in the
/// model's family order (16 bytes for four families, against 60 as text:
/// a third of a row).
fn probs_to_blob(p: &[f32]) -> Vec<u8> {
    p.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn probs_from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The start of the `step`-long period `t` falls in.
fn period(t: f64, step: u32) -> i64 {
    (t / step as f64).floor() as i64 * step as i64
}

/// Recomputes the `to`-step row of `stream` from `start` out of its `from`-step rows.
fn roll_up(tx: &rusqlite::Transaction, stream: &str, from: u32, to: u32, start: f64) -> Result<()> {
    let rows = {
        let mut q = tx.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM summary WHERE stream = ?1 AND step = ?2 AND t >= ?3 AND t < ?4 ORDER BY t"
        ))?;
        let v = q
            .query_map(params![stream, from, start, start + to as f64], read_row)?
            .collect::<Result<Vec<_>, _>>()?;
        v
    };
    if let Some(r) = Row::roll_up(&rows, to, start) {
        insert(&mut tx.prepare_cached(&insert_sql())?, &r)?;
    }
    Ok(())
}

/// Deletes each tier's rows older than it keeps them (events live as
/// long as the coarsest tier).
fn expire(tx: &rusqlite::Transaction, ret: &Retention, now: f64) -> Result<()> {
    let streams: Vec<String> = tx
        .prepare_cached("SELECT name FROM stream")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    // By stream, so that each delete is a range of the primary key.
    for s in &streams {
        for (step, days) in STEPS.iter().zip(ret.keep_days) {
            tx.prepare_cached("DELETE FROM summary WHERE stream = ?1 AND step = ?2 AND t < ?3")?
                .execute(params![s, step, now - days * DAY])?;
        }
        tx.prepare_cached("DELETE FROM event WHERE stream = ?1 AND t < ?2")?
            .execute(params![s, now - ret.keep_days[2] * DAY])?;
    }
    Ok(())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `<file>.unusable-<unix seconds>`: where a bad store is moved.
fn aside_name(p: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    with_suffix(p, &format!(".unusable-{secs}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stream: &str, t: f64, rms: f32) -> Row {
        Row {
            stream: stream.into(),
            step: 10,
            t,
            frames: 10,
            rms,
            peak: rms * 2.0,
            velocity: Some(rms),
            zone: Some("A".into()),
            kurtosis: Some(3.0),
            anomaly_median: Some(0.2),
            anomaly_max: Some(0.4),
            family: Some("normal".into()),
            family_probs: Some(vec![0.9, 0.1]),
            state: Some("normal".into()),
            ..Row::default()
        }
    }

    /// Rows written come back as written; the minute and hour tiers hold
    /// them rolled up; a reopened file still has them.
    #[test]
    fn rows_round_trip_and_roll_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("h.sqlite");
        let now = 1_000_000.0 * 3600.0;
        let t0 = now - 3600.0;
        let rows: Vec<Row> = (0..12)
            .map(|i| row("a", t0 + i as f64 * 10.0, 1.0 + i as f32))
            .collect();
        {
            let mut s = Store::open(&p, Retention::default()).expect("open");
            s.write(&rows[..6], &[], now).expect("write");
            s.write(&rows[6..], &[], now).expect("write");
        }
        let s = Store::open(&p, Retention::default()).expect("reopen");
        assert!(s.moved_aside.is_none());
        assert_eq!(s.rows("a", 10, 0.0, now).expect("rows"), rows);
        let minutes = s.rows("a", 60, 0.0, now).expect("minutes");
        assert_eq!(minutes.len(), 2);
        assert_eq!(minutes[0].frames, 60);
        assert_eq!(minutes[0].peak, 12.0);
        let hours = s.rows("a", 3600, 0.0, now).expect("hours");
        assert_eq!(hours.len(), 1);
        assert_eq!(hours[0].frames, 120);
        assert_eq!(hours[0].peak, 24.0);
    }

    /// Each tier forgets what is older than it keeps; the coarser tier
    /// still holds it.
    #[test]
    fn retention_rolls_up_before_it_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("h.sqlite");
        let mut s = Store::open(&p, Retention::default()).expect("open");
        let now = 2_000_000_000.0;
        let old = now - 20.0 * DAY;
        s.write(&[row("a", old, 1.0)], &[], old).expect("write");
        s.write(&[row("a", now - 10.0, 2.0)], &[], now)
            .expect("write");
        assert_eq!(s.rows("a", 10, 0.0, now + 1.0).expect("rows").len(), 1);
        assert_eq!(s.rows("a", 60, 0.0, now + 1.0).expect("rows").len(), 2);
    }

    /// A file that is not a store is moved aside and a new store made.
    #[test]
    fn a_foreign_or_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("h.sqlite");
        std::fs::write(
            &p,
            b"this is not a database, it is a shopping list\n".repeat(200),
        )
        .expect("write");
        let s = Store::open(&p, Retention::default()).expect("a new store");
        let aside = s.moved_aside.clone().expect("moved aside");
        assert!(aside.exists());
        drop(s);
        let other = dir.path().join("other.sqlite");
        let c = Connection::open(&other).expect("sqlite");
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("table");
        drop(c);
        let s = Store::open(&other, Retention::default()).expect("a new store");
        assert!(s.moved_aside.is_some(), "a foreign SQLite file is not ours");
    }
}
