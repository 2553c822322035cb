//! A document's whole status, as operators read it.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use crate::store::documents::DocumentState;
use crate::store::error::DbError;
use crate::store::webhook_jobs::WebhookCounts;

/// A `documents` row, without the capability token's digest, and its webhook jobs counted.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentStatus {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// The producer's tenant.
    pub tenant: String,
    /// The name the signer sees.
    pub document_name: String,
    /// Where it stands.
    pub state: DocumentState,
    /// The vendor's id for it.
    pub vendor_document_id: Option<String>,
    /// The vendor's own status word.
    pub vendor_status: Option<String>,
    /// The vendor's message.
    pub vendor_message: Option<String>,
    /// Who was asked to sign.
    pub active_directory_user: String,
    /// Who the vendor assigned it to.
    pub assigned_active_directory_user: Option<String>,
    /// When the vendor sent it to the signer.
    pub date_sent_to_sign: Option<DateTime<Utc>>,
    /// When it was signed.
    pub signing_date: Option<DateTime<Utc>>,
    /// The original PDF's size.
    pub document_bytes: i64,
    /// The signed PDF's size.
    pub signed_bytes: Option<i64>,
    /// The class of failure, if it failed.
    pub error_kind: Option<String>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// Polls of the vendor so far.
    pub polls: i32,
    /// When the next poll is due.
    pub next_poll_at: Option<DateTime<Utc>>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the vendor accepted it.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When it became final.
    pub completed_at: Option<DateTime<Utc>>,
    /// When its PDFs were erased.
    pub purged_at: Option<DateTime<Utc>>,
    /// Whether the producer asked for a client webhook.
    pub has_callback_url: bool,
    /// Its webhook jobs by state.
    pub webhooks: WebhookCounts,
}

/// The status of document `id`, `None` when there is no such document.
pub async fn status(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<DocumentStatus>, DbError> {
    let row = client
        .query_opt(
            "SELECT d.document_id, d.tenant, d.document_name, d.state, d.vendor_document_id,
                    d.vendor_status, d.vendor_message, d.active_directory_user,
                    d.assigned_active_directory_user, d.date_sent_to_sign, d.signing_date,
                    d.document_bytes, d.signed_bytes, d.error_kind, d.error_message, d.polls,
                    d.next_poll_at, d.created_at, d.submitted_at, d.completed_at, d.purged_at,
                    d.client_callback_url IS NOT NULL AS has_callback_url,
                    w.pending, w.delivering, w.delivered, w.failed
             FROM documents d
             CROSS JOIN LATERAL (
                 SELECT count(*) FILTER (WHERE j.state = 'pending') AS pending,
                        count(*) FILTER (WHERE j.state = 'delivering') AS delivering,
                        count(*) FILTER (WHERE j.state = 'delivered') AS delivered,
                        count(*) FILTER (WHERE j.state = 'failed') AS failed
                 FROM webhook_jobs j WHERE j.document_id = d.document_id
             ) w
             WHERE d.document_id = $1",
            &[&id],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(DocumentStatus {
        document_id: r.try_get("document_id")?,
        tenant: r.try_get("tenant")?,
        document_name: r.try_get("document_name")?,
        state: r.try_get("state")?,
        vendor_document_id: r.try_get("vendor_document_id")?,
        vendor_status: r.try_get("vendor_status")?,
        vendor_message: r.try_get("vendor_message")?,
        active_directory_user: r.try_get("active_directory_user")?,
        assigned_active_directory_user: r.try_get("assigned_active_directory_user")?,
        date_sent_to_sign: r.try_get("date_sent_to_sign")?,
        signing_date: r.try_get("signing_date")?,
        document_bytes: r.try_get("document_bytes")?,
        signed_bytes: r.try_get("signed_bytes")?,
        error_kind: r.try_get("error_kind")?,
        error_message: r.try_get("error_message")?,
        polls: r.try_get("polls")?,
        next_poll_at: r.try_get("next_poll_at")?,
        created_at: r.try_get("created_at")?,
        submitted_at: r.try_get("submitted_at")?,
        completed_at: r.try_get("completed_at")?,
        purged_at: r.try_get("purged_at")?,
        has_callback_url: r.try_get("has_callback_url")?,
        webhooks: WebhookCounts {
            pending: r.try_get("pending")?,
            delivering: r.try_get("delivering")?,
            delivered: r.try_get("delivered")?,
            failed: r.try_get("failed")?,
        },
    }))
}
