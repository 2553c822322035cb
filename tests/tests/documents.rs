//! Document signing end to end: `doc-sign`, `callback-ingress` and `doc-callback` as processes, the
//! signing simulator, real RabbitMQ and PostgreSQL, and a client endpoint that checks signatures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pasarela_e2e::signing::{Endpoint, count, doc_sign, pdf, signing_env, wait_events};
use pasarela_e2e::{TEST_WEBHOOK_SECRET, TestEnv};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn signed_through_the_vendor_webhook_and_delivered_signed_to_the_client() {
    let (endpoint, port) = Endpoint::start().await;
    let mut env = signing_env(&[]).await;
    let id = Uuid::now_v7();
    let original = pdf("one");
    env.publish_to(
        "doc.sign",
        &doc_sign(
            id,
            &original,
            Some(format!("http://127.0.0.1:{port}/ok/{id}")),
        ),
        &id.to_string(),
    )
    .await;

    let submitted = wait_events(&mut env, "doc.sign.submitted", 1, Duration::from_secs(30)).await;
    assert_eq!(submitted[0]["document_id"], id.to_string());
    let vendor_id = submitted[0]["vendor_document_id"]
        .as_str()
        .unwrap()
        .to_string();
    let signed = wait_events(&mut env, "doc.signed", 1, Duration::from_secs(30)).await;
    assert_eq!(signed[0]["status"], "signed");
    assert_eq!(signed[0]["vendor_document_id"], vendor_id);
    assert_eq!(
        signed[0]["assigned_active_directory_user"],
        "john.doe@company.com"
    );
    assert!(signed[0]["signing_date"].is_string());
    let delivered = wait_events(
        &mut env,
        "doc.webhook.delivered",
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(delivered[0]["http_status"], 200);

    // The vendor's webhook reached the ingress and was accepted; the signature came through it.
    let webhooks = env.sim.get("requests?vendor=signing&op=webhook").await;
    let statuses: Vec<i64> = webhooks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["body"]["http_status"].as_i64())
        .collect();
    assert_eq!(statuses, vec![202], "vendor webhooks: {webhooks}");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM work_items WHERE queue = 'doc.callback' AND status = 'signed'"
        )
        .await,
        1
    );

    // The client's webhook verifies with the Standard Webhooks reference verification.
    let got = endpoint.received("/ok/");
    assert_eq!(got.len(), 1);
    let verifier = standardwebhooks::Webhook::new(TEST_WEBHOOK_SECRET).unwrap();
    verifier
        .verify(&got[0].body, &got[0].headers)
        .expect("the signature verifies");
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "document.signed");
    assert_eq!(body["data"]["document_id"], id.to_string());
    assert_eq!(body["data"]["vendor_document_id"], vendor_id);
    assert_eq!(body["data"]["status"], "signed");
    let mut tampered = got[0].body.clone();
    tampered.push(b' ');
    assert!(verifier.verify(&tampered, &got[0].headers).is_err());

    // The signed PDF is stored beside the original, and differs from it.
    let files = env
        .query(&format!(
            "SELECT kind, content FROM document_files WHERE document_id = '{id}' ORDER BY kind"
        ))
        .await;
    assert_eq!(files.len(), 2);
    let stored_original: Vec<u8> = files[0].get(1);
    let stored_signed: Vec<u8> = files[1].get(1);
    assert_eq!(stored_original, original);
    assert!(stored_signed.starts_with(b"%PDF-"));
    assert_ne!(stored_signed, original);
    assert_eq!(
        count(
            &env,
            &format!("SELECT count(*) FROM webhook_deliveries WHERE document_id = '{id}'")
        )
        .await,
        1
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_vendor_webhook_is_made_good_by_the_poll() {
    let mut env = signing_env(&[]).await;
    assert_eq!(
        env.sim
            .post("signing/settings", &json!({"lose_webhooks": true}))
            .await,
        200
    );
    let id = Uuid::now_v7();
    env.publish_to(
        "doc.sign",
        &doc_sign(id, &pdf("lost"), None),
        &id.to_string(),
    )
    .await;
    let signed = wait_events(&mut env, "doc.signed", 1, Duration::from_secs(30)).await;
    assert_eq!(signed[0]["document_id"], id.to_string());
    assert!(env.sim.calls("signing", "webhook_lost").await >= 1);
    assert_eq!(env.sim.calls("signing", "webhook").await, 0);
    let rows = env
        .query(&format!(
            "SELECT state, polls FROM documents WHERE document_id = '{id}'"
        ))
        .await;
    assert_eq!(rows[0].get::<_, String>(0), "signed");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_documents_take_one_grant_and_a_token_expiry_one_refresh() {
    let mut env = signing_env(&[]).await;
    let ids: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    for (i, id) in ids.iter().enumerate() {
        env.publish_to(
            "doc.sign",
            &doc_sign(*id, &pdf(&format!("n{i}")), None),
            &id.to_string(),
        )
        .await;
    }
    wait_events(&mut env, "doc.signed", 50, Duration::from_secs(120)).await;
    assert_eq!(env.sim.calls("signing", "password_grant").await, 1);
    assert_eq!(env.sim.calls("signing", "refresh_grant").await, 0);

    // Every access token expires at the vendor mid-run: one refresh, no failed document.
    assert_eq!(
        env.sim.post("signing/expire-tokens", &json!({})).await / 100,
        2
    );
    let more: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
    for (i, id) in more.iter().enumerate() {
        env.publish_to(
            "doc.sign",
            &doc_sign(*id, &pdf(&format!("m{i}")), None),
            &id.to_string(),
        )
        .await;
    }
    wait_events(&mut env, "doc.signed", 10, Duration::from_secs(60)).await;
    assert_eq!(env.sim.calls("signing", "password_grant").await, 1);
    assert_eq!(env.sim.calls("signing", "refresh_grant").await, 1);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM documents WHERE state = 'signed'"
        )
        .await,
        60
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM documents WHERE state <> 'signed'"
        )
        .await,
        0
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_replayed_vendor_callbacks_are_refused_and_publish_nothing() {
    let mut env = signing_env(&[]).await;
    let id = Uuid::now_v7();
    env.publish_to(
        "doc.sign",
        &doc_sign(id, &pdf("forged"), None),
        &id.to_string(),
    )
    .await;
    wait_events(&mut env, "doc.signed", 1, Duration::from_secs(30)).await;
    let callbacks_before = count(
        &env,
        "SELECT count(*) FROM work_items WHERE queue = 'doc.callback'",
    )
    .await;

    let http = reqwest::Client::new();
    let body = json!({"document_id": "x", "status": "signed"});
    let token = "A".repeat(43);
    let cases = [
        (
            format!("/callbacks/signing/{}/{token}", Uuid::now_v7()),
            404,
        ),
        (format!("/callbacks/signing/{id}/{token}"), 404),
        (format!("/callbacks/signing/not-a-uuid/{token}"), 404),
    ];
    for (path, expected) in cases {
        let status = http
            .post(format!("{}{path}", env.ingress_url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, expected, "{path}");
    }
    // The vendor's own callback, replayed after the document is signed: refused too.
    let webhook = env.sim.get("requests?vendor=signing&op=webhook").await;
    let url = webhook[0]["body"]["url"]
        .as_str()
        .expect("the vendor's callback URL")
        .to_string();
    let replay = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(replay, 409);
    // A sentinel check published after the refusals: once it is done, anything they had published
    // before it would be done too.
    let sentinel = Uuid::now_v7();
    env.publish_to(
        "doc.callback",
        &json!({ "document_id": Uuid::now_v7(), "source": "poll" }),
        &sentinel.to_string(),
    )
    .await;
    let done = format!(
        "SELECT count(*) FROM work_items WHERE queue = 'doc.callback' AND message_id = '{sentinel}' AND state = 'done'"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&env, &done).await == 0 {
        assert!(Instant::now() < deadline, "the sentinel was not checked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM work_items WHERE queue = 'doc.callback'"
        )
        .await,
        callbacks_before + 1,
        "a refused callback published nothing"
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_endpoint_gets_it_later_and_a_hanging_one_delays_no_other() {
    let (endpoint, port) = Endpoint::start().await;
    let env = signing_env(&[
        ("PASARELA_WEBHOOK_TIMEOUT", "20s"),
        ("PASARELA_WEBHOOK_ENDPOINT_CONCURRENCY", "1"),
    ])
    .await;
    let flaky = Uuid::now_v7();
    env.publish_to(
        "doc.sign",
        &doc_sign(
            flaky,
            &pdf("flaky"),
            Some(format!("http://127.0.0.1:{port}/flaky/{flaky}")),
        ),
        &flaky.to_string(),
    )
    .await;
    // Three documents for an endpoint that hangs, then three for a healthy one.
    let hanging: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    for id in &hanging {
        env.publish_to(
            "doc.sign",
            &doc_sign(
                *id,
                &pdf("hang"),
                Some(format!("http://127.0.0.1:{port}/hang/shared")),
            ),
            &id.to_string(),
        )
        .await;
    }
    // The hanging endpoint holds its one slot before the healthy documents come.
    let deadline = Instant::now() + Duration::from_secs(30);
    while endpoint.received("/hang/").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the hanging endpoint was never called"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let healthy: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let published = Instant::now();
    for id in &healthy {
        env.publish_to(
            "doc.sign",
            &doc_sign(
                *id,
                &pdf("ok"),
                Some(format!("http://127.0.0.1:{port}/ok/{id}")),
            ),
            &id.to_string(),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while endpoint.received("/ok/").len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ok = endpoint.received("/ok/");
    assert_eq!(
        ok.len(),
        3,
        "healthy endpoint deliveries; log:\n{}",
        env.worker_log()
    );
    let slowest = ok
        .iter()
        .map(|r| r.at.duration_since(published))
        .max()
        .unwrap();
    // The hanging endpoint holds one slot for 20 s; the healthy one is served meanwhile.
    assert!(
        slowest < Duration::from_secs(15),
        "healthy deliveries took {slowest:?}"
    );
    assert_eq!(
        endpoint.received("/hang/").len(),
        1,
        "one attempt at a time per endpoint"
    );

    // The flaky endpoint: 500, 500, then 200, every attempt a row.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = env
            .query(&format!(
                "SELECT attempt, http_status FROM webhook_deliveries WHERE document_id = '{flaky}' ORDER BY attempt"
            ))
            .await;
        let got: Vec<(i32, Option<i32>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if got.len() == 3 {
            assert_eq!(got, vec![(1, Some(500)), (2, Some(500)), (3, Some(200))]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "flaky deliveries so far: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state: String = env
        .query(&format!(
            "SELECT state FROM webhook_jobs WHERE document_id = '{flaky}'"
        ))
        .await[0]
        .get(0);
    assert_eq!(state, "delivered");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn private_callbacks_non_pdfs_and_oversize_documents_are_rejected_without_a_vendor_call() {
    let mut env = TestEnv::builder()
        .worker("doc-sign")
        .env("PASARELA_MAX_DOCUMENT_BYTES", "2000")
        .start()
        .await;

    let private = Uuid::now_v7();
    env.publish_to(
        "doc.sign",
        &doc_sign(private, &pdf("p"), Some("http://127.0.0.2:9/hook".into())),
        &private.to_string(),
    )
    .await;
    let not_pdf = Uuid::now_v7();
    env.publish_to(
        "doc.sign",
        &doc_sign(not_pdf, b"GIF89a not a pdf", None),
        &not_pdf.to_string(),
    )
    .await;
    let oversize = Uuid::now_v7();
    let mut big = pdf("big");
    big.extend(std::iter::repeat_n(b'x', 5000));
    env.publish_to(
        "doc.sign",
        &doc_sign(oversize, &big, None),
        &oversize.to_string(),
    )
    .await;

    let failed = wait_events(&mut env, "doc.sign.failed", 3, Duration::from_secs(30)).await;
    let by_id: HashMap<String, &Value> = failed
        .iter()
        .map(|e| (e["document_id"].as_str().unwrap().to_string(), e))
        .collect();
    for (id, words) in [
        (private, "loopback"),
        (not_pdf, "not a PDF"),
        (oversize, "over the limit of 2000"),
    ] {
        let e = by_id[&id.to_string()];
        assert_eq!(e["status"], "rejected");
        assert_eq!(e["error"]["kind"], "rejected");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{id}: {message}");
    }
    assert_eq!(env.sim.calls("signing", "submit").await, 0);
    assert_eq!(env.sim.calls("signing", "password_grant").await, 0);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM documents WHERE state = 'failed' AND error_kind = 'rejected'"
        )
        .await,
        3
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_disables_the_endpoint_until_redelivered_and_the_cli_reads_what_is_stored() {
    let (endpoint, port) = Endpoint::start().await;
    let mut env = signing_env(&[]).await;
    let url = format!("http://127.0.0.1:{port}/gone/hook");
    let first = Uuid::now_v7();
    let original = pdf("gone");
    env.publish_to(
        "doc.sign",
        &doc_sign(first, &original, Some(url.clone())),
        &first.to_string(),
    )
    .await;
    let failed = wait_events(&mut env, "doc.webhook.failed", 1, Duration::from_secs(30)).await;
    assert_eq!(failed[0]["document_id"], first.to_string());
    assert_eq!(failed[0]["http_status"], 410);
    assert_eq!(failed[0]["attempts"], 1, "410 Gone ends the retries");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM webhook_endpoints WHERE disabled_at IS NOT NULL"
        )
        .await,
        1
    );

    // A second document for the same endpoint is not sent at all while it is disabled.
    let second = Uuid::now_v7();
    env.publish_to(
        "doc.sign",
        &doc_sign(second, &pdf("gone2"), Some(url.clone())),
        &second.to_string(),
    )
    .await;
    let failed = wait_events(&mut env, "doc.webhook.failed", 1, Duration::from_secs(30)).await;
    assert_eq!(failed[0]["document_id"], second.to_string());
    assert!(
        failed[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("410 Gone")
    );
    assert_eq!(endpoint.received("/gone/").len(), 1);

    // The CLI: status, the webhook attempts, the signed PDF, a redelivery, a purge.
    let id = first.to_string();
    let (ok, out) = env.cli(&["doc", "status", &id]).await;
    assert!(ok, "{out}");
    assert!(out.contains("signed"), "{out}");
    let (ok, out) = env.cli(&["webhooks", "list", &id]).await;
    assert!(ok && out.contains("410"), "{out}");
    let dir = std::env::temp_dir().join(format!("pasarela-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let signed_path = dir.join("signed.pdf");
    let (ok, out) = env
        .cli(&["doc", "download", &id, "-o", signed_path.to_str().unwrap()])
        .await;
    assert!(ok, "{out}");
    let signed = std::fs::read(&signed_path).unwrap();
    assert!(signed.starts_with(b"%PDF-") && signed != original);
    let (ok, out) = env.cli(&["webhooks", "redeliver", &id]).await;
    assert!(ok && out.contains("re-enabled"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while endpoint.received("/gone/").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the redelivery was not attempted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = endpoint.received("/gone/");
    assert_eq!(
        got[0].headers["webhook-id"], got[1].headers["webhook-id"],
        "a redelivery keeps the webhook-id"
    );
    let (ok, out) = env.cli(&["doc", "purge", &id]).await;
    assert!(ok, "{out}");
    assert_eq!(
        count(
            &env,
            &format!("SELECT count(*) FROM document_files WHERE document_id = '{id}'")
        )
        .await,
        0
    );
    let (ok, out) = env
        .cli(&["doc", "download", &id, "-o", signed_path.to_str().unwrap()])
        .await;
    assert!(!ok && out.contains("erased"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_erases_the_pdfs_and_keeps_the_status() {
    let mut env = signing_env(&[
        ("PASARELA_DOCUMENT_RETENTION", "3s"),
        ("PASARELA_DOCUMENT_SWEEP_INTERVAL", "500ms"),
    ])
    .await;
    let id = Uuid::now_v7();
    env.publish_to(
        "doc.sign",
        &doc_sign(id, &pdf("old"), None),
        &id.to_string(),
    )
    .await;
    wait_events(&mut env, "doc.signed", 1, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = env
            .query(&format!(
                "SELECT state, purged_at IS NOT NULL, (SELECT count(*) FROM document_files f WHERE f.document_id = d.document_id)
                 FROM documents d WHERE document_id = '{id}'"
            ))
            .await;
        let (state, purged, files): (String, bool, i64) =
            (rows[0].get(0), rows[0].get(1), rows[0].get(2));
        if purged {
            assert_eq!(state, "signed");
            assert_eq!(files, 0);
            break;
        }
        assert!(Instant::now() < deadline, "not purged; files {files}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.teardown().await;
}
