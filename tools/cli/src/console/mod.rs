//! `pasarela console`: the operator's web page over the store and the broker's management API. Find
//! a request by any of its ids and see what is recorded of it; watch every queue and each worker's
//! readiness. Server-rendered HTML with no script, behind a token, read-only.

mod pages;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use clap::Args;
use deadpool_postgres::Pool;
use pasarela_shared::store::status;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::context::Context;
use crate::queues::{self, api::ManagementApi};

/// The variable that holds the console's token.
const TOKEN_VARIABLE: &str = "PASARELA_CONSOLE_TOKEN";
/// A token shorter than this is refused: it guards every request's story.
const MIN_TOKEN_CHARS: usize = 16;

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
}

type Shared = Arc<Console>;

/// Runs `pasarela console` until interrupted.
pub async fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let token = token_from_env()?;
    let database = ctx.database(4).await?;
    let api = ManagementApi::new(&ctx.settings.amqp_url, args.api.as_deref())?;
    let health = queues::health_targets(&args.health)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    let console = Arc::new(Console {
        ctx,
        token,
        database,
        api,
        health,
        http,
        trace_url: args.trace_url,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    eprintln!(
        "pasarela console at http://{} (token: {TOKEN_VARIABLE})",
        listener.local_addr()?
    );
    axum::serve(listener, router(console))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}

fn token_from_env() -> anyhow::Result<SecretString> {
    let token = std::env::var(TOKEN_VARIABLE).unwrap_or_default();
    anyhow::ensure!(
        token.chars().count() >= MIN_TOKEN_CHARS,
        "{TOKEN_VARIABLE}: required, at least {MIN_TOKEN_CHARS} characters (openssl rand -base64 24)"
    );
    Ok(SecretString::from(token))
}

fn router(console: Shared) -> axum::Router {
    axum::Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/queues", get(queues_page))
        .route("/console.css", get(stylesheet))
        .layer(middleware::from_fn_with_state(console.clone(), authorize))
        .layer(middleware::from_fn(secure_headers))
        .with_state(console)
}

/// Whether `header` (an `Authorization` value) carries the token: as a Bearer token, or as the
/// password of HTTP Basic (any user name), which a browser asks for by itself.
fn carries_token(header: &str, token: &SecretString) -> bool {
    let token = token.expose_secret().as_bytes();
    if let Some(bearer) = header.strip_prefix("Bearer ") {
        return bool::from(bearer.trim().as_bytes().ct_eq(token));
    }
    let Some(basic) = header.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
        return false;
    };
    let password = match decoded.iter().position(|b| *b == b':') {
        Some(colon) => &decoded[colon + 1..],
        None => return false,
    };
    bool::from(password.ct_eq(token))
}

async fn authorize(State(console): State<Shared>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given.is_some_and(|h| carries_token(h, &console.token)) {
        return next.run(request).await;
    }
    let mut refused = (
        StatusCode::UNAUTHORIZED,
        "the console's token is required\n",
    )
        .into_response();
    refused.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"pasarela console\", charset=\"UTF-8\""),
    );
    refused
}

/// Headers on every answer: no script, no framing, no sniffing, no referrer, no caching of pages
/// that show customers' requests.
async fn secure_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; \
             base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
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

async fn search(State(console): State<Shared>, Query(query): Query<SearchQuery>) -> Response {
    let wanted = query.q.trim();
    let Ok(id) = uuid::Uuid::parse_str(wanted) else {
        let page = pages::not_an_id(wanted);
        return (StatusCode::BAD_REQUEST, Html(page.into_string())).into_response();
    };
    match status::find(&console.database, id).await {
        Ok(trail) => {
            let page = pages::trail(id, &trail, console.trace_url.as_deref());
            Html(page.into_string()).into_response()
        }
        Err(e) => {
            let page = pages::failed(&format!("the database did not answer: {e}"));
            (StatusCode::SERVICE_UNAVAILABLE, Html(page.into_string())).into_response()
        }
    }
}

async fn queues_page(State(console): State<Shared>) -> Response {
    let mut database = Some(console.database.clone());
    let c = &console;
    match queues::look(&c.ctx, &c.api, &c.health, &c.http, &mut database).await {
        Ok(view) => Html(pages::queues(&view).into_string()).into_response(),
        Err(e) => {
            let page = pages::failed(&format!("the queues could not be read: {e:#}"));
            (StatusCode::SERVICE_UNAVAILABLE, Html(page.into_string())).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    #[test]
    fn the_token_is_taken_as_bearer_or_as_the_basic_password() {
        let token = SecretString::from("s3cret-token-of-the-console");
        assert!(carries_token("Bearer s3cret-token-of-the-console", &token));
        assert!(carries_token(
            &basic("ops:s3cret-token-of-the-console"),
            &token
        ));
        assert!(carries_token(
            &basic(":s3cret-token-of-the-console"),
            &token
        ));
        assert!(!carries_token("Bearer s3cret-token-of-the-consol", &token));
        assert!(!carries_token(
            &basic("s3cret-token-of-the-console"),
            &token
        ));
        assert!(!carries_token(&basic("ops:wrong"), &token));
        assert!(!carries_token("Basic %%%", &token));
        assert!(!carries_token("s3cret-token-of-the-console", &token));
    }
}
