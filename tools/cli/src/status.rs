//! `pasarela status <id>`: where a message stands, looked up by message_id or by request_id.

use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use pasarela_shared::store::status::{self, DeadLetter, OtpRequest, WorkItem};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::context::Context;
use crate::format::Format;

/// Flags of `pasarela status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A message_id or an OTP request_id.
    pub id: Uuid,
    /// Print JSON instead of text (the same as --format json).
    #[arg(long)]
    pub json: bool,
    /// table or json.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Everything recorded about one id, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Report {
    id: Uuid,
    work_items: Vec<WorkItem>,
    otp_request: Option<OtpRequest>,
    dead_letters: Vec<DeadLetter>,
}

/// Runs `pasarela status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let id = args.id;
    let trail = status::find(&pool, id).await?;
    if trail.is_empty() {
        eprintln!(
            "not found: no message or OTP request has id {id} (it may still be waiting in a queue, \
             or DATABASE_URL names another database)"
        );
        return Ok(ExitCode::FAILURE);
    }
    let report = Report {
        id,
        work_items: trail.work_items,
        otp_request: trail.otp_request,
        dead_letters: trail.dead_letters,
    };
    if args.json || args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// A time as status lines print it: RFC 3339, UTC, to the millisecond.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// [`time`], or `-` when there is none.
pub fn opt_time(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map_or_else(|| "-".into(), time)
}

/// The value, or `-` when there is none.
pub fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

/// `{kind, message}` as `kind: message`; anything else as JSON.
fn error_text(e: &Value) -> String {
    match (
        e.get("kind").and_then(Value::as_str),
        e.get("message").and_then(Value::as_str),
    ) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        _ => e.to_string(),
    }
}

fn print_text(report: &Report) {
    for w in &report.work_items {
        println!("work item {} on {}", w.message_id, w.queue);
        println!("  state                {}", w.state);
        println!("  status               {}", opt(&w.status));
        println!("  attempts             {}", w.attempts);
        println!("  possible duplicates  {}", w.possible_duplicates);
        println!(
            "  last error           {}",
            w.last_error.as_ref().map_or_else(|| "-".into(), error_text)
        );
        println!("  created              {}", time(&w.created_at));
        println!("  completed            {}", opt_time(&w.completed_at));
        if let Some(trace) = &w.trace_id {
            // Tempo's TraceQL finds it: docs/OPERATIONS.md, "Logs and traces".
            println!("  trace                {trace}   (TraceQL: {{ trace:id = \"{trace}\" }})");
        }
    }
    if let Some(o) = &report.otp_request {
        println!(
            "otp request {} ({} via {}, tenant {})",
            o.request_id, o.channel, o.provider, o.tenant
        );
        println!("  status               {}", o.status);
        println!("  attempts             {}", o.attempts);
        println!("  vendor request id    {}", opt(&o.vendor_request_id));
        println!("  vendor code          {}", opt(&o.vendor_code));
        let error = match (&o.error_kind, &o.error_message) {
            (Some(k), Some(m)) => format!("{k}: {m}"),
            (k, m) => opt(&k.clone().or_else(|| m.clone())),
        };
        println!("  error                {error}");
        println!("  created              {}", time(&o.created_at));
        println!("  completed            {}", opt_time(&o.completed_at));
    }
    for d in &report.dead_letters {
        println!("dead letter #{} on {} ({})", d.id, d.queue, d.kind);
        println!("  reason               {}", d.reason);
        println!("  dead-lettered        {}", time(&d.created_at));
        println!("  replayed             {}", opt_time(&d.replayed_at));
    }
}
