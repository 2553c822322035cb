//! `pasarela doc purge`: erases a document's stored PDFs now, keeping its status row, the same way
//! the retention sweep does.

use std::process::ExitCode;

use clap::Args;
use pasarela_shared::store::documents::{self, Purge};
use uuid::Uuid;

use super::{bytes, unknown_document};
use crate::context::Context;
use crate::status::time;

/// Flags of `pasarela doc purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The document_id of the doc.sign message.
    pub document_id: Uuid,
}

/// The line `doc purge` prints.
fn describe_purge(id: Uuid, purge: &Purge) -> String {
    match purge {
        Purge::Erased {
            files,
            bytes: b,
            at,
        } => format!(
            "purged document {id} at {}: erased {files} file(s), {}; the status row remains",
            time(at),
            bytes(*b)
        ),
        Purge::Already { at } => format!(
            "document {id} was already purged at {}; nothing left to erase",
            time(at)
        ),
    }
}

/// Runs `pasarela doc purge`.
pub(super) async fn run(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let id = args.document_id;
    let purged = documents::purge(&pool, id)
        .await?
        .ok_or_else(|| unknown_document(id))?;
    if !purged.state.is_final() && matches!(purged.purge, Purge::Erased { .. }) {
        eprintln!(
            "warning: document {id} is still {}; if the vendor signs it now, the signed PDF is \
             stored after this purge",
            purged.state
        );
    }
    println!("{}", describe_purge(id, &purged.purge));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_purge_says_what_it_erased_or_when_it_was_done() {
        let id = Uuid::nil();
        let t = at("2024-06-01T00:00:00Z");
        assert_eq!(
            describe_purge(
                id,
                &Purge::Erased {
                    files: 2,
                    bytes: 3 * 1024 * 1024,
                    at: t
                }
            ),
            "purged document 00000000-0000-0000-0000-000000000000 at 2024-06-01T00:00:00.000Z: \
             erased 2 file(s), 3145728 (3.0 MiB); the status row remains"
        );
        assert_eq!(
            describe_purge(id, &Purge::Already { at: t }),
            "document 00000000-0000-0000-0000-000000000000 was already purged at \
             2024-06-01T00:00:00.000Z; nothing left to erase"
        );
    }
}
