//! Document files (`document_files`): PDFs written with `COPY` a decoded chunk at a time, so that a
//! worker never holds a second copy of a large document, and read back a slice at a time.

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures::SinkExt;
use uuid::Uuid;

use crate::store::documents::DocumentState;

use crate::contract::documents::{CHUNK_CHARS, ContentError, decoded_len};
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
