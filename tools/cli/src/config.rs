//! `pasarela config <worker>`: the settings a worker would run with, read from this environment the
//! way the worker reads them, secrets shown as `[REDACTED]`; exits 1 naming every required variable
//! that is unset, as the worker would refuse to start.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use pasarela_shared::contract::env::{Env, FromEnv};
use pasarela_shared::contract::settings::{DocumentSettings, OtpSettings, WebhookSettings};
use pasarela_shared::runtime::settings::{RuntimeSettings, WorkerDefaults, defaults};
use pasarela_shared::store::vendor_tokens::SecretKey;
use pasarela_shared::vendors::aldeamo::AldeamoSettings;
use pasarela_shared::vendors::danaconnect::DanaConnectSettings;
use pasarela_shared::vendors::gestopago::GestoPagoSettings;
use pasarela_shared::vendors::numrot::NumRotSettings;
use pasarela_shared::vendors::signing::SigningSettings;

/// A worker whose settings to show.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Worker {
    /// otp.send.
    OtpSend,
    /// otp.verify.
    OtpVerify,
    /// vendor.call.
    VendorCall,
    /// doc.sign.
    DocSign,
    /// doc.callback.
    DocCallback,
}

/// Flags of `pasarela config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The worker whose effective settings to print.
    #[arg(value_enum)]
    pub worker: Worker,
}

impl Worker {
    /// The worker's own defaults, which its runtime settings start from.
    fn defaults(self) -> WorkerDefaults {
        match self {
            Worker::OtpSend => defaults::OTP_SEND,
            Worker::OtpVerify => defaults::OTP_VERIFY,
            Worker::VendorCall => defaults::VENDOR_CALL,
            Worker::DocSign => defaults::DOC_SIGN,
            Worker::DocCallback => defaults::DOC_CALLBACK,
        }
    }
}

/// Runs `pasarela config`.
pub async fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let env = Env::from_process();
    println!(
        "{:#?}",
        RuntimeSettings::from_env(&env, args.worker.defaults())?
    );
    // The token key is read on its own (the worker stops at it first): its absence is reported with
    // the rest rather than instead of it.
    let mut key = None;
    match args.worker {
        Worker::OtpSend | Worker::OtpVerify => {
            println!("{:#?}", OtpSettings::from_env(&env)?);
            println!("{:#?}", DanaConnectSettings::from_env(&env)?);
            println!("{:#?}", AldeamoSettings::from_env(&env)?);
        }
        Worker::VendorCall => {
            key = Some(SecretKey::from_env(&env).map(|k| println!("{k:#?}")));
            println!("{:#?}", NumRotSettings::from_env(&env)?);
            println!("{:#?}", GestoPagoSettings::from_env(&env)?);
        }
        Worker::DocSign | Worker::DocCallback => {
            key = Some(SecretKey::from_env(&env).map(|k| println!("{k:#?}")));
            println!("{:#?}", SigningSettings::from_env(&env)?);
            println!("{:#?}", DocumentSettings::from_env(&env)?);
            println!("{:#?}", WebhookSettings::from_env(&env)?);
        }
    }
    let mut problems = Vec::new();
    if let Some(Err(e)) = key {
        problems.push(e.to_string());
    }
    if let Err(missing) = env.require_complete() {
        problems.push(missing.to_string());
    }
    if problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("the worker would not start: {}", problems.join("; "));
    Ok(ExitCode::FAILURE)
}
