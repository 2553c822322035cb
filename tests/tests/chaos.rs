//! `make chaos`: the promise under faults, scenario by scenario, against the real broker, database and
//! worker processes. Each scenario publishes work, strikes while it is in flight, and prints what was
//! published, what ended terminal, what was lost, the vendor calls made more than once, what went
//! dead, and the time to drain. Lost must be 0. These stop the shared broker and database: run alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine;
use pasarela_e2e::{TestEnv, otp_send, services};
use serde_json::{Value, json};
use uuid::Uuid;

/// How long a scenario may take to drain after its last fault.
const DRAIN: Duration = Duration::from_secs(600);

/// A client's webhook endpoint on loopback that answers 503 while `down`, and counts deliveries.
#[derive(Clone, Default)]
struct Endpoint {
    down: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl Endpoint {
    async fn start() -> (Self, u16) {
        let endpoint = Endpoint::default();
        let app = axum::Router::new()
            .route("/hook/{id}", post(hook))
            .with_state(endpoint.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (endpoint, port)
    }
}

async fn hook(State(e): State<Endpoint>) -> StatusCode {
    if e.down.load(Ordering::Relaxed) {
        e.refused.fetch_add(1, Ordering::Relaxed);
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        e.delivered.fetch_add(1, Ordering::Relaxed);
        StatusCode::OK
    }
}

fn pdf(i: usize) -> String {
    let text = format!(
        "%PDF-1.4\n1 0 obj\n<< /Title (c{i}) >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    );
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The work of a scenario, per queue.
#[derive(Default)]
struct Work {
    batches: Vec<(&'static str, Vec<(String, Value)>)>,
}

impl Work {
    fn otp_send(mut self, n: usize) -> Self {
        let m = (0..n)
            .map(|_| {
                let id = Uuid::new_v4();
                (id.to_string(), otp_send(id))
            })
            .collect();
        self.batches.push(("otp.send", m));
        self
    }

    /// Verifications of the first `n` sends, with a code that is not theirs.
    fn otp_verify(mut self, n: usize) -> Self {
        let sends: Vec<String> = self
            .batches
            .iter()
            .filter(|(q, _)| *q == "otp.send")
            .flat_map(|(_, m)| m.iter().map(|(id, _)| id.clone()))
            .take(n)
            .collect();
        let m = sends
            .into_iter()
            .map(|request_id| {
                let id = Uuid::new_v4().to_string();
                let body =
                    json!({ "verification_id": id, "request_id": request_id, "code": "000000" });
                (id, body)
            })
            .collect();
        self.batches.push(("otp.verify", m));
        self
    }

    fn vendor_call(mut self, n: usize) -> Self {
        let m = (0..n)
            .map(|i| {
                let id = Uuid::new_v4().to_string();
                let body = json!({ "call_id": id, "vendor": "numrot", "method": "POST",
                    "path": "/api/facturas", "body": { "i": i } });
                (id, body)
            })
            .collect();
        self.batches.push(("vendor.call", m));
        self
    }

    fn doc_sign(mut self, n: usize, hook_port: u16) -> Self {
        let m = (0..n)
            .map(|i| {
                let id = Uuid::now_v7();
                let body = json!({ "document_id": id, "tenant": "acme",
                    "document_name": format!("c{i}.pdf"), "document_content": pdf(i),
                    "active_directory_user": "john.doe@company.com",
                    "callback_url": format!("http://127.0.0.1:{hook_port}/hook/{id}") });
                (id.to_string(), body)
            })
            .collect();
        self.batches.push(("doc.sign", m));
        self
    }

    fn published(&self) -> usize {
        self.batches.iter().map(|(_, m)| m.len()).sum()
    }

    fn count(&self, queue: &str) -> usize {
        self.batches
            .iter()
            .filter(|(q, _)| *q == queue)
            .map(|(_, m)| m.len())
            .sum()
    }

    /// Publishes every batch interleaved, a thousand at a time.
    async fn publish(&self, env: &TestEnv) {
        let longest = self.batches.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
        for start in (0..longest).step_by(1000) {
            for (queue, messages) in &self.batches {
                let end = (start + 1000).min(messages.len());
                if start < end {
                    env.publish_bulk(queue, &messages[start..end]).await;
                }
            }
        }
    }
}

/// What the tables say: finished messages per queue, documents finished, webhooks delivered, dead.
async fn terminal(env: &TestEnv) -> (HashMap<String, i64>, i64, i64, i64, i64) {
    let per_queue = env
        .query("SELECT queue, count(*) FROM work_items WHERE state = 'done' GROUP BY queue")
        .await
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    let one = |sql: &'static str| async move { env.query(sql).await[0].get::<_, i64>(0) };
    let documents = one("SELECT count(*) FROM documents WHERE state IN ('signed', 'failed')").await;
    let webhooks = one("SELECT count(*) FROM webhook_jobs WHERE state = 'delivered'").await;
    let dead = one("SELECT count(*) FROM dead_letters").await;
    let duplicates =
        one("SELECT coalesce(sum(possible_duplicates), 0)::int8 FROM work_items").await;
    (per_queue, documents, webhooks, dead, duplicates)
}

/// Waits until every published message is finished (and every document and webhook, when there are
/// some); returns the time it took and the final tally line.
async fn drain(env: &TestEnv, work: &Work, from: Instant) -> (Duration, String, usize) {
    let documents = work.count("doc.sign") as i64;
    let deadline = Instant::now() + DRAIN;
    loop {
        let (per_queue, docs, hooks, dead, duplicates) = terminal(env).await;
        let finished: i64 = work
            .batches
            .iter()
            .map(|(q, m)| per_queue.get(*q).copied().unwrap_or(0).min(m.len() as i64))
            .sum();
        let done = finished == work.published() as i64 && docs >= documents && hooks >= documents;
        if done || Instant::now() > deadline {
            let lost = work.published() - finished as usize;
            let calls = vendor_calls(env).await;
            let repeated = calls.saturating_sub(
                (work.count("otp.send") + work.count("vendor.call") + work.count("doc.sign"))
                    as u64,
            );
            let line = format!(
                "published {}, terminal {finished}, lost {lost}, documents finished {docs}/{documents}, webhooks delivered {hooks}/{documents}, vendor calls {calls} ({repeated} repeated, {duplicates} taken over after a crash), dead {dead}",
                work.published()
            );
            return (
                from.elapsed(),
                line,
                lost + (documents - docs.min(documents)) as usize,
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn vendor_calls(env: &TestEnv) -> u64 {
    env.sim.calls("danaconnect", "send").await
        + env.sim.calls("numrot", "call").await
        + env.sim.calls("signing", "submit").await
}

async fn all_workers(extra: &[(&str, &str)]) -> TestEnv {
    let mut options = TestEnv::builder()
        .worker("doc-sign")
        .worker("otp-send")
        .worker("otp-send")
        .worker("otp-verify")
        .worker("vendor-call")
        .worker("vendor-call")
        .worker("doc-callback")
        .worker("callback-ingress")
        .env("PASARELA_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
        .env("PASARELA_CLAIM_LEASE", "10s");
    for (k, v) in extra {
        options = options.env(k, v);
    }
    options.start().await
}

fn report(name: &str, took: Duration, line: &str) {
    println!(
        "chaos | {name} | {line} | drained in {:.1} s",
        took.as_secs_f64()
    );
}

/// Fails the scenario when anything was lost.
fn no_loss(lost: usize) {
    assert_eq!(lost, 0, "work was lost");
}

/// 20,000 messages across four queues while a random worker is killed with SIGKILL every three
/// seconds and started again.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "make chaos: kills workers"]
async fn chaos_1_kill_a_random_worker_every_three_seconds() {
    let (_endpoint, port) = Endpoint::start().await;
    let mut env = all_workers(&[("PASARELA_WEBHOOK_SCHEDULE", "0s,2s,5s,10s,30s")]).await;
    let work = Work::default()
        .otp_send(9_000)
        .otp_verify(2_000)
        .vendor_call(8_000)
        .doc_sign(1_000, port);
    let started = Instant::now();
    work.publish(&env).await;
    let mut kills = 0;
    let mut in_flight_at_first_kill = None;
    let mut seed = started.elapsed().as_nanos() as usize;
    let killing_until = Instant::now() + Duration::from_secs(90);
    while Instant::now() < killing_until {
        let (per_queue, docs, ..) = terminal(&env).await;
        let finished: i64 = per_queue.values().sum();
        if finished >= work.published() as i64 && docs >= 1_000 {
            break;
        }
        in_flight_at_first_kill.get_or_insert(work.published() as i64 - finished);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let index = (seed >> 33) % env.worker_count();
        env.kill_and_restart(index).await;
        kills += 1;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let (took, line, lost) = drain(&env, &work, started).await;
    report(
        &format!(
            "kill -9 a random worker every 3 s ({kills} kills, {} unfinished at the first)",
            in_flight_at_first_kill.unwrap_or(0)
        ),
        took,
        &line,
    );
    env.teardown().await;
    no_loss(lost);
}

/// A shared service that fails mid-run.
enum Outage {
    Broker,
    Database,
}

/// 4,200 messages (otp.send, vendor.call, doc.sign with webhooks), and `outage` once they are published.
async fn mid_run(outage: Outage) {
    let (_endpoint, port) = Endpoint::start().await;
    let mut env = all_workers(&[]).await;
    let work = Work::default()
        .otp_send(2_000)
        .vendor_call(2_000)
        .doc_sign(200, port);
    let started = Instant::now();
    work.publish(&env).await;
    let unfinished = unfinished(&env, &work).await;
    let name = match outage {
        Outage::Broker => {
            services()
                .await
                .restart_broker(Duration::from_secs(3))
                .await;
            env.reconnect_broker().await;
            "RabbitMQ stop_app, 3 s, start_app"
        }
        Outage::Database => {
            services().await.restart_database().await;
            env.reconnect_db().await;
            "PostgreSQL restart"
        }
    };
    let (took, line, lost) = drain(&env, &work, started).await;
    report(
        &format!("{name} ({unfinished} unfinished when it struck)"),
        took,
        &line,
    );
    env.teardown().await;
    no_loss(lost);
}

/// RabbitMQ's application stopped for three seconds mid-run.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "make chaos: stops the shared broker"]
async fn chaos_2_broker_stop_app_and_start_app() {
    mid_run(Outage::Broker).await;
}

/// PostgreSQL restarted mid-run.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "make chaos: restarts the shared database"]
async fn chaos_3_database_restart() {
    mid_run(Outage::Database).await;
}

/// A vendor down for 60 s: retries wait in the tiers, and the vendor's request rate stays bounded.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "make chaos: a minute of vendor outage"]
async fn chaos_4_vendor_outage_of_sixty_seconds() {
    let env = TestEnv::builder()
        .worker("vendor-call")
        .env("PASARELA_RETRY_DELAYS", "1s,5s,30s,1m")
        .env("PASARELA_MAX_ATTEMPTS", "5")
        .start()
        .await;
    env.sim
        .faults(json!({ "vendor": "numrot", "outage": true }))
        .await;
    let work = Work::default().vendor_call(1_000);
    let started = Instant::now();
    work.publish(&env).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = env.sim.calls("numrot", "call").await + env.sim.calls("numrot", "token").await;
    env.sim.clear_faults().await;
    let (took, line, lost) = drain(&env, &work, started).await;
    report(
        &format!(
            "NumRot down for 60 s ({during} requests during it, {:.1}/s, for 1,000 messages)",
            during as f64 / 60.0
        ),
        took,
        &line,
    );
    let dead = env.query("SELECT count(*) FROM dead_letters").await[0].get::<_, i64>(0);
    if dead > 0 {
        println!(
            "{}",
            env.worker_log()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    env.teardown().await;
    no_loss(lost);
    assert_eq!(dead, 0, "the outage outlasted the retries");
}

/// A client endpoint down for the whole first step of the webhook schedule.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "make chaos: a client endpoint down"]
async fn chaos_5_client_endpoint_down_for_the_first_schedule_step() {
    let (endpoint, port) = Endpoint::start().await;
    endpoint.down.store(true, Ordering::Relaxed);
    let env = TestEnv::builder()
        .worker("doc-sign")
        .worker("doc-callback")
        .worker("callback-ingress")
        .env("PASARELA_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
        .env("PASARELA_WEBHOOK_SCHEDULE", "0s,10s,30s")
        .start()
        .await;
    let work = Work::default().doc_sign(200, port);
    let started = Instant::now();
    work.publish(&env).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    endpoint.down.store(false, Ordering::Relaxed);
    let (took, line, lost) = drain(&env, &work, started).await;
    report(
        &format!(
            "client endpoint down for the first schedule step ({} deliveries refused, {} delivered)",
            endpoint.refused.load(Ordering::Relaxed),
            endpoint.delivered.load(Ordering::Relaxed)
        ),
        took,
        &line,
    );
    env.teardown().await;
    no_loss(lost);
}

/// Messages published but not finished yet: the work a fault strikes.
async fn unfinished(env: &TestEnv, work: &Work) -> i64 {
    let (per_queue, ..) = terminal(env).await;
    work.published() as i64 - per_queue.values().sum::<i64>()
}
