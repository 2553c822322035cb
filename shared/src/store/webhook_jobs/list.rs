//! Every webhook job of a document and its attempts, as `pasarela webhooks list` shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

use crate::store::database::snapshot;
use crate::store::documents::{self, DocumentHead};
use crate::store::error::DbError;
use crate::store::webhook_jobs::JobState;

/// An endpoint that answered 410 Gone, with nothing sent to it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disabled {
    /// When it was disabled.
    pub at: DateTime<Utc>,
    /// Why, as the dispatcher recorded it.
    pub reason: Option<String>,
}

/// One delivery attempt (`webhook_deliveries`).
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Which attempt of its job, from 1.
    pub attempt: i32,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// The client's HTTP status, when it answered.
    pub http_status: Option<i32>,
    /// How long the client took.
    pub latency_ms: Option<i32>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// When the next attempt was due after this one.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One webhook job and its attempts, oldest first (never its payload, which is the client's data).
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// The job's id.
    pub job_id: Uuid,
    /// The Standard Webhooks `webhook-id`, shared by every redelivery of one event.
    pub webhook_id: String,
    /// The event, e.g. `document.signed`.
    pub event_type: String,
    /// The client's URL.
    pub url: String,
    /// Where it stands.
    pub state: JobState,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The client's last HTTP status.
    pub last_http_status: Option<i32>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
    /// When it became final.
    pub completed_at: Option<DateTime<Utc>>,
    /// Set while the endpoint is disabled (it answered 410 Gone).
    pub endpoint_disabled: Option<Disabled>,
    /// Every attempt, oldest first.
    pub deliveries: Vec<Delivery>,
}

/// A document's webhook facts and every webhook job it has.
#[derive(Debug, Clone)]
pub struct DocumentJobs {
    /// What the documents row says about webhooks.
    pub document: DocumentHead,
    /// Its jobs, oldest first.
    pub jobs: Vec<Job>,
}

/// A document's jobs, with the endpoint's 410 state when it is disabled.
const JOBS_OF_DOCUMENT: &str =
    "SELECT j.job_id, j.webhook_id, j.event_type, j.url, j.state, j.attempts,
            j.next_attempt_at, j.last_http_status, j.last_error, j.created_at,
            j.completed_at, e.disabled_at, e.disabled_reason
     FROM webhook_jobs j
     LEFT JOIN webhook_endpoints e ON e.url = j.url AND e.disabled_at IS NOT NULL
     WHERE j.document_id = $1
     ORDER BY j.created_at, j.job_id";

/// A document's delivery attempts, in the order they were made.
const DELIVERIES_OF_DOCUMENT: &str =
    "SELECT job_id, attempt, attempted_at, http_status, latency_ms, error, next_attempt_at
     FROM webhook_deliveries WHERE document_id = $1
     ORDER BY attempted_at, attempt, id";

/// Every webhook job of document `id` with its attempts; `None` when there is no such document.
pub async fn list(pool: &Pool, id: Uuid) -> Result<Option<DocumentJobs>, DbError> {
    let mut client = pool.get().await?;
    // One snapshot, so that every attempt listed belongs to a job listed.
    let tx = snapshot(&mut client).await?;
    let Some(document) = documents::head(&tx, id).await? else {
        return Ok(None);
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
    let (jobs, deliveries) = futures::try_join!(
        tx.query(JOBS_OF_DOCUMENT, &params),
        tx.query(DELIVERIES_OF_DOCUMENT, &params),
    )?;
    tx.commit().await?;

    let mut by_job: BTreeMap<Uuid, Vec<Delivery>> = BTreeMap::new();
    for r in &deliveries {
        by_job.entry(r.try_get(0)?).or_default().push(Delivery {
            attempt: r.try_get(1)?,
            attempted_at: r.try_get(2)?,
            http_status: r.try_get(3)?,
            latency_ms: r.try_get(4)?,
            error: r.try_get(5)?,
            next_attempt_at: r.try_get(6)?,
        });
    }
    let jobs = jobs
        .iter()
        .map(|r| {
            let job_id: Uuid = r.try_get(0)?;
            let disabled_at: Option<DateTime<Utc>> = r.try_get(11)?;
            Ok(Job {
                job_id,
                webhook_id: r.try_get(1)?,
                event_type: r.try_get(2)?,
                url: r.try_get(3)?,
                state: r.try_get(4)?,
                attempts: r.try_get(5)?,
                next_attempt_at: r.try_get(6)?,
                last_http_status: r.try_get(7)?,
                last_error: r.try_get(8)?,
                created_at: r.try_get(9)?,
                completed_at: r.try_get(10)?,
                endpoint_disabled: match disabled_at {
                    Some(at) => Some(Disabled {
                        at,
                        reason: r.try_get(12)?,
                    }),
                    None => None,
                },
                deliveries: by_job.remove(&job_id).unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Some(DocumentJobs { document, jobs }))
}
