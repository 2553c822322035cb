//! The leased job loop: work found in a table rather than on a queue (client webhooks due, documents
//! due for a status poll, sweeps). Each turn takes the due jobs under a lease, so that replicas share
//! them and the jobs of a holder that vanished come due again, runs them with bounded concurrency, and
//! on stop waits for those in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::runtime::stop::StopSignal;

/// Work a leased job loop runs.
pub trait Jobs: Send + Sync + 'static {
    /// One unit of work, taken under a lease.
    type Job: Send + 'static;
    /// Why jobs could not be taken.
    type Error: std::fmt::Display + Send;

    /// The loop's name, for logs and metrics.
    fn name(&self) -> &'static str;

    /// How long a turn waits before looking for due jobs again.
    fn every(&self) -> Duration;

    /// The most jobs run at once.
    fn concurrency(&self) -> usize {
        1
    }

    /// Takes at most `free` due jobs, leasing them to this process.
    fn take(&self, free: usize)
    -> impl Future<Output = Result<Vec<Self::Job>, Self::Error>> + Send;

    /// Runs one job; its own failures are its to record (a job whose lease runs out comes due again).
    fn run(self: Arc<Self>, job: Self::Job) -> impl Future<Output = ()> + Send;
}

/// Runs `jobs` turn by turn until stopped, then waits for the jobs in flight (each has its own
/// deadline; the runtime bounds the wait by its grace period).
pub async fn run<J: Jobs>(jobs: Arc<J>, mut stop: StopSignal) {
    let mut running = JoinSet::new();
    while stop.sleep(jobs.every()).await {
        while running.try_join_next().is_some() {}
        let free = jobs.concurrency().saturating_sub(running.len());
        if free == 0 {
            continue;
        }
        match jobs.take(free).await {
            Ok(taken) => {
                if !taken.is_empty() {
                    metrics::counter!("pasarela_jobs_taken_total", "jobs" => jobs.name())
                        .increment(taken.len() as u64);
                }
                for job in taken {
                    running.spawn(jobs.clone().run(job));
                }
            }
            Err(e) => tracing::warn!(jobs = jobs.name(), error = %e, "could not take due jobs"),
        }
    }
    while running.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Ten jobs in a list, taken a few at a time, each holding its slot for a moment.
    struct Ten {
        due: Mutex<Vec<u32>>,
        running: AtomicUsize,
        most_at_once: AtomicUsize,
        done: Mutex<Vec<u32>>,
    }

    impl Jobs for Ten {
        type Job = u32;
        type Error = String;

        fn name(&self) -> &'static str {
            "ten"
        }

        fn every(&self) -> Duration {
            Duration::from_millis(5)
        }

        fn concurrency(&self) -> usize {
            3
        }

        async fn take(&self, free: usize) -> Result<Vec<u32>, String> {
            let mut due = self.due.lock().unwrap();
            let n = free.min(due.len());
            Ok(due.drain(..n).collect())
        }

        async fn run(self: Arc<Self>, job: u32) {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.done.lock().unwrap().push(job);
            self.running.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn every_job_runs_once_within_the_concurrency_and_a_stop_waits_for_them() {
        let jobs = Arc::new(Ten {
            due: Mutex::new((0..10).collect()),
            running: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            done: Mutex::new(Vec::new()),
        });
        let (stop_tx, stop) = StopSignal::new();
        let looping = tokio::spawn(run(jobs.clone(), stop));
        // Stop as soon as the last job is taken: it is still running, and the loop must wait for it.
        while !jobs.due.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop_tx.send(true).unwrap();
        looping.await.unwrap();
        let mut done = jobs.done.lock().unwrap().clone();
        done.sort();
        assert_eq!(done, (0..10).collect::<Vec<_>>());
        assert_eq!(jobs.most_at_once.load(Ordering::SeqCst), 3);
        assert_eq!(jobs.running.load(Ordering::SeqCst), 0);
    }
}
