//! What a document's messages record: a submission, a failure.

use uuid::Uuid;

use crate::contract::errors::Failure;

/// A document the vendor accepted: it waits for the vendor's webhook, and is polled meanwhile.
#[derive(Debug, Clone)]
pub struct SubmittedRow {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// The vendor's id for it.
    pub vendor_document_id: Option<String>,
    /// When the first poll is due, from now.
    pub first_poll: std::time::Duration,
    /// How long polling goes on, from now.
    pub poll_for: std::time::Duration,
}

impl SubmittedRow {
    /// Records the submission inside the group's transaction.
    pub(crate) async fn write(
        &self,
        txn: &deadpool_postgres::Transaction<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let stmt = txn
            .prepare_cached(
                "UPDATE documents SET state = 'submitted', vendor_document_id = $2,
                     vendor_status = 'received', submitted_at = now(),
                     next_poll_at = now() + make_interval(secs => $3),
                     poll_until = now() + make_interval(secs => $4)
                 WHERE document_id = $1 AND state = 'stored'",
            )
            .await?;
        txn.execute(
            &stmt,
            &[
                &self.document_id,
                &self.vendor_document_id,
                &self.first_poll.as_secs_f64(),
                &self.poll_for.as_secs_f64(),
            ],
        )
        .await
    }
}

/// A document that failed for good before or at submission; one refused before it was stored still
/// gets a row, so its status can be read.
#[derive(Debug, Clone)]
pub struct FailedRow {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// The message that failed it.
    pub message_id: Uuid,
    /// The tenant (at most 500 characters kept).
    pub tenant: String,
    /// The document's name (at most 500 characters kept).
    pub document_name: String,
    /// Who was to sign it (at most 500 characters kept).
    pub active_directory_user: String,
    /// The signature type (at most 100 characters kept).
    pub signature_type: String,
    /// The client's callback URL (at most 2000 characters kept).
    pub client_callback_url: Option<String>,
    /// The PDF's size, decoded.
    pub document_bytes: i64,
    /// Why it failed.
    pub error: Failure,
}

impl FailedRow {
    /// Records the failure inside the group's transaction.
    pub(crate) async fn write(
        &self,
        txn: &deadpool_postgres::Transaction<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let stmt = txn
            .prepare_cached(
                "INSERT INTO documents (document_id, message_id, tenant, document_name,
                     active_directory_user, signature_type, client_callback_url,
                     callback_token_sha256, state, document_bytes, error_kind, error_message,
                     completed_at)
                 VALUES ($1, $2, left($3, 500), left($4, 500), left($5, 500), left($6, 100),
                         left($7, 2000), '\\x', 'failed', $8, $9, $10, now())
                 ON CONFLICT (document_id) DO UPDATE SET state = 'failed',
                     error_kind = EXCLUDED.error_kind, error_message = EXCLUDED.error_message,
                     completed_at = now(), next_poll_at = NULL
                 WHERE documents.message_id = EXCLUDED.message_id
                   AND documents.state IN ('stored', 'failed')",
            )
            .await?;
        txn.execute(
            &stmt,
            &[
                &self.document_id,
                &self.message_id,
                &self.tenant,
                &self.document_name,
                &self.active_directory_user,
                &self.signature_type,
                &self.client_callback_url,
                &self.document_bytes,
                &self.error.kind.as_str(),
                &self.error.message,
            ],
        )
        .await
    }
}
