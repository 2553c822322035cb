//! The signing vendor's other endings and readings, end to end: a document rejected, expired or failed
//! reaches the client as `document.sign_failed`; a status the vendor adds is read as waiting; any
//! `signature_type` is passed on; and `pasarela signing revoke` revokes the stored grant.

use std::time::Duration;

use pasarela_e2e::signing::{Endpoint, doc_sign, pdf, signing_env, wait_events};
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// Each final status the document does not list, through to the client's `document.sign_failed`.
#[tokio::test(flavor = "multi_thread")]
async fn rejected_expired_and_error_reach_the_client_as_sign_failed() {
    let (endpoint, port) = Endpoint::start().await;
    let mut env = signing_env(&[]).await;
    let outcomes = ["rejected", "expired", "error"];
    let users: serde_json::Map<String, Value> = outcomes
        .iter()
        .map(|o| (format!("{o}@company.com"), json!(o)))
        .collect();
    assert_eq!(
        env.sim
            .post("signing/settings", &json!({ "outcomes": users }))
            .await,
        200
    );
    let mut ids = vec![];
    for outcome in outcomes {
        let id = Uuid::now_v7();
        let mut body = doc_sign(
            id,
            &pdf(outcome),
            Some(format!("http://127.0.0.1:{port}/ok/{id}")),
        );
        body["active_directory_user"] = json!(format!("{outcome}@company.com"));
        env.publish_to("doc.sign", &body, &id.to_string()).await;
        ids.push((id, outcome));
    }
    let failed = wait_events(&mut env, "doc.sign.failed", 3, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    while endpoint.received("/ok/").len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "webhooks not delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, outcome) in &ids {
        let event = failed
            .iter()
            .find(|e| e["document_id"] == id.to_string())
            .unwrap_or_else(|| panic!("no doc.sign.failed for {outcome}: {failed:?}"));
        assert_eq!(event["status"], "failed", "{event}");
        assert!(
            event["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(outcome),
            "{event}"
        );
        let got = endpoint.received(&format!("/ok/{id}"));
        assert_eq!(got.len(), 1, "{outcome}");
        let body: Value = serde_json::from_slice(&got[0].body).unwrap();
        println!("{outcome}: client webhook {}", body);
        assert_eq!(body["type"], "document.sign_failed", "{body}");
        assert_eq!(body["data"]["status"], *outcome, "{body}");
    }
    env.teardown().await;
}

/// A status word the document does not list (`in_review`) is read as still waiting, with a log line;
/// the document signs once the vendor says so. Any `signature_type` the producer gives reaches the
/// vendor as given.
#[tokio::test(flavor = "multi_thread")]
async fn a_status_the_vendor_adds_is_waiting_and_any_signature_type_passes() {
    let mut env = signing_env(&[]).await;
    let settings =
        json!({ "pending_status": "in_review", "sign_after_ms": 2500, "lose_webhooks": true });
    assert_eq!(env.sim.post("signing/settings", &settings).await, 200);
    let id = Uuid::now_v7();
    let mut body = doc_sign(id, &pdf("review"), None);
    body["signature_type"] = json!("advanced_electronic_signature");
    env.publish_to("doc.sign", &body, &id.to_string()).await;
    let signed = wait_events(&mut env, "doc.signed", 1, WAIT).await;
    assert_eq!(signed[0]["document_id"], id.to_string());
    let submitted = env.sim.get("requests?vendor=signing&op=submit").await;
    assert_eq!(
        submitted[0]["body"]["signature_type"], "advanced_electronic_signature",
        "{submitted}"
    );
    let log = env.worker_log();
    assert!(
        log.contains("a status the vendor's document does not list") && log.contains("in_review"),
        "{log}"
    );
    env.teardown().await;
}

/// `pasarela signing revoke` revokes the grant the workers stored and forgets it; the next document
/// signs in again with a password grant.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_revokes_the_stored_grant() {
    let mut env = signing_env(&[]).await;
    let first = Uuid::now_v7();
    env.publish_to(
        "doc.sign",
        &doc_sign(first, &pdf("a"), None),
        &first.to_string(),
    )
    .await;
    wait_events(&mut env, "doc.signed", 1, WAIT).await;
    assert_eq!(env.sim.calls("signing", "password_grant").await, 1);
    let (ok, out) = env.cli(&["signing", "revoke"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("revoked the stored grant"), "{out}");
    assert_eq!(env.sim.calls("signing", "revoke").await, 1);
    let revoked = env.sim.get("requests?vendor=signing&op=revoke").await;
    assert_eq!(
        revoked[0]["body"]["token_type_hint"], "refresh_token",
        "{revoked}"
    );
    let (ok, out) = env.cli(&["signing", "revoke"]).await;
    assert!(ok && out.contains("no grant is stored"), "{out}");

    let second = Uuid::now_v7();
    env.publish_to(
        "doc.sign",
        &doc_sign(second, &pdf("b"), None),
        &second.to_string(),
    )
    .await;
    wait_events(&mut env, "doc.signed", 1, WAIT).await;
    assert_eq!(
        env.sim.calls("signing", "password_grant").await,
        2,
        "signed in again"
    );
    env.teardown().await;
}
