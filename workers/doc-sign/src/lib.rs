//! The `doc.sign` handler (docs/CONTRACT.md, `doc.sign`): checks the document (base64 PDF, size, fields, the client's
//! callback URL), stores it, submits it to the signing vendor with pasarela's capability URL for its
//! webhook, and schedules status polls in case that webhook never comes.

mod settings;

use std::time::Duration;
use tracing::Instrument;

use pasarela_shared::contract::documents;
use pasarela_shared::contract::errors::{ErrorKind, Failure, InvalidField};
use pasarela_shared::contract::events::DocumentFacts;
use pasarela_shared::contract::events::{DocumentEvent, DocumentStep, Ending};
use pasarela_shared::contract::messages::DocSign;
use pasarela_shared::contract::settings::{DocumentSettings, WebhookSettings};
use pasarela_shared::runtime::Worker;
use pasarela_shared::runtime::database::Database;
use pasarela_shared::runtime::handler::{
    Completion, HandleContext, Handler, Outcome, retry_or_failure,
};
use pasarela_shared::runtime::settings::WorkerDefaults;
use pasarela_shared::store;
use pasarela_shared::store::Record;
use pasarela_shared::store::documents::{
    DocumentState, FailedRow, NewDocument, StoreFileError, SubmittedRow,
};
use pasarela_shared::store::vendor_tokens::{SecretKey, TokenStore};
use pasarela_shared::vendors::signing::{SigningClient, SubmitDocument};
use pasarela_shared::vendors::webhook;
pub use settings::Settings;

/// How long before the access token's end the shared store refreshes it.
const TOKEN_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Documents one retention pass erases at most per transaction.
const PURGE_BATCH: i64 = 100;
/// The longest text field accepted, in characters.
const MAX_FIELD: usize = 500;

/// Why a `doc.sign` is refused before anything is stored.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// A field breaks a rule.
    #[error(transparent)]
    Field(#[from] InvalidField),
    /// The callback URL may not be called.
    #[error(transparent)]
    Destination(#[from] webhook::DestinationError),
    /// The document is not a PDF within the limit.
    #[error(transparent)]
    Content(#[from] documents::ContentError),
}

/// Checks, stores and submits documents.
pub struct DocSignHandler {
    client: SigningClient,
    tokens: TokenStore,
    db: Database,
    documents: DocumentSettings,
    allow_hosts: Vec<String>,
}

impl DocSignHandler {
    /// A handler submitting with `client`, keeping the token in `db` encrypted with `key`.
    pub fn new(
        client: SigningClient,
        key: SecretKey,
        documents: DocumentSettings,
        webhooks: &WebhookSettings,
        db: &Database,
    ) -> Self {
        Self {
            client,
            tokens: TokenStore::new(db.pool().clone(), key, TOKEN_MARGIN),
            db: db.clone(),
            documents,
            allow_hosts: webhooks.allow_hosts.clone(),
        }
    }

    /// Every rule a `doc.sign` must keep before anything is stored; the size of the PDF when it does.
    async fn check(&self, m: &DocSign) -> Result<usize, Refusal> {
        // The document shows one signature_type (`digital_signature`) as an example, not as the only
        // one: any value the producer gives is passed on, and the vendor judges it.
        for (field, value) in [
            ("tenant", &m.tenant),
            ("document_name", &m.document_name),
            ("active_directory_user", &m.active_directory_user),
            ("signature_type", &m.signature_type),
        ] {
            if value.trim().is_empty() {
                return Err(InvalidField::new(field, "required").into());
            }
            if value.chars().count() > MAX_FIELD {
                return Err(
                    InvalidField::new(field, format!("at most {MAX_FIELD} characters")).into(),
                );
            }
        }
        if let Some(raw) = &m.callback_url {
            let url = url::Url::parse(raw).map_err(|e| {
                InvalidField::new("callback_url", format!("not an absolute URL: {e}"))
            })?;
            webhook::checked_destination(&url, &self.allow_hosts).await?;
        }
        Ok(documents::check_base64_pdf(
            &m.document_content,
            self.documents.max_document_bytes,
        )?)
    }

    /// Stores the document (once) and a fresh capability token's digest; returns the token, or
    /// `None` when the document id is taken by another message or already submitted.
    async fn store(
        &self,
        m: &DocSign,
        ctx: &HandleContext,
        size: usize,
    ) -> Result<Option<String>, StoreFileError> {
        let token = documents::new_capability_token();
        let digest = documents::token_digest(&token);
        let trace_context = pasarela_shared::telemetry::current_traceparent();
        let doc = NewDocument {
            trace_context: trace_context.as_deref(),
            document_id: m.document_id,
            message_id: ctx.message_id,
            tenant: &m.tenant,
            document_name: &m.document_name,
            active_directory_user: &m.active_directory_user,
            signature_type: &m.signature_type,
            client_callback_url: m.callback_url.as_deref(),
            token_sha256: &digest,
            document_bytes: size as i64,
            content_base64: &m.document_content,
        };
        let stored = store::documents::store_new(self.db.pool(), &doc)
            .instrument(pasarela_shared::telemetry::database_span(
                "insert",
                "documents",
            ))
            .await?;
        Ok(stored.then_some(token))
    }

    fn finish(
        &self,
        m: &DocSign,
        ctx: &HandleContext,
        status: &str,
        facts: DocumentFacts,
        failure: Option<Failure>,
    ) -> Outcome {
        Outcome::Complete(completion(m, ctx, status, facts, failure, &self.documents))
    }
}

/// The completion of a document: `doc.sign.submitted` with its poll schedule, or `doc.sign.failed`.
fn completion(
    m: &DocSign,
    ctx: &HandleContext,
    status: &str,
    facts: DocumentFacts,
    failure: Option<Failure>,
    settings: &DocumentSettings,
) -> Completion {
    let step = if failure.is_none() {
        DocumentStep::Submitted
    } else {
        DocumentStep::Failed
    };
    let ending = Ending::now(status, ctx.attempt, failure.as_ref());
    let event = DocumentEvent::new(m.document_id, step, ending, &facts);
    let record = match &failure {
        None => Record::DocumentSubmitted(SubmittedRow {
            document_id: m.document_id,
            vendor_document_id: facts.vendor_document_id.clone(),
            first_poll: settings.poll_delay(0),
            poll_for: settings.poll_for,
        }),
        Some(f) => Record::DocumentFailed(FailedRow {
            document_id: m.document_id,
            message_id: ctx.message_id,
            tenant: m.tenant.clone(),
            document_name: m.document_name.clone(),
            active_directory_user: m.active_directory_user.clone(),
            signature_type: m.signature_type.clone(),
            client_callback_url: m.callback_url.clone(),
            document_bytes: (m.document_content.len() / 4 * 3) as i64,
            error: f.clone(),
        }),
    };
    Completion::of(&event, failure, vec![record])
}

impl Handler for DocSignHandler {
    type Message = DocSign;

    fn queue(&self) -> &'static str {
        "doc.sign"
    }

    fn decode(&self, body: &bytes::Bytes) -> Result<DocSign, serde_json::Error> {
        // The document stays a slice of the delivery: one copy of it in memory, not two.
        DocSign::from_shared(body)
    }

    fn max_message_bytes(&self) -> usize {
        // Twice the base64 size of the largest document: a somewhat larger one is read and refused
        // with an event naming the limit; only a much larger one goes unread to `.dead`.
        self.documents.max_document_bytes / 3 * 8 + 1024 * 1024
    }

    fn stored_body(&self, body: &[u8]) -> Vec<u8> {
        // A dead letter keeps the message's fields, not the document: it may be large and personal.
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(mut v) => {
                if let Some(content) = v.get_mut("document_content")
                    && let Some(text) = content.as_str()
                {
                    *content = format!("[{} base64 characters omitted]", text.len()).into();
                }
                serde_json::to_vec(&v).unwrap_or_default()
            }
            Err(_) => format!("[{} bytes that are not JSON omitted]", body.len()).into_bytes(),
        }
    }

    async fn handle(&self, m: &DocSign, ctx: &HandleContext) -> Outcome {
        let facts = DocumentFacts {
            assigned_active_directory_user: Some(m.active_directory_user.clone()),
            ..Default::default()
        };
        let size = match self.check(m).await {
            Ok(size) => size,
            Err(why) => {
                metrics::counter!("pasarela_documents_rejected_total").increment(1);
                let failure = Failure::new(ErrorKind::Rejected, why.to_string());
                return self.finish(m, ctx, "rejected", facts, Some(failure));
            }
        };
        let token = match self.store(m, ctx, size).await {
            Ok(Some(token)) => token,
            Ok(None) => {
                let why = format!(
                    "document_id: {} is already taken by another message or already submitted",
                    m.document_id
                );
                let failure = Failure::new(ErrorKind::Rejected, why);
                return self.finish(m, ctx, "rejected", facts, Some(failure));
            }
            Err(e) => {
                return Outcome::Retry {
                    failure: Failure::new(ErrorKind::Internal, format!("storing: {e}")),
                    retry_after: None,
                };
            }
        };
        let callback =
            documents::callback_url(&self.documents.ingress_public_url, m.document_id, &token);
        let submit = SubmitDocument {
            document_name: m.document_name.clone(),
            content: m.document_content.clone(),
            active_directory_user: m.active_directory_user.clone(),
            signature_type: m.signature_type.clone(),
            callback_url: Some(callback),
        };
        match self.client.submit(&self.tokens, &submit).await {
            Ok(submitted) => {
                tracing::info!(document_id = %m.document_id, vendor_document_id = %submitted.document_id, bytes = size, "document submitted");
                metrics::counter!("pasarela_documents_submitted_total").increment(1);
                let facts = DocumentFacts {
                    vendor_document_id: Some(submitted.document_id),
                    ..facts
                };
                self.finish(m, ctx, DocumentState::Submitted.as_str(), facts, None)
            }
            Err(e) => {
                let failure = match retry_or_failure("signing", e.verdict()) {
                    std::ops::ControlFlow::Continue(failure) => failure,
                    std::ops::ControlFlow::Break(retry) => return retry,
                };
                let status = if failure.kind == ErrorKind::Rejected {
                    "rejected"
                } else {
                    "failed"
                };
                self.finish(m, ctx, status, facts, Some(failure))
            }
        }
    }

    fn exhausted(&self, m: &DocSign, ctx: &HandleContext, last: &Failure) -> Completion {
        let facts = DocumentFacts {
            assigned_active_directory_user: Some(m.active_directory_user.clone()),
            ..Default::default()
        };
        completion(
            m,
            ctx,
            "failed",
            facts,
            Some(Failure::exhausted(ctx.attempt, last)),
            &self.documents,
        )
    }

    fn housekeeping_interval(&self) -> Option<Duration> {
        Some(self.documents.sweep_interval)
    }

    async fn housekeep(&self) {
        // Retention: PDFs go, status rows stay. Bounded passes, repeated while they come back full.
        let (mut documents, mut bytes) = (0u64, 0i64);
        for _ in 0..50 {
            match store::documents::purge_expired(
                self.db.pool(),
                self.documents.retention,
                PURGE_BATCH,
            )
            .await
            {
                Ok((n, b)) => {
                    documents += n;
                    bytes += b;
                    if n < PURGE_BATCH as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention sweep failed; trying again next turn");
                    break;
                }
            }
        }
        if documents > 0 {
            metrics::counter!("pasarela_documents_purged_total").increment(documents);
            tracing::info!(documents, bytes, "retention erased document PDFs");
        }
    }
}

impl Worker for DocSignHandler {
    // Documents are large: few in flight keeps memory near a few times one document.
    const DEFAULTS: WorkerDefaults = pasarela_shared::runtime::settings::defaults::DOC_SIGN;

    type Settings = Settings;

    fn build(s: Settings, db: &Database) -> Self {
        Self::new(s.client, s.key, s.documents, &s.webhooks, db)
    }
}
