//! `pasarela doc status`: where a document stands, with a summary of its client webhooks.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use pasarela_shared::store::documents::{self, DocumentStatus};
use pasarela_shared::store::webhook_jobs::WebhookCounts;
use uuid::Uuid;

use super::{Format, bytes, error_text, unknown_document};
use crate::context::Context;
use crate::status::{opt, opt_time, time};

/// Flags of `pasarela doc status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The document_id of the doc.sign message.
    pub document_id: Uuid,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `1 delivered, 1 pending`, lifecycle order, or `none`.
pub fn webhooks_summary(counts: &WebhookCounts) -> String {
    let parts: Vec<String> = [
        (counts.pending, "pending"),
        (counts.delivering, "delivering"),
        (counts.delivered, "delivered"),
        (counts.failed, "failed"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, state)| format!("{n} {state}"))
    .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The status as labelled lines, the way `pasarela status` prints.
pub fn render_status(d: &DocumentStatus) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<31} {value}");
    };
    line("state", d.state.to_string());
    line("vendor document id", opt(&d.vendor_document_id));
    line("vendor status", opt(&d.vendor_status));
    line("vendor message", opt(&d.vendor_message));
    line("active directory user", d.active_directory_user.clone());
    line(
        "assigned active directory user",
        opt(&d.assigned_active_directory_user),
    );
    line("sent to sign", opt_time(&d.date_sent_to_sign));
    line("signing date", opt_time(&d.signing_date));
    line("document bytes", bytes(d.document_bytes));
    line(
        "signed bytes",
        d.signed_bytes.map_or_else(|| "-".into(), bytes),
    );
    line("error", error_text(&d.error_kind, &d.error_message));
    line("polls", d.polls.to_string());
    line("next poll", opt_time(&d.next_poll_at));
    line("created", time(&d.created_at));
    line("submitted", opt_time(&d.submitted_at));
    line("completed", opt_time(&d.completed_at));
    line(
        "purged",
        d.purged_at.as_ref().map_or_else(
            || "-".into(),
            |t| format!("{} (PDFs erased by retention)", time(t)),
        ),
    );
    let webhooks = match (d.webhooks.total(), d.has_callback_url) {
        (0, false) => "none: sent without callback_url".to_string(),
        (0, true) if !d.state.is_final() => "none yet: queued when signing ends".to_string(),
        _ => webhooks_summary(&d.webhooks),
    };
    line("webhooks", webhooks);
    format!(
        "document {} ({}, tenant {})\n{out}",
        d.document_id, d.document_name, d.tenant
    )
}

/// Runs `pasarela doc status`.
pub(super) async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let client = pool.get().await?;
    let id = args.document_id;
    let status = documents::status(&client, id)
        .await
        .context("reading documents")?
        .ok_or_else(|| unknown_document(id))?;
    match args.format {
        Format::Table => print!("{}", render_status(&status)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use pasarela_shared::store::documents::DocumentState;

    use super::*;

    #[test]
    fn webhook_counts_read_in_lifecycle_order() {
        assert_eq!(webhooks_summary(&WebhookCounts::default()), "none");
        let c = WebhookCounts {
            pending: 1,
            delivered: 2,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(webhooks_summary(&c), "1 pending, 2 delivered, 1 failed");
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn document() -> DocumentStatus {
        DocumentStatus {
            document_id: Uuid::nil(),
            tenant: "cli".into(),
            document_name: "contract.pdf".into(),
            state: DocumentState::Signed,
            vendor_document_id: Some("vd-1".into()),
            vendor_status: Some("signed".into()),
            vendor_message: None,
            active_directory_user: "john.doe@company.com".into(),
            assigned_active_directory_user: Some("john.doe@company.com".into()),
            date_sent_to_sign: Some(at("2024-05-01T10:00:01Z")),
            signing_date: Some(at("2024-05-01T10:02:00Z")),
            document_bytes: 2048,
            signed_bytes: Some(4096),
            error_kind: None,
            error_message: None,
            polls: 2,
            next_poll_at: None,
            created_at: at("2024-05-01T10:00:00Z"),
            submitted_at: Some(at("2024-05-01T10:00:01Z")),
            completed_at: Some(at("2024-05-01T10:02:01Z")),
            purged_at: None,
            has_callback_url: true,
            webhooks: WebhookCounts {
                delivered: 1,
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_status_reads_as_labelled_lines() {
        let text = render_status(&document());
        assert!(text.starts_with(
            "document 00000000-0000-0000-0000-000000000000 (contract.pdf, tenant cli)\n"
        ));
        assert!(text.contains("\n  state                           signed\n"));
        assert!(text.contains("\n  assigned active directory user  john.doe@company.com\n"));
        assert!(text.contains("\n  signed bytes                    4096 (4.0 KiB)\n"));
        assert!(text.contains("\n  signing date                    2024-05-01T10:02:00.000Z\n"));
        assert!(text.contains("\n  purged                          -\n"));
        assert!(text.ends_with("  webhooks                        1 delivered\n"));

        let mut d = document();
        d.state = DocumentState::Failed;
        d.error_kind = Some("vendor".into());
        d.error_message = Some("rejected by the vendor".into());
        d.purged_at = Some(at("2024-06-01T00:00:00Z"));
        d.has_callback_url = false;
        d.webhooks = WebhookCounts::default();
        let text = render_status(&d);
        assert!(
            text.contains("  error                           vendor: rejected by the vendor\n")
        );
        assert!(text.contains("2024-06-01T00:00:00.000Z (PDFs erased by retention)"));
        assert!(text.contains("webhooks                        none: sent without callback_url"));
        d.state = DocumentState::Submitted;
        d.has_callback_url = true;
        assert!(render_status(&d).contains("none yet: queued when signing ends"));
    }

    #[test]
    fn the_status_json_carries_every_field() {
        let json = serde_json::to_value(document()).unwrap();
        for field in [
            "state",
            "vendor_document_id",
            "vendor_status",
            "tenant",
            "document_name",
            "active_directory_user",
            "date_sent_to_sign",
            "signing_date",
            "assigned_active_directory_user",
            "document_bytes",
            "signed_bytes",
            "error_kind",
            "error_message",
            "polls",
            "next_poll_at",
            "created_at",
            "submitted_at",
            "completed_at",
            "purged_at",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["webhooks"]["delivered"], 1);
        assert_eq!(json["signing_date"], "2024-05-01T10:02:00Z");
    }

    #[test]
    fn the_status_json_spells_the_state_as_stored() {
        assert_eq!(serde_json::to_value(document()).unwrap()["state"], "signed");
    }
}
