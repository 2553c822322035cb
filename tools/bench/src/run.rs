//! pasarela itself: messages published with confirms to a worker's queue, each done when the event
//! that carries its id comes back on `pasarela.events`; and the `otp.send` measurement the cost
//! curve repeats.

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

use crate::Options;
use crate::floor::{publish_window, warmup};
use crate::measure::{Measurement, Pace};
use crate::pgcost::PgCost;
use crate::profile::Recording;
use crate::stack::Stack;
use crate::steps::{self, Steps};

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

/// What a measured message is and when it is done.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// The work queue, without the namespace.
    pub queue: &'static str,
    /// The routing key of the event that ends a message.
    pub done_event: &'static str,
    /// The field of the body and of the event that carries the message's id.
    pub id_field: &'static str,
}

/// `otp.send`, done at `otp.send.completed`.
pub const SEND_FLOW: Flow = Flow {
    queue: "otp.send",
    done_event: "otp.send.completed",
    id_field: "request_id",
};

/// Channels that publish a flow's messages into a stack and receive the events that end them.
pub struct Traffic {
    flow: Flow,
    publisher: Channel,
    results: Channel,
    results_queue: String,
    work_queue: String,
}

impl Traffic {
    /// Declares the events queue and opens the channels; the stack must run the flow's workers.
    pub async fn open(stack: &mut Stack, flow: Flow) -> anyhow::Result<Self> {
        let results_queue = stack
            .events_queue(&format!("bench.{}", flow.done_event), flow.done_event)
            .await?;
        let publisher = stack.conn.create_channel().await?;
        publisher.confirm_select(Default::default()).await?;
        Ok(Self {
            flow,
            publisher,
            results: stack.conn.create_channel().await?,
            results_queue,
            work_queue: stack.qualify(flow.queue),
        })
    }

    /// Publishes `body(id)` for each of `ids` (message id = id) at `pace` and waits for each one's
    /// event. `pace.count` is ignored: every id is sent.
    pub async fn measure(
        &self,
        ids: &[Uuid],
        pace: &Pace,
        timeout: Duration,
        body: impl Fn(Uuid) -> Vec<u8>,
    ) -> anyhow::Result<Measurement> {
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
        let in_flight = Arc::new(tokio::sync::Semaphore::new(pace.in_flight));
        let (idx, sent, released) = (index.clone(), sent_at.clone(), in_flight.clone());
        let id_field = self.flow.id_field;
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
                let Some(i) = body[id_field].as_str().and_then(|r| idx.get(r)) else {
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
        let deadline = tokio::time::Instant::now() + timeout;
        let all = Pace { count: n, ..*pace };
        tokio::time::timeout_at(
            deadline,
            publish_window(&self.publisher, &self.work_queue, &all, &in_flight, |i| {
                let body = body(ids[i]);
                sent_at[i].store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let props = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(ShortString::from(ids[i].to_string()));
                (body, props)
            }),
        )
        .await
        .with_context(|| format!("not every {} came in time", self.flow.done_event))??;
        let (latencies, elapsed) = tokio::time::timeout_at(deadline, receive)
            .await
            .with_context(|| format!("not every {} came in time", self.flow.done_event))??;
        let _ = self
            .results
            .basic_cancel(tag.as_str().into(), Default::default())
            .await;
        anyhow::ensure!(
            latencies.len() == n,
            "{} of {n} {} events",
            latencies.len(),
            self.flow.done_event
        );
        Ok(Measurement::of(latencies, elapsed))
    }
}

/// Ids for `n` new messages: random (version 4), or time-ordered (version 7) with
/// `--time-ordered-ids`.
pub fn fresh_ids(n: usize, opts: &Options) -> Vec<Uuid> {
    if opts.time_ordered_ids {
        (0..n).map(|_| Uuid::now_v7()).collect()
    } else {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }
}

/// What a flow measured at its peak, and, when asked, at a fixed rate.
#[derive(Debug, Clone)]
pub struct FlowReport {
    /// Throughput and latency at the peak (closed loop).
    pub peak: Measurement,
    /// Where a message's time went in the first worker at the peak.
    pub peak_steps: Steps,
    /// Latency at a fixed rate (open loop), when measured.
    pub paced: Option<Measurement>,
    /// Where a message's time went in the first worker at that rate.
    pub paced_steps: Option<Steps>,
    /// What PostgreSQL spent per message at the peak.
    pub pg: PgCost,
}

/// Warms the stack up, gathers statistics, measures `pace` with PostgreSQL's cost, then, when
/// `paced_share` is given, the same flow at that share of the peak rate.
pub async fn measure_flow(
    stack: &mut Stack,
    opts: &Options,
    flow: Flow,
    pace: &Pace,
    paced_share: Option<f64>,
    body: impl Fn(Uuid) -> Vec<u8>,
) -> anyhow::Result<FlowReport> {
    let traffic = Traffic::open(stack, flow).await?;
    let timeout = Duration::from_secs(opts.timeout_s);
    let warm = warmup(opts, pace);
    traffic
        .measure(&fresh_ids(warm.count, opts), &warm, timeout, &body)
        .await?;
    let probe = stack.probe().await?;
    if !opts.no_analyze {
        probe.analyze().await?;
    }
    let (binary, _) = stack.first_worker().context("no worker")?;
    let metrics_before = stack.metrics(binary).await?;
    let before = probe.counters().await?;
    let recording = match &opts.flamegraphs {
        Some(dir) => {
            let (binary, pid) = stack.first_worker().context("no worker")?;
            let data = std::env::temp_dir().join(format!("{}-{binary}.perf", stack.ns));
            Some((binary, Recording::start(pid, &data)?, dir))
        }
        None => None,
    };
    let peak = traffic
        .measure(&fresh_ids(pace.count, opts), pace, timeout, &body)
        .await;
    if let Some((binary, recording, dir)) = recording {
        std::fs::create_dir_all(dir)?;
        let svg = dir.join(format!("flamegraph-{binary}.svg"));
        let title = format!("{binary} under load: {} at its peak", flow.queue);
        recording.finish(&title, &svg).await?;
        println!("flame graph written to {}", svg.display());
    }
    let peak = peak?;
    let pg = probe.cost_since(before, pace.count).await?;
    let metrics_after = stack.metrics(binary).await?;
    let peak_steps = steps::read_between(&metrics_before, &metrics_after, flow.queue);
    let (mut paced, mut paced_steps) = (None, None);
    if let Some(share) = paced_share {
        let at = pace.at_rate(peak.per_second * share);
        let ids = fresh_ids(pace.count, opts);
        paced = Some(traffic.measure(&ids, &at, timeout, &body).await?);
        let after = stack.metrics(binary).await?;
        paced_steps = Some(steps::read_between(&metrics_after, &after, flow.queue));
    }
    Ok(FlowReport {
        peak,
        peak_steps,
        paced,
        paced_steps,
        pg,
    })
}

/// `otp.send` as the bench measured it.
#[derive(Debug, Clone)]
pub struct SendReport {
    /// Throughput, latency, where the time went, and PostgreSQL's cost.
    pub flow: FlowReport,
    /// Each worker's peak RSS, in KiB.
    pub rss_kib: Vec<(&'static str, u64)>,
}

/// Sets the simulated DANAConnect's latency from the options, when they ask for any.
pub async fn vendor_latency(stack: &Stack, opts: &Options) -> anyhow::Result<()> {
    if opts.vendor_latency_ms == 0 {
        return Ok(());
    }
    stack
        .sim_faults(serde_json::json!({
            "vendor": "danaconnect",
            "latency_ms": opts.vendor_latency_ms,
            "latency_jitter_ms": opts.vendor_jitter_ms,
        }))
        .await
}

/// Measures `otp.send` on a started stack running `otp-send`, and tears the stack down.
pub async fn otp_send_on(
    mut stack: Stack,
    opts: &Options,
    pace: &Pace,
    paced_share: Option<f64>,
) -> anyhow::Result<SendReport> {
    let measured = match vendor_latency(&stack, opts).await {
        Ok(()) => measure_flow(&mut stack, opts, SEND_FLOW, pace, paced_share, sample_body).await,
        Err(e) => Err(e),
    };
    let rss_kib = stack.rss_kib();
    stack.teardown().await;
    Ok(SendReport {
        flow: measured?,
        rss_kib,
    })
}
