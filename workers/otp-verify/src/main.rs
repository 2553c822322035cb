//! `otp-verify`: consumes `otp.verify`, checks each code with the vendor that sent it, and answers.

use anyhow::Context;
use otp_verify::OtpVerifyHandler;
use pasarela_shared::contract::env::Env;
use pasarela_shared::contract::env::FromEnv;
use pasarela_shared::contract::settings::OtpSettings;
use pasarela_shared::runtime;
use pasarela_shared::runtime::settings::{RuntimeSettings, WorkerDefaults};
use pasarela_shared::telemetry::{self, TelemetrySettings};
use pasarela_shared::vendors::OtpClients;

const DEFAULTS: WorkerDefaults = WorkerDefaults {
    service: "otp-verify",
    prefetch: 200,
    concurrency: 100,
    metrics_addr: "0.0.0.0:9102",
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    let _telemetry = telemetry::init(&TelemetrySettings::from_env(&env, DEFAULTS.service))
        .context("starting telemetry")?;
    let settings = RuntimeSettings::from_env(&env, DEFAULTS).context("reading settings")?;
    let clients = OtpClients::from_env(&env).context("reading DANACONNECT_* and ALDEAMO_*")?;
    let otp = OtpSettings::from_env(&env).context("reading PASARELA_OTP_*")?;
    runtime::run(
        move |db| OtpVerifyHandler::new(clients, otp, db),
        settings,
        DEFAULTS.service,
        runtime::shutdown_signal(),
    )
    .await
    .context("otp-verify stopped")
}
