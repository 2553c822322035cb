//! `pasarela migrate`: creates the database when it is missing and applies the embedded migrations.

use std::process::ExitCode;

use anyhow::Context as _;
use pasarela_shared::store::database as db;

use crate::context::Context;

/// Runs `pasarela migrate`.
pub async fn run() -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let config = db::parse_url(&ctx.settings.database_url)?;
    let name = db::database_name(&config);
    db::ensure_database(&config)
        .await
        .with_context(|| format!("creating database {name:?}"))?;
    let applied = db::migrate(&config)
        .await
        .with_context(|| format!("migrating database {name:?}"))?;
    let noun = if applied == 1 {
        "migration"
    } else {
        "migrations"
    };
    println!("database {name:?}: applied {applied} {noun}");
    Ok(ExitCode::SUCCESS)
}
