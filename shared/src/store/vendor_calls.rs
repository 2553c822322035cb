//! The `vendor_calls` table: one row per `vendor.call` message, what was asked and how it ended
//! (never the request or answer bodies, which may carry a producer's data).

use deadpool_postgres::Transaction;
use uuid::Uuid;

use crate::contract::errors::Failure;

/// A finished vendor call.
#[derive(Debug, Clone)]
pub struct CallRow {
    /// The producer's `call_id`.
    pub call_id: Uuid,
    /// The message that finished it.
    pub message_id: Uuid,
    /// The vendor (at most 40 characters kept).
    pub vendor: String,
    /// The HTTP method (at most 10 characters kept).
    pub method: String,
    /// The path without its query string (at most 500 characters kept).
    pub path: String,
    /// The event's status.
    pub status: String,
    /// The vendor's HTTP status, when it answered.
    pub http_status: Option<i32>,
    /// How long the call took, when it was made.
    pub latency_ms: Option<i32>,
    /// Attempts made.
    pub attempts: i32,
    /// Why it failed, if it did.
    pub error: Option<Failure>,
}

const UPSERT: &str = "INSERT INTO vendor_calls (call_id, message_id, vendor, method, path, status,
        http_status, latency_ms, attempts, error_kind, error_message, completed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())
    ON CONFLICT (call_id) DO UPDATE SET status = EXCLUDED.status,
        http_status = EXCLUDED.http_status, latency_ms = EXCLUDED.latency_ms,
        attempts = EXCLUDED.attempts, error_kind = EXCLUDED.error_kind,
        error_message = EXCLUDED.error_message, completed_at = now()
    WHERE vendor_calls.message_id = EXCLUDED.message_id";

impl CallRow {
    /// Records the call inside the group's transaction.
    pub(crate) async fn write(&self, txn: &Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
        let stmt = txn.prepare_cached(UPSERT).await?;
        let kind = self.error.as_ref().map(|e| e.kind.as_str());
        let message = self.error.as_ref().map(|e| e.message.as_str());
        txn.execute(
            &stmt,
            &[
                &self.call_id,
                &self.message_id,
                &self.vendor,
                &self.method,
                &self.path,
                &self.status,
                &self.http_status,
                &self.latency_ms,
                &self.attempts,
                &kind,
                &message,
            ],
        )
        .await
    }
}
