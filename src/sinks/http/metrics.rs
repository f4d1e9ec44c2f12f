//! `/metrics` in the Prometheus text format (version 0.0.4), rendered from
//! the same per-stream `hub::Snapshot` as `status`, read from atomics, so a
//! scrape costs the workers nothing.
//! Names follow the Prometheus conventions (`drsnd_` prefix, `_total`
//! counters, base units); labels are bounded sets only (stream, state,
//! class, sink), never a free text such as a reason.

use super::HttpSink;
use crate::hub::{Snapshot, HISTOGRAM_BOUNDS_S};
use crate::monitor::{State, STATE_KINDS};
use axum::extract::State as Extract;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;
use std::sync::Arc;

pub async fn metrics(Extract(sink): Extract<Arc<HttpSink>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&sink),
    )
}

/// Label values are stream and class names: escaped as the format asks.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One number of a stream's counters.
type Reading = fn(&Snapshot) -> f64;

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One counter or gauge per stream.
    fn per_stream(
        &mut self,
        streams: &[Snapshot],
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&Snapshot) -> f64,
    ) {
        self.head(name, kind, help);
        for s in streams {
            let _ = writeln!(self.0, "{name}{{stream=\"{}\"}} {}", esc(&s.name), value(s));
        }
    }
}

/// The last velocity RMS of each stream that has one (a source with units).
fn velocity(o: &mut Out, streams: &[Snapshot]) {
    let name = "drsnd_velocity_rms_meters_per_second";
    let known: Vec<(&str, f32)> = streams
        .iter()
        .filter_map(|s| Some((s.name.as_str(), s.velocity_mm_s?)))
        .collect();
    if known.is_empty() {
        return;
    }
    o.head(
        name,
        "gauge",
        "velocity RMS over 10-1000 Hz (ISO 20816) of the last frame",
    );
    for (stream, v) in known {
        let _ = writeln!(
            o.0,
            "{name}{{stream=\"{}\"}} {}",
            esc(stream),
            v as f64 / 1000.0
        );
    }
}

fn render(sink: &HttpSink) -> String {
    let snapshots: Vec<Snapshot> = sink.bus.hubs.iter().map(|h| h.snapshot()).collect();
    let streams = &snapshots[..];
    let mut o = Out(String::with_capacity(4096 + streams.len() * 2048));
    let counters: [(&str, &str, Reading); 8] = [
        ("drsnd_frames_total", "frames published", |s| {
            s.frames as f64
        }),
        (
            "drsnd_captured_samples_total",
            "samples captured into the ring",
            |s| s.captured_samples as f64,
        ),
        (
            "drsnd_overrun_samples_total",
            "samples captured but never analysed (ring full, or backlog shed)",
            |s| s.overrun_samples as f64,
        ),
        (
            "drsnd_gap_samples_total",
            "samples never captured (device gone)",
            |s| s.gap_samples as f64,
        ),
        (
            "drsnd_dropped_frames_total",
            "frames made but not published",
            |s| s.dropped_frames as f64,
        ),
        (
            "drsnd_recorder_dropped_total",
            "snapshot and state-file writes dropped (the recorder's queue was full)",
            |s| s.recorder_dropped as f64,
        ),
        (
            "drsnd_nonfinite_frames_total",
            "frames with NaN or infinite samples (zeroed)",
            |s| s.nonfinite_frames as f64,
        ),
        (
            "drsnd_clipped_frames_total",
            "frames with samples at the clip level",
            |s| s.clipped_frames as f64,
        ),
    ];
    for (name, help, f) in counters {
        o.per_stream(streams, name, "counter", help, f);
    }
    o.per_stream(
        streams,
        "drsnd_latency_max_seconds",
        "gauge",
        "longest time from a frame's last sample to its message",
        |s| s.latency_ms_max / 1e3,
    );
    velocity(&mut o, streams);
    analysis_histogram(&mut o, streams);
    machine_state(&mut o, streams);
    events(&mut o, streams);
    trend(&mut o, streams);
    if let Some(h) = &sink.history {
        history(&mut o, &h.stats.status());
    }
    notify(&mut o, &sink.alarms);
    o.head("drsnd_clients", "gauge", "subscribers connected, per sink");
    for (name, n) in sink.bus.clients() {
        let _ = writeln!(o.0, "drsnd_clients{{sink=\"{name}\"}} {n}");
    }
    if let Some(m) = sink.bus.hello.lock().ok().map(|h| h.model.clone()) {
        o.head("drsnd_model_info", "gauge", "the model in use");
        let _ = writeln!(
            o.0,
            "drsnd_model_info{{name=\"{}\",version=\"{}\",sha256=\"{}\"}} 1",
            esc(&m.name),
            esc(&m.version),
            esc(&m.sha256)
        );
    }
    o.head(
        "drsnd_uptime_seconds",
        "gauge",
        "seconds since the HTTP sink started",
    );
    let _ = writeln!(
        o.0,
        "drsnd_uptime_seconds {:.3}",
        sink.started.elapsed().as_secs_f64()
    );
    o.0
}

/// Each judged stream's trend: degrading or not, and the time to the
/// anomaly alarm at its current growth (absent when not growing).
fn trend(o: &mut Out, streams: &[Snapshot]) {
    let judged: Vec<(&str, crate::monitor::TrendStatus)> = streams
        .iter()
        .filter_map(|s| Some((s.name.as_str(), s.trend?)))
        .collect();
    if judged.is_empty() {
        return;
    }
    let name = "drsnd_trend_degrading";
    o.head(
        name,
        "gauge",
        "1 while the stream's anomaly score rises steadily above its normal",
    );
    for (s, t) in &judged {
        let _ = writeln!(
            o.0,
            "{name}{{stream=\"{}\"}} {}",
            esc(s),
            u8::from(t.degrading)
        );
    }
    let name = "drsnd_trend_eta_seconds";
    o.head(
        name,
        "gauge",
        "time until the anomaly score reaches the alarm at its current growth",
    );
    for (s, t) in &judged {
        if let Some(h) = t.evidence.eta_h {
            let _ = writeln!(o.0, "{name}{{stream=\"{}\"}} {}", esc(s), h * 3600.0);
        }
    }
}

/// Each `[[notify]]` target's counters.
fn notify(o: &mut Out, targets: &[Arc<crate::sinks::notify::Stats>]) {
    if targets.is_empty() {
        return;
    }
    let all: Vec<_> = targets.iter().map(|t| t.status()).collect();
    type Get = fn(&crate::protocol::NotifyStatus) -> u64;
    let counters: [(&str, &str, Get); 5] = [
        ("drsnd_notify_sent_total", "notifications delivered", |s| {
            s.sent
        }),
        (
            "drsnd_notify_failed_total",
            "notifications given up on after every retry",
            |s| s.failed,
        ),
        (
            "drsnd_notify_retries_total",
            "failed attempts tried again",
            |s| s.retries,
        ),
        (
            "drsnd_notify_suppressed_total",
            "notifications held back by the per-stream, per-kind interval",
            |s| s.suppressed,
        ),
        (
            "drsnd_notify_dropped_total",
            "notifications dropped: the target's queue was full",
            |s| s.dropped,
        ),
    ];
    for (name, help, get) in counters {
        o.head(name, "counter", help);
        for s in &all {
            let _ = writeln!(o.0, "{name}{{target=\"{}\"}} {}", esc(&s.name), get(s));
        }
    }
}

/// The history store's counters.
fn history(o: &mut Out, h: &crate::protocol::HistoryStatus) {
    let counters = [
        (
            "drsnd_history_rows_written_total",
            "10 s summary rows written",
            h.rows_written,
        ),
        (
            "drsnd_history_events_written_total",
            "events written",
            h.events_written,
        ),
        (
            "drsnd_history_lost_total",
            "rows and events never stored (queue or backlog full)",
            h.lost,
        ),
        (
            "drsnd_history_frames_missed_total",
            "frames the history sink never saw (it fell behind the bus)",
            h.frames_missed,
        ),
        (
            "drsnd_history_write_errors_total",
            "failed writes (a full disk, I/O)",
            h.write_errors,
        ),
    ];
    for (name, help, v) in counters {
        o.head(name, "counter", help);
        let _ = writeln!(o.0, "{name} {v}");
    }
    o.head(
        "drsnd_history_pending",
        "gauge",
        "rows and events waiting for the next write",
    );
    let _ = writeln!(o.0, "drsnd_history_pending {}", h.pending);
    o.head(
        "drsnd_history_bytes",
        "gauge",
        "size of the history store file",
    );
    let _ = writeln!(o.0, "drsnd_history_bytes {}", h.bytes);
}

fn analysis_histogram(o: &mut Out, streams: &[Snapshot]) {
    let name = "drsnd_analysis_duration_seconds";
    o.head(
        name,
        "histogram",
        "time the analyses took per frame (model and the rest)",
    );
    for s in streams {
        let h = &s.analysis_time;
        let (count, sum) = (h.count, h.sum_s);
        let st = esc(&s.name);
        for (b, c) in HISTOGRAM_BOUNDS_S.iter().zip(&h.cumulative) {
            let _ = writeln!(o.0, "{name}_bucket{{stream=\"{st}\",le=\"{b}\"}} {c}");
        }
        let _ = writeln!(o.0, "{name}_bucket{{stream=\"{st}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(o.0, "{name}_sum{{stream=\"{st}\"}} {sum}");
        let _ = writeln!(o.0, "{name}_count{{stream=\"{st}\"}} {count}");
    }
}

fn machine_state(o: &mut Out, streams: &[Snapshot]) {
    let name = "drsnd_machine_state";
    o.head(
        name,
        "gauge",
        "1 for the state each machine is in, 0 for the others",
    );
    for s in streams {
        for (i, kind) in STATE_KINDS.iter().enumerate() {
            let v = u8::from(s.machine.kind_index() == i);
            let _ = writeln!(
                o.0,
                "{name}{{stream=\"{}\",state=\"{kind}\"}} {v}",
                esc(&s.name)
            );
        }
    }
    let name = "drsnd_machine_fault_class";
    o.head(name, "gauge", "1 with the class of a machine in fault");
    for s in streams {
        if let State::Fault { class } = &s.machine {
            let _ = writeln!(
                o.0,
                "{name}{{stream=\"{}\",class=\"{}\"}} 1",
                esc(&s.name),
                esc(class)
            );
        }
    }
}

fn events(o: &mut Out, streams: &[Snapshot]) {
    let name = "drsnd_events_total";
    o.head(
        name,
        "counter",
        "machine state changes, by the state entered",
    );
    for s in streams {
        for (kind, n) in STATE_KINDS.iter().zip(&s.events) {
            let _ = writeln!(
                o.0,
                "{name}{{stream=\"{}\",state=\"{kind}\"}} {}",
                esc(&s.name),
                n
            );
        }
    }
}
