//! What the token-protected vendors (NumRot, GestoPago) share: a path a producer gives that must stay
//! on the vendor's host, a call with `Authorization: Bearer <token>` from the shared token store, and
//! one fresh token and one retry when the vendor says the token is no good.

use std::future::Future;

use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;

use super::http::{self, VendorError};
use crate::contract::errors::InvalidField;
use crate::vendors::tokens::{FetchedToken, Token, TokenError, TokenVault, VaultError};

/// Why a call to a token-protected vendor did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The vendor (or the way to it) failed.
    #[error(transparent)]
    Vendor(#[from] VendorError),
    /// The shared token store could not be used.
    #[error("token store: {0}")]
    Store(#[from] VaultError),
    /// The request cannot be made as given (a path off the vendor's host, a payload that is no object).
    #[error(transparent)]
    Invalid(#[from] InvalidField),
}

impl From<TokenError<VendorError>> for CallError {
    fn from(e: TokenError<VendorError>) -> Self {
        match e {
            TokenError::Fetch(v) => CallError::Vendor(v),
            TokenError::Store(d) => CallError::Store(d),
        }
    }
}

/// A vendor's answer to a call, whatever its status.
#[derive(Debug, Clone)]
pub struct VendorResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: serde_json::Value,
    /// The vendor's `Retry-After`, if it sent one.
    pub retry_after: Option<std::time::Duration>,
}

/// Joins a producer's `path` to the vendor's base URL, refusing anything that could leave the vendor:
/// the path must start with a single `/`, carry no scheme or backslash, and the result must keep the
/// base's scheme, host and port.
pub fn vendor_url(base: &Url, path: &str) -> Result<Url, InvalidField> {
    let invalid = |problem: String| InvalidField::new("path", problem);
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(invalid(format!(
            "must start with a single /, got {:?}",
            truncate(path)
        )));
    }
    if path.contains("://") || path.contains('\\') || path.chars().any(char::is_control) {
        return Err(invalid(format!(
            "must stay on the vendor's host, got {:?}",
            truncate(path)
        )));
    }
    if has_dot_segment(path) {
        return Err(invalid(format!(
            "must not hold . or .. segments, got {:?}",
            truncate(path)
        )));
    }
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    let url = Url::parse(&joined).map_err(|e| invalid(format!("not a valid URL path: {e}")))?;
    if url.scheme() != base.scheme()
        || url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
    {
        return Err(invalid("must stay on the vendor's host".into()));
    }
    Ok(url)
}

/// Whether the path part (before `?` or `#`) has a `.` or `..` segment, percent-encoded or not: a URL
/// parser folds them away, so `/api/../admin` would leave the base path the operator configured.
fn has_dot_segment(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// One call with a token from `tokens`: when the vendor answers one of `refused` (401, and 403 for
/// GestoPago), the token is expired for everyone, a new one is fetched once, and the call is made once
/// more. `send` makes the request with the token it is given.
pub async fn with_token<Fetch, FetchFut, Request, RequestFut>(
    tokens: &dyn TokenVault,
    vendor: &'static str,
    refused: &[StatusCode],
    fetch: Fetch,
    send: Request,
) -> Result<VendorResponse, CallError>
where
    Fetch: Fn(Option<secrecy::SecretString>) -> FetchFut + Sync,
    FetchFut: Future<Output = Result<FetchedToken, VendorError>> + Send,
    Request: Fn(Token) -> RequestFut,
    RequestFut: Future<Output = Result<VendorResponse, VendorError>>,
{
    let token = tokens.token(vendor, &fetch).await?;
    let first = send(token.clone()).await?;
    if !refused.iter().any(|s| s.as_u16() == first.status) {
        return Ok(first);
    }
    tracing::info!(
        vendor,
        status = first.status,
        "token refused; fetching a new one and trying once more"
    );
    tokens.invalidate(vendor, &token).await?;
    let token = tokens.token(vendor, &fetch).await?;
    Ok(send(token).await?)
}

/// How the token is written in `Authorization`: `<scheme> <token>`, or the bare token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Bearer <token>`, what both documents say.
    Bearer,
    /// Another word before the token.
    Other(String),
    /// The token alone.
    Bare,
}

impl AuthScheme {
    /// Reads a setting: `Bearer` (any case), `none` for the bare token, or another single word.
    pub fn parse(word: &str) -> Result<Self, String> {
        let word = word.trim();
        if word.eq_ignore_ascii_case("bearer") {
            Ok(Self::Bearer)
        } else if word.eq_ignore_ascii_case("none") {
            Ok(Self::Bare)
        } else if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Ok(Self::Other(word.to_string()))
        } else {
            Err("must be one word of letters, digits and -, or none for the bare token".into())
        }
    }

    /// The header value for `token`, marked sensitive so it never prints.
    fn header(&self, token: &str) -> reqwest::header::HeaderValue {
        let text = match self {
            Self::Bearer => format!("Bearer {token}"),
            Self::Other(word) => format!("{word} {token}"),
            Self::Bare => token.to_string(),
        };
        let mut value = reqwest::header::HeaderValue::from_str(&text)
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

/// Sends `request` with the token in `Authorization` under `scheme` and reads the answer: JSON when it
/// parses, else the text as a JSON string.
pub async fn send_with(
    vendor: &'static str,
    timeout: std::time::Duration,
    operation: &'static str,
    request: reqwest::RequestBuilder,
    scheme: &AuthScheme,
    token: &Token,
) -> Result<VendorResponse, VendorError> {
    let request = request.header(
        reqwest::header::AUTHORIZATION,
        scheme.header(token.value.expose_secret()),
    );
    let answer = http::exchange(vendor, operation, timeout, request).await?;
    let body = serde_json::from_str(&answer.text).unwrap_or(serde_json::Value::String(answer.text));
    Ok(VendorResponse {
        status: answer.status.as_u16(),
        retry_after: http::retry_after(&answer.headers),
        body,
    })
}

/// The HTTP method of a `vendor.call`.
pub fn method(name: &str) -> Result<Method, InvalidField> {
    match name {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        other => Err(InvalidField::new(
            "method",
            format!("GET or POST, got {:?}", truncate(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_on_the_vendors_host() {
        let base = Url::parse("https://numrotapiprueba.net/base").unwrap();
        assert_eq!(
            vendor_url(&base, "/api/x?y=1").unwrap().as_str(),
            "https://numrotapiprueba.net/base/api/x?y=1"
        );
        for bad in [
            "//evil.example/x",
            "http://evil.example/x",
            "api/x",
            "/x\\@evil.example",
            "/a/http://evil.example",
            "",
            "/../admin",
            "/api/../../admin",
            "/api/%2e%2e/admin",
            "/api/.%2E/admin",
            "/api/./x",
            "/api/..",
        ] {
            assert!(vendor_url(&base, bad).is_err(), "{bad}");
        }
        // Dots inside a segment, or in the query, are ordinary characters.
        assert!(vendor_url(&base, "/api/v1.2/..x/a..b?next=../y").is_ok());
        // An @ in the path is a path character, not a userinfo switch: the host stays.
        let u = vendor_url(&base, "/@evil.example/x").unwrap();
        assert_eq!(u.host_str(), Some("numrotapiprueba.net"));
    }

    #[test]
    fn the_auth_scheme_is_a_word_or_none() {
        assert_eq!(AuthScheme::parse("bearer"), Ok(AuthScheme::Bearer));
        assert_eq!(AuthScheme::parse("none"), Ok(AuthScheme::Bare));
        assert_eq!(
            AuthScheme::parse("JWT"),
            Ok(AuthScheme::Other("JWT".into()))
        );
        assert!(AuthScheme::parse("two words").is_err());
        assert!(AuthScheme::parse("").is_err());
        assert_eq!(AuthScheme::Bare.header("t.k.n"), "t.k.n");
        assert_eq!(AuthScheme::Other("JWT".into()).header("t.k.n"), "JWT t.k.n");
        assert!(AuthScheme::Bearer.header("t").is_sensitive());
    }

    #[test]
    fn only_get_and_post() {
        assert_eq!(method("GET").unwrap(), Method::GET);
        assert!(method("DELETE").is_err());
    }
}
