//! The copy a replay publishes: the dead message's ids, type and body, its headers less the
//! dead-letter and retry bookkeeping, and the replay mark that lets it start over.

use std::collections::BTreeMap;

use lapin::BasicProperties;
use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::headers::{
    ATTEMPT_HEADER, DEFERRED_HEADER, ERROR_HEADER, ERROR_KIND_HEADER, HeaderValue, REPLAY_HEADER,
};
use pasarela_shared::runtime::publisher::headers_from_table;
use uuid::Uuid;

/// The headers a replayed copy carries: the original ones less the dead-letter and retry bookkeeping,
/// plus the replay mark.
pub fn replay_headers(mut headers: BTreeMap<String, HeaderValue>) -> BTreeMap<String, HeaderValue> {
    for name in [
        ERROR_HEADER,
        ERROR_KIND_HEADER,
        ATTEMPT_HEADER,
        DEFERRED_HEADER,
    ] {
        headers.remove(name);
    }
    // The broker's own record of the old life (x-death arrays are never carried over at all).
    headers.retain(|k, _| {
        k != "x-delivery-count"
            && !k.starts_with("x-first-death-")
            && !k.starts_with("x-last-death-")
    });
    headers.insert(REPLAY_HEADER.into(), HeaderValue::Text("true".into()));
    headers
}

/// The copy of a dead message to publish to `exchange` with `routing_key`.
pub fn replay_copy(
    props: &BasicProperties,
    body: Vec<u8>,
    exchange: String,
    routing_key: &str,
) -> OutboundMessage {
    let text = |s: &Option<lapin::types::ShortString>| s.as_ref().map(|s| s.as_str().to_string());
    OutboundMessage {
        id: Uuid::now_v7(),
        exchange,
        routing_key: routing_key.to_string(),
        message_id: text(props.message_id()),
        correlation_id: text(props.correlation_id()),
        // A replay must not answer a caller that gave up long ago.
        reply_to: None,
        content_type: text(props.content_type()),
        expiration_ms: None,
        mandatory: false,
        headers: replay_headers(headers_from_table(props.headers().as_ref())),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasarela_shared::runtime::publisher::headers_to_table;

    #[test]
    fn a_replay_drops_the_bookkeeping_and_keeps_the_rest() {
        let mut h = BTreeMap::new();
        h.insert(ERROR_HEADER.into(), HeaderValue::Text("invalid".into()));
        h.insert(
            ERROR_KIND_HEADER.into(),
            HeaderValue::Text("internal".into()),
        );
        h.insert(ATTEMPT_HEADER.into(), HeaderValue::Int(4));
        h.insert(DEFERRED_HEADER.into(), HeaderValue::Text("true".into()));
        h.insert("x-delivery-count".into(), HeaderValue::Int(2));
        h.insert("x-first-death-queue".into(), HeaderValue::Text("q".into()));
        h.insert("traceparent".into(), HeaderValue::Text("00-a-b-01".into()));
        h.insert("tenant-tag".into(), HeaderValue::Int(7));
        let out = replay_headers(h);
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(keys, ["tenant-tag", "traceparent", REPLAY_HEADER]);
        assert_eq!(out[REPLAY_HEADER], HeaderValue::Text("true".into()));
    }

    #[test]
    fn the_copy_keeps_ids_type_and_body() {
        let mut h = BTreeMap::new();
        h.insert(ATTEMPT_HEADER.to_string(), HeaderValue::Int(3));
        let props = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_correlation_id("c-1".into())
            .with_content_type("application/json".into())
            .with_reply_to("gone".into())
            .with_headers(headers_to_table(&h));
        let copy = replay_copy(&props, b"{}".to_vec(), "ns.pasarela".into(), "otp.send");
        assert_eq!(copy.exchange, "ns.pasarela");
        assert_eq!(copy.routing_key, "otp.send");
        assert_eq!(copy.message_id.as_deref(), Some("m-1"));
        assert_eq!(copy.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(copy.reply_to, None, "a replay answers no caller");
        assert_eq!(copy.content_type.as_deref(), Some("application/json"));
        assert_eq!(copy.body, b"{}");
        assert!(!copy.headers.contains_key(ATTEMPT_HEADER));
        assert!(copy.headers.contains_key(REPLAY_HEADER));
    }
}
