//! How documents come in: doc-sign storing a new one with its capability token, and callback-ingress
//! finding the document a vendor's callback names.

use uuid::Uuid;

use crate::store::documents::{DocumentState, FileKind, StoreFileError, store_file};
use crate::store::error::DbError;

/// A document as doc-sign takes it.
#[derive(Debug, Clone)]
pub struct NewDocument<'a> {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// The message that brought it.
    pub message_id: Uuid,
    /// The tenant.
    pub tenant: &'a str,
    /// The document's name.
    pub document_name: &'a str,
    /// Who is to sign it.
    pub active_directory_user: &'a str,
    /// The signature type.
    pub signature_type: &'a str,
    /// The client's webhook URL, if any.
    pub client_callback_url: Option<&'a str>,
    /// The SHA-256 of the capability token of this submission.
    pub token_sha256: &'a [u8],
    /// The PDF's size, decoded.
    pub document_bytes: i64,
    /// The PDF as standard base64, already checked.
    pub content_base64: &'a [u8],
    /// The `traceparent` of the message that brought it.
    pub trace_context: Option<&'a str>,
}

/// Stores `doc` (its PDF once, whatever the retries) with this submission's token digest: a retry
/// rotates the token, so only the latest submission's callback is let in. `false` when the id is
/// taken by another message or the document is already submitted.
pub async fn store_new(
    pool: &deadpool_postgres::Pool,
    doc: &NewDocument<'_>,
) -> Result<bool, StoreFileError> {
    let mut client = pool.get().await.map_err(DbError::from)?;
    let txn = client.transaction().await?;
    let stmt = txn
        .prepare_cached(
            "INSERT INTO documents (document_id, message_id, tenant, document_name,
                 active_directory_user, signature_type, client_callback_url,
                 callback_token_sha256, state, document_bytes, trace_context)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'stored', $9, $10)
             ON CONFLICT (document_id) DO UPDATE
                 SET callback_token_sha256 = EXCLUDED.callback_token_sha256
                 WHERE documents.message_id = EXCLUDED.message_id
                   AND documents.state = 'stored'
             RETURNING (SELECT count(*) FROM document_files f
                        WHERE f.document_id = $1 AND f.kind = 'original')",
        )
        .await?;
    let row = txn
        .query_opt(
            &stmt,
            &[
                &doc.document_id,
                &doc.message_id,
                &doc.tenant,
                &doc.document_name,
                &doc.active_directory_user,
                &doc.signature_type,
                &doc.client_callback_url,
                &doc.token_sha256,
                &doc.document_bytes,
                &doc.trace_context,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    if row.get::<_, i64>(0) == 0 {
        store_file(
            &txn,
            doc.document_id,
            FileKind::Original,
            doc.content_base64,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// What a vendor's callback needs of the document it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackTarget {
    /// The SHA-256 of the current capability token.
    pub token_sha256: Vec<u8>,
    /// Where the document stands.
    pub state: DocumentState,
    /// The vendor's id, once submitted.
    pub vendor_document_id: Option<String>,
    /// The `traceparent` of the message that brought the document.
    pub trace_context: Option<String>,
}

/// The document a callback names; `None` when there is no such document.
pub async fn callback_target(
    pool: &deadpool_postgres::Pool,
    id: Uuid,
) -> Result<Option<CallbackTarget>, DbError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT callback_token_sha256, state, vendor_document_id, trace_context
             FROM documents WHERE document_id = $1",
        )
        .await?;
    let Some(r) = client.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    Ok(Some(CallbackTarget {
        token_sha256: r.get(0),
        state: r.try_get(1)?,
        vendor_document_id: r.get(2),
        trace_context: r.get(3),
    }))
}
