//! `pasarela dlq list|replay <queue>`: what sits in a work queue's `.dead` queue, and sending it back.
//!
//! The broker's `.dead` queue holds the messages; the `dead_letters` table holds why each got there.
//! A replay republishes each message to the work exchange marked with `x-pasarela-replay`, which lets a
//! message that failed for good start over, and only then acks the dead copy.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::SecondsFormat;
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::headers::{
    ATTEMPT_HEADER, DEFERRED_HEADER, ERROR_HEADER, HeaderValue, REPLAY_HEADER,
};
use pasarela_shared::contract::queue::WORK_QUEUES;
use pasarela_shared::runtime::publisher::{Publisher, headers_from_table};
use pasarela_shared::store::dead_letters::{self, WaitingRow};
use uuid::Uuid;

use crate::amqp;
use crate::context::{self, Context};

/// The header naming the class of failure that dead-lettered a message (set beside `ERROR_HEADER`).
const ERROR_KIND_HEADER: &str = "x-pasarela-error-kind";

/// `pasarela dlq ...`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a work queue's dead letters not yet replayed, and how many messages its .dead queue holds.
    List(ListArgs),
    /// Republish the messages of a work queue's .dead queue to the work exchange.
    Replay(ReplayArgs),
}

/// Flags of `pasarela dlq list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The work queue, e.g. otp.send.
    #[arg(value_parser = PossibleValuesParser::new(WORK_QUEUES))]
    pub queue: String,
    /// Most rows to print, oldest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// Flags of `pasarela dlq replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The work queue, e.g. otp.send.
    #[arg(value_parser = PossibleValuesParser::new(WORK_QUEUES))]
    pub queue: String,
    /// Most messages to replay (default: every message the .dead queue holds when the replay starts).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Show what would be replayed without taking any message from the broker.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `pasarela dlq ...`.
pub async fn run(command: DlqCommand) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::List(args) => list(args).await,
        DlqCommand::Replay(args) => replay(args).await,
    }
}

/// Shortens `s` to at most `max` characters for a table cell.
pub fn cell(s: &str, max: usize) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn print_rows(rows: &[WaitingRow], total: i64) {
    if rows.is_empty() {
        println!("no dead letters waiting for replay");
        return;
    }
    println!(
        "{:>8}  {:<36}  {:<12}  {:<24}  reason",
        "id", "message_id", "kind", "created_at"
    );
    for r in rows {
        println!(
            "{:>8}  {:<36}  {:<12}  {:<24}  {}",
            r.id,
            cell(r.message_id.as_deref().unwrap_or("-"), 36),
            r.kind,
            r.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            cell(&r.reason, 100)
        );
    }
    if total > rows.len() as i64 {
        println!("... {} more (use --limit)", total - rows.len() as i64);
    }
}

/// The broker's message count of the `.dead` queue, or a note that it does not exist.
fn describe_count(dead: &str, count: Option<u32>) -> String {
    match count {
        Some(n) => format!("broker queue {dead}: {n} message(s)"),
        None => {
            format!("broker queue {dead}: does not exist (no worker of this queue has started)")
        }
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let connection = ctx.broker().await?;
    let dead = ctx.names.dead_queue(&args.queue);
    let count = amqp::message_count(&connection, &dead).await?;
    context::close(&connection).await;
    let (rows, total) = dead_letters::waiting(&pool, &args.queue, args.limit).await?;
    print_rows(&rows, total);
    println!("{}", describe_count(&dead, count));
    Ok(ExitCode::SUCCESS)
}

/// The headers a replayed copy carries: the original ones less the dead-letter and retry bookkeeping,
/// plus the replay mark.
pub fn replay_headers(mut headers: BTreeMap<String, HeaderValue>) -> BTreeMap<String, HeaderValue> {
    for name in [
        ERROR_HEADER,
        ERROR_KIND_HEADER,
        ATTEMPT_HEADER,
        DEFERRED_HEADER,
    ] {
        headers.remove(name);
    }
    // The broker's own record of the old life (x-death arrays are never carried over at all).
    headers.retain(|k, _| {
        k != "x-delivery-count"
            && !k.starts_with("x-first-death-")
            && !k.starts_with("x-last-death-")
    });
    headers.insert(REPLAY_HEADER.into(), HeaderValue::Text("true".into()));
    headers
}

/// The copy of a dead message to publish to `exchange` with `routing_key`.
pub fn replay_copy(
    props: &BasicProperties,
    body: Vec<u8>,
    exchange: String,
    routing_key: &str,
) -> OutboundMessage {
    let text = |s: &Option<lapin::types::ShortString>| s.as_ref().map(|s| s.as_str().to_string());
    OutboundMessage {
        id: Uuid::now_v7(),
        exchange,
        routing_key: routing_key.to_string(),
        message_id: text(props.message_id()),
        correlation_id: text(props.correlation_id()),
        // A replay must not answer a caller that gave up long ago.
        reply_to: None,
        content_type: text(props.content_type()),
        expiration_ms: None,
        mandatory: false,
        headers: replay_headers(headers_from_table(props.headers().as_ref())),
        body,
    }
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let connection = ctx.broker().await?;
    let dead = ctx.names.dead_queue(&args.queue);
    let Some(count) = amqp::message_count(&connection, &dead).await? else {
        println!("{}", describe_count(&dead, None));
        context::close(&connection).await;
        return Ok(ExitCode::SUCCESS);
    };
    // Never more than the queue held at the start: a message that fails again at once comes back to
    // `.dead` and would otherwise be replayed round and round.
    let budget = args.limit.map_or(count, |l| l.min(count));

    if args.dry_run {
        context::close(&connection).await;
        println!("{}", describe_count(&dead, Some(count)));
        println!(
            "dry run: would replay up to {budget} message(s) to {} with routing key {}",
            ctx.names.work_exchange(),
            args.queue
        );
        let (rows, total) = dead_letters::waiting(&pool, &args.queue, budget).await?;
        print_rows(&rows, total);
        return Ok(ExitCode::SUCCESS);
    }

    amqp::ensure_work_topology(&connection, &ctx.settings, &args.queue).await?;
    let publisher = Publisher::new();
    publisher.attach(&connection).await?;
    let channel = connection.create_channel().await?;
    let mut replayed_ids = Vec::new();
    let mut replayed = 0u32;
    let mut failure = None;
    while replayed < budget {
        let get = channel
            .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false })
            .await;
        let message = match get {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                failure = Some(anyhow::Error::from(e).context("taking a message from the broker"));
                break;
            }
        };
        let lapin::message::Delivery {
            properties,
            data,
            acker,
            ..
        } = message.delivery;
        let copy = replay_copy(&properties, data, ctx.names.work_exchange(), &args.queue);
        if let Err(e) = publisher.publish(&copy).await {
            // Not confirmed: the dead copy goes back where it was, nothing is lost.
            let _ = acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
            failure = Some(anyhow::Error::from(e).context("republishing a dead message"));
            break;
        }
        if let Err(e) = acker.ack(BasicAckOptions::default()).await {
            // The republished copy stands; the dead copy returns to `.dead`, and replaying it again is
            // harmless because the work row answers a finished message from its stored result.
            failure = Some(anyhow::Error::from(e).context("acking a replayed message"));
            break;
        }
        replayed += 1;
        replayed_ids.extend(copy.message_id);
    }
    context::close(&connection).await;

    let marked = dead_letters::mark_replayed(&pool, &args.queue, &replayed_ids)
        .await
        .context("updating dead_letters");
    println!("replayed {replayed} message(s) from {dead}");
    match marked {
        Ok(rows) => println!("marked {rows} dead_letters row(s) replayed"),
        Err(e) => eprintln!("warning: could not mark dead_letters rows replayed: {e:#}"),
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasarela_shared::runtime::publisher::headers_to_table;

    #[test]
    fn a_replay_drops_the_bookkeeping_and_keeps_the_rest() {
        let mut h = BTreeMap::new();
        h.insert(ERROR_HEADER.into(), HeaderValue::Text("invalid".into()));
        h.insert(
            ERROR_KIND_HEADER.into(),
            HeaderValue::Text("internal".into()),
        );
        h.insert(ATTEMPT_HEADER.into(), HeaderValue::Int(4));
        h.insert(DEFERRED_HEADER.into(), HeaderValue::Text("true".into()));
        h.insert("x-delivery-count".into(), HeaderValue::Int(2));
        h.insert("x-first-death-queue".into(), HeaderValue::Text("q".into()));
        h.insert("traceparent".into(), HeaderValue::Text("00-a-b-01".into()));
        h.insert("tenant-tag".into(), HeaderValue::Int(7));
        let out = replay_headers(h);
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(keys, ["tenant-tag", "traceparent", REPLAY_HEADER]);
        assert_eq!(out[REPLAY_HEADER], HeaderValue::Text("true".into()));
    }

    #[test]
    fn the_copy_keeps_ids_type_and_body() {
        let mut h = BTreeMap::new();
        h.insert(ATTEMPT_HEADER.to_string(), HeaderValue::Int(3));
        let props = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_correlation_id("c-1".into())
            .with_content_type("application/json".into())
            .with_reply_to("gone".into())
            .with_headers(headers_to_table(&h));
        let copy = replay_copy(&props, b"{}".to_vec(), "ns.pasarela".into(), "otp.send");
        assert_eq!(copy.exchange, "ns.pasarela");
        assert_eq!(copy.routing_key, "otp.send");
        assert_eq!(copy.message_id.as_deref(), Some("m-1"));
        assert_eq!(copy.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(copy.content_type.as_deref(), Some("application/json"));
        assert_eq!(copy.body, b"{}");
        assert!(!copy.headers.contains_key(ATTEMPT_HEADER));
        assert!(copy.headers.contains_key(REPLAY_HEADER));
    }

    #[test]
    fn long_reasons_are_cut_for_the_table() {
        assert_eq!(cell("short", 10), "short");
        assert_eq!(cell("a\nb", 10), "a b");
        assert_eq!(cell("abcdefghijkl", 5), "abcd…");
    }
}
