//! The readings of what the vendors' documents leave open, end to end: the simulator switched to each
//! plausible alternative, and the workers reading every one of them (docs/vendors/*.md, "readings we
//! chose").

use std::time::Duration;

use pasarela_e2e::otp::{aldeamo_send, send, verify, wrong};
use pasarela_e2e::vendor_call::{call, run};
use pasarela_e2e::{TestEnv, mobile_for};
use serde_json::json;
use uuid::Uuid;

/// The Aldeamo answer shapes a client can read, as the simulator names them.
const READABLE_SHAPES: [&str; 6] = [
    "status",
    "code",
    "spanish",
    "boolean",
    "success",
    "http_status",
];

async fn otp_env() -> TestEnv {
    TestEnv::builder()
        .worker("otp-send")
        .worker("otp-verify")
        .start()
        .await
}

/// Sends a code through `config_id` and returns its request id and the code delivered.
async fn aldeamo_code(env: &mut TestEnv, config_id: &str) -> (String, String) {
    let id = Uuid::new_v4();
    let sent = send(env, &aldeamo_send(id, config_id, "sms")).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    (id.to_string(), env.sim.latest_code(&mobile_for(id)).await)
}

/// Every answer shape the simulator can give is read to the same outcomes: wrong, right, right again,
/// a disabled code and an expired one.
#[tokio::test]
async fn aldeamo_validation_answers_in_every_readable_shape() {
    let mut env = otp_env().await;
    for config in [
        json!({ "config_id": "cfg-tight", "channel": "sms", "length": 6, "type": "numeric",
                "expiry_minutes": 5, "max_attempts": 1 }),
        json!({ "config_id": "cfg-brief", "channel": "sms", "length": 6, "type": "numeric",
                "expiry_minutes": 5, "expiry_seconds": 1 }),
    ] {
        assert_eq!(env.sim.post("aldeamo/configs", &config).await, 200);
    }
    for shape in READABLE_SHAPES {
        let settings = json!({ "validation_answer": shape });
        assert_eq!(env.sim.post("aldeamo/settings", &settings).await, 200);
        let (id, code) = aldeamo_code(&mut env, "cfg-sms").await;
        let (tight, tight_code) = aldeamo_code(&mut env, "cfg-tight").await;
        let (brief, brief_code) = aldeamo_code(&mut env, "cfg-brief").await;
        let mut outcomes = vec![];
        for (id, code) in [
            (&id, wrong(&code)),
            (&id, code.clone()),
            (&id, code.clone()),
            (&tight, wrong(&tight_code)),
            (&tight, tight_code.clone()),
        ] {
            let r = verify(&mut env, id, &code).await;
            outcomes.push(r["outcome"].as_str().unwrap_or_default().to_string());
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let r = verify(&mut env, &brief, &brief_code).await;
        outcomes.push(r["outcome"].as_str().unwrap_or_default().to_string());
        println!("aldeamo validation answer {shape}: {}", outcomes.join(", "));
        assert_eq!(
            outcomes,
            [
                "incorrect",
                "verified",
                "already_used",
                "incorrect",
                "max_attempts",
                "expired"
            ],
            "shape {shape}; logs:\n{}",
            env.worker_log()
        );
    }
    env.teardown().await;
}

/// An answer no reading fits ends the verification as `failed` (kind `vendor`) with the answer's shape
/// in the reply, the event, the table and the log, never a value; the vendor is asked once.
#[tokio::test]
async fn an_aldeamo_answer_nobody_can_read_is_a_vendor_failure_with_its_shape() {
    let mut env = otp_env().await;
    let settings = json!({ "validation_answer": "unknown" });
    assert_eq!(env.sim.post("aldeamo/settings", &settings).await, 200);
    let (id, code) = aldeamo_code(&mut env, "cfg-sms").await;
    let r = verify(&mut env, &id, &code).await;
    println!("unknown shape: {r}");
    assert_eq!(r["outcome"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "vendor", "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(r#"{"detalle": string, "resultado": number}"#),
        "{message}"
    );
    assert!(!message.contains("Validado"), "no value: {message}");
    assert!(!r.to_string().contains(&code));
    let row = &env
        .query(&format!(
            "SELECT outcome, error_kind, error_message FROM otp_verifications WHERE request_id = '{id}'"
        ))
        .await[0];
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), "vendor");
    assert_eq!(row.get::<_, String>(2), message);
    let log = env.worker_log();
    assert!(
        log.contains("the vendor's answer could not be read") && log.contains("resultado"),
        "{log}"
    );
    assert!(!log.contains(&code), "the code never reaches the log");
    assert_eq!(
        env.sim.calls("aldeamo", "validateOtp").await,
        1,
        "asked once"
    );
    env.teardown().await;
}

async fn vendor_call_env(extra: &[(&str, &str)]) -> TestEnv {
    let mut options = TestEnv::builder().worker("vendor-call");
    for (k, v) in extra {
        options = options.env(k, v);
    }
    options.start().await
}

/// GestoPago's payload in every transport the document allows, with the simulator taking only the one
/// its settings name: multipart + Base64 (the default), form-url-encoded + hex, and the token from a
/// separate authentication server.
#[tokio::test]
async fn gestopago_payloads_in_each_encoding_and_the_token_from_its_own_server() {
    for (payload, cipher, token_url) in [
        ("multipart", "base64", false),
        ("urlencoded", "hex", false),
        ("multipart", "hex", true),
    ] {
        let mut settings = vec![
            ("GESTOPAGO_PAYLOAD_ENCODING", payload.to_string()),
            ("GESTOPAGO_CIPHER_ENCODING", cipher.to_string()),
        ];
        if token_url {
            settings.push((
                "GESTOPAGO_TOKEN_URL",
                "{sim}/gestopago-auth/api/token".into(),
            ));
            settings.push(("GESTOPAGO_TOKEN_PATH", "/not-the-token-path".into()));
        }
        let extra: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut env = vendor_call_env(&extra).await;
        let sim_settings = json!({ "payload_encoding": payload, "cipher_encoding": cipher });
        assert_eq!(env.sim.post("gestopago/settings", &sim_settings).await, 200);
        let calls = [
            call(
                "gestopago",
                "POST",
                "/api/ventas",
                json!({ "monto": 100.5, "ref": "ñ+/=" }),
            ),
            call("gestopago", "GET", "/api/saldo", json!({ "cuenta": 7 })),
        ];
        let events = run(&mut env, &calls).await;
        for (id, message) in &calls {
            let e = &events[id];
            assert_eq!(e["status"], "ok", "{payload}/{cipher}: {e}");
            assert_eq!(e["response"]["payload"], message["body"], "{e}");
        }
        let tokens = env.sim.get("requests?vendor=gestopago&op=token").await;
        let servers: Vec<&str> = tokens
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["body"]["server"].as_str().unwrap())
            .collect();
        let expected = if token_url { "auth" } else { "api" };
        assert_eq!(servers, [expected], "{payload}/{cipher}");
        println!(
            "gestopago {payload} + {cipher}{}: 2 calls ok, token from {expected}",
            if token_url {
                " + GESTOPAGO_TOKEN_URL"
            } else {
                ""
            }
        );
        env.teardown().await;
    }
}

/// A 500 from NumRot's token call is "user not registered" by the document, and what a failing server
/// sends: one 500 and then a token is a passing failure, so the call ends ok on its next attempt.
#[tokio::test]
async fn numrot_token_500_then_200_is_a_passing_failure() {
    let mut env = vendor_call_env(&[("PASARELA_RETRY_DELAYS", "200ms,400ms,800ms")]).await;
    env.sim
        .faults(json!({ "vendor": "numrot", "script": ["500"] }))
        .await;
    let first = call("numrot", "POST", "/api/facturas", json!({ "a": 1 }));
    let events = run(&mut env, std::slice::from_ref(&first)).await;
    let e = &events[&first.0];
    println!("numrot token 500 then 200: {e}");
    assert_eq!(e["status"], "ok", "{e}");
    assert_eq!(e["attempts"], 2, "{e}");
    assert_eq!(env.sim.calls("numrot", "token").await, 2);
    env.teardown().await;
}

/// Credentials NumRot does not know: 500 after 500 from the token call. The budget's three are read as
/// passing failures; then the document is believed: the call ends `auth` with an alert, and the next
/// message is refused without a token call while the circuit holds.
#[tokio::test]
async fn numrot_token_500s_in_a_row_are_auth_after_the_budget() {
    let mut env = vendor_call_env(&[
        ("PASARELA_RETRY_DELAYS", "200ms,400ms,800ms"),
        ("PASARELA_MAX_ATTEMPTS", "6"),
        ("NUMROT_PASSWORD", "not-registered"),
        ("NUMROT_TOKEN_500_BUDGET", "3"),
        ("NUMROT_TOKEN_500_COOLDOWN", "60s"),
    ])
    .await;
    for expected_token_calls in [3, 3] {
        let refused = call("numrot", "GET", "/api/estado", json!({}));
        let events = run(&mut env, std::slice::from_ref(&refused)).await;
        let e = &events[&refused.0];
        println!("numrot token 500 in a row: {e}");
        assert_eq!(e["status"], "failed", "{e}");
        assert_eq!(e["error"]["kind"], "auth", "{e}");
        let message = e["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("500 3 times in a row"), "{e}");
        assert!(!message.contains("not-registered"), "{e}");
        assert_eq!(
            env.sim.calls("numrot", "token").await,
            expected_token_calls,
            "three token calls, then none while the circuit holds"
        );
    }
    assert!(env.worker_log().contains("NumRot refuses the credentials"));
    assert_eq!(env.sim.calls("numrot", "call").await, 0);
    env.teardown().await;
}

/// The word before NumRot's token is a setting: with `none`, the simulator set to take the bare token
/// is answered; with the default `Bearer` it would refuse with 401.
#[tokio::test]
async fn numrot_auth_scheme_is_a_setting() {
    let mut env = vendor_call_env(&[("NUMROT_AUTH_SCHEME", "none")]).await;
    assert_eq!(
        env.sim
            .post("numrot/settings", &json!({ "auth_scheme": "none" }))
            .await,
        200
    );
    let ok = call("numrot", "GET", "/api/estado", json!({}));
    let events = run(&mut env, std::slice::from_ref(&ok)).await;
    assert_eq!(events[&ok.0]["status"], "ok", "{}", events[&ok.0]);
    assert_eq!(
        env.sim
            .post("numrot/settings", &json!({ "auth_scheme": "Bearer" }))
            .await,
        200
    );
    let refused = call("numrot", "GET", "/api/estado", json!({}));
    let events = run(&mut env, std::slice::from_ref(&refused)).await;
    let e = &events[&refused.0];
    assert_eq!(
        (e["status"].as_str(), e["http_status"].as_u64()),
        (Some("failed"), Some(401)),
        "{e}"
    );
    env.teardown().await;
}

/// `vendor.call` retries a 408, and waits out a `Retry-After` before asking again, through the one HTTP
/// verdict table; a path with a `..` segment is refused before any call.
#[tokio::test]
async fn vendor_call_honours_408_and_retry_after_and_refuses_dot_segments() {
    let mut env = vendor_call_env(&[
        ("PASARELA_RETRY_DELAYS", "100ms,1s,3s"),
        ("PASARELA_MAX_ATTEMPTS", "4"),
    ])
    .await;
    env.sim
        .faults(json!({ "vendor": "numrot", "script": ["200", "408"] }))
        .await;
    let timeout = call("numrot", "GET", "/api/estado", json!({}));
    let events = run(&mut env, std::slice::from_ref(&timeout)).await;
    let e = &events[&timeout.0];
    assert_eq!(
        (e["status"].as_str(), e["attempts"].as_u64()),
        (Some("ok"), Some(2)),
        "{e}"
    );

    // 429 with Retry-After: 2 on the first call only.
    env.sim
        .faults(json!({ "vendor": "numrot", "rate_limit_retry_after_s": 2 }))
        .await;
    let limited = call("numrot", "GET", "/api/estado", json!({}));
    env.publish_to("vendor.call", &limited.1, &limited.0).await;
    let asked = std::time::Instant::now();
    let before = env.sim.calls("numrot", "call").await;
    while env.sim.calls("numrot", "call").await == before {
        assert!(asked.elapsed() < Duration::from_secs(30), "never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.sim.clear_faults().await;
    let limited_at = std::time::Instant::now();
    let events = env.events(1, Duration::from_secs(30)).await;
    let waited = limited_at.elapsed();
    let e = &events[0].body;
    println!("429 Retry-After 2: {e}; asked again after {waited:?}");
    assert_eq!(
        (e["status"].as_str(), e["attempts"].as_u64()),
        (Some("ok"), Some(2)),
        "{e}"
    );
    assert!(
        waited >= Duration::from_millis(1900),
        "asked again after {waited:?}"
    );

    let calls_before = env.sim.calls("numrot", "call").await;
    let dotted = call("numrot", "GET", "/api/../admin", json!({}));
    let events = run(&mut env, std::slice::from_ref(&dotted)).await;
    let e = &events[&dotted.0];
    assert_eq!(e["status"], "rejected", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(".."),
        "{e}"
    );
    assert_eq!(env.sim.calls("numrot", "call").await, calls_before);
    env.teardown().await;
}

/// DANAConnect end to end: `parameters` reach the vendor, the answer's `conversationRequestId` and
/// `responseDescription` reach the event and the table, and codes 04 (retried), 06 (credentials) and
/// 15 (refused) each end the way the document's table says.
#[tokio::test]
async fn danaconnect_parameters_answer_details_and_codes_04_06_15() {
    use pasarela_e2e::otp::danaconnect_send;
    let mut env = TestEnv::builder()
        .worker("otp-send")
        .env("PASARELA_OTP_BREAKER_FAILURES", "100")
        .start()
        .await;
    let mut cases = vec![];
    for (script, status, code, description, attempts) in [
        (vec!["04"], "sent", "01", "Success", 2),
        (vec!["06"], "failed", "06", "Error: Invalid credentials", 1),
        (vec!["15"], "rejected", "15", "Incorrect Request", 1),
    ] {
        env.sim
            .faults(json!({ "vendor": "danaconnect", "script": script }))
            .await;
        let id = Uuid::new_v4();
        let mut body = danaconnect_send(id, "numeric", 6, 300);
        body["danaconnect"]["parameters"] = json!({ "campaign": "spring", "branch": "07" });
        let e = send(&mut env, &body).await;
        println!("danaconnect {script:?}: {e}");
        assert_eq!(e["status"], status, "{e}");
        assert_eq!(e["vendor_code"], code, "{e}");
        assert_eq!(e["vendor_description"], description, "{e}");
        assert_eq!(e["attempts"], attempts, "{e}");
        cases.push((id, e));
    }
    let (sent_id, sent) = &cases[0];
    let tracking = sent["vendor_tracking_id"].as_str().expect("a tracking id");
    assert!(Uuid::parse_str(tracking).is_ok(), "{sent}");
    let row = &env
        .query(&format!(
            "SELECT vendor_tracking_id, vendor_description FROM otp_requests WHERE request_id = '{sent_id}'"
        ))
        .await[0];
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(tracking));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("Success"));
    assert_eq!(cases[1].1["error"]["kind"], "auth", "{}", cases[1].1);
    let requests = env.sim.get("requests?vendor=danaconnect&op=send").await;
    for r in requests.as_array().unwrap() {
        assert_eq!(
            r["body"]["parameters"],
            json!({ "branch": "07", "campaign": "spring" }),
            "{r}"
        );
    }
    env.teardown().await;
}

/// Aldeamo's code lifetime belongs to its configuration: `expires_at` follows `ALDEAMO_CONFIG_EXPIRY`
/// unless the producer overrides it, and WhatsApp and voice statuses are read from their own fields
/// when Aldeamo sends them.
#[tokio::test]
async fn aldeamo_expiry_follows_the_configuration_and_phone_channels_read_their_own_status() {
    let mut env = TestEnv::builder()
        .worker("otp-send")
        .env("ALDEAMO_CONFIG_EXPIRY", "cfg-sms=2m,cfg-whatsapp=7m")
        .start()
        .await;
    let mut cases = vec![];
    for (config, channel, override_s, expected) in [
        ("cfg-sms", "sms", None, 120),
        ("cfg-sms", "sms", Some(60), 60),
        ("cfg-email", "email", None, 7200),
    ] {
        let id = Uuid::new_v4();
        let mut body = aldeamo_send(id, config, channel);
        body["code"]["expires_in_s"] = json!(override_s);
        let e = send(&mut env, &body).await;
        assert_eq!(e["status"], "sent", "{e}");
        let row = &env
            .query(&format!(
                "SELECT expires_in_s, extract(epoch FROM expires_at - generated_at)::int
                 FROM otp_requests WHERE request_id = '{id}'"
            ))
            .await[0];
        let got = (row.get::<_, i32>(0), row.get::<_, i32>(1));
        println!(
            "aldeamo {config} override {override_s:?}: expires_in_s, expires_at - generated_at = {got:?}"
        );
        assert_eq!(got, (expected, expected), "{config} {override_s:?}");
        cases.push(id);
    }

    assert_eq!(
        env.sim
            .post(
                "aldeamo/settings",
                &json!({ "channel_status_fields": true })
            )
            .await,
        200
    );
    for (config, channel) in [("cfg-whatsapp", "whatsapp"), ("cfg-voice", "voice")] {
        let id = Uuid::new_v4();
        let mut body = aldeamo_send(id, config, channel);
        body["code"]["expires_in_s"] = json!(null);
        let e = send(&mut env, &body).await;
        println!("aldeamo {channel} with its own status field: {e}");
        assert_eq!(e["status"], "sent", "{e}");
        assert_eq!(e["vendor_code"], "ok", "{e}");
        assert_eq!(e["attempts"], 1, "{e}");
    }
    let answers = env.sim.get("requests?vendor=aldeamo&op=otp").await;
    assert_eq!(
        answers.as_array().unwrap().len(),
        5,
        "one call each, no retry"
    );
    env.teardown().await;
}
