//! OTP as a whole, end to end against real RabbitMQ and PostgreSQL with the worker processes and the
//! vendor simulator: send through either vendor, read the code from the simulator's inbox, verify it
//! over RPC, and the rules around it (expiry, max tries, failover, the fraud guard, no code kept).

use std::time::Duration;

use pasarela_e2e::otp::{WAIT, aldeamo_send, danaconnect_send, send, state_of, verify, wrong};
use pasarela_e2e::{TestEnv, mobile_for};
use serde_json::json;
use uuid::Uuid;

/// The workers of a test that sends codes and verifies them.
const SEND_AND_VERIFY: &[&str] = &["otp-send", "otp-verify"];

/// The worker of a test that only sends.
const SEND: &[&str] = &["otp-send"];

/// Starts an environment with `workers` (one process each), with extra worker settings.
async fn start(workers: &[&str], extra_env: &[(&str, &str)]) -> TestEnv {
    let mut options = TestEnv::builder().env("PASARELA_OTP_SWEEP_INTERVAL", "1s");
    for w in workers {
        options = options.worker(w);
    }
    for (k, v) in extra_env {
        options = options.env(k, v);
    }
    options.start().await
}

#[tokio::test]
async fn danaconnect_send_then_wrong_right_and_again() {
    let mut env = start(SEND_AND_VERIFY, &[]).await;
    let id = Uuid::new_v4();
    let sent = send(&mut env, &danaconnect_send(id, "numeric", 6, 300)).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["provider"], "danaconnect");
    let code = env.sim.latest_code(&mobile_for(id)).await;
    let id = id.to_string();

    let r = verify(&mut env, &id, &wrong(&code)).await;
    assert_eq!(r["outcome"], "incorrect", "{r}");
    assert_eq!(state_of(&env, &id).await, "validated_failed");
    let r = verify(&mut env, &id, &code).await;
    assert_eq!(r["outcome"], "verified", "{r}");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["provider"], "danaconnect");
    assert_eq!(state_of(&env, &id).await, "validated_ok");
    let r = verify(&mut env, &id, &code).await;
    assert_eq!(r["outcome"], "already_used", "{r}");
    let row = &env
        .query(&format!(
            "SELECT validated_at IS NOT NULL, verify_attempts FROM otp_requests WHERE request_id = '{id}'"
        ))
        .await[0];
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i32>(1), 2, "the third verify was not counted");
    assert_eq!(env.sim.calls("danaconnect", "verify").await, 2);
    env.teardown().await;
}

#[tokio::test]
async fn aldeamo_send_then_wrong_right_and_again() {
    let mut env = start(SEND_AND_VERIFY, &[]).await;
    let id = Uuid::new_v4();
    let sent = send(&mut env, &aldeamo_send(id, "cfg-sms", "sms")).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["provider"], "aldeamo");
    assert!(sent["vendor_request_id"].is_string());
    let requests = env.sim.get("requests?vendor=aldeamo&op=otp").await;
    let body = &requests[0]["body"];
    assert_eq!(body["configId"], "cfg-sms");
    let otp_id = body["otpId"].as_str().unwrap();
    assert_eq!(otp_id.len(), 20, "an otpId derived from the request id");
    assert_eq!(body["mobile"], mobile_for(id).as_str());

    let code = env.sim.latest_code(&mobile_for(id)).await;
    let id = id.to_string();
    let r = verify(&mut env, &id, &wrong(&code)).await;
    assert_eq!(r["outcome"], "incorrect", "{r}");
    let r = verify(&mut env, &id, &code).await;
    assert_eq!(r["outcome"], "verified", "{r}");
    assert_eq!(r["provider"], "aldeamo");
    let r = verify(&mut env, &id, &code).await;
    assert_eq!(r["outcome"], "already_used", "{r}");
    let validated = env.sim.get("requests?vendor=aldeamo&op=validateOtp").await;
    assert_eq!(validated.as_array().unwrap().len(), 2);
    assert_eq!(validated[0]["body"]["otpId"], otp_id);
    env.teardown().await;
}

#[tokio::test]
async fn expiry_max_attempts_and_unknown_requests() {
    let mut env = start(SEND_AND_VERIFY, &[]).await;
    // Expired: a one-second code verified after it ran out; and one never verified is swept.
    let late = Uuid::new_v4();
    let swept = Uuid::new_v4();
    send(&mut env, &danaconnect_send(late, "numeric", 6, 1)).await;
    send(&mut env, &danaconnect_send(swept, "numeric", 6, 1)).await;
    let code = env.sim.latest_code(&mobile_for(late)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = verify(&mut env, &late.to_string(), &code).await;
    assert_eq!(r["outcome"], "expired", "{r}");
    assert_eq!(state_of(&env, &late.to_string()).await, "expired");
    let deadline = std::time::Instant::now() + WAIT;
    while state_of(&env, &swept.to_string()).await != "expired" {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not mark the never-verified code expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // max_tries 3: three wrong codes are incorrect, the fourth verification is refused without a
    // vendor call, even with the right code.
    let id = Uuid::new_v4();
    send(&mut env, &danaconnect_send(id, "numeric", 6, 300)).await;
    let code = env.sim.latest_code(&mobile_for(id)).await;
    let before = env.sim.calls("danaconnect", "verify").await;
    for _ in 0..3 {
        let r = verify(&mut env, &id.to_string(), &wrong(&code)).await;
        assert_eq!(r["outcome"], "incorrect", "{r}");
    }
    let r = verify(&mut env, &id.to_string(), &code).await;
    assert_eq!(r["outcome"], "max_attempts", "{r}");
    assert_eq!(env.sim.calls("danaconnect", "verify").await, before + 3);

    // Unknown request.
    let r = verify(&mut env, &Uuid::new_v4().to_string(), "123456").await;
    assert_eq!(r["outcome"], "unknown_request", "{r}");
    env.teardown().await;
}

#[tokio::test]
async fn aldeamo_rejections_make_no_vendor_call() {
    let mut env = start(SEND, &[]).await;
    let mut long_id = aldeamo_send(Uuid::new_v4(), "cfg-sms", "sms");
    long_id["aldeamo"]["otp_id"] = json!("a".repeat(21));
    let e = send(&mut env, &long_id).await;
    assert_eq!(e["status"], "rejected", "{e}");
    assert_eq!(e["error"]["kind"], "rejected");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aldeamo.otp_id")
    );

    let mut no_mobile = aldeamo_send(Uuid::new_v4(), "cfg-sms", "sms");
    no_mobile["destination"] = json!({ "email": "ana@example.com" });
    let e = send(&mut env, &no_mobile).await;
    assert_eq!(e["status"], "rejected", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("destination.mobile")
    );
    assert_eq!(env.sim.calls("aldeamo", "otp").await, 0);
    env.teardown().await;
}

#[tokio::test]
async fn failover_sends_through_aldeamo_when_danaconnect_is_in_maintenance() {
    let mut env = start(SEND_AND_VERIFY, &[("PASARELA_OTP_BREAKER_FAILURES", "2")]).await;
    env.sim
        .faults(json!({ "vendor": "danaconnect", "script": vec!["05"; 50] }))
        .await;
    let mut events = Vec::new();
    for _ in 0..4 {
        let id = Uuid::new_v4();
        let mut body = danaconnect_send(id, "numeric", 6, 300);
        body["provider"] = json!("auto");
        body["aldeamo"] = json!({ "config_id": "cfg-sms" });
        events.push(send(&mut env, &body).await);
    }
    for e in &events {
        assert_eq!(e["status"], "sent", "{e}");
        assert_eq!(e["provider"], "aldeamo", "{e}");
        assert_eq!(e["requested_provider"], "auto");
        assert_eq!(e["attempts"], 1, "failover happens inside the attempt");
    }
    assert_eq!(
        events[0]["providers_tried"],
        json!(["danaconnect", "aldeamo"])
    );
    // After two failures the circuit is open: later sends skip DANAConnect entirely.
    assert_eq!(events[3]["providers_tried"], json!(["aldeamo"]));
    assert_eq!(env.sim.calls("danaconnect", "send").await, 2);
    assert_eq!(env.sim.calls("aldeamo", "otp").await, 4);

    // Verify goes to the provider that sent.
    let id = events[3]["request_id"].as_str().unwrap().to_string();
    let code = env.sim.latest_code(&mobile_for(id.parse().unwrap())).await;
    let r = verify(&mut env, &id, &code).await;
    assert_eq!(r["outcome"], "verified", "{r}");
    assert_eq!(r["provider"], "aldeamo");
    assert_eq!(env.sim.calls("danaconnect", "verify").await, 0);
    env.teardown().await;
}

#[tokio::test]
async fn the_fraud_guard_allows_exactly_the_limit_across_two_workers() {
    let mut env = start(SEND, &[]).await;
    // One destination, default limit 5 per 10 minutes: the sixth is refused without a vendor call.
    let mobile = "+573009990001";
    let body = |id: Uuid| {
        let mut b = danaconnect_send(id, "numeric", 6, 300);
        b["destination"]["mobile"] = json!(mobile);
        b
    };
    for i in 0..6 {
        let e = send(&mut env, &body(Uuid::new_v4())).await;
        if i < 5 {
            assert_eq!(e["status"], "sent", "send {i}: {e}");
        } else {
            assert_eq!(e["status"], "rejected", "{e}");
            assert_eq!(e["error"]["kind"], "rate_limited");
            assert!(
                e["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("limit.destination")
            );
        }
    }
    assert_eq!(env.sim.calls("danaconnect", "send").await, 5);

    // Two worker processes racing on another destination still allow exactly five.
    env.add_worker("otp-send").await;
    let mobile2 = "+573009990002";
    let ids: Vec<Uuid> = (0..16).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        let mut b = body(*id);
        b["destination"]["mobile"] = json!(mobile2);
        env.publish_to("otp.send", &b, &id.to_string()).await;
    }
    let events = env.events(16, WAIT).await;
    assert_eq!(events.len(), 16);
    let sent = events.iter().filter(|e| e.body["status"] == "sent").count();
    let limited = events
        .iter()
        .filter(|e| e.body["error"]["kind"] == "rate_limited")
        .count();
    assert_eq!((sent, limited), (5, 11));
    assert_eq!(env.sim.calls("danaconnect", "send").await, 10);
    let rows = env
        .query("SELECT count(*) FROM otp_send_admissions WHERE destination = '+573009990002'")
        .await;
    assert_eq!(rows[0].get::<_, i64>(0), 5);
    env.teardown().await;
}

#[tokio::test]
async fn no_code_is_kept_in_the_database_or_the_logs() {
    let mut env = start(SEND_AND_VERIFY, &[]).await;
    // Long alphanumeric codes: no chance of meeting one by accident in a dump.
    let dana = Uuid::new_v4();
    send(&mut env, &danaconnect_send(dana, "alphanumeric", 12, 300)).await;
    let dana_code = env.sim.latest_code(&mobile_for(dana)).await;
    let ald = Uuid::new_v4();
    let e = send(&mut env, &aldeamo_send(ald, "cfg-email", "email")).await;
    assert_eq!(e["status"], "sent", "{e}");
    let email = format!("u{}@example.com", &ald.simple().to_string()[..10]);
    let ald_code = env.sim.latest_code(&email).await;
    assert_eq!(ald_code.len(), 8);

    for (id, code) in [(dana, &dana_code), (ald, &ald_code)] {
        let r = verify(&mut env, &id.to_string(), &wrong(code)).await;
        assert_eq!(r["outcome"], "incorrect");
        let r = verify(&mut env, &id.to_string(), code).await;
        assert_eq!(r["outcome"], "verified");
    }
    // A malformed verification (a number where the code goes) is dead-lettered without its code.
    let bad =
        json!({ "verification_id": Uuid::new_v4(), "request_id": dana, "code": 98765432101i64 });
    env.publish_to("otp.verify", &bad, &Uuid::new_v4().to_string())
        .await;
    let dead = env.dead_letters_of("otp.verify", 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert!(!String::from_utf8_lossy(&dead[0].body).contains("98765432101"));

    let dump = tokio::process::Command::new("pg_dump")
        .args(["--data-only", &env.database_url])
        .output()
        .await
        .expect("pg_dump");
    assert!(dump.status.success(), "pg_dump failed");
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains(&dana.to_string()),
        "the dump holds the requests"
    );
    let logs = env.worker_log();
    for code in [dana_code.as_str(), ald_code.as_str(), "98765432101"] {
        assert!(!dump.contains(code), "a code is in the database dump");
        assert!(!logs.contains(code), "a code is in the worker logs");
    }
    // Wrong codes too.
    for code in [wrong(&dana_code), wrong(&ald_code)] {
        assert!(!dump.contains(&code) && !logs.contains(&code));
    }
    env.teardown().await;
}

#[tokio::test]
async fn the_cli_sends_and_verifies() {
    let env = start(SEND_AND_VERIFY, &[]).await;
    let id = Uuid::new_v4();
    let mobile = mobile_for(id);
    let (ok, out) = env
        .cli(&[
            "otp",
            "send",
            "--tenant",
            "acme",
            "--provider",
            "aldeamo",
            "--config-id",
            "cfg-sms",
            "--channel",
            "sms",
            "--mobile",
            &mobile,
            "--request-id",
            &id.to_string(),
            "--wait",
        ])
        .await;
    assert!(ok, "{out}");
    assert!(out.contains("\"status\": \"sent\""), "{out}");
    let code = env.sim.latest_code(&mobile).await;
    let (ok, out) = env
        .cli(&["otp", "verify", &id.to_string(), &wrong(&code)])
        .await;
    assert!(!ok, "a wrong code exits non-zero");
    assert!(out.contains("\"outcome\": \"incorrect\""), "{out}");
    let (ok, out) = env.cli(&["otp", "verify", &id.to_string(), &code]).await;
    assert!(ok, "{out}");
    assert!(out.contains("\"outcome\": \"verified\""), "{out}");
    env.teardown().await;
}

#[tokio::test]
async fn the_tenant_limit_and_the_country_allow_list_refuse_without_a_vendor_call() {
    let mut env = start(
        SEND,
        &[
            ("PASARELA_OTP_TENANT_LIMIT", "3"),
            ("PASARELA_OTP_TENANT_WINDOW", "1h"),
            ("PASARELA_OTP_ALLOWED_PREFIXES", "+57,+52"),
        ],
    )
    .await;
    // A mobile outside the allowed prefixes is refused before anything is counted.
    let mut abroad = danaconnect_send(Uuid::new_v4(), "numeric", 6, 300);
    abroad["destination"]["mobile"] = json!("+15550000001");
    let e = send(&mut env, &abroad).await;
    assert_eq!(e["status"], "rejected", "{e}");
    assert_eq!(e["error"]["kind"], "rejected");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("limit.country")
    );
    // Three sends to three destinations fit the tenant's window; the fourth does not.
    for i in 0..4 {
        let e = send(
            &mut env,
            &danaconnect_send(Uuid::new_v4(), "numeric", 6, 300),
        )
        .await;
        if i < 3 {
            assert_eq!(e["status"], "sent", "send {i}: {e}");
        } else {
            assert_eq!(e["error"]["kind"], "rate_limited", "{e}");
            assert!(
                e["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("limit.tenant")
            );
        }
    }
    assert_eq!(env.sim.calls("danaconnect", "send").await, 3);
    let refused = env
        .query("SELECT count(*) FROM otp_requests WHERE error_message LIKE 'limit.%'")
        .await;
    assert_eq!(refused[0].get::<_, i64>(0), 2);
    env.teardown().await;
}

#[tokio::test]
async fn a_reused_verification_id_is_refused_and_changes_nothing() {
    let mut env = start(SEND_AND_VERIFY, &[]).await;
    let id = Uuid::new_v4();
    send(&mut env, &danaconnect_send(id, "numeric", 6, 300)).await;
    let code = env.sim.latest_code(&mobile_for(id)).await;
    let verification_id = Uuid::new_v4().to_string();
    let body = |code: &str| json!({ "verification_id": verification_id, "request_id": id.to_string(), "code": code });
    let (first, _, _) = env
        .rpc("otp.verify", &body(&wrong(&code)), &verification_id, WAIT)
        .await
        .expect("first reply");
    assert_eq!(first["outcome"], "incorrect");
    // The same verification_id under new message ids: refused, not counted, no vendor call.
    for _ in 0..3 {
        let (again, _, _) = env
            .rpc(
                "otp.verify",
                &body(&code),
                &Uuid::new_v4().to_string(),
                WAIT,
            )
            .await
            .expect("reply");
        assert_eq!(again["status"], "rejected", "{again}");
        assert_eq!(again["error"]["kind"], "rejected");
    }
    assert_eq!(env.sim.calls("danaconnect", "verify").await, 1);
    let row = &env
        .query(&format!(
            "SELECT v.outcome, r.verify_attempts, r.state FROM otp_verifications v
             JOIN otp_requests r USING (request_id) WHERE v.verification_id = '{verification_id}'"
        ))
        .await[0];
    assert_eq!(row.get::<_, String>(0), "incorrect");
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(row.get::<_, String>(2), "validated_failed");
    env.teardown().await;
}

#[tokio::test]
async fn a_later_providers_refusal_does_not_end_a_send_the_first_may_still_serve() {
    // Aldeamo refuses pasarela's credentials; DANAConnect is in maintenance once, then well.
    let mut env = start(SEND, &[("ALDEAMO_PASSWORD", "not-the-password")]).await;
    env.sim
        .faults(json!({ "vendor": "danaconnect", "script": ["05"] }))
        .await;
    let id = Uuid::new_v4();
    let mut body = danaconnect_send(id, "numeric", 6, 300);
    body["provider"] = json!("auto");
    body["aldeamo"] = json!({ "config_id": "cfg-sms" });
    let e = send(&mut env, &body).await;
    assert_eq!(e["status"], "sent", "{e}");
    assert_eq!(e["provider"], "danaconnect");
    assert_eq!(e["attempts"], 2, "retried, not failed on Aldeamo's 401");
    assert_eq!(env.sim.calls("aldeamo", "otp").await, 1);
    assert!(
        env.worker_log()
            .contains("vendor refused pasarela's credentials"),
        "the credentials refusal is logged as an alert"
    );
    env.teardown().await;
}

/// Issue 12, hole 8: a vendor that does not answer usably is asked once, never again in process (a
/// second question could count a right code twice), and the caller gets `vendor_unavailable`.
#[tokio::test]
async fn otp_verify_asks_the_vendor_once() {
    let mut env = start(SEND_AND_VERIFY, &[]).await;
    let id = Uuid::new_v4();
    let sent = send(&mut env, &danaconnect_send(id, "numeric", 6, 300)).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let code = env.sim.latest_code(&mobile_for(id)).await;
    let before = env.sim.calls("danaconnect", "verify").await;
    env.sim
        .faults(json!({ "vendor": "danaconnect", "outage": true }))
        .await;
    let r = verify(&mut env, &id.to_string(), &code).await;
    assert_eq!(r["outcome"], "vendor_unavailable", "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "vendor", "{r}");
    assert!(
        !r.to_string().contains(&code),
        "the code is never echoed: {r}"
    );
    assert_eq!(
        env.sim.calls("danaconnect", "verify").await,
        before + 1,
        "asked exactly once"
    );
    // The vendor back: the same code still verifies, since the first question never reached it whole.
    env.sim.clear_faults().await;
    let r = verify(&mut env, &id.to_string(), &code).await;
    assert_eq!(r["outcome"], "verified", "{r}");
    env.teardown().await;
}
