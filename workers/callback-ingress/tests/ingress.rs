//! callback-ingress in process against the local PostgreSQL and RabbitMQ (`PASARELA_TEST_PG`,
//! `PASARELA_TEST_AMQP` override them): each test has its own database and namespace, serves on
//! 127.0.0.1:0, and removes what it made, also when it fails.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use callback_ingress::{DEFAULTS, MAX_BODY_BYTES, QUEUE, RunError};
use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use pasarela_shared::contract::documents;
use pasarela_shared::contract::env::Env;
use pasarela_shared::contract::queue::Names;
use pasarela_shared::runtime::health::Health;
use pasarela_shared::runtime::settings::RuntimeSettings;
use pasarela_shared::runtime::topology::QueueTopology;
use pasarela_shared::store::database as db;
use pasarela_shared::store::documents::DocumentState;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

fn pg_server() -> String {
    std::env::var("PASARELA_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn amqp_url() -> String {
    std::env::var("PASARELA_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn random() -> String {
    Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// One running callback-ingress with its own database and namespace.
struct Ingress {
    base: String,
    health: Health,
    client: tokio_postgres::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), RunError>>,
}

impl Ingress {
    /// Starts callback-ingress on 127.0.0.1:0 talking to the broker at `amqp`.
    async fn start(database: &str, namespace: &str, amqp: &str) -> Self {
        let database_url = format!("{}/{database}", pg_server());
        // Created and migrated here, so rows can be written before the service is up.
        let pool = db::connect(&SecretString::from(database_url.clone()), 1)
            .await
            .expect("scratch database");
        pool.close();
        let (client, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);

        let env = Env::from_pairs([
            ("AMQP_URL", amqp),
            ("DATABASE_URL", database_url.as_str()),
            ("PASARELA_NAMESPACE", namespace),
            ("PASARELA_METRICS_ADDR", "off"),
            ("PASARELA_SHUTDOWN_GRACE", "5s"),
            ("PASARELA_DB_POOL_SIZE", "2"),
        ]);
        let settings = RuntimeSettings::from_env(&env, DEFAULTS).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let health = Health::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(callback_ingress::run(
            settings,
            listener,
            health.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            base,
            health,
            client,
            stop: Some(stop),
            task,
        }
    }

    async fn wait_ready(&self, ready: bool) {
        let waited =
            tokio::time::timeout(Duration::from_secs(30), self.health.wait_ready(ready)).await;
        assert!(
            waited.is_ok(),
            "callback-ingress never became {}",
            if ready { "ready" } else { "not ready" }
        );
    }

    /// Inserts a document in `state`; returns its id and capability token.
    async fn document(
        &self,
        state: DocumentState,
        vendor_document_id: Option<&str>,
    ) -> (Uuid, String) {
        let id = Uuid::now_v7();
        let token = documents::new_capability_token();
        self.client
            .execute(
                "INSERT INTO documents (document_id, message_id, tenant, document_name,
                     active_directory_user, signature_type, callback_token_sha256, state,
                     vendor_document_id, document_bytes)
                 VALUES ($1, $2, 'acme', 'contract.pdf', 'ana@acme.example', 'digital_signature',
                     $3, $4, $5, 100)",
                &[
                    &id,
                    &Uuid::now_v7(),
                    &documents::token_digest(&token),
                    &state.as_str(),
                    &vendor_document_id,
                ],
            )
            .await
            .unwrap();
        (id, token)
    }

    /// Posts `body` to the callback URL of `document_id` with `token`.
    async fn post(&self, document_id: &str, token: &str, body: impl Into<reqwest::Body>) -> Answer {
        let url = format!("{}/callbacks/signing/{document_id}/{token}", self.base);
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            body,
            retry_after,
        }
    }

    /// Stops it the way SIGTERM does and checks it ends cleanly.
    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("callback-ingress stops within the grace period")
            .expect("the run task does not panic");
        result.expect("callback-ingress stops without error");
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

/// A queue of the test's own bound like doc.callback's, so every published callback can be counted.
async fn probe(channel: &Channel, names: &Names) -> String {
    let queue = names.qualify(&format!("probe.{}", random()));
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            names.work_exchange().into(),
            QUEUE.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    queue
}

/// Every message on `queue` right now (a confirmed publish is already enqueued).
async fn drain(channel: &Channel, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
    let mut messages = Vec::new();
    while let Some(m) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        messages.push(m);
    }
    messages
}

/// Runs `test`, then removes the namespace's queues and exchanges and the database whatever happened,
/// and only then reports a failure.
async fn isolated<F, Fut>(test: F)
where
    F: FnOnce(String, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = format!("pasarela_ingress_{}", random());
    let namespace = format!("ingress-test-{}", random());
    let outcome = tokio::spawn(test(database.clone(), namespace.clone())).await;

    if let Ok(conn) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await
        && let Ok(channel) = conn.create_channel().await
    {
        let names = Names::new(&namespace);
        let topology = QueueTopology {
            names: names.clone(),
            queue: QUEUE.into(),
            tiers: RuntimeSettings::from_env(&Env::default(), DEFAULTS)
                .unwrap()
                .retry
                .delays()
                .to_vec(),
            delivery_limit: 20,
            whole: true,
        };
        for queue in topology.queue_names() {
            let _ = channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [names.work_exchange(), names.events_exchange()] {
            let _ = channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "test done".into()).await;
    }
    if let Ok((admin, connection)) =
        tokio_postgres::connect(&format!("{}/postgres", pg_server()), tokio_postgres::NoTls).await
    {
        tokio::spawn(connection);
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
            ))
            .await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn callbacks_are_checked_published_once_and_replays_refused() {
    isolated(|database, namespace| async move {
        let ingress = Ingress::start(&database, &namespace, &amqp_url()).await;
        ingress.wait_ready(true).await;
        let names = Names::new(&namespace);
        let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let probe = probe(&channel, &names).await;

        let (doc, token) = ingress
            .document(DocumentState::Submitted, Some("vendor-77"))
            .await;
        let id = doc.to_string();
        let webhook = json!({"document_id": "vendor-77", "status": "signed",
            "signing_date": "2026-11-02T10:00:00Z", "message": "Document signed"})
        .to_string();
        let not_found = json!({"error": "not_found"});

        // Capability checks: a wrong token, an unknown document and a malformed id look the same.
        let wrong = ingress
            .post(&id, &documents::new_capability_token(), webhook.clone())
            .await;
        assert_eq!((wrong.status, &wrong.body), (404, &not_found));
        let unknown = ingress
            .post(&Uuid::now_v7().to_string(), &token, webhook.clone())
            .await;
        assert_eq!((unknown.status, &unknown.body), (404, &not_found));
        let malformed = ingress.post("not-a-uuid", &token, webhook.clone()).await;
        assert_eq!((malformed.status, &malformed.body), (404, &not_found));

        // Bodies: too large, not JSON, not an object, another vendor document.
        let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let too_large = ingress.post(&id, &token, huge).await;
        assert_eq!(too_large.status, 413, "{too_large:?}");
        let not_json = ingress.post(&id, &token, "status=signed").await;
        assert_eq!(not_json.status, 400, "{not_json:?}");
        assert_eq!(not_json.body["error"], "bad_request");
        let not_object = ingress.post(&id, &token, "[1]").await;
        assert_eq!(not_object.status, 400);
        let other = ingress
            .post(
                &id,
                &token,
                r#"{"document_id":"vendor-78","status":"signed"}"#,
            )
            .await;
        assert_eq!(other.status, 400, "{other:?}");
        assert!(
            drain(&channel, &probe).await.is_empty(),
            "nothing is published for a refused callback"
        );

        // The real thing: 202 and exactly one doc.callback.
        let accepted = ingress.post(&id, &token, webhook.clone()).await;
        assert_eq!(
            (accepted.status, &accepted.body),
            (202, &json!({"status": "accepted"}))
        );
        let published = drain(&channel, &probe).await;
        assert_eq!(published.len(), 1, "exactly one doc.callback");
        let delivery = &published[0].delivery;
        let body: Value = serde_json::from_slice(&delivery.data).unwrap();
        assert_eq!(
            body,
            json!({"document_id": id, "vendor_document_id": "vendor-77",
                   "status": "signed", "source": "vendor_webhook"})
        );
        let props = &delivery.properties;
        assert_eq!(
            props.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        assert_eq!(*props.delivery_mode(), Some(2), "persistent");
        let message_id = props.message_id().as_ref().expect("a message_id");
        let message_id = Uuid::parse_str(message_id.as_str()).unwrap();
        assert_eq!(message_id.get_version_num(), 7);
        assert_eq!(delivery.routing_key.as_str(), QUEUE);
        // The work queue was declared by callback-ingress itself, so the callback waits there for
        // doc-callback even though none runs.
        let work = channel
            .queue_declare(
                names.work_queue(QUEUE).into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(work.message_count(), 1);

        // Replays for a final document: 409, nothing published.
        for state in [DocumentState::Signed, DocumentState::Failed] {
            let (final_doc, final_token) = ingress.document(state, Some(&random())).await;
            let replay = ingress
                .post(
                    &final_doc.to_string(),
                    &final_token,
                    r#"{"status":"signed"}"#,
                )
                .await;
            assert_eq!(replay.status, 409, "{replay:?}");
            assert_eq!(replay.body["error"], "already_final");
            assert_eq!(replay.body["state"], state.as_str());
        }
        assert!(drain(&channel, &probe).await.is_empty());

        // A webhook that outruns doc-sign (no vendor id recorded yet) still goes through.
        let (early, early_token) = ingress.document(DocumentState::Stored, None).await;
        let answer = ingress
            .post(
                &early.to_string(),
                &early_token,
                r#"{"document_id":"v-early"}"#,
            )
            .await;
        assert_eq!(answer.status, 202);
        let published = drain(&channel, &probe).await;
        assert_eq!(published.len(), 1);
        let body: Value = serde_json::from_slice(&published[0].delivery.data).unwrap();
        assert_eq!(body["vendor_document_id"], "v-early");
        assert_eq!(body["status"], Value::Null);

        let base = ingress.base.clone();
        ingress.shutdown().await;
        assert!(
            reqwest::get(format!("{base}/")).await.is_err(),
            "the listener is closed after shutdown"
        );
        let _ = conn.close(200, "done".into()).await;
    })
    .await;
}

#[tokio::test]
async fn without_the_broker_callbacks_answer_503_and_readiness_says_so() {
    isolated(|database, namespace| async move {
        // A loopback port nothing listens on.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let amqp = format!("amqp://guest:guest@{closed}/%2f");
        let ingress = Ingress::start(&database, &namespace, &amqp).await;
        let (doc, token) = ingress
            .document(DocumentState::Submitted, Some("vendor-1"))
            .await;
        // The database side works: a wrong token is still a plain 404 while the broker is away.
        let wrong = ingress.post(&doc.to_string(), "nope", "{}").await;
        assert_eq!(wrong.status, 404);
        let answer = ingress
            .post(&doc.to_string(), &token, r#"{"status":"signed"}"#)
            .await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert_eq!(answer.body["error"], "unavailable");
        assert_eq!(answer.retry_after.as_deref(), Some("5"));
        assert!(!ingress.health.is_ready());
        // Stopping does not wait for a broker that never came.
        ingress.shutdown().await;
    })
    .await;
}

/// A loopback TCP proxy to the broker whose connections the test can cut, as a network failure would.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cuts) = watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test]
async fn a_lost_broker_connection_is_re_established() {
    isolated(|database, namespace| async move {
        let upstream: SocketAddr = {
            let url = amqp_url();
            let host = url
                .split('@')
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or("127.0.0.1:5672")
                .to_string();
            tokio::net::lookup_host(host).await.unwrap().next().unwrap()
        };
        let proxy = Proxy::start(upstream).await;
        let amqp = format!("amqp://guest:guest@{}/%2f", proxy.addr);
        let ingress = Ingress::start(&database, &namespace, &amqp).await;
        ingress.wait_ready(true).await;
        let (doc, token) = ingress
            .document(DocumentState::Submitted, Some("vendor-5"))
            .await;

        proxy.cut();
        ingress.wait_ready(false).await;
        // Back within the backoff (200 ms doubling to 5 s), through the same proxy.
        ingress.wait_ready(true).await;
        let answer = ingress
            .post(&doc.to_string(), &token, r#"{"status":"signed"}"#)
            .await;
        assert_eq!(answer.status, 202, "{answer:?}");
        ingress.shutdown().await;
    })
    .await;
}
