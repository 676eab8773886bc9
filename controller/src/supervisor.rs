//! The one owner of the controller's background workers (the lease reaper,
//! the GitHub reporter, the garbage collector, ...).
//!
//! A worker is started by name from a factory, so it can be made again: when
//! it panics, the panic is logged with the worker's name, counted in
//! `/metrics` (`jamstack_worker_restarts_total{worker="..."}`), and the
//! worker is started afresh after a short pause. A worker that returns on
//! its own is done and stays stopped. Shutdown fires one cancellation token
//! and waits for every worker to return, for at most a grace period, then
//! aborts whatever is left, so a worker with cleanup to do gets to do it and
//! a stuck one cannot hold the process.

use crate::metrics::Metrics;
use futures_util::FutureExt as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a worker that panicked waits before it is started again: long
/// enough that a worker failing at once does not spin, short enough that
/// its work is hardly delayed.
pub const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// How long shutdown waits for workers before aborting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct Supervisor {
    tracker: TaskTracker,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    restart_pause: Duration,
    /// To abort workers that outlive the grace period.
    running: Mutex<Vec<AbortHandle>>,
}

impl Supervisor {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self::with_restart_pause(metrics, RESTART_PAUSE)
    }

    pub fn with_restart_pause(metrics: Arc<Metrics>, restart_pause: Duration) -> Self {
        Supervisor {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            metrics,
            restart_pause,
            running: Mutex::new(Vec::new()),
        }
    }

    /// Runs the worker `factory` makes, and makes it again whenever it
    /// panics. The worker is given a token that fires at shutdown; it is to
    /// return soon after (its cleanup done).
    pub fn spawn<F, Fut>(&self, name: &'static str, factory: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        let metrics = self.metrics.clone();
        let pause = self.restart_pause;
        // The first worker is made here, so whatever its factory does at
        // once (subscribing to events) is done before this returns.
        let mut worker = factory(stop.child_token());
        let task = self.tracker.spawn(async move {
            loop {
                let Err(panic) = AssertUnwindSafe(worker).catch_unwind().await else {
                    tracing::debug!(worker = name, "worker returned");
                    return;
                };
                if stop.is_cancelled() {
                    tracing::error!(
                        worker = name,
                        panic = panic_message(&panic),
                        "worker panicked while stopping"
                    );
                    return;
                }
                metrics.record_worker_restart(name);
                tracing::error!(
                    worker = name,
                    panic = panic_message(&panic),
                    restart_in = ?pause,
                    "worker panicked; starting it again"
                );
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => return,
                }
                worker = factory(stop.child_token());
            }
        });
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|handle| !handle.is_finished());
        running.push(task.abort_handle());
    }

    /// [`Supervisor::spawn`] for a worker with nothing to clean up: at
    /// shutdown it is dropped at the await point it is waiting on.
    pub fn spawn_until_stopped<F, Fut>(&self, name: &'static str, factory: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, move |stop| {
            let work = factory();
            async move {
                stop.run_until_cancelled(work).await;
            }
        })
    }

    /// A token that fires when shutdown begins, for work started beside the
    /// workers (such as a listener's graceful shutdown).
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Tells every worker to stop and waits for them all, at most `grace`;
    /// workers still running then are aborted. Returns whether every worker
    /// stopped by itself.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_ok() {
            return true;
        }
        let running = std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner()));
        let left = running.iter().filter(|handle| !handle.is_finished()).count();
        tracing::warn!(
            workers = left,
            ?grace,
            "workers did not stop in time; aborting them"
        );
        running.iter().for_each(AbortHandle::abort);
        self.tracker.wait().await;
        false
    }
}

impl Drop for Supervisor {
    /// A supervisor dropped without shutdown (a test's controller going out
    /// of scope) takes its workers with it, as their owner is gone.
    fn drop(&mut self) {
        self.stop.cancel();
        for handle in self.running.get_mut().unwrap_or_else(|e| e.into_inner()).iter() {
            handle.abort();
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::{Notify, mpsc};

    #[tokio::test]
    async fn a_worker_that_panics_is_started_again_and_counted() {
        let metrics = Arc::new(Metrics::default());
        let supervisor = Supervisor::with_restart_pause(metrics.clone(), Duration::from_millis(1));
        let starts = Arc::new(AtomicUsize::new(0));
        let (started, mut starts_seen) = mpsc::unbounded_channel();
        supervisor.spawn("flaky", {
            let starts = starts.clone();
            move |stop| {
                let start = starts.fetch_add(1, Ordering::SeqCst) + 1;
                started.send(start).unwrap();
                async move {
                    if start < 3 {
                        panic!("start {start} fails");
                    }
                    stop.cancelled().await;
                }
            }
        });
        assert_eq!(starts_seen.recv().await, Some(1));
        assert_eq!(starts_seen.recv().await, Some(2));
        assert_eq!(starts_seen.recv().await, Some(3));
        let exposed = metrics.render(Default::default());
        assert!(
            exposed.contains("jamstack_worker_restarts_total{worker=\"flaky\"} 2"),
            "{exposed}"
        );
        assert!(supervisor.shutdown(Duration::from_secs(60)).await);
        assert_eq!(
            starts.load(Ordering::SeqCst),
            3,
            "a worker that stopped is not started again"
        );
    }

    #[tokio::test]
    async fn shutdown_waits_for_a_worker_to_finish_its_cleanup() {
        let supervisor = Supervisor::new(Arc::new(Metrics::default()));
        let cleanup_may_finish = Arc::new(Notify::new());
        let (cleaned_up, mut cleanup_seen) = mpsc::unbounded_channel();
        let (running, mut running_seen) = mpsc::unbounded_channel();
        supervisor.spawn("tidy", {
            let cleanup_may_finish = cleanup_may_finish.clone();
            move |stop| {
                let cleanup_may_finish = cleanup_may_finish.clone();
                let cleaned_up = cleaned_up.clone();
                let running = running.clone();
                async move {
                    running.send(()).unwrap();
                    stop.cancelled().await;
                    cleanup_may_finish.notified().await;
                    cleaned_up.send(()).unwrap();
                }
            }
        });
        running_seen.recv().await.unwrap();
        let shutdown = supervisor.shutdown(Duration::from_secs(3600));
        tokio::pin!(shutdown);
        // Shutdown is under way and cannot end while the worker cleans up.
        tokio::select! {
            biased;
            _ = &mut shutdown => panic!("shutdown ended before the worker's cleanup"),
            () = tokio::task::yield_now() => {}
        }
        assert!(cleanup_seen.try_recv().is_err());
        cleanup_may_finish.notify_one();
        assert!(shutdown.await, "the worker stopped by itself");
        assert_eq!(
            cleanup_seen.try_recv(),
            Ok(()),
            "shutdown returned after the cleanup"
        );
    }

    #[tokio::test]
    async fn a_worker_that_ignores_shutdown_is_aborted_after_the_grace_period() {
        let supervisor = Supervisor::new(Arc::new(Metrics::default()));
        let (running, mut running_seen) = mpsc::unbounded_channel();
        supervisor.spawn("stubborn", move |_stop| {
            let running = running.clone();
            async move {
                running.send(()).unwrap();
                std::future::pending::<()>().await;
            }
        });
        running_seen.recv().await.unwrap();
        assert!(!supervisor.shutdown(Duration::from_millis(1)).await);
    }

    #[tokio::test]
    async fn a_worker_without_cleanup_is_stopped_at_shutdown() {
        let supervisor = Supervisor::new(Arc::new(Metrics::default()));
        let (running, mut running_seen) = mpsc::unbounded_channel();
        supervisor.spawn_until_stopped("loop", move || {
            let running = running.clone();
            async move {
                running.send(()).unwrap();
                std::future::pending::<()>().await;
            }
        });
        running_seen.recv().await.unwrap();
        assert!(supervisor.shutdown(Duration::from_secs(3600)).await);
    }
}
