//! The `otp.verify` RPC round trip as a user waiting on it sees it: codes sent through `otp-send` to
//! the zero-latency simulator, read back from its inbox, then verified one at a time over RPC
//! (`reply_to` + `correlation_id`) through `otp-verify`, each timed from publish to its reply.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::Options;
use crate::measure::{Measurement, Pace};
use crate::run::{SEND_FLOW, Traffic, mobile_for, sample_body};
use crate::stack::{OTP_SEND, OTP_VERIFY, Stack};

/// Longest wait for one reply before it counts as an error.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// What the `otp.verify` measurement found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The RPCs made one at a time and answered `verified` (their rate is one over their mean).
    pub one_at_a_time: Measurement,
    /// The RPCs made `--verify-in-flight` at a time: their throughput and latency.
    pub parallel: Measurement,
    /// How many were in flight for `parallel`.
    pub in_flight: usize,
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
        serde_json::json!({
            "one_at_a_time": self.one_at_a_time.to_json(), "attempted": self.attempted,
            "errors": self.errors, "peak_rss_kib": self.rss_kib,
            "in_flight": self.in_flight, "parallel": self.parallel.to_json(),
        })
    }
}

/// Runs the simulator, `otp-send` and `otp-verify`, and measures `opts.verify_count` RPCs.
pub async fn otp_verify(opts: &Options) -> anyhow::Result<VerifyReport> {
    let mut stack = Stack::start(opts, &[OTP_SEND, OTP_VERIFY], &[]).await?;
    let found = measure(&mut stack, opts).await;
    let rss_kib = stack.peak_rss_kib(OTP_VERIFY.binary);
    stack.teardown().await;
    let found = found?;
    Ok(VerifyReport {
        // Back to back, so the time they took is the sum of their round trips.
        one_at_a_time: {
            let took = found.one_at_a_time.iter().sum();
            Measurement::of(found.one_at_a_time, took)
        },
        parallel: found.parallel,
        in_flight: opts.verify_in_flight,
        attempted: found.attempted,
        errors: found.errors,
        rss_kib,
    })
}

/// What the RPCs answered.
struct Found {
    one_at_a_time: Vec<Duration>,
    parallel: Measurement,
    attempted: usize,
    errors: BTreeMap<String, usize>,
}

/// The outcome of one RPC: its latency when `verified`, or the kind of error.
type Outcome = Result<Duration, String>;

async fn measure(stack: &mut Stack, opts: &Options) -> anyhow::Result<Found> {
    let warmup = opts.verify_warmup;
    let (sequential, parallel) = (warmup + opts.verify_count, opts.verify_parallel_count);
    let ids = ids_with_distinct_destinations(sequential + parallel);
    let pace = Pace {
        count: ids.len(),
        ..crate::send_pace(opts)
    };
    Traffic::open(stack, SEND_FLOW)
        .await?
        .measure(
            &ids,
            &pace,
            Duration::from_secs(opts.timeout_s),
            sample_body,
        )
        .await?;
    let inbox = http_get(&stack.sim_addr, "/sim/inbox").await?;
    let codes = codes_by_destination(&inbox)?;

    let rpc = Rpc::open(stack).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(opts.timeout_s);
    let verify = |id: &Uuid| {
        let code = codes.get(&mobile_for(*id)).cloned();
        let rpc = &rpc;
        let id = *id;
        async move {
            match code {
                Some(code) => rpc.call(id, &code).await,
                None => Ok(Err("no code delivered".to_string())),
            }
        }
    };
    let mut errors = BTreeMap::new();
    let mut tally = |outcome: Outcome| match outcome {
        Ok(latency) => Some(latency),
        Err(kind) => {
            *errors.entry(kind).or_default() += 1;
            None
        }
    };
    let mut one_at_a_time = Vec::with_capacity(opts.verify_count);
    let within = tokio::time::timeout_at(deadline, async {
        for (i, id) in ids[..sequential].iter().enumerate() {
            if let Some(latency) = tally(verify(id).await?)
                && i >= warmup
            {
                one_at_a_time.push(latency);
            }
        }
        let start = Instant::now();
        let outcomes: Vec<anyhow::Result<Outcome>> = futures::stream::iter(&ids[sequential..])
            .map(verify)
            .buffer_unordered(opts.verify_in_flight.max(1))
            .collect()
            .await;
        let elapsed = start.elapsed();
        let mut latencies = Vec::with_capacity(parallel);
        for outcome in outcomes {
            latencies.extend(tally(outcome?));
        }
        anyhow::Ok(Measurement::of(latencies, elapsed))
    })
    .await;
    rpc.close().await;
    let parallel = within.map_err(|_| {
        anyhow::anyhow!("the otp.verify RPCs took longer than {} s", opts.timeout_s)
    })??;
    Ok(Found {
        one_at_a_time,
        parallel,
        attempted: ids.len(),
        errors,
    })
}

/// A reply as the consumer received it: when, and its body.
type Reply = (Instant, Vec<u8>);

/// Callers waiting for their reply, by correlation id.
type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// A caller of `otp.verify` over RPC, with one private reply queue consumed for its whole life;
/// any number of calls may be in flight at once.
struct Rpc {
    publisher: Channel,
    consumer_channel: Channel,
    exchange: String,
    reply_to: ShortString,
    waiting: Waiting,
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
        let waiting: Waiting = Arc::default();
        let routes = waiting.clone();
        // The receipt time is taken here, as each reply arrives, whatever the callers await meanwhile;
        // a reply nobody waits for any more (its call timed out) is dropped.
        let receiver = tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let at = Instant::now();
                let Some(id) = d.properties.correlation_id().as_ref() else {
                    continue;
                };
                let caller = routes.lock().expect("waiting").remove(id.as_str());
                if let Some(caller) = caller {
                    let _ = caller.send((at, d.data));
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
            waiting,
            receiver,
        })
    }

    /// Verifies `code` for the send `request_id` with a fresh verification id: the round trip when the
    /// reply says `verified`, else what it said, or that none came within [`RPC_TIMEOUT`].
    async fn call(&self, request_id: Uuid, code: &str) -> anyhow::Result<Outcome> {
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
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiting")
            .insert(correlation_id.clone(), tx);
        let start = Instant::now();
        let confirm = self
            .publisher
            .basic_publish(
                self.exchange.as_str().into(),
                OTP_VERIFY.queue.unwrap_or_default().into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?
            .await?;
        anyhow::ensure!(confirm.is_ack(), "the broker refused an otp.verify");
        let Ok(reply) = tokio::time::timeout(RPC_TIMEOUT, rx).await else {
            self.waiting
                .lock()
                .expect("waiting")
                .remove(&correlation_id);
            return Ok(Err(format!("no reply in {} s", RPC_TIMEOUT.as_secs())));
        };
        let (at, body) = reply.context("the reply consumer stopped")?;
        Ok(match outcome_of(&body) {
            outcome if outcome == "verified" => Ok(at.saturating_duration_since(start)),
            outcome => Err(outcome),
        })
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
