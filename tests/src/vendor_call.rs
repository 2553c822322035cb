//! `vendor.call` steps the end-to-end tests share: a message, and publishing a batch to its events.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::TestEnv;

/// How long a batch of calls may take.
const WAIT: Duration = Duration::from_secs(60);

/// A `vendor.call` message with a fresh call id, and that id.
pub fn call(vendor: &str, method: &str, path: &str, body: Value) -> (String, Value) {
    let id = Uuid::new_v4().to_string();
    let message =
        json!({ "call_id": id, "vendor": vendor, "method": method, "path": path, "body": body });
    (id, message)
}

/// Publishes the calls and returns their events, keyed by call id.
pub async fn run(
    env: &mut TestEnv,
    calls: &[(String, Value)],
) -> std::collections::HashMap<String, Value> {
    for (id, body) in calls {
        env.publish_to("vendor.call", body, id).await;
    }
    let events = env.events(calls.len(), WAIT).await;
    assert_eq!(
        events.len(),
        calls.len(),
        "missing events; logs:\n{}",
        env.worker_log()
    );
    events
        .into_iter()
        .map(|e| {
            assert_eq!(e.routing_key, "vendor.call.completed");
            (e.body["call_id"].as_str().unwrap().to_string(), e.body)
        })
        .collect()
}
