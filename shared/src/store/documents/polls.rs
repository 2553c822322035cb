//! Documents due for a status poll, taken under a lease.

use uuid::Uuid;

use crate::store::error::DbError;

/// A document due for a status poll.
#[derive(Debug, Clone)]
pub struct DuePoll {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// The vendor's id for it.
    pub vendor_document_id: Option<String>,
    /// The `traceparent` of the message that brought the document.
    pub trace_context: Option<String>,
}

/// Takes at most `limit` submitted documents whose poll is due, pushing their next poll `lease` out
/// (the time the poll's message has to be handled in). Replicas share them through `SKIP LOCKED`.
pub async fn lease_due_polls(
    pool: &deadpool_postgres::Pool,
    limit: i64,
    lease: std::time::Duration,
) -> Result<Vec<DuePoll>, DbError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "UPDATE documents d SET next_poll_at = now() + make_interval(secs => $2)
             FROM (SELECT document_id FROM documents
                   WHERE state = 'submitted' AND next_poll_at <= now()
                   ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
             WHERE d.document_id = due.document_id
             RETURNING d.document_id, d.vendor_document_id, d.trace_context",
        )
        .await?;
    let rows = client.query(&stmt, &[&limit, &lease.as_secs_f64()]).await?;
    Ok(rows
        .iter()
        .map(|r| DuePoll {
            document_id: r.get(0),
            vendor_document_id: r.get(1),
            trace_context: r.get(2),
        })
        .collect())
}
