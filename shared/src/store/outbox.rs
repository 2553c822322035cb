//! The `outbox` table: messages committed with the outcome that caused them and deleted once the
//! broker confirms them, so a crash between commit and publish loses nothing.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::contract::envelope::OutboundMessage;
use crate::store::column::into_storable;
use crate::store::error::{DbError, StoreError};

/// Writes `messages` to the outbox inside the caller's transaction, under `queue` and `message_id`,
/// for work done beside a queue (webhook deliveries): flush them with [`flush`] after the
/// commit, and the relay publishes whatever a crash leaves behind.
pub async fn write<C: tokio_postgres::GenericClient>(
    client: &C,
    queue: &str,
    message_id: Uuid,
    messages: &[OutboundMessage],
) -> Result<(), StoreError> {
    for m in messages {
        let properties =
            into_storable(serde_json::to_value(m).expect("outbound properties serialise"));
        client
            .execute(
                "INSERT INTO outbox (id, queue, message_id, properties, body)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&m.id, &queue, &message_id, &properties, &m.body],
            )
            .await?;
    }
    Ok(())
}

/// Where outbox rows go once read: the runtime's confirmed publisher. The store only knows that a row
/// may be deleted once `send` says the broker has it.
pub trait Sink: Sync {
    /// Why sending failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sends every message and waits for the broker's confirms.
    fn send(
        &self,
        messages: &[OutboundMessage],
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send;
}

/// Writes the outbox rows of a group: every message in one statement, under `queue` and the message
/// that caused it.
pub(crate) async fn insert(
    txn: &deadpool_postgres::Transaction<'_>,
    queue: &str,
    messages: &[(Option<Uuid>, &OutboundMessage)],
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = messages.iter().map(|(_, m)| m.id).collect();
    let sources: Vec<Option<Uuid>> = messages.iter().map(|(source, _)| *source).collect();
    let properties: Vec<Value> = messages
        .iter()
        .map(|(_, m)| {
            into_storable(serde_json::to_value(m).expect("outbound properties serialise"))
        })
        .collect();
    let bodies: Vec<&[u8]> = messages.iter().map(|(_, m)| m.body.as_slice()).collect();
    let stmt = txn
        .prepare_cached(
            "INSERT INTO outbox (id, queue, message_id, properties, body)
             SELECT t.id, $2, t.m, t.p, t.b
             FROM unnest($1::uuid[], $3::uuid[], $4::jsonb[], $5::bytea[]) AS t(id, m, p, b)",
        )
        .await?;
    txn.execute(&stmt, &[&ids, &queue, &sources, &properties, &bodies])
        .await?;
    Ok(())
}

/// Deletes outbox rows the broker has confirmed, inside the caller's transaction.
pub(crate) async fn delete(
    txn: &deadpool_postgres::Transaction<'_>,
    ids: &[Uuid],
) -> Result<(), StoreError> {
    let stmt = txn
        .prepare_cached("DELETE FROM outbox WHERE id = ANY($1)")
        .await?;
    txn.execute(&stmt, &[&ids]).await?;
    Ok(())
}

/// Sends a message's outbox rows that are still waiting, and deletes them once confirmed. Rows
/// younger than `older_than` are left to the writer that is publishing them right now.
pub async fn flush<S: Sink>(
    pool: &Pool,
    sink: &S,
    queue: &str,
    message_id: Uuid,
    older_than: Duration,
) -> Result<usize, FlushError<S::Error>> {
    send_rows(
        pool,
        sink,
        "SELECT id, properties, body FROM outbox WHERE queue = $1 AND message_id = $2
           AND created_at < now() - make_interval(secs => $3)
         ORDER BY id FOR UPDATE SKIP LOCKED",
        &[&queue, &message_id, &older_than.as_secs_f64()],
    )
    .await
}

/// How many outbox rows of a message are still waiting for the broker's confirm (written by a holder
/// that is publishing them now, or left by one that died).
pub async fn waiting(pool: &Pool, queue: &str, message_id: Uuid) -> Result<i64, StoreError> {
    let client = pool.get().await.map_err(DbError::from)?;
    let stmt = client
        .prepare_cached("SELECT count(*) FROM outbox WHERE queue = $1 AND message_id = $2")
        .await?;
    Ok(client
        .query_one(&stmt, &[&queue, &message_id])
        .await?
        .get(0))
}

/// One pass of the outbox relay: sends the rows of `queues` older than `older_than` that a crash or a
/// broker outage left behind, at most `limit` rows and, past the first, at most `max_bytes` of bodies
/// (a `doc.sign` copy carries a document). Replicas share the work through `SKIP LOCKED`.
pub async fn relay<S: Sink>(
    pool: &Pool,
    sink: &S,
    queues: &[String],
    older_than: Duration,
    limit: i64,
    max_bytes: i64,
) -> Result<usize, FlushError<S::Error>> {
    let ids = {
        let client = pool
            .get()
            .await
            .map_err(|e| FlushError::Store(DbError::from(e).into()))?;
        let sizes = client
            .query(
                "SELECT id, octet_length(body)::int8 FROM outbox
                 WHERE queue = ANY($1) AND created_at < now() - make_interval(secs => $2)
                 ORDER BY created_at LIMIT $3",
                &[&queues, &older_than.as_secs_f64(), &limit],
            )
            .await
            .map_err(StoreError::from)?;
        within_bytes(sizes.iter().map(|r| (r.get(0), r.get(1))), max_bytes)
    };
    if ids.is_empty() {
        return Ok(0);
    }
    send_rows(
        pool,
        sink,
        "SELECT id, properties, body FROM outbox WHERE id = ANY($1)
         ORDER BY created_at FOR UPDATE SKIP LOCKED",
        &[&ids],
    )
    .await
}

/// The ids of the first rows whose bodies fit in `max_bytes` together; the first row always does.
fn within_bytes(rows: impl Iterator<Item = (Uuid, i64)>, max_bytes: i64) -> Vec<Uuid> {
    let mut total = 0;
    let mut ids = Vec::new();
    for (id, size) in rows {
        total += size;
        if total > max_bytes && !ids.is_empty() {
            break;
        }
        ids.push(id);
    }
    ids
}

/// Locks the outbox rows `select` finds, sends them, and deletes them in the same transaction: a row
/// is gone only once the broker has it.
async fn send_rows<S: Sink>(
    pool: &Pool,
    sink: &S,
    select: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<usize, FlushError<S::Error>> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| FlushError::Store(DbError::from(e).into()))?;
    let txn = conn.transaction().await.map_err(StoreError::from)?;
    let rows = txn.query(select, params).await.map_err(StoreError::from)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let messages = rows_to_messages(&rows);
    sink.send(&messages).await.map_err(FlushError::Send)?;
    let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
    delete(&txn, &ids).await?;
    txn.commit().await.map_err(StoreError::from)?;
    Ok(messages.len())
}

fn rows_to_messages(rows: &[tokio_postgres::Row]) -> Vec<OutboundMessage> {
    rows.iter()
        .filter_map(|r| {
            let id: Uuid = r.get(0);
            let props: Value = r.get(1);
            match serde_json::from_value::<OutboundMessage>(props) {
                Ok(mut m) => {
                    m.id = id;
                    m.body = r.get(2);
                    Some(m)
                }
                Err(e) => {
                    tracing::error!(outbox_id = %id, error = %e, "unreadable outbox row left in place");
                    None
                }
            }
        })
        .collect()
}

/// Why an outbox flush did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FlushError<E: std::error::Error + 'static> {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker did not confirm.
    #[error(transparent)]
    Send(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_pass_takes_rows_up_to_its_byte_budget_and_at_least_one() {
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let rows = |sizes: [i64; 4]| ids.iter().copied().zip(sizes).collect::<Vec<_>>();
        assert_eq!(
            within_bytes(rows([10, 10, 10, 10]).into_iter(), 25),
            ids[..2]
        );
        assert_eq!(within_bytes(rows([100, 1, 1, 1]).into_iter(), 25), ids[..1]);
        assert_eq!(within_bytes(rows([1, 1, 1, 1]).into_iter(), 25), ids);
    }
}
