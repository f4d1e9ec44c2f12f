//! The worker of one stream: drains the stream's ring into the stream's
//! [`StreamPipeline`] (frames, analyses, machine state), and keeps only the
//! worker's own concerns: heartbeat, load shedding, reloads, snapshots, the
//! state file, wall-clock stamps and publishing. It owns no thread: the
//! [`pool`] runs every stream's worker a turn at a time. What a frame is
//! analysed for lives in [`crate::analyses`] and what the machine is in
//! [`crate::monitor`].

pub mod pool;

use crate::analyses::Analyses;
use crate::clock::{self, mono_ns};
use crate::hub::{SourceState, StreamHub};
use crate::monitor;
use crate::pipeline::{Analysed, StreamPipeline};
use crate::protocol::{EventMsg, FrameMsg, Message};
use crate::ring::{RingReader, Segment};
use crate::sinks::Publisher;
use crate::snapshot::Snapshots;
use crate::source::SourceStatus;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Frames one turn analyses at most, and the time after which it starts
/// no other: a stream with a backlog (after a stall, a reload's first cold
/// calls) takes several turns, and the other streams of its thread get
/// theirs in between, so none waits on it for more than a fraction of a hop.
const FRAMES_PER_TURN: usize = 4;
const TURN_TIME: Duration = Duration::from_millis(5);

/// What a turn left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// More is waiting: frames to analyse or samples in the ring.
    Busy,
    /// Caught up; the ring wakes the thread when a frame completes.
    Idle,
    /// The source has ended (or the daemon stops) and everything is out.
    Done,
}

/// What the daemon builds for one stream before its worker starts.
pub struct Parts {
    pub reader: RingReader,
    /// Frames, analyses and machine state: everything but the thread's I/O.
    pub pipeline: StreamPipeline,
    pub snapshots: Snapshots,
    /// Saves the machine state on transitions, for a restart.
    pub state: monitor::StateSaver,
    pub hub: Arc<StreamHub>,
    /// The source's account of itself, for no-signal reasons.
    pub source: Arc<SourceStatus>,
    /// Live sources: unread samples beyond this are skipped (load shedding).
    pub max_lag: Option<usize>,
    /// How often the ring wakes the worker (`frames-per-wake` hops).
    pub wake_period: Duration,
}

pub struct StreamWorker {
    p: Parts,
    tx: Publisher,
    stop: Arc<AtomicBool>,
    /// Replacement analyses (a reload), taken between frames.
    swap: crossbeam_channel::Receiver<Analyses>,
    /// When the thread started, monotonic ns (the idle clock's origin).
    started_ns: u64,
    /// Samples shed since the last warning, and when that was (monotonic
    /// ns): under sustained overload the log gets one line per SHED_LOG_EVERY.
    shed_log: (u64, u64),
    /// Limits the log lines of machine state changes (see `ChangeLog`).
    change_log: ChangeLog,
    /// Scratch for the frames of one analysed batch.
    analysed: Vec<Analysed>,
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
    /// A worker for one stream, and the sender that hands it new analyses
    /// on reload. `stop` ends it once the ring is drained.
    pub fn new(
        parts: Parts,
        tx: Publisher,
        stop: Arc<AtomicBool>,
    ) -> (Self, crossbeam_channel::Sender<Analyses>) {
        let (swap_tx, swap) = crossbeam_channel::unbounded();
        let w = Self {
            p: parts,
            tx,
            stop,
            swap,
            started_ns: 0,
            shed_log: (0, 0),
            change_log: ChangeLog::default(),
            analysed: Vec::with_capacity(64),
        };
        (w, swap_tx)
    }

    pub fn is_ended(&self) -> bool {
        self.p.hub.ended.load(Relaxed)
    }

    /// How often the stream's ring wakes its thread (`frames-per-wake` hops).
    pub fn wake_period(&self) -> Duration {
        self.p.wake_period
    }

    /// Called once, on the thread that will run the turns.
    pub fn begin(&mut self) {
        self.started_ns = mono_ns();
        self.p.hub.set_state(SourceState::Running);
    }

    /// One turn: housekeeping, then the ring drained into the pipeline and
    /// at most `FRAMES_PER_TURN` frames analysed and published.
    pub fn turn(&mut self) -> Turn {
        let now = mono_ns();
        self.p.hub.heartbeat_ns.store(now, Relaxed);
        self.log_left_out(now);
        self.p.state.save_if_due(now);
        self.take_swap();
        self.shed_backlog();
        let stopping = self.stop.load(Relaxed);
        let finished = self.p.reader.finished();
        // Frames still waiting from the last turn go first, so that what is
        // drained never outgrows what is analysed.
        let mut more = false;
        if !self.p.pipeline.has_pending() {
            let (drained, max) = self.drain_ring();
            more = drained >= max;
        }
        if self.p.pipeline.has_pending() {
            self.analyse_pending();
            return Turn::Busy;
        }
        if more {
            return Turn::Busy;
        }
        if finished || stopping {
            return Turn::Done;
        }
        self.check_idle();
        Turn::Idle
    }

    /// The last word once the stream is done: the log's count, the state
    /// file, and the stream marked ended for the watchdog.
    pub fn end(&mut self) {
        let left_out = self.change_log.take_left_out();
        self.report_left_out(left_out);
        self.p.state.save_now(mono_ns());
        if self.p.reader.finished() {
            tracing::info!(
                stream = %self.p.hub.name,
                frames = self.p.pipeline.frames_made(),
                "stream ended"
            );
        }
        self.p.hub.ended.store(true, Relaxed);
    }

    /// A reload's new analyses, if one waits: the monitor learns the classes.
    fn take_swap(&mut self) {
        // Two quick reloads may both wait: the latest wins.
        if let Some(analyses) = self.swap.try_iter().last() {
            self.p.pipeline.swap_analyses(analyses);
        }
    }

    /// Moves up to a second of samples from the ring into the assembler (so
    /// frames and snapshots keep up); returns (samples drained, the limit).
    fn drain_ring(&mut self) -> (usize, usize) {
        let rate = self.p.hub.source_rate as f64;
        let max = self.p.hub.source_rate as usize;
        let (pipeline, snapshots) = (&mut self.p.pipeline, &mut self.p.snapshots);
        let mut failed = None;
        let drained = self.p.reader.drain(rate, max, |seg| match seg {
            Segment::Samples(x, t) => {
                snapshots.samples(x);
                if let Err(e) = pipeline.push(x, t) {
                    failed = Some(e);
                }
            }
            Segment::Gap(n) => {
                snapshots.gap(n);
                pipeline.gap(n);
            }
        });
        if let Some(e) = failed {
            tracing::error!(stream = %self.p.hub.name, "frame assembly failed: {e:#}");
        }
        (drained, max)
    }

    /// Runs the analyses on up to `FRAMES_PER_TURN` of the frames that
    /// wait, in batches, and passes each frame with its report on.
    fn analyse_pending(&mut self) {
        let mut done_frames = 0;
        let start = std::time::Instant::now();
        while self.p.pipeline.has_pending()
            && done_frames < FRAMES_PER_TURN
            && start.elapsed() < TURN_TIME
        {
            let t0 = std::time::Instant::now();
            let n = match self.p.pipeline.analyse() {
                Ok(n) => n,
                Err(f) => {
                    tracing::error!(stream = %self.p.hub.name, "analysis failed: {:#}", f.error);
                    self.p.hub.dropped_frames.fetch_add(f.frames, Relaxed);
                    done_frames += (f.frames as usize).max(1);
                    continue;
                }
            };
            done_frames += n.max(1);
            let per_frame = t0.elapsed() / n.max(1) as u32;
            let mut done = std::mem::take(&mut self.analysed);
            self.p.pipeline.emit(|a| done.push(a));
            for a in done.drain(..) {
                self.p.hub.analysis_time.observe(per_frame);
                self.frame_done(a);
            }
            self.analysed = done;
        }
    }

    /// One analysed frame: snapshots see it, its changes go out as events,
    /// then it is published.
    fn frame_done(&mut self, a: Analysed) {
        let Analysed {
            mut msg,
            end_ns,
            t_s,
            flags,
            change,
            zone,
        } = a;
        self.p.snapshots.frame(&msg, t_s);
        let wall = clock::wall_s_at(end_ns);
        if let Some(tr) = change {
            self.transition(tr, wall);
        }
        if let Some(tr) = zone {
            self.zone_event(tr, wall);
        }
        let latency_ns = mono_ns().saturating_sub(end_ns);
        let hub = &self.p.hub;
        hub.record_latency(latency_ns / 1000);
        if flags.nonfinite {
            hub.nonfinite_frames.fetch_add(1, Relaxed);
        }
        if flags.clipped {
            hub.clipped_frames.fetch_add(1, Relaxed);
        }
        if let Some(Some(v)) = msg.velocity_rms_mm_s {
            hub.velocity_mm_s.store(v.to_bits(), Relaxed);
        }
        (msg.time, msg.latency_ms) = (wall, latency_ns as f64 / 1e6);
        self.publish(msg);
    }

    /// Overload policy for live sources: when more than `max_lag` samples
    /// wait, the oldest are skipped (a gap for the framer, counted as
    /// overrun), so published frames stay within `max_lag` of real time.
    fn shed_backlog(&mut self) {
        let Some(max_lag) = self.p.max_lag else {
            return;
        };
        let backlog = self.p.reader.backlog();
        if backlog <= max_lag {
            return;
        }
        let (pipeline, snapshots) = (&mut self.p.pipeline, &mut self.p.snapshots);
        let mut shed = 0u64;
        self.p
            .reader
            .drain(self.p.hub.source_rate as f64, backlog - max_lag, |seg| {
                let n = match seg {
                    Segment::Samples(x, _) => {
                        shed += x.len() as u64;
                        x.len() as u64
                    }
                    Segment::Gap(n) => n,
                };
                snapshots.gap(n);
                pipeline.gap(n);
            });
        self.p.hub.ring.overrun_samples.fetch_add(shed, Relaxed);
        let (pending, last) = &mut self.shed_log;
        *pending += shed;
        let now = mono_ns();
        if now.saturating_sub(*last) >= SHED_LOG_EVERY.as_nanos() as u64 {
            tracing::warn!(
                stream = %self.p.hub.name,
                "inference fell behind: skipped {pending} samples (counted in overrun_samples)"
            );
            (*pending, *last) = (0, now);
        }
    }

    /// No samples for a while (monotonic clock): the monitor may call it no-signal.
    fn check_idle(&mut self) {
        let last = self
            .p
            .hub
            .ring
            .last_chunk_ns
            .load(Relaxed)
            .max(self.started_ns);
        let idle_s = clock::secs_since(last);
        let t_s = self.p.pipeline.stream_time_s(self.p.hub.source_rate);
        if let Some(tr) = self.p.pipeline.idle(idle_s, t_s, self.p.source.get()) {
            self.transition(tr, clock::wall_s());
        }
    }

    /// Publishes a state change, records it for status and hello, saves it.
    /// `time`: the wall-clock time of the change, Unix seconds.
    fn transition(&mut self, tr: monitor::Transition, time: f64) {
        let now = mono_ns();
        self.log_left_out(now);
        let name = self.p.hub.name.clone();
        if self.change_log.admit() {
            tracing::info!(stream = %name, "machine {} -> {}", tr.from.name(), tr.to.name());
        }
        let since_s = tr.since_s;
        let machine = tr.to.clone();
        let mut event = EventMsg::new(name.clone(), tr, time);
        let source = event.evidence.family_source;
        self.p
            .hub
            .record_change(machine.clone(), event.since, source);
        let alarm = machine.is_alarm();
        let saved = monitor::Saved {
            stream: name,
            machine,
            since: event.since,
        };
        self.p.state.change(saved, now);
        // Every alarm (fault or anomaly) gets its evidence snapshot.
        if alarm {
            let value = serde_json::to_value(&event).unwrap_or_default();
            event.snapshot = self
                .p
                .snapshots
                .plan(since_s, event.since, value)
                .map(|p| p.display().to_string());
        }
        // Events are rare and must not be lost: wait for room if need be.
        // This fails only once the publisher is gone (shutdown).
        self.tx.send(Message::Event(event));
    }

    /// Publishes a change of ISO zone level. Not a machine state: status,
    /// hello and the state file keep the machine's.
    fn zone_event(&mut self, tr: monitor::Transition<monitor::zone::Zone>, time: f64) {
        let name = self.p.hub.name.clone();
        tracing::info!(stream = %name, "vibration {} -> {}", tr.from.name(), tr.to.name());
        self.tx.send(Message::Event(EventMsg::new(name, tr, time)));
    }

    fn log_left_out(&mut self, now_ns: u64) {
        let n = self.change_log.roll(now_ns);
        self.report_left_out(n);
    }

    fn report_left_out(&self, n: u64) {
        if n > 0 {
            tracing::info!(
                stream = %self.p.hub.name,
                "{n} more machine state changes were not logged (at most {CHANGE_LOG_BURST} a minute; each was an event on the socket)"
            );
        }
    }

    fn publish(&self, msg: FrameMsg) {
        if self.tx.try_send(Message::Frame(msg)) {
            self.p.hub.frames.fetch_add(1, Relaxed);
        } else {
            self.p.hub.dropped_frames.fetch_add(1, Relaxed);
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
