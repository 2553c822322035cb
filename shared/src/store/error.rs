//! Database failures, typed so that callers can tell "wait and try again" from "this is wrong".

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// A database failure, typed so callers can tell "wait and try again" from "this is wrong".
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` cannot be used (the URL itself is not printed: it may hold a password).
    #[error("DATABASE_URL is not usable: {0}")]
    Config(String),
    /// A statement or connection failed. The text carries the driver's whole chain of causes, so the
    /// error has no `source` of its own: printing a chain would repeat it.
    #[error("database error: {}", describe(.0))]
    Postgres(tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("database pool: {0}")]
    Pool(#[from] PoolError),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
    /// The database is not one this build may use as it is: missing, not migrated, or migrated by an
    /// older or newer pasarela.
    #[error("{0}")]
    Schema(String),
}

/// The server's own words for a failed statement (tokio-postgres prints only "db error"); the message,
/// never the detail, which may quote row values.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let part = c.to_string();
        // Some errors print their cause in their own text already.
        if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
        cause = c.source();
    }
    text
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Postgres(e)
    }
}

impl DbError {
    /// Whether waiting and trying again may succeed: the server is away, restarting or overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Config(_) | DbError::Migrate(_) | DbError::Schema(_) => false,
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

fn postgres_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if crate::store::tls::is_tls_refusal(e) {
        return false;
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

/// A store failure as every waiter of a failed group sees it: the database's own error, shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database failed; `transient` says whether trying again later may succeed.
    #[error("{source}")]
    Database {
        /// Whether the database is away or restarting, rather than refusing the statement.
        transient: bool,
        /// What the database said.
        #[source]
        source: std::sync::Arc<DbError>,
    },
    /// The store's committer is gone (the worker is shutting down).
    #[error("the store is shut down")]
    Closed,
}

impl StoreError {
    /// Whether trying again later may succeed (the database is away or restarting).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Database {
                transient: true,
                ..
            }
        )
    }
}

impl StoreError {
    /// Of the errors of statements pipelined in one transaction, the one that caused the others: once
    /// a statement fails, every statement after it answers only "current transaction is aborted".
    pub(crate) fn first_cause(errors: impl IntoIterator<Item = StoreError>) -> Option<StoreError> {
        let mut errors: Vec<StoreError> = errors.into_iter().collect();
        let cause = errors.iter().position(|e| !e.is_aborted_transaction());
        cause
            .or((!errors.is_empty()).then_some(0))
            .map(|i| errors.swap_remove(i))
    }

    fn is_aborted_transaction(&self) -> bool {
        match self {
            StoreError::Database { source, .. } => matches!(&**source,
                DbError::Postgres(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION)),
            StoreError::Closed => false,
        }
    }
}

impl Transient for StoreError {
    fn transient(&self) -> bool {
        self.is_transient()
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        StoreError::Database {
            transient: e.is_transient(),
            source: std::sync::Arc::new(e),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::from(e).into()
    }
}
