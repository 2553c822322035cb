//! The `dead_letters` table: every message pasarela gave up on, with why, for operators to read,
//! replay or discard.

mod console;

pub use console::*;

use serde_json::Value;

use deadpool_postgres::Transaction;

use crate::contract::errors::ErrorKind;
use crate::store::column::{storable, storable_text};
use crate::store::error::StoreError;

/// A row of `dead_letters`.
#[derive(Debug, Clone)]
pub struct DeadLetterRow {
    /// The message's `message_id`, if it had one.
    pub message_id: Option<String>,
    /// The classification.
    pub kind: ErrorKind,
    /// Why it was dead-lettered.
    pub reason: String,
    /// Attempts made, when known.
    pub attempts: Option<u32>,
    /// The message's headers.
    pub headers: Value,
    /// The message's body.
    pub body: Vec<u8>,
}

/// Records one dead letter under `queue`.
const INSERT: &str =
    "INSERT INTO dead_letters (queue, message_id, error_kind, reason, attempts, headers, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Records the dead letters of a group under `queue`.
pub(crate) async fn insert(
    txn: &Transaction<'_>,
    queue: &str,
    rows: &[&DeadLetterRow],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let stmt = txn.prepare_cached(INSERT).await?;
    futures::future::try_join_all(rows.iter().map(|d| {
        let stmt = &stmt;
        async move {
            let attempts = d.attempts.map(|a| a as i32);
            let message_id = d.message_id.as_deref().map(storable_text);
            let message_id = message_id.as_deref();
            let reason = storable_text(&d.reason);
            let headers = storable(&d.headers);
            txn.execute(
                stmt,
                &[
                    &queue,
                    &message_id,
                    &d.kind.as_str(),
                    &&*reason,
                    &attempts,
                    &&*headers,
                    &d.body,
                ],
            )
            .await
        }
    }))
    .await?;
    Ok(())
}

// What `pasarela dlq` reads and marks: the open letters (neither replayed nor discarded), one letter
// whole, and the marks a replay or a discard leaves.

/// A `dead_letters` row still open: neither replayed nor discarded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WaitingRow {
    /// The row's id, in the order letters arrived.
    pub id: i64,
    /// The message's `message_id`, if it had one.
    pub message_id: Option<String>,
    /// The class of failure, as recorded.
    pub kind: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// When it was dead-lettered.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Which open letters of a work queue an operator means.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Only these row ids (all when empty).
    pub ids: Vec<i64>,
    /// Only this class of failure.
    pub kind: Option<String>,
    /// Dead-lettered at or after.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Dead-lettered before.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Selector {
    /// Whether it names every open letter of the queue (and so every message of its `.dead` queue,
    /// those without a `message_id` too).
    pub fn is_everything(&self) -> bool {
        self.ids.is_empty() && self.kind.is_none() && self.since.is_none() && self.until.is_none()
    }
}

/// The open letters of queue `$1` that a [`Selector`] names: `$2` ids (all when empty), `$3` kind,
/// `$4` since and `$5` until; one predicate for what `dlq` lists and what the console marks.
macro_rules! chosen_open {
    () => {
        "queue = $1 AND replayed_at IS NULL AND discarded_at IS NULL
       AND (cardinality($2::bigint[]) = 0 OR id = ANY($2))
       AND ($3::text IS NULL OR error_kind = $3)
       AND ($4::timestamptz IS NULL OR created_at >= $4)
       AND ($5::timestamptz IS NULL OR created_at < $5)"
    };
}
pub(crate) use chosen_open;

/// The open letters of a queue that a selector names, oldest first, with how many there are in all.
const SELECT_OPEN: &str = concat!(
    "SELECT id, message_id, error_kind, reason, created_at, count(*) OVER ()
     FROM dead_letters WHERE ",
    chosen_open!(),
    " ORDER BY id LIMIT $6"
);

/// The oldest `limit` open letters of `queue` that `selector` names, and how many there are in all.
pub async fn waiting(
    pool: &deadpool_postgres::Pool,
    queue: &str,
    selector: &Selector,
    limit: u32,
) -> Result<(Vec<WaitingRow>, i64), crate::store::error::DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            SELECT_OPEN,
            &[
                &queue,
                &selector.ids,
                &selector.kind,
                &selector.since,
                &selector.until,
                &i64::from(limit),
            ],
        )
        .await?;
    let total = match rows.first() {
        Some(r) => r.try_get(5)?,
        None => 0,
    };
    let rows = rows
        .iter()
        .map(|r| {
            Ok(WaitingRow {
                id: r.try_get(0)?,
                message_id: r.try_get(1)?,
                kind: r.try_get(2)?,
                reason: r.try_get(3)?,
                created_at: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok((rows, total))
}

/// One dead letter whole, as `pasarela dlq show` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Letter {
    /// The row's id.
    pub id: i64,
    /// The work queue it failed on.
    pub queue: String,
    /// The message's `message_id`, if it had one.
    pub message_id: Option<String>,
    /// The class of failure.
    pub kind: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// Attempts made, when known.
    pub attempts: Option<i32>,
    /// The message's headers.
    pub headers: Option<Value>,
    /// The body as stored (the worker keeps no OTP code in it).
    #[serde(skip)]
    pub body: Option<Vec<u8>>,
    /// When it was dead-lettered.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was replayed, if it was.
    pub replayed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it was discarded, if it was.
    pub discarded_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The reason given for discarding it.
    pub discard_reason: Option<String>,
}

/// A letter by row id, or the newest letter of a `message_id`.
const LETTER: &str = "SELECT id, queue, message_id, error_kind, reason, attempts, headers, body,
            created_at, replayed_at, discarded_at, discard_reason
     FROM dead_letters WHERE id = $1 OR message_id = $2 ORDER BY id DESC LIMIT 1";

/// The letter with row id `id`, or the newest one of the message whose `message_id` is `id`.
pub async fn letter(
    pool: &deadpool_postgres::Pool,
    id: &str,
) -> Result<Option<Letter>, crate::store::error::DbError> {
    let row_id: i64 = id.parse().unwrap_or(-1);
    let client = pool.get().await?;
    let Some(r) = client.query_opt(LETTER, &[&row_id, &id]).await? else {
        return Ok(None);
    };
    Ok(Some(letter_of(&r)?))
}

/// A letter from a row of [`LETTER`]'s columns (headers and body may be selected as NULL).
pub(crate) fn letter_of(r: &tokio_postgres::Row) -> Result<Letter, tokio_postgres::Error> {
    Ok(Letter {
        id: r.try_get(0)?,
        queue: r.try_get(1)?,
        message_id: r.try_get(2)?,
        kind: r.try_get(3)?,
        reason: r.try_get(4)?,
        attempts: r.try_get(5)?,
        headers: r.try_get(6)?,
        body: r.try_get(7)?,
        created_at: r.try_get(8)?,
        replayed_at: r.try_get(9)?,
        discarded_at: r.try_get(10)?,
        discard_reason: r.try_get(11)?,
    })
}

/// Per work queue, how many letters are open and when the oldest of them arrived.
const OPEN_BY_QUEUE: &str = "SELECT queue, count(*), min(created_at) FROM dead_letters
     WHERE replayed_at IS NULL AND discarded_at IS NULL GROUP BY queue";

/// Open letters per work queue: (queue, how many, the oldest's arrival).
pub async fn open_by_queue(
    pool: &deadpool_postgres::Pool,
) -> Result<Vec<(String, i64, chrono::DateTime<chrono::Utc>)>, crate::store::error::DbError> {
    let client = pool.get().await?;
    client
        .query(OPEN_BY_QUEUE, &[])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Marks a queue's letters of the given messages replayed; letters already closed keep their mark.
const MARK_REPLAYED: &str = "UPDATE dead_letters SET replayed_at = now()
     WHERE queue = $1 AND message_id = ANY($2) AND replayed_at IS NULL AND discarded_at IS NULL";

/// Sets `replayed_at` on `queue`'s open rows of the replayed messages, in one statement; returns how
/// many rows it marked.
pub async fn mark_replayed(
    pool: &deadpool_postgres::Pool,
    queue: &str,
    message_ids: &[String],
) -> Result<u64, crate::store::error::DbError> {
    if message_ids.is_empty() {
        return Ok(0);
    }
    let client = pool.get().await?;
    Ok(client
        .execute(MARK_REPLAYED, &[&queue, &message_ids])
        .await?)
}

/// Marks a queue's open letters of the given messages discarded, with the operator's reason.
const MARK_DISCARDED: &str = "UPDATE dead_letters SET discarded_at = now(), discard_reason = $3
     WHERE queue = $1 AND message_id = ANY($2) AND replayed_at IS NULL AND discarded_at IS NULL";

/// Sets `discarded_at` and the reason on `queue`'s open rows of the discarded messages; returns how
/// many rows it marked.
pub async fn mark_discarded(
    pool: &deadpool_postgres::Pool,
    queue: &str,
    message_ids: &[String],
    reason: &str,
) -> Result<u64, crate::store::error::DbError> {
    if message_ids.is_empty() {
        return Ok(0);
    }
    let client = pool.get().await?;
    Ok(client
        .execute(MARK_DISCARDED, &[&queue, &message_ids, &reason])
        .await?)
}
