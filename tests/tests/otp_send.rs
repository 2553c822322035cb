//! `otp.send` end to end: producer message → worker process → DANAConnect simulator → PostgreSQL →
//! result event, against real RabbitMQ and PostgreSQL.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::ShortString;
use pasarela_e2e::{TestEnv, otp_send};
use serde_json::json;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn happy_path_sends_the_documented_fields_and_reports_the_vendor_request_id() {
    let mut env = TestEnv::start().await;
    let request_id = Uuid::new_v4();
    // An RPC caller: reply_to + correlation_id.
    let (reply_body, got, sent) = env
        .rpc(
            "otp.send",
            &otp_send(request_id),
            &request_id.to_string(),
            WAIT,
        )
        .await
        .unwrap_or_else(|| panic!("no reply; worker log:\n{}", env.worker_log()));

    let events = env.events(1, WAIT).await;
    assert_eq!(
        events.len(),
        1,
        "no result event; worker log:\n{}",
        env.worker_log()
    );
    let event = &events[0];
    assert_eq!(event.routing_key, "otp.send.completed");
    assert_eq!(event.body["request_id"], request_id.to_string());
    assert_eq!(event.body["status"], "sent");
    assert_eq!(event.body["attempts"], 1);
    assert_eq!(event.body["vendor_code"], "01");
    let vendor_request_id = event.body["vendor_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!vendor_request_id.is_empty());
    assert!(event.body["completed_at"].as_str().is_some());

    // The reply carries the same body and the caller's correlation id.
    assert_eq!(got, Some(sent));
    assert_eq!(reply_body["request_id"], request_id.to_string());
    assert_eq!(reply_body["status"], "sent");

    // The vendor got exactly the documented fields, with Basic auth user@company.
    let requests = env.sim.get("requests?vendor=danaconnect&op=send").await;
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["login"], "demo@pasarela");
    let body = requests[0]["body"].as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "idConversation",
            "length",
            "maximumTries",
            "secondsExpiration",
            "type",
            "values"
        ]
    );
    assert_eq!(body["idConversation"], 824541);
    assert_eq!(body["type"], 1);
    assert_eq!(body["length"], 6);
    assert_eq!(body["secondsExpiration"], 300);
    assert_eq!(body["maximumTries"], 5);

    // The code reached the simulated phone; pasarela stored none of it.
    let to = body["values"][0]["value"].as_str().unwrap();
    let inbox = env
        .sim
        .get(&format!("inbox?to={}", to.replace('+', "%2B")))
        .await;
    let code = inbox[0]["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 6);

    let rows = env
        .query("SELECT status, attempts, vendor_request_id, vendor_code FROM otp_requests")
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "sent");
    assert_eq!(rows[0].get::<_, i32>(1), 1);
    assert_eq!(
        rows[0].get::<_, Option<String>>(2).unwrap(),
        vendor_request_id
    );
    let dump = env
        .query("SELECT row_to_json(o)::text FROM otp_requests o UNION ALL SELECT row_to_json(w)::text FROM work_items w UNION ALL SELECT row_to_json(x)::text FROM outbox x")
        .await;
    for row in dump {
        let text: String = row.get(0);
        assert!(!text.contains(&code), "the OTP code was stored: {text}");
    }
    env.teardown().await;
}

#[tokio::test]
async fn the_same_message_id_twice_calls_the_vendor_once_and_answers_both() {
    let mut env = TestEnv::start().await;
    let request_id = Uuid::new_v4();
    let body = otp_send(request_id);
    let id = request_id.to_string();
    env.publish(&body, Some(&id)).await;
    env.publish(&body, Some(&id)).await;

    let events = env.events(2, WAIT).await;
    assert_eq!(events.len(), 2, "worker log:\n{}", env.worker_log());
    for e in &events {
        assert_eq!(e.body["request_id"], id);
        assert_eq!(e.body["status"], "sent");
    }
    assert_eq!(
        events[0].body["vendor_request_id"],
        events[1].body["vendor_request_id"]
    );
    // Nothing more comes, and the vendor saw one call.
    assert!(env.events(1, Duration::from_secs(2)).await.is_empty());
    assert_eq!(env.sim.calls("danaconnect", "send").await, 1);
    let rows = env.query("SELECT count(*) FROM work_items").await;
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    env.teardown().await;
}

#[tokio::test]
async fn vendor_refusals_and_local_range_checks_are_rejected_without_retry() {
    let mut env = TestEnv::start().await;
    // Codes 07, 08, 09, 10 forced in order on the next four calls.
    env.sim
        .faults(json!({ "vendor": "danaconnect", "script": ["07", "08", "09", "10"] }))
        .await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = Uuid::new_v4();
        // One at a time, so each call meets the next scripted code.
        env.send_otp(id).await;
        let ev = env.events(1, WAIT).await;
        assert_eq!(ev.len(), 1, "worker log:\n{}", env.worker_log());
        ids.push((id, ev[0].body.clone()));
    }
    for ((_, event), code) in ids.iter().zip(["07", "08", "09", "10"]) {
        assert_eq!(event["status"], "rejected", "{event}");
        assert_eq!(event["vendor_code"], code);
        assert_eq!(event["attempts"], 1);
        assert_eq!(event["error"]["kind"], "rejected");
        assert!(event["error"]["message"].as_str().unwrap().contains(code));
    }
    assert_eq!(env.sim.calls("danaconnect", "send").await, 4, "no retry");

    // A local range check: never reaches the vendor, and names the field and the range.
    let id = Uuid::new_v4();
    let mut body = otp_send(id);
    body["code"]["length"] = json!(13);
    env.publish(&body, Some(&id.to_string())).await;
    let ev = env.events(1, WAIT).await;
    assert_eq!(ev[0].body["status"], "rejected");
    let message = ev[0].body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("code.length") && message.contains("3 to 12"),
        "{message}"
    );
    assert_eq!(env.sim.calls("danaconnect", "send").await, 4);
    let rows = env
        .query("SELECT count(*) FROM otp_requests WHERE status = 'rejected' AND attempts = 1")
        .await;
    assert_eq!(rows[0].get::<_, i64>(0), 5);
    env.teardown().await;
}

#[tokio::test]
async fn maintenance_twice_then_success_is_sent_on_the_third_attempt() {
    let mut env = TestEnv::start().await;
    env.sim
        .faults(json!({ "vendor": "danaconnect", "script": ["05", "05"] }))
        .await;
    let id = Uuid::new_v4();
    env.send_otp(id).await;
    let ev = env.events(1, WAIT).await;
    assert_eq!(ev.len(), 1, "worker log:\n{}", env.worker_log());
    assert_eq!(ev[0].body["status"], "sent");
    assert_eq!(ev[0].body["attempts"], 3);
    assert_eq!(env.sim.calls("danaconnect", "send").await, 3);
    let rows = env.query("SELECT attempts, state FROM work_items").await;
    assert_eq!(rows[0].get::<_, i32>(0), 3);
    assert_eq!(rows[0].get::<_, String>(1), "done");
    env.teardown().await;
}

#[tokio::test]
async fn an_outage_longer_than_the_retry_budget_ends_in_dead_and_a_failed_event() {
    let mut env = TestEnv::start().await;
    env.sim
        .faults(json!({ "vendor": "danaconnect", "outage": true }))
        .await;
    let id = Uuid::new_v4();
    env.send_otp(id).await;
    let ev = env.events(1, WAIT).await;
    assert_eq!(ev.len(), 1, "worker log:\n{}", env.worker_log());
    assert_eq!(ev[0].body["status"], "failed");
    assert_eq!(ev[0].body["attempts"], 4, "PASARELA_MAX_ATTEMPTS=4");
    assert_eq!(ev[0].body["error"]["kind"], "exhausted");
    assert_eq!(env.sim.calls("danaconnect", "send").await, 4);

    let dead = env.dead_letters(1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id.as_deref(), Some(id.to_string().as_str()));
    let reason = &dead[0].headers["x-pasarela-error"];
    assert!(reason.contains("exhausted after 4 attempts"), "{reason}");
    let rows = env
        .query("SELECT error_kind, attempts FROM dead_letters")
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "exhausted");
    assert_eq!(rows[0].get::<_, Option<i32>>(1), Some(4));
    env.teardown().await;
}

#[tokio::test]
async fn unreadable_messages_go_to_dead_with_the_reason_and_the_next_is_served() {
    let mut env = TestEnv::start().await;
    let json_props = || {
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(Uuid::new_v4().to_string()))
    };
    // Not JSON at all.
    env.publish_raw(b"{not json", json_props()).await;
    // JSON of the wrong types.
    let mut wrong = otp_send(Uuid::new_v4());
    wrong["code"]["length"] = json!("six");
    env.publish_raw(&serde_json::to_vec(&wrong).unwrap(), json_props())
        .await;
    // A good body without a message_id.
    let body = serde_json::to_vec(&otp_send(Uuid::new_v4())).unwrap();
    env.publish_raw(
        &body,
        BasicProperties::default().with_content_type("application/json".into()),
    )
    .await;

    let dead = env.dead_letters(3, WAIT).await;
    assert_eq!(dead.len(), 3, "worker log:\n{}", env.worker_log());
    let reasons: Vec<&str> = dead
        .iter()
        .map(|d| d.headers["x-pasarela-error"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("invalid otp.send message") && r.contains("key must be a string")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("invalid type")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("missing message_id")),
        "{reasons:?}"
    );
    let rows = env.query("SELECT count(*) FROM dead_letters").await;
    assert_eq!(rows[0].get::<_, i64>(0), 3);
    assert!(env.events(1, Duration::from_millis(500)).await.is_empty());

    // The same process serves the next good message.
    let id = Uuid::new_v4();
    env.send_otp(id).await;
    let ev = env.events(1, WAIT).await;
    assert_eq!(ev[0].body["status"], "sent");
    assert!(env.worker_running(), "the worker is still running");
    env.teardown().await;
}

/// A new database gets its first statistics from the worker, not a minute later from autovacuum:
/// until then the planner plans for empty tables, and the group statements read every row of a queue.
#[tokio::test]
async fn a_new_table_with_rows_is_analyzed_by_the_worker_within_seconds() {
    let env = TestEnv::start().await;
    // Autovacuum may not analyze it: only the worker can.
    env.query("ALTER TABLE work_items SET (autovacuum_enabled = off)")
        .await;
    env.query(
        "INSERT INTO work_items (queue, message_id, state, attempts, next_attempt)
         SELECT 'otp.send', gen_random_uuid(), 'done', 1, 2 FROM generate_series(1, 1500)",
    )
    .await;
    let started = std::time::Instant::now();
    let analyzed = loop {
        let rows = env
            .query(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables
                 WHERE relname = 'work_items'",
            )
            .await;
        let analyzed: bool = rows[0].get(0);
        if analyzed || started.elapsed() > WAIT {
            break analyzed;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "work_items analyzed by the worker after {:?}",
        started.elapsed()
    );
    assert!(
        analyzed,
        "work_items was not analyzed; logs:\n{}",
        env.worker_log()
    );
    assert!(
        env.worker_log()
            .contains("gathered the first statistics of new tables"),
        "{}",
        env.worker_log()
    );
    env.teardown().await;
}
