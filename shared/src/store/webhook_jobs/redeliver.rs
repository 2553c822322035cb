//! Redelivery: re-enabling disabled endpoints and sending a document's webhooks again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::store::documents::{self, DocumentHead};
use crate::store::error::DbError;
use crate::store::webhook_jobs::{Disabled, JobState};

/// The part of a job a redelivery decides on.
#[derive(Debug, Clone)]
pub struct JobHead {
    /// The job's id.
    pub job_id: Uuid,
    /// The Standard Webhooks `webhook-id`.
    pub webhook_id: String,
    /// The event.
    pub event_type: String,
    /// The client's URL.
    pub url: String,
    /// Where it stands.
    pub state: JobState,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What a redelivery does for one webhook, going by its newest job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Pending: its next attempt is moved to now.
    Hasten,
    /// Delivering: a dispatcher holds it right now; it is left alone.
    Leave,
    /// Delivered or failed: a new job copies it, due now.
    Copy,
}

/// The newest job of each webhook, in the order they were first created, and what to do with it.
pub fn plan(jobs: &[JobHead]) -> Vec<(&JobHead, Step)> {
    let mut order: Vec<&str> = Vec::new();
    let mut newest: BTreeMap<&str, &JobHead> = BTreeMap::new();
    for j in jobs {
        let slot = newest.entry(j.webhook_id.as_str()).or_insert_with(|| {
            order.push(j.webhook_id.as_str());
            j
        });
        // UUID v7 job ids break ties in creation time the way they were made.
        if (j.created_at, j.job_id) > (slot.created_at, slot.job_id) {
            *slot = j;
        }
    }
    order
        .into_iter()
        .map(|webhook_id| {
            let job = newest[webhook_id];
            let step = match job.state {
                JobState::Pending => Step::Hasten,
                JobState::Delivering => Step::Leave,
                JobState::Delivered | JobState::Failed => Step::Copy,
            };
            (job, step)
        })
        .collect()
}

/// An endpoint a redelivery re-enabled.
#[derive(Debug, Clone)]
pub struct Reenabled {
    /// The endpoint's URL.
    pub url: String,
    /// Its 410 state before, when it had one.
    pub disabled: Option<Disabled>,
}

/// One webhook of a redelivery: its newest job, what was done, and the copy's id for [`Step::Copy`].
#[derive(Debug, Clone)]
pub struct Planned {
    /// The newest job of the webhook.
    pub job: JobHead,
    /// What was done with it.
    pub step: Step,
    /// The new job, when one was made.
    pub new_job: Option<Uuid>,
}

/// What [`redeliver`] found and did.
#[derive(Debug, Clone)]
pub enum Redelivery {
    /// No documents row has that id.
    UnknownDocument,
    /// The document has no webhook job: nothing was changed.
    NoJobs(DocumentHead),
    /// The endpoints were re-enabled and every webhook's step taken, in one transaction.
    Done {
        /// Endpoints that had a `webhook_endpoints` row.
        reenabled: Vec<Reenabled>,
        /// One entry per webhook, in the order they were first created.
        steps: Vec<Planned>,
    },
}

/// A document's jobs, locked for the length of the redelivery.
const LOCK_JOBS: &str = "SELECT job_id, webhook_id, event_type, url, state, created_at
     FROM webhook_jobs WHERE document_id = $1
     ORDER BY created_at, job_id FOR UPDATE";

/// Forgets the 410 state of endpoints, answering what it was.
const REENABLE: &str = "DELETE FROM webhook_endpoints WHERE url = ANY($1)
     RETURNING url, disabled_at, disabled_reason";

/// Moves a pending job's next attempt to now.
const HASTEN: &str = "UPDATE webhook_jobs SET next_attempt_at = now() WHERE job_id = $1";

/// A new job copying a finished one, due now. The payload is copied inside PostgreSQL: it never
/// travels to the caller.
const COPY_JOB: &str = "INSERT INTO webhook_jobs (job_id, document_id, webhook_id, event_type, url,
                               payload, state, attempts, next_attempt_at, trace_context)
     SELECT $1, document_id, webhook_id, event_type, url, payload, 'pending', 0, now(), trace_context
     FROM webhook_jobs WHERE job_id = $2";

/// Re-enables the endpoints of `jobs`, answering what each was before.
async fn reenable(
    tx: &deadpool_postgres::Transaction<'_>,
    jobs: &[JobHead],
) -> Result<Vec<Reenabled>, DbError> {
    let urls: Vec<&str> = jobs.iter().map(|j| j.url.as_str()).collect();
    let rows = tx.query(REENABLE, &[&urls]).await?;
    let mut reenabled = Vec::with_capacity(rows.len());
    for r in &rows {
        let disabled_at: Option<DateTime<Utc>> = r.try_get(1)?;
        let disabled = match disabled_at {
            Some(at) => Some(Disabled {
                at,
                reason: r.try_get(2)?,
            }),
            None => None,
        };
        reenabled.push(Reenabled {
            url: r.try_get(0)?,
            disabled,
        });
    }
    Ok(reenabled)
}

/// Delivers document `id`'s client webhooks again: re-enables their endpoints, then for each webhook
/// [`plan`]s its newest job: a pending one is due now, a finished one is copied into a new job (same
/// `webhook-id`, so a client that has it can drop the copy), one being delivered is left alone.
pub async fn redeliver(pool: &Pool, id: Uuid) -> Result<Redelivery, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(document) = documents::head(&tx, id).await? else {
        return Ok(Redelivery::UnknownDocument);
    };
    // Locked, so that a dispatcher finishing one of them meanwhile waits for this decision.
    let jobs = tx
        .query(LOCK_JOBS, &[&id])
        .await?
        .iter()
        .map(|r| {
            Ok(JobHead {
                job_id: r.try_get(0)?,
                webhook_id: r.try_get(1)?,
                event_type: r.try_get(2)?,
                url: r.try_get(3)?,
                state: r.try_get(4)?,
                created_at: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    if jobs.is_empty() {
        return Ok(Redelivery::NoJobs(document));
    }

    let reenabled = reenable(&tx, &jobs).await?;

    let mut steps = Vec::new();
    for (job, step) in plan(&jobs) {
        let new_job = match step {
            Step::Hasten => {
                tx.execute(HASTEN, &[&job.job_id]).await?;
                None
            }
            Step::Leave => None,
            Step::Copy => {
                let new_job = Uuid::now_v7();
                tx.execute(COPY_JOB, &[&new_job, &job.job_id]).await?;
                Some(new_job)
            }
        };
        steps.push(Planned {
            job: job.clone(),
            step,
            new_job,
        });
    }
    tx.commit().await?;
    Ok(Redelivery::Done { reenabled, steps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::webhook_jobs::WebhookCounts;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn job(webhook_id: &str, state: JobState, created: &str) -> JobHead {
        JobHead {
            job_id: Uuid::now_v7(),
            webhook_id: webhook_id.into(),
            event_type: "document.signed".into(),
            url: "https://client.example/hooks".into(),
            state,
            created_at: at(created),
        }
    }

    #[test]
    fn the_newest_job_of_each_webhook_decides() {
        let jobs = [
            job("msg_a", JobState::Failed, "2024-05-01T10:00:00Z"),
            job("msg_b", JobState::Pending, "2024-05-01T10:00:01Z"),
            job("msg_a", JobState::Delivered, "2024-05-01T11:00:00Z"),
            job("msg_c", JobState::Delivering, "2024-05-01T10:00:02Z"),
            job("msg_d", JobState::Failed, "2024-05-01T10:00:03Z"),
            job("msg_d", JobState::Pending, "2024-05-01T10:00:04Z"),
        ];
        let steps: Vec<(&str, Uuid, Step)> = plan(&jobs)
            .into_iter()
            .map(|(j, s)| (j.webhook_id.as_str(), j.job_id, s))
            .collect();
        assert_eq!(
            steps,
            [
                ("msg_a", jobs[2].job_id, Step::Copy),
                ("msg_b", jobs[1].job_id, Step::Hasten),
                ("msg_c", jobs[3].job_id, Step::Leave),
                ("msg_d", jobs[5].job_id, Step::Hasten),
            ]
        );
    }

    #[test]
    fn equal_creation_times_fall_to_the_later_job_id() {
        let first = job("msg_a", JobState::Failed, "2024-05-01T10:00:00Z");
        let second = job("msg_a", JobState::Pending, "2024-05-01T10:00:00Z");
        assert!(second.job_id > first.job_id);
        let jobs = [second.clone(), first];
        let steps = plan(&jobs);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].0.job_id, second.job_id);
        assert_eq!(steps[0].1, Step::Hasten);
    }

    #[test]
    fn job_states_read_and_print_as_the_schema_spells_them() {
        // The values the V6 CHECK constraint allows.
        let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["pending", "delivering", "delivered", "failed"]);
        for state in JobState::ALL {
            assert_eq!(JobState::from_text(state.as_str()), Some(*state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert_eq!(JobState::from_text("gone"), None);
    }

    #[test]
    fn counts_total_every_state() {
        let c = WebhookCounts {
            pending: 1,
            delivering: 2,
            delivered: 3,
            failed: 4,
        };
        assert_eq!(c.total(), 10);
    }
}
