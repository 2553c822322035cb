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
//!   `/api/token`) under `/gestopago`; a body that is not `application/x-www-form-urlencoded` is 415,
//!   wrong or missing credentials 401 `{"error": "invalid credentials"}`;
//! - the token answer's shape beyond `accessToken`: `{"accessToken", "expiresIn"}` (seconds);
//! - the cipher mode and text encoding: CBC (the usual partner of an IV and PKCS7) and standard
//!   Base64 (.NET's `Convert.ToBase64String`); `+` in a form or query value must be percent-encoded,
//!   as form decoding turns a bare `+` into a space. The IV is the fixed configured one, not sent;
//! - "form-data" is read as `application/x-www-form-urlencoded` for POST, PUT and PATCH; other methods
//!   send `signed` as a query parameter. Missing `signed` is 400, and so is one that does not decrypt to
//!   a JSON object under the configured key and IV;
//! - the methods are in another document (`GPS_API_V###.pdf`): `/gestopago/api/{*path}` stands for
//!   them, any method, answering `{"method", "path", "payload"}` with the decrypted payload;
//! - the lifetime is 86400 s unless set with `POST /sim/gestopago/settings`, and
//!   `POST /sim/gestopago/invalidate` expires every issued token (they then answer 403).

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
use crate::{Sim, error};

const VENDOR: &str = "gestopago";
/// The document's token lifetime: 24 hours.
const DEFAULT_LIFETIME_S: u64 = 86_400;
/// The longest lifetime the settings take: a year.
const MAX_LIFETIME_S: u64 = 365 * 86_400;
const FORM: &str = "application/x-www-form-urlencoded";
/// The answer to a `signed` that does not decrypt to JSON.
const UNDECRYPTABLE: &str = "signed does not decrypt under the configured key and IV";

/// GestoPago's settings and issued tokens.
#[derive(Debug)]
pub struct GestoPagoState {
    tokens: TokenStore,
}

impl Default for GestoPagoState {
    fn default() -> Self {
        Self {
            tokens: TokenStore::new(DEFAULT_LIFETIME_S),
        }
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

/// Whether the request says its body is form-url-encoded (parameters such as `charset` allowed).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(FORM))
}

/// The first value of `name` in form-url-encoded text.
fn form_field(encoded: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(encoded)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Decrypts a `signed` value: standard Base64 of AES-256-CBC/PKCS7 ciphertext of a JSON object.
fn decrypt(signed: &str, key: &[u8], iv: &[u8]) -> Result<Value, String> {
    let cipher = STANDARD
        .decode(signed.trim())
        .map_err(|_| UNDECRYPTABLE.to_string())?;
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
        return token(&sim, &headers, &raw).await;
    }
    if path.starts_with("/api/") {
        return call(&sim, method, path, query, &headers, &raw).await;
    }
    error(
        StatusCode::NOT_FOUND,
        format!("no GestoPago endpoint at {path}"),
    )
}

async fn token(sim: &Sim, headers: &HeaderMap, raw: &[u8]) -> Response {
    let form = is_form(headers);
    let field = |name: &str| form.then(|| form_field(raw, name)).flatten();
    let id_distribuidor = field("idDistribuidor");
    let codigo_dispositivo = field("codigoDispositivo");
    let password = field("password");
    // The password is never recorded.
    let recorded = json!({
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
    raw: &[u8],
) -> Response {
    let in_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
    let signed = if in_body {
        is_form(headers)
            .then(|| form_field(raw, "signed"))
            .flatten()
    } else {
        query
            .as_deref()
            .and_then(|q| form_field(q.as_bytes(), "signed"))
    };
    let payload = match (
        &signed,
        &sim.config.gestopago_aes_key,
        &sim.config.gestopago_aes_iv,
    ) {
        (None, _, _) => None,
        (Some(signed), Ok(key), Ok(iv)) => Some(decrypt(signed, key, iv)),
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
    let payload = match payload {
        Some(Ok(payload)) => payload,
        Some(Err(message)) => return error(StatusCode::BAD_REQUEST, message),
        None if in_body => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("signed is missing: {method} sends it as a {FORM} body field"),
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
    Json(json!({
        "token_lifetime_s": sim.gestopago.tokens.lifetime_s(),
        "token_path": sim.config.gestopago_token_path,
    }))
}

async fn get_settings(State(sim): State<Sim>) -> Json<Value> {
    settings_of(&sim)
}

async fn set_settings(State(sim): State<Sim>, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    if !body.is_object() {
        return error(StatusCode::BAD_REQUEST, "the body must be a JSON object");
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
        assert_eq!(decrypt(&signed, KEY, IV).unwrap(), json!({ "monto": 100 }));
        let other = encrypt(br#"{"monto":100}"#, b"another-key-of-thirty-two-bytes!");
        assert_eq!(decrypt(&other, KEY, IV).unwrap_err(), UNDECRYPTABLE);
        assert_eq!(decrypt("not base64!", KEY, IV).unwrap_err(), UNDECRYPTABLE);
        assert_eq!(
            decrypt(&encrypt(b"monto=100", KEY), KEY, IV).unwrap_err(),
            UNDECRYPTABLE
        );
        assert!(
            decrypt(&encrypt(b"[1]", KEY), KEY, IV)
                .unwrap_err()
                .contains("object")
        );
        assert!(
            decrypt(&signed, &KEY[..16], IV)
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
