//! `pasarela doc sign|status|download|purge`: sends a PDF for signing as a `doc.sign` work message,
//! shows where a document stands, writes its stored PDFs to a file, and erases them.
//!
//! The `documents` row outlives the PDFs (retention purges `document_files` and sets `purged_at`), so
//! `status` answers for every document ever sent while `download` may find nothing left to write.
//! Each subcommand has its own module; what they share (the command, the output format, the way
//! sizes, errors and an unknown id read) is here.

mod download;
mod purge;
mod sign;
mod status;

use std::process::ExitCode;

use clap::Subcommand;
use uuid::Uuid;

use crate::status::opt;

pub use download::DownloadArgs;
pub use purge::PurgeArgs;
pub use sign::SignArgs;
pub use status::StatusArgs;

/// `pasarela doc ...`.
#[derive(Debug, Subcommand)]
pub enum DocCommand {
    /// Publish a doc.sign message for a PDF and print its document_id; with --wait, its outcome.
    Sign(SignArgs),
    /// Show where a document stands and a summary of its client webhooks.
    Status(StatusArgs),
    /// Write a document's signed PDF (or with --original, the PDF as sent) to a file.
    Download(DownloadArgs),
    /// Erase a document's stored PDFs now, keeping its status row.
    Purge(PurgeArgs),
}

pub use crate::format::Format;

/// Runs `pasarela doc ...`.
pub async fn run(command: DocCommand) -> anyhow::Result<ExitCode> {
    match command {
        DocCommand::Sign(args) => sign::run(args).await,
        DocCommand::Status(args) => status::run(args).await,
        DocCommand::Download(args) => download::run(args).await,
        DocCommand::Purge(args) => purge::run(args).await,
    }
}

/// The error for an id with no documents row.
pub fn unknown_document(id: Uuid) -> anyhow::Error {
    anyhow::anyhow!(
        "no document has id {id} (it may still be waiting in the doc.sign queue, or DATABASE_URL \
         names another database)"
    )
}

/// `20971520 (20.0 MiB)`; small sizes as plain bytes.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n.abs() < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{n} ({value:.1} {})", UNITS[unit])
}

/// `kind: message`, whichever is there, or `-`.
fn error_text(kind: &Option<String>, message: &Option<String>) -> String {
    match (kind, message) {
        (Some(k), Some(m)) => format!("{k}: {m}"),
        (k, m) => opt(&k.clone().or_else(|| m.clone())),
    }
}

/// Parses `doc ...` as the command line would, for the subcommands' tests.
#[cfg(test)]
fn parse(args: &[&str]) -> Result<DocCommand, clap::Error> {
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(subcommand)]
        command: DocCommand,
    }
    <Wrapper as clap::Parser>::try_parse_from(std::iter::once("doc").chain(args.iter().copied()))
        .map(|w| w.command)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn sizes_read_at_a_glance() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1536 (1.5 KiB)");
        assert_eq!(bytes(20 * 1024 * 1024), "20971520 (20.0 MiB)");
    }

    #[test]
    fn other_subcommands_parse() {
        let id = Uuid::now_v7().to_string();
        assert!(matches!(
            parse(&["status", &id, "--format", "json"]).unwrap(),
            DocCommand::Status(StatusArgs {
                format: Format::Json,
                ..
            })
        ));
        assert!(parse(&["status", "not-a-uuid"]).is_err());
        match parse(&["download", &id, "-o", "/tmp/x.pdf", "--original"]).unwrap() {
            DocCommand::Download(a) => {
                assert!(a.original);
                assert_eq!(a.output, PathBuf::from("/tmp/x.pdf"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["download", &id]).is_err(), "-o is required");
        assert!(matches!(
            parse(&["purge", &id]).unwrap(),
            DocCommand::Purge(_)
        ));
    }
}
