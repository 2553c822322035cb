//! The `doc.callback` handler (docs/CONTRACT.md, `doc.callback`): a vendor webhook or a status poll says a document may be
//! done. Nothing in the message is trusted but the document id: the vendor's status is asked, a signed
//! PDF is downloaded and stored, `doc.signed` (or `doc.sign.failed`) is published, and the client's
//! webhook is queued for the [`dispatch`] task, which delivers it signed, with retries.
//!
//! The check holds no row lock and no transaction while it asks the vendor (a status, then a download
//! of up to two minutes): what it found is a record written in the runtime's one commit, and only a
//! document still `submitted` changes, so a webhook and a poll racing for one document finish it once.

mod attempt;
mod settings;

pub mod dispatch;
pub mod poller;

use std::time::Duration;
use tracing::Instrument;

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
use pasarela_shared::store::Record;
use pasarela_shared::store::documents::{CheckRow, CheckWebhook, Checked, DocumentState};
use pasarela_shared::store::error::DbError;
use pasarela_shared::store::vendor_tokens::{SecretKey, TokenStore};
use pasarela_shared::store::webhook_jobs;
use pasarela_shared::vendors::signing::{DocumentStatus, SigningClient, VendorStatus};
use pasarela_shared::vendors::webhook::WebhookSigner;
pub use settings::Settings;
use std::sync::Arc;
use uuid::Uuid;

/// How long a check holds a document while it asks the vendor: a status and a download, each bounded
/// by the signing client's timeouts.
const CHECK_LEASE: Duration = Duration::from_secs(180);

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
        /// What to write; none when announcing again what this message already wrote.
        checked: Option<Checked>,
    },
    /// Nothing to publish: still in progress, already finished by another message, or unknown.
    Quiet(&'static str, Option<Checked>),
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
        let (row, leased) = async {
            let client = self.db.pool().get().await.map_err(DbError::from)?;
            let row = store::documents::read_for_check(&client, m.document_id).await?;
            let leased = match &row {
                Some(r) if r.state == DocumentState::Submitted => {
                    store::documents::lease_check(
                        &client,
                        m.document_id,
                        ctx.message_id,
                        CHECK_LEASE,
                    )
                    .await?
                }
                _ => false,
            };
            Ok::<_, CheckError>((row, leased))
        }
        .instrument(pasarela_shared::telemetry::database_span(
            "read",
            "documents",
        ))
        .await?;
        let Some(row) = row else {
            tracing::warn!(document_id = %m.document_id, "doc.callback for an unknown document");
            return Ok(Finding::Quiet("unknown", None));
        };
        if row.state == DocumentState::Submitted && !leased {
            // Another message's check is asking the vendor right now, and announces what it finds.
            return Ok(Finding::Quiet("checking", None));
        }
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
                    checked: None,
                });
            }
            DocumentState::Signed | DocumentState::Failed => {
                return Ok(Finding::Quiet("already_final", None));
            }
            DocumentState::Stored => return Err(CheckError::NotYetSubmitted),
            DocumentState::Submitted => {}
        }
        let vendor_id = row
            .vendor_document_id
            .clone()
            .ok_or(CheckError::NotYetSubmitted)?;
        let status = self.client.status(&self.tokens, &vendor_id).await?;
        let facts = DocumentFacts {
            vendor_document_id: Some(vendor_id.clone()),
            date_sent_to_sign: status.date_sent_to_sign,
            signing_date: status.signing_date,
            assigned_active_directory_user: status
                .assigned_active_directory_user
                .clone()
                .or(row.facts.assigned_active_directory_user.clone()),
        };
        let state = status.state();
        if let VendorStatus::Other(word) = &state {
            tracing::warn!(document_id = %m.document_id, vendor_status = %word,
                "a status the vendor's document does not list; read as still waiting");
        }
        if state == VendorStatus::Signed {
            return self.signed(m, ctx, &row, &vendor_id, status, facts).await;
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
            let webhook =
                self.webhook(m.document_id, &row, "document.sign_failed", &status, &facts);
            let checked = Checked::Failed {
                document_id: m.document_id,
                vendor_status: status.status.clone(),
                vendor_message: status.message.clone(),
                failure: failure.clone(),
                completed_by: ctx.message_id,
                date_sent_to_sign: facts.date_sent_to_sign,
                webhook,
            };
            metrics::counter!("pasarela_documents_failed_total").increment(1);
            return Ok(Finding::Final {
                status: "failed",
                facts,
                failure: Some(failure),
                checked: Some(checked),
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
        let pending = Checked::Pending {
            document_id: m.document_id,
            vendor_status: status.status.clone(),
            polls,
            next_in: delay,
        };
        let quiet = if m.source == "poll" {
            "pending"
        } else {
            "unconfirmed"
        };
        Ok(Finding::Quiet(quiet, Some(pending)))
    }

    /// A document the vendor says is signed: download the signed PDF and check it; what to write.
    async fn signed(
        &self,
        m: &DocCallback,
        ctx: &HandleContext,
        row: &CheckRow,
        vendor_id: &str,
        status: DocumentStatus,
        mut facts: DocumentFacts,
    ) -> Result<Finding, CheckError> {
        let limit = self.documents.max_document_bytes.saturating_mul(3) + 64 * 1024;
        let download = self.client.download(&self.tokens, vendor_id, limit).await?;
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
        let content = bytes::Bytes::copy_from_slice(content);
        facts.date_sent_to_sign = facts.date_sent_to_sign.or(view.date_sent_to_sign);
        let signed_document_name = view.document_name.clone();
        drop(view);
        drop(download);
        if facts.signing_date.is_none() {
            facts.signing_date = Some(chrono::Utc::now());
        }
        let webhook = self.webhook(m.document_id, row, "document.signed", &status, &facts);
        let checked = Checked::Signed {
            document_id: m.document_id,
            vendor_status: status.status.clone(),
            vendor_message: status.message.clone(),
            signed_bytes: size as i64,
            signed_document_name,
            facts: facts.clone(),
            completed_by: ctx.message_id,
            content,
            webhook,
        };
        metrics::counter!("pasarela_documents_signed_total").increment(1);
        tracing::info!(document_id = %m.document_id, source = %m.source, bytes = size, "document signed");
        Ok(Finding::Final {
            status: "signed",
            facts,
            failure: None,
            checked: Some(checked),
        })
    }

    /// The client's webhook for this outcome, when the producer gave a callback URL.
    fn webhook(
        &self,
        document_id: Uuid,
        row: &CheckRow,
        event_type: &'static str,
        status: &DocumentStatus,
        facts: &DocumentFacts,
    ) -> Option<CheckWebhook> {
        let url = row.client_callback_url.clone()?;
        let payload = dispatch::payload(
            event_type,
            document_id,
            &row.tenant,
            &row.document_name,
            status,
            facts,
        );
        Some(CheckWebhook {
            event_type,
            url,
            payload,
            // Each attempt continues this check's span, in the trace of the document.
            trace_context: pasarela_shared::telemetry::current_traceparent(),
        })
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

impl From<pasarela_shared::vendors::http::VendorError> for CheckError {
    fn from(e: pasarela_shared::vendors::http::VendorError) -> Self {
        CheckError::Signing(e.into())
    }
}

fn quiet(
    m: &DocCallback,
    ctx: &HandleContext,
    status: &str,
    checked: Option<Checked>,
) -> Completion {
    let event = CallbackChecked {
        document_id: m.document_id,
        ending: Ending::now(status, ctx.attempt, None),
        source: m.source.clone(),
    };
    let records = checked.map(Record::DocumentChecked).into_iter().collect();
    Completion::of(&event, None, records)
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
                checked,
            }) => {
                let step = if failure.is_none() {
                    DocumentStep::Signed
                } else {
                    DocumentStep::Failed
                };
                let ending = Ending::now(status, ctx.attempt, failure.as_ref());
                let event = DocumentEvent::new(m.document_id, step, ending, &facts);
                let records = checked.map(Record::DocumentChecked).into_iter().collect();
                Outcome::Complete(Completion::of(&event, failure, records))
            }
            Ok(Finding::Quiet(status, checked)) => {
                Outcome::Complete(quiet(m, ctx, status, checked))
            }
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
                    let mut c = quiet(m, ctx, "unconfirmed", None);
                    c.error = Some(failure);
                    Outcome::Complete(c)
                }
            },
        }
    }

    fn exhausted(&self, m: &DocCallback, ctx: &HandleContext, last: &Failure) -> Completion {
        // The document is not failed for it: its status polls go on.
        let mut c = quiet(m, ctx, "unconfirmed", None);
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
    const DEFAULTS: WorkerDefaults = pasarela_shared::runtime::settings::defaults::DOC_CALLBACK;

    type Settings = Settings;

    fn build(s: Settings, db: &Database) -> Self {
        Self::new(s.client, s.key, s.documents, s.webhooks, s.signer, db)
    }
}
