//! GestoPago's PortalVentas.net security scheme as its document describes it (docs/vendors/gestopago.md).
//!
//! The credentials `idDistribuidor`, `codigoDispositivo` and `password` go form-url-encoded by POST to
//! an authentication endpoint, which answers an `accessToken` valid 24 hours. Every later call carries
//! it as `Authorization: Bearer`: missing or incorrect → 401, invalid (expired) → 403. A call's
//! parameters are a JSON object encrypted with AES-256 (CBC), PKCS7 padding, under the key and IV
//! GestoPago hands out, sent as the field `signed`: form data for POST, the query parameter for GET.
//!
//! What the document leaves unsaid, and what the simulator does:
//! - the authentication path is in a document we do not have: it is `GESTOPAGO_TOKEN_PATH` (default
//!   `/api/token`) under `/gestopago`, and the same path under `/gestopago-auth` stands for a separate
//!   authentication server (`GESTOPAGO_TOKEN_URL`); a body that is not
//!   `application/x-www-form-urlencoded` is 415, wrong or missing credentials 401
//!   `{"error": "invalid credentials"}`;
//! - the token answer's shape beyond `accessToken`: `{"accessToken", "expiresIn"}` (seconds);
//! - the cipher mode is CBC (the usual partner of an IV and PKCS7); the text is standard Base64 (.NET's
//!   `Convert.ToBase64String`) or, with `cipher_encoding: "hex"` (`GESTOPAGO_CIPHER_ENCODING`), hex in
//!   either case; `+` in a form or query value must be percent-encoded, as form decoding turns a bare
//!   `+` into a space. The IV is the fixed configured one, not sent;
//! - "form-data" is `multipart/form-data` for POST, PUT and PATCH, or with `payload_encoding:
//!   "urlencoded"` (`GESTOPAGO_PAYLOAD_ENCODING`) `application/x-www-form-urlencoded`: the other one is
//!   415; other methods send `signed` as a query parameter. Missing `signed` is 400, and so is one that
//!   does not decrypt to a JSON object under the configured key and IV;
//! - the methods are in another document (`GPS_API_V###.pdf`): `/gestopago/api/{*path}` stands for
//!   them, any method, answering `{"method", "path", "payload"}` with the decrypted payload;
//! - the lifetime is 86400 s unless set with `POST /sim/gestopago/settings` (which also switches
//!   `payload_encoding` and `cipher_encoding`), and
//!   `POST /sim/gestopago/invalidate` expires every issued token (they then answer 403).

use std::sync::Mutex;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, KeyIvInit};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::tokens::{TokenStatus, TokenStore};
use crate::{Sim, SimConfig, error};

const VENDOR: &str = "gestopago";
/// The document's token lifetime: 24 hours.
const DEFAULT_LIFETIME_S: u64 = 86_400;
/// The longest lifetime the settings take: a year.
const MAX_LIFETIME_S: u64 = 365 * 86_400;
const FORM: &str = "application/x-www-form-urlencoded";
const MULTIPART: &str = "multipart/form-data";
/// The answer to a `signed` that does not decrypt to JSON.
const UNDECRYPTABLE: &str = "signed does not decrypt under the configured key and IV";

/// How `signed` travels and is written: the readings the document leaves open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// A POST's `signed` is `multipart/form-data` (else form-url-encoded).
    pub multipart: bool,
    /// The cipher text is hex (else Base64).
    pub hex: bool,
}

impl Transport {
    /// The transport `GESTOPAGO_PAYLOAD_ENCODING` and `GESTOPAGO_CIPHER_ENCODING` name.
    pub fn of(config: &SimConfig) -> Self {
        Self {
            multipart: config.gestopago_payload_encoding != "urlencoded",
            hex: config.gestopago_cipher_encoding == "hex",
        }
    }

    fn body_type(self) -> &'static str {
        if self.multipart { MULTIPART } else { FORM }
    }
}

/// GestoPago's settings and issued tokens.
#[derive(Debug)]
pub struct GestoPagoState {
    tokens: TokenStore,
    transport: Mutex<Transport>,
}

impl GestoPagoState {
    /// The state for `config`'s transport.
    pub fn new(config: &SimConfig) -> Self {
        Self {
            tokens: TokenStore::new(DEFAULT_LIFETIME_S),
            transport: Mutex::new(Transport::of(config)),
        }
    }

    fn transport(&self) -> Transport {
        *self.transport.lock().expect("transport")
    }
}

impl Default for GestoPagoState {
    fn default() -> Self {
        Self::new(&SimConfig::default())
    }
}

/// A scripted status, answered with the text the simulator gives it otherwise.
fn scripted(status: StatusCode) -> Response {
    let message = match status {
        StatusCode::UNAUTHORIZED => "missing or incorrect accessToken",
        StatusCode::FORBIDDEN => "accessToken expired",
        _ => "scripted failure",
    };
    error(status, message)
}

/// Whether the request's body is of `media_type` (parameters such as `charset` allowed).
fn is_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

fn is_form(headers: &HeaderMap) -> bool {
    is_type(headers, FORM)
}

/// The `signed` field of a body in the encoding `transport` names: `Err` is the answer to give.
async fn body_field(
    headers: &HeaderMap,
    raw: &Bytes,
    transport: Transport,
) -> Result<Option<String>, Response> {
    let expected = transport.body_type();
    if !is_type(headers, expected) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("signed travels as {expected}"),
        ));
    }
    if !transport.multipart {
        return Ok(form_field(raw, "signed"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let bad = |e: multer::Error| error(StatusCode::BAD_REQUEST, format!("multipart body: {e}"));
    let boundary = multer::parse_boundary(content_type).map_err(bad)?;
    let body = raw.clone();
    let stream = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    while let Some(part) = parts.next_field().await.map_err(bad)? {
        if part.name() == Some("signed") {
            return part.text().await.map(Some).map_err(bad);
        }
    }
    Ok(None)
}

/// The first value of `name` in form-url-encoded text.
fn form_field(encoded: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(encoded)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Hex in either case.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Decrypts a `signed` value: standard Base64 (or hex) of AES-256-CBC/PKCS7 ciphertext of a JSON object.
fn decrypt(signed: &str, key: &[u8], iv: &[u8], hex: bool) -> Result<Value, String> {
    let text = signed.trim();
    let cipher = if hex {
        from_hex(text)
    } else {
        STANDARD.decode(text).ok()
    }
    .ok_or_else(|| UNDECRYPTABLE.to_string())?;
    let decryptor = cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
        .map_err(|_| "the configured key or IV has the wrong length".to_string())?;
    let plain = decryptor
        .decrypt_padded_vec::<Pkcs7>(&cipher)
        .map_err(|_| UNDECRYPTABLE.to_string())?;
    match serde_json::from_slice::<Value>(&plain) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("signed decrypts, but not to a JSON object".into()),
        Err(_) => Err(UNDECRYPTABLE.into()),
    }
}

/// Every path under `/gestopago-auth`, the separate authentication server: only the token path.
async fn auth_server(
    State(sim): State<Sim>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = format!("/{path}");
    if path.trim_end_matches('/') != sim.config.gestopago_token_path || method != Method::POST {
        return error(
            StatusCode::NOT_FOUND,
            format!("no authentication endpoint at {method} {path}"),
        );
    }
    token(&sim, &headers, &raw, "auth").await
}

/// Every path under `/gestopago`: the token path (a setting, so not a fixed route), then the methods.
async fn dispatch(
    State(sim): State<Sim>,
    method: Method,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = format!("/{path}");
    if path.trim_end_matches('/') == sim.config.gestopago_token_path {
        if method != Method::POST {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "POST")],
                Json(json!({ "error": "the token call is a POST" })),
            )
                .into_response();
        }
        return token(&sim, &headers, &raw, "api").await;
    }
    if path.starts_with("/api/") {
        return call(&sim, method, path, query, &headers, &raw).await;
    }
    error(
        StatusCode::NOT_FOUND,
        format!("no GestoPago endpoint at {path}"),
    )
}

/// The token call; `server` says which host took it (`api`, or the separate `auth` server).
async fn token(sim: &Sim, headers: &HeaderMap, raw: &[u8], server: &str) -> Response {
    let form = is_form(headers);
    let field = |name: &str| form.then(|| form_field(raw, name)).flatten();
    let id_distribuidor = field("idDistribuidor");
    let codigo_dispositivo = field("codigoDispositivo");
    let password = field("password");
    // The password is never recorded.
    let recorded = json!({
        "server": server,
        "idDistribuidor": id_distribuidor,
        "codigoDispositivo": codigo_dispositivo,
    });
    let forced = match sim
        .intake(VENDOR, "token", id_distribuidor.clone(), recorded)
        .await
    {
        Ok(forced) => forced,
        Err(response) => return response,
    };
    if let Some(status) = crate::scripted_status(forced) {
        return scripted(status);
    }
    if !form {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the token call takes {FORM}"),
        );
    }
    let config = &sim.config;
    let right = id_distribuidor.as_deref() == Some(config.gestopago_id_distribuidor.as_str())
        && codigo_dispositivo.as_deref() == Some(config.gestopago_codigo_dispositivo.as_str())
        && password.as_deref() == Some(config.gestopago_password.as_str());
    if !right {
        return error(StatusCode::UNAUTHORIZED, "invalid credentials");
    }
    let subject = format!(
        "{}/{}",
        config.gestopago_id_distribuidor, config.gestopago_codigo_dispositivo
    );
    let (token, lifetime) = sim.gestopago.tokens.issue(VENDOR, &subject);
    Json(json!({ "accessToken": token, "expiresIn": lifetime })).into_response()
}

async fn call(
    sim: &Sim,
    method: Method,
    path: String,
    query: Option<String>,
    headers: &HeaderMap,
    raw: &Bytes,
) -> Response {
    let transport = sim.gestopago.transport();
    let in_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
    let signed = if in_body {
        body_field(headers, raw, transport).await
    } else {
        Ok(query
            .as_deref()
            .and_then(|q| form_field(q.as_bytes(), "signed")))
    };
    let (signed, refusal) = match signed {
        Ok(signed) => (signed, None),
        Err(refusal) => (None, Some(refusal)),
    };
    let payload = match (
        &signed,
        &sim.config.gestopago_aes_key,
        &sim.config.gestopago_aes_iv,
    ) {
        (None, _, _) => None,
        (Some(signed), Ok(key), Ok(iv)) => Some(decrypt(signed, key, iv, transport.hex)),
        (Some(_), Err(problem), _) | (Some(_), _, Err(problem)) => Some(Err(problem.clone())),
    };
    let recorded = json!({
        "method": method.as_str(),
        "path": path,
        "payload": payload.as_ref().and_then(|p| p.as_ref().ok()),
    });
    let forced = match sim.intake(VENDOR, "call", None, recorded).await {
        Ok(forced) => forced,
        Err(response) => return response,
    };
    if let Some(status) = crate::scripted_status(forced) {
        return scripted(status);
    }
    let Some(token) = crate::bearer_token(headers) else {
        return error(StatusCode::UNAUTHORIZED, "missing or incorrect accessToken");
    };
    match sim.gestopago.tokens.check(&token) {
        TokenStatus::Valid => {}
        TokenStatus::Unknown => {
            return error(StatusCode::UNAUTHORIZED, "missing or incorrect accessToken");
        }
        TokenStatus::Expired => return error(StatusCode::FORBIDDEN, "accessToken expired"),
    }
    if let Some(refusal) = refusal {
        return refusal;
    }
    let payload = match payload {
        Some(Ok(payload)) => payload,
        Some(Err(message)) => return error(StatusCode::BAD_REQUEST, message),
        None if in_body => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "signed is missing: {method} sends it as a {} body field",
                    transport.body_type()
                ),
            );
        }
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("signed is missing: {method} sends it as a query parameter"),
            );
        }
    };
    Json(json!({ "method": method.as_str(), "path": path, "payload": payload })).into_response()
}

fn settings_of(sim: &Sim) -> Json<Value> {
    let transport = sim.gestopago.transport();
    Json(json!({
        "token_lifetime_s": sim.gestopago.tokens.lifetime_s(),
        "token_path": sim.config.gestopago_token_path,
        "payload_encoding": if transport.multipart { "multipart" } else { "urlencoded" },
        "cipher_encoding": if transport.hex { "hex" } else { "base64" },
    }))
}

/// Reads `name` as one of two words: `Ok(None)` when absent, `Ok(Some(true))` for `yes`.
fn either(body: &Value, name: &str, yes: &str, no: &str) -> Result<Option<bool>, String> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) if v.as_str() == Some(yes) => Ok(Some(true)),
        Some(v) if v.as_str() == Some(no) => Ok(Some(false)),
        Some(_) => Err(format!("{name} must be {yes} or {no}")),
    }
}

async fn get_settings(State(sim): State<Sim>) -> Json<Value> {
    settings_of(&sim)
}

async fn set_settings(State(sim): State<Sim>, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    if !body.is_object() {
        return error(StatusCode::BAD_REQUEST, "the body must be a JSON object");
    }
    let transport = either(&body, "payload_encoding", "multipart", "urlencoded")
        .and_then(|m| Ok((m, either(&body, "cipher_encoding", "hex", "base64")?)));
    let (multipart, hex) = match transport {
        Ok(pair) => pair,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    {
        let mut transport = sim.gestopago.transport.lock().expect("transport");
        transport.multipart = multipart.unwrap_or(transport.multipart);
        transport.hex = hex.unwrap_or(transport.hex);
    }
    match body.get("token_lifetime_s") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_u64().filter(|s| (1..=MAX_LIFETIME_S).contains(s)) {
            Some(seconds) => sim.gestopago.tokens.set_lifetime_s(seconds),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("token_lifetime_s must be an integer from 1 to {MAX_LIFETIME_S}"),
                );
            }
        },
    }
    settings_of(&sim).into_response()
}

async fn invalidate(State(sim): State<Sim>) -> StatusCode {
    sim.gestopago.tokens.invalidate();
    StatusCode::NO_CONTENT
}

/// The vendor's routes, under `/gestopago`.
pub fn routes() -> Router<Sim> {
    Router::new().route("/{*path}", any(dispatch))
}

/// The separate authentication server's routes, under `/gestopago-auth`.
pub fn auth_routes() -> Router<Sim> {
    Router::new().route("/{*path}", any(auth_server))
}

/// The control routes, under `/sim/gestopago`.
pub fn control_routes() -> Router<Sim> {
    Router::new()
        .route("/settings", get(get_settings).post(set_settings))
        .route("/invalidate", post(invalidate))
}

#[cfg(test)]
mod tests {
    use aes::cipher::BlockModeEncrypt;

    use super::*;

    const KEY: &[u8; 32] = b"pasarela-gestopago-demo-key-32by";
    const IV: &[u8; 16] = b"pasarela-demo-iv";

    fn encrypt(plain: &[u8], key: &[u8; 32]) -> String {
        let cipher = cbc::Encryptor::<aes::Aes256>::new(key.into(), IV.into())
            .encrypt_padded_vec::<Pkcs7>(plain);
        STANDARD.encode(cipher)
    }

    #[test]
    fn signed_decrypts_to_a_json_object_under_the_key_and_iv() {
        let signed = encrypt(br#"{"monto":100}"#, KEY);
        assert_eq!(
            decrypt(&signed, KEY, IV, false).unwrap(),
            json!({ "monto": 100 })
        );
        let other = encrypt(br#"{"monto":100}"#, b"another-key-of-thirty-two-bytes!");
        assert_eq!(decrypt(&other, KEY, IV, false).unwrap_err(), UNDECRYPTABLE);
        assert_eq!(
            decrypt("not base64!", KEY, IV, false).unwrap_err(),
            UNDECRYPTABLE
        );
        assert_eq!(
            decrypt(&encrypt(b"monto=100", KEY), KEY, IV, false).unwrap_err(),
            UNDECRYPTABLE
        );
        assert!(
            decrypt(&encrypt(b"[1]", KEY), KEY, IV, false)
                .unwrap_err()
                .contains("object")
        );
        assert!(
            decrypt(&signed, &KEY[..16], IV, false)
                .unwrap_err()
                .contains("length")
        );
    }

    #[test]
    fn form_fields_are_percent_decoded_and_the_content_type_may_carry_parameters() {
        assert_eq!(
            form_field(b"a=1&signed=ab%2Bc%3D", "signed").as_deref(),
            Some("ab+c=")
        );
        assert_eq!(
            form_field(b"signed=ab+c", "signed").as_deref(),
            Some("ab c")
        );
        assert_eq!(form_field(b"a=1", "signed"), None);
        let mut headers = HeaderMap::new();
        assert!(!is_form(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8"
                .parse()
                .unwrap(),
        );
        assert!(is_form(&headers));
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_form(&headers));
    }
}
