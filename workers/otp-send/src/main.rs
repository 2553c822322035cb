//! `otp-send`: consumes `otp.send` and sends each code through its provider.

use anyhow::Context;
use otp_send::OtpSendHandler;
use pasarela_shared::config::{DanaConnectSettings, Env, RuntimeSettings, WorkerDefaults};
use pasarela_shared::runtime;
use pasarela_shared::telemetry::{self, TelemetrySettings};
use pasarela_shared::vendors::danaconnect::DanaConnectClient;

const DEFAULTS: WorkerDefaults = WorkerDefaults {
    service: "otp-send",
    prefetch: 200,
    concurrency: 100,
    metrics_addr: "0.0.0.0:9101",
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    let _telemetry = telemetry::init(&TelemetrySettings::from_env(&env, DEFAULTS.service))
        .context("starting telemetry")?;
    let settings = RuntimeSettings::from_env(&env, DEFAULTS).context("reading settings")?;
    let danaconnect = DanaConnectSettings::from_env(&env).context("reading DANACONNECT_*")?;
    let client = DanaConnectClient::new(&danaconnect).context("DANACONNECT_BASE_URL")?;
    let handler = OtpSendHandler::new(client);
    runtime::run(
        handler,
        settings,
        DEFAULTS.service,
        runtime::shutdown_signal(),
    )
    .await
    .context("otp-send stopped")
}
