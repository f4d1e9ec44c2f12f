//! History on the box: every stream's frames summed up every 10 s of
//! stream time ([`summary`]), kept in an SQLite file in three tiers
//! ([`store`]), read back at any step ([`query`]), and watched for a
//! machine that is getting worse ([`trend`]). The live sink
//! (`sinks::history`) and `drsnd history import` share all of it.

pub mod store;
pub mod summary;
pub mod time;
pub mod trend;

pub use store::{EventRow, Retention, Store, STEPS};
pub use summary::{Digest, Row, Summariser, STEP};

use anyhow::Result;

/// Most rows a query returns when it chooses its own step.
pub const MAX_POINTS: f64 = 4000.0;

/// The step a query of `from..to` is answered at: the one asked for
/// (at least 10 s), or the finest tier that gives at most [`MAX_POINTS`].
pub fn choose_step(from: f64, to: f64, asked: Option<u32>) -> u32 {
    match asked {
        Some(s) => s.max(STEPS[0]),
        None => {
            let span = (to - from).max(0.0);
            STEPS
                .iter()
                .copied()
                .find(|&s| span / s as f64 <= MAX_POINTS)
                .unwrap_or(STEPS[STEPS.len() - 1])
        }
    }
}

/// One stream's rows of `from..to` at `step` seconds: the coarsest tier
/// at or below `step`, rolled up further when `step` is coarser than it.
/// `/api/history` and `drsnd history export` both answer with this.
pub fn query(store: &Store, stream: &str, from: f64, to: f64, step: u32) -> Result<Vec<Row>> {
    let tier = STEPS
        .iter()
        .copied()
        .filter(|&s| s <= step)
        .max()
        .unwrap_or(STEPS[0]);
    let rows = store.rows(stream, tier, from, to)?;
    if tier == step {
        return Ok(rows);
    }
    let mut out = Vec::new();
    let mut group: Vec<Row> = Vec::new();
    let period = |t: f64| (t / step as f64).floor() * step as f64;
    for r in rows {
        if group.first().is_some_and(|g| period(g.t) != period(r.t)) {
            out.extend(Row::roll_up(&group, step, period(group[0].t)));
            group.clear();
        }
        group.push(r);
    }
    if let Some(g) = group.first() {
        out.extend(Row::roll_up(&group, step, period(g.t)));
    }
    Ok(out)
}

/// The CSV header of [`csv_line`].
pub const CSV_HEADER: &str = "time,t,step,frames,rms,peak,velocity_mm_s,iso_zone,crest,kurtosis,\
anomaly_median,anomaly_max,bpfo_db,bpfi_db,bsf_db,envelope_family,speed_rpm,family,snr_db,state";

/// A row as one CSV line (no newline): the time in RFC 3339 and in Unix seconds.
pub fn csv_line(r: &Row) -> String {
    fn n(v: Option<f32>) -> String {
        v.map(|v| v.to_string()).unwrap_or_default()
    }
    fn s(v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }
    [
        time::rfc3339(r.t),
        r.t.to_string(),
        r.step.to_string(),
        r.frames.to_string(),
        r.rms.to_string(),
        r.peak.to_string(),
        n(r.velocity),
        s(&r.zone),
        n(r.crest),
        n(r.kurtosis),
        n(r.anomaly_median),
        n(r.anomaly_max),
        n(r.bpfo),
        n(r.bpfi),
        n(r.bsf),
        s(&r.envelope_family),
        n(r.speed_rpm),
        s(&r.family),
        n(r.snr_db),
        s(&r.state),
    ]
    .join(",")
}
