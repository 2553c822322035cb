//! The console's pages over 1,000,000 finished sends: each page asked for 200 times in a row, as an
//! operator clicks, with ids sampled from the tables, and its p50, p99 and max answer time. The
//! tables hold what a week of traffic leaves: the sends (otp_requests and work_items, with trace
//! ids), failed attempts, dead letters, documents and their webhook jobs and attempts.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_postgres::NoTls;

use crate::Options;
use crate::measure::{Measurement, ms};
use crate::stack::{OTP_SEND, Stack, binary};

/// Finished sends in the tables.
const ROWS: usize = 1_000_000;
/// Requests per page.
const ASKS: usize = 200;
const TOKEN: &str = "bench-console-token-0123456789";

/// One page's answer times.
#[derive(Debug, Clone)]
pub struct PageTiming {
    /// What was asked for.
    pub page: &'static str,
    /// Its answer times.
    pub measurement: Measurement,
}

/// What the sends leave besides their rows: a failed attempt for one send in ten, a dead letter for
/// one in twenty, a document with a webhook job and an attempt for one in twenty, and operator
/// actions.
async fn prefill_rest(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    for sql in [
        "INSERT INTO work_attempts (queue, message_id, attempt, next_attempt, tier, wait_ms, error,
             latency_ms, failed_at)
         SELECT queue, message_id, 1, 2, '1s', 1000,
             '{\"kind\": \"vendor\", \"message\": \"danaconnect: HTTP 503\"}', 12, created_at
         FROM work_items TABLESAMPLE BERNOULLI (10)",
        "INSERT INTO dead_letters (queue, message_id, error_kind, reason, attempts, headers, body,
             created_at, replayed_at)
         SELECT 'otp.send', message_id::text, 'exhausted', 'exhausted after 4 attempts', 4, '{}',
             convert_to('{\"request_id\": \"' || message_id || '\"}', 'UTF8'), created_at,
             CASE WHEN random() < 0.5 THEN created_at + interval '1 hour' END
         FROM work_items TABLESAMPLE BERNOULLI (5)",
        "INSERT INTO documents (document_id, message_id, tenant, document_name,
             active_directory_user, signature_type, client_callback_url, callback_token_sha256,
             state, vendor_document_id, document_bytes, created_at, submitted_at, completed_at)
         SELECT message_id, message_id, 'bench', 'contract.pdf', 'john.doe@company.com',
             'digital_signature', 'https://client-' || (abs(hashtext(message_id::text)) % 20)
                 || '.example/hooks',
             sha256(message_id::text::bytea), 'signed', md5(message_id::text), 1048576,
             created_at, created_at, created_at + interval '3 seconds'
         FROM work_items TABLESAMPLE BERNOULLI (5)",
        "INSERT INTO webhook_jobs (job_id, document_id, webhook_id, event_type, url, payload, state,
             attempts, last_http_status, created_at, completed_at)
         SELECT gen_random_uuid(), document_id, 'msg_' || md5(document_id::text),
             'document.signed', client_callback_url, '{}',
             CASE WHEN random() < 0.1 THEN 'failed' ELSE 'delivered' END, 1, 200,
             completed_at, completed_at
         FROM documents",
        "INSERT INTO webhook_deliveries (job_id, document_id, attempt, url, http_status,
             latency_ms, attempted_at)
         SELECT job_id, document_id, 1, url, last_http_status, 40, completed_at FROM webhook_jobs",
        "INSERT INTO operator_actions (action_id, operator, action, target, outcome, created_at)
         SELECT gen_random_uuid(), 'ana', 'replay', 'dead letter ' || id || ' of otp.send',
             'replayed 1 of 1 letter(s)', replayed_at
         FROM dead_letters WHERE replayed_at IS NOT NULL",
        // As autovacuum leaves a table that grows by appends: statistics, and the BRIN ranges on
        // creation time summarised (a range not summarised yet is read whole by every window query).
        "VACUUM ANALYZE",
    ] {
        client.execute(sql, &[]).await?;
    }
    Ok(())
}

/// `n` values of `sql`'s first column, as text.
async fn sample(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<Vec<String>> {
    let rows = client.query(sql, &[]).await?;
    anyhow::ensure!(!rows.is_empty(), "no rows to sample: {sql}");
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// Asks for each of `paths` in turn, every answer a 200, and measures them.
async fn ask(
    http: &reqwest::Client,
    base: &str,
    page: &'static str,
    paths: &[String],
) -> anyhow::Result<PageTiming> {
    let mut times = Vec::with_capacity(paths.len());
    let started = Instant::now();
    for path in paths {
        let t = Instant::now();
        let answer = http
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        let status = answer.status();
        let body = answer.bytes().await?;
        times.push(t.elapsed());
        anyhow::ensure!(status.is_success(), "{path}: {status}");
        anyhow::ensure!(!body.is_empty(), "{path}: an empty page");
    }
    Ok(PageTiming {
        page,
        measurement: Measurement::of(times, started.elapsed()),
    })
}

/// Every page's answer times over the filled tables.
pub async fn pages(opts: &Options) -> anyhow::Result<Vec<PageTiming>> {
    let stack = Stack::start(opts, &[OTP_SEND], &[]).await?;
    let result = pages_on(&stack, opts).await;
    stack.teardown().await;
    result
}

async fn pages_on(stack: &Stack, opts: &Options) -> anyhow::Result<Vec<PageTiming>> {
    let filling = Instant::now();
    crate::curve::prefill(stack, ROWS).await?;
    let (client, connection) = tokio_postgres::connect(&stack.database_url(), NoTls).await?;
    tokio::spawn(connection);
    prefill_rest(&client).await?;
    println!(
        "console pages: tables filled in {:.0} s",
        filling.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut console = tokio::process::Command::new(binary("pasarela")?)
        .args(["console", "--listen", &format!("127.0.0.1:{port}")])
        .env("AMQP_URL", &opts.amqp_url)
        .env("DATABASE_URL", stack.database_url())
        .env("PASARELA_NAMESPACE", &stack.ns)
        .env("PASARELA_CONSOLE_TOKEN", TOKEN)
        .env("PASARELA_CONSOLE_ACTIONS", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting pasarela console")?;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(&base).send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the console did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let limit = format!(" LIMIT {ASKS}");
    let requests = sample(
        &client,
        &format!("SELECT request_id::text FROM otp_requests TABLESAMPLE SYSTEM (1){limit}"),
    )
    .await?;
    let attempted = sample(
        &client,
        &format!("SELECT message_id::text FROM work_attempts TABLESAMPLE SYSTEM (5){limit}"),
    )
    .await?;
    let traces = sample(
        &client,
        &format!(
            "SELECT replace(trace_id::text, '-', '') FROM work_items TABLESAMPLE SYSTEM (1){limit}"
        ),
    )
    .await?;
    let destinations = sample(
        &client,
        &format!(
            "SELECT replace(destination_mobile, '+', '%2B') FROM otp_requests TABLESAMPLE SYSTEM (1){limit}"
        ),
    )
    .await?;
    let documents = sample(
        &client,
        &format!("SELECT document_id::text FROM documents TABLESAMPLE SYSTEM (10){limit}"),
    )
    .await?;
    let letters = sample(
        &client,
        &format!("SELECT id::text FROM dead_letters TABLESAMPLE SYSTEM (10){limit}"),
    )
    .await?;
    let paths = |prefix: &str, ids: &[String]| -> Vec<String> {
        (0..ASKS)
            .map(|i| format!("{prefix}{}", ids[i % ids.len()]))
            .collect()
    };
    let same = |path: &str| vec![path.to_string(); ASKS];
    let mut timings = Vec::new();
    for (page, list) in [
        ("search by request id", paths("/search?q=", &requests)),
        (
            "search, a send with failed attempts",
            paths("/search?q=", &attempted),
        ),
        ("search by trace id", paths("/search?q=", &traces)),
        ("search by destination", paths("/search?q=", &destinations)),
        ("search by tenant (newest 100)", same("/search?q=bench")),
        ("search by document id", paths("/search?q=", &documents)),
        ("dead letters, open, newest 100", same("/dead-letters")),
        (
            "dead letters of otp.send, kind exhausted",
            same("/dead-letters?queue=otp.send&kind=exhausted"),
        ),
        ("one dead letter", paths("/dead-letters/", &letters)),
        ("webhooks per endpoint, last 24 h", same("/webhooks")),
        ("OTP report, last hour (the default)", same("/report/otp")),
        ("OTP report, last 24 h", same("/report/otp?since=24h")),
        ("operator actions, newest 100", same("/actions")),
    ] {
        timings.push(ask(&http, &base, page, &list).await?);
    }
    let _ = console.kill().await;
    Ok(timings)
}

/// The table of answer times.
pub fn print(timings: &[PageTiming]) {
    println!(
        "\nconsole pages over {ROWS} sends ({ASKS} requests each, one at a time)\n{:<44} {:>8} {:>8} {:>8}",
        "page", "p50 ms", "p99 ms", "max ms"
    );
    for t in timings {
        let m = &t.measurement;
        println!(
            "{:<44} {:>8.1} {:>8.1} {:>8.1}",
            t.page,
            ms(m.p50),
            ms(m.p99),
            ms(m.max)
        );
    }
}

/// The answer times as JSON.
pub fn to_json(timings: &[PageTiming]) -> serde_json::Value {
    serde_json::Value::Array(
        timings
            .iter()
            .map(|t| serde_json::json!({ "page": t.page, "times": t.measurement.to_json() }))
            .collect(),
    )
}
