//! pasarela itself: the `otp-send` worker and the vendor simulator as processes, N `otp.send`
//! messages with confirms, every `otp.send.completed` awaited.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::floor::{publish_window, quorum_queue};
use crate::{Measurement, Options, percentile};

/// An `otp.send` body as producers send it.
pub fn sample_body(id: Uuid) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "request_id": id.to_string(), "tenant": "bench", "provider": "danaconnect", "channel": "sms",
        "destination": { "mobile": "+573001234567" },
        "code": { "type": "numeric", "length": 6, "expires_in_s": 300, "max_tries": 5 },
        "danaconnect": { "id_conversation": 824541,
                         "values": [ { "key": "COD1_MOBILE", "value": "+573001234567" } ] }
    }))
    .expect("json")
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("binary dir")?.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build the workspace's binaries",
        path.display()
    );
    Ok(path)
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn start_sim() -> anyhow::Result<(Child, String)> {
    let mut sim = Command::new(binary("vendor-sim")?)
        .env("VENDOR_SIM_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(sim.stdout.take().context("sim stdout")?).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await??
        .context("vendor-sim exited")?;
    let addr = first.rsplit(' ').next().context("sim address")?.to_string();
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((sim, addr))
}

async fn wait_for_consumer(conn: &Connection, queue: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ch = conn.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if let Ok(q) = ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            && q.consumer_count() > 0
        {
            let _ = ch.close(200, "ok".into()).await;
            return Ok(());
        }
        let _ = ch.close(200, "ok".into()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the worker did not start consuming {queue}")
}

/// Publishes `n` sends and waits for each one's result.
async fn measure(
    publisher: &Channel,
    results: &Channel,
    results_queue: &str,
    work_queue: &str,
    n: usize,
    opts: &Options,
) -> anyhow::Result<Measurement> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let index: Arc<HashMap<String, usize>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| (id.to_string(), i))
            .collect(),
    );
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let tag = format!("bench-{}", Uuid::new_v4().simple());
    let mut consumer = results
        .basic_consume(
            results_queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(opts.in_flight));
    let (idx, sent, released) = (index.clone(), sent_at.clone(), in_flight.clone());
    let receive = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        while latencies.len() < n {
            let Some(Ok(d)) = consumer.next().await else {
                break;
            };
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&d.data) else {
                continue;
            };
            let Some(i) = body["request_id"].as_str().and_then(|r| idx.get(r)) else {
                continue;
            };
            if !std::mem::replace(&mut seen[*i], true) {
                released.add_permits(1);
                let at = Duration::from_nanos(sent[*i].load(Ordering::Relaxed));
                latencies.push(epoch.elapsed().saturating_sub(at));
            }
        }
        (latencies, epoch.elapsed())
    });
    publish_window(publisher, work_queue, n, opts.window, &in_flight, |i| {
        sent_at[i].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(ids[i].to_string()));
        (sample_body(ids[i]), props)
    })
    .await?;
    let (mut latencies, elapsed) =
        tokio::time::timeout(Duration::from_secs(opts.timeout_s), receive)
            .await
            .context("not every result came in time")??;
    let _ = results
        .basic_cancel(tag.as_str().into(), Default::default())
        .await;
    anyhow::ensure!(latencies.len() == n, "{} of {n} results", latencies.len());
    latencies.sort();
    Ok(Measurement {
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}

/// Runs the worker and the simulator and measures `otp.send`; also returns the worker's peak RSS (KiB).
pub async fn otp_send(opts: &Options) -> anyhow::Result<(Measurement, u64)> {
    let ns = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..10]);
    let database = format!("pasarela_{}", ns.replace('-', "_"));
    let (mut sim, sim_addr) = start_sim().await?;
    let mut worker = Command::new(binary("otp-send")?)
        .env("AMQP_URL", &opts.amqp_url)
        .env("DATABASE_URL", format!("{}/{database}", opts.pg_base))
        .env("PASARELA_NAMESPACE", &ns)
        .env("PASARELA_CONCURRENCY", opts.concurrency.to_string())
        .env("PASARELA_PREFETCH", opts.prefetch.to_string())
        .env("PASARELA_METRICS_ADDR", "127.0.0.1:0")
        .env(
            "DANACONNECT_BASE_URL",
            format!("http://{sim_addr}/danaconnect/otp/1.0"),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let pid = worker.id().unwrap_or(0);

    let conn = Connection::connect(&opts.amqp_url, ConnectionProperties::default()).await?;
    let setup = conn.create_channel().await?;
    let events = format!("{ns}.pasarela.events");
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    setup
        .exchange_declare(
            events.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    let results_queue = format!("{ns}.bench.results");
    quorum_queue(&setup, &results_queue).await?;
    setup
        .queue_bind(
            results_queue.as_str().into(),
            events.as_str().into(),
            "otp.send.completed".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let work_queue = format!("{ns}.otp.send");
    wait_for_consumer(&conn, &work_queue).await?;

    let publisher = conn.create_channel().await?;
    publisher.confirm_select(Default::default()).await?;
    let results = conn.create_channel().await?;
    measure(
        &publisher,
        &results,
        &results_queue,
        &work_queue,
        opts.warmup,
        opts,
    )
    .await?;
    let m = measure(
        &publisher,
        &results,
        &results_queue,
        &work_queue,
        opts.count,
        opts,
    )
    .await;
    let rss = peak_rss_kib(pid);

    let _ = worker.kill().await;
    let _ = sim.kill().await;
    let mut queues = vec![
        results_queue,
        work_queue.clone(),
        format!("{work_queue}.dead"),
    ];
    queues.extend(
        ["1s", "5s", "30s", "2m", "10m", "1h"]
            .iter()
            .map(|d| format!("{work_queue}.retry.{d}")),
    );
    for q in queues {
        let _ = setup
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for e in [events, format!("{ns}.pasarela")] {
        let _ = setup
            .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
    if let Ok((client, connection)) =
        tokio_postgres::connect(&format!("{}/postgres", opts.pg_base), tokio_postgres::NoTls).await
    {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
            ))
            .await;
    }
    Ok((m?, rss))
}
