//! `pasarela status <id>`: where a message stands, looked up by message_id or by request_id.

use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::context::Context;

/// Flags of `pasarela status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A message_id or an OTP request_id.
    pub id: Uuid,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A `work_items` row.
#[derive(Debug, Serialize)]
struct WorkItem {
    queue: String,
    message_id: Uuid,
    state: String,
    status: Option<String>,
    attempts: i32,
    possible_duplicates: i32,
    last_error: Option<Value>,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

/// An `otp_requests` row, without the destination (personal data has no place in a status line).
#[derive(Debug, Serialize)]
struct OtpRequest {
    request_id: Uuid,
    message_id: Uuid,
    tenant: String,
    provider: String,
    channel: String,
    status: String,
    attempts: i32,
    vendor_request_id: Option<String>,
    vendor_code: Option<String>,
    error_kind: Option<String>,
    error_message: Option<String>,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

/// A `dead_letters` row of the message.
#[derive(Debug, Serialize)]
struct DeadLetter {
    id: i64,
    queue: String,
    kind: String,
    reason: String,
    created_at: DateTime<Utc>,
    replayed_at: Option<DateTime<Utc>>,
}

/// Everything recorded about one id.
#[derive(Debug, Serialize)]
struct Report {
    id: Uuid,
    work_items: Vec<WorkItem>,
    otp_request: Option<OtpRequest>,
    dead_letters: Vec<DeadLetter>,
}

impl Report {
    fn is_empty(&self) -> bool {
        self.work_items.is_empty() && self.otp_request.is_none() && self.dead_letters.is_empty()
    }
}

/// Runs `pasarela status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let client = pool.get().await?;
    let id = args.id;

    // The OTP row first: its message_id finds the work row when `id` is a request_id.
    let otp_request = client
        .query_opt(
            "SELECT request_id, message_id, tenant, provider, channel, status, attempts,
                    vendor_request_id, vendor_code, error_kind, error_message, created_at, completed_at
             FROM otp_requests WHERE request_id = $1 OR message_id = $1
             ORDER BY created_at DESC LIMIT 1",
            &[&id],
        )
        .await?
        .map(|r| OtpRequest {
            request_id: r.get(0),
            message_id: r.get(1),
            tenant: r.get(2),
            provider: r.get(3),
            channel: r.get(4),
            status: r.get(5),
            attempts: r.get(6),
            vendor_request_id: r.get(7),
            vendor_code: r.get(8),
            error_kind: r.get(9),
            error_message: r.get(10),
            created_at: r.get(11),
            completed_at: r.get(12),
        });
    let message_id = otp_request.as_ref().map_or(id, |o| o.message_id);
    let work_items = client
        .query(
            "SELECT queue, message_id, state, status, attempts, possible_duplicates, last_error,
                    created_at, completed_at
             FROM work_items WHERE message_id = ANY($1) ORDER BY created_at",
            &[&vec![id, message_id]],
        )
        .await?
        .iter()
        .map(|r| WorkItem {
            queue: r.get(0),
            message_id: r.get(1),
            state: r.get(2),
            status: r.get(3),
            attempts: r.get(4),
            possible_duplicates: r.get(5),
            last_error: r.get(6),
            created_at: r.get(7),
            completed_at: r.get(8),
        })
        .collect();
    let dead_letters = client
        .query(
            "SELECT id, queue, error_kind, reason, created_at, replayed_at
             FROM dead_letters WHERE message_id = ANY($1) ORDER BY id",
            &[&vec![id.to_string(), message_id.to_string()]],
        )
        .await?
        .iter()
        .map(|r| DeadLetter {
            id: r.get(0),
            queue: r.get(1),
            kind: r.get(2),
            reason: r.get(3),
            created_at: r.get(4),
            replayed_at: r.get(5),
        })
        .collect();
    let report = Report {
        id,
        work_items,
        otp_request,
        dead_letters,
    };

    if report.is_empty() {
        eprintln!(
            "not found: no message or OTP request has id {id} (it may still be waiting in a queue, \
             or DATABASE_URL names another database)"
        );
        return Ok(ExitCode::FAILURE);
    }
    if args.json {
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
