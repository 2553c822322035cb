//! Pruning of finished work rows past `PASARELA_WORK_RETENTION`, so that `work_items` stays the size of
//! the retention window rather than of the worker's whole history.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

use crate::runtime::jobs::{self, Jobs};
use crate::runtime::stop::StopSignal;
use crate::store::error::StoreError;
use crate::store::work_items;

/// Rows one statement deletes at most: short transactions, little bloat at a time.
const BATCH: i64 = 5_000;

/// Batches one turn deletes at most, so a large backlog is worked off over several turns.
const TURN_BATCHES: usize = 20;

/// The prune loop of one queue.
struct Pruning {
    pool: Pool,
    queue: &'static str,
    retention: Duration,
    every: Duration,
}

impl Jobs for Pruning {
    type Job = ();
    type Error = std::convert::Infallible;

    fn name(&self) -> &'static str {
        "work_items retention"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn take(&self, _free: usize) -> Result<Vec<()>, Self::Error> {
        Ok(vec![()])
    }

    async fn run(self: Arc<Self>, _job: ()) {
        match self.prune().await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("pasarela_work_items_pruned_total", "queue" => self.queue)
                    .increment(n);
                tracing::info!(queue = self.queue, pruned = n, retention = ?self.retention,
                    "pruned finished work rows past their retention");
            }
            Err(e) => tracing::warn!(error = %e, "could not prune finished work rows"),
        }
    }
}

impl Pruning {
    async fn prune(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for _ in 0..TURN_BATCHES {
            let n = work_items::prune(&self.pool, self.queue, self.retention, BATCH).await?;
            total += n;
            if n < BATCH as u64 {
                break;
            }
        }
        Ok(total)
    }
}

/// Prunes `queue`'s finished rows older than `retention` every `every`, until stopped.
pub async fn run(
    pool: Pool,
    queue: &'static str,
    retention: Duration,
    every: Duration,
    stop: StopSignal,
) {
    let pruning = Pruning {
        pool,
        queue,
        retention,
        every,
    };
    jobs::run(Arc::new(pruning), stop).await;
}
