//! A document's life after submission: it ends as its outcome says, then its webhook goes out once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{SigningState, Status, VENDOR, rfc3339};
use crate::Sim;

/// A webhook receiver that has not answered by then counts as failed: the vendor does not wait long.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

impl SigningState {
    /// Moves a received document to its outcome; the webhook to send, when it has a callback URL.
    fn finish(&self, id: Uuid) -> Option<(String, Value)> {
        let mut documents = self.documents.lock().expect("documents");
        let doc = documents.get_mut(&id)?;
        if doc.status != Status::Received {
            return None;
        }
        doc.status = doc.outcome;
        if doc.status == Status::Signed {
            let now = Utc::now();
            doc.signing_date = Some(now);
            // A line break in the user name would end the PDF comment early.
            let user: String = doc.user.chars().filter(|c| !c.is_control()).collect();
            let signature = format!("\n%vendor-sim signature: {user} {}\n%%EOF\n", rfc3339(now));
            // Nothing else holds the bytes before they are signed, so this appends in place.
            Arc::make_mut(&mut doc.content).extend_from_slice(signature.as_bytes());
        }
        let url = doc.callback_url.clone()?;
        Some((url, doc.status_body(id, Status::Received.name())))
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(WEBHOOK_TIMEOUT)
                    // The vendor posts to the URL it was given: no proxy, and a redirect is an answer.
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Ends a document after its delay, then sends its webhook after the webhook delay.
pub(super) async fn lifecycle(sim: Sim, id: Uuid, sign_after: Duration) {
    tokio::time::sleep(sign_after).await;
    let Some((url, payload)) = sim.signing.finish(id) else {
        return;
    };
    let delay_ms = sim
        .signing
        .settings
        .lock()
        .expect("settings")
        .webhook_delay_ms;
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    send_webhook(&sim, id, &url, payload).await;
}

/// One webhook attempt, recorded with its answer; or none, recorded as lost.
async fn send_webhook(sim: &Sim, id: Uuid, url: &str, payload: Value) {
    let lose = sim.signing.settings.lock().expect("settings").lose_webhooks;
    {
        let mut documents = sim.signing.documents.lock().expect("documents");
        // A reset since the document ended forgets its webhook too.
        let Some(doc) = documents.get_mut(&id) else {
            return;
        };
        if lose {
            doc.webhooks_lost += 1;
        } else {
            doc.webhook_attempts += 1;
        }
    }
    if lose {
        let recorded = json!({ "document_id": id, "url": url, "payload": payload });
        sim.record(VENDOR, "webhook_lost", None, recorded);
        return;
    }
    let answer = match sim.signing.client() {
        Ok(client) => match client.post(url).json(&payload).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(error_chain(&e)),
        },
        Err(e) => Err(format!("no HTTP client: {e}")),
    };
    let (http_status, error) = match answer {
        Ok(status) => (Some(status), None),
        Err(error) => (None, Some(error)),
    };
    let recorded = json!({
        "document_id": id,
        "url": url,
        "http_status": http_status,
        "error": error,
        "payload": payload,
    });
    sim.record(VENDOR, "webhook", None, recorded);
}

/// An error with its causes: reqwest's own text rarely says whether it was a refusal or a timeout.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
