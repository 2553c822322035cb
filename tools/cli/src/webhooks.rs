//! `pasarela webhooks list|redeliver <document_id>`: a document's client webhooks with every delivery
//! attempt, and sending them again.
//!
//! A job is one webhook to deliver (`webhook_jobs`); every attempt at it is a `webhook_deliveries`
//! row. A redelivery keeps the Standard Webhooks `webhook-id` of the event, so a client that already
//! has it can drop the copy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;
use tokio_postgres::types::ToSql;
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

/// What the webhook commands need of the documents row.
#[derive(Debug, Clone)]
struct DocumentHead {
    state: String,
    has_callback_url: bool,
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

/// An endpoint that answered 410 Gone, with nothing sent to it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Disabled {
    at: DateTime<Utc>,
    reason: Option<String>,
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize)]
struct Delivery {
    attempt: i32,
    attempted_at: DateTime<Utc>,
    http_status: Option<i32>,
    latency_ms: Option<i32>,
    error: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
}

/// One webhook job and its attempts, oldest first.
#[derive(Debug, Clone, Serialize)]
struct Job {
    job_id: Uuid,
    webhook_id: String,
    event_type: String,
    url: String,
    state: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_http_status: Option<i32>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    /// Set while the endpoint is disabled (it answered 410 Gone).
    endpoint_disabled: Option<Disabled>,
    deliveries: Vec<Delivery>,
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

/// The documents row's webhook facts, or the unknown-document error.
async fn document_head(
    client: &impl deadpool_postgres::GenericClient,
    id: Uuid,
) -> anyhow::Result<DocumentHead> {
    client
        .query_opt(
            "SELECT state, client_callback_url IS NOT NULL FROM documents WHERE document_id = $1",
            &[&id],
        )
        .await?
        .map(|r| DocumentHead {
            state: r.get(0),
            has_callback_url: r.get(1),
        })
        .ok_or_else(|| unknown_document(id))
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let mut client = pool.get().await?;
    let id = args.document_id;
    // One snapshot, so that every attempt listed belongs to a job listed.
    let tx = crate::context::snapshot(&mut client).await?;
    let doc = document_head(&tx, id).await?;
    let params: [&(dyn ToSql + Sync); 1] = [&id];
    let (jobs, deliveries) = futures::try_join!(
        tx.query(
            "SELECT j.job_id, j.webhook_id, j.event_type, j.url, j.state, j.attempts,
                    j.next_attempt_at, j.last_http_status, j.last_error, j.created_at,
                    j.completed_at, e.disabled_at, e.disabled_reason
             FROM webhook_jobs j
             LEFT JOIN webhook_endpoints e ON e.url = j.url AND e.disabled_at IS NOT NULL
             WHERE j.document_id = $1
             ORDER BY j.created_at, j.job_id",
            &params,
        ),
        tx.query(
            "SELECT job_id, attempt, attempted_at, http_status, latency_ms, error, next_attempt_at
             FROM webhook_deliveries WHERE document_id = $1
             ORDER BY attempted_at, attempt, id",
            &params,
        ),
    )?;
    tx.commit().await?;

    let mut by_job: BTreeMap<Uuid, Vec<Delivery>> = BTreeMap::new();
    for r in &deliveries {
        by_job.entry(r.get(0)).or_default().push(Delivery {
            attempt: r.get(1),
            attempted_at: r.get(2),
            http_status: r.get(3),
            latency_ms: r.get(4),
            error: r.get(5),
            next_attempt_at: r.get(6),
        });
    }
    let jobs: Vec<Job> = jobs
        .iter()
        .map(|r| {
            let job_id: Uuid = r.get(0);
            Job {
                job_id,
                webhook_id: r.get(1),
                event_type: r.get(2),
                url: r.get(3),
                state: r.get(4),
                attempts: r.get(5),
                next_attempt_at: r.get(6),
                last_http_status: r.get(7),
                last_error: r.get(8),
                created_at: r.get(9),
                completed_at: r.get(10),
                endpoint_disabled: r.get::<_, Option<DateTime<Utc>>>(11).map(|at| Disabled {
                    at,
                    reason: r.get(12),
                }),
                deliveries: by_job.remove(&job_id).unwrap_or_default(),
            }
        })
        .collect();
    let list = WebhookList {
        document_id: id,
        jobs,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&list)?),
        Format::Table if list.jobs.is_empty() => println!("{}", no_jobs_reason(id, &doc)),
        Format::Table => print!("{}", render_list(&list)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The part of a job a redelivery decides on.
#[derive(Debug, Clone)]
struct JobHead {
    job_id: Uuid,
    webhook_id: String,
    event_type: String,
    url: String,
    state: String,
    created_at: DateTime<Utc>,
}

/// What a redelivery does for one webhook, going by its newest job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Pending: its next attempt is moved to now.
    Hasten,
    /// Delivering: a dispatcher holds it right now; it is left alone.
    Leave,
    /// Delivered or failed: a new job copies it, due now.
    Copy,
}

/// The newest job of each webhook, in the order they were first created, and what to do with it.
fn plan(jobs: &[JobHead]) -> Vec<(&JobHead, Step)> {
    let mut order: Vec<&str> = Vec::new();
    let mut newest: BTreeMap<&str, &JobHead> = BTreeMap::new();
    for j in jobs {
        let slot = newest.entry(j.webhook_id.as_str()).or_insert_with(|| {
            order.push(j.webhook_id.as_str());
            j
        });
        // UUID v7 job ids break ties in creation time the way they were made.
        if (j.created_at, j.job_id) > (slot.created_at, slot.job_id) {
            *slot = j;
        }
    }
    order
        .into_iter()
        .map(|webhook_id| {
            let job = newest[webhook_id];
            let step = match job.state.as_str() {
                "pending" => Step::Hasten,
                "delivering" => Step::Leave,
                _ => Step::Copy,
            };
            (job, step)
        })
        .collect()
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

async fn redeliver(args: RedeliverArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let mut client = pool.get().await?;
    let id = args.document_id;
    let tx = client.transaction().await?;
    let doc = document_head(&tx, id).await?;
    // Locked, so that a dispatcher finishing one of them meanwhile waits for this decision.
    let jobs: Vec<JobHead> = tx
        .query(
            "SELECT job_id, webhook_id, event_type, url, state, created_at
             FROM webhook_jobs WHERE document_id = $1
             ORDER BY created_at, job_id FOR UPDATE",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| JobHead {
            job_id: r.get(0),
            webhook_id: r.get(1),
            event_type: r.get(2),
            url: r.get(3),
            state: r.get(4),
            created_at: r.get(5),
        })
        .collect();
    if jobs.is_empty() {
        anyhow::bail!(no_jobs_reason(id, &doc));
    }

    let urls: Vec<&str> = jobs.iter().map(|j| j.url.as_str()).collect();
    let reenabled: Vec<(String, Option<Disabled>)> = tx
        .query(
            "DELETE FROM webhook_endpoints WHERE url = ANY($1)
             RETURNING url, disabled_at, disabled_reason",
            &[&urls],
        )
        .await?
        .iter()
        .map(|r| {
            let disabled = r.get::<_, Option<DateTime<Utc>>>(1).map(|at| Disabled {
                at,
                reason: r.get(2),
            });
            (r.get(0), disabled)
        })
        .collect();

    let mut lines = Vec::new();
    let (mut hastened, mut copied) = (0, 0);
    for (job, step) in plan(&jobs) {
        let new_job = match step {
            Step::Hasten => {
                tx.execute(
                    "UPDATE webhook_jobs SET next_attempt_at = now() WHERE job_id = $1",
                    &[&job.job_id],
                )
                .await?;
                hastened += 1;
                None
            }
            Step::Leave => None,
            Step::Copy => {
                let new_job = Uuid::now_v7();
                // The payload is copied inside PostgreSQL: it never travels to this process.
                tx.execute(
                    "INSERT INTO webhook_jobs (job_id, document_id, webhook_id, event_type, url,
                                               payload, state, attempts, next_attempt_at)
                     SELECT $1, document_id, webhook_id, event_type, url, payload, 'pending', 0, now()
                     FROM webhook_jobs WHERE job_id = $2",
                    &[&new_job, &job.job_id],
                )
                .await?;
                copied += 1;
                Some(new_job)
            }
        };
        lines.push(describe_step(job, step, new_job));
    }
    tx.commit().await?;

    for (url, disabled) in &reenabled {
        match disabled {
            Some(d) => println!("re-enabled endpoint {url} (was {})", endpoint_text_short(d)),
            None => println!("re-enabled endpoint {url}"),
        }
    }
    for line in &lines {
        println!("{line}");
    }
    println!(
        "document {id}: {copied} new job(s), {hastened} pending job(s) due now, {} left as they are",
        lines.len() - copied - hastened
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
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn job(webhook_id: &str, state: &str, created: &str) -> JobHead {
        JobHead {
            job_id: Uuid::now_v7(),
            webhook_id: webhook_id.into(),
            event_type: "document.signed".into(),
            url: "https://client.example/hooks".into(),
            state: state.into(),
            created_at: at(created),
        }
    }

    #[test]
    fn the_newest_job_of_each_webhook_decides() {
        let jobs = [
            job("msg_a", "failed", "2024-05-01T10:00:00Z"),
            job("msg_b", "pending", "2024-05-01T10:00:01Z"),
            job("msg_a", "delivered", "2024-05-01T11:00:00Z"),
            job("msg_c", "delivering", "2024-05-01T10:00:02Z"),
            job("msg_d", "failed", "2024-05-01T10:00:03Z"),
            job("msg_d", "pending", "2024-05-01T10:00:04Z"),
        ];
        let steps: Vec<(&str, Uuid, Step)> = plan(&jobs)
            .into_iter()
            .map(|(j, s)| (j.webhook_id.as_str(), j.job_id, s))
            .collect();
        assert_eq!(
            steps,
            [
                ("msg_a", jobs[2].job_id, Step::Copy),
                ("msg_b", jobs[1].job_id, Step::Hasten),
                ("msg_c", jobs[3].job_id, Step::Leave),
                ("msg_d", jobs[5].job_id, Step::Hasten),
            ]
        );
    }

    #[test]
    fn equal_creation_times_fall_to_the_later_job_id() {
        let first = job("msg_a", "failed", "2024-05-01T10:00:00Z");
        let second = job("msg_a", "pending", "2024-05-01T10:00:00Z");
        assert!(second.job_id > first.job_id);
        let jobs = [second.clone(), first];
        let steps = plan(&jobs);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].0.job_id, second.job_id);
        assert_eq!(steps[0].1, Step::Hasten);
    }

    #[test]
    fn each_step_says_what_it_did() {
        let j = job("msg_a", "failed", "2024-05-01T10:00:00Z");
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
            state: "signed".into(),
            has_callback_url: false,
        };
        assert_eq!(
            no_jobs_reason(id, &without),
            "no client webhook: the document was sent without callback_url"
        );
        let waiting = DocumentHead {
            state: "submitted".into(),
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
                state: "failed".into(),
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
