//! The database as a worker's parts see it: the pool, and one way to wait out an outage.

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::runtime::health::Health;
use crate::store::error::Transient;

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

    /// Runs `op`, waiting out a database outage with backoff for at most ten minutes (well inside the
    /// broker's consumer timeout, so a held delivery is never taken away meanwhile).
    pub async fn retrying<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, E>
    where
        E: Transient,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        let mut delay = Duration::from_millis(50);
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.transient() && std::time::Instant::now() < deadline => {
                    self.health.set_database(false);
                    tracing::warn!(error = %e, retry_in = ?delay, "database unavailable during {what}; waiting");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
