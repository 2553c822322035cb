//! Erasing documents' PDFs while keeping their status rows: the retention sweep and the purge of one
//! document share one statement.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::documents::DocumentState;

use crate::store::error::DbError;

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
