//! Where one message stands, as `pasarela status` shows it: its `work_items` rows, its
//! `otp_requests` row and its `dead_letters` rows, found by message_id or by OTP request_id.
//!
//! A read across three tables for one operator's question, kept together so that the lookup order
//! (the OTP row first, because its message_id finds the work row when the id is a request_id) lives
//! in one place.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::store::error::DbError;

/// A `work_items` row.
#[derive(Debug, Clone, Serialize)]
pub struct WorkItem {
    /// The work queue.
    pub queue: String,
    /// The message.
    pub message_id: Uuid,
    /// `in_flight`, `retry_scheduled` or `done`.
    pub state: String,
    /// The outcome's status, once done.
    pub status: Option<String>,
    /// Attempts made.
    pub attempts: i32,
    /// Deliveries that may have called the vendor a second time.
    pub possible_duplicates: i32,
    /// The last failure, as recorded.
    pub last_error: Option<Value>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When it was done.
    pub completed_at: Option<DateTime<Utc>>,
    /// The trace its first delivery ran in (32 hex digits).
    pub trace_id: Option<String>,
}

/// An `otp_requests` row, without the destination (personal data has no place in a status line).
#[derive(Debug, Clone, Serialize)]
pub struct OtpRequest {
    /// The producer's request id.
    pub request_id: Uuid,
    /// The message that last finished it.
    pub message_id: Uuid,
    /// The tenant.
    pub tenant: String,
    /// The provider that served it.
    pub provider: String,
    /// The channel.
    pub channel: String,
    /// `sent`, `rejected` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The vendor's request id.
    pub vendor_request_id: Option<String>,
    /// The vendor's answer code.
    pub vendor_code: Option<String>,
    /// The class of failure, if it failed.
    pub error_kind: Option<String>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the send finished.
    pub completed_at: Option<DateTime<Utc>>,
}

/// A `dead_letters` row of the message.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The row's id.
    pub id: i64,
    /// The work queue.
    pub queue: String,
    /// The class of failure, as recorded.
    pub kind: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// When it was dead-lettered.
    pub created_at: DateTime<Utc>,
    /// When it was replayed.
    pub replayed_at: Option<DateTime<Utc>>,
}

/// Everything recorded about one id.
#[derive(Debug, Clone)]
pub struct Trail {
    /// Its work rows, oldest first.
    pub work_items: Vec<WorkItem>,
    /// Its OTP send, when the id names one (the newest, should both ids match rows).
    pub otp_request: Option<OtpRequest>,
    /// Its dead letters, oldest first.
    pub dead_letters: Vec<DeadLetter>,
}

impl Trail {
    /// Whether nothing at all was found.
    pub fn is_empty(&self) -> bool {
        self.work_items.is_empty() && self.otp_request.is_none() && self.dead_letters.is_empty()
    }
}

/// The send `$1` names, as request_id or as the message that finished it; the newest if both match.
const OTP_REQUEST: &str =
    "SELECT request_id, message_id, tenant, provider, channel, status, attempts,
            vendor_request_id, vendor_code, error_kind, error_message, created_at, completed_at
     FROM otp_requests WHERE request_id = $1 OR message_id = $1
     ORDER BY created_at DESC LIMIT 1";

/// The work rows of the messages in `$1`.
const WORK_ITEMS: &str = "SELECT queue, message_id, state, status, attempts, possible_duplicates,
            last_error, created_at, completed_at, trace_id
     FROM work_items WHERE message_id = ANY($1) ORDER BY created_at";

/// The dead letters of the messages in `$1` (`message_id` is text there).
const DEAD_LETTERS: &str = "SELECT id, queue, error_kind, reason, created_at, replayed_at
     FROM dead_letters WHERE message_id = ANY($1) ORDER BY id";

/// Everything recorded about `id`, a message_id or an OTP request_id.
pub async fn find(pool: &Pool, id: Uuid) -> Result<Trail, DbError> {
    let client = pool.get().await?;
    // The OTP row first: its message_id finds the work row when `id` is a request_id.
    let otp_request = match client.query_opt(OTP_REQUEST, &[&id]).await? {
        Some(r) => Some(OtpRequest {
            request_id: r.try_get(0)?,
            message_id: r.try_get(1)?,
            tenant: r.try_get(2)?,
            provider: r.try_get(3)?,
            channel: r.try_get(4)?,
            status: r.try_get(5)?,
            attempts: r.try_get(6)?,
            vendor_request_id: r.try_get(7)?,
            vendor_code: r.try_get(8)?,
            error_kind: r.try_get(9)?,
            error_message: r.try_get(10)?,
            created_at: r.try_get(11)?,
            completed_at: r.try_get(12)?,
        }),
        None => None,
    };
    let message_id = otp_request.as_ref().map_or(id, |o| o.message_id);
    let work_items = client
        .query(WORK_ITEMS, &[&vec![id, message_id]])
        .await?
        .iter()
        .map(|r| {
            Ok(WorkItem {
                queue: r.try_get(0)?,
                message_id: r.try_get(1)?,
                state: r.try_get(2)?,
                status: r.try_get(3)?,
                attempts: r.try_get(4)?,
                possible_duplicates: r.try_get(5)?,
                last_error: r.try_get(6)?,
                created_at: r.try_get(7)?,
                completed_at: r.try_get(8)?,
                trace_id: r
                    .try_get::<_, Option<Uuid>>(9)?
                    .map(crate::telemetry::trace_id_hex),
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    // dead_letters.message_id is text: a message that was never a UUID still gets its letter.
    let dead_letters = client
        .query(
            DEAD_LETTERS,
            &[&vec![id.to_string(), message_id.to_string()]],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(DeadLetter {
                id: r.try_get(0)?,
                queue: r.try_get(1)?,
                kind: r.try_get(2)?,
                reason: r.try_get(3)?,
                created_at: r.try_get(4)?,
                replayed_at: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Trail {
        work_items,
        otp_request,
        dead_letters,
    })
}
