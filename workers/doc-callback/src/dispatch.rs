//! Client webhook delivery: Standard Webhooks headers and signature, a schedule of about a day and a
//! half with ±20 % jitter, `Retry-After` honoured, `410 Gone` ending deliveries to that endpoint, one
//! `webhook_deliveries` row per attempt, and `doc.webhook.delivered` / `doc.webhook.failed` events.
//!
//! Jobs live in `webhook_jobs`, so a delivery due in ten hours survives restarts. Each attempt runs in
//! its own task with its own deadline, and an endpoint never has more than
//! `PASARELA_WEBHOOK_ENDPOINT_CONCURRENCY` attempts in flight per process: a slow or dead endpoint only
//! holds its own slots, never the others'.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::errors::{ErrorKind, Failure};
use pasarela_shared::contract::events::{DocumentFacts, Ending, Event, WebhookEvent};
use pasarela_shared::contract::settings::WebhookSettings;
use pasarela_shared::contract::webhooks::{ClientWebhook, ClientWebhookData};
use pasarela_shared::runtime::handler::Background;
use pasarela_shared::runtime::jobs::Jobs;
use pasarela_shared::store;
use pasarela_shared::store::error::{DbError, StoreError};
use pasarela_shared::store::webhook_jobs::{self, AttemptRecord, DueJob};

pub use crate::attempt::AttemptResult;
use crate::attempt::attempt;
use pasarela_shared::vendors::signing::DocumentStatus;
use pasarela_shared::vendors::webhook::WebhookSigner;
use rand::Rng;
use tracing::Instrument;
use uuid::Uuid;

/// How often due jobs are looked for.
const TICK: Duration = Duration::from_millis(200);
/// The longest `Retry-After` honoured: a longer one waits this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The body of a client webhook (docs/CONTRACT.md, "Client webhooks"): the vendor's callback fields with pasarela's ids.
pub fn payload(
    event_type: &str,
    document_id: Uuid,
    tenant: &str,
    document_name: &str,
    status: &DocumentStatus,
    facts: &DocumentFacts,
) -> serde_json::Value {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let webhook = ClientWebhook {
        event_type: event_type.to_string(),
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data: ClientWebhookData {
            document_id,
            vendor_document_id: facts.vendor_document_id.clone(),
            tenant: tenant.to_string(),
            document_name: document_name.to_string(),
            status: status.status.clone(),
            signing_date: time(facts.signing_date),
            message: status.message.clone(),
            date_sent_to_sign: time(facts.date_sent_to_sign),
            assigned_active_directory_user: facts.assigned_active_directory_user.clone(),
        },
    };
    serde_json::to_value(webhook).expect("strings and a UUID always serialise")
}

/// The next attempt after attempt number `attempt` failed: `None` when the schedule is spent.
pub fn next_delay(
    schedule: &[Duration],
    attempt: usize,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    let base = *schedule.get(attempt)?;
    let jittered = base.mul_f64(1.0 + jitter);
    Some(match retry_after {
        Some(wanted) => jittered.max(wanted.min(MAX_RETRY_AFTER)),
        None => jittered,
    })
}

/// Delivers due client webhooks, as a leased job loop of the runtime.
pub struct Dispatcher {
    settings: WebhookSettings,
    signer: Arc<WebhookSigner>,
    in_flight: Mutex<HashMap<String, usize>>,
    services: Background,
}

impl Dispatcher {
    /// A dispatcher signing with `signer`; none without one (webhooks wait, with an alert logged).
    pub fn new(
        settings: WebhookSettings,
        signer: Option<Arc<WebhookSigner>>,
        services: Background,
    ) -> Option<Self> {
        let Some(signer) = signer else {
            tracing::error!(
                alert = true,
                "PASARELA_WEBHOOK_SECRET is not set: client webhooks are queued but not delivered"
            );
            return None;
        };
        Some(Self {
            settings,
            signer,
            in_flight: Mutex::new(HashMap::new()),
            services,
        })
    }

    /// Counts a taken job against its endpoint's slots until its attempt is recorded.
    fn hold(&self, url: &str) {
        *self
            .in_flight
            .lock()
            .expect("in flight")
            .entry(url.to_string())
            .or_default() += 1;
    }

    fn release(&self, url: &str) {
        let mut map = self.in_flight.lock().expect("in flight");
        if let Some(n) = map.get_mut(url) {
            *n -= 1;
            if *n == 0 {
                map.remove(url);
            }
        }
    }
}

impl Jobs for Dispatcher {
    type Job = DueJob;
    type Error = DbError;

    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn every(&self) -> Duration {
        TICK
    }

    fn concurrency(&self) -> usize {
        self.settings.concurrency
    }

    async fn take(&self, free: usize) -> Result<Vec<DueJob>, DbError> {
        let jobs = self.take_due(free).await?;
        for job in &jobs {
            self.hold(&job.url);
        }
        Ok(jobs)
    }

    async fn run(self: Arc<Self>, job: DueJob) {
        let url = job.url.clone();
        deliver(job, &self.settings, &self.signer, &self.services).await;
        self.release(&url);
    }
}

impl Dispatcher {
    /// Takes up to `free` due jobs, at most the free slots of each endpoint.
    async fn take_due(&self, free: usize) -> Result<Vec<DueJob>, DbError> {
        let busy: Vec<(String, i32)> = self
            .in_flight
            .lock()
            .expect("in flight")
            .iter()
            .map(|(u, n)| (u.clone(), *n as i32))
            .collect();
        // An attempt has its deadline; the lease outlives it so that no other dispatcher takes the job
        // while it is still being tried.
        let lease = self.settings.timeout + Duration::from_secs(60);
        webhook_jobs::take_due(
            self.services.db.pool(),
            &busy,
            self.settings.endpoint_concurrency as i64,
            free as i64,
            lease,
        )
        .await
    }
}

/// One attempt at `job`, recorded whatever it comes to.
async fn deliver(
    job: DueJob,
    settings: &WebhookSettings,
    signer: &WebhookSigner,
    services: &Background,
) {
    let started = Instant::now();
    // Each attempt is a client span in the trace of the document, whatever replica makes it and
    // however long after the check that queued it.
    let span = tracing::info_span!(
        "webhook attempt",
        otel.name = "POST client webhook",
        otel.kind = "client",
        http.request.method = "POST",
        server.address = url::Url::parse(&job.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default(),
        webhook.attempt = job.attempt,
        document_id = %job.document_id,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    pasarela_shared::telemetry::adopt_traceparent(&span, job.trace_context.as_deref());
    // Whether the endpoint is disabled was read with the job itself: no query of its own.
    let result = match job.disabled_at {
        Some(since) => AttemptResult::Refused(format!(
            "the endpoint answered 410 Gone at {}; `pasarela webhooks redeliver` re-enables it",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        None => {
            attempt(&job, settings, signer)
                .instrument(span.clone())
                .await
        }
    };
    match &result {
        AttemptResult::Delivered(status) => {
            span.record("http.response.status_code", status);
        }
        AttemptResult::Gone => {
            span.record("http.response.status_code", 410);
            span.record("error.type", "410");
            span.record("otel.status_code", "error");
        }
        AttemptResult::Failed { http_status, .. } => {
            if let Some(status) = http_status {
                span.record("http.response.status_code", status);
            }
            let kind = http_status.map_or_else(|| "transport".to_string(), |s| s.to_string());
            span.record("error.type", kind.as_str());
            span.record("otel.status_code", "error");
        }
        AttemptResult::Refused(_) => {
            span.record("error.type", "refused");
            span.record("otel.status_code", "error");
        }
    }
    let latency = started.elapsed();
    let outcome = match &result {
        AttemptResult::Delivered(_) => "delivered",
        AttemptResult::Gone => "gone",
        AttemptResult::Failed { .. } => "failed",
        AttemptResult::Refused(_) => "refused",
    };
    metrics::counter!("pasarela_webhook_attempts_total", "outcome" => outcome).increment(1);
    metrics::histogram!("pasarela_webhook_seconds").record(latency.as_secs_f64());
    let jitter = rand::rng().random_range(-0.2..=0.2);
    if let Err(e) = record(&job, &result, latency, settings, jitter, services).await {
        // The lease runs out and the job is tried again: an attempt is never silently lost.
        tracing::warn!(job_id = %job.job_id, error = %e, "could not record a webhook attempt");
    }
}

/// Records the attempt, moves the job on, and for a final outcome keeps its event in the outbox and
/// publishes it.
async fn record(
    job: &DueJob,
    result: &AttemptResult,
    latency: Duration,
    settings: &WebhookSettings,
    jitter: f64,
    services: &Background,
) -> Result<(), StoreError> {
    let (http_status, error, next) = match result {
        AttemptResult::Delivered(s) => (Some(i32::from(*s)), None, None),
        AttemptResult::Gone => (
            Some(410),
            Some("410 Gone: the endpoint is disabled until redelivered".to_string()),
            None,
        ),
        AttemptResult::Refused(why) => (None, Some(why.clone()), None),
        AttemptResult::Failed {
            http_status,
            error,
            retry_after,
        } => (
            http_status.map(i32::from),
            Some(error.clone()),
            next_delay(
                &settings.schedule,
                job.attempt as usize,
                *retry_after,
                jitter,
            ),
        ),
    };
    let state = match (result, next) {
        (AttemptResult::Delivered(_), _) => "delivered",
        (_, Some(_)) => "pending",
        _ => "failed",
    };
    let is_final = matches!(state, "delivered" | "failed");
    let event = is_final.then(|| {
        let failure = error
            .as_ref()
            .filter(|_| state == "failed")
            .map(|e| Failure::new(ErrorKind::Exhausted, e.clone()));
        let event = webhook_event(job, state, http_status, failure.as_ref());
        let body = serde_json::to_value(&event).expect("an event always serialises");
        OutboundMessage::json(services.names.events_exchange(), event.routing_key(), &body)
    });
    let attempt = AttemptRecord {
        job,
        http_status,
        latency,
        error: error.as_deref(),
        state,
        next_in: next,
        gone: matches!(result, AttemptResult::Gone),
        event,
    };
    if !webhook_jobs::record_attempt(services.db.pool(), &attempt).await? {
        // The lease ran out and another dispatcher took the job: its attempt decides.
        return Ok(());
    }
    match state {
        "delivered" => {
            tracing::info!(job_id = %job.job_id, document_id = %job.document_id, attempt = job.attempt, "client webhook delivered")
        }
        "failed" => {
            tracing::warn!(job_id = %job.job_id, document_id = %job.document_id, attempt = job.attempt, error = error.as_deref().unwrap_or(""), "client webhook given up")
        }
        _ => {
            tracing::info!(job_id = %job.job_id, attempt = job.attempt, error = error.as_deref().unwrap_or(""), next_in = ?next, "client webhook attempt failed; retry scheduled")
        }
    }
    if is_final {
        // Published now; if this fails the outbox relay publishes it later.
        let _ = store::outbox::flush(
            services.db.pool(),
            &services.publisher,
            webhook_jobs::OUTBOX_QUEUE,
            job.job_id,
            Duration::ZERO,
        )
        .await;
    }
    Ok(())
}

fn webhook_event(
    job: &DueJob,
    status: &str,
    http_status: Option<i32>,
    failure: Option<&Failure>,
) -> WebhookEvent {
    let payload = serde_json::from_str::<serde_json::Value>(&job.payload).unwrap_or_default();
    let data = &payload["data"];
    WebhookEvent {
        document_id: job.document_id,
        ending: Ending::now(status, job.attempt as u32, failure),
        vendor_document_id: data["vendor_document_id"].clone(),
        date_sent_to_sign: data["date_sent_to_sign"].clone(),
        signing_date: data["signing_date"].clone(),
        assigned_active_directory_user: data["assigned_active_directory_user"].clone(),
        url: job.url.clone(),
        http_status,
        webhook_id: job.webhook_id.clone(),
        event_type: payload["type"].clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Vec<Duration> {
        [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }

    #[test]
    fn the_schedule_spans_about_a_day_and_a_half_and_then_ends() {
        let s = schedule();
        let total: Duration = (1..s.len())
            .map(|a| next_delay(&s, a, None, 0.0).unwrap())
            .sum();
        assert_eq!(
            total.as_secs(),
            5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000
        );
        // About 28 hours: a working day and the night after it, as Svix spaces them.
        assert_eq!(total.as_secs() / 3600, 27);
        assert_eq!(next_delay(&s, s.len(), None, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_a_fifth_and_retry_after_is_honoured() {
        let s = schedule();
        let low = next_delay(&s, 2, None, -0.2).unwrap();
        let high = next_delay(&s, 2, None, 0.2).unwrap();
        assert_eq!(low, Duration::from_secs(240));
        assert_eq!(high, Duration::from_secs(360));
        // A Retry-After longer than the schedule's wait wins; a shorter one does not shorten it.
        let later = next_delay(&s, 1, Some(Duration::from_secs(60)), 0.0).unwrap();
        assert_eq!(later, Duration::from_secs(60));
        let sooner = next_delay(&s, 2, Some(Duration::from_secs(1)), 0.0).unwrap();
        assert_eq!(sooner, Duration::from_secs(300));
        let capped = next_delay(&s, 1, Some(Duration::from_secs(10 * 86_400)), 0.0).unwrap();
        assert_eq!(capped, MAX_RETRY_AFTER);
    }

    #[test]
    fn payloads_carry_pasarelas_ids_and_the_vendor_fields() {
        let id = Uuid::now_v7();
        let status = DocumentStatus {
            document_id: "v-1".into(),
            status: "signed".into(),
            date_sent_to_sign: None,
            assigned_active_directory_user: Some("j@x".into()),
            signing_date: None,
            message: Some("ok".into()),
        };
        let facts = DocumentFacts {
            vendor_document_id: Some("v-1".into()),
            assigned_active_directory_user: Some("j@x".into()),
            ..Default::default()
        };
        let p = payload("document.signed", id, "acme", "c.pdf", &status, &facts);
        assert_eq!(p["type"], "document.signed");
        assert_eq!(p["data"]["document_id"], id.to_string());
        assert_eq!(p["data"]["vendor_document_id"], "v-1");
        assert_eq!(p["data"]["status"], "signed");
        assert_eq!(p["data"]["message"], "ok");
    }
}
