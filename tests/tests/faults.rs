//! Faults of the services themselves, each during a batch: the worker stays up and nothing is lost.
//! These stop the shared broker or database, so `make test` runs this binary alone, one test at a time.

use std::collections::HashSet;
use std::time::Duration;

use pasarela_e2e::{TestEnv, services};
use serde_json::json;
use uuid::Uuid;

const BATCH: usize = 500;

async fn publish_batch(env: &TestEnv) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..BATCH).map(|_| Uuid::new_v4()).collect();
    env.publish_many(&ids).await;
    ids
}

/// Reads events until every id has a result; returns how many events came.
async fn drain(env: &mut TestEnv, ids: &[Uuid], mut seen: HashSet<String>) -> usize {
    let mut events = 0;
    while seen.len() < ids.len() {
        let batch = env
            .events(ids.len() - seen.len(), Duration::from_secs(90))
            .await;
        assert!(
            !batch.is_empty(),
            "stalled at {} of {}; worker log:\n{}",
            seen.len(),
            ids.len(),
            env.worker_log()
        );
        events += batch.len();
        for e in batch {
            seen.insert(e.body["request_id"].as_str().unwrap().to_string());
        }
    }
    let expected: HashSet<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(seen, expected);
    events
}

struct Tally {
    terminal: i64,
    possible_duplicates: i64,
    dead: i64,
}

async fn tally(env: &TestEnv) -> Tally {
    let row = &env
        .query(
            "SELECT (SELECT count(*) FROM otp_requests WHERE status = 'sent'),
                    (SELECT coalesce(sum(possible_duplicates), 0)::int8 FROM work_items),
                    (SELECT count(*) FROM dead_letters)",
        )
        .await[0];
    Tally {
        terminal: row.get(0),
        possible_duplicates: row.get(1),
        dead: row.get(2),
    }
}

/// Which service is restarted mid-batch.
enum Fault {
    Broker,
    Database,
}

/// Publishes a batch, restarts a service once results flow, and checks every message ended in exactly
/// one terminal row with the same worker process still up.
async fn ride_out(fault: Fault) {
    let mut env = TestEnv::start().await;
    // Slow enough that the batch takes seconds: the fault strikes while most of it is in flight.
    env.sim
        .faults(json!({ "vendor": "danaconnect", "latency_ms": 1000 }))
        .await;
    let ids = publish_batch(&env).await;
    let mut seen = HashSet::new();
    for e in env.events(50, Duration::from_secs(60)).await {
        seen.insert(e.body["request_id"].as_str().unwrap().to_string());
    }
    let terminal_before = tally(&env).await.terminal;
    assert!(
        terminal_before < BATCH as i64,
        "the batch finished before the fault ({terminal_before} terminal)"
    );
    let name = match fault {
        Fault::Broker => {
            services()
                .await
                .restart_broker(Duration::from_secs(2))
                .await;
            env.reconnect_broker().await;
            "broker"
        }
        Fault::Database => {
            services().await.restart_database().await;
            "database"
        }
    };
    let events = drain(&mut env, &ids, seen.clone()).await + seen.len();
    env.reconnect_db().await;

    let t = tally(&env).await;
    let calls = env.sim.calls("danaconnect", "send").await as i64;
    println!(
        "{name} restart: published {BATCH}, in flight at the fault {}, terminal rows {}, events {events}, vendor calls {calls}, possible duplicates {}, dead {}",
        BATCH as i64 - terminal_before,
        t.terminal,
        t.possible_duplicates,
        t.dead
    );
    assert_eq!(t.terminal, BATCH as i64, "one terminal row per message");
    assert_eq!(t.dead, 0);
    assert!(
        calls <= BATCH as i64 + t.possible_duplicates,
        "vendor calls {calls}"
    );
    assert!(env.worker_running(), "the worker stayed up");
    env.teardown().await;
}

#[tokio::test]
async fn the_worker_rides_out_a_broker_restart_without_losing_a_message() {
    ride_out(Fault::Broker).await;
}

#[tokio::test]
async fn the_worker_rides_out_a_database_restart_without_losing_a_message() {
    ride_out(Fault::Database).await;
}
