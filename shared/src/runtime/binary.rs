//! The whole `main` of a worker binary: read the environment, start telemetry, build the handler
//! once the database is there, and run until SIGTERM.

use crate::contract::env::{ConfigError, Env, FromEnv};
use crate::runtime::consumer::{self, RunError};
use crate::runtime::database::Database;
use crate::runtime::handler::Handler;
use crate::runtime::settings::{RuntimeSettings, WorkerDefaults};
use crate::runtime::stop::shutdown_signal;
use crate::telemetry::{self, TelemetryError, TelemetrySettings};

/// A worker binary: its defaults, the settings only it reads, and how its handler is built.
pub trait Worker: Handler + Sized {
    /// The service name, prefetch, concurrency and metrics address when the environment is silent.
    const DEFAULTS: WorkerDefaults;

    /// The settings only this worker reads, checked before anything starts.
    type Settings: FromEnv + Send + 'static;

    /// Builds the handler once the database is reachable.
    fn build(settings: Self::Settings, db: &Database) -> Self;
}

/// Why a worker binary stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum MainError {
    /// Logs, traces or metrics could not start.
    #[error("starting telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
    /// A setting cannot be used (the cause names it).
    #[error("reading settings")]
    Config(#[from] ConfigError),
    /// The worker failed while running.
    #[error("stopped: {0}")]
    Run(#[from] RunError),
}

/// Runs worker `W` as its binary's `main`: settings, telemetry, then the consumer until SIGTERM.
pub async fn main<W: Worker>() -> Result<(), MainError> {
    let env = Env::from_process();
    let _telemetry = telemetry::init(&TelemetrySettings::from_env(&env, W::DEFAULTS.service))?;
    let runtime = RuntimeSettings::from_env(&env, W::DEFAULTS)?;
    let settings = W::Settings::from_env(&env)?;
    env.require_complete()?;
    consumer::run(
        move |db| W::build(settings, db),
        runtime,
        W::DEFAULTS.service,
        shutdown_signal(),
    )
    .await?;
    Ok(())
}
