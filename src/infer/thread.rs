//! The inference thread of one stream: a plain std thread (not tokio) that
//! drains the ring, assembles frames, runs the model (as one batch when it
//! has fallen behind) and hands results to the publisher.

use super::{Model, Prediction};
use crate::frame::{Assembler, Frame};
use crate::monitor::{self, Monitor};
use crate::protocol::{EventMsg, FrameMsg, Message};
use crate::publish::Outbox;
use crate::ring::{now_ns, RingReader, Segment};
use crate::stats::StreamStats;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// How long the thread sleeps when nothing arrives (it is woken on data).
const IDLE: Duration = Duration::from_millis(100);

pub struct StreamWorker {
    pub reader: RingReader,
    pub assembler: Assembler,
    pub model: Model,
    pub stats: Arc<StreamStats>,
    pub tx: Outbox,
    pub monitor: Monitor,
    pub snapshots: crate::snapshot::Snapshots,
    /// Saves the machine state on transitions, for a restart.
    pub state: monitor::StateSaver,
    pub model_rate: u32,
    /// When the thread started, ns since the epoch (the idle clock's origin).
    pub started_ns: u64,
    pub stop: Arc<AtomicBool>,
    /// Test-only fault switch ($DRSN_TEST_STALL_FILE): while that file
    /// exists the thread stalls without a heartbeat, as a wedged one would.
    pub stall: Option<std::path::PathBuf>,
    /// A reloaded model, taken between frames.
    pub swap: crossbeam_channel::Receiver<Model>,
    /// The source's account of itself, for no-signal reasons.
    pub source: Arc<crate::source::SourceStatus>,
    /// Live sources: unread samples beyond this are skipped (load shedding).
    pub max_lag: Option<usize>,
    /// Samples shed since the last warning, and when that was (ns): under
    /// sustained overload the log gets one line per SHED_LOG_EVERY, not one per pass.
    pub shed_log: (u64, u64),
    /// Limits the log lines of machine state changes (see `ChangeLog`).
    pub change_log: ChangeLog,
}

const SHED_LOG_EVERY: Duration = Duration::from_secs(10);

/// A machine on the edge between two states can change state every second
/// for hours. Every change still goes out on the socket as an event; the log
/// gets the first `CHANGE_LOG_BURST` changes of each `CHANGE_LOG_WINDOW`,
/// then one line saying how many it left out.
const CHANGE_LOG_BURST: u32 = 10;
const CHANGE_LOG_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct ChangeLog {
    window_start_ns: u64,
    logged: u32,
    left_out: u64,
}

impl ChangeLog {
    /// Starts a new window once the current one is over; returns how many
    /// changes the finished window left out of the log.
    fn roll(&mut self, now_ns: u64) -> u64 {
        if now_ns.saturating_sub(self.window_start_ns) < CHANGE_LOG_WINDOW.as_nanos() as u64 {
            return 0;
        }
        (self.window_start_ns, self.logged) = (now_ns, 0);
        std::mem::take(&mut self.left_out)
    }

    /// Changes left out of the log so far, for the last word at stream end.
    fn take_left_out(&mut self) -> u64 {
        std::mem::take(&mut self.left_out)
    }

    /// Whether a change may be logged; one that may not is counted.
    fn admit(&mut self) -> bool {
        if self.logged < CHANGE_LOG_BURST {
            self.logged += 1;
            true
        } else {
            self.left_out += 1;
            false
        }
    }
}

impl StreamWorker {
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let name = format!("infer-{}", self.stats.name);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let rate = self.stats.source_rate as f64;
        let mut classes = self.model.manifest.class_ids();
        let mut pending: Vec<Frame> = Vec::with_capacity(64);
        let mut preds: Vec<Prediction> = Vec::with_capacity(64);
        let mut seq = 0u64;
        self.started_ns = now_ns();
        self.stats.set_state("running");
        loop {
            while self.stall.as_ref().is_some_and(|p| p.exists()) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let now = now_ns();
            self.stats.heartbeat_ns.store(now, Relaxed);
            self.log_left_out(now);
            self.state.save_if_due(now);
            if let Ok(model) = self.swap.try_recv() {
                self.model = model;
                classes = self.model.manifest.class_ids();
                self.monitor.set_classes(classes.clone());
            }
            self.shed_backlog();
            let stopping = self.stop.load(Relaxed);
            let finished = self.reader.finished();
            let assembler = &mut self.assembler;
            let snapshots = &mut self.snapshots;
            let mut failed = None;
            // At most a second of samples per pass: frames (and snapshots) keep up.
            let max = self.stats.source_rate as usize;
            let drained = self.reader.drain(rate, max, |seg| match seg {
                Segment::Samples(x, t) => {
                    snapshots.samples(x);
                    if let Err(e) = assembler.push(x, t, &mut pending) {
                        failed = Some(e);
                    }
                }
                Segment::Gap(n) => {
                    snapshots.gap(n);
                    assembler.gap(n);
                }
            });
            if let Some(e) = failed {
                tracing::error!(stream = %self.stats.name, "frame assembly failed: {e:#}");
            }
            if !pending.is_empty() {
                self.infer(&mut pending, &mut preds, &classes, &mut seq);
                continue;
            }
            if drained >= max {
                continue; // more is waiting in the ring
            }
            if finished || stopping {
                break;
            }
            self.check_idle();
            std::thread::park_timeout(IDLE);
        }
        let left_out = self.change_log.take_left_out();
        self.report_left_out(left_out);
        self.state.save_now(now_ns());
        if self.reader.finished() {
            tracing::info!(stream = %self.stats.name, frames = seq, "stream ended");
        }
    }

    fn infer(
        &mut self,
        pending: &mut Vec<Frame>,
        preds: &mut Vec<Prediction>,
        classes: &[String],
        seq: &mut u64,
    ) {
        let max = self.model.max_batch();
        for batch in pending.chunks(max) {
            preds.clear();
            let frames: Vec<&[f32]> = batch.iter().map(|f| f.samples.as_slice()).collect();
            if let Err(e) = self.model.predict(&frames, preds) {
                tracing::error!(stream = %self.stats.name, "inference failed: {e:#}");
                self.stats
                    .dropped_frames
                    .fetch_add(batch.len() as u64, Relaxed);
                *seq += batch.len() as u64;
                continue;
            }
            for (frame, pred) in batch.iter().zip(preds.drain(..)) {
                let t_s =
                    (frame.index + frame.samples.len() as u64) as f64 / self.model_rate as f64;
                let label = classes.get(pred.top().0).map_or("", String::as_str);
                self.snapshots.frame(frame, &pred, label);
                if let Some(tr) = self.monitor.frame(frame, &pred, t_s) {
                    self.transition(tr, frame.end_ns as f64 / 1e9);
                }
                let msg = self.message(frame, pred, classes, *seq);
                *seq += 1;
                self.publish(msg);
            }
        }
        pending.clear();
    }

    fn message(&self, f: &Frame, p: Prediction, classes: &[String], seq: u64) -> FrameMsg {
        let latency_ns = now_ns().saturating_sub(f.end_ns);
        self.stats.record_latency(latency_ns / 1000);
        if f.flags.nonfinite {
            self.stats.nonfinite_frames.fetch_add(1, Relaxed);
        }
        if f.flags.clipped {
            self.stats.clipped_frames.fetch_add(1, Relaxed);
        }
        let time = f.end_ns as f64 / 1e9;
        FrameMsg::build(
            self.stats.name.clone(),
            seq,
            f,
            p,
            classes,
            &self.model.manifest.sha256,
            time,
            latency_ns as f64 / 1e6,
        )
    }

    /// No samples for a while (wall clock): the monitor may call it no-signal.
    /// Overload policy for live sources: when more than `max_lag` samples
    /// wait, the oldest are skipped (a gap for the framer, counted as
    /// overrun), so published frames stay within `max_lag` of real time.
    fn shed_backlog(&mut self) {
        let Some(max_lag) = self.max_lag else { return };
        let backlog = self.reader.backlog();
        if backlog <= max_lag {
            return;
        }
        let (assembler, snapshots) = (&mut self.assembler, &mut self.snapshots);
        let mut shed = 0u64;
        self.reader
            .drain(self.stats.source_rate as f64, backlog - max_lag, |seg| {
                let n = match seg {
                    Segment::Samples(x, _) => {
                        shed += x.len() as u64;
                        x.len() as u64
                    }
                    Segment::Gap(n) => n,
                };
                snapshots.gap(n);
                assembler.gap(n);
            });
        self.stats.ring.overrun_samples.fetch_add(shed, Relaxed);
        let (pending, last) = &mut self.shed_log;
        *pending += shed;
        let now = now_ns();
        if now.saturating_sub(*last) >= SHED_LOG_EVERY.as_nanos() as u64 {
            tracing::warn!(
                stream = %self.stats.name,
                "inference fell behind: skipped {pending} samples (counted in overrun_samples)"
            );
            (*pending, *last) = (0, now);
        }
    }

    fn check_idle(&mut self) {
        let last = self
            .stats
            .ring
            .last_chunk_ns
            .load(Relaxed)
            .max(self.started_ns);
        let idle_s = now_ns().saturating_sub(last) as f64 / 1e9;
        let t_s = self.assembler.source_position() as f64 / self.stats.source_rate as f64;
        let why = self.source.get();
        if let Some(tr) = self.monitor.idle(idle_s, t_s, why.clone()) {
            self.transition(tr, now_ns() as f64 / 1e9);
        } else if let Some(tr) = why.and_then(|w| self.monitor.explain(&w, t_s)) {
            self.transition(tr, now_ns() as f64 / 1e9);
        }
    }

    /// Publishes a state change, records it for status and hello, saves it.
    fn transition(&mut self, tr: monitor::Transition, time: f64) {
        let since = time - (tr.at_s - tr.since_s);
        let now = now_ns();
        self.log_left_out(now);
        if self.change_log.admit() {
            tracing::info!(stream = %self.stats.name, "machine {} -> {}", tr.from.name(), tr.to.name());
        }
        self.stats.set_machine(tr.to.clone(), since);
        let saved = monitor::Saved {
            stream: self.stats.name.clone(),
            machine: tr.to.clone(),
            since,
        };
        self.state.change(saved, now);
        let into_fault = matches!(tr.to, monitor::State::Fault { .. });
        let since_s = tr.since_s;
        let mut event = EventMsg {
            stream: self.stats.name.clone(),
            from: tr.from,
            to: tr.to,
            time,
            since,
            stream_time_s: tr.at_s,
            confidence: tr.confidence,
            evidence: tr.evidence,
            snapshot: None,
        };
        if into_fault {
            let value = serde_json::to_value(&event).unwrap_or_default();
            event.snapshot = self
                .snapshots
                .plan(since_s, since, value)
                .map(|p| p.display().to_string());
        }
        let event = Message::Event(event);
        // Events are rare and must not be lost: wait for room if need be.
        // This fails only once the publisher is gone (shutdown).
        self.tx.send(event);
    }

    fn log_left_out(&mut self, now_ns: u64) {
        let n = self.change_log.roll(now_ns);
        self.report_left_out(n);
    }

    fn report_left_out(&self, n: u64) {
        if n > 0 {
            tracing::info!(
                stream = %self.stats.name,
                "{n} more machine state changes were not logged (at most {CHANGE_LOG_BURST} a minute; each was an event on the socket)"
            );
        }
    }

    fn publish(&self, msg: FrameMsg) {
        if self.tx.try_send(Message::Frame(msg)) {
            self.stats.frames.fetch_add(1, Relaxed);
        } else {
            self.stats.dropped_frames.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn change_log_keeps_a_burst_per_window_and_counts_the_rest() {
        let mut log = ChangeLog::default();
        let t0 = 1_000 * S;
        assert_eq!(
            log.roll(t0),
            0,
            "the first window opens with nothing left out"
        );
        let admitted = (0..25).filter(|_| log.admit()).count();
        assert_eq!(admitted, CHANGE_LOG_BURST as usize);
        assert_eq!(log.roll(t0 + 59 * S), 0, "the window is not over yet");
        assert_eq!(log.roll(t0 + 60 * S), 25 - CHANGE_LOG_BURST as u64);
        assert!(log.admit(), "a new window logs again");
        assert_eq!(log.roll(t0 + 121 * S), 0, "nothing was left out of it");
        for _ in 0..CHANGE_LOG_BURST + 3 {
            log.admit();
        }
        assert_eq!(log.take_left_out(), 3, "told at stream end");
        assert_eq!(log.take_left_out(), 0, "and only once");
    }
}
