//! The `otp.verify` RPC round trip as a user waiting on it sees it: codes sent through `otp-send` to
//! the zero-latency simulator, read back from its inbox, then verified one at a time over RPC
//! (`reply_to` + `correlation_id`) through `otp-verify`, each timed from publish to its reply.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::run::{Sends, mobile_for};
use crate::stack::{OTP_SEND, OTP_VERIFY, Stack};
use crate::{Options, percentile};

/// Longest wait for one reply before it counts as an error.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Latency figures of the measured round trips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Round trips measured.
    pub count: usize,
    /// Mean round trip.
    pub mean: Duration,
    /// Median round trip.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest round trip.
    pub max: Duration,
}

impl Summary {
    /// The figures of a set of latencies (in any order).
    pub fn of(mut latencies: Vec<Duration>) -> Self {
        latencies.sort();
        let count = latencies.len();
        let total: Duration = latencies.iter().sum();
        Self {
            count,
            mean: total.checked_div(count as u32).unwrap_or_default(),
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
            p999: percentile(&latencies, 99.9),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }
}

/// What the `otp.verify` measurement found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Latencies of the measured RPCs answered `verified`.
    pub summary: Summary,
    /// RPCs made, warm-up included.
    pub attempted: usize,
    /// Everything that was not a `verified` reply, by kind (warm-up included).
    pub errors: BTreeMap<String, usize>,
    /// The `otp-verify` worker's peak RSS, KiB.
    pub rss_kib: u64,
}

impl VerifyReport {
    /// The report as JSON, latencies in milliseconds.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let s = &self.summary;
        serde_json::json!({
            "rpcs": s.count, "mean_ms": ms(s.mean), "p50_ms": ms(s.p50), "p99_ms": ms(s.p99),
            "p999_ms": ms(s.p999), "max_ms": ms(s.max), "attempted": self.attempted,
            "errors": self.errors, "peak_rss_kib": self.rss_kib,
        })
    }
}

/// Runs the simulator, `otp-send` and `otp-verify`, and measures `opts.verify_count` RPCs.
pub async fn otp_verify(opts: &Options) -> anyhow::Result<VerifyReport> {
    let mut stack = Stack::start(opts, &[OTP_SEND, OTP_VERIFY]).await?;
    let found = measure(&mut stack, opts).await;
    let rss_kib = stack.peak_rss_kib(OTP_VERIFY.binary);
    stack.teardown().await;
    let (latencies, attempted, errors) = found?;
    Ok(VerifyReport {
        summary: Summary::of(latencies),
        attempted,
        errors,
        rss_kib,
    })
}

type Found = (Vec<Duration>, usize, BTreeMap<String, usize>);

async fn measure(stack: &mut Stack, opts: &Options) -> anyhow::Result<Found> {
    let warmup = opts.verify_warmup;
    let ids = ids_with_distinct_destinations(warmup + opts.verify_count);
    Sends::open(stack).await?.measure(&ids, opts).await?;
    let inbox = http_get(&stack.sim_addr, "/sim/inbox").await?;
    let codes = codes_by_destination(&inbox)?;

    let mut rpc = Rpc::open(stack).await?;
    let deadline = Instant::now() + Duration::from_secs(opts.timeout_s);
    let mut latencies = Vec::with_capacity(opts.verify_count);
    let mut errors = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the otp.verify RPCs took longer than {} s",
            opts.timeout_s
        );
        let Some(code) = codes.get(&mobile_for(*id)) else {
            *errors.entry("no code delivered".into()).or_default() += 1;
            continue;
        };
        match rpc.call(*id, code).await? {
            Some((latency, outcome)) if outcome == "verified" => {
                if i >= warmup {
                    latencies.push(latency);
                }
            }
            Some((_, outcome)) => *errors.entry(outcome).or_default() += 1,
            None => {
                let kind = format!("no reply in {} s", RPC_TIMEOUT.as_secs());
                *errors.entry(kind).or_default() += 1;
            }
        }
    }
    rpc.close().await;
    Ok((latencies, ids.len(), errors))
}

/// A reply as the consumer received it.
struct Reply {
    correlation_id: Option<String>,
    body: Vec<u8>,
    at: Instant,
}

/// A caller of `otp.verify` over RPC, with one private reply queue consumed for its whole life.
struct Rpc {
    publisher: Channel,
    consumer_channel: Channel,
    exchange: String,
    reply_to: ShortString,
    replies: mpsc::UnboundedReceiver<Reply>,
    receiver: tokio::task::JoinHandle<()>,
}

impl Rpc {
    async fn open(stack: &Stack) -> anyhow::Result<Self> {
        let consumer_channel = stack.conn.create_channel().await?;
        let queue = consumer_channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .context("declaring the reply queue")?;
        let reply_to = queue.name().clone();
        let mut consumer = consumer_channel
            .basic_consume(
                reply_to.clone(),
                "bench-verify-replies".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let (tx, replies) = mpsc::unbounded_channel();
        // The receipt time is taken here, as each reply arrives, whatever the caller awaits meanwhile.
        let receiver = tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let reply = Reply {
                    at: Instant::now(),
                    correlation_id: d
                        .properties
                        .correlation_id()
                        .as_ref()
                        .map(|c| c.as_str().to_string()),
                    body: d.data,
                };
                if tx.send(reply).is_err() {
                    break;
                }
            }
        });
        let publisher = stack.conn.create_channel().await?;
        publisher.confirm_select(Default::default()).await?;
        Ok(Self {
            publisher,
            consumer_channel,
            exchange: stack.qualify("pasarela"),
            reply_to,
            replies,
            receiver,
        })
    }

    /// Verifies `code` for the send `request_id` with a fresh verification id; returns the round trip
    /// and the reply's outcome, or `None` when no reply came within [`RPC_TIMEOUT`].
    async fn call(
        &mut self,
        request_id: Uuid,
        code: &str,
    ) -> anyhow::Result<Option<(Duration, String)>> {
        let verification_id = Uuid::new_v4().to_string();
        let correlation_id = Uuid::new_v4().to_string();
        let body = serde_json::to_vec(&serde_json::json!({
            "verification_id": verification_id, "request_id": request_id.to_string(), "code": code
        }))?;
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(verification_id))
            .with_reply_to(self.reply_to.clone())
            .with_correlation_id(ShortString::from(correlation_id.as_str()));
        let start = Instant::now();
        let confirm = self
            .publisher
            .basic_publish(
                self.exchange.as_str().into(),
                OTP_VERIFY.queue.into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?
            .await?;
        anyhow::ensure!(confirm.is_ack(), "the broker refused an otp.verify");
        let deadline = tokio::time::Instant::from_std(start + RPC_TIMEOUT);
        loop {
            match tokio::time::timeout_at(deadline, self.replies.recv()).await {
                Err(_) => return Ok(None),
                Ok(None) => anyhow::bail!("the reply consumer stopped"),
                Ok(Some(r)) if r.correlation_id.as_deref() == Some(correlation_id.as_str()) => {
                    let latency = r.at.saturating_duration_since(start);
                    return Ok(Some((latency, outcome_of(&r.body))));
                }
                // A late reply to a call that already timed out.
                Ok(Some(_)) => {}
            }
        }
    }

    async fn close(self) {
        self.receiver.abort();
        let _ = self.consumer_channel.close(200, "done".into()).await;
        let _ = self.publisher.close(200, "done".into()).await;
    }
}

/// The `outcome` of a reply body, or what is wrong with it.
fn outcome_of(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v["outcome"]
            .as_str()
            .map_or_else(|| "reply without an outcome".into(), str::to_string),
        Err(_) => "unreadable reply".into(),
    }
}

/// `n` fresh request ids whose destinations ([`mobile_for`]) are all different, so that each code in
/// the simulator's inbox belongs to exactly one of them.
fn ids_with_distinct_destinations(n: usize) -> Vec<Uuid> {
    let mut taken = HashSet::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let id = Uuid::new_v4();
        if taken.insert(mobile_for(id)) {
            ids.push(id);
        }
    }
    ids
}

/// The simulator's inbox (`[{vendor, to, code, request_id, at}]`) as destination → newest code.
fn codes_by_destination(inbox: &[u8]) -> anyhow::Result<HashMap<String, String>> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(inbox).context("the simulator's inbox is not a JSON array")?;
    Ok(entries
        .iter()
        .filter_map(|e| Some((e["to"].as_str()?.into(), e["code"].as_str()?.into())))
        .collect())
}

/// `GET http://<addr><path>`; the body of a successful answer.
async fn http_get(addr: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    let url = format!("http://{addr}{path}");
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?;
    Ok(response.bytes().await?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_mean_percentiles_and_max() {
        let s = Summary::of((1..=1000).rev().map(Duration::from_millis).collect());
        assert_eq!(s.count, 1000);
        assert_eq!(s.mean, Duration::from_micros(500_500));
        assert_eq!(s.p50, Duration::from_millis(501));
        assert_eq!(s.p99, Duration::from_millis(990));
        assert_eq!(s.p999, Duration::from_millis(999));
        assert_eq!(s.max, Duration::from_millis(1000));
        assert_eq!(Summary::of(Vec::new()).mean, Duration::ZERO);
    }

    #[test]
    fn outcomes_are_read_from_replies() {
        assert_eq!(outcome_of(br#"{"outcome":"verified"}"#), "verified");
        assert_eq!(
            outcome_of(br#"{"status":"failed"}"#),
            "reply without an outcome"
        );
        assert_eq!(outcome_of(b"nope"), "unreadable reply");
    }

    #[test]
    fn ids_get_destinations_of_their_own() {
        let ids = ids_with_distinct_destinations(5000);
        let mobiles: HashSet<String> = ids.iter().map(|id| mobile_for(*id)).collect();
        assert_eq!((ids.len(), mobiles.len()), (5000, 5000));
    }

    #[test]
    fn inbox_maps_destinations_to_their_newest_code() {
        let inbox = br#"[
            {"vendor":"danaconnect","to":"+573000000001","code":"111111","request_id":"1","at":"t"},
            {"vendor":"danaconnect","to":"+573000000002","code":"222222","request_id":"2","at":"t"},
            {"vendor":"danaconnect","to":"+573000000001","code":"333333","request_id":"3","at":"t"}
        ]"#;
        let codes = codes_by_destination(inbox).unwrap();
        assert_eq!(codes.len(), 2);
        assert_eq!(codes["+573000000001"], "333333");
        assert!(codes_by_destination(b"{}").is_err());
    }
}
