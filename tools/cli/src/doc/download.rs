//! `pasarela doc download`: writes a document's signed PDF (or the PDF as sent) to a file, a slice at
//! a time, or says why there is nothing to write.

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use pasarela_shared::store::database as db;
use pasarela_shared::store::documents::{self, DocumentState, FileGate, FileKind};
use uuid::Uuid;

use super::{bytes, error_text, unknown_document};
use crate::context::Context;
use crate::status::{opt, time};

/// How much of a stored PDF `doc download` reads per query: PostgreSQL fetches only the slice asked
/// for, so the command never holds a whole document.
const DOWNLOAD_CHUNK: i32 = 1 << 20;

/// Flags of `pasarela doc download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The document_id of the doc.sign message.
    pub document_id: Uuid,
    /// Where to write the PDF (replaced if it exists).
    #[arg(short, long, value_name = "PATH")]
    pub output: PathBuf,
    /// Write the PDF as it was sent instead of the signed one.
    #[arg(long)]
    pub original: bool,
}

/// The stored PDF `--original` asks for.
fn file_kind(original: bool) -> FileKind {
    if original {
        FileKind::Original
    } else {
        FileKind::Signed
    }
}

/// Why the file of `kind` cannot be had from this document, or `None` when it should be stored.
fn unavailable(id: Uuid, gate: &FileGate, kind: FileKind) -> Option<String> {
    if let Some(purged_at) = &gate.purged_at {
        return Some(format!(
            "the PDFs of document {id} were erased by retention at {}; its status row remains \
             (`pasarela doc status {id}`)",
            time(purged_at)
        ));
    }
    if kind == FileKind::Original {
        return None;
    }
    match gate.state {
        DocumentState::Signed => None,
        DocumentState::Failed => Some(format!(
            "document {id} was not signed: it failed ({}); --original writes the PDF as sent",
            error_text(&gate.error_kind, &gate.error_message)
        )),
        state => Some(format!(
            "document {id} is not signed yet (state {state}, vendor status {}); \
             `pasarela doc status {id}` shows where it stands",
            opt(&gate.vendor_status)
        )),
    }
}

/// Runs `pasarela doc download`.
pub(super) async fn run(args: DownloadArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let mut client = pool.get().await?;
    let id = args.document_id;
    let kind = file_kind(args.original);
    let kind_name = kind.as_str();
    // One snapshot: a purge that commits midway cannot leave a file half written from two states.
    let tx = db::snapshot(&mut client).await?;
    let gate = documents::file_gate(&tx, id)
        .await?
        .ok_or_else(|| unknown_document(id))?;
    if let Some(reason) = unavailable(id, &gate, kind) {
        anyhow::bail!(reason);
    }
    let size = documents::file_size(&tx, id, kind)
        .await?
        .with_context(|| format!("document {id} has no {kind_name} PDF stored"))?;

    let path = &args.output;
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut written: i32 = 0;
    let copied: anyhow::Result<()> = async {
        while written < size {
            // substring counts from 1.
            let chunk = documents::file_chunk(&tx, id, kind, written + 1, DOWNLOAD_CHUNK).await?;
            anyhow::ensure!(!chunk.is_empty(), "the stored PDF ended early");
            file.write_all(&chunk)
                .with_context(|| format!("writing {}", path.display()))?;
            written += chunk.len() as i32;
        }
        Ok(())
    }
    .await;
    if let Err(e) = copied {
        // A partial PDF looks like a whole one to whoever opens it next. Only a regular file goes:
        // `-o /dev/stdout` must not remove the device.
        drop(file);
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    tx.commit().await?;
    println!(
        "wrote {} of the {kind_name} PDF to {}",
        bytes(i64::from(written)),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn gate(state: DocumentState) -> FileGate {
        FileGate {
            state,
            vendor_status: Some("pending".into()),
            error_kind: Some("vendor".into()),
            error_message: Some("expired".into()),
            purged_at: None,
        }
    }

    #[test]
    fn a_download_says_why_there_is_nothing_to_write() {
        use DocumentState::{Failed, Signed, Submitted};
        let id = Uuid::nil();
        assert_eq!(unavailable(id, &gate(Signed), FileKind::Signed), None);
        assert_eq!(unavailable(id, &gate(Submitted), FileKind::Original), None);
        let not_yet = unavailable(id, &gate(Submitted), FileKind::Signed).unwrap();
        assert!(not_yet.contains("not signed yet (state submitted, vendor status pending)"));
        let failed = unavailable(id, &gate(Failed), FileKind::Signed).unwrap();
        assert!(failed.contains("failed (vendor: expired)"), "{failed}");
        let mut purged = gate(Signed);
        purged.purged_at = Some(at("2024-06-01T00:00:00Z"));
        for kind in [FileKind::Signed, FileKind::Original] {
            let why = unavailable(id, &purged, kind).unwrap();
            assert!(
                why.contains("erased by retention at 2024-06-01T00:00:00.000Z"),
                "{why}"
            );
        }
        assert_eq!(file_kind(true), FileKind::Original);
        assert_eq!(file_kind(false), FileKind::Signed);
    }
}
