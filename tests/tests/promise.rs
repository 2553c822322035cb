//! The promise, hole by hole: each test is named after a way work could be lost or done twice, and
//! runs it against the real broker and database (docs/RELIABILITY.md lists them).

use std::time::Duration;

use lapin::options::{
    BasicGetOptions, BasicNackOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use pasarela_e2e::{TestEnv, qualify};
use serde_json::json;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

/// Hole 3: an RPC whose first attempt fails goes through a retry tier; the retry's reply still
/// reaches the caller's `reply_to` with its `correlation_id`.
#[tokio::test]
async fn hole_3_an_rpc_reply_survives_a_retry_tier() {
    let env = TestEnv::builder().worker("vendor-call").start().await;
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
    env.sim
        .post("numrot/settings", &json!({ "nul_in_answers": true }))
        .await;
    let (id, message) = numrot_call(json!({ "a": 1 }));
    let event = event_of(&mut env, &id, &message).await;
    assert_eq!(event["status"], "ok", "{event}");
    assert_eq!(
        event["response"]["note"], "a\u{0}b",
        "the event carries the answer as it came"
    );
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

/// Hole 1: an outcome the database refuses for good (here a constraint the table gained, as a DBA or a
/// migration might add) settles as a dead letter that says why, its event still published, instead of
/// being redelivered and calling the vendor again each time its lease lapses.
#[tokio::test]
async fn hole_1_an_unrecordable_outcome_is_dead_lettered_once_not_retried() {
    let mut env = TestEnv::builder()
        .worker("vendor-call")
        .env("PASARELA_CLAIM_LEASE", "1s")
        .start()
        .await;
    env.query("ALTER TABLE vendor_calls ADD CONSTRAINT no_poison CHECK (path <> '/api/poison')")
        .await;
    let id = Uuid::new_v4().to_string();
    let message = json!({ "call_id": id, "vendor": "numrot", "method": "POST",
        "path": "/api/poison", "body": { "a": 1 } });
    let event = event_of(&mut env, &id, &message).await;
    assert_eq!(event["status"], "ok", "{event}");
    let dead = env
        .dead_letters_of("vendor.call", 1, Duration::from_secs(10))
        .await;
    assert_eq!(dead.len(), 1);
    // A sentinel after three lapsed leases: by its event, any repeat of the first would have happened.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (sentinel, message) = numrot_call(json!({ "n": 1 }));
    event_of(&mut env, &sentinel, &message).await;
    assert_eq!(env.sim.calls("numrot", "call").await, 2, "one call each");
    let rows = env
        .query("SELECT reason, (SELECT count(*) FROM work_items WHERE state = 'done') FROM dead_letters")
        .await;
    assert_eq!(rows.len(), 1, "one dead letter");
    let reason: String = rows[0].get(0);
    assert!(reason.contains("could not be recorded"), "{reason}");
    assert!(reason.contains("23514"), "{reason}");
    assert_eq!(rows[0].get::<_, i64>(1), 2);
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

/// Hole 2: the broker closes the publishing channel (404: the events exchange was deleted) while an
/// outcome is waiting to be published. The worker declares the topology again, reopens the channel,
/// and the event goes out; before, every publish answered "not connected" for good.
#[tokio::test]
async fn hole_2_a_publishing_channel_the_broker_closed_is_reopened() {
    let mut env = TestEnv::builder().worker("vendor-call").start().await;
    let events_exchange = qualify(&env.namespace, "pasarela.events");
    env.channel
        .exchange_delete(
            events_exchange.as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .expect("delete the events exchange");
    let (id, message) = numrot_call(json!({ "a": 1 }));
    env.publish_to("vendor.call", &message, &id).await;
    // In flight when the fault struck: the outcome is committed and its event not published, so the
    // delivery is held unacked (it stands for the event, which has no outbox row).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let done: i64 = env
            .query("SELECT count(*) FROM work_items WHERE state = 'done'")
            .await[0]
            .get(0);
        if done > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no outcome committed; logs:\n{}",
            env.worker_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The harness binds its event queue again (the deletion removed the binding).
    env.reconnect_broker().await;
    let events = env.events(1, Duration::from_secs(30)).await;
    assert_eq!(events.len(), 1, "no event; logs:\n{}", env.worker_log());
    assert_eq!(events[0].body["call_id"], id.as_str());
    assert!(
        env.worker_log()
            .contains("declaring the topology and reopening it"),
        "{}",
        env.worker_log()
    );
    env.teardown().await;
}

/// Hole 6: work published for a queue whose worker is not deployed yet is queued: every worker
/// declares the whole topology.
#[tokio::test]
async fn hole_6_work_for_a_worker_not_deployed_yet_is_queued_not_dropped() {
    let env = TestEnv::builder()
        .worker("vendor-call")
        .env("PASARELA_DECLARE_TOPOLOGY", "all")
        .start()
        .await;
    let request = Uuid::new_v4();
    env.send_otp(request).await;
    assert_eq!(env.queue_depth("otp.send").await, Some(1));
    assert!(env.queue_depth("otp.send.dead").await.is_some());
    env.teardown().await;
}

/// Hole 6: a retry copy for a tier that an operator deleted is returned by the broker, not dropped:
/// the worker declares the tier again and the retry goes through.
#[tokio::test]
async fn hole_6_a_retry_copy_for_a_deleted_tier_is_not_lost() {
    let mut env = TestEnv::builder().worker("vendor-call").start().await;
    let tier = qualify(&env.namespace, "vendor.call.retry.100ms");
    env.channel
        .queue_delete(tier.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete the tier");
    env.sim
        .faults(json!({ "vendor": "numrot", "script": ["503"] }))
        .await;
    let (id, message) = numrot_call(json!({ "a": 1 }));
    env.publish_to("vendor.call", &message, &id).await;
    let events = env.events(1, WAIT).await;
    assert_eq!(events.len(), 1, "no event; logs:\n{}", env.worker_log());
    assert_eq!(events[0].body["status"], "ok", "{}", events[0].body);
    assert_eq!(events[0].body["attempts"], 2);
    env.teardown().await;
}

/// Hole 6: a `.dead` queue has no delivery limit to reach (RabbitMQ 4 gives quorum queues 20 and drops
/// past it): a dead letter nacked again and again stays for an operator.
#[tokio::test]
async fn hole_6_a_dead_letter_nacked_again_and_again_is_kept() {
    let env = TestEnv::builder().worker("vendor-call").start().await;
    let id = Uuid::new_v4().to_string();
    env.publish_raw_to(
        "vendor.call",
        b"not json",
        pasarela_e2e::json_props().with_message_id(id.as_str().into()),
    )
    .await;
    let dead = qualify(&env.namespace, "vendor.call.dead");
    let deadline = std::time::Instant::now() + WAIT;
    while env.queue_depth("vendor.call.dead").await != Some(1) {
        assert!(std::time::Instant::now() < deadline, "not dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..25 {
        let got = env
            .channel
            .basic_get(dead.as_str().into(), BasicGetOptions::default())
            .await
            .expect("get")
            .expect("the dead letter is still there");
        got.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .expect("nack");
    }
    // A nack has no answer: the last one may still be on its way back when the depth is first read.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while env.queue_depth("vendor.call.dead").await != Some(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead letter was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The queue carries its own limit, so a broker default never applies: declaring it without one
    // is refused as inequivalent.
    let channel = env.fresh_channel().await;
    let mut plain = FieldTable::default();
    plain.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let refused = channel
        .queue_declare(dead.as_str().into(), durable, plain)
        .await;
    let error = refused
        .expect_err("the .dead queue declares its own delivery limit")
        .to_string();
    assert!(error.contains("x-delivery-limit"), "{error}");
    env.teardown().await;
}

/// Writes an outbox row for `message_id` under `queue`, as a holder that committed an outcome and has
/// not had the broker's confirm yet leaves it: an event on the events exchange with `body`.
async fn leave_in_outbox(env: &TestEnv, queue: &str, message_id: &str, body: &serde_json::Value) {
    let id = Uuid::now_v7();
    let properties = json!({
        "id": id, "exchange": qualify(&env.namespace, "pasarela.events"),
        "routing_key": "vendor.call.completed", "message_id": id.to_string(),
        "correlation_id": null, "content_type": "application/json", "expiration_ms": null,
        "headers": {},
    });
    let bytes = serde_json::to_vec(body).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    env.query(&format!(
        "INSERT INTO outbox (id, queue, message_id, properties, body)
         VALUES ('{id}', '{queue}', '{message_id}', '{properties}', '\\x{hex}')"
    ))
    .await;
}

async fn outbox_rows(env: &TestEnv) -> i64 {
    env.query("SELECT count(*) FROM outbox").await[0].get(0)
}

/// Hole 5: a duplicate of a finished message is acked only once what its outcome caused is confirmed.
/// An outcome whose event is still waiting in the outbox (its holder has no confirm yet) answers the
/// duplicate after that event is out, not before.
#[tokio::test]
async fn hole_5_a_duplicate_is_answered_only_after_the_outcome_it_repeats_is_confirmed() {
    let mut env = TestEnv::builder().worker("vendor-call").start().await;
    let (id, message) = numrot_call(json!({ "a": 1 }));
    event_of(&mut env, &id, &message).await;
    // The state a holder of a retry or .dead copy, or a publisher with no delivery, leaves between its
    // commit and its confirm.
    leave_in_outbox(
        &env,
        "vendor.call",
        &id,
        &json!({ "call_id": id, "from": "outbox" }),
    )
    .await;
    env.publish_to("vendor.call", &message, &id).await;
    let events = env.events(2, WAIT).await;
    assert_eq!(events.len(), 2, "logs:\n{}", env.worker_log());
    assert_eq!(
        events[0].body["from"], "outbox",
        "answered before the outbox was confirmed: {events:?}"
    );
    assert_eq!(events[1].body["status"], "ok");
    assert_eq!(outbox_rows(&env).await, 0);
    env.teardown().await;
}

/// Hole 4: SIGTERM sends what the outbox holds through the connection, which stays open until then,
/// and commits the last clean-ups: nothing is left to be published twice after a restart, and the
/// worker is gone within its grace period.
#[tokio::test]
async fn hole_4_sigterm_flushes_the_outbox_before_closing_and_leaves_nothing_behind() {
    let mut env = TestEnv::builder()
        .worker("vendor-call")
        .env("PASARELA_SHUTDOWN_GRACE", "10s")
        .start()
        .await;
    let calls: Vec<_> = (0..200).map(|i| numrot_call(json!({ "i": i }))).collect();
    for (id, message) in &calls {
        env.publish_to("vendor.call", message, id).await;
    }
    let events = env.events(calls.len(), WAIT).await;
    assert_eq!(events.len(), calls.len());
    // A row a failed publish left behind, too young for the relay.
    let left = Uuid::new_v4().to_string();
    leave_in_outbox(
        &env,
        "vendor.call",
        &left,
        &json!({ "call_id": left, "from": "outbox" }),
    )
    .await;
    let started = std::time::Instant::now();
    let status = env.signal_worker("TERM").await;
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(10),
        "took {took:?}, past the grace period"
    );
    assert_eq!(outbox_rows(&env).await, 0, "logs:\n{}", env.worker_log());
    let flushed = env.events(1, Duration::from_secs(10)).await;
    assert_eq!(
        flushed.len(),
        1,
        "the row was not flushed; logs:\n{}",
        env.worker_log()
    );
    assert_eq!(flushed[0].body["call_id"], left.as_str());
    env.teardown().await;
}

/// Hole 9: finished work rows are pruned once past `PASARELA_WORK_RETENTION`, through an index that
/// keeps the pruning cheap; rows still in use stay.
#[tokio::test]
async fn hole_9_finished_work_rows_are_pruned_past_their_retention() {
    let mut env = TestEnv::builder()
        .worker("vendor-call")
        .env("PASARELA_WORK_RETENTION", "2s")
        .env("PASARELA_WORK_PRUNE_INTERVAL", "500ms")
        .start()
        .await;
    for i in 0..20 {
        let (id, message) = numrot_call(json!({ "i": i }));
        event_of(&mut env, &id, &message).await;
    }
    let index: i64 = env
        .query("SELECT count(*) FROM pg_indexes WHERE indexname = 'work_items_age'")
        .await[0]
        .get(0);
    assert_eq!(index, 1);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let rows: i64 = env.query("SELECT count(*) FROM work_items").await[0].get(0);
        if rows == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{rows} rows left; logs:\n{}",
            env.worker_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(env.worker_log().contains("pruned finished work rows"));
    env.teardown().await;
}
