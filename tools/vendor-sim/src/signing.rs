//! The document-signing API as its document describes it (seed 003, vendors.md §4).
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
//!   the settings say so. `signing_date` is null unless signed. Dates are RFC 3339 UTC to the second,
//!   as in the document's examples;
//! - the signed PDF is the original with a comment and a final `%%EOF` appended; its name is the
//!   original's with `_signed` before `.pdf` (or at the end when there is no `.pdf`);
//! - the webhook goes out for every final status (the document names only `signed`), once: no
//!   authentication, no retry. Each attempt is recorded as op `webhook` with the HTTP status answered
//!   or the error; with `lose_webhooks` on, nothing is sent and op `webhook_lost` is recorded;
//! - request bodies up to 64 MiB: pasarela sends PDFs up to 25 MiB, about 34 MiB as Base64 JSON.
//!
//! Control routes under `/sim/signing`: `GET`/`POST /settings` (`sign_after_ms`, `webhook_delay_ms`,
//! `lose_webhooks`, `token_lifetime_s`, `outcome`, `outcomes`: a partial update), `POST
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

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::Sim;

const VENDOR: &str = "signing";
/// The largest request body `POST /api/v1/documents` takes: a 25 MiB PDF as Base64 JSON, with room.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const RECEIVED_MESSAGE: &str = "The document has been received and is queued for signing.";
const REVOKED_MESSAGE: &str = "The token has been successfully revoked.";
const PDF_MAGIC: &[u8] = b"%PDF-";
/// Room kept after a decoded PDF (plus the user's length) so signing appends without reallocating.
const SIGNATURE_ROOM: usize = 64;
/// A webhook receiver that has not answered by then counts as failed: the vendor does not wait long.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest signing or webhook delay the settings take: an hour.
const MAX_DELAY_MS: u64 = 3_600_000;
/// The longest token lifetime the settings take: a year.
const MAX_LIFETIME_S: u64 = 365 * 86_400;

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
        }
    }
}

impl Settings {
    /// These settings with a partial update applied (null leaves a setting as it is); an error, and
    /// no change at all, when any part is invalid. `outcomes` is replaced as a whole.
    fn updated(&self, body: &Value) -> Result<Self, String> {
        let Some(fields) = body.as_object() else {
            return Err("the body must be a JSON object".into());
        };
        let mut next = self.clone();
        for (name, value) in fields.iter().filter(|(_, v)| !v.is_null()) {
            match name.as_str() {
                "sign_after_ms" => next.sign_after_ms = int_in(name, value, 0, MAX_DELAY_MS)?,
                "webhook_delay_ms" => next.webhook_delay_ms = int_in(name, value, 0, MAX_DELAY_MS)?,
                "token_lifetime_s" => {
                    next.token_lifetime_s = int_in(name, value, 1, MAX_LIFETIME_S)?;
                }
                "lose_webhooks" => {
                    next.lose_webhooks =
                        value.as_bool().ok_or("lose_webhooks must be a boolean")?;
                }
                "outcome" => next.outcome = outcome_of(name, value)?,
                "outcomes" => {
                    let users = value
                        .as_object()
                        .ok_or("outcomes must be an object of user -> outcome")?;
                    next.outcomes = users
                        .iter()
                        .map(|(user, v)| {
                            Ok((user.clone(), outcome_of(&format!("outcomes.{user}"), v)?))
                        })
                        .collect::<Result<_, String>>()?;
                }
                // A mistyped setting would otherwise be ignored and the test would wonder why.
                other => {
                    return Err(format!(
                        "unknown setting {other:?}: the settings are sign_after_ms, webhook_delay_ms, \
                         lose_webhooks, token_lifetime_s, outcome and outcomes"
                    ));
                }
            }
        }
        Ok(next)
    }
}

fn int_in(name: &str, value: &Value, min: u64, max: u64) -> Result<u64, String> {
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{name} must be an integer from {min} to {max}"))
}

fn outcome_of(name: &str, value: &Value) -> Result<Status, String> {
    value
        .as_str()
        .and_then(Status::parse_final)
        .ok_or_else(|| format!("{name} must be signed, rejected, expired or error"))
}

/// An access token: expiry fixed when issued, tied to the refresh token of its grant.
struct AccessToken {
    username: String,
    refresh_token: String,
    expires_at: Instant,
    revoked: bool,
}

struct RefreshToken {
    username: String,
    revoked: bool,
}

/// What a presented access token is.
enum Access {
    Valid(String),
    Expired,
    Revoked,
    Unknown,
}

/// Issued tokens. Opaque random strings: the document says nothing of their shape.
#[derive(Default)]
struct Tokens {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Tokens {
    /// A password grant: a new refresh token and a first access token from it.
    fn grant(&mut self, username: &str, lifetime: Duration) -> (String, String) {
        let refresh_token = new_token();
        self.refresh.insert(
            refresh_token.clone(),
            RefreshToken {
                username: username.into(),
                revoked: false,
            },
        );
        let access_token = self.issue(username, &refresh_token, lifetime);
        (access_token, refresh_token)
    }

    /// A refresh grant: a new access token, or `None` for an unknown or revoked refresh token.
    fn refresh(&mut self, refresh_token: &str, lifetime: Duration) -> Option<String> {
        let username = self
            .refresh
            .get(refresh_token)
            .filter(|r| !r.revoked)?
            .username
            .clone();
        Some(self.issue(&username, refresh_token, lifetime))
    }

    fn issue(&mut self, username: &str, refresh_token: &str, lifetime: Duration) -> String {
        let token = new_token();
        self.access.insert(
            token.clone(),
            AccessToken {
                username: username.into(),
                refresh_token: refresh_token.into(),
                expires_at: Instant::now() + lifetime,
                revoked: false,
            },
        );
        token
    }

    fn check(&self, token: &str, now: Instant) -> Access {
        match self.access.get(token) {
            None => Access::Unknown,
            Some(access) if access.revoked => Access::Revoked,
            Some(access) if now >= access.expires_at => Access::Expired,
            Some(access) => Access::Valid(access.username.clone()),
        }
    }

    /// Revokes a token of either kind; an unknown one is no error (RFC 7009 §2.2).
    fn revoke(&mut self, token: &str) {
        if let Some(access) = self.access.get_mut(token) {
            access.revoked = true;
        } else if let Some(refresh) = self.refresh.get_mut(token) {
            refresh.revoked = true;
            for access in self.access.values_mut() {
                if access.refresh_token == token {
                    access.revoked = true;
                }
            }
        }
    }

    fn expire_all(&mut self, now: Instant) {
        for access in self.access.values_mut() {
            access.expires_at = access.expires_at.min(now);
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
    /// The status answer, which is also the webhook's body.
    fn status_body(&self, id: Uuid) -> Value {
        json!({
            "document_id": id,
            "status": self.status,
            "date_sent_to_sign": rfc3339(self.sent_at),
            "assigned_active_directory_user": self.user,
            "signing_date": self.signing_date.map(rfc3339),
            "message": self.status.message(),
        })
    }

    /// What `/sim/signing/documents` shows.
    fn view(&self, id: Uuid) -> Value {
        json!({
            "document_id": id,
            "document_name": self.name,
            "status": self.status,
            "outcome": self.outcome,
            "assigned_active_directory_user": self.user,
            "callback_url": self.callback_url,
            "date_sent_to_sign": rfc3339(self.sent_at),
            "signing_date": self.signing_date.map(rfc3339),
            "size_bytes": self.content.len(),
            "webhook_attempts": self.webhook_attempts,
            "webhooks_lost": self.webhooks_lost,
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

    /// Moves a received document to its outcome; the webhook to send, when it has a callback URL.
    fn finish(&self, id: Uuid) -> Option<(String, Value)> {
        let mut documents = self.documents.lock().expect("documents");
        let doc = documents.get_mut(&id)?;
        if doc.status != Status::Received {
            return None;
        }
        doc.status = doc.outcome;
        if doc.status == Status::Signed {
            let now = Utc::now();
            doc.signing_date = Some(now);
            // A line break in the user name would end the PDF comment early.
            let user: String = doc.user.chars().filter(|c| !c.is_control()).collect();
            let signature = format!("\n%vendor-sim signature: {user} {}\n%%EOF\n", rfc3339(now));
            // Nothing else holds the bytes before they are signed, so this appends in place.
            Arc::make_mut(&mut doc.content).extend_from_slice(signature.as_bytes());
        }
        let url = doc.callback_url.clone()?;
        Some((url, doc.status_body(id)))
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(WEBHOOK_TIMEOUT)
                    // The vendor posts to the URL it was given: no proxy, and a redirect is an answer.
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
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

/// A scripted status, answered with the error code the simulator gives it otherwise.
fn scripted(status: StatusCode) -> Response {
    let code = match status.as_u16() {
        400 => "invalid_request",
        401 => "invalid_token",
        404 => "not_found",
        409 => "not_signed",
        500..=599 => "server_error",
        _ => "scripted_failure",
    };
    Failure::new(status, code, "scripted failure").into_response()
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

/// The body as a JSON object.
fn json_object(headers: &HeaderMap, raw: &[u8]) -> Result<Map<String, Value>, Failure> {
    if !is_json(headers) {
        return Err(not_json());
    }
    match serde_json::from_slice(raw) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Failure::invalid_request("the body must be a JSON object")),
        Err(e) => Err(Failure::invalid_request(format!(
            "the body is not JSON: {e}"
        ))),
    }
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

/// The user behind a request's access token.
fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<String, Failure> {
    let Some(token) = crate::bearer_token(headers) else {
        return Err(Failure::invalid_token(
            "missing Authorization: Bearer access token",
        ));
    };
    match sim
        .signing
        .tokens
        .lock()
        .expect("tokens")
        .check(&token, Instant::now())
    {
        Access::Valid(username) => Ok(username),
        Access::Expired => Err(Failure::invalid_token("the access token has expired")),
        Access::Revoked => Err(Failure::invalid_token("the access token has been revoked")),
        Access::Unknown => Err(Failure::invalid_token("the access token is unknown")),
    }
}

/// What every Bearer call does first: record it (with the token's user when the token is good) and
/// apply faults, then refuse a bad token.
async fn bearer_intake(
    sim: &Sim,
    op: &str,
    headers: &HeaderMap,
    recorded: Value,
) -> Result<String, Response> {
    let auth = authenticate(sim, headers);
    let forced = sim
        .intake(VENDOR, op, auth.as_ref().ok().cloned(), recorded)
        .await?;
    if let Some(status) = crate::scripted_status(forced) {
        return Err(scripted(status));
    }
    auth.map_err(IntoResponse::into_response)
}

async fn token(State(sim): State<Sim>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = json_object(&headers, &raw);
    let field = |name: &str| {
        body.as_ref()
            .ok()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
    };
    let grant_type = field("grant_type");
    let (op, login) = match grant_type {
        Some("password") => ("password_grant", field("username")),
        Some("refresh_token") => ("refresh_grant", field("client_id")),
        _ => ("token", field("client_id")),
    };
    // Neither the client secret, the password nor the refresh token is recorded.
    let recorded = json!({
        "grant_type": grant_type,
        "client_id": field("client_id"),
        "username": field("username"),
    });
    let login = login.map(str::to_string);
    let forced = match sim.intake(VENDOR, op, login, recorded).await {
        Ok(forced) => forced,
        Err(response) => return response,
    };
    if let Some(status) = crate::scripted_status(forced) {
        return scripted(status);
    }
    match body.and_then(|body| grant(&sim, &body)) {
        // RFC 6749 §5.1: token answers are not cached.
        Ok(answer) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(answer),
        )
            .into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// Checks a token request, in OAuth2's order: its shape, then the client, then the grant.
fn grant(sim: &Sim, body: &Map<String, Value>) -> Result<Value, Failure> {
    let grant_type = text(body.get("grant_type"), "grant_type")?;
    let password_grant = match grant_type {
        "password" => true,
        "refresh_token" => false,
        other => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported: use password or refresh_token"),
            ));
        }
    };
    let client_id = text(body.get("client_id"), "client_id")?;
    let client_secret = text(body.get("client_secret"), "client_secret")?;
    let presented = if password_grant {
        (
            text(body.get("username"), "username")?,
            text(body.get("password"), "password")?,
        )
    } else {
        (text(body.get("refresh_token"), "refresh_token")?, "")
    };
    let config = &sim.config;
    if client_id != config.signing_client_id || client_secret != config.signing_client_secret {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed: unknown client_id or wrong client_secret",
        ));
    }
    let lifetime_s = sim
        .signing
        .settings
        .lock()
        .expect("settings")
        .token_lifetime_s;
    let lifetime = Duration::from_secs(lifetime_s);
    let mut tokens = sim.signing.tokens.lock().expect("tokens");
    if password_grant {
        let (username, password) = presented;
        if username != config.signing_username || password != config.signing_password {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the username or password is incorrect",
            ));
        }
        let (access_token, refresh_token) = tokens.grant(username, lifetime);
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": lifetime_s,
            "refresh_token": refresh_token,
            "scope": "sign",
        }))
    } else {
        let access_token = tokens.refresh(presented.0, lifetime).ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the refresh token is unknown or revoked",
            )
        })?;
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": lifetime_s,
            "scope": "sign",
        }))
    }
}

async fn revoke(State(sim): State<Sim>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = json_object(&headers, &raw);
    let hint = body
        .as_ref()
        .ok()
        .and_then(|b| b.get("token_type_hint"))
        .cloned();
    // The token being revoked is not recorded: it may still be live.
    let recorded = json!({ "token_type_hint": hint });
    if let Err(response) = bearer_intake(&sim, "revoke", &headers, recorded).await {
        return response;
    }
    let revoked = body.and_then(|body| {
        let token = text(body.get("token"), "token")?;
        match body.get("token_type_hint") {
            None | Some(Value::Null) => {}
            Some(Value::String(hint)) if hint == "access_token" || hint == "refresh_token" => {}
            Some(_) => {
                return Err(Failure::invalid_request(
                    "token_type_hint must be access_token or refresh_token",
                ));
            }
        }
        sim.signing.tokens.lock().expect("tokens").revoke(token);
        Ok(())
    });
    match revoked {
        Ok(()) => Json(json!({ "message": REVOKED_MESSAGE })).into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// `document_content` as sent: borrowed from the request body unless a JSON escape forced a copy,
/// since it can be tens of megabytes.
struct Base64Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Base64Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // serde names neither the field nor the path, so the expectation does.
                f.write_str("document_content as a Base64 string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        deserializer.deserialize_str(TextVisitor).map(Base64Text)
    }
}

/// A `POST /api/v1/documents` body as sent; [`SubmitBody::validate`] checks it.
#[derive(Deserialize)]
struct SubmitBody<'a> {
    document_name: Option<Value>,
    #[serde(borrow)]
    document_content: Option<Base64Text<'a>>,
    active_directory_user: Option<Value>,
    signature_type: Option<Value>,
    callback_url: Option<Value>,
}

/// A valid submission.
struct Submission {
    name: String,
    user: String,
    callback_url: Option<String>,
    content: Vec<u8>,
}

impl<'a> SubmitBody<'a> {
    fn parse(headers: &HeaderMap, raw: &'a [u8]) -> Result<Self, Failure> {
        if !is_json(headers) {
            return Err(not_json());
        }
        // serde would take a JSON array as the fields in order.
        if !raw.trim_ascii_start().starts_with(b"{") {
            return Err(Failure::invalid_request("the body must be a JSON object"));
        }
        serde_json::from_slice(raw)
            .map_err(|e| Failure::invalid_request(format!("the body is not a valid request: {e}")))
    }

    /// What is recorded: every field but the content, which is only measured.
    fn recorded(&self) -> Value {
        json!({
            "document_name": self.document_name,
            "active_directory_user": self.active_directory_user,
            "signature_type": self.signature_type,
            "callback_url": self.callback_url,
            "document_content_length": self.document_content.as_ref().map(|c| c.0.len()),
        })
    }

    /// Checks every field, the cheap ones first, and decodes the PDF.
    fn validate(self) -> Result<Submission, Failure> {
        let name = text(self.document_name.as_ref(), "document_name")?;
        let user = text(self.active_directory_user.as_ref(), "active_directory_user")?;
        let signature_type = text(self.signature_type.as_ref(), "signature_type")?;
        if signature_type != "digital_signature" {
            return Err(Failure::invalid_request(format!(
                "signature_type must be \"digital_signature\", got {signature_type:?}"
            )));
        }
        let callback_url = match &self.callback_url {
            None | Some(Value::Null) => None,
            Some(Value::String(url)) => Some(check_callback_url(url)?),
            Some(_) => return Err(Failure::invalid_request("callback_url must be a string")),
        };
        let content = decode_pdf(
            self.document_content.as_ref().map(|c| c.0.as_ref()),
            SIGNATURE_ROOM + user.len(),
        )?;
        Ok(Submission {
            name: name.into(),
            user: user.into(),
            callback_url,
            content,
        })
    }
}

fn check_callback_url(url: &str) -> Result<String, Failure> {
    let absolute = url::Url::parse(url).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    match absolute {
        Some(_) => Ok(url.to_string()),
        None => Err(Failure::invalid_request(format!(
            "callback_url must be an absolute http or https URL, got {url:?}"
        ))),
    }
}

/// Decodes `document_content`: standard Base64 (padded, no line breaks) of bytes that begin `%PDF-`.
/// `room` more bytes are reserved for the signature.
fn decode_pdf(content: Option<&str>, room: usize) -> Result<Vec<u8>, Failure> {
    let Some(content) = content.filter(|c| !c.trim().is_empty()) else {
        return Err(Failure::invalid_request("document_content is required"));
    };
    let mut bytes = Vec::with_capacity(base64::decoded_len_estimate(content.len()) + room);
    STANDARD.decode_vec(content, &mut bytes).map_err(|e| {
        Failure::invalid_request(format!("document_content is not standard Base64: {e}"))
    })?;
    if !bytes.starts_with(PDF_MAGIC) {
        return Err(Failure::invalid_request(
            "document_content is not a PDF: the decoded bytes do not begin with %PDF-",
        ));
    }
    Ok(bytes)
}

async fn submit(State(sim): State<Sim>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = SubmitBody::parse(&headers, &raw);
    let recorded = body.as_ref().map_or(Value::Null, SubmitBody::recorded);
    if let Err(response) = bearer_intake(&sim, "submit", &headers, recorded).await {
        return response;
    }
    let submission = match body.and_then(SubmitBody::validate) {
        Ok(submission) => submission,
        Err(failure) => return failure.into_response(),
    };
    let (outcome, sign_after) = {
        let settings = sim.signing.settings.lock().expect("settings");
        let outcome = settings.outcomes.get(&submission.user).copied();
        (
            outcome.unwrap_or(settings.outcome),
            Duration::from_millis(settings.sign_after_ms),
        )
    };
    let id = Uuid::new_v4();
    sim.signing.documents.lock().expect("documents").insert(
        id,
        Document {
            name: submission.name,
            user: submission.user,
            callback_url: submission.callback_url,
            sent_at: Utc::now(),
            outcome,
            status: Status::Received,
            signing_date: None,
            content: Arc::new(submission.content),
            webhook_attempts: 0,
            webhooks_lost: 0,
        },
    );
    tokio::spawn(lifecycle(Arc::clone(&sim), id, sign_after));
    let answer = json!({ "document_id": id, "status": "received", "message": RECEIVED_MESSAGE });
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}

/// Ends a document after its delay, then sends its webhook after the webhook delay.
async fn lifecycle(sim: Sim, id: Uuid, sign_after: Duration) {
    tokio::time::sleep(sign_after).await;
    let Some((url, payload)) = sim.signing.finish(id) else {
        return;
    };
    let delay_ms = sim
        .signing
        .settings
        .lock()
        .expect("settings")
        .webhook_delay_ms;
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    send_webhook(&sim, id, &url, payload).await;
}

/// One webhook attempt, recorded with its answer; or none, recorded as lost.
async fn send_webhook(sim: &Sim, id: Uuid, url: &str, payload: Value) {
    let lose = sim.signing.settings.lock().expect("settings").lose_webhooks;
    {
        let mut documents = sim.signing.documents.lock().expect("documents");
        // A reset since the document ended forgets its webhook too.
        let Some(doc) = documents.get_mut(&id) else {
            return;
        };
        if lose {
            doc.webhooks_lost += 1;
        } else {
            doc.webhook_attempts += 1;
        }
    }
    if lose {
        let recorded = json!({ "document_id": id, "url": url, "payload": payload });
        sim.record(VENDOR, "webhook_lost", None, recorded);
        return;
    }
    let answer = match sim.signing.client() {
        Ok(client) => match client.post(url).json(&payload).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(error_chain(&e)),
        },
        Err(e) => Err(format!("no HTTP client: {e}")),
    };
    let (http_status, error) = match answer {
        Ok(status) => (Some(status), None),
        Err(error) => (None, Some(error)),
    };
    let recorded = json!({
        "document_id": id,
        "url": url,
        "http_status": http_status,
        "error": error,
        "payload": payload,
    });
    sim.record(VENDOR, "webhook", None, recorded);
}

/// An error with its causes: reqwest's own text rarely says whether it was a refusal or a timeout.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn status(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let recorded = json!({ "document_id": id });
    if let Err(response) = bearer_intake(&sim, "status", &headers, recorded).await {
        return response;
    }
    let documents = sim.signing.documents.lock().expect("documents");
    match Uuid::parse_str(&id)
        .ok()
        .and_then(|uuid| Some((uuid, documents.get(&uuid)?)))
    {
        Some((uuid, doc)) => Json(doc.status_body(uuid)).into_response(),
        None => Failure::not_found(&id).into_response(),
    }
}

/// The download answer; [`DownloadBody::to_json`] writes the content itself.
#[derive(Serialize)]
struct DownloadBody {
    document_id: Uuid,
    document_name: String,
    date_sent_to_sign: String,
    assigned_active_directory_user: String,
    #[serde(skip)]
    content: Arc<Vec<u8>>,
}

impl DownloadBody {
    /// The JSON answer, `signed_document_content` last. Base64 needs no JSON escaping, so it is
    /// encoded straight into the output: no intermediate string tens of megabytes long, and none of
    /// serde's per-character escaping, which made most of a large download's time.
    fn to_json(&self) -> Vec<u8> {
        let encoded_len =
            base64::encoded_len(self.content.len(), true).expect("a body limit far below usize");
        let mut out = Vec::with_capacity(encoded_len + 512);
        serde_json::to_writer(&mut out, self).expect("strings and a UUID always serialize");
        out.pop(); // the object's closing brace
        out.extend_from_slice(br#","signed_document_content":""#);
        let start = out.len();
        out.resize(start + encoded_len, 0);
        let written = STANDARD
            .encode_slice(self.content.as_slice(), &mut out[start..])
            .expect("the room is encoded_len");
        out.truncate(start + written);
        out.extend_from_slice(b"\"}");
        out
    }
}

/// The name of the signed copy: `_signed` before `.pdf`, or at the end.
fn signed_name(name: &str) -> String {
    let extension = name
        .len()
        .checked_sub(4)
        .filter(|&i| name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case(".pdf"));
    match extension {
        Some(i) => format!("{}_signed{}", &name[..i], &name[i..]),
        None => format!("{name}_signed"),
    }
}

async fn download(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let recorded = json!({ "document_id": id });
    if let Err(response) = bearer_intake(&sim, "download", &headers, recorded).await {
        return response;
    }
    let found = {
        let documents = sim.signing.documents.lock().expect("documents");
        let uuid = Uuid::parse_str(&id).ok();
        match uuid.and_then(|uuid| Some((uuid, documents.get(&uuid)?))) {
            None => Err(Failure::not_found(&id)),
            Some((_, doc)) if doc.status != Status::Signed => Err(Failure::new(
                StatusCode::CONFLICT,
                "not_signed",
                format!(
                    "the document is {}: only a signed document can be downloaded",
                    doc.status.name()
                ),
            )),
            Some((uuid, doc)) => Ok(DownloadBody {
                document_id: uuid,
                document_name: signed_name(&doc.name),
                content: Arc::clone(&doc.content),
                date_sent_to_sign: rfc3339(doc.sent_at),
                assigned_active_directory_user: doc.user.clone(),
            }),
        }
    };
    let body = match found {
        Ok(body) => body,
        Err(failure) => return failure.into_response(),
    };
    // Encoding tens of megabytes is CPU work: off the async threads.
    match tokio::task::spawn_blocking(move || body.to_json()).await {
        Ok(out) => ([(header::CONTENT_TYPE, "application/json")], out).into_response(),
        Err(e) => Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        )
        .into_response(),
    }
}

fn settings_of(sim: &Sim) -> Response {
    Json(sim.signing.settings.lock().expect("settings").clone()).into_response()
}

async fn get_settings(State(sim): State<Sim>) -> Response {
    settings_of(&sim)
}

async fn set_settings(State(sim): State<Sim>, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let updated = {
        let mut settings = sim.signing.settings.lock().expect("settings");
        settings.updated(&body).map(|next| *settings = next)
    };
    match updated {
        Ok(()) => settings_of(&sim),
        Err(message) => crate::error(StatusCode::BAD_REQUEST, message),
    }
}

async fn expire_tokens(State(sim): State<Sim>) -> StatusCode {
    sim.signing
        .tokens
        .lock()
        .expect("tokens")
        .expire_all(Instant::now());
    StatusCode::NO_CONTENT
}

async fn list_documents(State(sim): State<Sim>) -> Json<Vec<Value>> {
    let documents = sim.signing.documents.lock().expect("documents");
    let mut listed: Vec<_> = documents.iter().collect();
    listed.sort_by_key(|(id, doc)| (doc.sent_at, **id));
    Json(listed.into_iter().map(|(id, doc)| doc.view(*id)).collect())
}

async fn one_document(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    let documents = sim.signing.documents.lock().expect("documents");
    match Uuid::parse_str(&id)
        .ok()
        .and_then(|uuid| Some((uuid, documents.get(&uuid)?)))
    {
        Some((uuid, doc)) => Json(doc.view(uuid)).into_response(),
        None => crate::error(StatusCode::NOT_FOUND, format!("no document {id}")),
    }
}

/// The vendor's routes, under `/signing`.
pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/api/v1/auth/token", post(token))
        .route("/api/v1/auth/revoke", post(revoke))
        .route(
            "/api/v1/documents",
            post(submit).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/api/v1/documents/{id}/status", get(status))
        .route("/api/v1/documents/{id}/download", get(download))
}

/// The control routes, under `/sim/signing`.
pub fn control_routes() -> Router<Sim> {
    Router::new()
        .route("/settings", get(get_settings).post(set_settings))
        .route("/expire-tokens", post(expire_tokens))
        .route("/documents", get(list_documents))
        .route("/documents/{id}", get(one_document))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_name_puts_signed_before_pdf() {
        assert_eq!(signed_name("contract.pdf"), "contract_signed.pdf");
        assert_eq!(signed_name("Contrato.PDF"), "Contrato_signed.PDF");
        assert_eq!(signed_name("contract"), "contract_signed");
        assert_eq!(signed_name("pdf"), "pdf_signed");
        assert_eq!(signed_name("año€.pdf"), "año€_signed.pdf");
        assert_eq!(
            signed_name("ñ€"),
            "ñ€_signed",
            "no char boundary 4 bytes back"
        );
    }

    #[test]
    fn content_must_be_standard_base64_of_a_pdf() {
        let pdf = STANDARD.encode(b"%PDF-1.7\n...");
        let bytes = decode_pdf(Some(&pdf), 100).unwrap();
        assert_eq!(bytes, b"%PDF-1.7\n...");
        assert!(bytes.capacity() >= bytes.len() + 100);
        let message = |content: Option<&str>| decode_pdf(content, 0).unwrap_err().message;
        assert!(message(None).contains("required"));
        assert!(message(Some("")).contains("required"));
        assert!(message(Some("%PDF-1.7")).contains("not standard Base64"));
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode(b"%PDF-\xfb\xff");
        assert!(message(Some(&url_safe)).contains("not standard Base64"));
        let unpadded = STANDARD
            .encode(b"%PDF-1.7")
            .trim_end_matches('=')
            .to_string();
        assert!(message(Some(&unpadded)).contains("not standard Base64"));
        let text = STANDARD.encode(b"hello, not a pdf");
        assert!(message(Some(&text)).contains("not a PDF"));
    }

    #[test]
    fn the_download_answer_is_json_with_the_content_in_base64() {
        for content in [&b""[..], b"%PDF-1", b"%PDF-1.7\n\xff\xfe\x00"] {
            let body = DownloadBody {
                document_id: Uuid::nil(),
                document_name: "a \"quoted\" name_signed.pdf".into(),
                date_sent_to_sign: "2024-02-25T14:30:00Z".into(),
                assigned_active_directory_user: "john.doe@company.com".into(),
                content: Arc::new(content.to_vec()),
            };
            let parsed: Value = serde_json::from_slice(&body.to_json()).unwrap();
            assert_eq!(
                parsed,
                json!({ "document_id": Uuid::nil(), "document_name": "a \"quoted\" name_signed.pdf",
                        "date_sent_to_sign": "2024-02-25T14:30:00Z",
                        "assigned_active_directory_user": "john.doe@company.com",
                        "signed_document_content": STANDARD.encode(content) })
            );
        }
    }

    #[test]
    fn settings_update_partially_and_all_or_nothing() {
        let settings = Settings::default();
        let next = settings
            .updated(
                &json!({ "sign_after_ms": 0, "outcomes": { "a@x": "rejected" },
                              "lose_webhooks": null }),
            )
            .unwrap();
        assert_eq!(next.sign_after_ms, 0);
        assert_eq!(next.outcomes["a@x"], Status::Rejected);
        assert_eq!(next.webhook_delay_ms, 100);
        assert!(!next.lose_webhooks);
        for (bad, field) in [
            (json!({ "sign_after_ms": -1 }), "sign_after_ms"),
            (json!({ "token_lifetime_s": 0 }), "token_lifetime_s"),
            (json!({ "outcome": "received" }), "outcome"),
            (json!({ "outcomes": { "a@x": "lost" } }), "outcomes.a@x"),
            (json!({ "lose_webhooks": "yes" }), "lose_webhooks"),
            (json!({ "sign_after": 1 }), "sign_after"),
            (json!({ "sign_after_ms": 1, "outcome": 3 }), "outcome"),
        ] {
            let message = settings.updated(&bad).unwrap_err();
            assert!(message.contains(field), "{bad}: {message}");
        }
        assert!(settings.updated(&json!([])).is_err());
    }

    #[test]
    fn revoking_a_refresh_token_revokes_its_access_tokens() {
        let mut tokens = Tokens::default();
        let hour = Duration::from_secs(3600);
        let now = Instant::now();
        let (first, refresh) = tokens.grant("u", hour);
        let second = tokens.refresh(&refresh, hour).unwrap();
        let (other, _) = tokens.grant("u", hour);
        tokens.revoke(&first);
        assert!(matches!(tokens.check(&first, now), Access::Revoked));
        assert!(matches!(tokens.check(&second, now), Access::Valid(u) if u == "u"));
        tokens.revoke(&refresh);
        assert!(matches!(tokens.check(&second, now), Access::Revoked));
        assert!(tokens.refresh(&refresh, hour).is_none());
        assert!(matches!(tokens.check(&other, now), Access::Valid(_)));
        tokens.revoke("never issued");
        tokens.expire_all(Instant::now());
        assert!(matches!(
            tokens.check(&other, Instant::now()),
            Access::Expired
        ));
        assert!(matches!(tokens.check("nope", now), Access::Unknown));
    }
}
