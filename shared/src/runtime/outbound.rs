//! What an attempt publishes besides its outcome: the result event, the reply to an RPC caller, and the
//! copies of the delivery for a retry tier or `.dead`, with the dead letter's row.

use uuid::Uuid;

use crate::contract::envelope::OutboundMessage;
use crate::contract::errors::ErrorKind;
use crate::contract::headers::{ERROR_HEADER, ERROR_KIND_HEADER, HeaderValue};
use crate::runtime::consumer::Consumer;
use crate::runtime::delivery::Inbound;
use crate::runtime::handler::Handler;
use crate::store::dead_letters::DeadLetterRow;

impl<H: Handler> Consumer<H> {
    /// The result event on the events exchange.
    pub(crate) fn event(&self, routing_key: &str, body: &serde_json::Value) -> OutboundMessage {
        let mut m = OutboundMessage::json(&self.routes.events_exchange, routing_key, body);
        m.message_id = Some(m.id.to_string());
        crate::telemetry::inject_current(&mut m.headers);
        m
    }

    /// The reply to an RPC caller, when the delivery named `reply_to`.
    pub(crate) fn reply(
        &self,
        delivery: &Inbound,
        body: &serde_json::Value,
    ) -> Option<OutboundMessage> {
        let reply_to = delivery.properties.reply_to().as_ref()?;
        let mut m = OutboundMessage::json("", reply_to.as_str(), body);
        m.correlation_id = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str().to_string());
        crate::telemetry::inject_current(&mut m.headers);
        Some(m)
    }

    /// The delivery as it came, ready to be published elsewhere.
    pub(crate) fn copy_of(&self, delivery: &Inbound) -> OutboundMessage {
        let p = &delivery.properties;
        OutboundMessage {
            id: Uuid::now_v7(),
            exchange: String::new(),
            routing_key: String::new(),
            message_id: p.message_id().as_ref().map(|s| s.as_str().to_string()),
            correlation_id: p.correlation_id().as_ref().map(|s| s.as_str().to_string()),
            reply_to: p.reply_to().as_ref().map(|s| s.as_str().to_string()),
            content_type: p.content_type().as_ref().map(|s| s.as_str().to_string()),
            expiration_ms: None,
            // Every copy goes to one of our queues (a tier, the defer tier, `.dead`).
            mandatory: true,
            headers: delivery.headers.clone(),
            body: delivery.body.to_vec(),
        }
    }

    pub(crate) fn dead_copy(
        &self,
        delivery: &Inbound,
        reason: &str,
        kind: ErrorKind,
    ) -> OutboundMessage {
        let mut copy = self.copy_of(delivery);
        // The copy passes through the outbox table: it carries only what a table may keep.
        copy.body = self.handler.stored_body(&delivery.body);
        copy.routing_key = self.routes.dead_queue.clone();
        copy.headers
            .insert(ERROR_HEADER.into(), HeaderValue::Text(reason.to_string()));
        copy.headers.insert(
            ERROR_KIND_HEADER.into(),
            HeaderValue::Text(kind.as_str().into()),
        );
        // reply_to is dropped on purpose: a replay must not answer a caller that gave up long ago.
        copy.reply_to = None;
        copy
    }

    pub(crate) fn dead_letter_row(
        &self,
        delivery: &Inbound,
        message_id: Option<String>,
        kind: ErrorKind,
        reason: String,
        attempts: Option<u32>,
    ) -> DeadLetterRow {
        DeadLetterRow {
            message_id,
            kind,
            reason,
            attempts,
            headers: serde_json::to_value(&delivery.headers).unwrap_or_default(),
            body: self.handler.stored_body(&delivery.body),
        }
    }
}
