//! The `pasarela` command against a running worker: status, and a dead letter replayed once the vendor
//! is back.

use std::time::Duration;

use pasarela_e2e::TestEnv;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_message_dead_lettered_in_an_outage_is_replayed_and_sent() {
    let mut env = TestEnv::start().await;
    env.sim
        .faults(json!({ "vendor": "danaconnect", "outage": true }))
        .await;
    let id = Uuid::new_v4();
    env.send_otp(id).await;
    let ev = env.events(1, Duration::from_secs(30)).await;
    assert_eq!(
        ev[0].body["status"],
        "failed",
        "worker log:\n{}",
        env.worker_log()
    );

    let (ok, out) = env.cli(&["dlq", "list", "otp.send"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&id.to_string()) && out.contains("exhausted"),
        "{out}"
    );

    let (ok, out) = env.cli(&["status", &id.to_string()]).await;
    assert!(ok, "{out}");
    assert!(out.contains("failed"), "{out}");

    env.sim.clear_faults().await;
    let (ok, out) = env.cli(&["dlq", "replay", "otp.send"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("replayed 1"), "{out}");

    let ev = env.events(1, Duration::from_secs(30)).await;
    assert_eq!(ev.len(), 1, "worker log:\n{}", env.worker_log());
    assert_eq!(ev[0].body["request_id"], id.to_string());
    assert_eq!(ev[0].body["status"], "sent");
    assert_eq!(ev[0].body["attempts"], 1, "a replay starts over");

    let (ok, out) = env.cli(&["status", &id.to_string(), "--json"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("\"sent\""), "{out}");
    let rows = env
        .query("SELECT count(*) FROM dead_letters WHERE replayed_at IS NOT NULL")
        .await;
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    env.teardown().await;
}
