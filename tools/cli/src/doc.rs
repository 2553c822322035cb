//! `pasarela doc sign|status|download|purge`: sends a PDF for signing as a `doc.sign` work message,
//! shows where a document stands, writes its stored PDFs to a file, and erases them.
//!
//! The `documents` row outlives the PDFs (retention purges `document_files` and sets `purged_at`), so
//! `status` answers for every document ever sent while `download` may find nothing left to write.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::write::EncoderWriter;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use deadpool_postgres::{GenericClient, Pool};
use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::retry::{format_duration, parse_duration};
use pasarela_shared::runtime::publisher::Publisher;
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use crate::amqp;
use crate::context::{self, Context};
use crate::status::{opt, opt_time, time};

/// The work queue (and routing key) of documents to sign.
pub const QUEUE: &str = "doc.sign";

/// The only signature the signing vendor offers.
pub const SIGNATURE_TYPE: &str = "digital_signature";

/// How often `doc sign --wait` looks at the documents row.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How much of a stored PDF `doc download` reads per query: the files are stored uncompressed
/// (`STORAGE EXTERNAL`), so PostgreSQL fetches only the slice asked for and the command never holds
/// a whole document.
const DOWNLOAD_CHUNK: i32 = 1 << 20;

/// The first bytes of every PDF.
const PDF_MAGIC: &[u8] = b"%PDF-";

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

/// Flags of `pasarela doc sign`.
#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// The PDF to sign.
    pub file: PathBuf,
    /// The Active Directory user who signs it, e.g. john.doe@company.com.
    #[arg(long)]
    pub user: String,
    /// The client webhook called when signing ends (http or https URL).
    #[arg(long, value_name = "URL", value_parser = parse_callback_url)]
    pub callback: Option<String>,
    /// The producer's tenant.
    #[arg(long, default_value = "cli")]
    pub tenant: String,
    /// The document name the signer sees [default: the file's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Wait until the document is signed or failed and print its status; exits 0 only when signed.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits: a whole number and ms, s, m or h.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, requires = "wait")]
    pub timeout: Duration,
}

/// How a status or list is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Labelled text.
    Table,
    /// One JSON object.
    Json,
}

/// Flags of `pasarela doc status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The document_id of the doc.sign message.
    pub document_id: Uuid,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

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

/// Flags of `pasarela doc purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The document_id of the doc.sign message.
    pub document_id: Uuid,
}

/// Accepts an absolute http or https URL, as the doc-sign worker will.
fn parse_callback_url(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(raw.to_string()),
        "http" | "https" => Err(format!("{raw:?} has no host")),
        other => Err(format!(
            "{raw:?} is a {other} URL; webhooks go to http or https"
        )),
    }
}

/// The fields of a `doc.sign` message other than the PDF itself.
#[derive(Debug, Serialize)]
pub struct SignFields<'a> {
    /// The document's id, also the message_id.
    pub document_id: Uuid,
    /// The producer's tenant.
    pub tenant: &'a str,
    /// The name the signer sees.
    pub document_name: &'a str,
    /// Who signs.
    pub active_directory_user: &'a str,
    /// Always [`SIGNATURE_TYPE`].
    pub signature_type: &'a str,
    /// The client's webhook, when one is wanted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<&'a str>,
}

/// The `doc.sign` body: `fields` plus `document_content`, the PDF read from `pdf` in standard padded
/// Base64. `pdf_len` only sizes the buffer.
///
/// The Base64 text is encoded straight into the body, which is allocated once at its final size: the
/// command holds no copy of the PDF, nor of its Base64 form, beside the body (a `serde_json::Value`
/// would hold three).
pub fn sign_body(fields: &SignFields<'_>, mut pdf: impl Read, pdf_len: u64) -> io::Result<Vec<u8>> {
    const CONTENT_OPEN: &[u8] = b",\"document_content\":\"";
    const CONTENT_CLOSE: &[u8] = b"\"}";
    let mut body = serde_json::to_vec(fields)?;
    // An object with at least one field: reopen it to append the last one.
    debug_assert_eq!(body.last(), Some(&b'}'));
    body.pop();
    let encoded = usize::try_from(pdf_len)
        .ok()
        .and_then(|n| base64::encoded_len(n, true))
        .ok_or_else(|| io::Error::other("the file is too large to encode"))?;
    body.reserve_exact(CONTENT_OPEN.len() + encoded + CONTENT_CLOSE.len());
    body.extend_from_slice(CONTENT_OPEN);
    // Base64's alphabet needs no JSON escaping, so the encoder writes into the string as is.
    let mut encoder = EncoderWriter::new(body, &STANDARD);
    io::copy(&mut pdf, &mut encoder)?;
    let mut body = encoder.finish()?;
    body.extend_from_slice(CONTENT_CLOSE);
    Ok(body)
}

/// The `doc.sign` work message for the work exchange: message_id = document_id, JSON, persistent.
pub fn outbound(exchange: String, document_id: Uuid, body: Vec<u8>) -> OutboundMessage {
    OutboundMessage {
        id: Uuid::now_v7(),
        exchange,
        routing_key: QUEUE.to_string(),
        message_id: Some(document_id.to_string()),
        correlation_id: None,
        content_type: Some("application/json".into()),
        expiration_ms: None,
        headers: BTreeMap::new(),
        body,
    }
}

/// The document name a file gets when `--name` is absent: its file name.
fn default_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no file name; give one with --name", path.display()))
}

/// Reads the PDF at `path` into a `doc.sign` body, warning when it does not look like a PDF (the
/// worker rejects those; sending one anyway is how that path is tried).
fn read_sign_body(path: &Path, fields: &SignFields<'_>) -> anyhow::Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let head = reader
        .fill_buf()
        .with_context(|| format!("reading {}", path.display()))?;
    if !head.starts_with(PDF_MAGIC) {
        eprintln!(
            "warning: {} does not start with %PDF-; doc-sign will reject it",
            path.display()
        );
    }
    sign_body(fields, reader, len).with_context(|| format!("reading {}", path.display()))
}

/// Runs `pasarela doc ...`.
pub async fn run(command: DocCommand) -> anyhow::Result<ExitCode> {
    match command {
        DocCommand::Sign(args) => sign(args).await,
        DocCommand::Status(args) => status(args).await,
        DocCommand::Download(args) => download(args).await,
        DocCommand::Purge(args) => purge(args).await,
    }
}

async fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let document_id = Uuid::now_v7();
    let document_name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(&args.file)?,
    };
    let fields = SignFields {
        document_id,
        tenant: &args.tenant,
        document_name: &document_name,
        active_directory_user: &args.user,
        signature_type: SIGNATURE_TYPE,
        callback_url: args.callback.as_deref(),
    };
    // Read before connecting: a missing file costs no connection, and the blocking read has the
    // runtime to itself.
    let body = read_sign_body(&args.file, &fields)?;

    let ctx = Context::from_env()?;
    // --wait reads the documents table: fail before publishing when it cannot be read.
    let pool = match args.wait {
        true => Some(ctx.database(1).await?),
        false => None,
    };
    let connection = ctx.broker().await?;
    amqp::ensure_work_topology(&connection, &ctx.settings, QUEUE).await?;
    let out = outbound(ctx.names.work_exchange(), document_id, body);
    let publisher = Publisher::new();
    publisher.attach(&connection).await?;
    let published = publisher.publish(&out).await;
    // The body is the command's one large allocation; it is not needed while waiting.
    drop(out);
    context::close(&connection).await;
    published.context("publishing doc.sign")?;
    println!("{document_id}");

    match pool {
        Some(pool) => wait_for_outcome(&pool, document_id, args.timeout).await,
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Whether a document's state is final.
fn is_final(state: &str) -> bool {
    matches!(state, "signed" | "failed")
}

/// Polls the documents row until it is final or `timeout` passes, then prints its status.
/// Exit code 0 when signed, 1 when failed, 2 when still under way (or never stored).
async fn wait_for_outcome(pool: &Pool, id: Uuid, timeout: Duration) -> anyhow::Result<ExitCode> {
    let client = pool.get().await?;
    let state_of = client
        .prepare("SELECT state FROM documents WHERE document_id = $1")
        .await?;
    let deadline = Instant::now() + timeout;
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let state: Option<String> = client.query_opt(&state_of, &[&id]).await?.map(|r| r.get(0));
        if state.as_deref().is_some_and(is_final) || Instant::now() >= deadline {
            break;
        }
    }
    let waited = format_duration(timeout);
    let Some(status) = load_status(&client, id).await? else {
        eprintln!(
            "no document row after {waited}: the message was published but doc-sign has not \
             stored it (is doc-sign running?); see `pasarela doc status {id}` later"
        );
        return Ok(ExitCode::from(2));
    };
    print!("{}", render_status(&status));
    Ok(match status.state.as_str() {
        "signed" => ExitCode::SUCCESS,
        "failed" => ExitCode::FAILURE,
        state => {
            eprintln!("still {state} after {waited}; see `pasarela doc status {id}` later");
            ExitCode::from(2)
        }
    })
}

/// A document's client webhook jobs, counted by state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookCounts {
    /// Waiting for their next attempt.
    pub pending: i64,
    /// Held by a dispatcher right now.
    pub delivering: i64,
    /// Accepted by the client.
    pub delivered: i64,
    /// Given up on.
    pub failed: i64,
}

impl WebhookCounts {
    /// `1 delivered, 1 pending`, lifecycle order, or `none`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            (self.pending, "pending"),
            (self.delivering, "delivering"),
            (self.delivered, "delivered"),
            (self.failed, "failed"),
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

    fn total(&self) -> i64 {
        self.pending + self.delivering + self.delivered + self.failed
    }
}

/// A `documents` row, without the capability token's digest, and its webhooks.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentStatus {
    document_id: Uuid,
    tenant: String,
    document_name: String,
    state: String,
    vendor_document_id: Option<String>,
    vendor_status: Option<String>,
    vendor_message: Option<String>,
    active_directory_user: String,
    assigned_active_directory_user: Option<String>,
    date_sent_to_sign: Option<DateTime<Utc>>,
    signing_date: Option<DateTime<Utc>>,
    document_bytes: i64,
    signed_bytes: Option<i64>,
    error_kind: Option<String>,
    error_message: Option<String>,
    polls: i32,
    next_poll_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    purged_at: Option<DateTime<Utc>>,
    /// Whether the producer asked for a client webhook.
    has_callback_url: bool,
    webhooks: WebhookCounts,
}

/// The status of document `id`, `None` when there is no such document.
pub async fn load_status(
    client: &impl GenericClient,
    id: Uuid,
) -> anyhow::Result<Option<DocumentStatus>> {
    let row = client
        .query_opt(
            "SELECT d.document_id, d.tenant, d.document_name, d.state, d.vendor_document_id,
                    d.vendor_status, d.vendor_message, d.active_directory_user,
                    d.assigned_active_directory_user, d.date_sent_to_sign, d.signing_date,
                    d.document_bytes, d.signed_bytes, d.error_kind, d.error_message, d.polls,
                    d.next_poll_at, d.created_at, d.submitted_at, d.completed_at, d.purged_at,
                    d.client_callback_url IS NOT NULL AS has_callback_url,
                    w.pending, w.delivering, w.delivered, w.failed
             FROM documents d
             CROSS JOIN LATERAL (
                 SELECT count(*) FILTER (WHERE j.state = 'pending') AS pending,
                        count(*) FILTER (WHERE j.state = 'delivering') AS delivering,
                        count(*) FILTER (WHERE j.state = 'delivered') AS delivered,
                        count(*) FILTER (WHERE j.state = 'failed') AS failed
                 FROM webhook_jobs j WHERE j.document_id = d.document_id
             ) w
             WHERE d.document_id = $1",
            &[&id],
        )
        .await
        .context("reading documents")?;
    Ok(row.map(|r| DocumentStatus {
        document_id: r.get("document_id"),
        tenant: r.get("tenant"),
        document_name: r.get("document_name"),
        state: r.get("state"),
        vendor_document_id: r.get("vendor_document_id"),
        vendor_status: r.get("vendor_status"),
        vendor_message: r.get("vendor_message"),
        active_directory_user: r.get("active_directory_user"),
        assigned_active_directory_user: r.get("assigned_active_directory_user"),
        date_sent_to_sign: r.get("date_sent_to_sign"),
        signing_date: r.get("signing_date"),
        document_bytes: r.get("document_bytes"),
        signed_bytes: r.get("signed_bytes"),
        error_kind: r.get("error_kind"),
        error_message: r.get("error_message"),
        polls: r.get("polls"),
        next_poll_at: r.get("next_poll_at"),
        created_at: r.get("created_at"),
        submitted_at: r.get("submitted_at"),
        completed_at: r.get("completed_at"),
        purged_at: r.get("purged_at"),
        has_callback_url: r.get("has_callback_url"),
        webhooks: WebhookCounts {
            pending: r.get("pending"),
            delivering: r.get("delivering"),
            delivered: r.get("delivered"),
            failed: r.get("failed"),
        },
    }))
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

/// The status as labelled lines, the way `pasarela status` prints.
pub fn render_status(d: &DocumentStatus) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<31} {value}");
    };
    line("state", d.state.clone());
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
        (0, true) if !is_final(&d.state) => "none yet: queued when signing ends".to_string(),
        _ => d.webhooks.summary(),
    };
    line("webhooks", webhooks);
    format!(
        "document {} ({}, tenant {})\n{out}",
        d.document_id, d.document_name, d.tenant
    )
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let client = pool.get().await?;
    let id = args.document_id;
    let status = load_status(&client, id)
        .await?
        .ok_or_else(|| unknown_document(id))?;
    match args.format {
        Format::Table => print!("{}", render_status(&status)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// A stored PDF's kind, as `document_files.kind` spells it.
fn file_kind(original: bool) -> &'static str {
    if original { "original" } else { "signed" }
}

/// What `doc download` needs to know of a document before reading its file.
#[derive(Debug, Clone)]
struct FileGate {
    state: String,
    vendor_status: Option<String>,
    error_kind: Option<String>,
    error_message: Option<String>,
    purged_at: Option<DateTime<Utc>>,
}

/// Why the file of `kind` cannot be had from this document, or `None` when it should be stored.
fn unavailable(id: Uuid, gate: &FileGate, kind: &str) -> Option<String> {
    if let Some(purged_at) = &gate.purged_at {
        return Some(format!(
            "the PDFs of document {id} were erased by retention at {}; its status row remains \
             (`pasarela doc status {id}`)",
            time(purged_at)
        ));
    }
    if kind == "original" {
        return None;
    }
    match gate.state.as_str() {
        "signed" => None,
        "failed" => Some(format!(
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

async fn download(args: DownloadArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let mut client = pool.get().await?;
    let id = args.document_id;
    let kind = file_kind(args.original);
    // One snapshot: a purge that commits midway cannot leave a file half written from two states.
    let tx = crate::context::snapshot(&mut client).await?;
    let gate = tx
        .query_opt(
            "SELECT state, vendor_status, error_kind, error_message, purged_at
             FROM documents WHERE document_id = $1",
            &[&id],
        )
        .await?
        .map(|r| FileGate {
            state: r.get(0),
            vendor_status: r.get(1),
            error_kind: r.get(2),
            error_message: r.get(3),
            purged_at: r.get(4),
        })
        .ok_or_else(|| unknown_document(id))?;
    if let Some(reason) = unavailable(id, &gate, kind) {
        anyhow::bail!(reason);
    }
    let size: i32 = tx
        .query_opt(
            "SELECT octet_length(content) FROM document_files WHERE document_id = $1 AND kind = $2",
            &[&id, &kind],
        )
        .await?
        .map(|r| r.get(0))
        .with_context(|| format!("document {id} has no {kind} PDF stored"))?;

    let chunk_of = tx
        .prepare(
            "SELECT substring(content FROM $3 FOR $4) FROM document_files
             WHERE document_id = $1 AND kind = $2",
        )
        .await?;
    let path = &args.output;
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut written: i32 = 0;
    let copied: anyhow::Result<()> = async {
        while written < size {
            // substring counts from 1.
            let row = tx
                .query_one(&chunk_of, &[&id, &kind, &(written + 1), &DOWNLOAD_CHUNK])
                .await?;
            let chunk: &[u8] = row.get(0);
            anyhow::ensure!(!chunk.is_empty(), "the stored PDF ended early");
            file.write_all(chunk)
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
        "wrote {} of the {kind} PDF to {}",
        bytes(i64::from(written)),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What one purge did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purge {
    /// The files were erased now.
    Erased {
        files: usize,
        bytes: i64,
        at: DateTime<Utc>,
    },
    /// An earlier purge had erased them.
    Already { at: DateTime<Utc> },
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

async fn purge(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let mut client = pool.get().await?;
    let id = args.document_id;
    let tx = client.transaction().await?;
    // The row lock orders this purge after any worker write to the document in flight.
    let row = tx
        .query_opt(
            "SELECT state, purged_at FROM documents WHERE document_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .ok_or_else(|| unknown_document(id))?;
    let state: String = row.get(0);
    let outcome = match row.get::<_, Option<DateTime<Utc>>>(1) {
        Some(at) => Purge::Already { at },
        None => {
            // octet_length reads the size from the TOAST pointer: the PDFs are not fetched.
            let erased = tx
                .query(
                    "DELETE FROM document_files WHERE document_id = $1
                     RETURNING octet_length(content)::bigint",
                    &[&id],
                )
                .await?;
            let at: DateTime<Utc> = tx
                .query_one(
                    "UPDATE documents SET purged_at = now() WHERE document_id = $1
                     RETURNING purged_at",
                    &[&id],
                )
                .await?
                .get(0);
            Purge::Erased {
                files: erased.len(),
                bytes: erased.iter().map(|r| r.get::<_, i64>(0)).sum(),
                at,
            }
        }
    };
    tx.commit().await.context("committing the purge")?;
    if !is_final(&state) && matches!(outcome, Purge::Erased { .. }) {
        eprintln!(
            "warning: document {id} is still {state}; if the vendor signs it now, the signed PDF \
             is stored after this purge"
        );
    }
    println!("{}", describe_purge(id, &outcome));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(subcommand)]
        command: DocCommand,
    }

    fn parse(args: &[&str]) -> Result<DocCommand, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("doc").chain(args.iter().copied()))
            .map(|w| w.command)
    }

    fn sign_args(args: &[&str]) -> Result<SignArgs, clap::Error> {
        parse(args).map(|c| match c {
            DocCommand::Sign(a) => a,
            other => panic!("not a sign: {other:?}"),
        })
    }

    #[test]
    fn sign_takes_its_defaults() {
        let a = sign_args(&["sign", "contract.pdf", "--user", "john.doe@company.com"]).unwrap();
        assert_eq!(a.file, PathBuf::from("contract.pdf"));
        assert_eq!(a.tenant, "cli");
        assert_eq!(a.name, None);
        assert_eq!(a.callback, None);
        assert!(!a.wait);
        assert_eq!(a.timeout, Duration::from_secs(60));
        assert_eq!(default_name(&a.file).unwrap(), "contract.pdf");
        assert_eq!(
            default_name(Path::new("/tmp/in/acta final.pdf")).unwrap(),
            "acta final.pdf"
        );
        assert!(default_name(Path::new("/")).is_err());
    }

    #[test]
    fn sign_checks_its_flags() {
        assert!(sign_args(&["sign", "a.pdf"]).is_err(), "--user is required");
        let a = sign_args(&[
            "sign",
            "a.pdf",
            "--user",
            "u",
            "--wait",
            "--timeout",
            "2m",
            "--tenant",
            "acme",
            "--name",
            "Acta",
            "--callback",
            "https://client.example/hooks/signing",
        ])
        .unwrap();
        assert!(a.wait);
        assert_eq!(a.timeout, Duration::from_secs(120));
        assert_eq!(a.tenant, "acme");
        assert_eq!(a.name.as_deref(), Some("Acta"));
        assert_eq!(
            a.callback.as_deref(),
            Some("https://client.example/hooks/signing")
        );
        assert!(
            sign_args(&["sign", "a.pdf", "--user", "u", "--timeout", "5s"]).is_err(),
            "--timeout needs --wait"
        );
        assert!(sign_args(&["sign", "a.pdf", "--user", "u", "--wait", "--timeout", "60"]).is_err());
        for bad in ["ftp://x.example/", "not a url", "https://"] {
            assert!(
                sign_args(&["sign", "a.pdf", "--user", "u", "--callback", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_body_follows_the_contract() {
        let id = Uuid::now_v7();
        let pdf: Vec<u8> = b"%PDF-1.7\n\xff\xfe\x00 binary \"quoted\"\n%%EOF"
            .iter()
            .copied()
            .cycle()
            .take(10_001)
            .collect();
        let fields = SignFields {
            document_id: id,
            tenant: "acme",
            document_name: "contrato \"final\".pdf",
            active_directory_user: "john.doe@company.com",
            signature_type: SIGNATURE_TYPE,
            callback_url: Some("https://client.example/hooks/signing"),
        };
        let body = sign_body(&fields, pdf.as_slice(), pdf.len() as u64).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let content = STANDARD
            .decode(json["document_content"].as_str().unwrap())
            .unwrap();
        assert_eq!(content, pdf);
        let mut json = json;
        json.as_object_mut().unwrap().remove("document_content");
        assert_eq!(
            json,
            serde_json::json!({
                "document_id": id.to_string(), "tenant": "acme",
                "document_name": "contrato \"final\".pdf",
                "active_directory_user": "john.doe@company.com",
                "signature_type": "digital_signature",
                "callback_url": "https://client.example/hooks/signing"
            })
        );
        assert_eq!(
            body.capacity(),
            body.len(),
            "the body is allocated once, at its final size"
        );

        let out = outbound("ns.pasarela".into(), id, body);
        assert_eq!(out.exchange, "ns.pasarela");
        assert_eq!(out.routing_key, "doc.sign");
        assert_eq!(out.message_id.as_deref(), Some(id.to_string().as_str()));
        assert_eq!(out.content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn without_a_callback_the_field_is_left_out() {
        let fields = SignFields {
            document_id: Uuid::nil(),
            tenant: "cli",
            document_name: "a.pdf",
            active_directory_user: "u",
            signature_type: SIGNATURE_TYPE,
            callback_url: None,
        };
        let body = sign_body(&fields, &b""[..], 0).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(json.get("callback_url").is_none());
        assert_eq!(json["document_content"], "");
        let body = sign_body(&fields, &b"ab"[..], 2).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json["document_content"], "YWI=",
            "standard alphabet, padded"
        );
    }

    #[test]
    fn sizes_read_at_a_glance() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1536 (1.5 KiB)");
        assert_eq!(bytes(20 * 1024 * 1024), "20971520 (20.0 MiB)");
    }

    #[test]
    fn webhook_counts_read_in_lifecycle_order() {
        assert_eq!(WebhookCounts::default().summary(), "none");
        let c = WebhookCounts {
            pending: 1,
            delivered: 2,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(c.summary(), "1 pending, 2 delivered, 1 failed");
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn document() -> DocumentStatus {
        DocumentStatus {
            document_id: Uuid::nil(),
            tenant: "cli".into(),
            document_name: "contract.pdf".into(),
            state: "signed".into(),
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
        d.state = "failed".into();
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
        d.state = "submitted".into();
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

    fn gate(state: &str) -> FileGate {
        FileGate {
            state: state.into(),
            vendor_status: Some("pending".into()),
            error_kind: Some("vendor".into()),
            error_message: Some("expired".into()),
            purged_at: None,
        }
    }

    #[test]
    fn a_download_says_why_there_is_nothing_to_write() {
        let id = Uuid::nil();
        assert_eq!(unavailable(id, &gate("signed"), "signed"), None);
        assert_eq!(unavailable(id, &gate("submitted"), "original"), None);
        let not_yet = unavailable(id, &gate("submitted"), "signed").unwrap();
        assert!(not_yet.contains("not signed yet (state submitted, vendor status pending)"));
        let failed = unavailable(id, &gate("failed"), "signed").unwrap();
        assert!(failed.contains("failed (vendor: expired)"), "{failed}");
        let mut purged = gate("signed");
        purged.purged_at = Some(at("2024-06-01T00:00:00Z"));
        for kind in ["signed", "original"] {
            let why = unavailable(id, &purged, kind).unwrap();
            assert!(
                why.contains("erased by retention at 2024-06-01T00:00:00.000Z"),
                "{why}"
            );
        }
        assert_eq!(file_kind(true), "original");
        assert_eq!(file_kind(false), "signed");
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
