//! A message to publish: also the shape of an outbox row, so a crash between commit and publish loses
//! nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::contract::headers::HeaderValue;

/// A message to publish; also the shape of an outbox row, so a crash between commit and publish loses
/// nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The outbox row's id (time-ordered).
    pub id: Uuid,
    /// Exchange, fully qualified; empty for the default exchange.
    pub exchange: String,
    /// Routing key, fully qualified when it names a queue.
    pub routing_key: String,
    /// AMQP `message_id`.
    pub message_id: Option<String>,
    /// AMQP `correlation_id` (RPC replies).
    pub correlation_id: Option<String>,
    /// AMQP `reply_to`: a retry or deferred copy keeps its caller's reply queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// AMQP `content_type`.
    pub content_type: Option<String>,
    /// Per-message expiration in milliseconds (retry tiers).
    pub expiration_ms: Option<u64>,
    /// A copy for one of pasarela's own queues (a tier, `.dead`): published `mandatory`, so that a
    /// missing queue is an error instead of a silent drop. Events and replies are not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mandatory: bool,
    /// Application headers.
    pub headers: BTreeMap<String, HeaderValue>,
    /// The body; stored in its own column, not in the properties document.
    #[serde(skip)]
    pub body: Vec<u8>,
}

impl OutboundMessage {
    /// A JSON message with a fresh id.
    pub fn json(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        body: &serde_json::Value,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            message_id: Some(Uuid::now_v7().to_string()),
            correlation_id: None,
            reply_to: None,
            content_type: Some("application/json".into()),
            expiration_ms: None,
            mandatory: false,
            headers: BTreeMap::new(),
            body: serde_json::to_vec(body).expect("a JSON value always serialises"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::headers::ERROR_HEADER;

    #[test]
    fn outbound_properties_survive_the_outbox_document() {
        let mut m = OutboundMessage::json("ex", "rk", &serde_json::json!({"a": 1}));
        m.correlation_id = Some("c-1".into());
        m.reply_to = Some("amq.gen-reply".into());
        m.mandatory = true;
        m.headers
            .insert(ERROR_HEADER.into(), HeaderValue::Text("bad".into()));
        let doc = serde_json::to_value(&m).unwrap();
        let mut back: OutboundMessage = serde_json::from_value(doc).unwrap();
        back.body = m.body.clone();
        assert_eq!(back, m);
    }
}
