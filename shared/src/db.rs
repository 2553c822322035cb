//! PostgreSQL: the pool, creating the database when it is missing, and the embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

refinery::embed_migrations!("../migrations");

/// A database failure, typed so callers can tell "wait and try again" from "this is wrong".
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` cannot be used (the URL itself is not printed: it may hold a password).
    #[error("DATABASE_URL is not usable: {0}")]
    Config(String),
    /// A statement or connection failed.
    #[error("database error: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("database pool: {0}")]
    Pool(#[from] PoolError),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
}

/// The server's own words for a failed statement (tokio-postgres prints only "db error"); the message,
/// never the detail, which may quote row values.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl DbError {
    /// Whether waiting and trying again may succeed: the server is away, restarting or overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Config(_) | DbError::Migrate(_) => false,
            DbError::Pool(PoolError::Backend(e)) | DbError::Postgres(e) => postgres_transient(e),
            DbError::Pool(PoolError::Closed) => false,
            DbError::Pool(_) => true,
        }
    }
}

/// A failure that may pass if the same operation is tried again after a wait.
pub trait Transient: std::fmt::Display {
    /// Whether waiting and trying again may succeed.
    fn transient(&self) -> bool;
}

impl Transient for DbError {
    fn transient(&self) -> bool {
        self.is_transient()
    }
}

/// The database as a worker's parts see it: the pool, and one way to wait out an outage.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    health: crate::health::Health,
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
    pub fn new(pool: Pool, health: crate::health::Health) -> Self {
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

fn postgres_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: an I/O or protocol failure on the connection.
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        }
    }
}

/// Parses `DATABASE_URL`.
pub fn parse_url(url: &SecretString) -> Result<tokio_postgres::Config, DbError> {
    let mut config = tokio_postgres::Config::from_str(url.expose_secret())
        .map_err(|_| DbError::Config("not a valid PostgreSQL URL".into()))?;
    if config.get_dbname().is_none() {
        config.dbname("pasarela");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    Ok(config)
}

/// The database name of a parsed URL.
pub fn database_name(config: &tokio_postgres::Config) -> String {
    config.get_dbname().unwrap_or("pasarela").to_string()
}

async fn connect_one(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection ended");
        }
    });
    Ok(client)
}

/// Creates the database named in `config` when it does not exist yet.
pub async fn ensure_database(config: &tokio_postgres::Config) -> Result<(), DbError> {
    let name = database_name(config);
    let mut admin = config.clone();
    admin.dbname("postgres");
    let client = connect_one(&admin).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            Ok(()) => tracing::info!(database = %name, "created the database"),
            // Another process created it between our look and our create.
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Applies the embedded migrations, one process at a time (an advisory lock serialises replicas).
pub async fn migrate(config: &tokio_postgres::Config) -> Result<usize, DbError> {
    const MIGRATION_LOCK: i64 = 0x7061_7361_7265_6c61; // "pasarela"
    let mut client = connect_one(config).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = migrations::runner().run_async(&mut client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = report?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m.name(), version = m.version(), "applied migration");
    }
    Ok(report.applied_migrations().len())
}

/// Creates the database if needed, migrates it, and returns a pool of `size` connections.
pub async fn connect(url: &SecretString, size: usize) -> Result<Pool, DbError> {
    let config = parse_url(url)?;
    ensure_database(&config).await?;
    migrate(&config).await?;
    pool(&config, size)
}

/// A pool over an existing, migrated database.
pub fn pool(config: &tokio_postgres::Config, size: usize) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_database_gets_pasarela() {
        let c = parse_url(&SecretString::from("postgres://postgres@127.0.0.1:5432")).unwrap();
        assert_eq!(database_name(&c), "pasarela");
        let c = parse_url(&SecretString::from("postgres://postgres@127.0.0.1/other")).unwrap();
        assert_eq!(database_name(&c), "other");
    }

    #[test]
    fn a_bad_url_does_not_echo_its_password() {
        let err =
            parse_url(&SecretString::from("postgres://u:topsecret@h:notaport/db")).unwrap_err();
        assert!(!err.to_string().contains("topsecret"));
    }
}
