//! The `documents` and `document_files` tables: PDFs stored with `COPY` in chunks so that a worker
//! never holds a second copy of a large document, and the retention sweep.

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use uuid::Uuid;

use crate::contract::documents::{CHUNK_CHARS, ContentError, decoded_len};
use crate::contract::errors::Failure;
use crate::store::error::DbError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// What a document file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The producer's PDF.
    Original,
    /// The vendor's signed PDF.
    Signed,
}

impl FileKind {
    /// The `document_files.kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Original => "original",
            FileKind::Signed => "signed",
        }
    }
}

/// Why a file could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreFileError {
    /// The content is not what it must be.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for StoreFileError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreFileError::Db(e.into())
    }
}

/// Replaces the `kind` file of `document_id` with the PDF that `base64` encodes, streaming it into
/// `COPY … FROM STDIN (FORMAT binary)` a decoded chunk at a time, inside the caller's transaction.
/// The text must already have passed [`check_base64_pdf`].
pub async fn store_file(
    txn: &tokio_postgres::Transaction<'_>,
    document_id: Uuid,
    kind: FileKind,
    base64: &[u8],
) -> Result<u64, StoreFileError> {
    txn.execute(
        "DELETE FROM document_files WHERE document_id = $1 AND kind = $2",
        &[&document_id, &kind.as_str()],
    )
    .await?;
    let sink = txn
        .copy_in::<_, Bytes>(
            "COPY document_files (document_id, kind, content) FROM STDIN (FORMAT binary)",
        )
        .await?;
    futures::pin_mut!(sink);
    let size = decoded_len(base64);
    let field_len = i32::try_from(size).map_err(|_| ContentError::TooLarge {
        size,
        limit: i32::MAX as usize,
    })?;
    // The binary COPY format: signature, flags, header extension; then one tuple of three fields, each
    // a length and its bytes; then -1 as the end of data.
    let mut head = BytesMut::with_capacity(64);
    head.put_slice(b"PGCOPY\n\xff\r\n\0");
    head.put_i32(0);
    head.put_i32(0);
    head.put_i16(3);
    head.put_i32(16);
    head.put_slice(document_id.as_bytes());
    head.put_i32(kind.as_str().len() as i32);
    head.put_slice(kind.as_str().as_bytes());
    head.put_i32(field_len);
    sink.send(head.freeze()).await?;
    // One decoded chunk at a time: the sink owns each until it is written to the socket.
    for (i, chunk) in base64.chunks(CHUNK_CHARS).enumerate() {
        let mut decoded = vec![0u8; chunk.len() / 4 * 3];
        let n = STANDARD.decode_slice(chunk, &mut decoded).map_err(|e| {
            ContentError::NotBase64(format!("at character {}: {e}", i * CHUNK_CHARS))
        })?;
        decoded.truncate(n);
        sink.send(Bytes::from(decoded)).await?;
    }
    sink.send(Bytes::from_static(&[0xff, 0xff])).await?;
    Ok(sink.finish().await?)
}

/// Erases the PDFs of documents older than `retention`, at most `batch` documents, keeping their
/// status rows; returns how many documents and bytes were erased.
pub async fn purge_expired(
    pool: &deadpool_postgres::Pool,
    retention: std::time::Duration,
    batch: i64,
) -> Result<(u64, i64), DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "WITH due AS (
                 SELECT document_id FROM documents
                 WHERE purged_at IS NULL AND created_at < now() - make_interval(secs => $1)
                 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
             ), erased AS (
                 DELETE FROM document_files f USING due WHERE f.document_id = due.document_id
                 RETURNING octet_length(f.content) AS size
             ), marked AS (
                 UPDATE documents d SET purged_at = now() FROM due
                 WHERE d.document_id = due.document_id RETURNING 1
             )
             SELECT (SELECT count(*) FROM marked), (SELECT coalesce(sum(size), 0)::bigint FROM erased)",
            &[&retention.as_secs_f64(), &batch],
        )
        .await?;
    Ok((row.get::<_, i64>(0) as u64, row.get(1)))
}

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

/// A document due for a status poll.
#[derive(Debug, Clone)]
pub struct DuePoll {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// The vendor's id for it.
    pub vendor_document_id: Option<String>,
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
             RETURNING d.document_id, d.vendor_document_id",
        )
        .await?;
    let rows = client.query(&stmt, &[&limit, &lease.as_secs_f64()]).await?;
    Ok(rows
        .iter()
        .map(|r| DuePoll {
            document_id: r.get(0),
            vendor_document_id: r.get(1),
        })
        .collect())
}
