//! OAuth2 as the signing vendor does it: the password and refresh grants, RFC 7009 revocation, the
//! store of issued tokens and the Bearer check every document call makes first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde_json::{Map, Value, json};

use super::{Failure, VENDOR, is_json, not_json, text};
use crate::Sim;

const REVOKED_MESSAGE: &str = "The token has been successfully revoked.";

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
pub(super) struct Tokens {
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

    pub(super) fn expire_all(&mut self, now: Instant) {
        for access in self.access.values_mut() {
            access.expires_at = access.expires_at.min(now);
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
pub(super) async fn bearer_intake(
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

pub(super) async fn token(State(sim): State<Sim>, headers: HeaderMap, raw: Bytes) -> Response {
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
    let (lifetime_s, rotated_password) = {
        let settings = sim.signing.settings.lock().expect("settings");
        (settings.token_lifetime_s, settings.password.clone())
    };
    let expected_password = rotated_password
        .as_deref()
        .unwrap_or(&config.signing_password);
    let lifetime = Duration::from_secs(lifetime_s);
    let mut tokens = sim.signing.tokens.lock().expect("tokens");
    if password_grant {
        let (username, password) = presented;
        if username != config.signing_username || password != expected_password {
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

pub(super) async fn revoke(State(sim): State<Sim>, headers: HeaderMap, raw: Bytes) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

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
