//! What happens to one delivery, as small steps: decode, claim, then by the claim's answer attempt
//! the message, answer a duplicate from the stored result, drop a stale copy, or defer a busy one.
//! Every path ends in exactly one ack or requeue, and an ack only after what it caused is confirmed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;
use uuid::Uuid;

use crate::contract::headers::{DEFERRED_HEADER, HeaderValue, REPLAY_HEADER, attempt_of};
use crate::runtime::consumer::Consumer;
use crate::runtime::handler::{HandleContext, Handler, NO_EVENT};
use crate::runtime::link::answered;
use crate::runtime::publisher;
use crate::store::outbox;
use crate::store::work_items::{Claim, ClaimRequest, Claimed};
use crate::telemetry;

/// How long a delivery waits before going back to its queue when a publish failed.
pub(crate) const PUBLISH_PAUSE: Duration = Duration::from_millis(500);

/// Why a delivery cannot be read: it is dead-lettered unread, with this as its reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unreadable {
    /// No `message_id` property.
    #[error("missing message_id: every work message needs a message_id property (a UUID)")]
    NoMessageId,
    /// A `message_id` that is not a UUID.
    #[error("message_id is not a UUID")]
    MessageIdNotUuid,
    /// A body over the handler's limit.
    #[error("body of {size} bytes is over the limit of {limit}")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The handler's limit.
        limit: usize,
    },
    /// A field holding the NUL character, which PostgreSQL cannot store: refused before any vendor is
    /// called for it.
    #[error("a field holds a NUL character (\\u0000), which cannot be stored")]
    Nul,
    /// A body that is not the queue's message.
    #[error("invalid {queue} message: {error}")]
    Body {
        /// The queue.
        queue: &'static str,
        /// What serde said.
        error: serde_json::Error,
    },
}

/// A delivery whose body is shared bytes: a handler may keep a part of it (a document) without a
/// copy. Everything else is the delivery's.
pub(crate) struct Inbound {
    delivery: Delivery,
    pub(crate) body: bytes::Bytes,
    pub(crate) headers: BTreeMap<String, HeaderValue>,
}

impl From<Delivery> for Inbound {
    fn from(mut delivery: Delivery) -> Self {
        let body = bytes::Bytes::from(std::mem::take(&mut delivery.data));
        let headers = publisher::headers_from_table(delivery.properties.headers().as_ref());
        Self {
            delivery,
            body,
            headers,
        }
    }
}

impl std::ops::Deref for Inbound {
    type Target = Delivery;

    fn deref(&self) -> &Delivery {
        &self.delivery
    }
}

impl Inbound {
    /// The producer's `message_id` as it came, if any.
    fn raw_message_id(&self) -> Option<String> {
        self.properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_string())
    }
}

/// Whether a JSON text holds the escape `\u0000` (not a literal backslash followed by `u0000`).
fn holds_escaped_nul(body: &[u8]) -> bool {
    memchr::memmem::find_iter(body, b"u0000").any(|at| {
        let backslashes = body[..at].iter().rev().take_while(|b| **b == b'\\').count();
        backslashes % 2 == 1
    })
}

impl<H: Handler> Consumer<H> {
    /// Handles one delivery inside its span, and counts what became of it.
    pub(crate) async fn process(
        self: Arc<Self>,
        delivery: Delivery,
        _permit: OwnedSemaphorePermit,
    ) {
        let delivery = Inbound::from(delivery);
        let message_id = delivery.raw_message_id();
        let span = tracing::info_span!(
            "process",
            otel.name = %self.routes.span_name,
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "process",
            messaging.destination.name = self.routes.work_exchange.as_str(),
            messaging.rabbitmq.destination.routing_key = self.routes.queue,
            messaging.message.id = message_id.as_deref().unwrap_or(""),
            attempt = tracing::field::Empty,
            outcome = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        telemetry::adopt_parent(&span, &delivery.headers);
        // In every log line of the delivery (JSON logs carry span fields), to find its trace.
        if let Some(id) = telemetry::trace_id_of(&span) {
            span.record("trace_id", telemetry::trace_id_hex(id).as_str());
        }
        let started = Instant::now();
        let label = self
            .deliver(&delivery, message_id)
            .instrument(span.clone())
            .await;
        span.record("outcome", label);
        metrics::counter!("pasarela_messages_total", "queue" => self.routes.queue, "outcome" => label)
            .increment(1);
        metrics::histogram!("pasarela_message_seconds", "queue" => self.routes.queue)
            .record(started.elapsed().as_secs_f64());
    }

    /// Decode, claim, and follow the claim's answer; returns what became of the delivery.
    async fn deliver(&self, delivery: &Inbound, raw_id: Option<String>) -> &'static str {
        let (message_id, message) = match self.decode(delivery, raw_id.as_deref()) {
            Ok(decoded) => decoded,
            Err(why) => {
                return self
                    .dead_letter_input(delivery, raw_id, &why.to_string())
                    .await;
            }
        };
        let request = ClaimRequest {
            message_id,
            header_attempt: attempt_of(&delivery.headers),
            replay: delivery.headers.contains_key(REPLAY_HEADER),
            max_attempts: self.settings.retry.max_attempts(),
            trace_id: telemetry::trace_id_of(&tracing::Span::current()),
            admission: self.handler.admission(&message),
        };
        let store = self.store.clone();
        let claiming = self
            .db
            .retrying("claim", || store.claim(request.clone()))
            .instrument(crate::telemetry::database_span("claim", "work_items"));
        let started = Instant::now();
        let claimed = claiming.await;
        self.step("claim", started);
        let Claimed { claim, admission } = match claimed {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "could not claim; returning the message to the queue");
                return self.requeue(delivery).await;
            }
        };
        match claim {
            Claim::Take {
                attempt,
                possible_duplicate,
            } => {
                let ctx = HandleContext {
                    message_id,
                    attempt,
                    possible_duplicate,
                    admission,
                };
                self.attempt(delivery, &message, ctx).await
            }
            Claim::Done {
                routing_key,
                result,
            } => {
                self.answer_again(delivery, message_id, &routing_key, &result)
                    .await
            }
            Claim::Stale => self.drop_stale(delivery, message_id).await,
            Claim::Busy => self.defer(delivery).await,
            Claim::Abandoned { attempts } => {
                self.abandon(delivery, &message, message_id, attempts).await
            }
        }
    }

    /// The message's id and body, or why it cannot be read.
    fn decode(
        &self,
        delivery: &Inbound,
        raw_id: Option<&str>,
    ) -> Result<(Uuid, H::Message), Unreadable> {
        let message_id = match raw_id.map(Uuid::parse_str) {
            Some(Ok(id)) => id,
            None => return Err(Unreadable::NoMessageId),
            Some(Err(_)) => return Err(Unreadable::MessageIdNotUuid),
        };
        let limit = self.handler.max_message_bytes();
        if delivery.body.len() > limit {
            return Err(Unreadable::TooLarge {
                size: delivery.body.len(),
                limit,
            });
        }
        if holds_escaped_nul(&delivery.body) {
            return Err(Unreadable::Nul);
        }
        let message = self
            .handler
            .decode(&delivery.body)
            .map_err(|e| Unreadable::Body {
                queue: self.routes.queue,
                error: e,
            })?;
        Ok((message_id, message))
    }

    /// A message already finished: publish its stored result again, then ack. What its outcome caused
    /// is confirmed first (ack last): rows a crash left behind are sent now, and while rows its holder
    /// is publishing right now remain, this copy is deferred instead.
    async fn answer_again(
        &self,
        delivery: &Inbound,
        message_id: Uuid,
        routing_key: &str,
        result: &serde_json::Value,
    ) -> &'static str {
        match self.outcome_confirmed(message_id).await {
            Some(true) => {}
            Some(false) => return self.defer(delivery).await,
            None => return self.requeue_later(delivery).await,
        }
        let mut out = Vec::with_capacity(2);
        if routing_key != NO_EVENT {
            out.push(self.event(routing_key, result));
        }
        out.extend(self.reply(delivery, result));
        match self.publisher.publish_all(&out).await {
            Ok(()) => {
                self.ack(delivery).await;
                "duplicate"
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not re-publish the stored result");
                self.requeue_later(delivery).await
            }
        }
    }

    /// A copy older than the scheduled retry: once what it caused is confirmed, it is dropped.
    async fn drop_stale(&self, delivery: &Inbound, message_id: Uuid) -> &'static str {
        match self.outcome_confirmed(message_id).await {
            Some(true) => {
                self.ack(delivery).await;
                "stale"
            }
            Some(false) => self.defer(delivery).await,
            None => self.requeue_later(delivery).await,
        }
    }

    /// Says whether none of the message's outbox rows is left waiting for a confirm, first sending
    /// those a crash left behind; `None` when the outbox could not be read or sent. The common case,
    /// an empty outbox, costs one query.
    async fn outcome_confirmed(&self, message_id: Uuid) -> Option<bool> {
        if self.outbox_waiting(message_id).await? == 0 {
            return Some(true);
        }
        if let Err(e) = self.flush_outbox(message_id).await {
            tracing::warn!(error = %e, "could not flush the outbox of a finished message");
            return None;
        }
        Some(self.outbox_waiting(message_id).await? == 0)
    }

    /// How many of the message's outbox rows wait for a confirm; `None` when it could not be read.
    async fn outbox_waiting(&self, message_id: Uuid) -> Option<i64> {
        outbox::waiting(self.store.pool(), self.routes.queue, message_id)
            .await
            .inspect_err(
                |e| tracing::warn!(error = %e, "could not read the outbox of a finished message"),
            )
            .ok()
    }

    /// Another holder is on it: set this copy aside in the shortest tier and look again later,
    /// instead of calling the vendor a second time.
    async fn defer(&self, delivery: &Inbound) -> &'static str {
        let mut copy = self.copy_of(delivery);
        copy.routing_key = self.routes.defer_queue.clone();
        let deferred = match delivery.headers.get(DEFERRED_HEADER) {
            Some(HeaderValue::Int(n)) => n + 1,
            _ => 1,
        };
        copy.headers
            .insert(DEFERRED_HEADER.into(), HeaderValue::Int(deferred));
        match self.publisher.publish(&copy).await {
            Ok(()) => {
                self.ack(delivery).await;
                "deferred"
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not defer a busy message");
                self.requeue_later(delivery).await
            }
        }
    }

    /// Sends the message's outbox rows a crash left behind.
    async fn flush_outbox(
        &self,
        message_id: Uuid,
    ) -> Result<usize, outbox::FlushError<publisher::PublishError>> {
        outbox::flush(
            self.store.pool(),
            &self.publisher,
            self.routes.queue,
            message_id,
            self.settings.outbox_relay_after,
        )
        .await
    }

    /// Acks a delivery whose outcome is committed and confirmed.
    pub(crate) async fn ack(&self, delivery: &Inbound) {
        let started = Instant::now();
        let ack = delivery.acker.ack(BasicAckOptions::default());
        if let Err(e) = answered("an ack", self.settings.amqp_heartbeat, ack).await {
            // The channel is gone; the broker redelivers and the claim answers from the stored state.
            tracing::debug!(error = %e, "ack failed");
        }
        self.step("ack", started);
    }

    /// Records how long a step of a delivery took since `started`.
    pub(crate) fn step(&self, step: &'static str, started: Instant) {
        metrics::histogram!("pasarela_step_seconds", "queue" => self.routes.queue, "step" => step)
            .record(started.elapsed().as_secs_f64());
    }

    /// Returns a delivery to its queue after a pause: the publisher failed, and an immediate
    /// redelivery would fail the same way, in a loop as fast as the broker can redeliver.
    pub(crate) async fn requeue_later(&self, delivery: &Inbound) -> &'static str {
        tokio::time::sleep(PUBLISH_PAUSE).await;
        self.requeue(delivery).await
    }

    /// Returns a delivery to its queue; says so.
    pub(crate) async fn requeue(&self, delivery: &Inbound) -> &'static str {
        let opts = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        let nack = delivery.acker.nack(opts);
        if let Err(e) = answered("a nack", self.settings.amqp_heartbeat, nack).await {
            tracing::debug!(error = %e, "nack failed");
        }
        "requeued"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_escaped_nul_is_found_and_a_literal_backslash_u0000_is_not() {
        assert!(holds_escaped_nul(br#"{"tenant":"ac\u0000me"}"#));
        assert!(holds_escaped_nul(br#"{"a":"\\\u0000"}"#));
        assert!(!holds_escaped_nul(br#"{"a":"\\u0000"}"#));
        assert!(!holds_escaped_nul(br#"{"a":"u0000"}"#));
    }
}
