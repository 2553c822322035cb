//! The document-signing API as its document describes it (docs/vendors/signing.md).
//!
//! OAuth2 at `POST /api/v1/auth/token` (password and refresh grants, JSON bodies), revocation at
//! `POST /api/v1/auth/revoke`, and three Bearer calls: `POST /api/v1/documents` takes a Base64 PDF and
//! answers 202 `received`; `GET /api/v1/documents/{id}/status` reports it and
//! `GET /api/v1/documents/{id}/download` hands back the signed PDF. When a document is done, the
//! simulator POSTs the documented notification to its `callback_url`.
//!
//! What the document leaves unsaid, and what the simulator does:
//! - errors are `{"error", "message"}` (the document shows only `invalid_request`). The token call
//!   uses OAuth2's codes (RFC 6749 §5.2): 400 `invalid_request` (a missing field, a body that is no
//!   JSON object), 400 `unsupported_grant_type`, 401 `invalid_client` (wrong client id or secret),
//!   400 `invalid_grant` (wrong user or password, unknown or revoked refresh token). A POST whose
//!   `Content-Type` is not `application/json` is 415 `invalid_request`;
//! - Bearer calls with a missing, unknown, expired or revoked access token: 401 `invalid_token`
//!   (RFC 6750); an unknown document (or an id that is no UUID): 404 `not_found`; downloading a
//!   document that is not signed: 409 `not_signed`; a bad submission: 400 `invalid_request` naming
//!   the field;
//! - revocation follows RFC 7009: an unknown token still answers 200; `token_type_hint`, when given,
//!   must be `access_token` or `refresh_token`, and a token is found whatever the hint says. Revoking a
//!   refresh token also revokes every access token issued from it (RFC 7009 §2.1's "SHOULD");
//!   revoking an access token leaves its refresh token alive. Refresh tokens live until revoked;
//! - statuses besides `received` and `signed`: a document ends `rejected`, `expired` or `error` when
//!   the settings say so, and the `pending_status` setting names the word a waiting document's status
//!   answer gives instead of `received` (a status the vendor may add). `signing_date` is null unless signed. Dates are RFC 3339 UTC to the second,
//!   as in the document's examples;
//! - the signed PDF is the original with a comment and a final `%%EOF` appended; its name is the
//!   original's with `_signed` before `.pdf` (or at the end when there is no `.pdf`);
//! - the webhook goes out for every final status (the document names only `signed`), once: no
//!   authentication, no retry. Each attempt is recorded as op `webhook` with the HTTP status answered
//!   or the error; with `lose_webhooks` on, nothing is sent and op `webhook_lost` is recorded;
//! - request bodies up to 64 MiB: pasarela sends PDFs up to 25 MiB, about 34 MiB as Base64 JSON.
//!
//! Control routes under `/sim/signing`: `GET`/`POST /settings` (`sign_after_ms`, `webhook_delay_ms`,
//! `lose_webhooks`, `token_lifetime_s`, `outcome`, `outcomes`, `pending_status`, and `password`: the
//! password grant's password from now on, a rotation, never shown; a partial update), `POST
//! /expire-tokens` (every access token issued so far expires; refresh tokens stay valid) and
//! `GET /documents[/{id}]` (the simulator's view of its documents). A document's outcome and signing
//! delay are fixed when it is submitted; `webhook_delay_ms` and `lose_webhooks` are read when it
//! reaches its final status, so a test can lose the webhook of a document already queued.
//! `POST /sim/reset` forgets every document (and its pending webhook) and restores the default
//! settings; issued tokens stay valid.
//!
//! Operations in `/sim/stats` and `/sim/requests` (vendor `signing`): `password_grant`,
//! `refresh_grant`, `token` (a token call with a missing or unsupported `grant_type`), `revoke`,
//! `submit`, `status`, `download`, and the simulator's own `webhook` and `webhook_lost`. No secret,
//! password or token is recorded; a submission's content only by its length.
//!
//! The code is split by concern so each part reads on its own: `oauth` (tokens and the Bearer
//! check), `documents` (submission, status and download), `webhook` (a document's life and its
//! notification) and `control` (the `/sim/signing` routes). This module keeps what they share and
//! the routing.

mod control;
mod documents;
mod oauth;
mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Sim;
use oauth::Tokens;

const VENDOR: &str = "signing";
/// The largest request body `POST /api/v1/documents` takes: a 25 MiB PDF as Base64 JSON, with room.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const RECEIVED_MESSAGE: &str = "The document has been received and is queued for signing.";

/// Where a document is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    /// Submitted, waiting to be signed.
    Received,
    /// Signed: the signed PDF can be downloaded.
    Signed,
    /// The signer refused it.
    Rejected,
    /// Nobody signed it in time.
    Expired,
    /// The vendor failed to sign it.
    Error,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Signed => "signed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Error => "error",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Received => RECEIVED_MESSAGE,
            Self::Signed => "The document has been successfully signed.",
            Self::Rejected => "The signer rejected the document.",
            Self::Expired => "The document expired before it was signed.",
            Self::Error => "The document could not be signed.",
        }
    }

    /// A final status by name: what a document may end as.
    fn parse_final(name: &str) -> Option<Self> {
        [Self::Signed, Self::Rejected, Self::Expired, Self::Error]
            .into_iter()
            .find(|status| status.name() == name)
    }
}

/// What `/sim/signing/settings` controls.
#[derive(Debug, Clone, Serialize)]
struct Settings {
    sign_after_ms: u64,
    webhook_delay_ms: u64,
    lose_webhooks: bool,
    token_lifetime_s: u64,
    /// How documents end, unless `outcomes` names their user.
    outcome: Status,
    /// How the documents of one `active_directory_user` end.
    outcomes: BTreeMap<String, Status>,
    /// The word the status answer gives while a document waits: `received` (the document's), or a
    /// status the vendor may add (`in_review`), which clients must read as still waiting.
    pending_status: String,
    /// The password the password grant takes from now on, instead of `SIGNING_PASSWORD`: a rotation.
    /// Never shown.
    #[serde(skip_serializing)]
    password: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sign_after_ms: 200,
            webhook_delay_ms: 100,
            lose_webhooks: false,
            // The lifetime the document's example answers.
            token_lifetime_s: 3600,
            outcome: Status::Signed,
            outcomes: BTreeMap::new(),
            pending_status: Status::Received.name().into(),
            password: None,
        }
    }
}

/// A submitted document.
struct Document {
    name: String,
    user: String,
    callback_url: Option<String>,
    sent_at: DateTime<Utc>,
    /// The status it will end in, fixed when submitted.
    outcome: Status,
    status: Status,
    signing_date: Option<DateTime<Utc>>,
    /// The PDF, decoded once; the signature is appended in place when signed. Shared so a download
    /// encodes it outside the lock without copying it.
    content: Arc<Vec<u8>>,
    webhook_attempts: u32,
    webhooks_lost: u32,
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Document {
    /// The status answer, which is also the webhook's body; `pending` is the word for a document
    /// still waiting.
    fn status_body(&self, id: Uuid, pending: &str) -> Value {
        let status = match self.status {
            Status::Received => pending,
            done => done.name(),
        };
        json!({
            "document_id": id,
            "status": status,
            "date_sent_to_sign": rfc3339(self.sent_at),
            "assigned_active_directory_user": self.user,
            "signing_date": self.signing_date.map(rfc3339),
            "message": self.status.message(),
        })
    }
}

/// The signing API's settings, tokens and documents.
#[derive(Default)]
pub struct SigningState {
    settings: Mutex<Settings>,
    tokens: Mutex<Tokens>,
    documents: Mutex<HashMap<Uuid, Document>>,
    /// The webhook client, built on first use (building can fail; the failure is then recorded).
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl SigningState {
    /// Forgets every document and restores the default settings. A signing or webhook still pending
    /// then finds no document and does nothing. Issued tokens stay valid, as every vendor's do across a
    /// reset, so a running worker is not logged out by a test's reset.
    pub fn reset(&self) {
        self.documents.lock().expect("documents").clear();
        *self.settings.lock().expect("settings") = Settings::default();
    }
}

/// An error answer: an HTTP status with `{"error", "message"}`.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn invalid_token(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
    }

    fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no document {id}"),
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "message": self.message }));
        if self.code == "invalid_token" {
            // RFC 6750 §3: a refused bearer token is named in WWW-Authenticate too.
            let challenge = r#"Bearer error="invalid_token""#;
            (self.status, [(header::WWW_AUTHENTICATE, challenge)], body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

/// Whether the request says its body is JSON (parameters such as `charset` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn not_json() -> Failure {
    Failure::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request",
        "Content-Type must be application/json",
    )
}

/// A required string field; absent, null and blank all count as missing.
fn text<'a>(value: Option<&'a Value>, name: &str) -> Result<&'a str, Failure> {
    match value {
        None | Some(Value::Null) => Err(Failure::invalid_request(format!("{name} is required"))),
        Some(Value::String(s)) if s.trim().is_empty() => Err(Failure::invalid_request(format!(
            "{name} is required and must not be empty"
        ))),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Failure::invalid_request(format!("{name} must be a string"))),
    }
}

/// The vendor's routes, under `/signing`.
pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/api/v1/auth/token", post(oauth::token))
        .route("/api/v1/auth/revoke", post(oauth::revoke))
        .route(
            "/api/v1/documents",
            post(documents::submit).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/api/v1/documents/{id}/status", get(documents::status))
        .route("/api/v1/documents/{id}/download", get(documents::download))
}

/// The control routes, under `/sim/signing`.
pub fn control_routes() -> Router<Sim> {
    Router::new()
        .route(
            "/settings",
            get(control::get_settings).post(control::set_settings),
        )
        .route("/expire-tokens", post(control::expire_tokens))
        .route("/documents", get(control::list_documents))
        .route("/documents/{id}", get(control::one_document))
}
