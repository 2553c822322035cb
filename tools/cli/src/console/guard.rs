//! What stands between a browser and the console: the token on every request, the security headers
//! on every answer, and on every action a same-origin check and a form token (CSRF).
//!
//! The token travels as HTTP Basic, which a browser sends by itself to every page of the console,
//! even when another site's page makes it send a form. An action is carried out only when the
//! browser says the request came from the console's own pages (`Sec-Fetch-Site`, `Origin`) and the
//! form carries a token only the console can make: an HMAC of the form's one-time id under the
//! console's token.

use aws_lc_rs::hmac;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::Shared;

/// Who an operator is, as far as the console knows: the user name they gave with the token.
#[derive(Debug, Clone)]
pub struct Operator(pub String);

/// The operator a request carries the token for, or `None` without it: the Basic user name (or
/// `operator` when blank), or `token` for a Bearer token.
pub fn operator_of(header: &str, token: &SecretString) -> Option<Operator> {
    let token = token.expose_secret().as_bytes();
    if let Some(bearer) = header.strip_prefix("Bearer ") {
        return bool::from(bearer.trim().as_bytes().ct_eq(token)).then(|| Operator("token".into()));
    }
    let basic = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    if !bool::from(decoded[colon + 1..].ct_eq(token)) {
        return None;
    }
    let name = String::from_utf8_lossy(&decoded[..colon]);
    let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    Some(Operator(if name.trim().is_empty() {
        "operator".into()
    } else {
        name
    }))
}

/// Lets through requests that carry the token, and marks them with their operator.
pub async fn authorize(
    State(console): State<Shared>,
    mut request: Request,
    next: Next,
) -> Response {
    let operator = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| operator_of(h, &console.token));
    if let Some(operator) = operator {
        request.extensions_mut().insert(operator);
        return next.run(request).await;
    }
    let mut refused = (
        StatusCode::UNAUTHORIZED,
        "the console's token is required\n",
    )
        .into_response();
    refused.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"pasarela console\", charset=\"UTF-8\""),
    );
    refused
}

/// Headers on every answer: no script, no framing, no sniffing, no referrer to other sites, no caching of pages
/// that show customers' requests.
pub async fn secure_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; \
             base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on the
        // console's own forms, which the action check must refuse.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Makes and checks form tokens under a key derived from the console's token, so that every console
/// started with one token accepts the forms of the others.
pub struct Forms {
    key: hmac::Key,
}

impl Forms {
    /// Form tokens keyed by `token`.
    pub fn new(token: &SecretString) -> Self {
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, token.expose_secret().as_bytes()),
            b"pasarela console forms",
        );
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// A fresh form: its one-time id and the token that goes with it.
    pub fn fresh(&self) -> (Uuid, String) {
        let id = Uuid::new_v4();
        (id, self.token_for(id))
    }

    fn token_for(&self, id: Uuid) -> String {
        let tag = hmac::sign(&self.key, id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `token` is the one made for form `id`.
    pub fn verify(&self, id: Uuid, token: &str) -> bool {
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        hmac::verify(&self.key, id.as_bytes(), &tag).is_ok()
    }
}

/// Whether the browser's own headers say the request came from another site: `Sec-Fetch-Site`
/// when it sends it, and `Origin` against `Host` when it sends that.
pub fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!("Sec-Fetch-Site is {site}"));
    }
    if let Some(origin) = text("origin") {
        let host = text("host").unwrap_or_default();
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if origin_host != host {
            return Some(format!("Origin {origin} is not this console ({host})"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    #[test]
    fn the_token_is_taken_as_bearer_or_as_the_basic_password() {
        let token = SecretString::from("s3cret-token-of-the-console");
        let who = |h: &str| operator_of(h, &token).map(|o| o.0);
        assert_eq!(
            who("Bearer s3cret-token-of-the-console").as_deref(),
            Some("token")
        );
        assert_eq!(
            who(&basic("ana:s3cret-token-of-the-console")).as_deref(),
            Some("ana")
        );
        assert_eq!(
            who(&basic(":s3cret-token-of-the-console")).as_deref(),
            Some("operator")
        );
        assert_eq!(who("Bearer s3cret-token-of-the-consol"), None);
        assert_eq!(who(&basic("s3cret-token-of-the-console")), None);
        assert_eq!(who(&basic("ops:wrong")), None);
        assert_eq!(who("Basic %%%"), None);
        assert_eq!(who("s3cret-token-of-the-console"), None);
    }

    #[test]
    fn a_form_token_fits_its_own_form_only() {
        let forms = Forms::new(&SecretString::from("s3cret-token-of-the-console"));
        let (id, token) = forms.fresh();
        assert!(forms.verify(id, &token));
        assert!(!forms.verify(Uuid::new_v4(), &token));
        assert!(!forms.verify(id, ""));
        let other = Forms::new(&SecretString::from("another-token-of-another-one"));
        assert!(!other.verify(id, &token), "a token is the console's own");
    }

    #[test]
    fn another_site_is_refused_and_the_console_itself_let_through() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let own = headers(&[
            ("host", "127.0.0.1:8089"),
            ("origin", "http://127.0.0.1:8089"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(cross_site(&own), None);
        assert_eq!(
            cross_site(&headers(&[("host", "127.0.0.1:8089")])),
            None,
            "curl"
        );
        assert!(cross_site(&headers(&[("host", "h"), ("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&headers(&[("host", "h"), ("sec-fetch-site", "same-site")])).is_some());
        assert!(
            cross_site(&headers(&[
                ("host", "127.0.0.1:8089"),
                ("origin", "http://127.0.0.1:9999")
            ]))
            .is_some()
        );
        assert!(cross_site(&headers(&[("host", "127.0.0.1:8089"), ("origin", "null")])).is_some());
    }
}
