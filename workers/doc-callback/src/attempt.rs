//! One attempt at a client webhook: the SSRF guard's check of the URL, the signed POST to the addresses
//! it approved (no redirect followed), and what came of it, with the start of a refusing endpoint's
//! answer.

use std::time::Duration;

use pasarela_shared::contract::errors::Verdict;
use pasarela_shared::contract::settings::WebhookSettings;
use pasarela_shared::store::webhook_jobs::DueJob;
use pasarela_shared::vendors::http;
use pasarela_shared::vendors::webhook as webhooks;
use pasarela_shared::vendors::webhook::WebhookSigner;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    /// 2xx.
    Delivered(u16),
    /// `410 Gone`: the endpoint wants nothing more.
    Gone,
    /// Any other answer, or none; `retry_after` when the endpoint said when.
    Failed {
        /// The status, when there was an answer.
        http_status: Option<u16>,
        /// What went wrong.
        error: String,
        /// The endpoint's `Retry-After` on 429 or 503.
        retry_after: Option<Duration>,
    },
    /// The URL may not be called (an internal address, not allow-listed): no retry helps.
    Refused(String),
}

/// Sends one signed attempt to the addresses the SSRF guard approved, following no redirect.
pub(crate) async fn attempt(
    job: &DueJob,
    settings: &WebhookSettings,
    signer: &WebhookSigner,
) -> AttemptResult {
    let url = match url::Url::parse(&job.url) {
        Ok(u) => u,
        Err(e) => return AttemptResult::Refused(format!("callback_url: {e}")),
    };
    let addrs = match webhooks::checked_destination(&url, &settings.allow_hosts).await {
        Ok(a) => a,
        Err(e @ webhooks::DestinationError::Unresolvable { .. }) => {
            return AttemptResult::Failed {
                http_status: None,
                error: e.to_string(),
                retry_after: None,
            };
        }
        Err(e) => return AttemptResult::Refused(e.to_string()),
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would connect wherever it likes: the pinned, checked addresses are the only way out.
        .no_proxy()
        .resolve_to_addrs(&host, &addrs)
        .user_agent(concat!("pasarela-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => return AttemptResult::Refused(format!("client: {e}")),
    };
    let timestamp = chrono::Utc::now().timestamp();
    let signed = signer.sign(&job.webhook_id, timestamp, job.payload.as_bytes());
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &signed.id)
        .header("webhook-timestamp", signed.timestamp.to_string())
        .header("webhook-signature", &signed.signature)
        .headers(pasarela_shared::telemetry::http_trace_headers())
        .body(job.payload.clone())
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => AttemptResult::Delivered(r.status().as_u16()),
        Ok(r) if r.status() == reqwest::StatusCode::GONE => AttemptResult::Gone,
        Ok(mut r) => {
            let status = r.status();
            let after = http::retry_after(r.headers());
            let said = excerpt(&mut r).await;
            // Every failed delivery follows the schedule; the table says when the endpoint asked for
            // a later one.
            let retry_after = match http::verdict_of_status(status.as_u16(), after, String::new()) {
                Verdict::Retry { after, .. } => after,
                Verdict::GiveUp(_) => None,
            };
            AttemptResult::Failed {
                http_status: Some(status.as_u16()),
                error: match said {
                    Some(said) => format!("HTTP {status}: {said}"),
                    None => format!("HTTP {status}"),
                },
                retry_after,
            }
        }
        Err(e) if e.is_timeout() => AttemptResult::Failed {
            http_status: None,
            error: format!("no answer within {:?}", settings.timeout),
            retry_after: None,
        },
        Err(e) => AttemptResult::Failed {
            http_status: None,
            error: format!("connection failed: {}", e.without_url()),
            retry_after: None,
        },
    }
}

/// The most of a refusing endpoint's body kept with the attempt.
const EXCERPT_BYTES: usize = 200;

/// The start of an endpoint's answer, one line, for the operator reading why it refused: read no
/// further than [`EXCERPT_BYTES`], so a client that answers with megabytes costs nothing.
async fn excerpt(response: &mut reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}
