//! `docs/asyncapi.yaml` against what the code declares: every work queue and event routing key has its
//! channel on the right exchange and no channel names anything else, every message's payload is the
//! generated schema of its queue or key, the headers pasarela reads and writes are documented, and the
//! RPC replies are the results of their own queue. (`make asyncapi` validates the document itself with
//! the AsyncAPI parser.)

use std::collections::BTreeSet;
use std::path::PathBuf;

use pasarela_shared::contract::events::EVENT_KEYS;
use pasarela_shared::contract::headers::{
    ATTEMPT_HEADER, DEFERRED_HEADER, ERROR_HEADER, ERROR_KIND_HEADER, REPLAY_HEADER,
};
use pasarela_shared::contract::queue::{Names, WORK_QUEUES};
use pasarela_shared::contract::schemas;
use serde_json::Value;

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn document() -> Value {
    let text = std::fs::read_to_string(docs().join("asyncapi.yaml")).expect("docs/asyncapi.yaml");
    serde_yaml_ng::from_str(&text).expect("docs/asyncapi.yaml is YAML")
}

/// Follows local `$ref`s (`#/a/b/c`) to what they finally name.
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/") => {
            let target = r[2..].split('/').fold(doc, |at, key| &at[key]);
            assert!(!target.is_null(), "{r} names nothing");
            resolve(doc, target)
        }
        _ => node,
    }
}

/// The channels bound to `exchange`, by address.
fn addresses_on(doc: &Value, exchange: &str) -> BTreeSet<String> {
    doc["channels"]
        .as_object()
        .unwrap()
        .values()
        .filter(|c| c["bindings"]["amqp"]["exchange"]["name"] == exchange)
        .map(|c| c["address"].as_str().expect("an address").to_string())
        .collect()
}

#[test]
fn every_queue_and_routing_key_has_its_channel_and_nothing_else() {
    let doc = document();
    assert_eq!(doc["asyncapi"].as_str().map(|v| &v[..2]), Some("3."));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let names = Names::new("");
    let work: BTreeSet<String> = WORK_QUEUES.iter().map(|q| q.to_string()).collect();
    assert_eq!(addresses_on(&doc, &names.work_exchange()), work);
    let events: BTreeSet<String> = EVENT_KEYS.iter().map(|k| k.to_string()).collect();
    assert_eq!(addresses_on(&doc, &names.events_exchange()), events);
    for channel in doc["channels"].as_object().unwrap().values() {
        if let Some(exchange) = channel["bindings"]["amqp"]["exchange"].as_object() {
            assert_eq!(exchange["type"], "topic", "{channel}");
            assert_eq!(exchange["durable"], true, "{channel}");
        }
    }
}

#[test]
fn every_message_payload_is_its_generated_schema_and_every_schema_is_used() {
    let doc = document();
    let mut referenced = BTreeSet::new();
    for (key, message) in doc["components"]["messages"].as_object().unwrap() {
        let name = message["name"].as_str().expect("a message name");
        let payload = message["payload"]["$ref"].as_str().expect("a payload $ref");
        assert_eq!(payload, format!("./schemas/{name}.json"), "{key}");
        assert!(
            docs().join("schemas").join(format!("{name}.json")).exists(),
            "{payload}"
        );
        referenced.insert(name.to_string());
    }
    let generated: BTreeSet<String> = schemas::all()
        .into_iter()
        .map(|(name, _)| name.to_string())
        // The result a doc.callback is answered with is internal: no producer sends or reads it.
        .filter(|name| name != "doc.callback.result")
        .collect();
    assert_eq!(referenced, generated);
    // A channel's message is the one named after the channel's address.
    for (id, channel) in doc["channels"].as_object().unwrap() {
        let Some(address) = channel["address"].as_str() else {
            continue;
        };
        for message in channel["messages"].as_object().unwrap().values() {
            let message = resolve(&doc, message);
            assert_eq!(message["name"], address, "channel {id}");
        }
    }
}

#[test]
fn the_headers_pasarela_reads_and_writes_are_documented() {
    let doc = document();
    let work = &doc["components"]["schemas"]["WorkHeaders"];
    let documented: BTreeSet<&str> = work["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for header in [
        "message_id",
        "content_type",
        "reply_to",
        "correlation_id",
        "traceparent",
        "tracestate",
        ATTEMPT_HEADER,
        ERROR_HEADER,
        ERROR_KIND_HEADER,
        REPLAY_HEADER,
        DEFERRED_HEADER,
    ] {
        assert!(
            documented.contains(header),
            "{header} is not in WorkHeaders"
        );
    }
    assert_eq!(work["required"], serde_json::json!(["message_id"]));
}

#[test]
fn each_rpc_reply_is_the_result_of_its_own_queue() {
    let doc = document();
    let mut replying = BTreeSet::new();
    for (id, op) in doc["operations"].as_object().unwrap() {
        let Some(reply) = op.get("reply") else {
            continue;
        };
        let channel = resolve(&doc, &op["channel"]);
        let queue = channel["address"].as_str().expect("a queue");
        assert_eq!(op["action"], "receive", "{id}");
        assert_eq!(
            reply["address"]["location"], "$message.header#/reply_to",
            "{id}"
        );
        for message in reply["messages"].as_array().unwrap() {
            let message = resolve(&doc, message);
            assert_eq!(message["name"], format!("{queue}.completed"), "{id}");
        }
        replying.insert(queue.to_string());
    }
    assert_eq!(
        replying,
        BTreeSet::from(["otp.send", "otp.verify", "vendor.call"].map(String::from))
    );
}
