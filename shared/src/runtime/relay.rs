//! The outbox relay: publishes rows that a crash or a broker outage left behind, and the last flush
//! on the way out.

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::runtime::publisher::Publisher;
use crate::runtime::stop::StopSignal;
use crate::store::outbox;

/// Rows one relay pass takes at most.
const PASS_ROWS: i64 = 500;

/// Bodies one pass holds in memory at most, past its first row: a `doc.sign` copy carries a document.
const PASS_BYTES: i64 = 32 * 1024 * 1024;

/// Every `every`, publishes this worker's outbox rows (those of `queues`) older than `after` while the
/// broker is there, until stopped.
pub async fn run(
    pool: Pool,
    publisher: Publisher,
    every: Duration,
    after: Duration,
    queues: Vec<String>,
    mut stop: StopSignal,
) {
    while stop.sleep(every).await {
        if !publisher.is_connected() {
            continue;
        }
        match outbox::relay(&pool, &publisher, &queues, after, PASS_ROWS, PASS_BYTES).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("pasarela_outbox_relayed_total").increment(n as u64);
                tracing::info!(published = n, "relayed outbox rows left behind");
            }
            Err(e) => tracing::debug!(error = %e, "outbox relay pass failed"),
        }
    }
}

/// Publishes whatever this worker's outbox rows still hold before the process leaves, pass by pass
/// (each bounded like the relay's); the caller bounds the whole by the grace period.
pub async fn flush_all(pool: &Pool, publisher: &Publisher, queues: &[String]) {
    let mut published = 0;
    loop {
        match outbox::relay(
            pool,
            publisher,
            queues,
            Duration::ZERO,
            PASS_ROWS,
            PASS_BYTES,
        )
        .await
        {
            Ok(0) => break,
            Ok(n) => published += n,
            Err(e) => {
                tracing::warn!(error = %e, "outbox left for the relay of another replica or restart");
                break;
            }
        }
    }
    if published > 0 {
        tracing::info!(published, "flushed the outbox");
    }
}
