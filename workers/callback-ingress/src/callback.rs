//! The route of one vendor webhook: fetch the document row, run the checks of `checks.rs`, publish
//! `doc.callback`, answer; and the middleware that counts, times and bounds every callback request.
//!
//! Neither the token nor the body is ever logged: the token is the capability, and the body is the
//! vendor's and unverified. Only the document id and the outcome are.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;
use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::headers::HeaderValue as AmqpHeaderValue;
use pasarela_shared::contract::queue::Names;
use pasarela_shared::runtime::health::Health;
use pasarela_shared::runtime::publisher::{PublishError, Publisher};
use pasarela_shared::store::documents;
use pasarela_shared::telemetry;
use serde_json::{Value, json};

use crate::QUEUE;
use crate::checks::{Refusal, authorize, callback_message, parse_body, parse_document_id};

/// The route the vendor posts to; [`pasarela_shared::contract::documents::callback_path`] builds its URLs.
pub const CALLBACK_ROUTE: &str = "/callbacks/signing/{document_id}/{token}";

/// The largest webhook body taken; the vendor's notification is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The longest the database lookup may take before the vendor is told to come back.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a publish may wait for its confirm (the publisher's own limit is 30 s, too long to
/// hold the vendor's request). A confirm that comes later still delivers; doc-callback is idempotent.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one request may take, body upload included, so a slow sender cannot hold a task.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// What a 503 asks the vendor to wait before trying again.
const RETRY_AFTER_SECONDS: &str = "5";

/// What one callback came to: the `outcome` label of `pasarela_ingress_callbacks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Published `doc.callback`; 202.
    Accepted,
    /// Unknown document or wrong token; 404.
    NotFound,
    /// The document is already signed or failed; 409, nothing published.
    AlreadyFinal,
    /// The body is not acceptable (not a JSON object, too large, another document's id); 400 or 413.
    BadRequest,
    /// The broker or the database is away; 503, the vendor retries.
    Unavailable,
}

impl Answer {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Accepted => "accepted",
            Answer::NotFound => "not_found",
            Answer::AlreadyFinal => "already_final",
            Answer::BadRequest => "bad_request",
            Answer::Unavailable => "unavailable",
        }
    }
}

/// What the route needs: the database, the publisher, the names of the topology and the health flags.
#[derive(Clone)]
pub struct Ingress {
    pool: Pool,
    publisher: Publisher,
    names: Names,
    health: Health,
}

impl Ingress {
    /// The state of [`crate::router`].
    pub fn new(pool: Pool, publisher: Publisher, names: Names, health: Health) -> Self {
        Self {
            pool,
            publisher,
            names,
            health,
        }
    }

    /// Publishes `doc.callback` in the trace of the message that brought the document (`traceparent`
    /// stored with it): the vendor's callback itself carries none.
    async fn publish(&self, body: &Value, traceparent: Option<&str>) -> Result<(), PublishError> {
        let mut message = OutboundMessage::json(self.names.work_exchange(), QUEUE, body);
        match traceparent {
            Some(t) => {
                message
                    .headers
                    .insert("traceparent".into(), AmqpHeaderValue::Text(t.into()));
            }
            None => telemetry::inject_current(&mut message.headers),
        }
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.publisher.publish(&message)).await {
            Ok(result) => result,
            Err(_) => Err(PublishError::Timeout(PUBLISH_TIMEOUT)),
        }
    }
}

/// `POST /callbacks/signing/{document_id}/{token}`.
#[tracing::instrument(name = "signing callback", skip_all,
    fields(otel.kind = "server", document_id = tracing::field::Empty))]
pub(crate) async fn handle(
    State(ingress): State<Ingress>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Path((raw_id, token))) = path else {
        return not_found();
    };
    let Some(document_id) = parse_document_id(&raw_id) else {
        tracing::debug!("callback for a document id that is not a UUID");
        return not_found();
    };
    tracing::Span::current().record("document_id", tracing::field::display(document_id));

    let row = match tokio::time::timeout(
        LOOKUP_TIMEOUT,
        documents::callback_target(&ingress.pool, document_id),
    )
    .await
    {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => {
            if e.is_transient() {
                ingress.health.set_database(false);
            }
            tracing::warn!(error = %e, "could not look the document up");
            return unavailable("the database is unavailable");
        }
        Err(_) => {
            tracing::warn!(timeout = ?LOOKUP_TIMEOUT, "the document lookup timed out");
            return unavailable("the database is unavailable");
        }
    };
    // The request starts a trace of its own (the vendor sends no context); it links to the document's.
    let traceparent = row.as_ref().and_then(|r| r.trace_context.clone());
    telemetry::link_traceparent(&tracing::Span::current(), traceparent.as_deref());
    let row = match authorize(row.as_ref(), &token) {
        Ok(row) => row,
        Err(Refusal::NotFound) => {
            tracing::info!(
                outcome = "not_found",
                "callback refused: unknown document or token"
            );
            return not_found();
        }
        Err(Refusal::AlreadyFinal(state)) => {
            tracing::info!(outcome = "already_final", %state, "callback for a final document");
            let answer = json!({
                "error": "already_final",
                "message": "the document is already final",
                "state": state,
            });
            return respond(Answer::AlreadyFinal, StatusCode::CONFLICT, answer);
        }
    };

    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            tracing::info!(outcome = "bad_request", "callback body too large");
            let answer = json!({
                "error": "payload_too_large",
                "message": format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
            });
            return respond(Answer::BadRequest, StatusCode::PAYLOAD_TOO_LARGE, answer);
        }
        Err(rejection) => {
            tracing::info!(outcome = "bad_request", status = %rejection.status(), "callback body unreadable");
            return bad_request("the body could not be read");
        }
    };
    let message = match parse_body(&body).and_then(|b| callback_message(document_id, row, &b)) {
        Ok(message) => message,
        Err(e) => {
            tracing::info!(outcome = "bad_request", reason = %e, "callback body refused");
            return bad_request(&e.to_string());
        }
    };

    match ingress.publish(&message, traceparent.as_deref()).await {
        Ok(()) => {
            tracing::info!(
                outcome = "accepted",
                "callback accepted; doc.callback published"
            );
            respond(
                Answer::Accepted,
                StatusCode::ACCEPTED,
                json!({"status": "accepted"}),
            )
        }
        Err(e) => {
            tracing::warn!(outcome = "unavailable", error = %e, "could not publish doc.callback");
            unavailable("the broker is unavailable")
        }
    }
}

/// Counts and times every callback (the outcome travels in the response's extensions) and bounds the
/// whole request, body upload included.
pub(crate) async fn measure(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?REQUEST_TIMEOUT, "callback request timed out");
            unavailable("the request took too long")
        }
    };
    if let Some(outcome) = response.extensions().get::<Answer>() {
        metrics::counter!("pasarela_ingress_callbacks_total", "outcome" => outcome.as_str())
            .increment(1);
        metrics::histogram!("pasarela_ingress_callback_seconds")
            .record(started.elapsed().as_secs_f64());
    }
    response
}

/// The answer for anything that is not a known callback URL, counted when it reaches the handler.
pub(crate) fn not_found() -> Response {
    respond(
        Answer::NotFound,
        StatusCode::NOT_FOUND,
        json!({"error": "not_found"}),
    )
}

/// The answer for any other path: the same body, not counted as a callback.
pub(crate) async fn fallback() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))).into_response()
}

fn bad_request(message: &str) -> Response {
    let answer = json!({"error": "bad_request", "message": message});
    respond(Answer::BadRequest, StatusCode::BAD_REQUEST, answer)
}

fn unavailable(message: &str) -> Response {
    let answer = json!({"error": "unavailable", "message": message});
    let mut response = respond(Answer::Unavailable, StatusCode::SERVICE_UNAVAILABLE, answer);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    response
}

fn respond(outcome: Answer, status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(outcome);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_have_the_documented_labels() {
        let labels: Vec<_> = [
            Answer::Accepted,
            Answer::NotFound,
            Answer::AlreadyFinal,
            Answer::BadRequest,
            Answer::Unavailable,
        ]
        .iter()
        .map(|o| o.as_str())
        .collect();
        assert_eq!(
            labels,
            [
                "accepted",
                "not_found",
                "already_final",
                "bad_request",
                "unavailable"
            ]
        );
    }
}
