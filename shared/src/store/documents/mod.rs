//! The `documents` table and its files: where each document stands, what its messages record, its
//! PDFs, status polls, and retention.

mod check;
mod files;
mod intake;
mod outcomes;
mod polls;
mod purge;
mod status;

pub use check::*;
pub use files::*;
pub use intake::*;
pub use outcomes::*;
pub use polls::*;
pub use purge::*;
pub use status::*;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use crate::store::column::text_column;
use crate::store::error::DbError;

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
