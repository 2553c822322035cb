//! `pasarela signing`: the signing vendor's account as pasarela holds it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use pasarela_shared::contract::env::{Env, FromEnv};
use pasarela_shared::store::vendor_tokens::{SecretKey, TokenStore};
use pasarela_shared::vendors::signing::SigningClient;

use crate::context::Context;

/// Subcommands of `pasarela signing`.
#[derive(Debug, Subcommand)]
pub enum SigningCommand {
    /// Revoke the stored grant (its refresh token, and with it its access tokens) and forget it, so
    /// that the next call signs in again: for retiring an account, or after rotating credentials by
    /// hand. (A worker that sees a grant of other credentials revokes it by itself.)
    Revoke,
}

/// Runs `pasarela signing ...`.
pub async fn run(command: SigningCommand) -> anyhow::Result<ExitCode> {
    match command {
        SigningCommand::Revoke => revoke().await,
    }
}

async fn revoke() -> anyhow::Result<ExitCode> {
    let env = Env::from_process();
    let client = SigningClient::from_env(&env).context("reading SIGNING_*")?;
    env.require_complete().context("reading SIGNING_*")?;
    let key = SecretKey::from_env(&env).context("reading PASARELA_SECRET_KEY")?;
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let tokens = TokenStore::new(pool, key, Duration::from_secs(60));
    if client.revoke_stored(&tokens).await? {
        println!("revoked the stored grant and forgot it; the next call signs in again");
    } else {
        println!("no grant is stored: nothing to revoke");
    }
    Ok(ExitCode::SUCCESS)
}
