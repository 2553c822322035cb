//! Graceful shutdown: SIGTERM in the middle of a batch finishes what is in flight, returns the rest to
//! the queue, and a restarted worker completes it: every message ends in exactly one terminal row, none
//! lost, none sent twice.

use std::collections::HashSet;
use std::time::Duration;

use pasarela_e2e::TestEnv;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn sigterm_during_a_batch_of_1000_loses_nothing_and_sends_nothing_twice() {
    let mut env = TestEnv::start().await;
    // A little vendor latency keeps the batch in flight when the signal comes.
    env.sim
        .faults(json!({ "vendor": "danaconnect", "latency_ms": 100 }))
        .await;
    let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
    env.publish_many(&ids).await;
    let mut seen: HashSet<String> = HashSet::new();
    for e in env.events(100, Duration::from_secs(60)).await {
        seen.insert(e.body["request_id"].as_str().unwrap().to_string());
    }
    assert!(seen.len() >= 100, "worker log:\n{}", env.worker_log());

    let status = env.signal_worker("TERM").await;
    assert!(
        status.success(),
        "the worker exits cleanly on SIGTERM: {status}"
    );
    let done_at_stop: i64 = env
        .query("SELECT count(*) FROM work_items WHERE state = 'done'")
        .await[0]
        .get(0);
    let in_flight_at_stop: i64 = env
        .query("SELECT count(*) FROM work_items WHERE state <> 'done'")
        .await[0]
        .get(0);
    assert_eq!(
        in_flight_at_stop, 0,
        "in-flight work was finished before exit"
    );
    assert!(
        done_at_stop < 1000,
        "the signal came mid-batch ({done_at_stop} done)"
    );

    env.start_worker().await;
    let mut events = 0;
    while seen.len() < ids.len() {
        let batch = env
            .events(ids.len() - seen.len(), Duration::from_secs(60))
            .await;
        assert!(!batch.is_empty(), "stalled at {} of 1000", seen.len());
        events += batch.len();
        for e in batch {
            assert_eq!(e.body["status"], "sent");
            seen.insert(e.body["request_id"].as_str().unwrap().to_string());
        }
    }
    let expected: HashSet<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(seen, expected);

    let sent: i64 = env
        .query("SELECT count(*) FROM otp_requests WHERE status = 'sent'")
        .await[0]
        .get(0);
    let done: i64 = env
        .query("SELECT count(*) FROM work_items WHERE state = 'done' AND status = 'sent'")
        .await[0]
        .get(0);
    let duplicates: i64 = env
        .query("SELECT coalesce(sum(possible_duplicates), 0)::int8 FROM work_items")
        .await[0]
        .get(0);
    let dead: i64 = env.query("SELECT count(*) FROM dead_letters").await[0].get(0);
    assert_eq!((sent, done, duplicates, dead), (1000, 1000, 0, 0));
    assert_eq!(
        env.sim.calls("danaconnect", "send").await,
        1000,
        "none sent twice"
    );
    println!(
        "published 1000, done at SIGTERM {done_at_stop}, terminal rows {sent}, events {}, vendor calls 1000, duplicates 0, dead 0",
        events + 100
    );
    env.teardown().await;
}
