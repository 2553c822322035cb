//! The `dead_letters` table: every message pasarela gave up on, with why, for operators to read,
//! replay or discard.

use serde_json::Value;

use deadpool_postgres::Transaction;

use crate::contract::errors::ErrorKind;
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
            txn.execute(
                stmt,
                &[
                    &queue,
                    &d.message_id,
                    &d.kind.as_str(),
                    &d.reason,
                    &attempts,
                    &d.headers,
                    &d.body,
                ],
            )
            .await
        }
    }))
    .await?;
    Ok(())
}
