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
        .query_one(PURGE_EXPIRED, &[&retention.as_secs_f64(), &batch])
        .await?;
    Ok((row.get::<_, i64>(0) as u64, row.get(2)))
}

// What the `pasarela doc` and `webhooks` commands read and change: a document's status, its stored
// files, and the purge of one document now.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

use crate::store::column::text_column;
use crate::store::webhook_jobs::WebhookCounts;

/// Where a document stands (`documents.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentState {
    /// Received and stored, not yet accepted by the vendor.
    Stored,
    /// Accepted by the vendor, waiting to be signed.
    Submitted,
    /// Signed: the signed PDF is stored (until retention erases it).
    Signed,
    /// Failed for good.
    Failed,
}

impl DocumentState {
    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentState::Stored => "stored",
            DocumentState::Submitted => "submitted",
            DocumentState::Signed => "signed",
            DocumentState::Failed => "failed",
        }
    }

    /// Whether nothing more happens to the document: it is signed or failed.
    pub fn is_final(self) -> bool {
        matches!(self, DocumentState::Signed | DocumentState::Failed)
    }
}

text_column!(DocumentState: Stored, Submitted, Signed, Failed);

/// What the webhook commands need of a documents row.
#[derive(Debug, Clone)]
pub struct DocumentHead {
    /// Where the document stands.
    pub state: DocumentState,
    /// Whether the producer asked for a client webhook.
    pub has_callback_url: bool,
}

/// The documents row's webhook facts; `None` when there is no such document.
pub async fn head(client: &impl GenericClient, id: Uuid) -> Result<Option<DocumentHead>, DbError> {
    let row = client
        .query_opt(
            "SELECT state, client_callback_url IS NOT NULL FROM documents WHERE document_id = $1",
            &[&id],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(DocumentHead {
            state: r.try_get(0)?,
            has_callback_url: r.try_get(1)?,
        }),
        None => None,
    })
}

/// A document's state alone, for a caller that polls it; `None` when there is no such document.
pub async fn state(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<DocumentState>, DbError> {
    let stmt = client
        .prepare_cached("SELECT state FROM documents WHERE document_id = $1")
        .await?;
    Ok(match client.query_opt(&stmt, &[&id]).await? {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

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

/// What must be known of a document before reading one of its files.
#[derive(Debug, Clone)]
pub struct FileGate {
    /// Where it stands.
    pub state: DocumentState,
    /// The vendor's own status word.
    pub vendor_status: Option<String>,
    /// The class of failure, if it failed.
    pub error_kind: Option<String>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// When its PDFs were erased.
    pub purged_at: Option<DateTime<Utc>>,
}

/// The facts that say whether document `id`'s files can be had; `None` when there is no such
/// document.
pub async fn file_gate(client: &impl GenericClient, id: Uuid) -> Result<Option<FileGate>, DbError> {
    let row = client
        .query_opt(
            "SELECT state, vendor_status, error_kind, error_message, purged_at
             FROM documents WHERE document_id = $1",
            &[&id],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(FileGate {
        state: r.try_get(0)?,
        vendor_status: r.try_get(1)?,
        error_kind: r.try_get(2)?,
        error_message: r.try_get(3)?,
        purged_at: r.try_get(4)?,
    }))
}

/// The size of document `id`'s `kind` file; `None` when none is stored.
pub async fn file_size(
    client: &impl GenericClient,
    id: Uuid,
    kind: FileKind,
) -> Result<Option<i32>, DbError> {
    let row = client
        .query_opt(
            "SELECT octet_length(content) FROM document_files WHERE document_id = $1 AND kind = $2",
            &[&id, &kind.as_str()],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// `len` bytes of document `id`'s `kind` file from byte `from` (counted from 1, as `substring`
/// does); empty past the end. The files are stored uncompressed (`STORAGE EXTERNAL`), so PostgreSQL
/// fetches only the slice asked for and a reader never holds a whole document.
pub async fn file_chunk(
    client: &impl GenericClient,
    id: Uuid,
    kind: FileKind,
    from: i32,
    len: i32,
) -> Result<Vec<u8>, DbError> {
    let stmt = client
        .prepare_cached(
            "SELECT substring(content FROM $3 FOR $4) FROM document_files
             WHERE document_id = $1 AND kind = $2",
        )
        .await?;
    let row = client
        .query_one(&stmt, &[&id, &kind.as_str(), &from, &len])
        .await?;
    Ok(row.try_get(0)?)
}

/// The purge statement for the documents a `due` CTE selects: erases their files and marks them
/// purged in one statement, answering documents marked, files erased, bytes erased, and when (the
/// transaction's `now()`, which is what `purged_at` holds). `octet_length` reads each size from the
/// TOAST pointer: the PDFs are not fetched. The retention sweep and the purge of one document share
/// it, so both erase the same way.
macro_rules! purge_due {
    ($due:literal) => {
        concat!(
            "WITH due AS (",
            $due,
            "), erased AS (
                 DELETE FROM document_files f USING due WHERE f.document_id = due.document_id
                 RETURNING octet_length(f.content) AS size
             ), marked AS (
                 UPDATE documents d SET purged_at = now() FROM due
                 WHERE d.document_id = due.document_id RETURNING 1
             )
             SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM erased),
                    (SELECT coalesce(sum(size), 0)::bigint FROM erased), now()"
        )
    };
}

/// Retention: at most `$2` documents older than `$1` seconds, oldest first; replicas share the
/// work through `SKIP LOCKED`.
const PURGE_EXPIRED: &str = purge_due!(
    "SELECT document_id FROM documents
     WHERE purged_at IS NULL AND created_at < now() - make_interval(secs => $1)
     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED"
);

/// One document, already locked by the caller.
const PURGE_ONE: &str =
    purge_due!("SELECT document_id FROM documents WHERE document_id = $1 AND purged_at IS NULL");

/// What one purge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// The files were erased now.
    Erased {
        /// Files erased.
        files: u64,
        /// Their bytes.
        bytes: i64,
        /// The `purged_at` written.
        at: DateTime<Utc>,
    },
    /// An earlier purge (or retention) had erased them.
    Already {
        /// When.
        at: DateTime<Utc>,
    },
}

/// A purge and the state the document was in when it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    /// The document's state under the purge's lock.
    pub state: DocumentState,
    /// What the purge did.
    pub purge: Purge,
}

/// Erases document `id`'s stored PDFs now, keeping its status row; `None` when there is no such
/// document.
pub async fn purge(pool: &deadpool_postgres::Pool, id: Uuid) -> Result<Option<Purged>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // The row lock orders this purge after any worker write to the document in flight.
    let row = tx
        .query_opt(
            "SELECT state, purged_at FROM documents WHERE document_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let state: DocumentState = row.try_get(0)?;
    let purge = match row.try_get::<_, Option<DateTime<Utc>>>(1)? {
        Some(at) => Purge::Already { at },
        None => {
            let erased = tx.query_one(PURGE_ONE, &[&id]).await?;
            Purge::Erased {
                files: erased.try_get::<_, i64>(1)? as u64,
                bytes: erased.try_get(2)?,
                at: erased.try_get(3)?,
            }
        }
    };
    tx.commit().await?;
    Ok(Some(Purged { state, purge }))
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
