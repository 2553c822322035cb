//! `vendor-call`: consumes `vendor.call` and calls NumRot or GestoPago with the shared tokens.

use anyhow::Context;
use pasarela_shared::contract::env::Env;
use pasarela_shared::contract::env::FromEnv;
use pasarela_shared::runtime;
use pasarela_shared::runtime::settings::{RuntimeSettings, WorkerDefaults};
use pasarela_shared::store::vendor_tokens::SecretKey;
use pasarela_shared::telemetry::{self, TelemetrySettings};
use pasarela_shared::vendors::gestopago::GestoPagoClient;
use pasarela_shared::vendors::gestopago::GestoPagoSettings;
use pasarela_shared::vendors::numrot::NumRotClient;
use pasarela_shared::vendors::numrot::NumRotSettings;
use vendor_call::VendorCallHandler;

const DEFAULTS: WorkerDefaults = WorkerDefaults {
    service: "vendor-call",
    prefetch: 100,
    concurrency: 50,
    metrics_addr: "0.0.0.0:9103",
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    let _telemetry = telemetry::init(&TelemetrySettings::from_env(&env, DEFAULTS.service))
        .context("starting telemetry")?;
    let settings = RuntimeSettings::from_env(&env, DEFAULTS).context("reading settings")?;
    let numrot = NumRotClient::new(&NumRotSettings::from_env(&env).context("reading NUMROT_*")?)
        .context("NUMROT_BASE_URL")?;
    let gestopago =
        GestoPagoClient::new(&GestoPagoSettings::from_env(&env).context("reading GESTOPAGO_*")?)
            .context("GESTOPAGO_*")?;
    let key = SecretKey::from_env(&env).map_err(anyhow::Error::msg)?;
    let log_payloads = env.parse("PASARELA_LOG_PAYLOADS", false)?;
    runtime::run(
        move |db| VendorCallHandler::new(numrot, gestopago, key, log_payloads, db),
        settings,
        DEFAULTS.service,
        runtime::shutdown_signal(),
    )
    .await
    .context("vendor-call stopped")
}
