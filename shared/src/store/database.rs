//! PostgreSQL: the pool, creating the database when it is missing, and the embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::error::DbError;
use crate::store::tls;

refinery::embed_migrations!("../migrations");

/// A parsed `DATABASE_URL`: where the server is, and how far TLS to it is trusted.
#[derive(Clone)]
pub struct DbConfig {
    postgres: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
    mode: tls::SslMode,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The driver's own Debug redacts the password.
        f.debug_struct("DbConfig")
            .field("postgres", &self.postgres)
            .field("mode", &self.mode)
            .finish()
    }
}

impl DbConfig {
    /// The driver's settings (host, port, user, database).
    pub fn postgres(&self) -> &tokio_postgres::Config {
        &self.postgres
    }

    /// The same server and credentials, another database on it.
    pub fn with_database(&self, name: &str) -> DbConfig {
        let mut other = self.clone();
        other.postgres.dbname(name);
        other
    }

    /// The URL's `sslmode` (libpq's `prefer` when it names none).
    pub fn ssl_mode(&self) -> tls::SslMode {
        self.mode
    }
}

/// Parses `DATABASE_URL`, its TLS settings (`sslmode`, `sslrootcert`) included.
pub fn parse_url(url: &SecretString) -> Result<DbConfig, DbError> {
    let (rest, settings) = tls::split(url.expose_secret())?;
    let mut config = tokio_postgres::Config::from_str(&rest)
        .map_err(|_| DbError::Config("not a valid PostgreSQL URL".into()))?;
    if config.get_dbname().is_none() {
        config.dbname("pasarela");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    // A server that stops answering (a black-holed route, a frozen host) fails the connection within
    // half a minute instead of holding a query, and the delivery waiting on it, forever.
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    config
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    let (connector, wire) = tls::connector(&settings)?;
    config.ssl_mode(wire);
    Ok(DbConfig {
        postgres: config,
        tls: connector,
        mode: settings.mode,
    })
}

/// The database name of a parsed URL.
pub fn database_name(config: &DbConfig) -> String {
    config
        .postgres
        .get_dbname()
        .unwrap_or("pasarela")
        .to_string()
}

/// One connection outside the pool, encrypted as the URL asks.
pub async fn connect_client(config: &DbConfig) -> Result<tokio_postgres::Client, DbError> {
    Ok(connect_one(config).await?)
}

async fn connect_one(config: &DbConfig) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
    }
    match &config.tls {
        None => {
            let (client, connection) = config.postgres.connect(NoTls).await?;
            drive(connection);
            Ok(client)
        }
        Some(tls) => {
            let (client, connection) = config.postgres.connect(tls.clone()).await?;
            drive(connection);
            Ok(client)
        }
    }
}

/// Creates the database named in `config` when it does not exist yet.
pub async fn ensure_database(config: &DbConfig) -> Result<(), DbError> {
    let name = database_name(config);
    let admin = config.with_database("postgres");
    let client = connect_one(&admin).await?;
    if !exists(&client, &name).await? {
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
pub async fn migrate(config: &DbConfig) -> Result<usize, DbError> {
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

/// The newest migration this build carries.
pub fn known_schema_version() -> i32 {
    migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// A pool over an existing database whose schema is exactly the one this build knows. Nothing is
/// created or migrated: a mistyped `DATABASE_URL` is an error, not a new empty database, and a newer
/// (or older) schema is refused rather than read wrong or migrated under the workers.
pub async fn connect_existing(url: &SecretString, size: usize) -> Result<Pool, DbError> {
    let config = parse_url(url)?;
    verify_schema(&config).await?;
    pool(&config, size)
}

/// Refuses a database whose schema is not exactly the one this build knows (missing, older, newer).
async fn check_schema(client: &tokio_postgres::Client, name: &str) -> Result<(), DbError> {
    let known = known_schema_version();
    let applied: Option<i32> = match client
        .query_one("SELECT max(version) FROM refinery_schema_history", &[])
        .await
    {
        Ok(row) => row.get(0),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => None,
        Err(e) => return Err(e.into()),
    };
    match applied {
        None => Err(DbError::Schema(format!(
            "database {name:?} has no pasarela schema (run `pasarela migrate`)"
        ))),
        Some(v) if v < known => Err(DbError::Schema(format!(
            "database {name:?} is at schema V{v}, older than this pasarela's V{known}: run `pasarela migrate`"
        ))),
        Some(v) if v > known => Err(DbError::Schema(format!(
            "database {name:?} is at schema V{v}, newer than this pasarela's V{known}: use the pasarela that migrated it"
        ))),
        Some(_) => Ok(()),
    }
}

/// Checks, without changing anything, that the database exists with exactly this build's schema: for a
/// worker that must not migrate (`PASARELA_MIGRATE=off`, when `pasarela migrate` runs as its own step).
pub async fn verify_schema(config: &DbConfig) -> Result<(), DbError> {
    let name = database_name(config);
    let client = match connect_one(config).await {
        Ok(client) => client,
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            return Err(DbError::Schema(format!(
                "database {name:?} does not exist (nothing was created; `pasarela migrate` creates it)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    check_schema(&client, &name).await
}

/// Creates the database if needed, migrates it, and returns a pool of `size` connections.
pub async fn connect(url: &SecretString, size: usize) -> Result<Pool, DbError> {
    let config = parse_url(url)?;
    ensure_database(&config).await?;
    migrate(&config).await?;
    pool(&config, size)
}

/// A pool over an existing, migrated database.
pub fn pool(config: &DbConfig, size: usize) -> Result<Pool, DbError> {
    let recycling = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match &config.tls {
        None => Manager::from_config(config.postgres.clone(), NoTls, recycling),
        Some(tls) => Manager::from_config(config.postgres.clone(), tls.clone(), recycling),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// Whether the database answers a trivial query within five seconds.
pub async fn ping(pool: &Pool) -> bool {
    let ask = async {
        match pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .unwrap_or(false)
}

/// Whether a database named `name` exists, asked on a connection to any database of the server
/// (the maintenance database `postgres` always exists, so a missing one can be told from a down
/// server).
pub async fn exists(client: &tokio_postgres::Client, name: &str) -> Result<bool, DbError> {
    Ok(client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some())
}

/// Drops the database named in `config`, closing its connections (`WITH (FORCE)`); nothing when it
/// does not exist. For tools that make a database per run and must leave none behind.
pub async fn drop_database(config: &DbConfig) -> Result<(), DbError> {
    let name = database_name(config);
    let admin = config.with_database("postgres");
    let client = connect_one(&admin).await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// A read-only, repeatable-read transaction: every query of one command sees one snapshot, so that
/// a write committing midway never mixes two states in what is read.
pub async fn snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, DbError> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
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
