//! The operator console in a real browser (tests/browser/console.mjs drives Debian's Chromium with
//! playwright-core) against the console, RabbitMQ and PostgreSQL: two OTP sends die in an outage and
//! a client webhook fails; the browser finds a send and its attempts, refuses a wrong token and a
//! cross-site POST, replays one letter, discards the other with a reason and redelivers the webhook.
//! This test then checks what the broker and the database say happened: the replay ran once, the
//! discard kept its reason, the client endpoint got the webhook.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pasarela_e2e::signing::{Endpoint, count, doc_sign, pdf, signing_env, wait_events};
use pasarela_e2e::{free_port, wait_until_listening};
use serde_json::json;
use uuid::Uuid;

const TOKEN: &str = "console-browser-token-0123456789";

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The dead_letters id of message `id`.
async fn letter_of(env: &pasarela_e2e::TestEnv, id: Uuid) -> i64 {
    env.query(&format!(
        "SELECT id FROM dead_letters WHERE message_id = '{id}'"
    ))
    .await[0]
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_replays_discards_and_redelivers_in_a_browser() {
    let (endpoint, port) = Endpoint::start().await;
    // Two webhook attempts: the flaky endpoint refuses both, and the webhook is given up on.
    // A short breaker cooldown, so that the replay finds the provider's circuit closed again.
    let mut env = signing_env(&[
        ("PASARELA_WEBHOOK_SCHEDULE", "0s,1s"),
        ("PASARELA_OTP_BREAKER_COOLDOWN", "1s"),
    ])
    .await;
    env.add_worker("otp-send").await;

    // Two sends die in an outage, after every attempt.
    env.sim
        .faults(json!({ "vendor": "danaconnect", "outage": true }))
        .await;
    let replayed = Uuid::new_v4();
    let discarded = Uuid::new_v4();
    env.send_otp(replayed).await;
    env.send_otp(discarded).await;
    let failed = wait_events(&mut env, "otp.send.completed", 2, Duration::from_secs(60)).await;
    assert!(failed.iter().all(|e| e["status"] == "failed"), "{failed:?}");
    env.sim.clear_faults().await;

    // A document whose client webhook fails twice.
    let document = Uuid::now_v7();
    let url = format!("http://127.0.0.1:{port}/flaky/{document}");
    env.publish_to(
        "doc.sign",
        &doc_sign(document, &pdf("console"), Some(url)),
        &document.to_string(),
    )
    .await;
    wait_events(&mut env, "doc.webhook.failed", 1, Duration::from_secs(60)).await;
    assert_eq!(endpoint.received("/flaky/").len(), 2);

    let console_port = free_port();
    let console_log = std::env::temp_dir().join(format!("{}-console.log", env.namespace));
    let base = format!("http://127.0.0.1:{console_port}");
    let mut console = env
        .cli_command(&["console", "--listen", &format!("127.0.0.1:{console_port}")])
        .await
        .env("PASARELA_CONSOLE_TOKEN", TOKEN)
        .env("PASARELA_CONSOLE_ACTIONS", "true")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&console_log).expect("the console's log"))
        .kill_on_drop(true)
        .spawn()
        .expect("starting pasarela console");
    wait_until_listening(&base).await;

    let screenshots = browser_dir().join("screenshots");
    let out = tokio::process::Command::new("node")
        .arg("console.mjs")
        .current_dir(browser_dir())
        .env("CONSOLE_URL", &base)
        .env("CONSOLE_TOKEN", TOKEN)
        .env("REPLAY_REQUEST", replayed.to_string())
        .env("DISCARD_REQUEST", discarded.to_string())
        .env("REPLAY_LETTER", letter_of(&env, replayed).await.to_string())
        .env(
            "DISCARD_LETTER",
            letter_of(&env, discarded).await.to_string(),
        )
        .env("DOCUMENT_ID", document.to_string())
        .env("SCREENSHOTS", &screenshots)
        .output()
        .await
        .expect("running node tests/browser/console.mjs (make browser-deps installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("browser: {stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stderr}\n{stdout}\nconsole log:\n{}\nworker log:\n{}",
        std::fs::read_to_string(&console_log).unwrap_or_default(),
        env.worker_log()
    );

    // The replay ran once: one more result for the send, and it was sent.
    let mut results = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        for e in env.events(1, Duration::from_millis(200)).await {
            if e.routing_key == "otp.send.completed" && e.body["request_id"] == replayed.to_string()
            {
                results.push(e.body);
            }
        }
    }
    assert_eq!(
        results.len(),
        1,
        "one result for the replayed send: {results:?}"
    );
    assert_eq!(results[0]["status"], "sent");
    assert_eq!(results[0]["attempts"], 1, "a replay starts over");
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(*) FROM work_items WHERE message_id = '{replayed}' \
                 AND state = 'done' AND status = 'sent'"
            )
        )
        .await,
        1
    );

    // The discard kept who and why; the forged one left no trace.
    let rows = env
        .query(&format!(
            "SELECT discard_reason FROM dead_letters WHERE message_id = '{discarded}'"
        ))
        .await;
    assert_eq!(
        rows[0].get::<_, Option<String>>(0).as_deref(),
        Some("customer cancelled the order")
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM operator_actions WHERE action = 'discard' AND operator = 'ana' \
             AND reason = 'customer cancelled the order'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM operator_actions WHERE reason = 'forged'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM operator_actions WHERE action = 'replay'"
        )
        .await,
        2,
        "the replay and the second one that found nothing; the resent form is not recorded again"
    );

    // The redelivered webhook reached the client, with the same webhook-id.
    let got = endpoint.received("/flaky/");
    assert_eq!(got.len(), 3, "two refused attempts and the redelivery");
    assert_eq!(got[0].headers["webhook-id"], got[2].headers["webhook-id"]);

    // Every page has its screenshot.
    for page in [
        "unauthorized",
        "home",
        "search-attempts",
        "dead-letters",
        "cross-site-refused",
        "dead-letter",
        "dead-letter-replayed",
        "search-replayed-done",
        "dead-letter-discarded",
        "document-webhook-failed",
        "webhooks",
        "document-webhook-redelivered",
        "queues",
        "otp-report",
        "actions",
        "search-tenant",
    ] {
        let path = screenshots.join(format!("{page}.png"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "{} is missing or empty", path.display());
    }

    let _ = console.kill().await;
    env.teardown().await;
}
