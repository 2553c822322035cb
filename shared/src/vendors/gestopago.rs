//! GestoPago (docs/vendors/gestopago.md): a 24-hour `accessToken` from a form-url-encoded POST of `idDistribuidor`,
//! `codigoDispositivo` and `password` to the authentication server (`GESTOPAGO_TOKEN_URL`, else
//! `GESTOPAGO_TOKEN_PATH` under the base URL), shared by every replica (a token per request is
//! forbidden), sent as a Bearer credential; the payload JSON is encrypted (AES-256-CBC, PKCS#7, Base64
//! or hex) and sent as `signed`: "form-data" on POST (`multipart/form-data` by default, or
//! form-url-encoded: `GESTOPAGO_PAYLOAD_ENCODING`), a query parameter on GET. 401 (missing or wrong
//! token) and 403 (expired token) both fetch a new token once and retry once.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::bearer::{self, CallError, VendorResponse};
use super::demo;
use super::http::{self, VendorError};
use crate::contract::env::{ConfigError, Env, FromEnv, base_url};
use crate::vendors::cipher::{PayloadCipher, TextEncoding};
use crate::vendors::tokens::{FetchedToken, TokenVault};

const VENDOR: &str = "gestopago";

/// A GestoPago token's lifetime, by the document.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GestoPagoConfigError {
    /// A URL setting does not parse.
    #[error("GESTOPAGO_BASE_URL/GESTOPAGO_TOKEN_URL/GESTOPAGO_TOKEN_PATH: {0}")]
    Url(#[from] url::ParseError),
    /// The key or IV is unusable.
    #[error(transparent)]
    Cipher(#[from] crate::vendors::cipher::CipherError),
}

/// How `signed` travels in a POST body (`GESTOPAGO_PAYLOAD_ENCODING`). The document says "form-data
/// (key: value)", which in the tools its readers use is `multipart/form-data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadEncoding {
    /// `multipart/form-data`, one text part named `signed`: the literal reading, the default.
    Multipart,
    /// `application/x-www-form-urlencoded`, like the credentials.
    UrlEncoded,
}

impl PayloadEncoding {
    /// The setting's words, the default first.
    pub const CHOICES: [(&'static str, PayloadEncoding); 2] = [
        ("multipart", Self::Multipart),
        ("urlencoded", Self::UrlEncoded),
    ];
}

/// The GestoPago client.
#[derive(Debug, Clone)]
pub struct GestoPagoClient {
    http: reqwest::Client,
    base: Url,
    token_url: Url,
    id_distribuidor: String,
    codigo_dispositivo: String,
    password: SecretString,
    cipher: PayloadCipher,
    payload_encoding: PayloadEncoding,
    timeout: Duration,
}

impl GestoPagoClient {
    /// A client for the configured account, key and IV.
    pub fn new(settings: &GestoPagoSettings) -> Result<Self, GestoPagoConfigError> {
        let base_text = settings.base_url.trim_end_matches('/');
        let token_url = match &settings.token_url {
            Some(url) => Url::parse(url)?,
            None => Url::parse(&format!("{base_text}{}", settings.token_path))?,
        };
        Ok(Self {
            http: http::client(settings.timeout),
            base: Url::parse(base_text)?,
            token_url,
            id_distribuidor: settings.id_distribuidor.clone(),
            codigo_dispositivo: settings.codigo_dispositivo.clone(),
            password: settings.password.clone(),
            cipher: PayloadCipher::from_settings(
                settings.aes_key.expose_secret(),
                settings.aes_iv.expose_secret(),
            )?
            .with_text(settings.cipher_encoding),
            payload_encoding: settings.payload_encoding,
            timeout: settings.timeout,
        })
    }

    /// The authentication endpoint: a new `accessToken`.
    #[tracing::instrument(name = "gestopago.token", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn fetch_token(&self) -> Result<FetchedToken, VendorError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("idDistribuidor", &self.id_distribuidor)
            .append_pair("codigoDispositivo", &self.codigo_dispositivo)
            .append_pair("password", self.password.expose_secret())
            .finish();
        let request = self
            .http
            .post(self.token_url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        let http::Answer {
            status,
            headers,
            text,
        } = http::exchange(VENDOR, "token", self.timeout, request).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(VendorError::Credentials {
                vendor: VENDOR,
                detail: format!(
                    "the authentication endpoint refused GESTOPAGO_ID_DISTRIBUIDOR/CODIGO_DISPOSITIVO/PASSWORD (HTTP {})",
                    status.as_u16()
                ),
            });
        }
        if !status.is_success() {
            return Err(http::status_error(VENDOR, status, &headers, &text));
        }
        let parsed: Value = serde_json::from_str(&text)
            .map_err(|e| http::unreadable(VENDOR, "token answer", &text, &e))?;
        let token = parsed
            .get("accessToken")
            .and_then(Value::as_str)
            .ok_or_else(|| VendorError::Decode {
                vendor: VENDOR,
                detail: format!(
                    "the token answer has no accessToken; its shape: {}",
                    crate::vendors::shape::shape_of(&text)
                ),
            })?;
        let lifetime = parsed
            .get("expiresIn")
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .unwrap_or(TOKEN_LIFETIME)
            .min(TOKEN_LIFETIME);
        Ok(FetchedToken {
            value: token.to_string().into(),
            lifetime,
        })
    }

    /// Calls `method path` with `payload` encrypted as `signed`, with the shared token; a 401 or 403
    /// fetches a new token once and retries once.
    #[tracing::instrument(name = "gestopago.call", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn call(
        &self,
        tokens: &dyn TokenVault,
        method: &str,
        path: &str,
        payload: &Value,
    ) -> Result<VendorResponse, CallError> {
        let method = bearer::method(method)?;
        let mut url = bearer::vendor_url(&self.base, path)?;
        let plain = serde_json::to_vec(payload).expect("a JSON value serialises");
        let signed = self.cipher.encrypt(&plain);
        let in_body = method != Method::GET;
        if !in_body {
            url.query_pairs_mut().append_pair("signed", &signed);
        }
        bearer::with_token(
            tokens,
            VENDOR,
            &[StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN],
            |_| self.fetch_token(),
            |token| {
                let mut request = self.http.request(method.clone(), url.clone());
                if in_body {
                    request = match self.payload_encoding {
                        // A multipart form is consumed by its request: each attempt builds its own.
                        PayloadEncoding::Multipart => request.multipart(
                            reqwest::multipart::Form::new().text("signed", signed.clone()),
                        ),
                        PayloadEncoding::UrlEncoded => request.form(&[("signed", &signed)]),
                    };
                }
                async move {
                    bearer::send_with(
                        VENDOR,
                        self.timeout,
                        "call",
                        request,
                        &bearer::AuthScheme::Bearer,
                        &token,
                    )
                    .await
                }
            },
        )
        .await
    }
}

/// GestoPago's token service, API and payload key (`GESTOPAGO_*`).
#[derive(Debug, Clone)]
pub struct GestoPagoSettings {
    /// `GESTOPAGO_BASE_URL`.
    pub base_url: String,
    /// `GESTOPAGO_TOKEN_URL`: the authentication server's endpoint, a URL of its own.
    pub token_url: Option<String>,
    /// `GESTOPAGO_TOKEN_PATH`: the authentication endpoint after the base URL, when no
    /// `GESTOPAGO_TOKEN_URL` is set.
    pub token_path: String,
    /// `GESTOPAGO_ID_DISTRIBUIDOR`.
    pub id_distribuidor: String,
    /// `GESTOPAGO_CODIGO_DISPOSITIVO`.
    pub codigo_dispositivo: String,
    /// `GESTOPAGO_PASSWORD`.
    pub password: SecretString,
    /// `GESTOPAGO_AES_KEY`: text, `base64:` or `hex:`, 32 bytes.
    pub aes_key: SecretString,
    /// `GESTOPAGO_AES_IV`: text, `base64:` or `hex:`, 16 bytes.
    pub aes_iv: SecretString,
    /// `GESTOPAGO_PAYLOAD_ENCODING`: `multipart` (the default) or `urlencoded`.
    pub payload_encoding: PayloadEncoding,
    /// `GESTOPAGO_CIPHER_ENCODING`: `base64` (the default) or `hex`.
    pub cipher_encoding: TextEncoding,
    /// `GESTOPAGO_TIMEOUT`: one call's deadline.
    pub timeout: Duration,
}

impl FromEnv for GestoPagoSettings {
    /// Reads `GESTOPAGO_*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: base_url(env, "GESTOPAGO_BASE_URL", demo::GESTOPAGO_BASE_URL)?,
            token_url: match env.get("GESTOPAGO_TOKEN_URL") {
                Some(raw) if !raw.trim().is_empty() => {
                    Some(base_url(env, "GESTOPAGO_TOKEN_URL", raw)?)
                }
                _ => None,
            },
            // The path is needed only when no URL of its own names the authentication server.
            token_path: if env.get("GESTOPAGO_TOKEN_URL").is_some() {
                env.string("GESTOPAGO_TOKEN_PATH", demo::GESTOPAGO_TOKEN_PATH)
            } else {
                env.demo_or_required("GESTOPAGO_TOKEN_PATH", demo::GESTOPAGO_TOKEN_PATH)
            },
            id_distribuidor: env
                .demo_or_required("GESTOPAGO_ID_DISTRIBUIDOR", demo::GESTOPAGO_ID_DISTRIBUIDOR),
            codigo_dispositivo: env.demo_or_required(
                "GESTOPAGO_CODIGO_DISPOSITIVO",
                demo::GESTOPAGO_CODIGO_DISPOSITIVO,
            ),
            password: env.demo_or_required_secret("GESTOPAGO_PASSWORD", demo::GESTOPAGO_PASSWORD),
            aes_key: env.demo_or_required_secret("GESTOPAGO_AES_KEY", demo::GESTOPAGO_AES_KEY),
            aes_iv: env.demo_or_required_secret("GESTOPAGO_AES_IV", demo::GESTOPAGO_AES_IV),
            payload_encoding: env
                .choice("GESTOPAGO_PAYLOAD_ENCODING", &PayloadEncoding::CHOICES)?,
            cipher_encoding: env.choice("GESTOPAGO_CIPHER_ENCODING", &TextEncoding::CHOICES)?,
            timeout: env.duration("GESTOPAGO_TIMEOUT", Duration::from_secs(15))?,
        })
    }
}

impl FromEnv for GestoPagoClient {
    /// Reads `GESTOPAGO_*` and builds the client.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut settings = GestoPagoSettings::from_env(env)?;
        // An unset key or IV is reported with every other missing variable (Env::require_complete);
        // a zero key stands in meanwhile so that the rest of the settings still build.
        if settings.aes_key.expose_secret().is_empty() {
            settings.aes_key = SecretString::from(format!("hex:{}", "00".repeat(32)));
        }
        if settings.aes_iv.expose_secret().is_empty() {
            settings.aes_iv = SecretString::from(format!("hex:{}", "00".repeat(16)));
        }
        Self::new(&settings).map_err(|e| ConfigError::new("GESTOPAGO_*", e.to_string()))
    }
}
