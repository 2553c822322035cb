//! `pasarela doc sign`: publishes a PDF as a `doc.sign` work message and, with `--wait`, polls the
//! documents row until it is signed or failed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::write::EncoderWriter;
use clap::Args;
use deadpool_postgres::Pool;
use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::retry::format_duration;
use pasarela_shared::runtime::publisher::Publisher;
use pasarela_shared::store::documents::{self, DocumentState};
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use super::Format;
use super::status::render_status;
use crate::amqp;
use crate::context::{self, Context};

/// The work queue (and routing key) of documents to sign.
pub const QUEUE: &str = "doc.sign";

/// The only signature the signing vendor offers.
pub const SIGNATURE_TYPE: &str = "digital_signature";

/// How often `doc sign --wait` looks at the documents row.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The first bytes of every PDF.
const PDF_MAGIC: &[u8] = b"%PDF-";

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
    /// How long --wait waits (60s, 2m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::format::duration, requires = "wait")]
    pub timeout: Duration,
    /// With --wait, how the status is printed: table (after the document_id), or json (the status
    /// alone on stdout, the document_id on stderr).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
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
        reply_to: None,
        content_type: Some("application/json".into()),
        expiration_ms: None,
        mandatory: false,
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

/// Runs `pasarela doc sign`.
pub(super) async fn run(args: SignArgs) -> anyhow::Result<ExitCode> {
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
    if args.wait && args.format == Format::Json {
        eprintln!("{document_id}");
    } else {
        println!("{document_id}");
    }

    match pool {
        Some(pool) => wait_for_outcome(&pool, document_id, args.timeout, args.format).await,
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Polls the documents row until it is final or `timeout` passes, then prints its status.
/// Exit code 0 when signed, 1 when failed, 2 when still under way (or never stored).
async fn wait_for_outcome(
    pool: &Pool,
    id: Uuid,
    timeout: Duration,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let client = pool.get().await?;
    let deadline = Instant::now() + timeout;
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let state = documents::state(&client, id).await?;
        if state.is_some_and(DocumentState::is_final) || Instant::now() >= deadline {
            break;
        }
    }
    let waited = format_duration(timeout);
    let status = documents::status(&client, id)
        .await
        .context("reading documents")?;
    let Some(status) = status else {
        eprintln!(
            "no document row after {waited}: the message was published but doc-sign has not \
             stored it (is doc-sign running?); see `pasarela doc status {id}` later"
        );
        return Ok(crate::exit::timed_out());
    };
    match format {
        Format::Table => print!("{}", render_status(&status)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
    }
    Ok(match status.state {
        DocumentState::Signed => ExitCode::SUCCESS,
        DocumentState::Failed => ExitCode::FAILURE,
        state => {
            eprintln!("still {state} after {waited}; see `pasarela doc status {id}` later");
            crate::exit::timed_out()
        }
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::super::{DocCommand, parse};
    use super::*;

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
        let bare =
            sign_args(&["sign", "a.pdf", "--user", "u", "--wait", "--timeout", "60"]).unwrap();
        assert_eq!(
            bare.timeout,
            Duration::from_secs(60),
            "a bare number is seconds"
        );
        assert!(
            sign_args(&[
                "sign",
                "a.pdf",
                "--user",
                "u",
                "--wait",
                "--timeout",
                "soon"
            ])
            .is_err()
        );
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
}
