//! A corpus of hostile work messages against the real workers: huge bodies, deep JSON, wrong types,
//! invalid UTF-8, NUL bytes, Base64 that is not a PDF. Each ends in a dead letter or a refusal that says
//! why, and the worker serves the next message (a sentinel published after them all).

use std::time::{Duration, Instant};

use base64::Engine;
use pasarela_e2e::{TestEnv, json_props, otp_send};
use serde_json::{Value, json};
use uuid::Uuid;

/// How one corpus entry must end.
enum Ending {
    /// In `.dead` and `dead_letters`, with a reason holding this.
    Dead(&'static str),
    /// As a result event with status `rejected` and an error holding this.
    Rejected(&'static str),
}

struct Entry {
    name: &'static str,
    queue: &'static str,
    body: Vec<u8>,
    ending: Ending,
}

fn deep_json(levels: usize) -> Vec<u8> {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels)).into_bytes()
}

fn with_tenant(tenant: &str) -> Vec<u8> {
    let mut m = otp_send(Uuid::new_v4());
    m["tenant"] = tenant.into();
    serde_json::to_vec(&m).unwrap()
}

fn corpus() -> Vec<Entry> {
    let not_a_pdf = json!({
        "document_id": Uuid::now_v7(), "tenant": "acme", "document_name": "x.pdf",
        "document_content": base64::engine::general_purpose::STANDARD.encode(b"GIF89a, not a PDF at all"),
        "active_directory_user": "john.doe@company.com",
    });
    vec![
        Entry {
            name: "a body of 2 MiB",
            queue: "otp.send",
            body: vec![b' '; 2 << 20],
            ending: Ending::Dead("over the limit"),
        },
        Entry {
            name: "JSON 10,000 levels deep",
            queue: "otp.send",
            body: deep_json(10_000),
            ending: Ending::Dead("invalid otp.send message"),
        },
        Entry {
            name: "wrong types",
            queue: "otp.send",
            body: br#"{"request_id": 5, "tenant": [], "destination": "x"}"#.to_vec(),
            ending: Ending::Dead("invalid type"),
        },
        Entry {
            name: "invalid UTF-8",
            queue: "vendor.call",
            body: b"{\"call_id\": \"\xff\xfe\"}".to_vec(),
            ending: Ending::Dead("invalid"),
        },
        Entry {
            name: "a raw NUL byte",
            queue: "vendor.call",
            body: b"{\"call_id\": \0}".to_vec(),
            ending: Ending::Dead("expected value"),
        },
        Entry {
            name: "a NUL character in a field",
            queue: "otp.send",
            body: with_tenant("ac\u{0}me"),
            ending: Ending::Dead("NUL character"),
        },
        Entry {
            name: "Base64 that is not a PDF",
            queue: "doc.sign",
            body: serde_json::to_vec(&not_a_pdf).unwrap(),
            ending: Ending::Rejected("PDF"),
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_messages_each_end_with_a_reason_and_the_worker_serves_the_next() {
    let mut env = TestEnv::builder()
        .worker("otp-send")
        .worker("vendor-call")
        .worker("doc-sign")
        .start()
        .await;
    let corpus = corpus();
    for entry in &corpus {
        let id = Uuid::new_v4().to_string();
        env.publish_raw_to(
            entry.queue,
            &entry.body,
            json_props().with_message_id(id.as_str().into()),
        )
        .await;
    }
    let sentinel = Uuid::new_v4();
    env.send_otp(sentinel).await;

    let rejected_expected = corpus
        .iter()
        .filter(|e| matches!(e.ending, Ending::Rejected(_)))
        .count();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut sentinel_sent, mut rejections) = (false, Vec::<Value>::new());
    while (!sentinel_sent || rejections.len() < rejected_expected) && Instant::now() < deadline {
        for e in env.events(1, Duration::from_millis(200)).await {
            if e.body["request_id"] == sentinel.to_string() {
                assert_eq!(e.body["status"], "sent", "{}", e.body);
                sentinel_sent = true;
            } else if e.body["status"] == "rejected" {
                rejections.push(e.body);
            }
        }
    }
    assert!(
        sentinel_sent,
        "the sentinel was not served; logs:\n{}",
        env.worker_log()
    );

    // Deliveries run concurrently: the sentinel may finish before a large entry is dead-lettered.
    let expected_dead = corpus
        .iter()
        .filter(|e| matches!(e.ending, Ending::Dead(_)))
        .count();
    let dead = loop {
        let dead: Vec<(String, String)> = env
            .query("SELECT queue, reason FROM dead_letters ORDER BY created_at")
            .await
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if dead.len() >= expected_dead || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for entry in &corpus {
        match entry.ending {
            Ending::Dead(says) => {
                let found = dead
                    .iter()
                    .any(|(q, reason)| q == entry.queue && reason.contains(says));
                assert!(
                    found,
                    "{}: no dead letter saying {says:?} in {dead:?}",
                    entry.name
                );
            }
            Ending::Rejected(says) => {
                let found = rejections
                    .iter()
                    .any(|r| r["error"]["message"].as_str().unwrap_or("").contains(says));
                assert!(
                    found,
                    "{}: no rejection saying {says:?} in {rejections:?}",
                    entry.name
                );
            }
        }
    }
    let expected_dead = corpus
        .iter()
        .filter(|e| matches!(e.ending, Ending::Dead(_)))
        .count();
    assert_eq!(dead.len(), expected_dead, "{dead:?}");
    eprintln!(
        "corpus of {}: dead {}, rejected {}, sentinel served",
        corpus.len(),
        dead.len(),
        rejections.len()
    );
    for (queue, reason) in &dead {
        eprintln!("  {queue}: {reason}");
    }
    env.teardown().await;
}
