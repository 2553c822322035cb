//! callback-ingress: the HTTP endpoint the signing vendor calls when a document is done (docs/CONTRACT.md, `doc.callback`).
//!
//! It checks the capability URL, refuses replays of final documents, publishes `doc.callback` with a
//! publisher confirm and answers at once; the doc-callback worker does the slow, trusted part (asking the
//! vendor). The route is served from the first moment and answers 503 while the broker or the database
//! is away, so the vendor retries instead of giving up, and pasarela's status poll covers the rest.

mod callback;
pub mod checks;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::post;
use pasarela_shared::contract::env::{ConfigError, Env};
use pasarela_shared::contract::queue::Names;
use pasarela_shared::runtime::health::Health;
use pasarela_shared::runtime::link::{self, Link};
use pasarela_shared::runtime::publisher::Publisher;
use pasarela_shared::runtime::settings::{RuntimeSettings, WorkerDefaults};
use pasarela_shared::runtime::stop::{self, StopSignal};
use pasarela_shared::runtime::topology::QueueTopology;
use pasarela_shared::runtime::{database, health, http};
use pasarela_shared::store::database as db;
use pasarela_shared::store::error::DbError;
use tokio::net::TcpListener;

pub use callback::{Answer, CALLBACK_ROUTE, Ingress, MAX_BODY_BYTES};
pub use checks::{BodyError, Refusal, authorize, callback_message, parse_body, parse_document_id};

/// The work queue this service feeds.
pub const QUEUE: &str = "doc.callback";

/// The worker defaults; prefetch and concurrency are unused (nothing is consumed here).
pub const DEFAULTS: WorkerDefaults = pasarela_shared::runtime::settings::defaults::CALLBACK_INGRESS;

/// The settings only callback-ingress reads.
#[derive(Debug, Clone)]
pub struct IngressSettings {
    /// `PASARELA_INGRESS_ADDR`: where the vendor's webhooks are received (default `0.0.0.0:8088`).
    pub addr: SocketAddr,
}

impl IngressSettings {
    /// Reads `PASARELA_INGRESS_ADDR`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let default: SocketAddr = ([0, 0, 0, 0], 8088).into();
        Ok(Self {
            addr: env.parse("PASARELA_INGRESS_ADDR", default)?,
        })
    }
}

/// Why callback-ingress stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database cannot be used and waiting will not help (bad URL, failed migration).
    #[error(transparent)]
    Database(#[from] DbError),
    /// A listener failed (the metrics endpoint could not bind, or the ingress server stopped).
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// The ingress routes: the vendor's webhook, bounded in size and time, and a JSON 404 for anything
/// else. `/metrics`, `/healthz` and `/readyz` are on the metrics address, not here: this port faces the
/// vendor.
pub fn router(state: Ingress) -> Router {
    Router::new()
        .route(CALLBACK_ROUTE, post(callback::handle))
        .route_layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(middleware::from_fn(callback::measure))
        .fallback(callback::fallback)
        .with_state(state)
}

/// Serves the vendor's webhooks on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (within `PASARELA_SHUTDOWN_GRACE`) and closes the broker connection.
/// `health` is the caller's so that a test can wait for readiness.
pub async fn run(
    settings: RuntimeSettings,
    listener: TcpListener,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    // A bad URL fails at once; the server being away is waited out below.
    let config = db::parse_url(&settings.database_url)?;
    let pool = db::pool(&config, settings.db_pool_size)?;
    let names = Names::new(&settings.namespace);
    let link = Link {
        url: settings.amqp_url.clone(),
        service: DEFAULTS.service,
        topology: QueueTopology {
            names: names.clone(),
            queue: QUEUE.to_string(),
            tiers: settings.retry.delays().to_vec(),
            delivery_limit: settings.delivery_limit,
            whole: settings.declare_whole_topology,
        },
        publisher: Publisher::new(),
        health: health.clone(),
        heartbeat: settings.amqp_heartbeat,
    };
    // Stops in this order: requests (on the signal), the broker (after the last request, so that
    // in-flight publishes get their confirms), the metrics endpoint (last, so the drain can be watched).
    let mut stop = stop::stop_on(shutdown);
    let (broker_stop_tx, broker_stop) = StopSignal::new();
    let (metrics_stop_tx, mut metrics_stop) = StopSignal::new();
    if let Some(addr) = settings.metrics_addr {
        let bound = health::serve(
            addr,
            health.clone(),
            async move { metrics_stop.wait().await },
        )
        .await?;
        tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
        pasarela_shared::runtime::catalogue::build_info(DEFAULTS.service);
    }
    let broker = tokio::spawn(link::publish_only(link.clone(), broker_stop));
    let app = router(Ingress::new(
        pool.clone(),
        link.publisher.clone(),
        names,
        health.clone(),
    ));
    let bound = listener.local_addr()?;
    tracing::info!(%bound, route = CALLBACK_ROUTE, "receiving signing callbacks");
    let (server_stop_tx, server_stop) = StopSignal::new();
    let server = tokio::spawn(http::serve(
        listener,
        app,
        server_stop,
        settings.shutdown_grace,
    ));

    let prepared = database::prepare(&config, settings.migrate, &health, &mut stop.clone()).await;
    let watchdog = match &prepared {
        Ok(true) => Some(tokio::spawn(database::watch(
            pool.clone(),
            health.clone(),
            stop.clone(),
        ))),
        Ok(false) => None,
        Err(e) => {
            tracing::error!(error = %e, "the database cannot be used; stopping");
            None
        }
    };
    if prepared.is_ok() {
        stop.wait().await;
        tracing::info!("no new requests; finishing in-flight ones");
    }
    let _ = server_stop_tx.send(true);
    let served = match server.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(format!("ingress server task: {e}"))),
    };
    let _ = broker_stop_tx.send(true);
    let _ = broker.await;
    if let Some(w) = watchdog {
        w.abort();
    }
    pool.close();
    let _ = metrics_stop_tx.send(true);
    tracing::info!("stopped");
    prepared?;
    Ok(served?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingress_address_has_a_default_and_names_a_bad_value() {
        let default = IngressSettings::from_env(&Env::default()).unwrap();
        assert_eq!(default.addr, "0.0.0.0:8088".parse().unwrap());
        let set = IngressSettings::from_env(&Env::from_pairs([(
            "PASARELA_INGRESS_ADDR",
            "127.0.0.1:9999",
        )]))
        .unwrap();
        assert_eq!(set.addr, "127.0.0.1:9999".parse().unwrap());
        let err = IngressSettings::from_env(&Env::from_pairs([("PASARELA_INGRESS_ADDR", "nope")]))
            .unwrap_err();
        assert_eq!(err.variable, "PASARELA_INGRESS_ADDR");
    }

    /// The router over a database nothing listens on (port 1 of loopback) and no broker.
    async fn serve_without_services() -> String {
        let config = db::parse_url(&secrecy::SecretString::from(
            "postgres://postgres@127.0.0.1:1/none",
        ))
        .unwrap();
        let state = Ingress::new(
            db::pool(&config, 1).unwrap(),
            Publisher::new(),
            Names::new("unit"),
            Health::default(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn malformed_urls_are_404_without_asking_the_database() {
        let base = serve_without_services().await;
        let client = reqwest::Client::new();
        for path in [
            "/callbacks/signing/not-a-uuid/token",
            "/callbacks/signing/0190b0c4-aaaa-7bbb-8ccc-000000000000",
            "/anything/else",
        ] {
            let answer = client
                .post(format!("{base}{path}"))
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 404, "{path}");
            let body: serde_json::Value = answer.json().await.unwrap();
            assert_eq!(body, serde_json::json!({"error": "not_found"}), "{path}");
        }
    }

    #[tokio::test]
    async fn without_the_database_a_callback_is_told_to_come_back() {
        let base = serve_without_services().await;
        let id = uuid::Uuid::now_v7();
        let answer = reqwest::Client::new()
            .post(format!("{base}/callbacks/signing/{id}/token"))
            .body(r#"{"status":"signed"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()["retry-after"], "5");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "unavailable");
    }

    #[test]
    fn the_metrics_endpoint_defaults_to_its_own_port() {
        let settings = RuntimeSettings::from_env(&Env::default(), DEFAULTS).unwrap();
        assert_eq!(settings.metrics_addr, Some("0.0.0.0:9106".parse().unwrap()));
    }
}
