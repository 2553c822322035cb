//! What a `doc.callback` check reads and writes: the document locked for the check, then signed,
//! failed, or its next poll scheduled, in the caller's transaction.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use uuid::Uuid;

use crate::contract::errors::Failure;
use crate::contract::events::DocumentFacts;
use crate::store::documents::DocumentState;
use crate::store::error::DbError;

/// The document as a check reads it, under its row lock.
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// Where it stands.
    pub state: DocumentState,
    /// The vendor's id, once submitted.
    pub vendor_document_id: Option<String>,
    /// The client's webhook URL, if the producer gave one.
    pub client_callback_url: Option<String>,
    /// The tenant.
    pub tenant: String,
    /// The document's name.
    pub document_name: String,
    /// Status polls made so far.
    pub polls: i32,
    /// Whether the time allowed for polling is over.
    pub poll_over: bool,
    /// The message that finished it, once final.
    pub completed_by: Option<Uuid>,
    /// What the events say of it.
    pub facts: DocumentFacts,
    /// Why it failed, when it did.
    pub error_message: Option<String>,
}

/// Reads document `id` for a check and locks its row until the transaction ends; `None` when there
/// is no such document.
pub async fn lock_for_check(txn: &Transaction<'_>, id: Uuid) -> Result<Option<CheckRow>, DbError> {
    let stmt = txn
        .prepare_cached(
            "SELECT state, vendor_document_id, client_callback_url, tenant, document_name, polls,
                    coalesce(poll_until < now(), false), completed_by, date_sent_to_sign,
                    signing_date, coalesce(assigned_active_directory_user, active_directory_user),
                    error_message
             FROM documents WHERE document_id = $1 FOR UPDATE",
        )
        .await?;
    let Some(r) = txn.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    Ok(Some(CheckRow {
        state: r.try_get(0)?,
        vendor_document_id: r.get(1),
        client_callback_url: r.get(2),
        tenant: r.get(3),
        document_name: r.get(4),
        polls: r.get(5),
        poll_over: r.get(6),
        completed_by: r.get(7),
        facts: DocumentFacts {
            vendor_document_id: r.get(1),
            date_sent_to_sign: r.get(8),
            signing_date: r.get(9),
            assigned_active_directory_user: r.get(10),
        },
        error_message: r.get(11),
    }))
}

/// A document the vendor signed, as the check records it (its PDF stored apart).
#[derive(Debug, Clone)]
pub struct SignedCheck<'a> {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// The vendor's status word and message.
    pub vendor_status: &'a str,
    /// The vendor's message, if any.
    pub vendor_message: Option<&'a str>,
    /// The signed PDF's size.
    pub signed_bytes: i64,
    /// The signed PDF's name, as the vendor gave it.
    pub signed_document_name: Option<&'a str>,
    /// What the events say of it.
    pub facts: &'a DocumentFacts,
    /// The message that finished it.
    pub completed_by: Uuid,
}

/// Marks the document signed (the signing date is now when the vendor gave none).
pub async fn mark_signed(txn: &Transaction<'_>, s: &SignedCheck<'_>) -> Result<(), DbError> {
    let stmt = txn
        .prepare_cached(
            "UPDATE documents SET state = 'signed', vendor_status = $2, vendor_message = $3,
                 signed_bytes = $4, signed_document_name = $5, date_sent_to_sign = $6,
                 signing_date = coalesce($7, now()), assigned_active_directory_user = $8,
                 completed_at = now(), completed_by = $9, next_poll_at = NULL
             WHERE document_id = $1",
        )
        .await?;
    txn.execute(
        &stmt,
        &[
            &s.document_id,
            &s.vendor_status,
            &s.vendor_message,
            &s.signed_bytes,
            &s.signed_document_name,
            &s.facts.date_sent_to_sign,
            &s.facts.signing_date,
            &s.facts.assigned_active_directory_user,
            &s.completed_by,
        ],
    )
    .await?;
    Ok(())
}

/// Marks the document failed for good.
pub async fn mark_failed(
    txn: &Transaction<'_>,
    document_id: Uuid,
    vendor_status: &str,
    vendor_message: Option<&str>,
    failure: &Failure,
    completed_by: Uuid,
    date_sent_to_sign: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    let stmt = txn
        .prepare_cached(
            "UPDATE documents SET state = 'failed', vendor_status = $2, vendor_message = $3,
                 error_kind = $4, error_message = $5, completed_at = now(), completed_by = $6,
                 next_poll_at = NULL, date_sent_to_sign = $7
             WHERE document_id = $1",
        )
        .await?;
    txn.execute(
        &stmt,
        &[
            &document_id,
            &vendor_status,
            &vendor_message,
            &failure.kind.as_str(),
            &failure.message,
            &completed_by,
            &date_sent_to_sign,
        ],
    )
    .await?;
    Ok(())
}

/// Records the vendor's status of a document still in progress and when to poll it next.
pub async fn schedule_poll(
    txn: &Transaction<'_>,
    document_id: Uuid,
    vendor_status: &str,
    polls: i32,
    next_in: std::time::Duration,
) -> Result<(), DbError> {
    let stmt = txn
        .prepare_cached(
            "UPDATE documents SET vendor_status = $2, polls = $3,
                 next_poll_at = now() + make_interval(secs => $4)
             WHERE document_id = $1",
        )
        .await?;
    txn.execute(
        &stmt,
        &[&document_id, &vendor_status, &polls, &next_in.as_secs_f64()],
    )
    .await?;
    Ok(())
}
