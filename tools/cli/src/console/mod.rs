//! `pasarela console`: the operator's web page over the store and the broker's management API. Find
//! a request by any of its ids, its tenant or its destination and read its whole story; watch every
//! queue and each worker's readiness; list, replay and discard dead letters; watch and repair client
//! webhooks; read the OTP report. Server-rendered HTML with no script, behind a token; actions only
//! when turned on, each recorded in `operator_actions`.

mod actions;
mod guard;
mod pages;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use clap::Args;
use deadpool_postgres::Pool;
use pasarela_shared::contract::env::Env;
use pasarela_shared::store::dead_letters::{self, Filter};
use pasarela_shared::store::search::{self, Term};
use pasarela_shared::store::{documents, operator_actions, status, webhook_jobs};
use secrecy::{ExposeSecret, SecretString};

use crate::context::Context;
use crate::format;
use crate::queues::{self, api::ManagementApi};
use crate::report::{self, model::Measure};
use guard::Forms;

/// The variable that holds the console's token.
const TOKEN_VARIABLE: &str = "PASARELA_CONSOLE_TOKEN";
/// A token shorter than this is refused: it guards every request's story.
const MIN_TOKEN_CHARS: usize = 16;
/// Rows a list shows at most: the newest.
const LIST_ROWS: usize = 100;

/// `pasarela console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Where to listen: loopback unless told otherwise (put a TLS proxy in front to reach it from
    /// elsewhere).
    #[arg(long, env = "PASARELA_CONSOLE_ADDR", default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// The RabbitMQ management API (default: AMQP_URL's host, port 15672).
    #[arg(long, env = "PASARELA_RABBITMQ_API")]
    api: Option<String>,
    /// A worker's health endpoint as name=URL, repeatable (default: each worker's default port here).
    #[arg(long = "health", env = "PASARELA_HEALTH_URLS", value_delimiter = ',')]
    health: Vec<String>,
    /// Where a trace is shown, `{trace_id}` standing for its id (Grafana's Explore on Tempo, say);
    /// unset, trace ids are shown without a link.
    #[arg(long, env = "PASARELA_CONSOLE_TRACE_URL")]
    trace_url: Option<String>,
    /// Let operators act from the page (replay, discard, redeliver, re-enable); read-only without.
    #[arg(long, env = "PASARELA_CONSOLE_ACTIONS", default_value_t = false)]
    actions: bool,
}

/// What every page reads from.
struct Console {
    ctx: Context,
    token: SecretString,
    database: Pool,
    api: ManagementApi,
    health: Vec<(String, String)>,
    http: reqwest::Client,
    trace_url: Option<String>,
    /// Makes and checks action forms; `None` when actions are off.
    forms: Option<Forms>,
    /// What the OTP report's traffic light measures.
    measure: Measure,
}

type Shared = Arc<Console>;

/// Runs `pasarela console` until interrupted.
pub async fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let env = Env::from_process();
    let token = token_from(&env)?;
    let database = ctx.database(4).await?;
    let api = ManagementApi::new(&ctx.settings.amqp_url, args.api.as_deref())?;
    let health = queues::health_targets(&args.health)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    let measure = env.choice("PASARELA_OTP_TRAFFIC_LIGHT", &Measure::CHOICES)?;
    let forms = args.actions.then(|| Forms::new(&token));
    let console = Arc::new(Console {
        ctx,
        token,
        database,
        api,
        health,
        http,
        trace_url: args.trace_url,
        forms,
        measure,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!(
        "pasarela console at http://{} (token: {TOKEN_VARIABLE}; actions {})",
        listener.local_addr()?,
        if args.actions { "on" } else { "off" }
    );
    axum::serve(listener, router(console))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// The console's token from `env` (the process, or the file `PASARELA_ENV_FILE` names), refused
/// when short; never echoed.
fn token_from(env: &Env) -> anyhow::Result<SecretString> {
    let token = env.secret(TOKEN_VARIABLE, "");
    anyhow::ensure!(
        token.expose_secret().chars().count() >= MIN_TOKEN_CHARS,
        "{TOKEN_VARIABLE}: required, at least {MIN_TOKEN_CHARS} characters (openssl rand -base64 24)"
    );
    Ok(token)
}

fn router(console: Shared) -> axum::Router {
    axum::Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/queues", get(queues_page))
        .route("/dead-letters", get(letters_page))
        .route("/dead-letters/{id}", get(letter_page))
        .route("/dead-letters/{id}/replay", post(actions::replay_letter))
        .route("/dead-letters/{id}/discard", post(actions::discard_letter))
        .route("/dead-letters/replay", post(actions::replay_letters))
        .route("/dead-letters/discard", post(actions::discard_letters))
        .route("/webhooks", get(webhooks_page))
        .route("/webhooks/reenable", post(actions::reenable))
        .route("/webhooks/redeliver", post(actions::redeliver_failed))
        .route(
            "/webhooks/redeliver-document",
            post(actions::redeliver_document_form),
        )
        .route(
            "/documents/{id}/redeliver",
            post(actions::redeliver_document),
        )
        .route("/report/otp", get(report_page))
        .route("/actions", get(actions_page))
        .route("/console.css", get(stylesheet))
        .layer(middleware::from_fn_with_state(
            console.clone(),
            guard::authorize,
        ))
        .layer(middleware::from_fn(guard::secure_headers))
        .with_state(console)
}

/// A page, or why it could not be made (the store or the broker did not answer).
type Page = Result<Html<String>, Response>;

/// The answer when a store read failed.
fn unavailable(what: &str, e: impl std::fmt::Display) -> Response {
    let page = pages::failed(&format!("{what}: {e}"));
    (StatusCode::SERVICE_UNAVAILABLE, Html(page.into_string())).into_response()
}

/// A bad query: the page again, with why.
fn bad_request(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(pages::refused(why).into_string()),
    )
        .into_response()
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::STYLESHEET,
    )
}

async fn home() -> Html<String> {
    Html(pages::home().into_string())
}

/// The search box's query.
#[derive(Debug, serde::Deserialize)]
struct SearchQuery {
    q: String,
}

async fn search(State(console): State<Shared>, Query(query): Query<SearchQuery>) -> Page {
    let wanted = query.q.trim();
    if wanted.is_empty() {
        return Ok(Html(pages::home().into_string()));
    }
    let db = &console.database;
    let Ok(id) = uuid::Uuid::parse_str(wanted) else {
        let found = search::requests(db, Term::of(wanted), LIST_ROWS as i64)
            .await
            .map_err(|e| unavailable("the database did not answer", e))?;
        return Ok(Html(pages::found(wanted, &found, LIST_ROWS).into_string()));
    };
    let client = db
        .get()
        .await
        .map_err(|e| unavailable("the database did not answer", e))?;
    let id_text = id.to_string();
    let (trail, document, jobs, actions) = futures::try_join!(
        status::find(db, id),
        documents::status(&client, id),
        webhook_jobs::list(db, id),
        operator_actions::recent(db, Some(&id_text), 50),
    )
    .map_err(|e| unavailable("the database did not answer", e))?;
    let extras = pages::Extras {
        document: document.as_ref(),
        jobs: jobs.as_ref(),
        actions: &actions,
        trace_url: console.trace_url.as_deref(),
        forms: console.forms.as_ref(),
    };
    Ok(Html(pages::trail(id, &trail, &extras).into_string()))
}

async fn queues_page(State(console): State<Shared>) -> Page {
    let mut database = Some(console.database.clone());
    let c = &console;
    let view = queues::look(&c.ctx, &c.api, &c.health, &c.http, &mut database)
        .await
        .map_err(|e| unavailable("the queues could not be read", format!("{e:#}")))?;
    Ok(Html(pages::queues(&view).into_string()))
}

/// The dead-letter list's filters, as typed.
#[derive(Debug, Default, serde::Deserialize)]
struct LetterQuery {
    #[serde(default)]
    queue: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    closed: Option<String>,
}

/// A time as typed (`2h`, RFC 3339), blank for none; `Err` says what is wrong with it.
fn typed_time(name: &str, text: &str) -> Result<Option<chrono::DateTime<Utc>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    format::moment(text)
        .map(Some)
        .map_err(|e| format!("{name}: {e}"))
}

impl LetterQuery {
    fn filter(&self) -> Result<Filter, String> {
        let blank_none = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(Filter {
            queue: blank_none(&self.queue),
            kind: blank_none(&self.kind),
            since: typed_time("since", &self.since)?,
            until: typed_time("until", &self.until)?,
            closed_too: self.closed.is_some(),
        })
    }
}

async fn letters_page(State(console): State<Shared>, Query(query): Query<LetterQuery>) -> Page {
    let filter = query.filter().map_err(|why| bad_request(&why))?;
    let rows = dead_letters::list(&console.database, &filter, LIST_ROWS as i64)
        .await
        .map_err(|e| unavailable("the database did not answer", e))?;
    let page = pages::letters(
        &filter,
        (&query.since, &query.until),
        &rows,
        LIST_ROWS,
        console.forms.as_ref(),
    );
    Ok(Html(page.into_string()))
}

async fn letter_page(State(console): State<Shared>, Path(id): Path<i64>) -> Page {
    let db = &console.database;
    let target = actions::letter_target(id);
    let id_text = id.to_string();
    let (letter, actions) = futures::try_join!(
        dead_letters::letter(db, &id_text),
        operator_actions::recent(db, Some(&target), 50),
    )
    .map_err(|e| unavailable("the database did not answer", e))?;
    let Some(letter) = letter.filter(|l| l.id == id) else {
        return Err((
            StatusCode::NOT_FOUND,
            Html(pages::refused(&format!("No dead letter {id}.")).into_string()),
        )
            .into_response());
    };
    let page = pages::letter(&letter, &actions, console.forms.as_ref());
    Ok(Html(page.into_string()))
}

/// The webhook page's window, as typed.
#[derive(Debug, serde::Deserialize)]
struct WindowQuery {
    #[serde(default = "a_day")]
    since: String,
}

fn a_day() -> String {
    "24h".into()
}

async fn webhooks_page(State(console): State<Shared>, Query(query): Query<WindowQuery>) -> Page {
    let since = typed_time("since", &query.since)
        .map_err(|why| bad_request(&why))?
        .unwrap_or_else(|| Utc::now() - chrono::TimeDelta::days(1));
    let endpoints = webhook_jobs::endpoints(&console.database, since, LIST_ROWS as i64)
        .await
        .map_err(|e| unavailable("the database did not answer", e))?;
    let page = pages::webhooks(&query.since, &endpoints, console.forms.as_ref());
    Ok(Html(page.into_string()))
}

/// The report's window and tenant, as typed.
#[derive(Debug, serde::Deserialize)]
struct ReportQuery {
    #[serde(default = "an_hour")]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    tenant: String,
}

/// The report's window unless told: the last hour, an operator's view of now. A longer window reads
/// every send in it (a day of a busy system is well over 100,000 rows); docs/BENCHMARKS.md has the
/// answer times.
fn an_hour() -> String {
    "1h".into()
}

async fn report_page(State(console): State<Shared>, Query(query): Query<ReportQuery>) -> Page {
    let now = Utc::now();
    let since = typed_time("since", &query.since)
        .map_err(|why| bad_request(&why))?
        .unwrap_or(now - chrono::TimeDelta::days(7));
    let until = typed_time("until", &query.until)
        .map_err(|why| bad_request(&why))?
        .unwrap_or(now);
    let tenant = query.tenant.trim();
    let wanted = report::Wanted {
        since,
        until,
        tenants: if tenant.is_empty() {
            Vec::new()
        } else {
            vec![tenant.to_string()]
        },
        destinations: Vec::new(),
        states: Vec::new(),
        channels: Vec::new(),
        providers: Vec::new(),
        measure: console.measure,
        limit: Some(LIST_ROWS as u32),
    };
    let made = report::make(&console.database, &wanted)
        .await
        .map_err(|e| unavailable("the database did not answer", e))?;
    let page = pages::otp_report(&made, (&query.since, &query.until, tenant));
    Ok(Html(page.into_string()))
}

async fn actions_page(State(console): State<Shared>) -> Page {
    let rows = operator_actions::recent(&console.database, None, LIST_ROWS as i64)
        .await
        .map_err(|e| unavailable("the database did not answer", e))?;
    Ok(Html(pages::actions(&rows).into_string()))
}
