//! Hole 10: a `doc.callback` check asks the vendor (a status, then a download of up to two minutes)
//! holding no row lock, no transaction and no pooled connection; what it found is written in the
//! runtime's one commit.

use std::time::{Duration, Instant};

use base64::Engine;
use pasarela_e2e::TestEnv;
use serde_json::json;
use uuid::Uuid;

fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj\n<< /Title (lock) >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn hole_10_a_document_check_holds_no_row_lock_across_vendor_calls() {
    let mut env = TestEnv::builder()
        .worker("doc-sign")
        .worker("doc-callback")
        .worker("callback-ingress")
        .start()
        .await;
    let id = Uuid::now_v7();
    let message = json!({
        "document_id": id, "tenant": "acme", "document_name": "contract.pdf",
        "document_content": base64::engine::general_purpose::STANDARD.encode(pdf()),
        "active_directory_user": "john.doe@company.com", "signature_type": "digital_signature",
    });
    env.publish_to("doc.sign", &message, &id.to_string()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = env.events(1, Duration::from_millis(200)).await;
        if e.iter().any(|e| e.routing_key == "doc.sign.submitted") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not submitted; logs:\n{}",
            env.worker_log()
        );
    }
    // From now on every answer of the signing vendor takes two seconds: the check's status and
    // download calls are in flight for at least four.
    env.sim
        .faults(json!({ "vendor": "signing", "latency_ms": 2000 }))
        .await;
    let lock = format!("SELECT 1 FROM documents WHERE document_id = '{id}' FOR UPDATE NOWAIT");
    // Idle in a transaction for longer than a round trip: a group commit between its statements is
    // idle in transaction for microseconds, a transaction held across a vendor call for two seconds.
    let waiting_in_transaction = "SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND state LIKE 'idle in transaction%'
          AND state_change < now() - interval '500 milliseconds'";
    let (mut probes, mut locked, mut idle_in_transaction) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let signed = loop {
        let events = env.events(1, Duration::from_millis(100)).await;
        if let Some(e) = events.iter().find(|e| e.routing_key == "doc.signed") {
            break e.body.clone();
        }
        assert!(
            Instant::now() < deadline,
            "not signed; logs:\n{}",
            env.worker_log()
        );
        probes += 1;
        // A write's own short transaction holds the row for milliseconds, and a probe may meet one;
        // a lock held across a vendor call (two seconds here) is still held a moment later.
        if env.try_query(&lock).await.is_err() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if env.try_query(&lock).await.is_err() {
                locked += 1;
            }
        }
        let waiting: i64 = env.query(waiting_in_transaction).await[0].get(0);
        idle_in_transaction += waiting;
    };
    let status_calls = env.sim.calls("signing", "status").await;
    eprintln!(
        "probes {probes}, row locked {locked}, idle in transaction {idle_in_transaction}, status calls {status_calls}"
    );
    assert_eq!(signed["status"], "signed");
    assert!(
        probes >= 20,
        "the check was not in flight long enough: {probes} probes"
    );
    assert_eq!(locked, 0, "the row was locked during a vendor call");
    assert_eq!(
        idle_in_transaction, 0,
        "a transaction was open during a vendor call"
    );
    let stored: i64 = env
        .query(&format!(
            "SELECT count(*) FROM document_files WHERE document_id = '{id}' AND kind = 'signed'"
        ))
        .await[0]
        .get(0);
    assert_eq!(stored, 1);
    env.teardown().await;
}
