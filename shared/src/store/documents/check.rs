//! What a `doc.callback` check reads and writes. The document is read without a lock, the vendor is
//! asked outside any transaction, and what it said is a [`Checked`] record written in the runtime's
//! one commit: signed, failed, or its next poll. Only a document still `submitted` changes, so two
//! checks that race each other finish it once.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use crate::contract::errors::Failure;
use crate::contract::events::DocumentFacts;
use crate::store::documents::{DocumentState, FileKind, StoreFileError, store_file};
use crate::store::error::{DbError, StoreError};
use crate::store::webhook_jobs::{self, NewJob};

/// The document as a check reads it.
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

/// Reads document `id` for a check, without a lock: the vendor calls that follow hold no row and no
/// transaction. `None` when there is no such document.
pub async fn read_for_check(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<CheckRow>, DbError> {
    let stmt = client
        .prepare_cached(
            "SELECT state, vendor_document_id, client_callback_url, tenant, document_name, polls,
                    coalesce(poll_until < now(), false), completed_by, date_sent_to_sign,
                    signing_date, coalesce(assigned_active_directory_user, active_directory_user),
                    error_message
             FROM documents WHERE document_id = $1",
        )
        .await?;
    let Some(r) = client.query_opt(&stmt, &[&id]).await? else {
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

/// Leases submitted document `id` to the check of message `holder` for `lease`, unless another
/// message's check holds it; says whether it got it. A check that is tried again keeps its own lease.
pub async fn lease_check(
    client: &impl GenericClient,
    id: Uuid,
    holder: Uuid,
    lease: std::time::Duration,
) -> Result<bool, DbError> {
    let stmt = client
        .prepare_cached(
            "UPDATE documents SET checking_by = $2,
                 checking_until = now() + make_interval(secs => $3)
             WHERE document_id = $1 AND state = 'submitted'
               AND (checking_until IS NULL OR checking_until < now() OR checking_by = $2)",
        )
        .await?;
    Ok(client
        .execute(&stmt, &[&id, &holder, &lease.as_secs_f64()])
        .await?
        == 1)
}

/// A client webhook to queue with a check's outcome.
#[derive(Debug, Clone)]
pub struct CheckWebhook {
    /// `document.signed` or `document.sign_failed`.
    pub event_type: &'static str,
    /// The client's endpoint.
    pub url: String,
    /// The body every attempt sends.
    pub payload: serde_json::Value,
    /// The `traceparent` every attempt continues: the check's, in the trace of the document.
    pub trace_context: Option<String>,
}

/// What a check found, written in the runtime's commit.
#[derive(Debug, Clone)]
pub enum Checked {
    /// The vendor signed it: the signed PDF (Base64, checked) is stored with it.
    Signed {
        /// pasarela's document id.
        document_id: Uuid,
        /// The vendor's status word.
        vendor_status: String,
        /// The vendor's message, if any.
        vendor_message: Option<String>,
        /// The signed PDF's size once decoded.
        signed_bytes: i64,
        /// The signed PDF's name, as the vendor gave it.
        signed_document_name: Option<String>,
        /// What the events say of it.
        facts: DocumentFacts,
        /// The message that finished it.
        completed_by: Uuid,
        /// The signed PDF, Base64, as the vendor sent it.
        content: Bytes,
        /// The client's webhook, when the producer gave a callback URL.
        webhook: Option<CheckWebhook>,
    },
    /// The vendor failed it, or it was not signed in time.
    Failed {
        /// pasarela's document id.
        document_id: Uuid,
        /// The vendor's status word.
        vendor_status: String,
        /// The vendor's message, if any.
        vendor_message: Option<String>,
        /// Why it failed.
        failure: Failure,
        /// The message that finished it.
        completed_by: Uuid,
        /// When it went out for signature.
        date_sent_to_sign: Option<DateTime<Utc>>,
        /// The client's webhook, when the producer gave a callback URL.
        webhook: Option<CheckWebhook>,
    },
    /// Still in progress: the vendor's status and when to poll next.
    Pending {
        /// pasarela's document id.
        document_id: Uuid,
        /// The vendor's status word.
        vendor_status: String,
        /// Status polls made so far.
        polls: i32,
        /// When to poll next.
        next_in: std::time::Duration,
    },
}

impl Checked {
    /// Writes the finding inside the group's transaction; a document no longer `submitted` (another
    /// check finished it first) is left as it is, and no file or webhook is written for it.
    pub(crate) async fn write(&self, txn: &Transaction<'_>) -> Result<u64, StoreError> {
        match self {
            Checked::Signed {
                document_id,
                content,
                webhook,
                ..
            } => {
                if mark_signed(txn, self).await? == 0 {
                    return Ok(0);
                }
                store_file(txn, *document_id, FileKind::Signed, content)
                    .await
                    .map_err(|e| match e {
                        StoreFileError::Db(d) => StoreError::from(d),
                        // The content was checked before the commit; a failure here is the database's.
                        StoreFileError::Content(c) => {
                            StoreError::from(DbError::Config(c.to_string()))
                        }
                    })?;
                queue_webhook(txn, *document_id, webhook.as_ref()).await?;
                Ok(1)
            }
            Checked::Failed {
                document_id,
                webhook,
                ..
            } => {
                if mark_failed(txn, self).await? == 0 {
                    return Ok(0);
                }
                queue_webhook(txn, *document_id, webhook.as_ref()).await?;
                Ok(1)
            }
            Checked::Pending {
                document_id,
                vendor_status,
                polls,
                next_in,
            } => Ok(schedule_poll(txn, *document_id, vendor_status, *polls, *next_in).await?),
        }
    }
}

async fn queue_webhook(
    txn: &Transaction<'_>,
    document_id: Uuid,
    webhook: Option<&CheckWebhook>,
) -> Result<(), DbError> {
    let Some(w) = webhook else { return Ok(()) };
    let job = NewJob {
        document_id,
        event_type: w.event_type,
        url: &w.url,
        payload: &w.payload,
        trace_context: w.trace_context.as_deref(),
    };
    webhook_jobs::queue(txn, &job).await
}

/// Marks a submitted document signed (the signing date is now when the vendor gave none).
async fn mark_signed(txn: &Transaction<'_>, signed: &Checked) -> Result<u64, DbError> {
    let Checked::Signed {
        document_id,
        vendor_status,
        vendor_message,
        signed_bytes,
        signed_document_name,
        facts,
        completed_by,
        ..
    } = signed
    else {
        return Ok(0);
    };
    let stmt = txn
        .prepare_cached(
            "UPDATE documents SET state = 'signed', vendor_status = $2, vendor_message = $3,
                 signed_bytes = $4, signed_document_name = $5, date_sent_to_sign = $6,
                 signing_date = coalesce($7, now()), assigned_active_directory_user = $8,
                 completed_at = now(), completed_by = $9, next_poll_at = NULL,
                 checking_by = NULL, checking_until = NULL
             WHERE document_id = $1 AND state = 'submitted'",
        )
        .await?;
    Ok(txn
        .execute(
            &stmt,
            &[
                document_id,
                vendor_status,
                vendor_message,
                signed_bytes,
                signed_document_name,
                &facts.date_sent_to_sign,
                &facts.signing_date,
                &facts.assigned_active_directory_user,
                completed_by,
            ],
        )
        .await?)
}

/// Marks a submitted document failed for good.
async fn mark_failed(txn: &Transaction<'_>, failed: &Checked) -> Result<u64, DbError> {
    let Checked::Failed {
        document_id,
        vendor_status,
        vendor_message,
        failure,
        completed_by,
        date_sent_to_sign,
        ..
    } = failed
    else {
        return Ok(0);
    };
    let stmt = txn
        .prepare_cached(
            "UPDATE documents SET state = 'failed', vendor_status = $2, vendor_message = $3,
                 error_kind = $4, error_message = $5, completed_at = now(), completed_by = $6,
                 next_poll_at = NULL, date_sent_to_sign = $7,
                 checking_by = NULL, checking_until = NULL
             WHERE document_id = $1 AND state = 'submitted'",
        )
        .await?;
    Ok(txn
        .execute(
            &stmt,
            &[
                document_id,
                vendor_status,
                vendor_message,
                &failure.kind.as_str(),
                &failure.message,
                completed_by,
                date_sent_to_sign,
            ],
        )
        .await?)
}

/// Records the vendor's status of a document still in progress and when to poll it next.
async fn schedule_poll(
    txn: &Transaction<'_>,
    document_id: Uuid,
    vendor_status: &str,
    polls: i32,
    next_in: std::time::Duration,
) -> Result<u64, DbError> {
    let stmt = txn
        .prepare_cached(
            "UPDATE documents SET vendor_status = $2, polls = $3,
                 next_poll_at = now() + make_interval(secs => $4),
                 checking_by = NULL, checking_until = NULL
             WHERE document_id = $1 AND state = 'submitted'",
        )
        .await?;
    Ok(txn
        .execute(
            &stmt,
            &[&document_id, &vendor_status, &polls, &next_in.as_secs_f64()],
        )
        .await?)
}
