//! Document signing steps the end-to-end tests share: a client's webhook endpoint, a `doc.sign`, the
//! three signing workers, and waiting for events of one kind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::TestEnv;

/// One request the client endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path it came to.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
    /// When it came.
    pub at: Instant,
}

/// A client's webhook endpoint on loopback: `/ok/*` answers 200, `/flaky/*` 500 to its first two
/// requests then 200, `/hang/*` never answers in time, `/gone/*` 410.
#[derive(Clone, Default)]
pub struct Endpoint {
    received: Arc<Mutex<Vec<Received>>>,
    seen: Arc<Mutex<HashMap<String, u32>>>,
}

impl Endpoint {
    /// Starts it on a free loopback port; the port is the second half.
    pub async fn start() -> (Self, u16) {
        let endpoint = Endpoint::default();
        let app = axum::Router::new()
            .route("/{kind}/{name}", post(receive))
            .with_state(endpoint.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (endpoint, port)
    }

    /// What came to paths starting with `path_prefix`, in order.
    pub fn received(&self, path_prefix: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }
}

async fn receive(
    State(endpoint): State<Endpoint>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let path = format!("/{kind}/{name}");
    let n = {
        let mut seen = endpoint.seen.lock().unwrap();
        let n = seen.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    endpoint.received.lock().unwrap().push(Received {
        path,
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    match kind.as_str() {
        "flaky" if n <= 2 => StatusCode::INTERNAL_SERVER_ERROR,
        "hang" => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::OK
        }
        "gone" => StatusCode::GONE,
        _ => StatusCode::OK,
    }
}

/// A small valid PDF, different per call.
pub fn pdf(tag: &str) -> Vec<u8> {
    format!("%PDF-1.4\n1 0 obj\n<< /Title ({tag}) >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
        .into_bytes()
}

/// A `doc.sign` of `content`, with the client's `callback` URL when given.
pub fn doc_sign(id: Uuid, content: &[u8], callback: Option<String>) -> Value {
    let mut body = json!({
        "document_id": id,
        "tenant": "acme",
        "document_name": "contract.pdf",
        "document_content": base64::engine::general_purpose::STANDARD.encode(content),
        "active_directory_user": "john.doe@company.com",
        "signature_type": "digital_signature",
    });
    if let Some(url) = callback {
        body["callback_url"] = url.into();
    }
    body
}

/// Starts the signing path's three workers; `doc-sign` first, as `callback-ingress` listens before
/// its database is migrated and so cannot be the worker that migrates it.
pub async fn signing_env(extra: &[(&str, &str)]) -> TestEnv {
    let mut options = TestEnv::builder()
        .worker("doc-sign")
        .worker("doc-callback")
        .worker("callback-ingress")
        .env("PASARELA_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
        .env("PASARELA_WEBHOOK_SCHEDULE", "0s,1s,1s,1s");
    for (k, v) in extra {
        options = options.env(k, v);
    }
    options.start().await
}

/// Waits for `count` events with `routing_key`, ignoring others; fails with the worker log.
pub async fn wait_events(
    env: &mut TestEnv,
    routing_key: &str,
    count: usize,
    within: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        for e in env.events(1, Duration::from_millis(200)).await {
            if e.routing_key == routing_key {
                out.push(e.body);
            }
        }
    }
    assert_eq!(
        out.len(),
        count,
        "{routing_key} events; worker log:\n{}",
        env.worker_log()
    );
    out
}

/// The one count `sql` selects.
pub async fn count(env: &TestEnv, sql: &str) -> i64 {
    env.query(sql).await[0].get::<_, i64>(0)
}
