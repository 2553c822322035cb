//! pasarela itself: the `otp-send` worker and the vendor simulator as processes, N `otp.send`
//! messages with confirms, every `otp.send.completed` awaited.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use uuid::Uuid;

use crate::floor::publish_window;
use crate::pgcost::PgCost;
use crate::stack::{OTP_SEND, Stack};
use crate::steps::{self, Steps};
use crate::{Measurement, Options, percentile};

/// The mobile number a send goes to: derived from its request id, so distinct per send.
pub fn mobile_for(id: Uuid) -> String {
    format!("+5730{:08}", id.as_u128() % 100_000_000)
}

/// An `otp.send` body as producers send it, to a destination of its own (as real traffic is spread
/// over many users), so the fraud guard counts every send and refuses none.
pub fn sample_body(id: Uuid) -> Vec<u8> {
    let mobile = mobile_for(id);
    serde_json::to_vec(&serde_json::json!({
        "request_id": id.to_string(), "tenant": "bench", "provider": "danaconnect", "channel": "sms",
        "destination": { "mobile": mobile },
        "code": { "type": "numeric", "length": 6, "expires_in_s": 300, "max_tries": 5 },
        "danaconnect": { "id_conversation": 824541,
                         "values": [ { "key": "COD1_MOBILE", "value": mobile } ] }
    }))
    .expect("json")
}

/// Channels that publish `otp.send` into a stack and receive its `otp.send.completed` events.
pub struct Sends {
    publisher: Channel,
    results: Channel,
    results_queue: String,
    work_queue: String,
}

impl Sends {
    /// Declares the results queue and opens the channels; the stack must run `otp-send`.
    pub async fn open(stack: &mut Stack) -> anyhow::Result<Self> {
        let results_queue = stack
            .events_queue("bench.results", "otp.send.completed")
            .await?;
        let publisher = stack.conn.create_channel().await?;
        publisher.confirm_select(Default::default()).await?;
        Ok(Self {
            publisher,
            results: stack.conn.create_channel().await?,
            results_queue,
            work_queue: stack.qualify(OTP_SEND.queue),
        })
    }

    /// Publishes a send for each of `ids` (closed loop, confirms) and waits for each one's result.
    pub async fn measure(&self, ids: &[Uuid], opts: &Options) -> anyhow::Result<Measurement> {
        let n = ids.len();
        let index: Arc<HashMap<String, usize>> = Arc::new(
            ids.iter()
                .enumerate()
                .map(|(i, id)| (id.to_string(), i))
                .collect(),
        );
        let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let epoch = Instant::now();
        let tag = format!("bench-{}", Uuid::new_v4().simple());
        let mut consumer = self
            .results
            .basic_consume(
                self.results_queue.as_str().into(),
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
        // One deadline for publishing and receiving: publishing waits on results to free the window, so
        // it would wait forever if they stopped coming.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(opts.timeout_s);
        tokio::time::timeout_at(
            deadline,
            publish_window(
                &self.publisher,
                &self.work_queue,
                n,
                opts.window,
                &in_flight,
                |i| {
                    sent_at[i].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    let props = BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into())
                        .with_message_id(ShortString::from(ids[i].to_string()));
                    (sample_body(ids[i]), props)
                },
            ),
        )
        .await
        .context("not every result came in time")??;
        let (mut latencies, elapsed) = tokio::time::timeout_at(deadline, receive)
            .await
            .context("not every result came in time")??;
        let _ = self
            .results
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
}

/// Ids for `n` new sends: random (version 4), or time-ordered (version 7) with `--time-ordered-ids`.
fn fresh_ids(n: usize, opts: &Options) -> Vec<Uuid> {
    if opts.time_ordered_ids {
        (0..n).map(|_| Uuid::now_v7()).collect()
    } else {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }
}

/// `otp.send` as the bench measured it.
#[derive(Debug, Clone)]
pub struct SendReport {
    /// Throughput and latency.
    pub measurement: Measurement,
    /// The worker's peak RSS, in KiB.
    pub rss_kib: u64,
    /// What PostgreSQL spent on the measured messages.
    pub pg: PgCost,
    /// Where a message's time went inside the worker.
    pub steps: Steps,
}

/// Runs the worker and the simulator and measures `otp.send`, with its peak RSS and PostgreSQL's cost.
pub async fn otp_send(opts: &Options) -> anyhow::Result<SendReport> {
    let mut stack = Stack::start(opts, &[OTP_SEND]).await?;
    let measured = measure_sends(&mut stack, opts).await;
    let rss_kib = stack.peak_rss_kib(OTP_SEND.binary);
    let metrics = stack.metrics(OTP_SEND.binary).await;
    stack.teardown().await;
    let (measurement, pg) = measured?;
    Ok(SendReport {
        measurement,
        rss_kib,
        pg,
        steps: steps::read(&metrics?, OTP_SEND.queue),
    })
}

/// Warms up, gathers statistics, and measures `opts.count` sends with PostgreSQL's cost of them.
pub async fn measure_sends(
    stack: &mut Stack,
    opts: &Options,
) -> anyhow::Result<(Measurement, PgCost)> {
    let sends = Sends::open(stack).await?;
    if opts.vendor_latency_ms > 0 {
        stack
            .sim_faults(serde_json::json!({
                "vendor": "danaconnect",
                "latency_ms": opts.vendor_latency_ms,
                "latency_jitter_ms": opts.vendor_jitter_ms,
            }))
            .await?;
    }
    sends.measure(&fresh_ids(opts.warmup, opts), opts).await?;
    let probe = stack.probe().await?;
    if !opts.no_analyze {
        probe.analyze().await?;
    }
    let before = probe.counters().await?;
    let m = sends.measure(&fresh_ids(opts.count, opts), opts).await?;
    Ok((m, probe.cost_since(before, opts.count).await?))
}
