//! The document signing API (docs/vendors/signing.md): OAuth2 password and refresh grants at
//! `/api/v1/auth/token`, revocation (RFC 7009), and the documents: submit, status, download.
//!
//! One access token serves every task of every replica: it lives in the shared [`TokenStore`] with its
//! refresh token, refreshed with the refresh grant before it expires (a password grant only when there
//! is no refresh token or the vendor refuses it), and a 401 on a call triggers one refresh and one retry.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use secrecy::SecretString;
use serde::Deserialize;

use super::demo;
use super::http::{self, VendorError};
use crate::contract::env::{ConfigError, Env, FromEnv, base_url};
use crate::contract::errors::{ErrorKind, Failure, Verdict};
use crate::vendors::tokens::{TokenError, VaultError};

mod documents;
mod oauth;

pub use documents::{
    DocumentStatus, Download, DownloadView, SubmitDocument, Submitted, VendorStatus,
};

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

/// The error body the vendor documents: `{error, message}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
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
            client_id: env.demo_or_required("SIGNING_CLIENT_ID", demo::SIGNING_CLIENT_ID),
            client_secret: env
                .demo_or_required_secret("SIGNING_CLIENT_SECRET", demo::SIGNING_CLIENT_SECRET),
            username: env.demo_or_required("SIGNING_USERNAME", demo::SIGNING_USERNAME),
            password: env.demo_or_required_secret("SIGNING_PASSWORD", demo::SIGNING_PASSWORD),
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
}
