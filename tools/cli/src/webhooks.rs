//! `pasarela webhooks list|redeliver <document_id>`: a document's client webhooks with every delivery
//! attempt, and sending them again.
//!
//! A job is one webhook to deliver (`webhook_jobs`); every attempt at it is a `webhook_deliveries`
//! row. A redelivery keeps the Standard Webhooks `webhook-id` of the event, so a client that already
//! has it can drop the copy.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pasarela_shared::store::documents::DocumentHead;
use pasarela_shared::store::webhook_jobs::{self, Disabled, Job, JobHead, Redelivery, Step};
use serde::Serialize;
use uuid::Uuid;

use crate::context::Context;
use crate::dlq::cell;
use crate::doc::{Format, unknown_document};
use crate::report::render::{Align, aligned};
use crate::status::{opt, opt_time, time};

/// `pasarela webhooks ...`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List a document's client webhook jobs and every delivery attempt of each.
    List(ListArgs),
    /// Deliver a document's client webhooks again, re-enabling endpoints that answered 410 Gone.
    Redeliver(RedeliverArgs),
}

/// Flags of `pasarela webhooks list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The document_id of the doc.sign message.
    pub document_id: Uuid,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Flags of `pasarela webhooks redeliver`.
#[derive(Debug, Args)]
pub struct RedeliverArgs {
    /// The document_id of the doc.sign message.
    pub document_id: Uuid,
}

/// Runs `pasarela webhooks ...`.
pub async fn run(command: WebhooksCommand) -> anyhow::Result<ExitCode> {
    match command {
        WebhooksCommand::List(args) => list(args).await,
        WebhooksCommand::Redeliver(args) => redeliver(args).await,
    }
}

/// Why a document has no webhook job, in the words an operator needs.
fn no_jobs_reason(id: Uuid, doc: &DocumentHead) -> String {
    if doc.has_callback_url {
        format!(
            "no client webhook yet: document {id} is {}; its webhook is queued when signing ends",
            doc.state
        )
    } else {
        "no client webhook: the document was sent without callback_url".to_string()
    }
}

/// Every webhook job of one document.
#[derive(Debug, Clone, Serialize)]
struct WebhookList {
    document_id: Uuid,
    jobs: Vec<Job>,
}

/// The endpoint's standing as one line.
fn endpoint_text(disabled: &Option<Disabled>) -> String {
    match disabled {
        None => "enabled".into(),
        Some(d) => format!(
            "disabled since {} ({}); `pasarela webhooks redeliver` re-enables it",
            time(&d.at),
            d.reason.as_deref().unwrap_or("410 Gone")
        ),
    }
}

/// The jobs as labelled blocks, each with its attempts in a table beneath.
fn render_list(list: &WebhookList) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "client webhooks of document {} ({} job(s))",
        list.document_id,
        list.jobs.len()
    );
    for j in &list.jobs {
        let _ = writeln!(out, "\njob {} ({}, {})", j.job_id, j.event_type, j.state);
        let mut line = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<17} {value}");
        };
        line("url", j.url.clone());
        line("endpoint", endpoint_text(&j.endpoint_disabled));
        line("webhook id", j.webhook_id.clone());
        line("attempts", j.attempts.to_string());
        line("next attempt", opt_time(&j.next_attempt_at));
        line("last http status", opt(&j.last_http_status));
        line(
            "last error",
            j.last_error
                .as_deref()
                .map_or_else(|| "-".into(), |e| cell(e, 200)),
        );
        line("created", time(&j.created_at));
        line("completed", opt_time(&j.completed_at));
        if j.deliveries.is_empty() {
            let _ = writeln!(out, "  no delivery attempts yet");
            continue;
        }
        let rows: Vec<Vec<String>> = j
            .deliveries
            .iter()
            .map(|d| {
                vec![
                    d.attempt.to_string(),
                    time(&d.attempted_at),
                    opt(&d.http_status),
                    opt(&d.latency_ms),
                    opt_time(&d.next_attempt_at),
                    d.error
                        .as_deref()
                        .map_or_else(|| "-".into(), |e| cell(e, 80)),
                ]
            })
            .collect();
        let table = aligned(
            &[
                ("ATTEMPT", Align::Right),
                ("ATTEMPTED AT", Align::Left),
                ("HTTP", Align::Right),
                ("LATENCY MS", Align::Right),
                ("NEXT ATTEMPT AT", Align::Left),
                ("ERROR", Align::Left),
            ],
            &rows,
        );
        for row in table.lines() {
            let _ = writeln!(out, "  {row}");
        }
    }
    out
}

/// Runs `pasarela webhooks list`.
async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let id = args.document_id;
    let found = webhook_jobs::list(&pool, id)
        .await?
        .ok_or_else(|| unknown_document(id))?;
    let list = WebhookList {
        document_id: id,
        jobs: found.jobs,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&list)?),
        Format::Table if list.jobs.is_empty() => {
            println!("{}", no_jobs_reason(id, &found.document))
        }
        Format::Table => print!("{}", render_list(&list)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The line printed for one webhook; `new_job` is the copy's id for [`Step::Copy`].
fn describe_step(job: &JobHead, step: Step, new_job: Option<Uuid>) -> String {
    let what = format!(
        "webhook {} ({} to {})",
        job.webhook_id, job.event_type, job.url
    );
    match (step, new_job) {
        (Step::Hasten, _) => format!(
            "{what}: job {} is pending; next attempt moved to now",
            job.job_id
        ),
        (Step::Leave, _) => format!(
            "{what}: job {} is being delivered right now; left to its dispatcher",
            job.job_id
        ),
        (Step::Copy, Some(new_job)) => format!(
            "{what}: new job {new_job} due now (job {} was {})",
            job.job_id, job.state
        ),
        (Step::Copy, None) => format!("{what}: job {} was not copied", job.job_id),
    }
}

/// Runs `pasarela webhooks redeliver`.
async fn redeliver(args: RedeliverArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let id = args.document_id;
    let (reenabled, steps) = match webhook_jobs::redeliver(&pool, id).await? {
        Redelivery::UnknownDocument => return Err(unknown_document(id)),
        Redelivery::NoJobs(doc) => anyhow::bail!(no_jobs_reason(id, &doc)),
        Redelivery::Done { reenabled, steps } => (reenabled, steps),
    };

    for r in &reenabled {
        match &r.disabled {
            Some(d) => println!(
                "re-enabled endpoint {} (was {})",
                r.url,
                endpoint_text_short(d)
            ),
            None => println!("re-enabled endpoint {}", r.url),
        }
    }
    for s in &steps {
        println!("{}", describe_step(&s.job, s.step, s.new_job));
    }
    let count = |step: Step| steps.iter().filter(|s| s.step == step).count();
    let (copied, hastened) = (count(Step::Copy), count(Step::Hasten));
    println!(
        "document {id}: {copied} new job(s), {hastened} pending job(s) due now, {} left as they are",
        steps.len() - copied - hastened
    );
    Ok(ExitCode::SUCCESS)
}

/// `disabled since T: reason`, for the re-enabled lines.
fn endpoint_text_short(d: &Disabled) -> String {
    format!(
        "disabled since {}: {}",
        time(&d.at),
        d.reason.as_deref().unwrap_or("410 Gone")
    )
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use pasarela_shared::store::documents::DocumentState;
    use pasarela_shared::store::webhook_jobs::{Delivery, JobState};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn job(webhook_id: &str, state: JobState, created: &str) -> JobHead {
        JobHead {
            job_id: Uuid::now_v7(),
            webhook_id: webhook_id.into(),
            event_type: "document.signed".into(),
            url: "https://client.example/hooks".into(),
            state,
            created_at: at(created),
        }
    }

    #[test]
    fn each_step_says_what_it_did() {
        let j = job("msg_a", JobState::Failed, "2024-05-01T10:00:00Z");
        let new_job = Uuid::nil();
        let text = describe_step(&j, Step::Copy, Some(new_job));
        assert_eq!(
            text,
            format!(
                "webhook msg_a (document.signed to https://client.example/hooks): new job \
                 {new_job} due now (job {} was failed)",
                j.job_id
            )
        );
        assert!(describe_step(&j, Step::Hasten, None).ends_with("next attempt moved to now"));
        assert!(describe_step(&j, Step::Leave, None).contains("left to its dispatcher"));
    }

    #[test]
    fn without_jobs_the_reason_names_the_missing_callback() {
        let id = Uuid::nil();
        let without = DocumentHead {
            state: DocumentState::Signed,
            has_callback_url: false,
        };
        assert_eq!(
            no_jobs_reason(id, &without),
            "no client webhook: the document was sent without callback_url"
        );
        let waiting = DocumentHead {
            state: DocumentState::Submitted,
            has_callback_url: true,
        };
        assert!(no_jobs_reason(id, &waiting).contains("is submitted; its webhook is queued"));
    }

    fn listed() -> WebhookList {
        WebhookList {
            document_id: Uuid::nil(),
            jobs: vec![Job {
                job_id: Uuid::nil(),
                webhook_id: "msg_1".into(),
                event_type: "document.signed".into(),
                url: "https://client.example/hooks".into(),
                state: JobState::Failed,
                attempts: 2,
                next_attempt_at: None,
                last_http_status: Some(410),
                last_error: Some("410 Gone".into()),
                created_at: at("2024-05-01T10:00:00Z"),
                completed_at: Some(at("2024-05-01T10:00:06Z")),
                endpoint_disabled: Some(Disabled {
                    at: at("2024-05-01T10:00:06Z"),
                    reason: Some("410 Gone".into()),
                }),
                deliveries: vec![
                    Delivery {
                        attempt: 1,
                        attempted_at: at("2024-05-01T10:00:00Z"),
                        http_status: Some(503),
                        latency_ms: Some(1200),
                        error: Some("service unavailable".into()),
                        next_attempt_at: Some(at("2024-05-01T10:00:05Z")),
                    },
                    Delivery {
                        attempt: 2,
                        attempted_at: at("2024-05-01T10:00:06Z"),
                        http_status: Some(410),
                        latency_ms: Some(35),
                        error: None,
                        next_attempt_at: None,
                    },
                ],
            }],
        }
    }

    #[test]
    fn the_list_shows_each_job_with_its_attempts_beneath() {
        let text = render_list(&listed());
        let expected = "\
client webhooks of document 00000000-0000-0000-0000-000000000000 (1 job(s))

job 00000000-0000-0000-0000-000000000000 (document.signed, failed)
  url               https://client.example/hooks
  endpoint          disabled since 2024-05-01T10:00:06.000Z (410 Gone); `pasarela webhooks redeliver` re-enables it
  webhook id        msg_1
  attempts          2
  next attempt      -
  last http status  410
  last error        410 Gone
  created           2024-05-01T10:00:00.000Z
  completed         2024-05-01T10:00:06.000Z
  ATTEMPT  ATTEMPTED AT              HTTP  LATENCY MS  NEXT ATTEMPT AT           ERROR
        1  2024-05-01T10:00:00.000Z   503        1200  2024-05-01T10:00:05.000Z  service unavailable
        2  2024-05-01T10:00:06.000Z   410          35  -                         -
";
        assert_eq!(text, expected);

        let mut quiet = listed();
        quiet.jobs[0].deliveries.clear();
        quiet.jobs[0].endpoint_disabled = None;
        let text = render_list(&quiet);
        assert!(text.contains("  endpoint          enabled\n"));
        assert!(text.ends_with("  no delivery attempts yet\n"));
    }

    #[test]
    fn the_list_json_nests_attempts_under_jobs() {
        let json = serde_json::to_value(listed()).unwrap();
        let job = &json["jobs"][0];
        assert_eq!(job["endpoint_disabled"]["reason"], "410 Gone");
        assert_eq!(job["deliveries"][1]["http_status"], 410);
        assert_eq!(job["deliveries"][0]["latency_ms"], 1200);
        assert!(job.get("payload").is_none());
    }
}
