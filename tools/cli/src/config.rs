//! `pasarela config <worker>`: the settings a worker would run with, read from this environment the
//! way the worker reads them, secrets shown as `[REDACTED]`; exits 1 naming every required variable
//! that is unset, as the worker would refuse to start.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use pasarela_shared::contract::env::{Env, FromEnv};
use pasarela_shared::contract::settings::{DocumentSettings, OtpSettings, WebhookSettings};
use pasarela_shared::runtime::settings::{RuntimeSettings, WorkerDefaults};
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

/// The defaults every worker's runtime settings start from here: only the vendor and domain parts
/// differ between workers, and those are read below.
const DEFAULTS: WorkerDefaults = crate::context::DEFAULTS;

/// Runs `pasarela config`.
pub async fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let env = Env::from_process();
    println!("{:#?}", RuntimeSettings::from_env(&env, DEFAULTS)?);
    match args.worker {
        Worker::OtpSend | Worker::OtpVerify => {
            println!("{:#?}", OtpSettings::from_env(&env)?);
            println!("{:#?}", DanaConnectSettings::from_env(&env)?);
            println!("{:#?}", AldeamoSettings::from_env(&env)?);
        }
        Worker::VendorCall => {
            println!("{:#?}", NumRotSettings::from_env(&env)?);
            println!("{:#?}", GestoPagoSettings::from_env(&env)?);
        }
        Worker::DocSign | Worker::DocCallback => {
            println!("{:#?}", SigningSettings::from_env(&env)?);
            println!("{:#?}", DocumentSettings::from_env(&env)?);
            println!("{:#?}", WebhookSettings::from_env(&env)?);
        }
    }
    if let Err(missing) = env.require_complete() {
        eprintln!("the worker would not start: {missing}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
