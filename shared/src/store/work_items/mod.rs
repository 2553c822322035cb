//! The `work_items` table: one row per message and queue, the claim that decides who works on a
//! message (`claim`), and how its row settles when it is finished or scheduled for retry.

mod claim;

pub use claim::*;

use std::borrow::Cow;

use deadpool_postgres::Transaction;
use serde_json::Value;
use uuid::Uuid;

use crate::contract::errors::Failure;
use crate::store::column::{into_storable, storable, text_column};
use crate::store::error::StoreError;

/// Where a message stands (`work_items.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkState {
    /// A holder is working on it (or vanished while it did: see `claimed_until`).
    InFlight,
    /// A retry copy is on its way through a tier.
    RetryScheduled,
    /// Finished for good; its result is kept to answer duplicates.
    Done,
}

impl WorkState {
    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkState::InFlight => "in_flight",
            WorkState::RetryScheduled => "retry_scheduled",
            WorkState::Done => "done",
        }
    }
}

text_column!(WorkState: InFlight, RetryScheduled, Done);

/// The work row's new state after an attempt.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// Finished for good.
    Done {
        /// Terminal status.
        status: String,
        /// Attempts made.
        attempts: u32,
        /// Routing key of the result event.
        routing_key: String,
        /// The result event, kept to answer duplicates.
        result: Value,
        /// The failure, if the status is one.
        error: Option<Failure>,
    },
    /// A retry copy carrying `next_attempt` is on its way through a tier.
    RetryScheduled {
        /// Attempts made.
        attempts: u32,
        /// The attempt number of the scheduled copy.
        next_attempt: u32,
        /// The tier it waits in, by its delay (`5s`).
        tier: String,
        /// How long it waits there.
        wait: std::time::Duration,
        /// Why the attempt failed.
        error: Failure,
    },
}

impl Settlement {
    /// Attempts made.
    pub fn attempts(&self) -> u32 {
        match self {
            Settlement::Done { attempts, .. } | Settlement::RetryScheduled { attempts, .. } => {
                *attempts
            }
        }
    }
}

/// A work row whose retry is scheduled: id, attempts made, the scheduled attempt, the failure, the
/// tier and the wait in milliseconds.
type Retry<'a> = (Uuid, i32, i32, Option<Value>, &'a str, i32);

/// A group's settlements as the columns of the finished rows' `unnest` and the scheduled retries.
fn columns<'a>(outcomes: &'a [(Uuid, &'a Settlement)]) -> (DoneRows<'a>, Vec<Retry<'a>>) {
    let mut done = DoneRows::default();
    let mut retries = Vec::new();
    for (id, work) in outcomes {
        match work {
            Settlement::Done {
                status,
                attempts,
                routing_key,
                result,
                error,
            } => {
                done.ids.push(*id);
                done.statuses.push(status.as_str());
                done.attempts.push(*attempts as i32);
                done.routing_keys.push(routing_key.as_str());
                done.results.push(storable(result));
                done.errors.push(
                    error
                        .as_ref()
                        .and_then(|e| serde_json::to_value(e).ok())
                        .map(into_storable),
                );
            }
            Settlement::RetryScheduled {
                attempts,
                next_attempt,
                tier,
                wait,
                error,
            } => retries.push((
                *id,
                *attempts as i32,
                *next_attempt as i32,
                serde_json::to_value(error).ok().map(into_storable),
                tier.as_str(),
                i32::try_from(wait.as_millis()).unwrap_or(i32::MAX),
            )),
        }
    }
    (done, retries)
}

/// The finished messages of one group, as the columns of one `unnest`.
#[derive(Default)]
struct DoneRows<'a> {
    ids: Vec<Uuid>,
    statuses: Vec<&'a str>,
    attempts: Vec<i32>,
    routing_keys: Vec<&'a str>,
    results: Vec<Cow<'a, Value>>,
    errors: Vec<Option<Value>>,
}

/// Records the outcomes of a group: every finished message in one statement, then each retry.
pub(crate) async fn record(
    txn: &Transaction<'_>,
    queue: &str,
    outcomes: &[(Uuid, &Settlement)],
) -> Result<(), StoreError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let (done, retries) = columns(outcomes);
    let mark_done = txn.prepare_cached(MARK_DONE).await?;
    let mark_retry = txn.prepare_cached(MARK_RETRY).await?;
    let d = &done;
    let results: Vec<&Value> = d.results.iter().map(|r| &**r).collect();
    let finished = async {
        if d.ids.is_empty() {
            return Ok(0);
        }
        txn.execute(
            &mark_done,
            &[
                &queue,
                &d.ids,
                &d.statuses,
                &d.attempts,
                &d.routing_keys,
                &results,
                &d.errors,
            ],
        )
        .await
    };
    let mark_retry = &mark_retry;
    let retried = futures::future::try_join_all(retries.iter().map(
        |(id, attempts, next, error, tier, wait_ms)| async move {
            txn.execute(
                mark_retry,
                &[&queue, id, attempts, next, error, tier, wait_ms],
            )
            .await
        },
    ));
    futures::try_join!(finished, retried)?;
    Ok(())
}

/// Extends the lease of an in-flight message; says whether the row was still in flight.
pub(crate) async fn renew(
    client: &deadpool_postgres::Object,
    queue: &str,
    message_id: Uuid,
    lease_secs: f64,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE work_items SET claimed_until = now() + make_interval(secs => $3)
             WHERE queue = $1 AND message_id = $2 AND state = 'in_flight'",
        )
        .await?;
    Ok(client
        .execute(&stmt, &[&queue, &message_id, &lease_secs])
        .await?
        == 1)
}

/// Deletes up to `limit` rows of `queue` finished more than `older_than` ago, with their failed
/// attempts; answers how many rows. A message seen again after that is new work: the retention is how
/// long duplicates are recognised.
pub async fn prune(
    pool: &deadpool_postgres::Pool,
    queue: &str,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<u64, StoreError> {
    let client = pool
        .get()
        .await
        .map_err(crate::store::error::DbError::from)?;
    let stmt = client
        .prepare_cached(
            "WITH gone AS (
                 DELETE FROM work_items WHERE queue = $1 AND message_id = ANY(ARRAY(
                     SELECT message_id FROM work_items
                     WHERE queue = $1 AND state = 'done'
                       AND created_at < now() - make_interval(secs => $2)
                     LIMIT $3))
                 RETURNING message_id
             ), attempts AS (
                 DELETE FROM work_attempts a USING gone
                 WHERE a.queue = $1 AND a.message_id = gone.message_id
             )
             SELECT count(*) FROM gone",
        )
        .await?;
    let gone: i64 = client
        .query_one(&stmt, &[&queue, &older_than.as_secs_f64(), &limit])
        .await?
        .try_get(0)?;
    Ok(gone as u64)
}

/// Every finished message of a group in one statement: one execution, not one per row.
const MARK_DONE: &str = "UPDATE work_items AS w SET state = 'done', status = t.status,
        attempts = t.attempts, result_routing_key = t.routing_key, result = t.result,
        last_error = t.error, claimed_until = NULL, completed_at = now(), updated_at = now()
    FROM unnest($2::uuid[], $3::text[], $4::int4[], $5::text[], $6::jsonb[], $7::jsonb[])
         AS t(message_id, status, attempts, routing_key, result, error)
    WHERE w.queue = $1 AND w.message_id = t.message_id";

/// A message whose retry copy is on its way through a tier, and the failed attempt kept in
/// `work_attempts` (the claim's `updated_at` gives its latency; every part of one statement sees the
/// row as it was before the update).
const MARK_RETRY: &str = "WITH claimed AS (
        SELECT updated_at FROM work_items WHERE queue = $1 AND message_id = $2
    ), settled AS (
        UPDATE work_items SET state = 'retry_scheduled', attempts = $3, next_attempt = $4,
            last_error = $5, claimed_until = NULL, updated_at = now()
        WHERE queue = $1 AND message_id = $2 RETURNING 1
    )
    INSERT INTO work_attempts (queue, message_id, attempt, next_attempt, tier, wait_ms, error,
                               latency_ms)
    SELECT $1, $2, $3, $4, $6, $7, $5, (extract(epoch FROM now() - c.updated_at) * 1000)::int4
    FROM settled, claimed c
    ON CONFLICT (queue, message_id, attempt) DO NOTHING";
