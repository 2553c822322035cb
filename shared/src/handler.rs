//! What a worker supplies: a handler that turns one decoded message into an outcome.
//!
//! The handler never acks, publishes or sleeps for a retry: it says done, retry (maybe after a time) or
//! give up, and the runtime alone decides ack, retry tier or `.dead`, so that rule lives in one place.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// The `error.kind` values of the event contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The message breaks a rule: a vendor's range, a limit, a field the vendor refused.
    Rejected,
    /// The vendor asked us to slow down.
    RateLimited,
    /// The vendor failed or answered something unusable.
    Vendor,
    /// The vendor refused pasarela's credentials.
    Auth,
    /// The vendor did not answer in time.
    Timeout,
    /// Every retry was spent.
    Exhausted,
    /// pasarela itself failed, or the message could not be decoded.
    Internal,
}

impl ErrorKind {
    /// The contract's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Rejected => "rejected",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Vendor => "vendor",
            ErrorKind::Auth => "auth",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Exhausted => "exhausted",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A failure as events, tables and headers carry it: a kind and a message with no secret in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The contract's classification.
    pub kind: ErrorKind,
    /// What happened, for people; never a secret or an OTP code.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Every attempt was spent; `last` is the final attempt's failure.
    pub fn exhausted(attempts: u32, last: &Failure) -> Self {
        Self::new(
            ErrorKind::Exhausted,
            format!("gave up after {attempts} attempts; last: {last}"),
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// One domain statement written in the same transaction as the outcome it belongs to.
pub struct SqlWrite {
    /// The statement (prepared once per connection and cached).
    pub sql: &'static str,
    /// Its parameters.
    pub params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl std::fmt::Debug for SqlWrite {
    // Parameters may hold personal data; the statement is enough to recognise a write.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlWrite")
            .field("sql", &self.sql)
            .field("params", &self.params.len())
            .finish()
    }
}

/// The routing key of a completion that publishes no event (an internal message whose outcome only
/// changes rows).
pub const NO_EVENT: &str = "";

/// What a handler's background work gets from the runtime.
#[derive(Clone)]
pub struct Background {
    /// The worker's database.
    pub db: crate::db::Database,
    /// The worker's publisher (confirms on; not connected while the broker is away).
    pub publisher: crate::broker::Publisher,
    /// Names under the worker's namespace.
    pub names: crate::topology::Names,
    /// Set when the worker is shutting down.
    pub stop: crate::runtime::StopSignal,
}

/// A finished message: its status, the event to publish, and the writes that record it.
#[derive(Debug)]
pub struct Completion {
    /// The terminal status (`sent`, `rejected`, `failed`, ...).
    pub status: String,
    /// Routing key on `pasarela.events`, e.g. `otp.send.completed`, or [`NO_EVENT`].
    pub routing_key: &'static str,
    /// The event body; also the reply to `reply_to`, and what a duplicate of the message gets again.
    pub event: serde_json::Value,
    /// The failure, when the status is one.
    pub error: Option<Failure>,
    /// Domain rows to write with it.
    pub writes: Vec<SqlWrite>,
}

/// What became of one attempt at a message.
#[derive(Debug)]
pub enum Outcome {
    /// Finished, well or for good: record and publish it now.
    Complete(Completion),
    /// Failed in a way that may pass: try again later, not before `retry_after` if the vendor said so.
    Retry {
        /// Why this attempt failed.
        failure: Failure,
        /// The vendor's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
}

/// What the runtime knows about the delivery being handled.
#[derive(Debug, Clone)]
pub struct HandleContext {
    /// The producer's `message_id`.
    pub message_id: Uuid,
    /// This attempt's number, counting from 1.
    pub attempt: u32,
    /// The message was taken over from a holder that vanished mid-call: the vendor may have seen it.
    pub possible_duplicate: bool,
}

/// A worker's logic: decode type, queue, and what to do with one message.
pub trait Handler: Send + Sync + 'static {
    /// The work message, as serde decodes it from the body.
    type Message: DeserializeOwned + Send + Sync + 'static;

    /// The work queue this handler serves, without namespace (e.g. `otp.send`).
    fn queue(&self) -> &'static str;

    /// Handles one attempt at `message`.
    fn handle(
        &self,
        message: &Self::Message,
        ctx: &HandleContext,
    ) -> impl Future<Output = Outcome> + Send;

    /// The completion recorded when every attempt failed; `last` is the final attempt's failure.
    fn exhausted(&self, message: &Self::Message, ctx: &HandleContext, last: &Failure)
    -> Completion;

    /// The body as a table may keep it (`dead_letters`): a handler whose messages carry a secret
    /// removes it here.
    fn stored_body(&self, body: &[u8]) -> Vec<u8> {
        body.to_vec()
    }

    /// Whether a failed attempt may wait in a retry tier (the default). A handler whose messages must
    /// not pass through the outbox table, or are worthless later, says no: its retryable failures end
    /// at once as exhausted.
    fn retries_in_tiers(&self) -> bool {
        true
    }

    /// Decodes a body. The default is serde's; a handler whose messages carry large values overrides
    /// it to keep them as slices of `body` instead of copies.
    fn decode(&self, body: &bytes::Bytes) -> Result<Self::Message, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The largest body a message may have; larger ones are dead-lettered unread. Most messages are
    /// small; a handler whose messages carry documents raises it.
    fn max_message_bytes(&self) -> usize {
        crate::runtime::MAX_MESSAGE_BYTES
    }

    /// Work that runs beside the consumer for the life of the worker, such as a dispatcher; it gets
    /// the worker's database, publisher and stop signal, and must return soon after the stop is set.
    fn background(&self, services: Background) -> impl Future<Output = ()> + Send {
        let _ = services;
        async {}
    }

    /// How often [`Handler::housekeep`] runs; `None` (the default) means never.
    fn housekeeping_interval(&self) -> Option<Duration> {
        None
    }

    /// Work done beside the queue on a timer, such as a sweep; failures are logged and tried again at
    /// the next turn.
    fn housekeep(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Splits a classified vendor failure (failure, retryable, `Retry-After`): a retryable one becomes the
/// retry outcome (`Break`); a permanent one is returned (`Continue`), and when it is the vendor refusing pasarela's
/// credentials an alert is logged, since no retry fixes that and someone must.
pub fn permanent_or_retry(
    vendor: &str,
    (failure, retryable, retry_after): (Failure, bool, Option<Duration>),
) -> std::ops::ControlFlow<Outcome, Failure> {
    if retryable {
        return std::ops::ControlFlow::Break(Outcome::Retry {
            failure,
            retry_after,
        });
    }
    if failure.kind == ErrorKind::Auth {
        tracing::error!(alert = true, vendor, error = %failure, "the vendor refused pasarela's credentials");
    }
    std::ops::ControlFlow::Continue(failure)
}

/// Builds an event body with the fields every event carries (DESIGN.md §2): the work message's id
/// under `id_field`, `status`, `attempts`, `completed_at` and, on failure, `error`.
pub fn event_body(
    id_field: &str,
    id: Uuid,
    status: &str,
    attempts: u32,
    error: Option<&Failure>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut body = serde_json::Map::new();
    body.insert(id_field.into(), id.to_string().into());
    body.insert("status".into(), status.into());
    body.insert("attempts".into(), attempts.into());
    body.insert(
        "completed_at".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
    );
    if let Some(e) = error {
        body.insert(
            "error".into(),
            serde_json::json!({ "kind": e.kind.as_str(), "message": e.message }),
        );
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_bodies_carry_the_contract_fields() {
        let id = Uuid::now_v7();
        let f = Failure::new(ErrorKind::Exhausted, "vendor kept failing");
        let body = event_body("request_id", id, "failed", 4, Some(&f));
        assert_eq!(body["request_id"], id.to_string());
        assert_eq!(body["status"], "failed");
        assert_eq!(body["attempts"], 4);
        assert_eq!(body["error"]["kind"], "exhausted");
        let at = body["completed_at"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok());
        assert!(!event_body("request_id", id, "sent", 1, None).contains_key("error"));
    }
}
