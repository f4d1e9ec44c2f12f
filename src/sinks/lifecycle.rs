//! One lifecycle for every sink: built from the config in one place
//! ([`super::build`], which binds what each listens on, so a bad address
//! is an error before the first frame), started together before the
//! workers, and stopped by one [`Shutdown`], each within its own grace
//! period.

use crate::protocol::Status;
use anyhow::Result;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The daemon's one stop signal, seen by every sink: tasks await
/// [`Shutdown::raised`], threads poll [`Shutdown::is_raised`].
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Raises the [`Shutdown`] it was made with.
pub struct ShutdownTrigger(watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    pub fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once the shutdown is raised (or its trigger is gone).
    pub async fn raised(&mut self) {
        let _ = self.0.wait_for(|raised| *raised).await;
    }
}

impl ShutdownTrigger {
    pub fn raise(&self) {
        let _ = self.0.send(true);
    }
}

/// What a started sink runs on.
pub enum Running {
    /// A task on the daemon's runtime: aborted if it outlives its grace.
    Task(tokio::task::JoinHandle<()>),
    /// Threads of its own (with their own runtime, or plain): woken at
    /// the shutdown, and left to the process's exit if they outlive it.
    Threads(Vec<std::thread::JoinHandle<()>>),
}

impl Running {
    fn is_finished(&self) -> bool {
        match self {
            Running::Task(t) => t.is_finished(),
            Running::Threads(ts) => ts.iter().all(|t| t.is_finished()),
        }
    }

    /// A thread waiting on its park timeout sees the shutdown at once.
    fn wake(&self) {
        if let Running::Threads(ts) = self {
            ts.iter().for_each(|t| t.thread().unpark());
        }
    }
}

/// An output of the bus. Each reads the broadcast on its own task or
/// thread, never waits on a worker, and ends on its own once the
/// shutdown is raised, after delivering what it owes.
pub trait Sink: Send {
    /// Its name in logs and in `/metrics` (`socket`, `http`, `mqtt`, `denoised`).
    fn name(&self) -> &'static str;
    /// How long the daemon waits for it after the shutdown.
    fn grace(&self) -> Duration;
    /// Starts serving. Called once, before the workers start, so that it
    /// is subscribed before the first frame.
    fn start(&mut self, shutdown: Shutdown) -> Result<Running>;
    /// Its part of the daemon's status (clients, broker), if any.
    fn report(&self, _status: &mut Status) {}
}

/// Every configured sink, started or not yet.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<(Box<dyn Sink>, Option<Running>)>,
}

impl Sinks {
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        Self {
            sinks: sinks.into_iter().map(|s| (s, None)).collect(),
        }
    }

    /// Starts each in the order built.
    pub fn start(&mut self, shutdown: &Shutdown) -> Result<()> {
        for (sink, running) in &mut self.sinks {
            *running = Some(sink.start(shutdown.clone())?);
        }
        Ok(())
    }

    /// Every sink's part of the status.
    pub fn report(&self, status: &mut Status) {
        self.sinks.iter().for_each(|(s, _)| s.report(status));
    }

    /// Once the shutdown is raised: waits for every sink at once, each at
    /// most its grace; one that is late is logged and left behind.
    pub async fn stop(self) {
        let started = Instant::now();
        let mut waiting: Vec<_> = self
            .sinks
            .into_iter()
            .filter_map(|(s, r)| Some((s, r?)))
            .collect();
        waiting.iter().for_each(|(_, r)| r.wake());
        while !waiting.is_empty() {
            let elapsed = started.elapsed();
            waiting.retain(|(sink, running)| {
                if running.is_finished() {
                    return false;
                }
                if elapsed < sink.grace() {
                    return true;
                }
                tracing::warn!(
                    "sink {}: not done after {:?}; left",
                    sink.name(),
                    sink.grace()
                );
                if let Running::Task(t) = running {
                    t.abort();
                }
                false
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that ends `after` the shutdown, on a task or a thread.
    struct Slow {
        after: Duration,
        grace: Duration,
        thread: bool,
    }

    impl Sink for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn grace(&self) -> Duration {
            self.grace
        }
        fn start(&mut self, mut shutdown: Shutdown) -> Result<Running> {
            let after = self.after;
            if self.thread {
                let t = std::thread::spawn(move || {
                    while !shutdown.is_raised() {
                        std::thread::park_timeout(Duration::from_secs(10));
                    }
                    std::thread::sleep(after);
                });
                return Ok(Running::Threads(vec![t]));
            }
            Ok(Running::Task(tokio::spawn(async move {
                shutdown.raised().await;
                tokio::time::sleep(after).await;
            })))
        }
    }

    fn stop_time(sinks: Vec<Slow>) -> Duration {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let (trigger, shutdown) = Shutdown::new();
            let boxed = sinks.into_iter().map(|s| Box::new(s) as Box<dyn Sink>);
            let mut all = Sinks::new(boxed.collect());
            all.start(&shutdown).expect("started");
            let t0 = Instant::now();
            trigger.raise();
            all.stop().await;
            t0.elapsed()
        })
    }

    /// Sinks are waited for together, each up to its own grace: a parked
    /// thread is woken (it would sleep 10 s), a late task is cut at its
    /// grace, and a quick one does not wait for the others.
    #[test]
    fn sinks_stop_together_within_their_grace() {
        let ms = Duration::from_millis;
        let quick = |thread| Slow {
            after: ms(50),
            grace: ms(2000),
            thread,
        };
        let t = stop_time(vec![quick(true), quick(false)]);
        assert!(t < ms(1000), "two quick sinks took {t:?}");
        let late = Slow {
            after: ms(5000),
            grace: ms(200),
            thread: false,
        };
        let t = stop_time(vec![late, quick(true)]);
        assert!(t >= ms(200) && t < ms(2000), "a late task took {t:?}");
    }
}
