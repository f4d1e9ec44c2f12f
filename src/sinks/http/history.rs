//! `/api/history?stream=S[&from=T][&to=T][&step=N][&format=csv]`: a
//! stream's rows and events from the history store, answered by the same
//! `history::query` as `drsnd history export`. Times are Unix seconds or
//! RFC 3339; without `from` the last day, without `step` the finest tier
//! that gives at most 4000 rows. The store is read on a blocking thread
//! through a read-only handle (WAL: the writer goes on).

use super::HttpSink;
use crate::history::{self, time, EventRow, Row, Store};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct Params {
    stream: String,
    from: Option<String>,
    to: Option<String>,
    step: Option<u32>,
    format: Option<String>,
}

#[derive(Serialize)]
struct Answer {
    stream: String,
    from: f64,
    to: f64,
    step: u32,
    rows: Vec<Row>,
    events: Vec<Event>,
    /// The velocity limits of ISO zones A/B, B/C and C/D (mm/s).
    iso_zones: [f64; 3],
}

/// An event as the page marks it: its time, kind and change, and its
/// line (the evidence, and the snapshot to click to).
#[derive(Serialize)]
struct Event {
    t: f64,
    kind: String,
    from: String,
    to: String,
    snapshot: Option<String>,
    event: serde_json::Value,
}

impl From<EventRow> for Event {
    fn from(e: EventRow) -> Self {
        Self {
            t: e.t,
            kind: e.kind,
            from: e.from,
            to: e.to,
            snapshot: e.snapshot,
            event: serde_json::from_str(&e.line).unwrap_or(serde_json::Value::Null),
        }
    }
}

fn bad(status: StatusCode, why: String) -> Response {
    (status, format!("{why}\n")).into_response()
}

pub async fn history(State(sink): State<Arc<HttpSink>>, Query(p): Query<Params>) -> Response {
    let Some(access) = sink.history.clone() else {
        return bad(
            StatusCode::NOT_FOUND,
            "no history: the daemon has no [history] table".into(),
        );
    };
    let now = time::now();
    let to = match p.to.as_deref().map(time::parse).transpose() {
        Ok(t) => t.unwrap_or(now),
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("to: {e}")),
    };
    let from = match p.from.as_deref().map(time::parse).transpose() {
        Ok(f) => f.unwrap_or(to - 86_400.0),
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("from: {e}")),
    };
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return bad(
                StatusCode::BAD_REQUEST,
                format!("format: {other:?}: json or csv"),
            )
        }
    };
    let step = history::choose_step(from, to, p.step);
    let stream = p.stream;
    let zones = access.iso_zones;
    let path = access.path;
    let answer =
        tokio::task::spawn_blocking(move || read(path, stream, from, to, step, zones)).await;
    match answer {
        Ok(Ok(a)) if csv => {
            let mut body = String::from(history::CSV_HEADER);
            body.push('\n');
            for r in &a.rows {
                body.push_str(&history::csv_line(r));
                body.push('\n');
            }
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
        }
        Ok(Ok(a)) => match serde_json::to_string(&a) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Ok(Err(e)) => bad(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn read(
    path: PathBuf,
    stream: String,
    from: f64,
    to: f64,
    step: u32,
    iso_zones: [f64; 3],
) -> anyhow::Result<Answer> {
    let store = Store::open_read(&path)?;
    let rows = history::query(&store, &stream, from, to, step)?;
    let events = store.events(&stream, from, to)?;
    Ok(Answer {
        stream,
        from,
        to,
        step,
        rows,
        events: events.into_iter().map(Event::from).collect(),
        iso_zones,
    })
}
