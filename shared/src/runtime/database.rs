//! The database as a worker's parts see it: waiting for it at start, watching it, and waiting out an
//! outage in the middle of a call.

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use secrecy::SecretString;

use crate::runtime::backoff;
use crate::runtime::health::Health;
use crate::runtime::stop::StopSignal;
use crate::store::database as db;
use crate::store::error::{DbError, Transient};

/// How long a call waits out an outage: well inside the broker's consumer timeout, so a held delivery
/// is never taken away meanwhile.
const OUTAGE_BUDGET: Duration = Duration::from_secs(600);

/// How often the watchdog checks the database.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The database as a worker's parts see it: the pool, and one way to wait out an outage.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    health: Health,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl Database {
    /// Wraps `pool`; outages are reported to `health` so the worker says not-ready meanwhile.
    pub fn new(pool: Pool, health: Health) -> Self {
        Self { pool, health }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs `op`, waiting out a database outage with backoff for at most ten minutes.
    pub async fn retrying<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, E>
    where
        E: Transient,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut delays = backoff::outage(OUTAGE_BUDGET);
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.transient() => {
                    let Some(delay) = delays.next() else {
                        return Err(e);
                    };
                    self.health.set_database(false);
                    tracing::warn!(error = %e, retry_in = ?delay, "database unavailable during {what}; waiting");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Connects to the database, creating and migrating it first, and waiting with backoff while it is
/// away; `None` when stopped first. A database that cannot be used (a bad URL, a failed migration) is
/// an error at once.
pub async fn wait_for(
    url: &SecretString,
    migrate: bool,
    pool_size: usize,
    health: &Health,
    stop: &mut StopSignal,
) -> Result<Option<Pool>, DbError> {
    let config = db::parse_url(url)?;
    if !prepare(&config, migrate, health, stop).await? {
        return Ok(None);
    }
    Ok(Some(db::pool(&config, pool_size)?))
}

/// Creates and migrates the database (with `migrate`; else checks its schema is this build's),
/// waiting out an outage with backoff; `false` when stopped first.
pub async fn prepare(
    config: &db::DbConfig,
    migrate: bool,
    health: &Health,
    stop: &mut StopSignal,
) -> Result<bool, DbError> {
    let mut delays = backoff::reconnect();
    let since = Instant::now();
    loop {
        let attempt = async {
            if !migrate {
                return db::verify_schema(config).await;
            }
            db::ensure_database(config).await?;
            db::migrate(config).await.map(|_| ())
        };
        match attempt.await {
            Ok(_) => {
                health.set_database(true);
                return Ok(true);
            }
            Err(e) if e.is_transient() => {
                health.set_database(false);
                let delay = delays.next().unwrap_or(WATCH_EVERY);
                tracing::warn!(error = %e, retry_in = ?delay, waited = ?since.elapsed(),
                    "database unavailable; retrying");
                if !stop.sleep(delay).await {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reports the database's health every two seconds until stopped.
pub async fn watch(pool: Pool, health: Health, mut stop: StopSignal) {
    while stop.sleep(WATCH_EVERY).await {
        health.set_database(db::ping(&pool).await);
    }
}
