//! NumRot's token service as its document describes it (docs/vendors/numrot.md).
//!
//! `POST /v2/api/Token` with JSON `{"Username", "Password"}` answers 200 with a token, 500 "user not
//! registered" for credentials NumRot does not know, and later calls answer 401 once the token is past
//! its lifetime (at most 60 minutes). The token then goes in `Authorization: Bearer` of every call.
//!
//! What the document leaves unsaid, and what the simulator does:
//! - the token answer's body: the simulator answers `{"token", "expiresIn"}` (seconds), or the token as
//!   a bare JSON string when the `bare_token` setting is on, the two shapes pasarela must read;
//! - a wrong password and an unknown user are both "not registered": HTTP 500
//!   `{"error": "user not registered"}`; a body that is not `{"Username": string, "Password": string}`
//!   is 400;
//! - the services behind the token are in no document we have: `/numrot/api/{*path}` stands for them,
//!   any method, echoing `{"method", "path", "query", "body"}`; a missing or unknown token is 401 like an
//!   expired one (the document names only the expired case), each with its own `error` text;
//! - with the `nul_in_answers` setting on, every service answer also carries `"note": "a\u0000b"`: a
//!   vendor answer holding the NUL character, which PostgreSQL refuses to store;
//! - the document's "Authorize" button writes `Bearer <token>`; the `auth_scheme` setting
//!   (`NUMROT_AUTH_SCHEME`) makes the simulator take another word instead, or `none` for the bare
//!   token, and refuse every other form with 401;
//! - the lifetime is 3600 s (the document's maximum) unless set with `POST /sim/numrot/settings`, and
//!   `POST /sim/numrot/invalidate` ends every issued token at once, as a revocation on NumRot's side
//!   would.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::tokens::{TokenStatus, TokenStore};
use crate::{Sim, error};

const VENDOR: &str = "numrot";
/// The document's maximum token lifetime: 60 minutes.
const DEFAULT_LIFETIME_S: u64 = 3600;
/// The longest lifetime the settings take: a year.
const MAX_LIFETIME_S: u64 = 365 * 86_400;

/// NumRot's settings and issued tokens.
#[derive(Debug)]
pub struct NumRotState {
    tokens: TokenStore,
    bare_token: AtomicBool,
    nul_in_answers: AtomicBool,
    auth_scheme: Mutex<String>,
}

impl NumRotState {
    /// The state for `config`'s auth scheme.
    pub fn new(config: &crate::SimConfig) -> Self {
        Self {
            tokens: TokenStore::new(DEFAULT_LIFETIME_S),
            bare_token: AtomicBool::new(false),
            nul_in_answers: AtomicBool::new(false),
            auth_scheme: Mutex::new(config.numrot_auth_scheme.clone()),
        }
    }

    fn auth_scheme(&self) -> String {
        self.auth_scheme.lock().expect("auth scheme").clone()
    }
}

impl Default for NumRotState {
    fn default() -> Self {
        Self::new(&crate::SimConfig::default())
    }
}

/// The token in `Authorization` when it is written under `scheme` (`none`: the token alone).
fn token_under(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    if scheme.eq_ignore_ascii_case("none") {
        return (!value.is_empty() && !value.contains(' ')).then(|| value.to_string());
    }
    let (word, token) = value.split_once(' ')?;
    let token = token.trim();
    (word.eq_ignore_ascii_case(scheme) && !token.is_empty()).then(|| token.to_string())
}

/// A scripted status, answered with the text NumRot's document gives it.
fn scripted(status: StatusCode) -> Response {
    let message = match status {
        StatusCode::UNAUTHORIZED => "session expired",
        StatusCode::INTERNAL_SERVER_ERROR => "user not registered",
        _ => "scripted failure",
    };
    error(status, message)
}

/// Reads a token request: `{"Username": string, "Password": string}`.
fn credentials(body: &Value) -> Result<(&str, &str), String> {
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{name} is required and must be a string"))
    };
    if !body.is_object() {
        return Err("the body must be a JSON object {\"Username\", \"Password\"}".into());
    }
    Ok((field("Username")?, field("Password")?))
}

async fn token(State(sim): State<Sim>, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let login = body
        .get("Username")
        .and_then(Value::as_str)
        .map(str::to_string);
    // The password is never recorded.
    let recorded = json!({ "Username": login });
    let forced = match sim.intake(VENDOR, "token", login, recorded).await {
        Ok(forced) => forced,
        Err(response) => return response,
    };
    if let Some(status) = crate::scripted_status(forced) {
        return scripted(status);
    }
    let (username, password) = match credentials(&body) {
        Ok(pair) => pair,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if username != sim.config.numrot_username || password != sim.config.numrot_password {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "user not registered");
    }
    let (token, lifetime) = sim.numrot.tokens.issue(VENDOR, username);
    if sim.numrot.bare_token.load(Ordering::Relaxed) {
        Json(Value::String(token)).into_response()
    } else {
        Json(json!({ "token": token, "expiresIn": lifetime })).into_response()
    }
}

async fn call(
    State(sim): State<Sim>,
    method: Method,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = format!("/api/{path}");
    let body = if raw.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else {
        serde_json::from_slice::<Value>(&raw)
    };
    let recorded = json!({
        "method": method.as_str(),
        "path": path,
        "query": query,
        "body": body.as_ref().ok(),
    });
    let forced = match sim.intake(VENDOR, "call", None, recorded).await {
        Ok(forced) => forced,
        Err(response) => return response,
    };
    if let Some(status) = crate::scripted_status(forced) {
        return scripted(status);
    }
    let scheme = sim.numrot.auth_scheme();
    let Some(token) = token_under(&headers, &scheme) else {
        return error(
            StatusCode::UNAUTHORIZED,
            format!("missing Authorization: {scheme} token"),
        );
    };
    match sim.numrot.tokens.check(&token) {
        TokenStatus::Valid => {}
        TokenStatus::Expired => return error(StatusCode::UNAUTHORIZED, "session expired"),
        TokenStatus::Unknown => return error(StatusCode::UNAUTHORIZED, "invalid token"),
    }
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            );
        }
    };
    let mut answer = json!({
        "method": method.as_str(),
        "path": path,
        "query": query,
        "body": body,
    });
    if sim.numrot.nul_in_answers.load(Ordering::Relaxed) {
        answer["note"] = "a\u{0}b".into();
    }
    Json(answer).into_response()
}

fn settings_of(sim: &Sim) -> Json<Value> {
    Json(json!({
        "token_lifetime_s": sim.numrot.tokens.lifetime_s(),
        "bare_token": sim.numrot.bare_token.load(Ordering::Relaxed),
        "nul_in_answers": sim.numrot.nul_in_answers.load(Ordering::Relaxed),
        "auth_scheme": sim.numrot.auth_scheme(),
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
    let lifetime = match body.get("token_lifetime_s") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|s| (1..=MAX_LIFETIME_S).contains(s)) {
            Some(s) => Some(s),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("token_lifetime_s must be an integer from 1 to {MAX_LIFETIME_S}"),
                );
            }
        },
    };
    let bare = match body.get("bare_token") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return error(StatusCode::BAD_REQUEST, "bare_token must be a boolean"),
    };
    let nul = match body.get("nul_in_answers") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return error(StatusCode::BAD_REQUEST, "nul_in_answers must be a boolean"),
    };
    let scheme = match body.get("auth_scheme") {
        None | Some(Value::Null) => None,
        Some(Value::String(word)) if !word.trim().is_empty() && !word.contains(' ') => {
            Some(word.trim().to_string())
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "auth_scheme must be one word, or none for the bare token",
            );
        }
    };
    if let Some(scheme) = scheme {
        *sim.numrot.auth_scheme.lock().expect("auth scheme") = scheme;
    }
    if let Some(nul) = nul {
        sim.numrot.nul_in_answers.store(nul, Ordering::Relaxed);
    }
    if let Some(seconds) = lifetime {
        sim.numrot.tokens.set_lifetime_s(seconds);
    }
    if let Some(bare) = bare {
        sim.numrot.bare_token.store(bare, Ordering::Relaxed);
    }
    settings_of(&sim).into_response()
}

async fn invalidate(State(sim): State<Sim>) -> StatusCode {
    sim.numrot.tokens.invalidate();
    StatusCode::NO_CONTENT
}

/// The vendor's routes, under `/numrot`.
pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/v2/api/Token", post(token))
        .route("/api/{*path}", any(call))
}

/// The control routes, under `/sim/numrot`.
pub fn control_routes() -> Router<Sim> {
    Router::new()
        .route("/settings", get(get_settings).post(set_settings))
        .route("/invalidate", post(invalidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_request_needs_both_fields_as_strings() {
        let body = json!({ "Username": "u", "Password": "p" });
        assert_eq!(credentials(&body).unwrap(), ("u", "p"));
        assert!(
            credentials(&json!({ "Username": "u" }))
                .unwrap_err()
                .contains("Password")
        );
        assert!(
            credentials(&json!({ "Username": 1, "Password": "p" }))
                .unwrap_err()
                .contains("Username")
        );
        assert!(credentials(&json!("u:p")).is_err());
    }
}
