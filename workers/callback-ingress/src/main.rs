//! `callback-ingress`: receives the signing vendor's webhooks and publishes `doc.callback`.

use anyhow::Context;
use callback_ingress::{DEFAULTS, IngressSettings};
use pasarela_shared::contract::env::Env;
use pasarela_shared::runtime;
use pasarela_shared::runtime::health::Health;
use pasarela_shared::runtime::settings::RuntimeSettings;
use pasarela_shared::telemetry::{self, TelemetrySettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    let _telemetry = telemetry::init(&TelemetrySettings::from_env(&env, DEFAULTS.service))
        .context("starting telemetry")?;
    let settings = RuntimeSettings::from_env(&env, DEFAULTS).context("reading settings")?;
    let ingress = IngressSettings::from_env(&env).context("reading PASARELA_INGRESS_ADDR")?;
    env.require_complete().context("reading settings")?;
    let listener = tokio::net::TcpListener::bind(ingress.addr)
        .await
        .with_context(|| format!("listening on {}", ingress.addr))?;
    callback_ingress::run(
        settings,
        listener,
        Health::default(),
        runtime::shutdown_signal(),
    )
    .await
    .context("callback-ingress stopped")
}
