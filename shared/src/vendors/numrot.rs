//! NumRot (docs/vendors/numrot.md): a token from `POST /v2/api/Token` with `Username`/`Password` as JSON, valid
//! at most 60 minutes, sent as a Bearer credential (`NUMROT_AUTH_SCHEME`) on every call; a 401 on a call
//! means the token's session ended.
//!
//! A 500 from the token service means "user not registered" by the document, but a 500 is also what a
//! failing server sends. So the first ones are read as a passing failure (the message retries), counted
//! by a circuit breaker; `NUMROT_TOKEN_500_BUDGET` of them in a row are read as the document says: the
//! credentials are refused (`auth`, with an alert), and for `NUMROT_TOKEN_500_COOLDOWN` no token call is
//! made at all, then one probe.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::bearer::{self, AuthScheme, CallError, VendorResponse};
use super::breaker::{Admission, CircuitBreakers};
use super::demo;
use super::http::{self, VendorError};
use crate::contract::env::{ConfigError, Env, FromEnv, base_url};
use crate::vendors::tokens::{FetchedToken, TokenVault};

const VENDOR: &str = "numrot";

/// The longest a NumRot token lives, by the document.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// The token service's circuit, in the breaker's table.
const TOKEN_CIRCUIT: &str = "numrot.token";

/// The NumRot client.
#[derive(Debug, Clone)]
pub struct NumRotClient {
    http: reqwest::Client,
    base: Url,
    token_url: Url,
    username: String,
    password: SecretString,
    scheme: AuthScheme,
    /// 500s from the token service in a row, shared by the clones of one process.
    token_500s: Arc<CircuitBreakers>,
    budget: u32,
    timeout: Duration,
}

/// Reads the token from the token service's answer, whose shape the document leaves open: a bare JWT
/// (as a JSON string or plain text) or an object with a token field.
pub fn token_from_body(text: &str) -> Option<(SecretString, Option<Duration>)> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::String(t)) if !t.is_empty() => Some((t.into(), None)),
        Ok(Value::Object(map)) => {
            let token = ["token", "Token", "accessToken", "access_token"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str))?;
            let lifetime = ["expiresIn", "expires_in"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_u64))
                .map(Duration::from_secs);
            Some((token.to_string().into(), lifetime))
        }
        Ok(_) => None,
        Err(_) => {
            let t = text.trim();
            (!t.is_empty() && !t.contains(char::is_whitespace))
                .then(|| (t.to_string().into(), None))
        }
    }
}

impl NumRotClient {
    /// A client for the configured account and environment.
    pub fn new(settings: &NumRotSettings) -> Result<Self, url::ParseError> {
        let base = Url::parse(settings.base_url.trim_end_matches('/'))?;
        let token_url = Url::parse(&format!(
            "{}/v2/api/Token",
            settings.base_url.trim_end_matches('/')
        ))?;
        Ok(Self {
            http: http::client(settings.timeout),
            base,
            token_url,
            username: settings.username.clone(),
            password: settings.password.clone(),
            scheme: settings.auth_scheme.clone(),
            token_500s: Arc::new(CircuitBreakers::new(
                settings.token_500_budget,
                settings.token_500_cooldown,
            )),
            budget: settings.token_500_budget.max(1),
            timeout: settings.timeout,
        })
    }

    /// The document's reading of the token service's 500, once it has been believed.
    fn not_registered(&self) -> VendorError {
        VendorError::Credentials {
            vendor: VENDOR,
            detail: format!(
                "the token service answered 500 {} times in a row: by NumRot's document, \
                 NUMROT_USERNAME/NUMROT_PASSWORD are not registered credentials",
                self.budget
            ),
        }
    }

    /// `POST /v2/api/Token`: a new token.
    #[tracing::instrument(name = "numrot.token", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn fetch_token(&self) -> Result<FetchedToken, VendorError> {
        if let Admission::Skip(_) = self.token_500s.admission(TOKEN_CIRCUIT) {
            return Err(self.not_registered());
        }
        let body = serde_json::json!({
            "Username": self.username,
            "Password": self.password.expose_secret(),
        });
        let request = self.http.post(self.token_url.clone()).json(&body);
        let http::Answer {
            status,
            headers,
            text,
        } = http::exchange(VENDOR, "token", self.timeout, request).await?;
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            if self.token_500s.failure(TOKEN_CIRCUIT) {
                let e = self.not_registered();
                tracing::error!(alert = true, vendor = VENDOR, error = %e,
                    "NumRot refuses the credentials; no token call until the cool-down ends");
                return Err(e);
            }
            // Maybe "not registered", maybe a failing server: the message tries again later.
            return Err(http::status_error(VENDOR, status, &headers, &text));
        }
        self.token_500s.success(TOKEN_CIRCUIT);
        if !status.is_success() {
            return Err(http::status_error(VENDOR, status, &headers, &text));
        }
        let (value, lifetime) = token_from_body(&text).ok_or_else(|| VendorError::Decode {
            vendor: VENDOR,
            detail: format!(
                "the token answer holds no token; its shape: {}",
                crate::vendors::shape::shape_of(&text)
            ),
        })?;
        Ok(FetchedToken {
            value,
            lifetime: lifetime
                .unwrap_or(MAX_TOKEN_LIFETIME)
                .min(MAX_TOKEN_LIFETIME),
        })
    }

    /// Calls `method path` with the shared token; a 401 fetches a new token once and retries once.
    #[tracing::instrument(name = "numrot.call", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn call(
        &self,
        tokens: &dyn TokenVault,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<VendorResponse, CallError> {
        let method = bearer::method(method)?;
        let url = bearer::vendor_url(&self.base, path)?;
        bearer::with_token(
            tokens,
            VENDOR,
            &[StatusCode::UNAUTHORIZED],
            |_| self.fetch_token(),
            |token| {
                let mut request = self.http.request(method.clone(), url.clone());
                if let Some(b) = body {
                    request = request.json(b);
                }
                let scheme = &self.scheme;
                async move {
                    bearer::send_with(VENDOR, self.timeout, "call", request, scheme, &token).await
                }
            },
        )
        .await
    }
}

/// NumRot's token service and API (`NUMROT_*`).
#[derive(Debug, Clone)]
pub struct NumRotSettings {
    /// `NUMROT_BASE_URL`: test or production, the part before `/v2/api/Token`.
    pub base_url: String,
    /// `NUMROT_USERNAME`.
    pub username: String,
    /// `NUMROT_PASSWORD`.
    pub password: SecretString,
    /// `NUMROT_AUTH_SCHEME`: the word before the token in `Authorization` (`Bearer`), or `none`.
    pub auth_scheme: AuthScheme,
    /// `NUMROT_TOKEN_500_BUDGET`: token-call 500s in a row read as a passing failure, before the
    /// document's "not registered" is believed (3).
    pub token_500_budget: u32,
    /// `NUMROT_TOKEN_500_COOLDOWN`: once believed, how long no token call is made (60 s).
    pub token_500_cooldown: Duration,
    /// `NUMROT_TIMEOUT`: one call's deadline.
    pub timeout: Duration,
}

impl FromEnv for NumRotSettings {
    /// Reads `NUMROT_*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: base_url(env, "NUMROT_BASE_URL", demo::NUMROT_BASE_URL)?,
            username: env.demo_or_required("NUMROT_USERNAME", demo::NUMROT_USERNAME),
            password: env.demo_or_required_secret("NUMROT_PASSWORD", demo::NUMROT_PASSWORD),
            auth_scheme: AuthScheme::parse(&env.string("NUMROT_AUTH_SCHEME", "Bearer"))
                .map_err(|problem| ConfigError::new("NUMROT_AUTH_SCHEME", problem))?,
            token_500_budget: env.parse("NUMROT_TOKEN_500_BUDGET", 3u32)?.max(1),
            token_500_cooldown: env
                .duration("NUMROT_TOKEN_500_COOLDOWN", Duration::from_secs(60))?,
            timeout: env.duration("NUMROT_TIMEOUT", Duration::from_secs(15))?,
        })
    }
}

impl FromEnv for NumRotClient {
    /// Reads `NUMROT_*` and builds the client.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::new(&NumRotSettings::from_env(env)?)
            .map_err(|e| ConfigError::new("NUMROT_BASE_URL", format!("not a URL: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_shape_the_document_allows_is_read() {
        let (t, l) = token_from_body(r#""eyJ.a.b""#).unwrap();
        assert_eq!((t.expose_secret(), l), ("eyJ.a.b", None));
        let (t, l) = token_from_body(r#"{"token":"eyJ.c.d","expiresIn":600}"#).unwrap();
        assert_eq!(
            (t.expose_secret(), l),
            ("eyJ.c.d", Some(Duration::from_secs(600)))
        );
        let (t, _) = token_from_body("eyJ.e.f\n").unwrap();
        assert_eq!(t.expose_secret(), "eyJ.e.f");
        assert!(token_from_body(r#"{"error":"x"}"#).is_none());
        assert!(token_from_body("an html error page").is_none());
    }
}
