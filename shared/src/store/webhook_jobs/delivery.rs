//! What the dispatcher does with the jobs: queue one, take the due ones under a lease (within each
//! endpoint's free slots), and record each attempt with what follows from it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use uuid::Uuid;

use crate::contract::envelope::OutboundMessage;
use crate::store::error::{DbError, StoreError};
use crate::store::outbox;

/// The `outbox.queue` of webhook events.
pub const OUTBOX_QUEUE: &str = "doc.webhook";

/// A webhook to queue for a document.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The document it is about.
    pub document_id: Uuid,
    /// `document.signed` or `document.sign_failed`.
    pub event_type: &'a str,
    /// The client's endpoint.
    pub url: &'a str,
    /// The body, as every attempt sends it.
    pub payload: &'a serde_json::Value,
    /// The `traceparent` every attempt continues.
    pub trace_context: Option<&'a str>,
}

/// Queues `job` for delivery now, inside the caller's transaction, with a fresh `webhook-id` that
/// every attempt keeps.
pub async fn queue(txn: &Transaction<'_>, job: &NewJob<'_>) -> Result<(), DbError> {
    let stmt = txn
        .prepare_cached(
            "INSERT INTO webhook_jobs (job_id, document_id, webhook_id, event_type, url, payload,
                 state, next_attempt_at, trace_context)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', now(), $7)",
        )
        .await?;
    txn.execute(
        &stmt,
        &[
            &Uuid::now_v7(),
            &job.document_id,
            &format!("msg_{}", Uuid::now_v7().simple()),
            &job.event_type,
            &job.url,
            &job.payload,
            &job.trace_context,
        ],
    )
    .await?;
    Ok(())
}

/// One job taken for an attempt.
#[derive(Debug, Clone)]
pub struct DueJob {
    /// The job.
    pub job_id: Uuid,
    /// The document it is about.
    pub document_id: Uuid,
    /// The Standard Webhooks `webhook-id`.
    pub webhook_id: String,
    /// The client's endpoint.
    pub url: String,
    /// The body.
    pub payload: String,
    /// This attempt's number, counting from 1.
    pub attempt: i32,
    /// When the endpoint answered 410 Gone, if it is disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The `traceparent` the attempt continues.
    pub trace_context: Option<String>,
}

/// Takes at most `free` due jobs (pending and due, or delivering with a lease run out), at most
/// `per_endpoint` in flight per endpoint counting `busy` (endpoint, attempts in flight) of this
/// process, leasing each for `lease`. Replicas share them through `SKIP LOCKED`.
pub async fn take_due(
    pool: &Pool,
    busy: &[(String, i32)],
    per_endpoint: i64,
    free: i64,
    lease: Duration,
) -> Result<Vec<DueJob>, DbError> {
    let (urls, used): (Vec<&str>, Vec<i32>) = busy.iter().map(|(u, n)| (u.as_str(), *n)).unzip();
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "WITH due AS (
                 SELECT job_id, url, next_attempt_at FROM webhook_jobs
                 WHERE (state = 'pending' AND next_attempt_at <= now())
                    OR (state = 'delivering' AND leased_until < now())
                 ORDER BY next_attempt_at LIMIT 1000 FOR UPDATE SKIP LOCKED
             ), ranked AS (
                 SELECT due.job_id, due.next_attempt_at,
                        row_number() OVER (PARTITION BY due.url ORDER BY due.next_attempt_at) AS n,
                        coalesce(busy.used, 0) AS used
                 FROM due LEFT JOIN unnest($1::text[], $2::int[]) AS busy(url, used)
                      ON busy.url = due.url
             ), chosen AS (
                 SELECT job_id FROM ranked WHERE n + used <= $3
                 ORDER BY next_attempt_at LIMIT $4
             )
             UPDATE webhook_jobs j SET state = 'delivering', attempts = j.attempts + 1,
                 leased_until = now() + make_interval(secs => $5)
             FROM chosen WHERE j.job_id = chosen.job_id
             RETURNING j.job_id, j.document_id, j.webhook_id, j.url, j.payload::text, j.attempts,
                 (SELECT e.disabled_at FROM webhook_endpoints e
                  WHERE e.url = j.url AND e.disabled_at IS NOT NULL), j.trace_context",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[&urls, &used, &per_endpoint, &free, &lease.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DueJob {
            job_id: r.get(0),
            document_id: r.get(1),
            webhook_id: r.get(2),
            url: r.get(3),
            payload: r.get(4),
            attempt: r.get(5),
            disabled_at: r.get(6),
            trace_context: r.get(7),
        })
        .collect())
}

/// One attempt and what follows from it.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    /// The job attempted.
    pub job: &'a DueJob,
    /// The endpoint's HTTP status, when it answered.
    pub http_status: Option<i32>,
    /// How long the attempt took.
    pub latency: Duration,
    /// What went wrong, if anything.
    pub error: Option<&'a str>,
    /// `delivered`, `pending` (another attempt follows) or `failed`.
    pub state: &'a str,
    /// When the next attempt is due, for a `pending` job.
    pub next_in: Option<Duration>,
    /// The endpoint answered 410 Gone: disable it until someone redelivers.
    pub gone: bool,
    /// The final event (`doc.webhook.delivered` or `failed`), kept in the outbox with the record.
    pub event: Option<OutboundMessage>,
}

/// Records an attempt, moves the job on, disables a gone endpoint and keeps the final event in the
/// outbox, in one transaction; `false` when the lease ran out and another dispatcher took the job
/// (its attempt decides). Send the event with [`outbox::flush`] after.
pub async fn record_attempt(pool: &Pool, a: &AttemptRecord<'_>) -> Result<bool, StoreError> {
    let next_secs = a.next_in.map(|d| d.as_secs_f64());
    let mut conn = pool.get().await.map_err(DbError::from)?;
    let txn = conn.transaction().await?;
    txn.execute(
        "INSERT INTO webhook_deliveries (job_id, document_id, attempt, url, http_status,
             latency_ms, error, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))",
        &[
            &a.job.job_id,
            &a.job.document_id,
            &a.job.attempt,
            &a.job.url,
            &a.http_status,
            &(a.latency.as_millis() as i32),
            &a.error,
            &next_secs,
        ],
    )
    .await?;
    let updated = txn
        .execute(
            "UPDATE webhook_jobs SET state = $2, leased_until = NULL,
                 next_attempt_at = now() + make_interval(secs => $3),
                 last_http_status = $4, last_error = $5,
                 completed_at = CASE WHEN $2 IN ('delivered', 'failed') THEN now() END
             WHERE job_id = $1 AND state = 'delivering' AND attempts = $6",
            &[
                &a.job.job_id,
                &a.state,
                &next_secs,
                &a.http_status,
                &a.error,
                &a.job.attempt,
            ],
        )
        .await?;
    if updated == 0 {
        return Ok(false);
    }
    if a.gone {
        txn.execute(
            "INSERT INTO webhook_endpoints (url, disabled_at, disabled_reason)
             VALUES ($1, now(), '410 Gone')
             ON CONFLICT (url) DO UPDATE SET disabled_at = now(), disabled_reason = '410 Gone'",
            &[&a.job.url],
        )
        .await?;
    }
    if let Some(event) = &a.event {
        outbox::write(
            &*txn,
            OUTBOX_QUEUE,
            a.job.job_id,
            std::slice::from_ref(event),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}
