//! A new database's first statistics: for the first minutes of a worker, every few seconds, the tables
//! that have rows and were never analyzed are analyzed (see [`crate::store::statistics`]).

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use crate::runtime::stop::StopSignal;
use crate::store::statistics;

/// How often a new table is looked for.
const EVERY: Duration = Duration::from_secs(5);

/// How long after the worker's start: later, autovacuum has had its turns.
const FOR: Duration = Duration::from_secs(600);

/// Rows a table holds before it is worth analyzing: enough that its plans should use its indexes.
const MIN_ROWS: i64 = 1_000;

/// Looks for new tables without statistics for the worker's first minutes, then ends.
pub async fn run(pool: Pool, mut stop: StopSignal) {
    let until = Instant::now() + FOR;
    while Instant::now() < until && stop.sleep(EVERY).await {
        match statistics::analyze_new_tables(&pool, MIN_ROWS).await {
            Ok(tables) if tables.is_empty() => {}
            Ok(tables) => tracing::info!(?tables, "gathered the first statistics of new tables"),
            Err(e) => tracing::debug!(error = %e, "could not look for tables without statistics"),
        }
    }
}
