//! The recorder: one thread that does the slow writes of every stream
//! (evidence snapshots, machine-state files), so that no stream worker
//! waits on a disk (an SD card's fsync can take most of a second). Workers
//! hand it jobs through a bounded queue; a job that finds the queue full is
//! dropped, counted and logged, and the worker goes on at once.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Jobs waiting at most; each is a rare event (an alarm, a state change).
pub const QUEUE: usize = 256;

type Work = Box<dyn FnOnce() -> anyhow::Result<()> + Send>;

enum Job {
    Write { what: String, work: Work },
    Stop,
}

/// Where a worker hands its slow writes. Cloned into every stream.
#[derive(Clone)]
pub struct Recorder {
    /// None: jobs run on the caller's thread (offline tools, unit tests).
    tx: Option<crossbeam_channel::Sender<Job>>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// The recorder thread, and the handle `stop` waits for.
    pub fn spawn() -> std::io::Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Write { what, work } => {
                            if let Err(e) = work() {
                                tracing::warn!("{what}: {e:#}");
                            }
                        }
                        Job::Stop => break,
                    }
                }
            })?;
        let r = Self {
            tx: Some(tx),
            dropped: Arc::default(),
        };
        Ok((r, thread))
    }

    /// Runs every job at once on the caller's thread.
    pub fn inline() -> Self {
        Self {
            tx: None,
            dropped: Arc::default(),
        }
    }

    /// Hands `work` (`what` names it in the log) to the recorder; false if
    /// the queue was full and it was dropped (counted).
    pub fn submit(
        &self,
        what: String,
        work: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ) -> bool {
        let Some(tx) = &self.tx else {
            if let Err(e) = work() {
                tracing::warn!("{what}: {e:#}");
            }
            return true;
        };
        let job = Job::Write {
            what,
            work: Box::new(work),
        };
        match tx.try_send(job) {
            Ok(()) => true,
            Err(e) => {
                let n = self.dropped.fetch_add(1, Relaxed) + 1;
                if let Job::Write { what, .. } = e.into_inner() {
                    tracing::warn!(
                        "{what}: not written, the recorder's queue is full ({n} dropped so far)"
                    );
                }
                false
            }
        }
    }

    /// The same recorder, counting a stream's dropped jobs in `dropped`.
    pub fn counting_in(&self, dropped: Arc<AtomicU64>) -> Self {
        Self {
            tx: self.tx.clone(),
            dropped,
        }
    }

    /// Jobs dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Lets the queued jobs finish, then ends the thread (at shutdown,
    /// after the workers: what they handed over is written).
    pub fn stop(&self, thread: JoinHandle<()>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Stop);
        }
        let _ = thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_off_the_callers_thread_and_a_full_queue_drops_and_counts() {
        let (r, thread) = Recorder::spawn().expect("recorder");
        let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
        let done = Arc::new(std::sync::Mutex::new(Vec::new()));
        let me = std::thread::current().id();
        // The first job holds the thread until the queue has been filled.
        assert!(r.submit("hold".into(), move || {
            let _ = gate_rx.recv();
            Ok(())
        }));
        let mut accepted = 0;
        for i in 0..QUEUE + 10 {
            let done = done.clone();
            if r.submit(format!("job {i}"), move || {
                assert_ne!(std::thread::current().id(), me);
                done.lock().expect("lock").push(i);
                Ok(())
            }) {
                accepted += 1;
            }
        }
        assert!((QUEUE - 1..=QUEUE).contains(&accepted), "{accepted}");
        assert_eq!(r.dropped(), (QUEUE + 10 - accepted) as u64);
        let _ = gate_tx.send(());
        r.stop(thread);
        let done = done.lock().expect("lock");
        assert_eq!(
            done.len(),
            accepted,
            "every accepted job ran before the stop"
        );
        assert!(done.windows(2).all(|w| w[0] < w[1]), "in order");
    }
}
