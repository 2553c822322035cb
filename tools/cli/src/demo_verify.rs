//! The demo's second half: read the codes the simulator delivered and verify them over RPC the way a
//! producer does while its user waits (one in five first with a wrong code), then summarise.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use pasarela_shared::contract::envelope::OutboundMessage;
use uuid::Uuid;

use crate::amqp;
use crate::context::Context;
use crate::otp::VERIFY_QUEUE;
use crate::summary::{millis, percentile};

/// How long the demo waits for all verify replies.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The newest code delivered to each destination, from the simulator's inbox.
pub async fn delivered_codes(sim_url: &str) -> anyhow::Result<HashMap<String, String>> {
    let url = format!("{}/sim/inbox", sim_url.trim_end_matches('/'));
    let inbox: Vec<serde_json::Value> = reqwest::get(&url)
        .await
        .with_context(|| format!("reading {url}"))?
        .json()
        .await
        .context("the simulator's inbox is not JSON")?;
    Ok(inbox
        .iter()
        .filter_map(|e| {
            Some((
                e["to"].as_str()?.to_string(),
                e["code"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// A wrong code of the same shape.
fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| match c {
            '0'..='8' | 'a'..='y' | 'A'..='Y' => char::from(c as u8 + 1),
            '9' => '0',
            _ => 'a',
        })
        .collect()
}

/// What the verifications came to.
#[derive(Debug, Default)]
pub struct VerifySummary {
    by_outcome: BTreeMap<String, usize>,
    /// Right codes not verified, or wrong codes not refused.
    unexpected: usize,
    /// Sends whose code never reached the inbox.
    no_code: usize,
    /// Sorted ascending.
    latencies: Vec<Duration>,
    missing: usize,
}

impl VerifySummary {
    /// Whether every verification answered as it should.
    pub fn as_expected(&self) -> bool {
        self.unexpected == 0 && self.no_code == 0 && self.missing == 0
    }

    /// The summary lines.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let total: usize = self.by_outcome.values().sum();
        let _ = writeln!(out, "verifications        {total:>6}");
        for (outcome, n) in &self.by_outcome {
            let _ = writeln!(out, "  {outcome:<18} {n:>6}");
        }
        let _ = writeln!(
            out,
            "  (answered otherwise than expected: {}; sends without a delivered code: {}; no reply: {})",
            self.unexpected, self.no_code, self.missing
        );
        let _ = writeln!(
            out,
            "verify RPC p50       {:>9}",
            millis(percentile(&self.latencies, 50.0))
        );
        let _ = writeln!(
            out,
            "verify RPC p99       {:>9}",
            millis(percentile(&self.latencies, 99.0))
        );
        out
    }
}

/// Verifies every sent request: one in five first with a wrong code (expecting `incorrect`), then all
/// with the delivered code (expecting `verified`). The RPCs are pipelined on one reply queue.
pub async fn verify_all(
    ctx: &Context,
    connection: &lapin::Connection,
    sent: &[Uuid],
    destinations: &HashMap<Uuid, String>,
    codes: &HashMap<String, String>,
) -> anyhow::Result<VerifySummary> {
    amqp::ensure_work_topology(connection, &ctx.settings, VERIFY_QUEUE).await?;
    let mut summary = VerifySummary::default();
    let mut planned: Vec<(Uuid, String, &'static str)> = Vec::new();
    for (i, request_id) in sent.iter().enumerate() {
        let Some(code) = destinations.get(request_id).and_then(|to| codes.get(to)) else {
            summary.no_code += 1;
            continue;
        };
        if i % 5 == 0 {
            planned.push((*request_id, wrong(code), "incorrect"));
        }
        planned.push((*request_id, code.clone(), "verified"));
    }
    let mut replies = amqp::private_queue(connection, None).await?;
    let channel = amqp::confirm_channel(connection).await?;
    let exchange = ctx.names.work_exchange();
    // Wrong codes go first, one round, so each send's right code comes after its wrong one.
    let (first, second): (Vec<_>, Vec<_>) = planned
        .into_iter()
        .partition(|(_, _, want)| *want == "incorrect");
    for round in [first, second] {
        let mut waiting: HashMap<String, (&'static str, Instant)> = HashMap::new();
        for (request_id, code, want) in round {
            let verification_id = Uuid::new_v4().to_string();
            let body = serde_json::json!({
                "verification_id": verification_id, "request_id": request_id.to_string(), "code": code,
            });
            let mut out = OutboundMessage::json(exchange.clone(), VERIFY_QUEUE, &body);
            out.message_id = Some(verification_id.clone());
            out.correlation_id = Some(verification_id.clone());
            waiting.insert(verification_id, (want, Instant::now()));
            amqp::publish_with_reply_to(&channel, &out, &replies.name)
                .await
                .context("publishing otp.verify")?;
        }
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        while !waiting.is_empty() {
            let Ok(Some(Ok(delivery))) =
                tokio::time::timeout_at(deadline, replies.consumer.next()).await
            else {
                break;
            };
            let Some(correlation) = delivery.properties.correlation_id().as_ref() else {
                continue;
            };
            let Some((want, at)) = waiting.remove(correlation.as_str()) else {
                continue;
            };
            summary.latencies.push(at.elapsed());
            let reply: serde_json::Value =
                serde_json::from_slice(&delivery.data).unwrap_or_default();
            let outcome = reply["outcome"]
                .as_str()
                .unwrap_or("unreadable")
                .to_string();
            if outcome != want {
                summary.unexpected += 1;
            }
            *summary.by_outcome.entry(outcome).or_default() += 1;
        }
        summary.missing += waiting.len();
    }
    summary.latencies.sort_unstable();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_codes_keep_the_shape_and_differ_everywhere() {
        for code in ["123456", "9Zz0aB", "zzzz"] {
            let w = wrong(code);
            assert_eq!(w.len(), code.len());
            assert!(
                w.chars().zip(code.chars()).all(|(a, b)| a != b),
                "{code} {w}"
            );
        }
    }

    #[test]
    fn the_summary_flags_anything_unexpected() {
        let mut s = VerifySummary::default();
        s.by_outcome.insert("verified".into(), 3);
        s.latencies = vec![Duration::from_millis(2), Duration::from_millis(4)];
        assert!(s.as_expected());
        let text = s.render();
        assert!(text.contains("verifications             3"), "{text}");
        assert!(text.contains("verify RPC p99            4 ms"), "{text}");
        s.unexpected = 1;
        assert!(!s.as_expected());
    }
}
