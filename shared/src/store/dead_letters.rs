//! The `dead_letters` table: every message pasarela gave up on, with why, for operators to read,
//! replay or discard.

use serde_json::Value;

use deadpool_postgres::Transaction;

use crate::contract::errors::ErrorKind;
use crate::store::column::{storable, storable_text};
use crate::store::error::StoreError;

/// A row of `dead_letters`.
#[derive(Debug, Clone)]
pub struct DeadLetterRow {
    /// The message's `message_id`, if it had one.
    pub message_id: Option<String>,
    /// The classification.
    pub kind: ErrorKind,
    /// Why it was dead-lettered.
    pub reason: String,
    /// Attempts made, when known.
    pub attempts: Option<u32>,
    /// The message's headers.
    pub headers: Value,
    /// The message's body.
    pub body: Vec<u8>,
}

/// Records one dead letter under `queue`.
const INSERT: &str =
    "INSERT INTO dead_letters (queue, message_id, error_kind, reason, attempts, headers, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Records the dead letters of a group under `queue`.
pub(crate) async fn insert(
    txn: &Transaction<'_>,
    queue: &str,
    rows: &[&DeadLetterRow],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let stmt = txn.prepare_cached(INSERT).await?;
    futures::future::try_join_all(rows.iter().map(|d| {
        let stmt = &stmt;
        async move {
            let attempts = d.attempts.map(|a| a as i32);
            let message_id = d.message_id.as_deref().map(storable_text);
            let message_id = message_id.as_deref();
            let reason = storable_text(&d.reason);
            let headers = storable(&d.headers);
            txn.execute(
                stmt,
                &[
                    &queue,
                    &message_id,
                    &d.kind.as_str(),
                    &&*reason,
                    &attempts,
                    &&*headers,
                    &d.body,
                ],
            )
            .await
        }
    }))
    .await?;
    Ok(())
}

// What `pasarela dlq` reads and marks: the letters waiting for a replay, and the replay's mark.

/// A `dead_letters` row not yet replayed.
#[derive(Debug, Clone)]
pub struct WaitingRow {
    /// The row's id, in the order letters arrived.
    pub id: i64,
    /// The message's `message_id`, if it had one.
    pub message_id: Option<String>,
    /// The class of failure, as recorded.
    pub kind: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// When it was dead-lettered.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The oldest letters of a queue not yet replayed, with how many there are in all.
const WAITING: &str = "SELECT id, message_id, error_kind, reason, created_at, count(*) OVER ()
     FROM dead_letters WHERE queue = $1 AND replayed_at IS NULL
     ORDER BY id LIMIT $2";

/// The oldest `limit` rows of `queue` not yet replayed, and how many there are in all.
pub async fn waiting(
    pool: &deadpool_postgres::Pool,
    queue: &str,
    limit: u32,
) -> Result<(Vec<WaitingRow>, i64), crate::store::error::DbError> {
    let client = pool.get().await?;
    let rows = client.query(WAITING, &[&queue, &i64::from(limit)]).await?;
    let total = match rows.first() {
        Some(r) => r.try_get(5)?,
        None => 0,
    };
    let rows = rows
        .iter()
        .map(|r| {
            Ok(WaitingRow {
                id: r.try_get(0)?,
                message_id: r.try_get(1)?,
                kind: r.try_get(2)?,
                reason: r.try_get(3)?,
                created_at: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok((rows, total))
}

/// Marks a queue's letters of the given messages replayed; letters already marked keep their time.
const MARK_REPLAYED: &str = "UPDATE dead_letters SET replayed_at = now()
     WHERE queue = $1 AND message_id = ANY($2) AND replayed_at IS NULL";

/// Sets `replayed_at` on `queue`'s rows of the replayed messages, in one statement; returns how
/// many rows it marked.
pub async fn mark_replayed(
    pool: &deadpool_postgres::Pool,
    queue: &str,
    message_ids: &[String],
) -> Result<u64, crate::store::error::DbError> {
    if message_ids.is_empty() {
        return Ok(0);
    }
    let client = pool.get().await?;
    Ok(client
        .execute(MARK_REPLAYED, &[&queue, &message_ids])
        .await?)
}
