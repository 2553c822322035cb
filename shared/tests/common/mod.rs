//! What the library's database tests share: a fresh, migrated database on the test server
//! (`PASARELA_TEST_PG`, default the local one), and dropping it afterwards.

#![allow(dead_code)] // each test file uses its own part of this

pub mod world;

use pasarela_shared::store::database as db;
use secrecy::SecretString;

/// The key every test's token store encrypts with.
pub const SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A test's own database.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: SecretString,
    server: String,
}

impl TestDb {
    /// Creates and migrates a database named `<prefix><random>`.
    pub async fn create(prefix: &str) -> Self {
        let server = std::env::var("PASARELA_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!(
            "{prefix}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let url = SecretString::from(format!("{server}/{name}"));
        db::connect(&url, 1).await.expect("test database");
        Self { name, url, server }
    }

    /// A pool of its own, as a separate replica would have.
    pub fn pool(&self, size: usize) -> deadpool_postgres::Pool {
        db::pool(&db::parse_url(&self.url).unwrap(), size).unwrap()
    }

    /// Drops it, closing whatever connections are left.
    pub async fn drop(self) {
        let (admin, conn) =
            tokio_postgres::connect(&format!("{}/postgres", self.server), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
    }
}
