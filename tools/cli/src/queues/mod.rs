//! `pasarela queues`: a live view of every work queue, its retry tiers and its `.dead` queue (depth,
//! ready, unacked, rates, the oldest message's age, consumers) and of each worker's readiness, like
//! sidekiqmon; `--once` prints it once.

pub(crate) mod api;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use deadpool_postgres::Pool;
use pasarela_shared::contract::queue::WORK_QUEUES;
use pasarela_shared::store::dead_letters;
use serde::Serialize;

use crate::context::{self, Context};
use crate::format::{self, Format};
use api::{Figures, ManagementApi};
use pasarela_shared::runtime::settings::defaults;

/// Flags of `pasarela queues`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pasarela queues\n  pasarela queues --once --format json\n  \
    pasarela queues --interval 5s --health otp-send=http://10.0.0.7:9101"
)]
pub struct QueuesArgs {
    /// Print the view once and exit, instead of refreshing it until interrupted.
    #[arg(long)]
    pub once: bool,
    /// How often the live view refreshes (humantime: 2s, 1m).
    #[arg(long, default_value = "2s", value_parser = format::duration)]
    pub interval: Duration,
    /// The RabbitMQ management API (default: AMQP_URL's first host, port 15672, its credentials).
    #[arg(long, env = "PASARELA_RABBITMQ_API")]
    pub api: Option<String>,
    /// A worker's health address as name=URL, repeatable (default: each worker's default port on
    /// 127.0.0.1).
    #[arg(long = "health", env = "PASARELA_HEALTH_URLS", value_delimiter = ',')]
    pub health: Vec<String>,
    /// table or json (with a live view, one JSON document per line and refresh).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// One queue's line.
#[derive(Debug, Serialize)]
pub(crate) struct QueueLine {
    pub(crate) name: String,
    pub(crate) work_queue: &'static str,
    pub(crate) role: &'static str,
    pub(crate) exists: bool,
    pub(crate) messages: Option<u64>,
    pub(crate) ready: Option<u64>,
    pub(crate) unacked: Option<u64>,
    pub(crate) rate_in: Option<f64>,
    pub(crate) rate_out: Option<f64>,
    /// Seconds the oldest message has waited.
    pub(crate) oldest_s: Option<u64>,
    /// How `oldest_s` was had: `dead_letters` (exact, from the table), `estimate` (ready ÷ rate out),
    /// `tier bound` (a retry tier holds a message at most its delay).
    pub(crate) oldest_from: Option<&'static str>,
    pub(crate) consumers: Option<u64>,
}

/// One worker's readiness.
#[derive(Debug, Serialize)]
pub(crate) struct WorkerLine {
    pub(crate) worker: String,
    pub(crate) url: String,
    pub(crate) state: String,
}

/// The whole view at one moment.
#[derive(Debug, Serialize)]
pub(crate) struct View {
    pub(crate) at: DateTime<Utc>,
    pub(crate) source: String,
    pub(crate) notes: Vec<String>,
    pub(crate) queues: Vec<QueueLine>,
    pub(crate) workers: Vec<WorkerLine>,
}

/// Runs `pasarela queues`.
pub async fn run(args: QueuesArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let api = ManagementApi::new(&ctx.settings.amqp_url, args.api.as_deref())?;
    let health = health_targets(&args.health)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    // One database pool for the whole watch, made again only after a failure: a refresh every two
    // seconds must not open a connection each time.
    let mut database = None;
    loop {
        let view = look(&ctx, &api, &health, &http, &mut database).await?;
        match args.format {
            Format::Json if args.once => println!("{}", serde_json::to_string_pretty(&view)?),
            Format::Json => println!("{}", serde_json::to_string(&view)?),
            Format::Table => {
                if !args.once {
                    // Clear the screen and go home, as top does.
                    print!("\x1b[2J\x1b[H");
                }
                print_table(&view);
            }
        }
        std::io::stdout().flush()?;
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

pub(crate) fn health_targets(given: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    if given.is_empty() {
        // Each worker's default `/readyz` on this host: the port of its `PASARELA_METRICS_ADDR` default.
        return Ok(defaults::ALL
            .iter()
            .map(|d| {
                let port = d.metrics_addr.rsplit(':').next().unwrap_or_default();
                (d.service.to_string(), format!("http://127.0.0.1:{port}"))
            })
            .collect());
    }
    given
        .iter()
        .map(|g| {
            g.split_once('=')
                .map(|(w, u)| {
                    (
                        w.trim().to_string(),
                        u.trim().trim_end_matches('/').to_string(),
                    )
                })
                .ok_or_else(|| anyhow::anyhow!("--health {g:?}: expected name=URL"))
        })
        .collect()
}

pub(crate) async fn look(
    ctx: &Context,
    api: &ManagementApi,
    health: &[(String, String)],
    http: &reqwest::Client,
    database: &mut Option<Pool>,
) -> anyhow::Result<View> {
    let mut notes = Vec::new();
    let (source, by_name) = match api.queues().await {
        Ok(list) => (
            format!("management API at {}", api.address()),
            list.into_iter().collect::<HashMap<_, _>>(),
        ),
        Err(e) => {
            notes.push(format!(
                "the management API at {} did not answer ({e}); showing ready and consumers only \
                 (enable rabbitmq_management or set PASARELA_RABBITMQ_API)",
                api.address()
            ));
            ("AMQP passive declares".to_string(), passive_all(ctx).await?)
        }
    };
    if database.is_none() {
        match ctx.database(1).await {
            Ok(pool) => *database = Some(pool),
            Err(e) => notes.push(format!("no database, so no dead-letter ages: {e:#}")),
        }
    }
    let mut dead_open = HashMap::new();
    if let Some(pool) = database.as_ref() {
        match dead_letters::open_by_queue(pool).await {
            Ok(rows) => dead_open.extend(rows.into_iter().map(|(q, _, oldest)| (q, oldest))),
            Err(e) => {
                notes.push(format!("dead_letters unreadable: {e}"));
                // Connect afresh next time: the server may have restarted.
                *database = None;
            }
        }
    }
    let now = Utc::now();
    let mut queues = Vec::new();
    for (name, work_queue, role, tier) in names(ctx) {
        let figures = by_name.get(&name).cloned().unwrap_or_default();
        let (oldest_s, oldest_from) = oldest(&figures, role, tier, dead_open.get(work_queue), now);
        queues.push(QueueLine {
            name,
            work_queue,
            role,
            exists: figures.exists,
            messages: figures.messages,
            ready: figures.ready,
            unacked: figures.unacked,
            rate_in: figures.rate_in,
            rate_out: figures.rate_out,
            oldest_s,
            oldest_from,
            consumers: figures.consumers,
        });
    }
    // Every worker asked at once: one that does not answer costs its timeout once, not once per worker.
    let workers = futures::future::join_all(health.iter().map(|(worker, url)| async move {
        let state = match http.get(format!("{url}/readyz")).send().await {
            Ok(r) if r.status().is_success() => "ready".to_string(),
            Ok(r) => format!("not ready ({})", r.status().as_u16()),
            Err(_) => "unreachable".to_string(),
        };
        WorkerLine {
            worker: worker.clone(),
            url: url.clone(),
            state,
        }
    }))
    .await;
    Ok(View {
        at: now,
        source,
        notes,
        queues,
        workers,
    })
}

/// Every queue of every work queue: the queue, its tiers (with their delays), its `.dead` queue.
fn names(ctx: &Context) -> Vec<(String, &'static str, &'static str, Option<Duration>)> {
    let mut all = Vec::new();
    for queue in WORK_QUEUES {
        all.push((ctx.names.work_queue(queue), queue, "work", None));
        for delay in ctx.settings.retry.delays() {
            all.push((
                ctx.names.tier_queue(queue, *delay),
                queue,
                "retry",
                Some(*delay),
            ));
        }
        all.push((ctx.names.dead_queue(queue), queue, "dead", None));
    }
    all
}

async fn passive_all(ctx: &Context) -> anyhow::Result<HashMap<String, Figures>> {
    let connection = ctx.broker().await?;
    let mut by_name = HashMap::new();
    for (name, ..) in names(ctx) {
        by_name.insert(name.clone(), api::passive(&connection, &name).await?);
    }
    context::close(&connection).await;
    Ok(by_name)
}

/// The oldest message's wait: exact for a `.dead` queue (its oldest open letter); for a work queue
/// an estimate, ready ÷ rate out (a quorum queue does not tell its head's age); for a tier at most its
/// delay.
fn oldest(
    figures: &Figures,
    role: &str,
    tier: Option<Duration>,
    dead_since: Option<&DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Option<u64>, Option<&'static str>) {
    if role == "dead" {
        return match dead_since {
            Some(t) => (
                Some((now - *t).num_seconds().max(0) as u64),
                Some("dead_letters"),
            ),
            None => (None, None),
        };
    }
    let ready = figures.ready.unwrap_or(0);
    if ready == 0 {
        return (None, None);
    }
    let estimate = match figures.rate_out {
        Some(out) if out > 0.01 => Some((ready as f64 / out).ceil() as u64),
        _ => None,
    };
    match (tier, estimate) {
        (Some(delay), Some(e)) => (Some(e.min(delay.as_secs())), Some("estimate")),
        (Some(delay), None) => (Some(delay.as_secs()), Some("tier bound")),
        (None, Some(e)) => (Some(e), Some("estimate")),
        (None, None) => (None, None),
    }
}

fn print_table(view: &View) {
    let n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let r = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    println!(
        "pasarela queues at {} ({})",
        view.at.format("%Y-%m-%d %H:%M:%S UTC"),
        view.source
    );
    for note in &view.notes {
        println!("note: {note}");
    }
    println!(
        "{:<34} {:>9} {:>8} {:>8} {:>8} {:>8} {:>12} {:>9}",
        "queue", "messages", "ready", "unacked", "in/s", "out/s", "oldest", "consumers"
    );
    for q in &view.queues {
        if !q.exists {
            println!("{:<34} {:>9}", q.name, "(not declared)");
            continue;
        }
        let oldest = match (q.oldest_s, q.oldest_from) {
            (Some(s), Some("dead_letters")) => format::span(Duration::from_secs(s)),
            (Some(s), Some("tier bound")) => format!("≤{}", format::span(Duration::from_secs(s))),
            (Some(s), _) => format!("~{}", format::span(Duration::from_secs(s))),
            _ => "-".to_string(),
        };
        println!(
            "{:<34} {:>9} {:>8} {:>8} {:>8} {:>8} {:>12} {:>9}",
            q.name,
            n(q.messages),
            n(q.ready),
            n(q.unacked),
            r(q.rate_in),
            r(q.rate_out),
            oldest,
            n(q.consumers)
        );
    }
    println!("workers:");
    for w in &view.workers {
        println!("  {:<18} {:<28} {}", w.worker, w.url, w.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_age_says_how_it_was_had() {
        let now = Utc::now();
        let busy = Figures {
            exists: true,
            ready: Some(100),
            rate_out: Some(20.0),
            ..Figures::default()
        };
        assert_eq!(
            oldest(&busy, "work", None, None, now),
            (Some(5), Some("estimate"))
        );
        let stalled = Figures {
            rate_out: Some(0.0),
            ..busy.clone()
        };
        assert_eq!(oldest(&stalled, "work", None, None, now), (None, None));
        assert_eq!(
            oldest(&stalled, "retry", Some(Duration::from_secs(30)), None, now),
            (Some(30), Some("tier bound"))
        );
        let since = now - chrono::Duration::seconds(90);
        assert_eq!(
            oldest(&Figures::default(), "dead", None, Some(&since), now),
            (Some(90), Some("dead_letters"))
        );
    }

    #[test]
    fn health_targets_are_name_equals_url() {
        let t = health_targets(&["otp-send=http://10.0.0.7:9101/".into()]).unwrap();
        assert_eq!(
            t,
            [("otp-send".to_string(), "http://10.0.0.7:9101".to_string())]
        );
        assert!(health_targets(&["nope".into()]).is_err());
        let defaults = health_targets(&[]).unwrap();
        assert_eq!(defaults.len(), 6);
        assert_eq!(
            defaults[0],
            ("otp-send".to_string(), "http://127.0.0.1:9101".to_string())
        );
    }
}
