//! `drsnd history import | export`: recordings into the history store
//! through the daemon's own pipeline (`offline`), and the store out as
//! JSON lines or CSV, as `/api/history` answers.

use super::classify::Unusable;
use super::offline::{FileError, Offline};
use super::{EX_CONFIG, EX_DATAERR, EX_USAGE};
use crate::config::Config;
use crate::history::{self, time, Digest, EventRow, Retention, Row, Store, Summariser};
use crate::protocol::{EventMsg, Message};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct HistoryArgs {
    #[command(subcommand)]
    cmd: HistoryCmd,
}

#[derive(Subcommand)]
enum HistoryCmd {
    /// Run recordings through a stream's pipeline and store their summaries.
    Import(ImportArgs),
    /// Print a stream's rows (JSON lines, or CSV).
    Export(ExportArgs),
}

#[derive(Args)]
struct StoreArgs {
    /// The daemon's config: the stream's settings and `[history]`.
    #[arg(long, default_value = "/etc/drsn/drsnd.toml")]
    config: PathBuf,
    /// The store file (default: the config's `[history]` one).
    #[arg(long)]
    store: Option<PathBuf>,
    /// The stream, as the config names it.
    #[arg(long)]
    stream: String,
}

#[derive(Args)]
struct ImportArgs {
    /// WAV recordings, in time order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    at: StoreArgs,
    /// When the first file's first sample was taken (Unix seconds or
    /// RFC 3339); each further file follows on from the one before.
    #[arg(long, required_unless_present = "times", conflicts_with = "times")]
    start: Option<String>,
    /// A CSV that maps sample positions to times: `first_sample` and
    /// `time_of_day_s` (or `time`, Unix seconds) per snapshot, as the
    /// FEMTO `*.snapshots.csv`. One file only.
    #[arg(long)]
    times: Option<PathBuf>,
    /// With `time_of_day_s`: the first snapshot's day (default: today, UTC).
    #[arg(long, requires = "times")]
    day: Option<String>,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    at: StoreArgs,
    /// From (Unix seconds or RFC 3339; default: the first row).
    #[arg(long)]
    from: Option<String>,
    /// To (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Seconds per row (default: the finest tier that gives at most 4000 rows).
    #[arg(long)]
    step: Option<u32>,
    /// CSV with a header instead of JSON lines.
    #[arg(long)]
    csv: bool,
}

pub fn history(a: &HistoryArgs) -> ExitCode {
    let (r, what) = match &a.cmd {
        HistoryCmd::Import(i) => (import(i), "import"),
        HistoryCmd::Export(e) => (export(e), "export"),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drsnd history {what}: {:#}", e.error);
            ExitCode::from(e.code)
        }
    }
}

struct Failure {
    error: anyhow::Error,
    code: u8,
}

fn fail(code: u8) -> impl Fn(anyhow::Error) -> Failure {
    move |error| Failure { error, code }
}

/// The config, and the store it (or `--store`) names.
fn open(a: &StoreArgs) -> Result<(Config, PathBuf), Failure> {
    let cfg = Config::load(&a.config).map_err(|e| fail(EX_CONFIG)(anyhow::anyhow!(e)))?;
    let path = a.store.clone().or_else(|| cfg.history_path());
    let path = path.ok_or_else(|| {
        fail(EX_USAGE)(anyhow::anyhow!(
            "{}: no [history] table: give --store",
            a.config.display()
        ))
    })?;
    Ok((cfg, path))
}

fn retention(cfg: &Config) -> Retention {
    cfg.history
        .as_ref()
        .map_or_else(Retention::default, Retention::from)
}

fn import(a: &ImportArgs) -> Result<(), Failure> {
    let (cfg, path) = open(&a.at)?;
    let timeline = match (&a.start, &a.times) {
        (Some(s), _) => {
            let t = time::parse(s).map_err(|e| fail(EX_USAGE)(anyhow::anyhow!("--start: {e}")))?;
            Timeline::Start { first: t, now: t }
        }
        (None, Some(csv)) => {
            if a.files.len() != 1 {
                return Err(fail(EX_USAGE)(anyhow::anyhow!(
                    "--times maps the positions of one file: give one"
                )));
            }
            let day = match &a.day {
                Some(d) => {
                    time::parse(d).map_err(|e| fail(EX_USAGE)(anyhow::anyhow!("--day: {e}")))?
                }
                None => (time::now() / 86_400.0).floor() * 86_400.0,
            };
            Timeline::snapshots(csv, day).map_err(fail(EX_DATAERR))?
        }
        (None, None) => unreachable!("clap requires --start or --times"),
    };
    let offline = Offline::from_config(&cfg, &a.at.stream)
        .map_err(|e| fail(EX_CONFIG)(anyhow::anyhow!(e)))?;
    let mut store = Store::open(&path, retention(&cfg)).map_err(fail(EX_CONFIG))?;
    let (rows, events) = summarise(&offline, &a.files, timeline, &a.at.stream)?;
    store.write(&rows, &events, time::now()).map_err(fail(1))?;
    let every = cfg.history.as_ref().map_or(300.0, |h| h.trend_interval_s);
    let trend =
        trend_events(&store, &a.at.stream, rows.first().map(|r| r.t), every).map_err(fail(1))?;
    store.write(&[], &trend, time::now()).map_err(fail(1))?;
    for e in &trend {
        println!("{}", e.line);
    }
    let span = match (rows.first(), rows.last()) {
        (Some(f), Some(l)) => format!(" from {} to {}", time::rfc3339(f.t), time::rfc3339(l.t)),
        _ => String::new(),
    };
    eprintln!(
        "drsnd history import: {}: {} rows and {} events{span} into {}",
        a.at.stream,
        rows.len(),
        events.len() + trend.len(),
        path.display()
    );
    Ok(())
}

/// The rows and events of `files` run through the stream's pipeline one
/// after another.
fn summarise(
    offline: &Offline,
    files: &[PathBuf],
    mut timeline: Timeline,
    stream: &str,
) -> Result<(Vec<Row>, Vec<EventRow>), Failure> {
    let m = &offline.shared.classifier.manifest;
    let (model_rate, frame_len) = (m.sample_rate as f64, m.frame_length as u64);
    let families = m.labels().families;
    let mut sum = Summariser::new(stream, families, None);
    let (mut rows, mut events) = (Vec::new(), Vec::new());
    for path in files {
        let rate = wav_rate(path).map_err(fail(EX_DATAERR))?;
        // Stream seconds to the timeline's (key, wall) seconds.
        let at = |stream_s: f64| timeline.at(stream_s * rate, rate);
        let r = offline.run_file(path, |msg| {
            match msg {
                Message::Frame(f) => {
                    let end = (f.sample_index + frame_len) as f64 / model_rate;
                    let line = crate::sinks::to_line(&Message::Frame(f));
                    if let Some(d) = Digest::parse(&line) {
                        let (key, wall) = at(end);
                        rows.extend(sum.push(&d, key, wall));
                    }
                }
                Message::Event(e) => {
                    if let Some(s) = e.to.machine() {
                        sum.set_state(s.name());
                    }
                    events.push(event_row(e, &at));
                }
                _ => {}
            }
            Ok(())
        });
        match r {
            Ok(()) => {}
            Err(FileError::Unusable(Unusable::Unreadable(e))) => {
                return Err(fail(EX_DATAERR)(e.context(path.display().to_string())))
            }
            Err(FileError::Unusable(Unusable::NoFrames(why))) => {
                return Err(fail(EX_DATAERR)(anyhow::anyhow!(why)))
            }
            Err(FileError::Failed(e)) => {
                return Err(fail(1)(e.context(path.display().to_string())))
            }
        }
        let len = wav_len(path).map_err(fail(EX_DATAERR))?;
        timeline.next_file(len as f64 / rate);
    }
    rows.extend(sum.close());
    Ok((rows, events))
}

/// The trend events of the stream's rows from `since` on, judged every
/// `every` seconds over all its stored rows as the live daemon would have.
fn trend_events(
    store: &Store,
    stream: &str,
    since: Option<f64>,
    every: f64,
) -> Result<Vec<EventRow>> {
    let Some(since) = since else {
        return Ok(Vec::new());
    };
    let rows = store.rows(stream, history::STEPS[0], f64::MIN, f64::MAX)?;
    let first = rows.first().map_or(since, |r| r.t);
    let events = history::trend::replay(&rows, every)
        .into_iter()
        .filter(|a| a.at >= since)
        .map(|a| {
            let e = EventMsg::trend(
                stream.to_string(),
                a.degrading,
                a.evidence,
                a.at,
                a.at - first,
            );
            EventRow::from_event(&e)
        })
        .collect();
    Ok(events)
}

/// An event of the offline run, its times put on the timeline.
fn event_row(mut e: EventMsg, at: &impl Fn(f64) -> (f64, f64)) -> EventRow {
    let since_s = e.since;
    e.time = at(e.stream_time_s).1;
    e.since = at(since_s).1;
    EventRow::from_event(&e)
}

fn wav_rate(p: &Path) -> Result<f64> {
    let r = hound::WavReader::open(p).with_context(|| format!("{}", p.display()))?;
    Ok(r.spec().sample_rate as f64)
}

fn wav_len(p: &Path) -> Result<u64> {
    let r = hound::WavReader::open(p).with_context(|| format!("{}", p.display()))?;
    Ok(r.duration() as u64)
}

/// Where a recording's samples were in time.
enum Timeline {
    /// Continuous from `first` (Unix seconds); the current file starts at `now`.
    Start { first: f64, now: f64 },
    /// Snapshots: each one's first sample and its Unix time.
    Snapshots { first: Vec<f64>, t: Vec<f64> },
}

impl Timeline {
    /// Reads a snapshots CSV (`first_sample` with `time` in Unix seconds,
    /// or `time_of_day_s` on `day`, wrapping past midnight).
    fn snapshots(csv: &Path, day: f64) -> Result<Self> {
        let text = std::fs::read_to_string(csv).with_context(|| format!("{}", csv.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let first_col = col("first_sample")
            .with_context(|| format!("{}: no `first_sample` column", csv.display()))?;
        let (time_col, of_day) = match (col("time"), col("time_of_day_s")) {
            (Some(c), _) => (c, false),
            (None, Some(c)) => (c, true),
            _ => bail!("{}: no `time` or `time_of_day_s` column", csv.display()),
        };
        let (mut first, mut t) = (Vec::new(), Vec::new());
        let mut wraps = 0.0;
        for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let num = |c: usize| -> Result<f64> {
                cells
                    .get(c)
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite())
                    .with_context(|| {
                        format!(
                            "{} line {}: {:?} is not a number",
                            csv.display(),
                            n + 2,
                            cells.get(c).unwrap_or(&"")
                        )
                    })
            };
            let (f, mut v) = (num(first_col)?, num(time_col)?);
            if of_day {
                if t.last()
                    .is_some_and(|&p: &f64| v + day + wraps < p - 43_200.0)
                {
                    wraps += 86_400.0;
                }
                v += day + wraps;
            }
            if first.last().is_some_and(|&p| f <= p) {
                bail!(
                    "{} line {}: first_sample {f} does not rise",
                    csv.display(),
                    n + 2
                );
            }
            first.push(f);
            t.push(v);
        }
        if first.is_empty() {
            bail!("{}: no rows", csv.display());
        }
        Ok(Timeline::Snapshots { first, t })
    }

    /// (key, wall) seconds of the sample at `pos` (samples at `rate`)
    /// of the current file: rows are cut on the key. Continuous time keys
    /// on stream seconds, as the live daemon does; snapshots on their times.
    fn at(&self, pos: f64, rate: f64) -> (f64, f64) {
        match self {
            Timeline::Start { first, now } => {
                let wall = now + pos / rate;
                (wall - first, wall)
            }
            Timeline::Snapshots { first, t } => {
                let k = first.partition_point(|&f| f <= pos).saturating_sub(1);
                let wall = t[k] + (pos - first[k]) / rate;
                (wall, wall)
            }
        }
    }

    fn next_file(&mut self, seconds: f64) {
        if let Timeline::Start { now, .. } = self {
            *now += seconds;
        }
    }
}

fn export(a: &ExportArgs) -> Result<(), Failure> {
    let (_, path) = open(&a.at)?;
    if !path.exists() {
        return Err(fail(EX_DATAERR)(anyhow::anyhow!(
            "{}: no such store",
            path.display()
        )));
    }
    let store = Store::open_read(&path).map_err(fail(EX_DATAERR))?;
    let parse = |s: &Option<String>, default: f64, what: &str| match s {
        Some(s) => time::parse(s).map_err(|e| fail(EX_USAGE)(anyhow::anyhow!("--{what}: {e}"))),
        None => Ok(default),
    };
    let from = parse(&a.from, f64::MIN, "from")?;
    let to = parse(&a.to, time::now() + 1.0, "to")?;
    let first = store.rows(&a.at.stream, 3600, from, to).map_err(fail(1))?;
    let from = from.max(first.first().map_or(from, |r| r.t));
    let step = history::choose_step(from, to, a.step);
    let rows = history::query(&store, &a.at.stream, from, to, step).map_err(fail(1))?;
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let w = |out: &mut std::io::BufWriter<_>, s: String| {
        writeln!(out, "{s}").map_err(|e| fail(1)(e.into()))
    };
    if a.csv {
        w(&mut out, history::CSV_HEADER.to_string())?;
    }
    for r in &rows {
        let line = if a.csv {
            history::csv_line(r)
        } else {
            serde_json::to_string(r).map_err(|e| fail(1)(e.into()))?
        };
        w(&mut out, line)?;
    }
    out.flush().map_err(|e| fail(1)(e.into()))
}
