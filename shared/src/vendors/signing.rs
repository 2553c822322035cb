//! The document signing API (docs/vendors/signing.md): OAuth2 password and refresh grants at
//! `/api/v1/auth/token`, revocation (RFC 7009), and the documents: submit, status, download.
//!
//! One access token serves every task of every replica: it lives in the shared [`TokenStore`] with its
//! refresh token, refreshed with the refresh grant before it expires (a password grant only when there
//! is no refresh token or the vendor refuses it), and a 401 on a call triggers one refresh and one retry.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::demo;
use super::http::{self, VendorError};
use crate::contract::env::{ConfigError, Env, FromEnv, base_url};
use crate::contract::errors::{ErrorKind, Failure, Verdict};
use crate::vendors::tokens::{FetchedToken, TokenError, TokenVault, VaultError};

const VENDOR: &str = "signing";

/// The `vendor_tokens` row the signing tokens live in.
pub const TOKEN_VENDOR: &str = "signing";

/// The lifetime assumed when the token answer gives none (the document's example: an hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Why a signing call did not give the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The vendor (or the way to it) failed, or answered a status with no documented meaning here.
    #[error(transparent)]
    Vendor(#[from] VendorError),
    /// The shared token store could not be used.
    #[error("token store: {0}")]
    Store(#[from] VaultError),
    /// The vendor refused the request as given (`400 invalid_request` and the like): no retry helps.
    #[error("signing: the vendor refused the request: HTTP {status} {error}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error body's `error`.
        error: String,
        /// The error body's `message`.
        message: String,
    },
    /// The vendor does not know the document.
    #[error("signing: the vendor does not know document {0}")]
    UnknownDocument(String),
    /// The document is not signed yet, so there is nothing to download.
    #[error("signing: document {0} is not signed yet")]
    NotSigned(String),
}

impl From<TokenError<VendorError>> for SigningError {
    fn from(e: TokenError<VendorError>) -> Self {
        match e {
            TokenError::Fetch(v) => SigningError::Vendor(v),
            TokenError::Store(d) => SigningError::Store(d),
        }
    }
}

impl SigningError {
    /// What this failure means for the message that caused it.
    pub fn verdict(&self) -> Verdict {
        let msg = self.to_string();
        match self {
            SigningError::Vendor(v) => v.verdict(),
            SigningError::Store(_) => Verdict::retry(Failure::new(ErrorKind::Internal, msg)),
            SigningError::Refused { .. } => Verdict::GiveUp(Failure::new(ErrorKind::Rejected, msg)),
            SigningError::UnknownDocument(_) => {
                Verdict::GiveUp(Failure::new(ErrorKind::Vendor, msg))
            }
            SigningError::NotSigned(_) => Verdict::retry(Failure::new(ErrorKind::Vendor, msg)),
        }
    }
}

/// The fields of a submission before its content, which is streamed after them.
#[derive(Serialize)]
struct SubmitHead<'a> {
    document_name: &'a str,
    active_directory_user: &'a str,
    signature_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
}

/// The error body the vendor documents: `{error, message}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

/// The token endpoint's answer, for both grants.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// What the token store keeps for this vendor: the access token and the refresh token that renews it.
#[derive(Serialize, Deserialize)]
struct StoredGrant {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A document to submit; `content` is the producer's base64 text, sent as it is.
#[derive(Debug, Clone)]
pub struct SubmitDocument {
    /// `document_name`.
    pub document_name: String,
    /// `document_content`: standard base64 of the PDF, already checked.
    pub content: Bytes,
    /// `active_directory_user`: who signs.
    pub active_directory_user: String,
    /// `signature_type`.
    pub signature_type: String,
    /// `callback_url`: pasarela's capability URL for this document.
    pub callback_url: Option<String>,
}

/// The vendor's 202 to a submission.
#[derive(Debug, Clone, Deserialize)]
pub struct Submitted {
    /// The vendor's id of the document.
    pub document_id: String,
    /// `received`.
    #[serde(default)]
    pub status: String,
    /// The vendor's words.
    #[serde(default)]
    pub message: Option<String>,
}

/// Where a document stands at the vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorStatus {
    /// Received, queued for signing: ask again later.
    Received,
    /// Signed: download it.
    Signed,
    /// Refused by the signer (not in the document; handled if seen).
    Rejected,
    /// Never signed in time (not in the document; handled if seen).
    Expired,
    /// The vendor failed it (not in the document; handled if seen).
    Error,
    /// Anything else, treated as still in progress.
    Other(String),
}

impl VendorStatus {
    /// Reads the vendor's status word.
    pub fn parse(raw: &str) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "received" | "queued" | "pending" | "in_progress" | "sent_to_sign" => {
                VendorStatus::Received
            }
            "signed" => VendorStatus::Signed,
            "rejected" | "declined" => VendorStatus::Rejected,
            "expired" => VendorStatus::Expired,
            "error" | "failed" => VendorStatus::Error,
            _ => VendorStatus::Other(raw.chars().take(40).collect()),
        }
    }

    /// Whether the document will never be signed.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            VendorStatus::Rejected | VendorStatus::Expired | VendorStatus::Error
        )
    }
}

/// `GET /documents/{id}/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct DocumentStatus {
    /// The vendor's id.
    #[serde(default)]
    pub document_id: String,
    /// The status word, as the vendor wrote it.
    pub status: String,
    /// When the document was first sent to sign.
    #[serde(default)]
    pub date_sent_to_sign: Option<DateTime<Utc>>,
    /// The signer assigned.
    #[serde(default)]
    pub assigned_active_directory_user: Option<String>,
    /// When it was signed.
    #[serde(default)]
    pub signing_date: Option<DateTime<Utc>>,
    /// The vendor's words.
    #[serde(default)]
    pub message: Option<String>,
}

impl DocumentStatus {
    /// The status, classified.
    pub fn state(&self) -> VendorStatus {
        VendorStatus::parse(&self.status)
    }
}

/// The download's answer, read whole but not copied: the signed content borrows from it.
pub struct Download {
    raw: Vec<u8>,
}

/// The fields of a download, borrowing the signed content from the answer's bytes.
#[derive(Debug, Deserialize)]
pub struct DownloadView<'a> {
    /// The vendor's id.
    #[serde(default)]
    pub document_id: String,
    /// The signed file's name.
    #[serde(default)]
    pub document_name: Option<String>,
    /// Standard base64 of the signed PDF.
    #[serde(borrow)]
    pub signed_document_content: Cow<'a, str>,
    /// When the document was first sent to sign.
    #[serde(default)]
    pub date_sent_to_sign: Option<DateTime<Utc>>,
    /// The signer assigned.
    #[serde(default)]
    pub assigned_active_directory_user: Option<String>,
}

impl Download {
    /// The answer's fields.
    pub fn view(&self) -> Result<DownloadView<'_>, VendorError> {
        serde_json::from_slice(&self.raw).map_err(|e| {
            http::unreadable(VENDOR, "download", &String::from_utf8_lossy(&self.raw), &e)
        })
    }
}

/// The signing API's client.
#[derive(Debug, Clone)]
pub struct SigningClient {
    http: reqwest::Client,
    transfer: reqwest::Client,
    api: String,
    client_id: String,
    client_secret: SecretString,
    username: String,
    password: SecretString,
    timeout: Duration,
    transfer_timeout: Duration,
}

/// Maps a non-2xx answer with the documented error body.
fn refused(status: StatusCode, headers: &reqwest::header::HeaderMap, text: &str) -> SigningError {
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        return http::status_error(VENDOR, status, headers, text).into();
    }
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) if !body.error.is_empty() && status.is_client_error() => SigningError::Refused {
            status: status.as_u16(),
            error: http::snippet(&body.error),
            message: http::snippet(&body.message),
        },
        _ => http::status_error(VENDOR, status, headers, text).into(),
    }
}

impl SigningClient {
    /// A client for the configured account.
    pub fn new(settings: &SigningSettings) -> Result<Self, url::ParseError> {
        let api = format!("{}/api/v1", settings.base_url.trim_end_matches('/'));
        Url::parse(&api)?;
        Ok(Self {
            http: http::client(settings.timeout),
            transfer: http::client(settings.transfer_timeout),
            api,
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            username: settings.username.clone(),
            password: settings.password.clone(),
            timeout: settings.timeout,
            transfer_timeout: settings.transfer_timeout,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    async fn grant(
        &self,
        operation: &'static str,
        body: serde_json::Value,
    ) -> Result<FetchedToken, SigningError> {
        let request = self.http.post(self.url("/auth/token")).json(&body);
        let http::Answer {
            status,
            headers,
            text,
        } = http::exchange(VENDOR, operation, self.timeout, request).await?;
        if status == StatusCode::UNAUTHORIZED {
            // `invalid_client`: the client id or secret is wrong; no retry will change that.
            return Err(VendorError::Credentials {
                vendor: VENDOR,
                detail: "the token endpoint refused SIGNING_CLIENT_ID/SIGNING_CLIENT_SECRET".into(),
            }
            .into());
        }
        if !status.is_success() {
            return Err(refused(status, &headers, &text));
        }
        let answer: TokenAnswer = serde_json::from_str(&text)
            .map_err(|e| http::unreadable(VENDOR, "token answer", &text, &e))?;
        if let Some(kind) = answer.token_type.as_deref()
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(VendorError::Decode {
                vendor: VENDOR,
                detail: format!("token_type {kind:?}, expected Bearer"),
            }
            .into());
        }
        let stored = StoredGrant {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token,
        };
        Ok(FetchedToken {
            value: serde_json::to_string(&stored)
                .expect("two strings serialise")
                .into(),
            lifetime: answer
                .expires_in
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_LIFETIME),
        })
    }

    /// `POST /auth/token`, password grant: a new access and refresh token.
    #[tracing::instrument(name = "signing.password_grant", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.status_code))]
    pub async fn password_grant(&self) -> Result<FetchedToken, SigningError> {
        let body = serde_json::json!({
            "grant_type": "password",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose_secret(),
            "username": self.username,
            "password": self.password.expose_secret(),
        });
        match self.grant("password_grant", body).await {
            Err(SigningError::Refused { error, .. }) if error == "invalid_grant" => {
                Err(VendorError::Credentials {
                    vendor: VENDOR,
                    detail: "the token endpoint refused SIGNING_USERNAME/SIGNING_PASSWORD".into(),
                }
                .into())
            }
            other => other,
        }
    }

    /// `POST /auth/token`, refresh grant: a new access token; the refresh token is kept when the
    /// answer brings no new one.
    #[tracing::instrument(name = "signing.refresh_grant", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.status_code))]
    pub async fn refresh_grant(
        &self,
        refresh_token: &SecretString,
    ) -> Result<FetchedToken, SigningError> {
        let body = serde_json::json!({
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose_secret(),
            "refresh_token": refresh_token.expose_secret(),
        });
        let fetched = self.grant("refresh_grant", body).await?;
        let mut grant: StoredGrant = serde_json::from_str(fetched.value.expose_secret())
            .expect("written by grant() just now");
        if grant.refresh_token.is_none() {
            grant.refresh_token = Some(refresh_token.expose_secret().to_string());
        }
        Ok(FetchedToken {
            value: serde_json::to_string(&grant)
                .expect("two strings serialise")
                .into(),
            lifetime: fetched.lifetime,
        })
    }

    /// A new token for the store: the refresh grant when `previous` holds a refresh token, else (or
    /// when the vendor refuses it) the password grant.
    pub async fn fetch_token(
        &self,
        previous: Option<SecretString>,
    ) -> Result<FetchedToken, VendorError> {
        let refresh = previous.and_then(|p| {
            serde_json::from_str::<StoredGrant>(p.expose_secret())
                .ok()
                .and_then(|g| g.refresh_token)
                .map(SecretString::from)
        });
        if let Some(refresh) = refresh {
            match self.refresh_grant(&refresh).await {
                Ok(t) => return Ok(t),
                Err(SigningError::Vendor(v)) if v.verdict().is_retry() => return Err(v),
                Err(e) => {
                    tracing::info!(error = %e, "refresh grant refused; using the password grant");
                }
            }
        }
        match self.password_grant().await {
            Ok(t) => Ok(t),
            Err(SigningError::Vendor(v)) => Err(v),
            Err(other) => Err(VendorError::Credentials {
                vendor: VENDOR,
                detail: other.to_string(),
            }),
        }
    }

    /// `POST /auth/revoke` (RFC 7009) of `token`, authorised with the current access token.
    #[tracing::instrument(name = "signing.revoke", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.status_code))]
    pub async fn revoke(
        &self,
        tokens: &dyn TokenVault,
        token: &SecretString,
        hint: &str,
    ) -> Result<(), SigningError> {
        let body = serde_json::json!({ "token": token.expose_secret(), "token_type_hint": hint });
        let response = self
            .authorized(tokens, "revoke", |access| {
                self.http
                    .post(self.url("/auth/revoke"))
                    .bearer_auth(access)
                    .json(&body)
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            Err(refused(status, &headers, &text))
        }
    }

    /// Revokes the stored refresh token (and with it, at this vendor, its access tokens), then forgets
    /// the stored grant: for rotating credentials or retiring an account.
    pub async fn revoke_stored(&self, tokens: &dyn TokenVault) -> Result<bool, SigningError> {
        let token = tokens
            .token(TOKEN_VENDOR, |previous| self.fetch_token(previous))
            .await?;
        let grant: Option<StoredGrant> = serde_json::from_str(token.value.expose_secret()).ok();
        let Some(refresh) = grant.and_then(|g| g.refresh_token) else {
            return Ok(false);
        };
        self.revoke(tokens, &refresh.into(), "refresh_token")
            .await?;
        tokens.invalidate(TOKEN_VENDOR, &token).await?;
        Ok(true)
    }

    /// Sends the request `build` makes with the shared access token; on a 401 the token is refreshed
    /// for everyone and the request is sent once more.
    async fn authorized<B>(
        &self,
        tokens: &dyn TokenVault,
        operation: &'static str,
        build: B,
    ) -> Result<reqwest::Response, SigningError>
    where
        B: Fn(&str) -> reqwest::RequestBuilder,
    {
        let mut refreshed = false;
        loop {
            let token = tokens
                .token(TOKEN_VENDOR, |previous| self.fetch_token(previous))
                .await?;
            let grant: StoredGrant =
                serde_json::from_str(token.value.expose_secret()).map_err(|_| {
                    VendorError::Decode {
                        vendor: VENDOR,
                        detail: "the stored token is not a signing grant".into(),
                    }
                })?;
            let started = Instant::now();
            let timeout = if operation == "submit" || operation == "download" {
                self.transfer_timeout
            } else {
                self.timeout
            };
            let response = build(&grant.access_token)
                .headers(crate::telemetry::http_trace_headers())
                .send()
                .await
                .map_err(|e| {
                    http::observe(VENDOR, operation, started, "transport");
                    http::transport_error(VENDOR, timeout, &e)
                })?;
            let status = response.status();
            tracing::Span::current().record("http.status_code", status.as_u16());
            http::observe(VENDOR, operation, started, status.as_str());
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::info!(
                    operation,
                    "access token refused; refreshing it and trying once more"
                );
                tokens.invalidate(TOKEN_VENDOR, &token).await?;
                refreshed = true;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(VendorError::Credentials {
                    vendor: VENDOR,
                    detail: format!("{operation}: a freshly issued access token was refused"),
                }
                .into());
            }
            return Ok(response);
        }
    }

    /// `POST /documents`: submits a PDF for signing. The base64 text goes out as it came, streamed
    /// between the JSON around it, so a large document is never copied to build the request.
    #[tracing::instrument(name = "signing.submit", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.status_code))]
    pub async fn submit(
        &self,
        tokens: &dyn TokenVault,
        document: &SubmitDocument,
    ) -> Result<Submitted, SigningError> {
        let head = SubmitHead {
            document_name: &document.document_name,
            active_directory_user: &document.active_directory_user,
            signature_type: &document.signature_type,
            callback_url: document.callback_url.as_deref(),
        };
        let head = serde_json::to_string(&head).expect("strings serialise");
        // `{...fields` + `,"document_content":"` + base64 + `"}`: base64 needs no JSON escaping.
        let prefix = Bytes::from(format!(
            "{},\"document_content\":\"",
            &head[..head.len() - 1]
        ));
        let suffix = Bytes::from_static(b"\"}");
        let length = prefix.len() + document.content.len() + suffix.len();
        let response = self
            .authorized(tokens, "submit", |access| {
                let parts = [prefix.clone(), document.content.clone(), suffix.clone()];
                let body = reqwest::Body::wrap_stream(
                    futures::stream::iter(parts).map(Ok::<_, std::io::Error>),
                );
                self.transfer
                    .post(self.url("/documents"))
                    .bearer_auth(access)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(reqwest::header::CONTENT_LENGTH, length)
                    .body(body)
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| http::transport_error(VENDOR, self.transfer_timeout, &e))?;
        if !status.is_success() {
            return Err(refused(status, &headers, &text));
        }
        let submitted: Submitted = serde_json::from_str(&text)
            .map_err(|e| http::unreadable(VENDOR, "submit answer", &text, &e))?;
        if submitted.document_id.is_empty() {
            return Err(VendorError::Decode {
                vendor: VENDOR,
                detail: "submit answer has no document_id".into(),
            }
            .into());
        }
        Ok(submitted)
    }

    /// `GET /documents/{id}/status`.
    #[tracing::instrument(name = "signing.status", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.status_code))]
    pub async fn status(
        &self,
        tokens: &dyn TokenVault,
        vendor_document_id: &str,
    ) -> Result<DocumentStatus, SigningError> {
        let url = self.document_url(vendor_document_id, "status")?;
        let response = self
            .authorized(tokens, "status", |access| {
                self.http.get(url.clone()).bearer_auth(access)
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| http::transport_error(VENDOR, self.timeout, &e))?;
        if status == StatusCode::NOT_FOUND {
            return Err(SigningError::UnknownDocument(vendor_document_id.into()));
        }
        if !status.is_success() {
            return Err(refused(status, &headers, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            VendorError::Decode {
                vendor: VENDOR,
                detail: format!("status answer: {e}"),
            }
            .into()
        })
    }

    /// `GET /documents/{id}/download`: the answer read into one buffer sized from `Content-Length`,
    /// refused past `limit` bytes.
    #[tracing::instrument(name = "signing.download", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.status_code))]
    pub async fn download(
        &self,
        tokens: &dyn TokenVault,
        vendor_document_id: &str,
        limit: usize,
    ) -> Result<Download, SigningError> {
        let url = self.document_url(vendor_document_id, "download")?;
        let response = self
            .authorized(tokens, "download", |access| {
                self.transfer.get(url.clone()).bearer_auth(access)
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(match status {
                StatusCode::NOT_FOUND => SigningError::UnknownDocument(vendor_document_id.into()),
                StatusCode::CONFLICT => SigningError::NotSigned(vendor_document_id.into()),
                _ => refused(status, &headers, &text),
            });
        }
        let too_large = |size: usize| VendorError::Decode {
            vendor: VENDOR,
            detail: format!("download of {size} bytes is over the limit of {limit}"),
        };
        let expected = response.content_length().unwrap_or(0) as usize;
        if expected > limit {
            return Err(too_large(expected).into());
        }
        let mut raw = Vec::with_capacity(expected);
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| http::transport_error(VENDOR, self.transfer_timeout, &e))?;
            if raw.len() + chunk.len() > limit {
                return Err(too_large(raw.len() + chunk.len()).into());
            }
            raw.extend_from_slice(&chunk);
        }
        Ok(Download { raw })
    }

    fn document_url(&self, id: &str, what: &str) -> Result<String, SigningError> {
        // The id is the vendor's, but it goes in a path: only what an id can be is accepted.
        if id.is_empty()
            || id.len() > 200
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(VendorError::Decode {
                vendor: VENDOR,
                detail: format!("vendor document id {:?} is not an id", http::snippet(id)),
            }
            .into());
        }
        Ok(self.url(&format!("/documents/{id}/{what}")))
    }
}

/// The signing vendor's API and OAuth2 client (`SIGNING_*`).
#[derive(Debug, Clone)]
pub struct SigningSettings {
    /// `SIGNING_BASE_URL`: the part before `/api/v1`.
    pub base_url: String,
    /// `SIGNING_CLIENT_ID`.
    pub client_id: String,
    /// `SIGNING_CLIENT_SECRET`.
    pub client_secret: SecretString,
    /// `SIGNING_USERNAME`.
    pub username: String,
    /// `SIGNING_PASSWORD`.
    pub password: SecretString,
    /// `SIGNING_TIMEOUT`: the deadline of a token, status or revoke call.
    pub timeout: Duration,
    /// `SIGNING_TRANSFER_TIMEOUT`: the deadline of a call that moves a document (submit, download).
    pub transfer_timeout: Duration,
}

impl FromEnv for SigningSettings {
    /// Reads `SIGNING_*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: base_url(env, "SIGNING_BASE_URL", demo::SIGNING_BASE_URL)?,
            client_id: env.string("SIGNING_CLIENT_ID", demo::SIGNING_CLIENT_ID),
            client_secret: env.secret("SIGNING_CLIENT_SECRET", demo::SIGNING_CLIENT_SECRET),
            username: env.string("SIGNING_USERNAME", demo::SIGNING_USERNAME),
            password: env.secret("SIGNING_PASSWORD", demo::SIGNING_PASSWORD),
            timeout: env.duration("SIGNING_TIMEOUT", Duration::from_secs(15))?,
            transfer_timeout: env.duration("SIGNING_TRANSFER_TIMEOUT", Duration::from_secs(120))?,
        })
    }
}

impl FromEnv for SigningClient {
    /// Reads `SIGNING_*` and builds the client.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::new(&SigningSettings::from_env(env)?)
            .map_err(|e| ConfigError::new("SIGNING_BASE_URL", format!("not a URL: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_and_unknown_ones_wait() {
        assert_eq!(VendorStatus::parse("received"), VendorStatus::Received);
        assert_eq!(VendorStatus::parse("SIGNED"), VendorStatus::Signed);
        assert!(VendorStatus::parse("rejected").is_failure());
        assert!(VendorStatus::parse("expired").is_failure());
        assert!(VendorStatus::parse("error").is_failure());
        let other = VendorStatus::parse("reviewing");
        assert_eq!(other, VendorStatus::Other("reviewing".into()));
        assert!(!other.is_failure());
    }

    #[test]
    fn error_bodies_are_refusals_and_server_errors_retry() {
        let headers = reqwest::header::HeaderMap::new();
        let e = refused(
            StatusCode::BAD_REQUEST,
            &headers,
            r#"{"error":"invalid_request","message":"document_content is not a PDF"}"#,
        );
        let verdict = e.verdict();
        assert_eq!(verdict.failure().kind, ErrorKind::Rejected);
        assert!(!verdict.is_retry());
        assert!(
            verdict
                .failure()
                .message
                .contains("document_content is not a PDF")
        );
        let verdict = refused(StatusCode::SERVICE_UNAVAILABLE, &headers, "down").verdict();
        assert_eq!(verdict.failure().kind, ErrorKind::Vendor);
        assert!(verdict.is_retry());
        assert!(SigningError::NotSigned("x".into()).verdict().is_retry());
    }

    #[test]
    fn downloads_borrow_the_signed_content() {
        let d = Download {
            raw: br#"{"document_id":"d1","document_name":"a_signed.pdf","signed_document_content":"JVBERi0=","date_sent_to_sign":"2024-02-25T14:30:00Z","assigned_active_directory_user":"j@x"}"#.to_vec(),
        };
        let v = d.view().unwrap();
        assert!(matches!(
            v.signed_document_content,
            Cow::Borrowed("JVBERi0=")
        ));
        assert_eq!(v.document_name.as_deref(), Some("a_signed.pdf"));
        assert!(v.date_sent_to_sign.is_some());
    }
}
