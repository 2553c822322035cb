//! What a worker supplies: a handler that turns one decoded message into an outcome.
//!
//! The handler never acks, publishes or sleeps for a retry: it says done, retry (maybe after a time) or
//! give up, and the runtime alone decides ack, retry tier or `.dead`, so that rule lives in one place.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::contract::errors::{ErrorKind, Failure, Verdict};
use crate::contract::events::Event;
use crate::store::Record;
use crate::store::otp::{GuardLimits, SendAdmission, SendToAdmit};

/// The routing key of a completion that publishes no event (an internal message whose outcome only
/// changes rows).
pub const NO_EVENT: &str = "";

/// What a handler's background work gets from the runtime.
#[derive(Clone)]
pub struct Background {
    /// The worker's database.
    pub db: crate::runtime::database::Database,
    /// The worker's publisher (confirms on; not connected while the broker is away).
    pub publisher: crate::runtime::publisher::Publisher,
    /// Names under the worker's namespace.
    pub names: crate::contract::queue::Names,
    /// Set when the worker is shutting down.
    pub stop: crate::runtime::stop::StopSignal,
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
    pub records: Vec<Record>,
}

impl Completion {
    /// A finished message whose result is `event`, failed with `error` if given, keeping `records`.
    pub fn of(event: &impl Event, error: Option<Failure>, records: Vec<Record>) -> Self {
        Self {
            status: event.ending().status.clone(),
            routing_key: event.routing_key(),
            event: serde_json::to_value(event).expect("an event always serialises"),
            error,
            records,
        }
    }
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
    /// The fraud guard's verdict on the message's send, counted with its claim, when the handler
    /// asked for one ([`Handler::admission`]).
    pub admission: Option<SendAdmission>,
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
        crate::runtime::consumer::MAX_MESSAGE_BYTES
    }

    /// The fraud guard's limits, when this handler's sends are counted with their claims.
    fn guard(&self) -> Option<GuardLimits> {
        None
    }

    /// The send the fraud guard should count for `message`, admitted in its claim's transaction so
    /// that the count costs no transaction and no wait of its own; `None` (the default) for a
    /// message the guard does not count, or one the handler will refuse before the guard.
    fn admission(&self, message: &Self::Message) -> Option<SendToAdmit> {
        let _ = message;
        None
    }

    /// Work that runs beside the consumer for the life of the worker, such as a dispatcher; it gets
    /// the worker's database, publisher and stop signal, and must return soon after the stop is set.
    fn background(&self, services: Background) -> impl Future<Output = ()> + Send {
        let _ = services;
        async {}
    }

    /// Outbox rows this worker writes under names other than its queue (the webhook dispatcher's), which
    /// its relay publishes too. A relay publishes only its own worker's rows, so that a row the broker
    /// refuses stops no other worker.
    fn outbox_queues(&self) -> &'static [&'static str] {
        &[]
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

/// A verdict as a handler follows it: a retry becomes the retry outcome (`Break`); a give-up returns
/// its failure for the handler to finish with (`Continue`), and when it is the vendor refusing
/// pasarela's credentials an alert is logged, since no retry fixes that and someone must.
pub fn retry_or_failure(vendor: &str, verdict: Verdict) -> std::ops::ControlFlow<Outcome, Failure> {
    match verdict {
        Verdict::Retry { failure, after } => std::ops::ControlFlow::Break(Outcome::Retry {
            failure,
            retry_after: after,
        }),
        Verdict::GiveUp(failure) => {
            if failure.kind == ErrorKind::Auth {
                tracing::error!(alert = true, vendor, error = %failure,
                    "the vendor refused pasarela's credentials");
            }
            std::ops::ControlFlow::Continue(failure)
        }
    }
}
