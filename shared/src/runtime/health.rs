//! `/metrics`, `/healthz` and `/readyz`: what an operator and an orchestrator ask a worker.
//!
//! Live means the process answers; ready means it has the broker and the database right now. A worker
//! that lost either stays up, reconnects, and says not-ready meanwhile (docs/ARCHITECTURE.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::runtime::catalogue;

/// Whether the worker currently has its broker and database.
#[derive(Debug, Clone, Default)]
pub struct Health {
    broker: Arc<AtomicBool>,
    database: Arc<AtomicBool>,
    /// Bumped on every change, so that a caller can wait for readiness instead of polling it.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Health {
    /// Records whether the broker connection is up.
    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::Relaxed);
        self.changes.send_modify(|n| *n += 1);
        metrics::gauge!("pasarela_broker_connected").set(f64::from(u8::from(up)));
    }

    /// Records whether the database answers.
    pub fn set_database(&self, up: bool) {
        self.database.store(up, Ordering::Relaxed);
        self.changes.send_modify(|n| *n += 1);
        metrics::gauge!("pasarela_database_connected").set(f64::from(u8::from(up)));
    }

    /// Ready to do work: both connections are up.
    pub fn is_ready(&self) -> bool {
        self.broker.load(Ordering::Relaxed) && self.database.load(Ordering::Relaxed)
    }

    /// Resolves once readiness is `ready` (at once if it is already).
    pub async fn wait_ready(&self, ready: bool) {
        let mut changes = self.changes.subscribe();
        while self.is_ready() != ready {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(catalogue::SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("pasarela_group_commit_size".into()),
                    catalogue::GROUP_SIZES,
                )
            })
            .expect("non-empty buckets");
        match builder.install_recorder() {
            Ok(handle) => {
                catalogue::describe();
                handle
            }
            // Another recorder is installed (a test process): render from a detached one.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: &'static PrometheusHandle,
}

/// Serves the endpoints on `addr` until `shutdown` resolves; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let state = AppState {
        health,
        metrics: prometheus(),
    };
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.health.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}
