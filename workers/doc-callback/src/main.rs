//! `doc-callback`: consumes `doc.callback`, confirms and stores signed documents, polls the vendor for
//! documents whose webhook never came, and delivers the clients' signed webhooks.

use anyhow::Context;
use doc_callback::DocCallbackHandler;
use pasarela_shared::contract::env::Env;
use pasarela_shared::contract::env::FromEnv;
use pasarela_shared::contract::settings::{DocumentSettings, WebhookSettings};
use pasarela_shared::runtime;
use pasarela_shared::runtime::settings::{RuntimeSettings, WorkerDefaults};
use pasarela_shared::store::vendor_tokens::SecretKey;
use pasarela_shared::telemetry::{self, TelemetrySettings};
use pasarela_shared::vendors::signing::SigningClient;
use pasarela_shared::vendors::signing::SigningSettings;
use pasarela_shared::vendors::webhook::WebhookSigner;

// Each check may download a large document: few at a time keeps memory near one document's size.
const DEFAULTS: WorkerDefaults = WorkerDefaults {
    service: "doc-callback",
    prefetch: 4,
    concurrency: 2,
    metrics_addr: "0.0.0.0:9105",
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
    let signer = webhooks
        .secret
        .as_ref()
        .map(WebhookSigner::new)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let key = SecretKey::from_env(&env).map_err(anyhow::Error::msg)?;
    runtime::run(
        move |db| DocCallbackHandler::new(client, key, documents, webhooks, signer, db),
        settings,
        DEFAULTS.service,
        runtime::shutdown_signal(),
    )
    .await
    .context("doc-callback stopped")
}
