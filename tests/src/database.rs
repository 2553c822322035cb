//! Databases of their own: the one a [`TestEnv`] gets (its worker creates it), and [`TestDatabase`]
//! for tests that need PostgreSQL alone.

use tokio::process::Command;
use uuid::Uuid;

use crate::environment::TestEnv;
use crate::services::{binary, pg_connect, services};

impl TestEnv {
    /// Runs a query on the test's database.
    pub async fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.db.query(sql, &[]).await.expect("query")
    }

    /// Runs `sql` on the test's database; the error when it fails (a lock not granted, say).
    pub async fn try_query(
        &self,
        sql: &str,
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        self.db.query(sql, &[]).await
    }

    /// Reconnects the harness's database client (after a database restart).
    pub async fn reconnect_db(&mut self) {
        self.db = pg_connect(&self.database_url).await;
    }
}

/// A database of its own for a test that needs PostgreSQL alone: no broker, simulator or worker.
pub struct TestDatabase {
    /// The database name.
    pub name: String,
    /// Its URL, as the `pasarela` command gets it.
    pub url: String,
    /// A client on it.
    pub db: tokio_postgres::Client,
}

impl TestDatabase {
    /// Creates a fresh database and migrates it the way an operator does, with `pasarela migrate`.
    pub async fn create() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let name = format!("pasarela_d{}", &id[..12]);
        let url = format!("{}/{name}", services().await.pg_base);
        let migrated = pasarela_on(&url)
            .arg("migrate")
            .output()
            .await
            .expect("running pasarela migrate");
        assert!(
            migrated.status.success(),
            "pasarela migrate failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        let db = pg_connect(&url).await;
        Self { name, url, db }
    }

    /// Runs the `pasarela` command against this database; stdout and stderr stay apart.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_with(&[], args).await
    }

    /// Runs the `pasarela` CLI like [`TestDatabase::cli`], with the settings `env` too.
    pub async fn cli_with(&self, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
        pasarela_on(&self.url)
            .envs(env.iter().copied())
            .args(args)
            .output()
            .await
            .expect("running pasarela")
    }

    /// Drops the database.
    pub async fn drop_database(self) {
        drop(self.db);
        drop_database(&self.name).await;
    }
}

/// The `pasarela` command with only `DATABASE_URL` set, so nothing else of the test's environment
/// reaches it.
fn pasarela_on(database_url: &str) -> Command {
    let mut command = Command::new(binary("pasarela"));
    command
        .env_clear()
        .env("PASARELA_PROFILE", "demo")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url);
    command
}

/// Drops a test's database, closing whatever connections are left on it.
pub async fn drop_database(name: &str) {
    let admin = pg_connect(&format!("{}/postgres", services().await.pg_base)).await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
}
