//! Settings and connections every subcommand shares, read once from the environment.

use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::Pool;
use lapin::Connection;
use pasarela_shared::contract::env::Env;
use pasarela_shared::contract::queue::Names;
use pasarela_shared::runtime::publisher as broker;
use pasarela_shared::runtime::settings::{RuntimeSettings, WorkerDefaults};
use pasarela_shared::store::database as db;

/// The defaults the CLI reads the runtime settings with: it consumes nothing and serves no metrics.
pub const DEFAULTS: WorkerDefaults = WorkerDefaults {
    service: "pasarela",
    prefetch: 10,
    concurrency: 1,
    metrics_addr: "off",
};

/// The connection name the broker shows for this tool.
const CONNECTION_NAME: &str = "pasarela-cli";

/// How long connecting to the broker may take before the command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime settings and the names under their namespace.
pub struct Context {
    /// Broker and database settings, retry tiers and namespace.
    pub settings: RuntimeSettings,
    /// Exchange and queue names under `PASARELA_NAMESPACE`.
    pub names: Names,
}

impl Context {
    /// Reads the environment (and `.env`) once.
    pub fn from_env() -> anyhow::Result<Self> {
        let env = Env::from_process();
        let settings = RuntimeSettings::from_env(&env, DEFAULTS).context("reading settings")?;
        let names = Names::new(&settings.namespace);
        Ok(Self { settings, names })
    }

    /// Connects to RabbitMQ at `AMQP_URL`.
    pub async fn broker(&self) -> anyhow::Result<Connection> {
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            broker::connect(
                &self.settings.amqp_url,
                CONNECTION_NAME,
                self.settings.amqp_heartbeat,
            ),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {CONNECT_TIMEOUT:?}"))
        // lapin's message already names its cause; as a chain it would print it twice.
        .and_then(|r| r.map_err(|e| anyhow::anyhow!("{e}")))
        .context("connecting to RabbitMQ (AMQP_URL); `pasarela check` tells more")
    }

    /// Connects to the existing database at `DATABASE_URL`, whose schema must be the one this build
    /// knows. Only `pasarela migrate` creates or migrates: a command here never does, so a mistyped URL
    /// is an error rather than a new empty database, and a newer CLI never migrates under older workers.
    pub async fn database(&self, size: usize) -> anyhow::Result<Pool> {
        db::connect_existing(&self.settings.database_url, size)
            .await
            .context("connecting to PostgreSQL (DATABASE_URL); `pasarela check` tells more")
    }
}

/// Closes a broker connection politely, so the broker does not log an abrupt disconnect.
pub async fn close(connection: &Connection) {
    // The command's work is done (every publish was confirmed); a failed close changes nothing.
    let _ = connection.close(200, "done".into()).await;
}
