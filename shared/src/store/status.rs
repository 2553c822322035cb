//! Where one message stands, as `pasarela status` and the console show it: its `work_items` rows and
//! failed attempts, its `otp_requests` or `vendor_calls` row and its `dead_letters` rows, found by
//! message_id, OTP request_id, call_id or trace id.
//!
//! A read across three tables for one operator's question, kept together so that the lookup order
//! (the OTP row first, because its message_id finds the work row when the id is a request_id) lives
//! in one place.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::contract::queue::WORK_QUEUES;
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

/// An attempt that failed and was scheduled for retry (`work_attempts`).
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The work queue.
    pub queue: String,
    /// The message.
    pub message_id: Uuid,
    /// Which attempt, from 1.
    pub attempt: i32,
    /// The attempt the retry copy carries.
    pub next_attempt: i32,
    /// The retry tier it waited in (`5s`).
    pub tier: String,
    /// How long it waited there.
    pub wait_ms: i32,
    /// Why it failed (`{"kind", "message"}`).
    pub error: Option<Value>,
    /// From the claim to the settlement.
    pub latency_ms: Option<i32>,
    /// When it was settled.
    pub failed_at: DateTime<Utc>,
}

/// A `vendor_calls` row: what a `vendor.call` called and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct VendorCall {
    /// The producer's call id.
    pub call_id: Uuid,
    /// The message that carried it.
    pub message_id: Uuid,
    /// The vendor.
    pub vendor: String,
    /// The HTTP method.
    pub method: String,
    /// The path, without its query string.
    pub path: String,
    /// `ok`, `failed` or `rejected`.
    pub status: String,
    /// The vendor's HTTP status.
    pub http_status: Option<i32>,
    /// How long the vendor took.
    pub latency_ms: Option<i32>,
    /// Attempts made.
    pub attempts: i32,
    /// The class of failure, if it failed.
    pub error_kind: Option<String>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
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
    /// When it was discarded.
    pub discarded_at: Option<DateTime<Utc>>,
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
    /// Its failed attempts, oldest first.
    pub attempts: Vec<Attempt>,
    /// Its vendor calls.
    pub vendor_calls: Vec<VendorCall>,
}

impl Trail {
    /// Whether nothing at all was found.
    pub fn is_empty(&self) -> bool {
        self.work_items.is_empty()
            && self.otp_request.is_none()
            && self.dead_letters.is_empty()
            && self.vendor_calls.is_empty()
    }
}

/// The send `$1` names, as request_id or as the message that finished it, or the send of one of the
/// messages in `$2`; the newest if several match.
const OTP_REQUEST: &str =
    "SELECT request_id, message_id, tenant, provider, channel, status, attempts,
            vendor_request_id, vendor_code, error_kind, error_message, created_at, completed_at
     FROM otp_requests WHERE request_id = $1 OR message_id = $1 OR message_id = ANY($2)
     ORDER BY created_at DESC LIMIT 1";

/// The work rows of the messages in `$1` on the queues `$3`, or of the trace `$2`. The queues are
/// named so that the primary key (queue, message_id) finds the rows: `message_id` alone is no index's
/// first column, and over a million rows its scan took 40 ms.
const WORK_ITEMS: &str = "SELECT queue, message_id, state, status, attempts, possible_duplicates,
            last_error, created_at, completed_at, trace_id, result->>'call_id'
     FROM work_items WHERE (queue = ANY($3) AND message_id = ANY($1)) OR trace_id = $2
     ORDER BY created_at";

/// The failed attempts of the work rows `($1[i], $2[i])`.
const ATTEMPTS: &str = "SELECT a.queue, a.message_id, a.attempt, a.next_attempt, a.error,
            a.latency_ms, a.failed_at, a.tier, a.wait_ms
     FROM work_attempts a JOIN unnest($1::text[], $2::uuid[]) AS w(queue, message_id)
       ON a.queue = w.queue AND a.message_id = w.message_id
     ORDER BY a.failed_at, a.attempt";

/// The vendor calls in `$1`.
const VENDOR_CALLS: &str = "SELECT call_id, message_id, vendor, method, path, status, http_status,
            latency_ms, attempts, error_kind, error_message, created_at
     FROM vendor_calls WHERE call_id = ANY($1) ORDER BY created_at";

/// The dead letters of the messages in `$1` (`message_id` is text there).
const DEAD_LETTERS: &str = "SELECT id, queue, error_kind, reason, created_at, replayed_at,
            discarded_at
     FROM dead_letters WHERE message_id = ANY($1) ORDER BY id";

/// Everything recorded about `id`: a message_id, an OTP request_id, a call_id or a trace id.
pub async fn find(pool: &Pool, id: Uuid) -> Result<Trail, DbError> {
    let client = pool.get().await?;
    // The call and the send first, pipelined: their message_id finds the work row when `id` is a
    // call_id or a request_id.
    let named = [id];
    let (mut vendor_calls, mut otp_request) = futures::try_join!(
        self::vendor_calls(&client, &named),
        self::otp_request(&client, id, &[])
    )?;
    let mut message_ids: Vec<Uuid> = vec![id];
    message_ids.extend(vendor_calls.iter().map(|c| c.message_id));
    message_ids.extend(otp_request.as_ref().map(|o| o.message_id));
    let mut call_ids = Vec::new();
    let work_items = client
        .query(WORK_ITEMS, &[&message_ids, &id, &WORK_QUEUES.as_slice()])
        .await?
        .iter()
        .map(|r| {
            if let Some(call) = r.try_get::<_, Option<String>>(10)? {
                call_ids.extend(Uuid::parse_str(&call).ok());
            }
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
    // Found by trace id: the rows name the messages, and through them the send and the call. What
    // is still to read is read in one pipelined round trip.
    let found: Vec<Uuid> = work_items.iter().map(|w| w.message_id).collect();
    call_ids.retain(|c| !vendor_calls.iter().any(|v| v.call_id == *c));
    let queues: Vec<&str> = work_items.iter().map(|w| w.queue.as_str()).collect();
    // dead_letters.message_id is text: a message that was never a UUID still gets its letter.
    let mut letter_ids: Vec<String> = message_ids.iter().map(Uuid::to_string).collect();
    letter_ids.extend(found.iter().map(Uuid::to_string));
    let send_of_found = async {
        match otp_request.is_none() && !found.is_empty() {
            true => self::otp_request(&client, id, &found).await,
            false => Ok(None),
        }
    };
    let calls_of_found = async {
        match call_ids.is_empty() {
            true => Ok(Vec::new()),
            false => self::vendor_calls(&client, &call_ids).await,
        }
    };
    let (send, calls, attempts, dead_letters) = futures::try_join!(
        send_of_found,
        calls_of_found,
        async { Ok::<_, DbError>(client.query(ATTEMPTS, &[&queues, &found]).await?) },
        async { Ok::<_, DbError>(client.query(DEAD_LETTERS, &[&letter_ids]).await?) },
    )?;
    otp_request = otp_request.or(send);
    vendor_calls.extend(calls);
    let attempts = attempts
        .iter()
        .map(|r| {
            Ok(Attempt {
                queue: r.try_get(0)?,
                message_id: r.try_get(1)?,
                attempt: r.try_get(2)?,
                next_attempt: r.try_get(3)?,
                error: r.try_get(4)?,
                latency_ms: r.try_get(5)?,
                failed_at: r.try_get(6)?,
                tier: r.try_get(7)?,
                wait_ms: r.try_get(8)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let dead_letters = dead_letters
        .iter()
        .map(|r| {
            Ok(DeadLetter {
                id: r.try_get(0)?,
                queue: r.try_get(1)?,
                kind: r.try_get(2)?,
                reason: r.try_get(3)?,
                created_at: r.try_get(4)?,
                replayed_at: r.try_get(5)?,
                discarded_at: r.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Trail {
        work_items,
        otp_request,
        dead_letters,
        attempts,
        vendor_calls,
    })
}

/// The send `id` names, or the send of one of `messages`.
async fn otp_request(
    client: &deadpool_postgres::Object,
    id: Uuid,
    messages: &[Uuid],
) -> Result<Option<OtpRequest>, DbError> {
    let Some(r) = client.query_opt(OTP_REQUEST, &[&id, &messages]).await? else {
        return Ok(None);
    };
    Ok(Some(OtpRequest {
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
    }))
}

/// The vendor calls whose call_id is in `ids`.
async fn vendor_calls(
    client: &deadpool_postgres::Object,
    ids: &[Uuid],
) -> Result<Vec<VendorCall>, DbError> {
    Ok(client
        .query(VENDOR_CALLS, &[&ids])
        .await?
        .iter()
        .map(|r| {
            Ok(VendorCall {
                call_id: r.try_get(0)?,
                message_id: r.try_get(1)?,
                vendor: r.try_get(2)?,
                method: r.try_get(3)?,
                path: r.try_get(4)?,
                status: r.try_get(5)?,
                http_status: r.try_get(6)?,
                latency_ms: r.try_get(7)?,
                attempts: r.try_get(8)?,
                error_kind: r.try_get(9)?,
                error_message: r.try_get(10)?,
                created_at: r.try_get(11)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?)
}
