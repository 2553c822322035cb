//! `vendor.call` end to end: producer message → vendor-call worker processes → NumRot / GestoPago
//! simulators → PostgreSQL → result event, against real RabbitMQ and PostgreSQL.

use std::time::Duration;

use pasarela_e2e::TestEnv;
use pasarela_e2e::vendor_call::{call, run};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// Starts an environment with `workers` vendor-call processes and no other worker.
async fn start(workers: u32, extra_env: &[(&str, &str)]) -> TestEnv {
    let mut options = TestEnv::builder();
    for _ in 0..workers {
        options = options.worker("vendor-call");
    }
    for (k, v) in extra_env {
        options = options.env(k, v);
    }
    options.start().await
}

#[tokio::test]
async fn gestopago_from_two_workers_fetches_one_token_and_one_more_after_invalidation() {
    let mut env = start(2, &[]).await;
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let method = if i % 2 == 0 { "GET" } else { "POST" };
            call(
                "gestopago",
                method,
                "/api/ventas",
                json!({ "n": i, "ref": "ñ+/=" }),
            )
        })
        .collect();
    let events = run(&mut env, &calls).await;
    for (id, message) in &calls {
        let e = &events[id];
        assert_eq!(e["status"], "ok", "{e}");
        assert_eq!(e["http_status"], 200);
        assert_eq!(
            e["response"]["payload"], message["body"],
            "signed carried the payload"
        );
        assert_eq!(e["response"]["method"], message["method"]);
    }
    assert_eq!(
        env.sim.calls("gestopago", "token").await,
        1,
        "one token for 100 calls"
    );

    env.sim.post("gestopago/invalidate", &json!({})).await;
    let more: Vec<_> = (0..20)
        .map(|_| call("gestopago", "POST", "/api/ventas", json!({})))
        .collect();
    let events = run(&mut env, &more).await;
    let failed: Vec<&Value> = events.values().filter(|e| e["status"] != "ok").collect();
    assert!(failed.is_empty(), "no failed call: {failed:?}");
    assert_eq!(env.sim.calls("gestopago", "token").await, 2, "one refetch");
    let rows = env
        .query("SELECT count(*), count(*) FILTER (WHERE status = 'ok') FROM vendor_calls")
        .await;
    assert_eq!(
        (rows[0].get::<_, i64>(0), rows[0].get::<_, i64>(1)),
        (120, 120)
    );

    // The operator's way in: `pasarela vendor call ... --wait` prints the answer and exits 0 on ok.
    let (ok, out) = env
        .cli(&[
            "vendor",
            "call",
            "gestopago",
            "POST",
            "/api/ventas",
            "--body",
            r#"{"cli":true}"#,
            "--wait",
        ])
        .await;
    assert!(ok, "{out}");
    assert!(out.contains(r#""cli": true"#), "{out}");
    env.teardown().await;
}

#[tokio::test]
async fn numrot_past_its_lifetime_refetches_once_and_bad_paths_never_leave() {
    let mut env = start(1, &[]).await;
    // A bare token (no lifetime given) that the vendor ends after one second.
    env.sim
        .post(
            "numrot/settings",
            &json!({ "token_lifetime_s": 1, "bare_token": true }),
        )
        .await;
    // The first as an RPC: the reply carries the caller's correlation id and the vendor's answer.
    let (id, message) = call("numrot", "POST", "/api/facturas", json!({ "a": 1 }));
    let (reply, got, sent) = env
        .rpc("vendor.call", &message, &id, WAIT)
        .await
        .unwrap_or_else(|| panic!("no reply; logs:\n{}", env.worker_log()));
    assert_eq!(got, Some(sent));
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(reply["response"]["body"], json!({ "a": 1 }));
    let events = env.events(1, WAIT).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].routing_key, "vendor.call.completed");
    assert_eq!(events[0].body["call_id"], id.as_str());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = run(
        &mut env,
        &[call("numrot", "GET", "/api/estado", Value::Null)],
    )
    .await;
    let e = second.values().next().unwrap();
    assert_eq!(e["status"], "ok", "{e}");
    assert_eq!(e["attempts"], 1, "401 → refetch → ok within the attempt");
    assert_eq!(env.sim.calls("numrot", "token").await, 2);

    let before = env.sim.calls("numrot", "call").await;
    let bad = [
        call("numrot", "GET", "//evil.example/x", Value::Null),
        call("gestopago", "GET", "http://evil.example/x", json!({})),
        call("numrot", "DELETE", "/api/x", Value::Null),
        call("twilio", "GET", "/x", Value::Null),
    ];
    let events = run(&mut env, &bad).await;
    for e in events.values() {
        assert_eq!(e["status"], "rejected", "{e}");
        assert_eq!(e["error"]["kind"], "rejected");
    }
    assert_eq!(env.sim.calls("numrot", "call").await, before);
    env.teardown().await;
}

#[tokio::test]
async fn wrong_numrot_credentials_fail_as_auth_without_a_retry_storm_and_no_secret_is_logged() {
    let mut env = start(1, &[("NUMROT_PASSWORD", "wr0ng-numrot-pass")]).await;
    let calls: Vec<_> = (0..3)
        .map(|_| call("numrot", "GET", "/api/estado", Value::Null))
        .collect();
    let events = run(&mut env, &calls).await;
    for e in events.values() {
        assert_eq!(e["status"], "failed", "{e}");
        assert_eq!(e["error"]["kind"], "auth");
        let attempts = e["attempts"].as_u64().unwrap_or_default();
        assert!((1..=3).contains(&attempts), "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not registered")
        );
    }
    // NUMROT_TOKEN_500_BUDGET (3) token calls in all, however many messages: the 500s are read as a
    // passing failure until the budget is spent, then as "not registered", with no further token call.
    assert_eq!(env.sim.calls("numrot", "token").await, 3);
    // A GestoPago call too, so its key, IV, password and token were all in use.
    let ok = run(
        &mut env,
        &[call("gestopago", "POST", "/api/x", json!({ "k": "v" }))],
    )
    .await;
    assert!(ok.values().all(|e| e["status"] == "ok"));
    let logs = env.worker_log();
    for secret in [
        "wr0ng-numrot-pass",
        "demo-password",
        "pasarela-gestopago-demo-key-32by",
        "pasarela-demo-iv",
        "eyJ",
    ] {
        assert!(!logs.contains(secret), "{secret} is in the worker logs");
    }
    let dump = tokio::process::Command::new("pg_dump")
        .args(["--data-only", &env.database_url])
        .output()
        .await
        .expect("pg_dump");
    assert!(dump.status.success(), "pg_dump failed");
    let dump = String::from_utf8_lossy(&dump.stdout);
    // A GestoPago token is stored (NumRot's login was refused, so none for it), and not as text.
    let stored = env
        .query("SELECT vendor FROM vendor_tokens ORDER BY vendor")
        .await;
    let vendors: Vec<String> = stored.iter().map(|r| r.get(0)).collect();
    assert_eq!(vendors, ["gestopago"]);
    assert!(!dump.contains("eyJ"), "tokens are stored encrypted");
    env.teardown().await;
}
