//! `pasarela`: the operator's command for migrations, OTP sends, document signing and client webhooks,
//! request status, dead-letter replay, OTP reports, local checks and the demo workload. Each
//! subcommand lives in its own module; this file only parses the command line and turns the outcome
//! into an exit code.

mod amqp;
mod check;
mod config;
mod console;
mod context;
mod demo;
mod demo_verify;
mod dlq;
mod doc;
mod exit;
mod format;
mod migrate;
mod otp;
mod queues;
mod report;
mod signing;
mod status;
mod summary;
mod topology;
mod vendor;
mod webhooks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// pasarela's command-line tool. Settings come from the environment (AMQP_URL, DATABASE_URL,
/// PASARELA_NAMESPACE, ...) and a `.env` file when present.
#[derive(Debug, Parser)]
#[command(name = "pasarela", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the database if it is missing and apply the migrations.
    Migrate,
    /// Publish one-time-password work.
    Otp {
        #[command(subcommand)]
        command: otp::OtpCommand,
    },
    /// Send PDFs for signing; show, download and purge documents.
    Doc {
        #[command(subcommand)]
        command: doc::DocCommand,
    },
    /// A document's client webhooks: every attempt, and redelivery.
    Webhooks {
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
    /// Show where a message or OTP request stands, by message_id or request_id.
    Status(status::StatusArgs),
    /// Watch every work, retry and dead queue (depth, rates, oldest age, consumers) and each worker's
    /// readiness; --once prints it once.
    Queues(queues::QueuesArgs),
    /// Serve the operator console (PASARELA_CONSOLE_TOKEN): find any request and see its story, and
    /// every queue with each worker's readiness; read-only.
    Console(console::ConsoleArgs),
    /// Inspect and replay dead-lettered messages.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Reports from pasarela's own tables.
    Report {
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// Call NumRot or GestoPago through the vendor-call worker.
    Vendor {
        #[command(subcommand)]
        command: vendor::VendorCommand,
    },
    /// The signing vendor's account: revoke its stored grant.
    Signing {
        #[command(subcommand)]
        command: signing::SigningCommand,
    },
    /// Print the settings a worker would run with here, secrets redacted; exit 1 naming what is missing.
    Config(config::ConfigArgs),
    /// Print a completion script for a shell, e.g. `pasarela completions bash > /etc/bash_completion.d/pasarela`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Check that RabbitMQ and PostgreSQL can be reached.
    Check,
    /// Declare the whole broker topology (exchanges, work, retry and `.dead` queues), as every worker
    /// does at start: for deploy pipelines.
    Topology,
    /// Run the sample workload of `make demo` and print a summary.
    Demo(demo::DemoArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Migrate => migrate::run().await,
        Command::Otp { command } => otp::run(command).await,
        Command::Doc { command } => doc::run(command).await,
        Command::Webhooks { command } => webhooks::run(command).await,
        Command::Status(args) => status::run(args).await,
        Command::Queues(args) => queues::run(args).await,
        Command::Console(args) => console::run(args).await,
        Command::Dlq { command } => dlq::run(command).await,
        Command::Report { command } => report::run(command).await,
        Command::Vendor { command } => vendor::run(command).await,
        Command::Signing { command } => signing::run(command).await,
        Command::Config(args) => config::run(args).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "pasarela", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => check::run().await,
        Command::Topology => topology::run().await,
        Command::Demo(args) => demo::run(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
