//! A year of history for 16 streams through the real store (issue 35,
//! acceptance 3): 10 s rows of every stream written as the daemon writes
//! them, rolled up and expired as the default `[history]` says, on a
//! simulated clock. Reports the file's size against the cap, the cost of
//! one live flush (a minute of 16 streams: 96 rows) in the last month, and
//! the two queries the page makes most: a year at 1 h steps and a day at
//! 10 s steps.
//!
//! To fill a year quickly, the first eleven months are written an hour per
//! transaction (the same rows, roll-up and retention; fewer commits);
//! the last month one minute per transaction, as live, and timed.
//!
//!   cargo run --release --example history_year -- [--days 365] [--streams 16] [--out FILE]

use anyhow::{Context, Result};
use drsnd::history::{self, Retention, Row, Store};
use std::time::Instant;

fn row(stream: &str, t: f64, i: u64) -> Row {
    // Plausible, varying figures: identical rows would compress unfairly.
    let w = ((i.wrapping_mul(2_654_435_761)) % 1000) as f32 / 1000.0;
    Row {
        stream: stream.into(),
        step: 10,
        t,
        frames: 234,
        rms: 0.1 + 0.02 * w,
        peak: 0.5 + 0.3 * w,
        velocity: Some(1.2 + 0.3 * w),
        zone: Some("A".into()),
        crest: Some(4.0 + w),
        kurtosis: Some(3.0 + w),
        anomaly_median: Some(0.2 + 0.1 * w),
        anomaly_max: Some(0.4 + 0.2 * w),
        bpfo: Some(3.0 + w),
        bpfi: Some(2.5 + w),
        bsf: Some(2.0 + w),
        envelope_family: Some("none".into()),
        speed_rpm: Some(1796.0 + w),
        family: Some("normal".into()),
        family_probs: Some(vec![0.9 - 0.1 * w, 0.02, 0.05, 0.03 + 0.1 * w]),
        snr_db: None,
        state: Some("healthy".into()),
    }
}

struct Opts {
    days: u64,
    streams: usize,
    out: std::path::PathBuf,
}

fn opts() -> Result<Opts> {
    let mut o = Opts {
        days: 365,
        streams: 16,
        out: std::env::temp_dir().join(format!("drsnd-year-{}.sqlite", std::process::id())),
    };
    let mut a = std::env::args().skip(1);
    while let Some(k) = a.next() {
        let v = a.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--days" => o.days = v.parse().context("--days")?,
            "--streams" => o.streams = v.parse().context("--streams")?,
            "--out" => o.out = v.into(),
            _ => anyhow::bail!("unknown option {k}"),
        }
    }
    Ok(o)
}

fn main() -> Result<()> {
    let o = opts()?;
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", o.out.display()));
    }
    let retention = Retention::default();
    let mut store = Store::open(&o.out, retention)?;
    let names: Vec<String> = (0..o.streams).map(|i| format!("s{i}")).collect();
    let start = 1_699_999_200.0; // a whole hour, Unix seconds
    let end = start + o.days as f64 * 86_400.0;
    let live_days = (o.days as f64 / 2.0).min(30.0);
    let live_from = end - live_days * 86_400.0;
    let t0 = Instant::now();
    let (mut t, mut i, mut flush_ms) = (start, 0u64, Vec::new());
    while t < end {
        let live = t >= live_from;
        let span = if live { 60.0 } else { 3600.0 };
        let mut rows = Vec::with_capacity((span / 10.0) as usize * names.len());
        let mut k = t;
        while k < t + span {
            for n in &names {
                rows.push(row(n, k, i));
                i += 1;
            }
            k += 10.0;
        }
        let w = Instant::now();
        store.write(&rows, &[], t + span)?;
        if live {
            flush_ms.push(w.elapsed().as_secs_f64() * 1e3);
        }
        t += span;
    }
    let fill_s = t0.elapsed().as_secs_f64();
    flush_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| flush_ms[((flush_ms.len() - 1) as f64 * p) as usize];
    let flush_mean = flush_ms.iter().sum::<f64>() / flush_ms.len().max(1) as f64;
    let file = std::fs::metadata(&o.out)?.len();
    let used = store.used_bytes()?;
    drop(store);
    let reader = Store::open_read(&o.out)?;
    let time = |f: &dyn Fn() -> Result<usize>| -> Result<(f64, usize)> {
        let w = Instant::now();
        let n = f()?;
        Ok((w.elapsed().as_secs_f64() * 1e3, n))
    };
    let year = time(&|| Ok(history::query(&reader, "s0", start, end, 3600)?.len()))?;
    let day = time(&|| Ok(history::query(&reader, "s0", end - 86_400.0, end, 10)?.len()))?;
    let tiers: Vec<(u32, usize)> = history::STEPS
        .iter()
        .map(|&s| Ok((s, reader.rows("s0", s, start, end)?.len())))
        .collect::<Result<_>>()?;
    // One flush a minute: its mean cost over a minute, per stream.
    let core_pct_per_stream = flush_mean / 60_000.0 * 100.0 / o.streams as f64;
    let out = serde_json::json!({
        "days": o.days,
        "streams": o.streams,
        "fill_seconds": fill_s,
        "file_bytes": file,
        "used_bytes": used,
        "cap_bytes": retention.max_bytes,
        "rows_of_one_stream_per_tier": tiers,
        "live_flush_ms": {"mean": flush_mean, "p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0), "n": flush_ms.len()},
        "flush_cost_percent_of_a_core_per_stream": core_pct_per_stream,
        "query_year_1h_ms": year.0, "query_year_1h_rows": year.1,
        "query_day_10s_ms": day.0, "query_day_10s_rows": day.1,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    drop(reader);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", o.out.display()));
    }
    Ok(())
}
