//! `pasarela dlq list|show|replay|discard`: what sits in a work queue's `.dead` queue, one letter
//! whole, and sending letters back or throwing them away, by id or by filter.
//!
//! The broker's `.dead` queue holds the messages; the `dead_letters` table holds why each got there,
//! and whether it was replayed or discarded (with the reason). A replay republishes each chosen message
//! to the work exchange marked with `x-pasarela-replay`, which lets a message that failed for good start
//! over, and only then acks the dead copy.

mod replay;
pub(crate) mod show;
mod walk;

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pasarela_shared::contract::queue::WORK_QUEUES;
use pasarela_shared::runtime::publisher::Publisher;
use pasarela_shared::store::dead_letters::{self, Selector, WaitingRow};
use pasarela_shared::store::operator_actions;
use serde::Serialize;

use crate::amqp;
use crate::context::{self, Context};
use crate::format::{self, Format};
use walk::{Action, Wanted};

/// `pasarela dlq ...`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a work queue's open dead letters (neither replayed nor discarded), and how many messages
    /// its .dead queue holds.
    #[command(after_help = "Examples:\n  pasarela dlq list otp.send\n  \
        pasarela dlq list vendor.call --kind vendor --since 2h --format json")]
    List(ListArgs),
    /// Print one dead letter whole: why, when, its headers and its body with secrets redacted.
    #[command(after_help = "Examples:\n  pasarela dlq show 42\n  \
        pasarela dlq show 0193a1b2-... --format json")]
    Show(show::ShowArgs),
    /// Republish chosen messages of a work queue's .dead queue to the work exchange.
    #[command(after_help = "Examples:\n  pasarela dlq replay otp.send --dry-run\n  \
        pasarela dlq replay vendor.call --kind vendor --since 1h\n  \
        pasarela dlq replay otp.send --id 41 --id 42")]
    Replay(ReplayArgs),
    /// Remove chosen messages from a work queue's .dead queue for good, recording the reason.
    #[command(after_help = "Examples:\n  \
        pasarela dlq discard otp.send --id 42 --reason \"customer cancelled\"\n  \
        pasarela dlq discard vendor.call --kind invalid --until 7d --reason \"bad producer build\" --dry-run")]
    Discard(DiscardArgs),
}

/// Which open letters of which work queue.
#[derive(Debug, Args)]
pub struct Choice {
    /// The work queue, e.g. otp.send.
    #[arg(value_parser = PossibleValuesParser::new(WORK_QUEUES))]
    pub queue: String,
    /// Only this dead letter (its id from `dlq list`); repeat for more.
    #[arg(long = "id")]
    pub ids: Vec<i64>,
    /// Only letters of this class of failure (invalid, vendor, auth, internal, exhausted, ...).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only letters dead-lettered at or after this time: RFC 3339, or a span ago (2h, 1d).
    #[arg(long, value_parser = format::moment)]
    pub since: Option<DateTime<Utc>>,
    /// Only letters dead-lettered before this time: RFC 3339, or a span ago.
    #[arg(long, value_parser = format::moment)]
    pub until: Option<DateTime<Utc>>,
}

impl Choice {
    fn selector(&self) -> Selector {
        Selector {
            ids: self.ids.clone(),
            kind: self.kind.clone(),
            since: self.since,
            until: self.until,
        }
    }
}

/// Flags of `pasarela dlq list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub choice: Choice,
    /// Most rows to print, oldest first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// table or json.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// How a replay or a discard goes: how many, for real or not, printed how.
#[derive(Debug, Args)]
pub struct Walk {
    /// Most messages to act on (default: every chosen message the .dead queue holds at the start).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Show what would be done without taking any message from the broker.
    #[arg(long)]
    pub dry_run: bool,
    /// table or json.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Flags of `pasarela dlq replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub choice: Choice,
    #[command(flatten)]
    pub walk: Walk,
}

/// Flags of `pasarela dlq discard`.
#[derive(Debug, Args)]
pub struct DiscardArgs {
    #[command(flatten)]
    pub choice: Choice,
    /// Why these letters are thrown away; kept on their rows.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub walk: Walk,
}

/// Runs `pasarela dlq ...`.
pub async fn run(command: DlqCommand) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::List(args) => list(args).await,
        DlqCommand::Show(args) => show::run(args).await,
        DlqCommand::Replay(args) => take(args.choice, args.walk, None).await,
        DlqCommand::Discard(args) => {
            if args.reason.trim().is_empty() {
                anyhow::bail!("--reason must say why the letters are discarded");
            }
            take(args.choice, args.walk, Some(args.reason)).await
        }
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
        println!("no open dead letters match");
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

/// `dlq list --format json`.
#[derive(Serialize)]
struct Listing<'a> {
    queue: &'a str,
    dead_queue: &'a str,
    broker_messages: Option<u32>,
    open_letters: i64,
    letters: &'a [WaitingRow],
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let connection = ctx.broker().await?;
    let queue = &args.choice.queue;
    let dead = ctx.names.dead_queue(queue);
    let count = amqp::message_count(&connection, &dead).await?;
    context::close(&connection).await;
    let (rows, total) =
        dead_letters::waiting(&pool, queue, &args.choice.selector(), args.limit).await?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&Listing {
                queue,
                dead_queue: &dead,
                broker_messages: count,
                open_letters: total,
                letters: &rows,
            })?
        ),
        Format::Table => {
            print_rows(&rows, total);
            println!("{}", describe_count(&dead, count));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a replay or a discard did, as `--format json` prints it.
#[derive(Serialize)]
struct Outcome<'a> {
    action: &'a str,
    queue: &'a str,
    dead_queue: &'a str,
    dry_run: bool,
    broker_messages: u32,
    chosen: i64,
    done: u32,
    kept: u32,
    marked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    letters: &'a [WaitingRow],
}

/// Replays (`reason` is `None`) or discards the chosen letters of a queue.
async fn take(choice: Choice, walk: Walk, reason: Option<String>) -> anyhow::Result<ExitCode> {
    let Walk {
        limit,
        dry_run,
        format,
    } = walk;
    let action_name = if reason.is_some() {
        "discard"
    } else {
        "replay"
    };
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let connection = ctx.broker().await?;
    let queue = choice.queue.as_str();
    let dead = ctx.names.dead_queue(queue);
    let Some(count) = amqp::message_count(&connection, &dead).await? else {
        context::close(&connection).await;
        anyhow::bail!("{}", describe_count(&dead, None));
    };
    let selector = choice.selector();
    let (rows, chosen) =
        dead_letters::waiting(&pool, queue, &selector, limit.unwrap_or(u32::MAX)).await?;
    // The whole queue when no filter narrows it (messages without a message_id too); else the
    // messages of the chosen rows.
    let wanted = if selector.is_everything() {
        Wanted::All
    } else {
        Wanted::Ids(
            rows.iter()
                .filter_map(|r| r.message_id.clone())
                .collect::<HashSet<_>>(),
        )
    };
    let budget = match &wanted {
        Wanted::All => limit.map_or(count, |l| l.min(count)),
        Wanted::Ids(ids) => limit.map_or(ids.len() as u32, |l| l.min(ids.len() as u32)),
    };
    let mut outcome = Outcome {
        action: action_name,
        queue,
        dead_queue: &dead,
        dry_run,
        broker_messages: count,
        chosen,
        done: 0,
        kept: 0,
        marked: 0,
        reason: reason.as_deref(),
        letters: &rows,
    };
    if dry_run || budget == 0 {
        context::close(&connection).await;
        report(&outcome, format)?;
        return Ok(ExitCode::SUCCESS);
    }

    let bar = progress(budget, action_name, format);
    let (walked, failure) = walk_dead(
        &ctx,
        &connection,
        queue,
        (count, budget),
        &wanted,
        reason.is_none(),
        &bar,
    )
    .await;
    bar.finish_and_clear();
    context::close(&connection).await;

    let marked = match &reason {
        Some(why) => dead_letters::mark_discarded(&pool, queue, &walked.message_ids, why).await,
        None => dead_letters::mark_replayed(&pool, queue, &walked.message_ids).await,
    }
    .context("updating dead_letters");
    outcome.done = walked.done;
    outcome.kept = walked.kept;
    match marked {
        Ok(rows) => outcome.marked = rows,
        Err(e) => eprintln!("warning: could not mark the dead_letters rows: {e:#}"),
    }
    if let Err(e) = record_action(&pool, &choice, &outcome).await {
        eprintln!("warning: could not record the action in operator_actions: {e:#}");
    }
    report(&outcome, format)?;
    match failure {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Records a replay or discard in `operator_actions`, as the console records its own, under
/// `cli:<user>` (`$USER`, else `$LOGNAME`): every action on dead letters is on the console's Actions
/// page, whichever way it was taken.
async fn record_action(
    pool: &deadpool_postgres::Pool,
    choice: &Choice,
    outcome: &Outcome<'_>,
) -> anyhow::Result<()> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let operator = format!("cli:{user}");
    let mut chosen: Vec<String> = Vec::new();
    if !choice.ids.is_empty() {
        let ids: Vec<String> = choice.ids.iter().map(i64::to_string).collect();
        chosen.push(format!("ids {}", ids.join(", ")));
    }
    if let Some(kind) = &choice.kind {
        chosen.push(format!("kind {kind}"));
    }
    if let Some(since) = choice.since {
        chosen.push(format!(
            "since {}",
            since.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    if let Some(until) = choice.until {
        chosen.push(format!(
            "until {}",
            until.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    let target = match chosen.is_empty() {
        true => format!("dead letters of {} (all)", outcome.queue),
        false => format!("dead letters of {} ({})", outcome.queue, chosen.join("; ")),
    };
    let action_id = uuid::Uuid::new_v4();
    let action = operator_actions::NewAction {
        action_id,
        operator: &operator,
        action: outcome.action,
        target: &target,
        reason: outcome.reason,
    };
    operator_actions::begin(pool, &action).await?;
    let verb = if outcome.action == "discard" {
        "discarded"
    } else {
        "replayed"
    };
    let said = format!(
        "{verb} {} message(s) with pasarela dlq; marked {} letter(s)",
        outcome.done, outcome.marked
    );
    operator_actions::finish(pool, action_id, &said).await?;
    Ok(())
}

/// Walks `queue`'s `.dead` queue (`count` messages at most, acting on `budget`), replaying the
/// wanted messages to the work exchange (`replay`) or discarding them.
async fn walk_dead(
    ctx: &Context,
    connection: &lapin::Connection,
    queue: &str,
    (count, budget): (u32, u32),
    wanted: &Wanted,
    replay: bool,
    bar: &ProgressBar,
) -> (walk::Walked, Option<anyhow::Error>) {
    let dead = ctx.names.dead_queue(queue);
    let publisher = Publisher::new();
    let action = if replay {
        let attached = async {
            amqp::ensure_work_topology(connection, &ctx.settings, queue).await?;
            publisher.attach(connection).await?;
            anyhow::Ok(())
        };
        if let Err(e) = attached.await {
            return (walk::Walked::default(), Some(e));
        }
        Action::Replay {
            publisher: &publisher,
            exchange: ctx.names.work_exchange(),
            routing_key: queue,
        }
    } else {
        Action::Discard
    };
    walk::walk(connection, &dead, count, budget, wanted, &action, bar).await
}

/// Replays (`replay`) or discards the messages of `queue`'s `.dead` queue whose `message_id` is one
/// of `message_ids`, for the console: answers the `message_id`s acted on, and what stopped the walk
/// when something did (the ones acted on before it stand).
pub(crate) async fn carry_out(
    ctx: &Context,
    queue: &str,
    message_ids: HashSet<String>,
    replay: bool,
) -> (Vec<String>, Option<anyhow::Error>) {
    if message_ids.is_empty() {
        return (Vec::new(), None);
    }
    let connection = match ctx.broker().await {
        Ok(c) => c,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let dead = ctx.names.dead_queue(queue);
    let count = match amqp::message_count(&connection, &dead).await {
        Ok(Some(count)) => count,
        Ok(None) => {
            context::close(&connection).await;
            return (
                Vec::new(),
                Some(anyhow::anyhow!("{}", describe_count(&dead, None))),
            );
        }
        Err(e) => {
            context::close(&connection).await;
            return (Vec::new(), Some(e.into()));
        }
    };
    let budget = message_ids.len() as u32;
    let wanted = Wanted::Ids(message_ids);
    let (walked, failure) = walk_dead(
        ctx,
        &connection,
        queue,
        (count, budget),
        &wanted,
        replay,
        &ProgressBar::hidden(),
    )
    .await;
    context::close(&connection).await;
    (walked.message_ids, failure)
}

/// A progress bar on stderr for a person; none for a script reading JSON or a pipe.
fn progress(len: u32, action: &str, format: Format) -> ProgressBar {
    if format == Format::Json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::from(len));
    if let Ok(style) = ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} ({eta})") {
        bar.set_style(style);
    }
    bar.set_message(action.to_string());
    bar
}

fn report(outcome: &Outcome<'_>, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
        return Ok(());
    }
    println!(
        "{}",
        describe_count(outcome.dead_queue, Some(outcome.broker_messages))
    );
    let verb = if outcome.action == "discard" {
        "discarded"
    } else {
        "replayed"
    };
    if outcome.dry_run {
        println!(
            "dry run: would {} {} of {} chosen letter(s) of {}",
            outcome.action,
            outcome.letters.len(),
            outcome.chosen,
            outcome.queue
        );
        print_rows(outcome.letters, outcome.chosen);
        return Ok(());
    }
    println!(
        "{verb} {} message(s) from {} ({} looked at and handed back); marked {} dead_letters row(s) {verb}",
        outcome.done, outcome.dead_queue, outcome.kept, outcome.marked
    );
    if let Some(reason) = outcome.reason {
        println!("reason: {reason}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_for_the_table() {
        assert_eq!(cell("short", 10), "short");
        assert_eq!(cell("a\nb", 10), "a b");
        assert_eq!(cell("abcdefghijkl", 5), "abcd…");
    }
}
