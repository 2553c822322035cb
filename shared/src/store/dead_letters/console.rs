//! What the console reads and marks of `dead_letters`: letters of every queue filtered, and the mark
//! an operator's replay or discard takes before the broker's copy is touched, so that one letter is
//! acted on once however often it is asked for.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use crate::store::column::storable_text;
use crate::store::dead_letters::{Letter, Selector, chosen_open, letter_of};
use crate::store::error::DbError;

/// Which letters the console lists.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this work queue.
    pub queue: Option<String>,
    /// Only this class of failure.
    pub kind: Option<String>,
    /// Dead-lettered at or after.
    pub since: Option<DateTime<Utc>>,
    /// Dead-lettered before.
    pub until: Option<DateTime<Utc>>,
    /// Those replayed or discarded too.
    pub closed_too: bool,
}

/// The newest letters a filter names. Open letters come off `dead_letters_open`; a queue's off
/// `dead_letters_queue`.
const LIST: &str = "SELECT id, queue, message_id, error_kind, reason, attempts, NULL::jsonb,
            NULL::bytea, created_at, replayed_at, discarded_at, discard_reason
     FROM dead_letters
     WHERE ($1::text IS NULL OR queue = $1)
       AND ($2::text IS NULL OR error_kind = $2)
       AND ($3::timestamptz IS NULL OR created_at >= $3)
       AND ($4::timestamptz IS NULL OR created_at < $4)
       AND ($5 OR (replayed_at IS NULL AND discarded_at IS NULL))
     ORDER BY created_at DESC, id DESC LIMIT $6";

/// The newest `limit` letters `filter` names, newest first, without their headers and bodies.
pub async fn list(pool: &Pool, filter: &Filter, limit: i64) -> Result<Vec<Letter>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            LIST,
            &[
                &filter.queue,
                &filter.kind,
                &filter.since,
                &filter.until,
                &filter.closed_too,
                &limit,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(letter_of)
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?)
}

/// The mark an operator's action puts on a letter.
#[derive(Debug, Clone, Copy)]
pub enum Mark<'a> {
    /// Sent back to its work queue.
    Replayed,
    /// Thrown away, for this reason.
    Discarded(&'a str),
}

/// Marks the open letters of a queue that a selector names, at most `$6`, and answers them; a letter
/// another operator is marking at the same moment is skipped, not waited for.
const CLAIM: &str = concat!(
    "UPDATE dead_letters d
     SET replayed_at = CASE WHEN $7::text IS NULL THEN now() END,
         discarded_at = CASE WHEN $7::text IS NOT NULL THEN now() END,
         discard_reason = $7
     FROM (SELECT id FROM dead_letters WHERE ",
    chosen_open!(),
    " ORDER BY id LIMIT $6 FOR UPDATE SKIP LOCKED) chosen
     WHERE d.id = chosen.id
     RETURNING d.id, d.message_id"
);

/// Marks the open letters of `queue` that `selector` names (at most `limit`) replayed or discarded,
/// before their messages are taken from the broker: a second replay of the same letter finds it
/// closed and does nothing. Answers the marked letters' ids and `message_id`s.
pub async fn claim(
    pool: &Pool,
    queue: &str,
    selector: &Selector,
    limit: i64,
    mark: Mark<'_>,
) -> Result<Vec<(i64, Option<String>)>, DbError> {
    let client = pool.get().await?;
    let reason = match mark {
        Mark::Replayed => None,
        Mark::Discarded(why) => Some(storable_text(why)),
    };
    let rows = client
        .query(
            CLAIM,
            &[
                &queue,
                &selector.ids,
                &selector.kind,
                &selector.since,
                &selector.until,
                &limit,
                &reason.as_deref(),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?)
}

/// Opens again letters marked replayed whose message the broker no longer had, so that they are not
/// shown as sent back when nothing was.
pub async fn reopen(pool: &Pool, ids: &[i64]) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let client = pool.get().await?;
    Ok(client
        .execute(
            "UPDATE dead_letters SET replayed_at = NULL WHERE id = ANY($1) AND discarded_at IS NULL",
            &[&ids],
        )
        .await?)
}
