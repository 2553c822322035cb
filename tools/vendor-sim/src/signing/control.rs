//! The `/sim/signing` control endpoints: settings, expiring tokens and the documents as the
//! simulator sees them.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Document, Settings, Status, rfc3339};
use crate::Sim;

/// The longest signing or webhook delay the settings take: an hour.
const MAX_DELAY_MS: u64 = 3_600_000;
/// The longest token lifetime the settings take: a year.
const MAX_LIFETIME_S: u64 = 365 * 86_400;

impl Settings {
    /// These settings with a partial update applied (null leaves a setting as it is); an error, and
    /// no change at all, when any part is invalid. `outcomes` is replaced as a whole.
    fn updated(&self, body: &Value) -> Result<Self, String> {
        let Some(fields) = body.as_object() else {
            return Err("the body must be a JSON object".into());
        };
        let mut next = self.clone();
        for (name, value) in fields.iter().filter(|(_, v)| !v.is_null()) {
            match name.as_str() {
                "sign_after_ms" => next.sign_after_ms = int_in(name, value, 0, MAX_DELAY_MS)?,
                "webhook_delay_ms" => next.webhook_delay_ms = int_in(name, value, 0, MAX_DELAY_MS)?,
                "token_lifetime_s" => {
                    next.token_lifetime_s = int_in(name, value, 1, MAX_LIFETIME_S)?;
                }
                "lose_webhooks" => {
                    next.lose_webhooks =
                        value.as_bool().ok_or("lose_webhooks must be a boolean")?;
                }
                "outcome" => next.outcome = outcome_of(name, value)?,
                "outcomes" => {
                    let users = value
                        .as_object()
                        .ok_or("outcomes must be an object of user -> outcome")?;
                    next.outcomes = users
                        .iter()
                        .map(|(user, v)| {
                            Ok((user.clone(), outcome_of(&format!("outcomes.{user}"), v)?))
                        })
                        .collect::<Result<_, String>>()?;
                }
                "pending_status" => {
                    let word = value.as_str().filter(|w| !w.trim().is_empty());
                    next.pending_status = word.ok_or("pending_status must be a word")?.into();
                }
                "password" => {
                    let password = value.as_str().filter(|p| !p.is_empty());
                    next.password = Some(password.ok_or("password must be a string")?.into());
                }
                // A mistyped setting would otherwise be ignored and the test would wonder why.
                other => {
                    return Err(format!(
                        "unknown setting {other:?}: the settings are sign_after_ms, webhook_delay_ms, \
                         lose_webhooks, token_lifetime_s, outcome, outcomes, pending_status and password"
                    ));
                }
            }
        }
        Ok(next)
    }
}

fn int_in(name: &str, value: &Value, min: u64, max: u64) -> Result<u64, String> {
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{name} must be an integer from {min} to {max}"))
}

fn outcome_of(name: &str, value: &Value) -> Result<Status, String> {
    value
        .as_str()
        .and_then(Status::parse_final)
        .ok_or_else(|| format!("{name} must be signed, rejected, expired or error"))
}

impl Document {
    /// What `/sim/signing/documents` shows.
    fn view(&self, id: Uuid) -> Value {
        json!({
            "document_id": id,
            "document_name": self.name,
            "status": self.status,
            "outcome": self.outcome,
            "assigned_active_directory_user": self.user,
            "callback_url": self.callback_url,
            "date_sent_to_sign": rfc3339(self.sent_at),
            "signing_date": self.signing_date.map(rfc3339),
            "size_bytes": self.content.len(),
            "webhook_attempts": self.webhook_attempts,
            "webhooks_lost": self.webhooks_lost,
        })
    }
}

fn settings_of(sim: &Sim) -> Response {
    Json(sim.signing.settings.lock().expect("settings").clone()).into_response()
}

pub(super) async fn get_settings(State(sim): State<Sim>) -> Response {
    settings_of(&sim)
}

pub(super) async fn set_settings(State(sim): State<Sim>, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let updated = {
        let mut settings = sim.signing.settings.lock().expect("settings");
        settings.updated(&body).map(|next| *settings = next)
    };
    match updated {
        Ok(()) => settings_of(&sim),
        Err(message) => crate::error(StatusCode::BAD_REQUEST, message),
    }
}

pub(super) async fn expire_tokens(State(sim): State<Sim>) -> StatusCode {
    sim.signing
        .tokens
        .lock()
        .expect("tokens")
        .expire_all(Instant::now());
    StatusCode::NO_CONTENT
}

pub(super) async fn list_documents(State(sim): State<Sim>) -> Json<Vec<Value>> {
    let documents = sim.signing.documents.lock().expect("documents");
    let mut listed: Vec<_> = documents.iter().collect();
    listed.sort_by_key(|(id, doc)| (doc.sent_at, **id));
    Json(listed.into_iter().map(|(id, doc)| doc.view(*id)).collect())
}

pub(super) async fn one_document(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    let documents = sim.signing.documents.lock().expect("documents");
    match Uuid::parse_str(&id)
        .ok()
        .and_then(|uuid| Some((uuid, documents.get(&uuid)?)))
    {
        Some((uuid, doc)) => Json(doc.view(uuid)).into_response(),
        None => crate::error(StatusCode::NOT_FOUND, format!("no document {id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_update_partially_and_all_or_nothing() {
        let settings = Settings::default();
        let next = settings
            .updated(
                &json!({ "sign_after_ms": 0, "outcomes": { "a@x": "rejected" },
                              "lose_webhooks": null }),
            )
            .unwrap();
        assert_eq!(next.sign_after_ms, 0);
        assert_eq!(next.outcomes["a@x"], Status::Rejected);
        assert_eq!(next.webhook_delay_ms, 100);
        assert!(!next.lose_webhooks);
        for (bad, field) in [
            (json!({ "sign_after_ms": -1 }), "sign_after_ms"),
            (json!({ "token_lifetime_s": 0 }), "token_lifetime_s"),
            (json!({ "outcome": "received" }), "outcome"),
            (json!({ "outcomes": { "a@x": "lost" } }), "outcomes.a@x"),
            (json!({ "lose_webhooks": "yes" }), "lose_webhooks"),
            (json!({ "sign_after": 1 }), "sign_after"),
            (json!({ "sign_after_ms": 1, "outcome": 3 }), "outcome"),
        ] {
            let message = settings.updated(&bad).unwrap_err();
            assert!(message.contains(field), "{bad}: {message}");
        }
        assert!(settings.updated(&json!([])).is_err());
    }
}
