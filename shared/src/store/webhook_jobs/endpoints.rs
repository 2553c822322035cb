//! The client endpoints as an operator watches them: per endpoint, how its webhooks of a window went,
//! its last error and whether it is disabled; and the repairs made from the console (re-enabling one,
//! redelivering everything that failed since a time).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

use crate::store::error::DbError;
use crate::store::webhook_jobs::{Disabled, Redelivery, redeliver};

/// One client endpoint over a window.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// The client's URL.
    pub url: String,
    /// Webhook jobs created in the window.
    pub jobs: i64,
    /// Of those, delivered.
    pub delivered: i64,
    /// Of those, given up on.
    pub failed: i64,
    /// Of those, still on their way.
    pub waiting: i64,
    /// The newest job's last error, if it had one.
    pub last_error: Option<String>,
    /// The newest job's last HTTP status.
    pub last_http_status: Option<i32>,
    /// When its newest job of the window was created.
    pub last_job_at: Option<DateTime<Utc>>,
    /// Set while it is disabled (it answered 410 Gone).
    pub disabled: Option<Disabled>,
}

impl Endpoint {
    /// Delivered out of those finished, when any finished.
    pub fn success_rate(&self) -> Option<f64> {
        let finished = self.delivered + self.failed;
        (finished > 0).then(|| self.delivered as f64 / finished as f64)
    }
}

/// Per endpoint, the jobs created since `$1` (off `webhook_jobs_created`), with its 410 state.
const ENDPOINTS: &str = "SELECT j.url, count(*),
            count(*) FILTER (WHERE j.state = 'delivered'),
            count(*) FILTER (WHERE j.state = 'failed'),
            count(*) FILTER (WHERE j.state IN ('pending', 'delivering')),
            (array_agg(j.last_error ORDER BY j.created_at DESC))[1],
            (array_agg(j.last_http_status ORDER BY j.created_at DESC))[1],
            max(j.created_at), e.disabled_at, e.disabled_reason
     FROM webhook_jobs j
     LEFT JOIN webhook_endpoints e ON e.url = j.url AND e.disabled_at IS NOT NULL
     WHERE j.created_at >= $1
     GROUP BY j.url, e.disabled_at, e.disabled_reason
     ORDER BY j.url LIMIT $2";

/// Disabled endpoints, whether or not they had jobs in the window.
const DISABLED: &str = "SELECT url, disabled_at, disabled_reason FROM webhook_endpoints
     WHERE disabled_at IS NOT NULL ORDER BY url LIMIT $1";

/// Every endpoint with jobs created since `since`, and every disabled one, by URL (at most `limit`
/// of each).
pub async fn endpoints(
    pool: &Pool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Endpoint>, DbError> {
    let client = pool.get().await?;
    let mut endpoints = client
        .query(ENDPOINTS, &[&since, &limit])
        .await?
        .iter()
        .map(|r| {
            let disabled_at: Option<DateTime<Utc>> = r.try_get(8)?;
            Ok(Endpoint {
                url: r.try_get(0)?,
                jobs: r.try_get(1)?,
                delivered: r.try_get(2)?,
                failed: r.try_get(3)?,
                waiting: r.try_get(4)?,
                last_error: r.try_get(5)?,
                last_http_status: r.try_get(6)?,
                last_job_at: r.try_get(7)?,
                disabled: match disabled_at {
                    Some(at) => Some(Disabled {
                        at,
                        reason: r.try_get(9)?,
                    }),
                    None => None,
                },
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    for r in client.query(DISABLED, &[&limit]).await? {
        let url: String = r.try_get(0)?;
        if endpoints.iter().any(|e| e.url == url) {
            continue;
        }
        endpoints.push(Endpoint {
            url,
            jobs: 0,
            delivered: 0,
            failed: 0,
            waiting: 0,
            last_error: None,
            last_http_status: None,
            last_job_at: None,
            disabled: Some(Disabled {
                at: r.try_get(1)?,
                reason: r.try_get(2)?,
            }),
        });
    }
    endpoints.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(endpoints)
}

/// Forgets an endpoint's 410: the dispatcher sends to it again. Answers what it was, `None` when it
/// was not disabled.
pub async fn reenable_endpoint(pool: &Pool, url: &str) -> Result<Option<Disabled>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "DELETE FROM webhook_endpoints WHERE url = $1 RETURNING disabled_at, disabled_reason",
            &[&url],
        )
        .await?;
    Ok(match row {
        Some(r) => match r.try_get::<_, Option<DateTime<Utc>>>(0)? {
            Some(at) => Some(Disabled {
                at,
                reason: r.try_get(1)?,
            }),
            None => None,
        },
        None => None,
    })
}

/// The documents with a webhook given up on since `$1`, to `$2` when given.
const FAILED_SINCE: &str = "SELECT DISTINCT document_id FROM webhook_jobs
     WHERE state = 'failed' AND created_at >= $1 AND ($2::text IS NULL OR url = $2)
     LIMIT $3";

/// Redelivers the webhooks of every document with one given up on since `since` (to `url` when
/// given), at most `limit` documents, each as [`redeliver`] does; answers the documents redelivered.
pub async fn redeliver_failed_since(
    pool: &Pool,
    since: DateTime<Utc>,
    url: Option<&str>,
    limit: i64,
) -> Result<Vec<Uuid>, DbError> {
    let documents: Vec<Uuid> = {
        let client = pool.get().await?;
        client
            .query(FAILED_SINCE, &[&since, &url, &limit])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?
    };
    let mut done = Vec::with_capacity(documents.len());
    for id in documents {
        if let Redelivery::Done { .. } = redeliver(pool, id).await? {
            done.push(id);
        }
    }
    Ok(done)
}
