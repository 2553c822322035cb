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
