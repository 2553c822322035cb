//! The promise, hole by hole: each test is named after a way work could be lost or done twice, and
//! runs it against the real broker and database (docs/RELIABILITY.md lists them).

use std::time::Duration;

use pasarela_e2e::TestEnv;
use serde_json::json;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// Hole 3: an RPC whose first attempt fails goes through a retry tier; the retry's reply still
/// reaches the caller's `reply_to` with its `correlation_id`.
#[tokio::test]
async fn hole_3_an_rpc_reply_survives_a_retry_tier() {
    let mut env = TestEnv::builder().worker("vendor-call").start().await;
    env.sim
        .faults(json!({ "vendor": "numrot", "script": ["503"] }))
        .await;
    let id = Uuid::new_v4().to_string();
    let message = json!({ "call_id": id, "vendor": "numrot", "method": "POST",
        "path": "/api/facturas", "body": { "a": 1 } });
    let (reply, got, sent) = env
        .rpc("vendor.call", &message, &id, WAIT)
        .await
        .unwrap_or_else(|| panic!("no reply; logs:\n{}", env.worker_log()));
    assert_eq!(got, Some(sent));
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(reply["attempts"], 2, "the reply is the retry's: {reply}");
    env.teardown().await;
}

fn numrot_call(body: serde_json::Value) -> (String, serde_json::Value) {
    let id = Uuid::new_v4().to_string();
    let message = json!({ "call_id": id, "vendor": "numrot", "method": "POST",
        "path": "/api/facturas", "body": body });
    (id, message)
}

/// Publishes `message` and waits for its event; panics with the worker's log when none comes.
async fn event_of(env: &mut TestEnv, id: &str, message: &serde_json::Value) -> serde_json::Value {
    env.publish_to("vendor.call", message, id).await;
    let events = env.events(1, Duration::from_secs(20)).await;
    assert_eq!(events.len(), 1, "no event; logs:\n{}", env.worker_log());
    assert_eq!(events[0].body["call_id"], id);
    events[0].body.clone()
}

/// Hole 1: a vendor answer PostgreSQL refuses to store (a NUL character, which `jsonb` rejects) is
/// recorded once, and the vendor is not called again when the lease lapses.
#[tokio::test]
async fn hole_1_a_poison_vendor_answer_is_recorded_and_the_vendor_called_once() {
    let mut env = TestEnv::builder()
        .worker("vendor-call")
        .env("PASARELA_CLAIM_LEASE", "1s")
        .start()
        .await;
    let (id, message) = numrot_call(json!({ "note": "a\u{0}b" }));
    let event = event_of(&mut env, &id, &message).await;
    assert_eq!(event["status"], "ok", "{event}");
    // A sentinel after it: by its event, every lease of the first has lapsed three times over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (sentinel, message) = numrot_call(json!({ "n": 1 }));
    event_of(&mut env, &sentinel, &message).await;
    assert_eq!(env.sim.calls("numrot", "call").await, 2, "one call each");
    let stored = env
        .query(
            "SELECT result::text FROM work_items WHERE state = 'done' ORDER BY created_at LIMIT 1",
        )
        .await;
    let stored: String = stored[0].get(0);
    assert!(stored.contains("a\u{FFFD}b"), "{stored}");
    env.teardown().await;
}

/// Hole 1: an outcome whose domain row PostgreSQL refuses (`text` rejects NUL) settles as a dead
/// letter that says why, instead of being redelivered and attempted forever.
#[tokio::test]
async fn hole_1_an_unrecordable_outcome_is_dead_lettered_once_not_retried() {
    let mut env = TestEnv::builder()
        .worker("vendor-call")
        .env("PASARELA_CLAIM_LEASE", "1s")
        .start()
        .await;
    let id = Uuid::new_v4().to_string();
    let message = json!({ "call_id": id, "vendor": "twi\u{0}lio", "method": "GET", "path": "/x" });
    let event = event_of(&mut env, &id, &message).await;
    assert_eq!(event["status"], "rejected", "{event}");
    let dead = env
        .dead_letters_of("vendor.call", 1, Duration::from_secs(10))
        .await;
    assert_eq!(dead.len(), 1);
    let rows = env
        .query("SELECT reason, (SELECT count(*) FROM work_items WHERE state = 'done') FROM dead_letters")
        .await;
    assert_eq!(rows.len(), 1, "one dead letter");
    let reason: String = rows[0].get(0);
    assert!(reason.contains("could not be recorded"), "{reason}");
    assert_eq!(rows[0].get::<_, i64>(1), 1);
    env.teardown().await;
}

/// Hole 1: a call that outlasts the claim's lease keeps its claim, so a duplicate of the message
/// waits for it instead of calling the vendor a second time.
#[tokio::test]
async fn hole_1_a_call_longer_than_the_lease_is_not_taken_over() {
    let mut env = TestEnv::builder()
        .worker("vendor-call")
        .worker("vendor-call")
        .env("PASARELA_CLAIM_LEASE", "1s")
        .start()
        .await;
    env.sim
        .faults(json!({ "vendor": "numrot", "latency_ms": 3000 }))
        .await;
    let (id, message) = numrot_call(json!({ "a": 1 }));
    env.publish_to("vendor.call", &message, &id).await;
    env.publish_to("vendor.call", &message, &id).await;
    let events = env.events(2, WAIT).await;
    assert_eq!(events.len(), 2, "logs:\n{}", env.worker_log());
    assert_eq!(env.sim.calls("numrot", "call").await, 1, "one vendor call");
    let dup = env
        .query("SELECT coalesce(sum(possible_duplicates), 0)::int8 FROM work_items")
        .await;
    assert_eq!(dup[0].get::<_, i64>(0), 0);
    env.teardown().await;
}
