//! `doc-sign`: consumes `doc.sign`, stores each PDF and submits it to the signing vendor.

use anyhow::Context;
use doc_sign::DocSignHandler;
use pasarela_shared::contract::env::Env;
use pasarela_shared::contract::env::FromEnv;
use pasarela_shared::contract::settings::{DocumentSettings, WebhookSettings};
use pasarela_shared::runtime;
use pasarela_shared::runtime::settings::{RuntimeSettings, WorkerDefaults};
use pasarela_shared::store::vendor_tokens::SecretKey;
use pasarela_shared::telemetry::{self, TelemetrySettings};
use pasarela_shared::vendors::signing::SigningClient;
use pasarela_shared::vendors::signing::SigningSettings;

// Documents are large: few in flight keeps memory near a few times one document.
const DEFAULTS: WorkerDefaults = WorkerDefaults {
    service: "doc-sign",
    prefetch: 2,
    concurrency: 2,
    metrics_addr: "0.0.0.0:9104",
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    let _telemetry = telemetry::init(&TelemetrySettings::from_env(&env, DEFAULTS.service))
        .context("starting telemetry")?;
    let settings = RuntimeSettings::from_env(&env, DEFAULTS).context("reading settings")?;
    let client = SigningClient::new(&SigningSettings::from_env(&env).context("reading SIGNING_*")?)
        .context("SIGNING_BASE_URL")?;
    let documents = DocumentSettings::from_env(&env).context("reading document settings")?;
    let webhooks = WebhookSettings::from_env(&env).context("reading PASARELA_WEBHOOK_*")?;
    let key = SecretKey::from_env(&env).map_err(anyhow::Error::msg)?;
    runtime::run(
        move |db| DocSignHandler::new(client, key, documents, &webhooks, db),
        settings,
        DEFAULTS.service,
        runtime::shutdown_signal(),
    )
    .await
    .context("doc-sign stopped")
}
