//! The `doc.callback` handler (docs/CONTRACT.md, `doc.callback`): a vendor webhook or a status poll says a document may be
//! done. Nothing in the message is trusted but the document id: the vendor's status is asked, a signed
//! PDF is downloaded and stored, `doc.signed` (or `doc.sign.failed`) is published, and the client's
//! webhook is queued for the [`dispatch`] task, which delivers it signed, with retries.
//!
//! The document's row is locked for the whole check, so a webhook and a poll racing for one document
//! are served one after the other, and only the message that finished it announces it.

mod settings;

pub mod dispatch;
pub mod poller;

use std::time::Duration;

use pasarela_shared::contract::documents;
use pasarela_shared::contract::errors::{ErrorKind, Failure};
use pasarela_shared::contract::events::DocumentFacts;
use pasarela_shared::contract::events::{CallbackChecked, DocumentEvent, DocumentStep, Ending};
use pasarela_shared::contract::messages::DocCallback;
use pasarela_shared::contract::settings::{DocumentSettings, WebhookSettings};
use pasarela_shared::runtime::Worker;
use pasarela_shared::runtime::database::Database;
use pasarela_shared::runtime::handler::{
    Background, Completion, HandleContext, Handler, Outcome, retry_or_failure,
};
use pasarela_shared::runtime::jobs;
use pasarela_shared::runtime::settings::WorkerDefaults;
use pasarela_shared::store;
use pasarela_shared::store::documents::{
    CheckRow, DocumentState, FileKind, SignedCheck, StoreFileError,
};
use pasarela_shared::store::error::DbError;
use pasarela_shared::store::vendor_tokens::{SecretKey, TokenStore};
use pasarela_shared::store::webhook_jobs::{self, NewJob};
use pasarela_shared::vendors::signing::{DocumentStatus, SigningClient, VendorStatus};
use pasarela_shared::vendors::webhook::WebhookSigner;
pub use settings::Settings;
use std::sync::Arc;
use uuid::Uuid;

/// How long before the access token's end the shared store refreshes it.
const TOKEN_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Confirms, downloads and stores signed documents, and queues client webhooks.
pub struct DocCallbackHandler {
    client: SigningClient,
    tokens: TokenStore,
    db: Database,
    documents: DocumentSettings,
    webhooks: WebhookSettings,
    signer: Option<std::sync::Arc<WebhookSigner>>,
}

/// What the check came to.
enum Finding {
    /// Finished now (or before, by this same message): publish it.
    Final {
        status: &'static str,
        facts: DocumentFacts,
        failure: Option<Failure>,
    },
    /// Nothing to publish: still in progress, already finished by another message, or unknown.
    Quiet(&'static str),
}

impl DocCallbackHandler {
    /// A handler over `client`, keeping the token in `db` encrypted with `key`.
    pub fn new(
        client: SigningClient,
        key: SecretKey,
        documents: DocumentSettings,
        webhooks: WebhookSettings,
        signer: Option<WebhookSigner>,
        db: &Database,
    ) -> Self {
        Self {
            client,
            tokens: TokenStore::new(db.pool().clone(), key, TOKEN_MARGIN),
            db: db.clone(),
            documents,
            webhooks,
            signer: signer.map(std::sync::Arc::new),
        }
    }

    async fn check(&self, m: &DocCallback, ctx: &HandleContext) -> Result<Finding, CheckError> {
        let mut conn = self.db.pool().get().await.map_err(DbError::from)?;
        let txn = conn.transaction().await.map_err(DbError::from)?;
        let Some(row) = store::documents::lock_for_check(&txn, m.document_id).await? else {
            tracing::warn!(document_id = %m.document_id, "doc.callback for an unknown document");
            return Ok(Finding::Quiet("unknown"));
        };
        match row.state {
            DocumentState::Signed | DocumentState::Failed
                if row.completed_by == Some(ctx.message_id) =>
            {
                // This message finished it before a crash took the announcement: announce again.
                let failure = row
                    .error_message
                    .map(|message| Failure::new(ErrorKind::Vendor, message));
                return Ok(Finding::Final {
                    status: row.state.as_str(),
                    facts: row.facts,
                    failure,
                });
            }
            DocumentState::Signed | DocumentState::Failed => {
                return Ok(Finding::Quiet("already_final"));
            }
            DocumentState::Stored => return Err(CheckError::NotYetSubmitted),
            DocumentState::Submitted => {}
        }
        let vendor_id = row
            .vendor_document_id
            .clone()
            .ok_or(CheckError::NotYetSubmitted)?;
        let status = self.client.status(&self.tokens, &vendor_id).await?;
        let mut facts = DocumentFacts {
            vendor_document_id: Some(vendor_id.clone()),
            date_sent_to_sign: status.date_sent_to_sign,
            signing_date: status.signing_date,
            assigned_active_directory_user: status
                .assigned_active_directory_user
                .clone()
                .or(row.facts.assigned_active_directory_user.clone()),
        };
        let state = status.state();
        if state == VendorStatus::Signed {
            let limit = self.documents.max_document_bytes.saturating_mul(3) + 64 * 1024;
            let download = self
                .client
                .download(&self.tokens, &vendor_id, limit)
                .await?;
            let view = download.view()?;
            let content = view.signed_document_content.as_bytes();
            let size = documents::check_base64_pdf(content, limit).map_err(|e| {
                CheckError::Signing(
                    pasarela_shared::vendors::http::VendorError::Decode {
                        vendor: "signing",
                        detail: format!("signed document: {e}"),
                    }
                    .into(),
                )
            })?;
            store::documents::store_file(&txn, m.document_id, FileKind::Signed, content).await?;
            facts.date_sent_to_sign = facts.date_sent_to_sign.or(view.date_sent_to_sign);
            let signed_name = view.document_name.clone();
            drop(view);
            drop(download);
            let signed = SignedCheck {
                document_id: m.document_id,
                vendor_status: &status.status,
                vendor_message: status.message.as_deref(),
                signed_bytes: size as i64,
                signed_document_name: signed_name.as_deref(),
                facts: &facts,
                completed_by: ctx.message_id,
            };
            store::documents::mark_signed(&txn, &signed).await?;
            if facts.signing_date.is_none() {
                facts.signing_date = Some(chrono::Utc::now());
            }
            self.queue_webhook(
                &txn,
                m.document_id,
                &row,
                "document.signed",
                &status,
                &facts,
            )
            .await?;
            txn.commit().await.map_err(DbError::from)?;
            metrics::counter!("pasarela_documents_signed_total").increment(1);
            tracing::info!(document_id = %m.document_id, source = %m.source, bytes = size, "document signed and stored");
            return Ok(Finding::Final {
                status: "signed",
                facts,
                failure: None,
            });
        }
        if state.is_failure() || row.poll_over {
            let failure = if state.is_failure() {
                Failure::new(
                    ErrorKind::Vendor,
                    format!(
                        "the vendor reports the document {}: {}",
                        status.status,
                        status.message.as_deref().unwrap_or("no message")
                    ),
                )
            } else {
                Failure::new(
                    ErrorKind::Timeout,
                    format!(
                        "not signed within PASARELA_SIGNING_POLL_FOR ({}s); the vendor still says {}",
                        self.documents.poll_for.as_secs(),
                        status.status
                    ),
                )
            };
            store::documents::mark_failed(
                &txn,
                m.document_id,
                &status.status,
                status.message.as_deref(),
                &failure,
                ctx.message_id,
                facts.date_sent_to_sign,
            )
            .await?;
            self.queue_webhook(
                &txn,
                m.document_id,
                &row,
                "document.sign_failed",
                &status,
                &facts,
            )
            .await?;
            txn.commit().await.map_err(DbError::from)?;
            metrics::counter!("pasarela_documents_failed_total").increment(1);
            return Ok(Finding::Final {
                status: "failed",
                facts,
                failure: Some(failure),
            });
        }
        // Still in progress. A poll schedules the next one further out; a webhook the status does not
        // bear out brings the next poll forward instead of trusting it.
        let (polls, delay) = if m.source == "poll" {
            (
                row.polls + 1,
                self.documents.poll_delay(row.polls.max(0) as u32 + 1),
            )
        } else {
            (row.polls, self.documents.poll_delay(0))
        };
        store::documents::schedule_poll(&txn, m.document_id, &status.status, polls, delay).await?;
        txn.commit().await.map_err(DbError::from)?;
        Ok(Finding::Quiet(if m.source == "poll" {
            "pending"
        } else {
            "unconfirmed"
        }))
    }

    /// Queues the client's webhook for this outcome, when the producer gave a callback URL.
    async fn queue_webhook(
        &self,
        txn: &deadpool_postgres::Transaction<'_>,
        document_id: Uuid,
        row: &CheckRow,
        event_type: &str,
        status: &DocumentStatus,
        facts: &DocumentFacts,
    ) -> Result<(), DbError> {
        let Some(url) = &row.client_callback_url else {
            return Ok(());
        };
        let payload = dispatch::payload(
            event_type,
            document_id,
            &row.tenant,
            &row.document_name,
            status,
            facts,
        );
        let job = NewJob {
            document_id,
            event_type,
            url,
            payload: &payload,
        };
        webhook_jobs::queue(txn, &job).await
    }
}

/// Why a check could not finish; each is retried.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Signing(#[from] pasarela_shared::vendors::signing::SigningError),
    #[error("the document is not submitted yet (doc-sign is still recording it)")]
    NotYetSubmitted,
}

impl From<StoreFileError> for CheckError {
    fn from(e: StoreFileError) -> Self {
        match e {
            StoreFileError::Db(d) => CheckError::Db(d),
            StoreFileError::Content(c) => CheckError::Signing(
                pasarela_shared::vendors::http::VendorError::Decode {
                    vendor: "signing",
                    detail: c.to_string(),
                }
                .into(),
            ),
        }
    }
}

impl From<pasarela_shared::vendors::http::VendorError> for CheckError {
    fn from(e: pasarela_shared::vendors::http::VendorError) -> Self {
        CheckError::Signing(e.into())
    }
}

fn quiet(m: &DocCallback, ctx: &HandleContext, status: &str) -> Completion {
    let event = CallbackChecked {
        document_id: m.document_id,
        ending: Ending::now(status, ctx.attempt, None),
        source: m.source.clone(),
    };
    Completion::of(&event, None, vec![])
}

impl Handler for DocCallbackHandler {
    type Message = DocCallback;

    fn queue(&self) -> &'static str {
        "doc.callback"
    }

    fn outbox_queues(&self) -> &'static [&'static str] {
        &[webhook_jobs::OUTBOX_QUEUE]
    }

    async fn handle(&self, m: &DocCallback, ctx: &HandleContext) -> Outcome {
        match self.check(m, ctx).await {
            Ok(Finding::Final {
                status,
                facts,
                failure,
            }) => {
                let step = if failure.is_none() {
                    DocumentStep::Signed
                } else {
                    DocumentStep::Failed
                };
                let ending = Ending::now(status, ctx.attempt, failure.as_ref());
                let event = DocumentEvent::new(m.document_id, step, ending, &facts);
                Outcome::Complete(Completion::of(&event, failure, vec![]))
            }
            Ok(Finding::Quiet(status)) => Outcome::Complete(quiet(m, ctx, status)),
            Err(CheckError::NotYetSubmitted) => Outcome::Retry {
                failure: Failure::new(ErrorKind::Internal, CheckError::NotYetSubmitted.to_string()),
                retry_after: None,
            },
            Err(CheckError::Db(e)) => Outcome::Retry {
                failure: Failure::new(ErrorKind::Internal, e.to_string()),
                retry_after: None,
            },
            Err(CheckError::Signing(e)) => match retry_or_failure("signing", e.verdict()) {
                std::ops::ControlFlow::Break(retry) => retry,
                std::ops::ControlFlow::Continue(failure) => {
                    // The poll keeps its schedule; this message has nothing more to do.
                    tracing::warn!(document_id = %m.document_id, error = %failure, "could not confirm the document");
                    let mut c = quiet(m, ctx, "unconfirmed");
                    c.error = Some(failure);
                    Outcome::Complete(c)
                }
            },
        }
    }

    fn exhausted(&self, m: &DocCallback, ctx: &HandleContext, last: &Failure) -> Completion {
        // The document is not failed for it: its status polls go on.
        let mut c = quiet(m, ctx, "unconfirmed");
        c.error = Some(Failure::exhausted(ctx.attempt, last));
        c
    }

    async fn background(&self, services: Background) {
        let stop = services.stop.clone();
        let first_poll = self.documents.poll_delays.first().copied();
        let poller = jobs::run(
            Arc::new(poller::Poller::new(services.clone(), first_poll)),
            stop.clone(),
        );
        let dispatcher =
            dispatch::Dispatcher::new(self.webhooks.clone(), self.signer.clone(), services);
        let dispatching = async move {
            if let Some(dispatcher) = dispatcher {
                jobs::run(Arc::new(dispatcher), stop).await;
            }
        };
        tokio::join!(poller, dispatching);
    }
}

impl Worker for DocCallbackHandler {
    // Each check may download a large document: few at a time keeps memory near one document's size.
    const DEFAULTS: WorkerDefaults = WorkerDefaults::new("doc-callback", 4, 2, "0.0.0.0:9105");

    type Settings = Settings;

    fn build(s: Settings, db: &Database) -> Self {
        Self::new(s.client, s.key, s.documents, s.webhooks, s.signer, db)
    }
}
