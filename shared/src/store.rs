//! The hot-path writes, committed in groups.
//!
//! A commit costs more than a broker hop here, so concurrent deliveries do not commit one by one: each
//! hands its claim or outcome to [`Store`], whose committer puts whatever is waiting into one transaction
//! (up to `PASARELA_GROUP_COMMIT_MAX` operations) and wakes every waiter with its own answer. Claims and
//! outbox clean-up commit with `synchronous_commit = off`: losing them in a database crash loses no work
//! (a lost claim only hides a possible duplicate; a lost clean-up re-publishes an event), while outcomes
//! commit durably.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::broker::OutboundMessage;
use crate::db::DbError;
use crate::handler::{ErrorKind, Failure, SqlWrite};

/// A store failure as every waiter of a failed group sees it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    /// Whether trying again later may succeed (the database is away or restarting).
    pub transient: bool,
    /// What failed.
    pub message: String,
}

impl crate::db::Transient for StoreError {
    fn transient(&self) -> bool {
        self.transient
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        Self {
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::from(e).into()
    }
}

/// A request to work on a message.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest {
    /// The producer's `message_id`.
    pub message_id: Uuid,
    /// The attempt number the delivery carries.
    pub header_attempt: u32,
    /// Set by `pasarela dlq replay`: a failed message may start over.
    pub replay: bool,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Work on it: this is attempt `attempt`.
    Take {
        /// The attempt number, counting from 1.
        attempt: u32,
        /// Its previous holder vanished mid-call, so the vendor may have seen it already.
        possible_duplicate: bool,
    },
    /// Already finished: publish the stored result again.
    Done {
        /// Routing key of the stored event.
        routing_key: String,
        /// The stored event.
        result: Value,
    },
    /// A newer copy of this message is already scheduled for retry; this one is spent.
    Stale,
    /// Another holder is working on it right now.
    Busy,
}

/// The work row's new state after an attempt.
#[derive(Debug, Clone)]
pub enum WorkUpdate {
    /// Finished for good.
    Done {
        /// Terminal status.
        status: String,
        /// Attempts made.
        attempts: u32,
        /// Routing key of the result event.
        routing_key: String,
        /// The result event, kept to answer duplicates.
        result: Value,
        /// The failure, if the status is one.
        error: Option<Failure>,
    },
    /// A retry copy carrying `next_attempt` is on its way through a tier.
    RetryScheduled {
        /// Attempts made.
        attempts: u32,
        /// The attempt number of the scheduled copy.
        next_attempt: u32,
        /// Why the attempt failed.
        error: Failure,
    },
}

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

/// Everything one attempt's outcome writes, committed together.
#[derive(Debug, Default)]
pub struct Finish {
    /// The message, when it had a usable `message_id`.
    pub message_id: Option<Uuid>,
    /// The work row's new state (none for a message that never got one).
    pub work: Option<WorkUpdate>,
    /// Domain rows.
    pub writes: Vec<SqlWrite>,
    /// Messages to publish once committed.
    pub outbox: Vec<OutboundMessage>,
    /// A dead-letter record.
    pub dead_letter: Option<DeadLetterRow>,
}

enum Op {
    Claim(ClaimRequest, oneshot::Sender<Result<Claim, StoreError>>),
    Finish(Arc<Finish>, oneshot::Sender<Result<(), StoreError>>),
    Forget(Vec<Uuid>),
}

/// Group-committing access to the state of one work queue.
#[derive(Clone)]
pub struct Store {
    ops: mpsc::Sender<Op>,
    pool: Pool,
    queue: Arc<str>,
}

/// How the committer groups work.
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    /// Most operations in one transaction.
    pub max_batch: usize,
    /// Transactions in flight at once.
    pub parallel: usize,
    /// How long a claim holds a message before another holder may take it over.
    pub claim_lease: Duration,
}

impl Store {
    /// Starts the committer for `queue` over `pool`.
    pub fn start(pool: Pool, queue: &str, settings: StoreSettings) -> Self {
        let (tx, rx) = mpsc::channel(settings.max_batch * settings.parallel * 4);
        let queue: Arc<str> = Arc::from(queue);
        let committer = Committer {
            pool: pool.clone(),
            queue: queue.clone(),
            lease_secs: settings.claim_lease.as_secs_f64(),
        };
        tokio::spawn(committer.run(rx, settings.max_batch.max(1), settings.parallel.max(1)));
        Self {
            ops: tx,
            pool,
            queue,
        }
    }

    /// The pool, for the rare paths that need no grouping.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The work queue whose rows this store writes.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    fn closed() -> StoreError {
        StoreError {
            transient: false,
            message: "the store is shut down".into(),
        }
    }

    /// Claims a message for an attempt (see [`Claim`]).
    pub async fn claim(&self, request: ClaimRequest) -> Result<Claim, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(Op::Claim(request, tx))
            .await
            .map_err(|_| Self::closed())?;
        rx.await.map_err(|_| Self::closed())?
    }

    /// Commits an attempt's outcome and its outbox rows.
    pub async fn finish(&self, finish: Arc<Finish>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(Op::Finish(finish, tx))
            .await
            .map_err(|_| Self::closed())?;
        rx.await.map_err(|_| Self::closed())?
    }

    /// Deletes outbox rows the broker has confirmed; grouped with whatever commits next.
    pub async fn forget(&self, ids: Vec<Uuid>) {
        if !ids.is_empty() {
            // If the committer is gone the rows stay, and the relay publishes them once more.
            let _ = self.ops.send(Op::Forget(ids)).await;
        }
    }
}

struct Committer {
    pool: Pool,
    queue: Arc<str>,
    lease_secs: f64,
}

impl Committer {
    async fn run(self, mut rx: mpsc::Receiver<Op>, max_batch: usize, parallel: usize) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(parallel));
        loop {
            // Wait for a free transaction slot first: while all are busy, operations pile up in the
            // channel and the next group is larger, which is the point.
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            let this = this.clone();
            tokio::spawn(async move {
                this.commit_group(batch).await;
                drop(permit);
            });
        }
    }

    async fn commit_group(&self, batch: Vec<Op>) {
        metrics::histogram!("pasarela_group_commit_size").record(batch.len() as f64);
        let mut claims = Vec::new();
        let mut finishes = Vec::new();
        let mut forgets = Vec::new();
        for op in batch {
            match op {
                Op::Claim(r, tx) => claims.push((r, tx)),
                Op::Finish(f, tx) => finishes.push((f, tx)),
                Op::Forget(ids) => forgets.extend(ids),
            }
        }
        let claim_reqs: Vec<ClaimRequest> = claims.iter().map(|(r, _)| *r).collect();
        let finish_refs: Vec<&Finish> = finishes.iter().map(|(f, _)| f.as_ref()).collect();
        match self.transaction(&claim_reqs, &finish_refs, &forgets).await {
            Ok(answers) => {
                for ((_, tx), answer) in claims.into_iter().zip(answers) {
                    let _ = tx.send(Ok(answer));
                }
                for (_, tx) in finishes {
                    let _ = tx.send(Ok(()));
                }
            }
            Err(e) if e.transient || claims.len() + finishes.len() <= 1 => {
                for (_, tx) in claims {
                    let _ = tx.send(Err(e.clone()));
                }
                for (_, tx) in finishes {
                    let _ = tx.send(Err(e.clone()));
                }
            }
            Err(_) => {
                // One bad operation must not fail its neighbours: commit each on its own.
                for (r, tx) in claims {
                    let res = self.transaction(&[r], &[], &[]).await;
                    let _ = tx.send(res.map(|mut v| v.remove(0)));
                }
                for (f, tx) in finishes {
                    let _ = tx.send(self.transaction(&[], &[&f], &[]).await.map(|_| ()));
                }
                if !forgets.is_empty() {
                    let _ = self.transaction(&[], &[], &forgets).await;
                }
            }
        }
    }

    async fn transaction(
        &self,
        claims: &[ClaimRequest],
        finishes: &[&Finish],
        forgets: &[Uuid],
    ) -> Result<Vec<Claim>, StoreError> {
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        let txn = conn.transaction().await?;
        if finishes.is_empty() {
            txn.batch_execute("SET LOCAL synchronous_commit TO off")
                .await?;
        }
        let answers = if claims.is_empty() {
            Vec::new()
        } else {
            self.claim_all(&txn, claims).await?
        };
        if !finishes.is_empty() {
            self.finish_all(&txn, finishes).await?;
        }
        if !forgets.is_empty() {
            let stmt = txn
                .prepare_cached("DELETE FROM outbox WHERE id = ANY($1)")
                .await?;
            txn.execute(&stmt, &[&forgets]).await?;
        }
        txn.commit().await?;
        Ok(answers)
    }

    async fn claim_all(
        &self,
        txn: &Transaction<'_>,
        claims: &[ClaimRequest],
    ) -> Result<Vec<Claim>, StoreError> {
        let ids: Vec<Uuid> = claims.iter().map(|c| c.message_id).collect();
        let attempts: Vec<i32> = claims.iter().map(|c| c.header_attempt as i32).collect();
        let insert = txn
            .prepare_cached(
                "INSERT INTO work_items (queue, message_id, state, attempts, next_attempt, claimed_until)
                 SELECT $1, t.m, 'in_flight', t.a, t.a, now() + make_interval(secs => $4)
                 FROM unnest($2::uuid[], $3::int4[]) AS t(m, a)
                 ON CONFLICT (queue, message_id) DO NOTHING
                 RETURNING message_id",
            )
            .await?;
        let inserted: HashSet<Uuid> = txn
            .query(&insert, &[&&*self.queue, &ids, &attempts, &self.lease_secs])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();

        let mut answers: Vec<Option<Claim>> = vec![None; claims.len()];
        let mut fresh_taken = HashSet::new();
        let mut conflicts = Vec::new();
        for (i, c) in claims.iter().enumerate() {
            if inserted.contains(&c.message_id) && fresh_taken.insert(c.message_id) {
                answers[i] = Some(Claim::Take {
                    attempt: c.header_attempt,
                    possible_duplicate: false,
                });
            } else {
                conflicts.push(i);
            }
        }
        if !conflicts.is_empty() {
            let conflict_ids: Vec<Uuid> = conflicts.iter().map(|i| claims[*i].message_id).collect();
            let select = txn
                .prepare_cached(
                    "SELECT message_id, state, status, attempts, next_attempt,
                            coalesce(claimed_until > now(), false), result_routing_key, result
                     FROM work_items WHERE queue = $1 AND message_id = ANY($2) FOR UPDATE",
                )
                .await?;
            let mut rows: HashMap<Uuid, WorkRow> = txn
                .query(&select, &[&&*self.queue, &conflict_ids])
                .await?
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        WorkRow {
                            state: r.get(1),
                            status: r.get(2),
                            attempts: r.get::<_, i32>(3) as u32,
                            next_attempt: r.get::<_, i32>(4) as u32,
                            leased: r.get(5),
                            routing_key: r.get(6),
                            result: r.get(7),
                        },
                    )
                })
                .collect();
            let take = txn
                .prepare_cached(
                    "UPDATE work_items SET state = 'in_flight', status = NULL, attempts = $3,
                            claimed_until = now() + make_interval(secs => $4),
                            possible_duplicates = possible_duplicates + $5, updated_at = now()
                     WHERE queue = $1 AND message_id = $2",
                )
                .await?;
            for i in conflicts {
                let c = claims[i];
                let Some(row) = rows.get_mut(&c.message_id) else {
                    // Inserted by this very group for an earlier claim in it: that one holds it.
                    answers[i] = Some(Claim::Busy);
                    continue;
                };
                let answer = decide(row, &c);
                if let Claim::Take {
                    attempt,
                    possible_duplicate,
                } = answer
                {
                    let dup = i32::from(possible_duplicate);
                    txn.execute(
                        &take,
                        &[
                            &&*self.queue,
                            &c.message_id,
                            &(attempt as i32),
                            &self.lease_secs,
                            &dup,
                        ],
                    )
                    .await?;
                    row.state = "in_flight".into();
                    row.leased = true;
                    row.attempts = attempt;
                }
                answers[i] = Some(answer);
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or(Claim::Busy))
            .collect())
    }

    async fn finish_all(
        &self,
        txn: &Transaction<'_>,
        finishes: &[&Finish],
    ) -> Result<(), StoreError> {
        // Every finished message of the group in one statement: one execution, not one per row.
        let done = txn
            .prepare_cached(
                "UPDATE work_items AS w SET state = 'done', status = t.status, attempts = t.attempts,
                        result_routing_key = t.routing_key, result = t.result, last_error = t.error,
                        claimed_until = NULL, completed_at = now(), updated_at = now()
                 FROM unnest($2::uuid[], $3::text[], $4::int4[], $5::text[], $6::jsonb[], $7::jsonb[])
                      AS t(message_id, status, attempts, routing_key, result, error)
                 WHERE w.queue = $1 AND w.message_id = t.message_id",
            )
            .await?;
        let retry = txn
            .prepare_cached(
                "UPDATE work_items SET state = 'retry_scheduled', attempts = $3, next_attempt = $4,
                        last_error = $5, claimed_until = NULL, updated_at = now()
                 WHERE queue = $1 AND message_id = $2",
            )
            .await?;
        let mut owned: Vec<(tokio_postgres::Statement, Params)> = Vec::new();
        let mut borrowed: Vec<(tokio_postgres::Statement, &[Box<dyn ToSql + Sync + Send>])> =
            Vec::new();
        let mut done_rows = DoneRows::default();
        for f in finishes {
            if let (Some(id), Some(work)) = (f.message_id, &f.work) {
                match work {
                    WorkUpdate::Done {
                        status,
                        attempts,
                        routing_key,
                        result,
                        error,
                    } => {
                        done_rows.ids.push(id);
                        done_rows.statuses.push(status.as_str());
                        done_rows.attempts.push(*attempts as i32);
                        done_rows.routing_keys.push(routing_key.as_str());
                        done_rows.results.push(result);
                        done_rows
                            .errors
                            .push(error.as_ref().and_then(|e| serde_json::to_value(e).ok()));
                    }
                    WorkUpdate::RetryScheduled {
                        attempts,
                        next_attempt,
                        error,
                    } => owned.push((
                        retry.clone(),
                        vec![
                            Box::new(self.queue.to_string()),
                            Box::new(id),
                            Box::new(*attempts as i32),
                            Box::new(*next_attempt as i32),
                            Box::new(serde_json::to_value(error).ok()),
                        ],
                    )),
                }
            }
            for w in &f.writes {
                borrowed.push((txn.prepare_cached(w.sql).await?, &w.params));
            }
        }
        let outbox: Vec<&OutboundMessage> = finishes.iter().flat_map(|f| f.outbox.iter()).collect();
        let outbox_ids: Vec<Uuid> = outbox.iter().map(|m| m.id).collect();
        let outbox_sources: Vec<Option<Uuid>> = finishes
            .iter()
            .flat_map(|f| f.outbox.iter().map(move |_| f.message_id))
            .collect();
        let outbox_props: Vec<Value> = outbox
            .iter()
            .map(|m| serde_json::to_value(m).expect("outbound properties serialise"))
            .collect();
        let outbox_bodies: Vec<&[u8]> = outbox.iter().map(|m| m.body.as_slice()).collect();
        let insert_outbox = txn
            .prepare_cached(
                "INSERT INTO outbox (id, queue, message_id, properties, body)
                 SELECT t.id, $2, t.m, t.p, t.b
                 FROM unnest($1::uuid[], $3::uuid[], $4::jsonb[], $5::bytea[]) AS t(id, m, p, b)",
            )
            .await?;
        let queue = self.queue.to_string();
        let insert_dead = txn
            .prepare_cached(
                "INSERT INTO dead_letters (queue, message_id, error_kind, reason, attempts, headers, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        let mut futures: Vec<BoxFuture<'_, Result<u64, tokio_postgres::Error>>> = Vec::new();
        for (stmt, params) in &owned {
            futures.push(execute(txn, stmt, params));
        }
        if !done_rows.ids.is_empty() {
            let (stmt, d, queue) = (&done, &done_rows, &*self.queue);
            futures.push(Box::pin(async move {
                txn.execute(
                    stmt,
                    &[
                        &queue,
                        &d.ids,
                        &d.statuses,
                        &d.attempts,
                        &d.routing_keys,
                        &d.results,
                        &d.errors,
                    ],
                )
                .await
            }));
        }
        for (stmt, params) in &borrowed {
            futures.push(execute(txn, stmt, params));
        }

        if !outbox.is_empty() {
            let (ids, q, src, props, bodies) = (
                &outbox_ids,
                &queue,
                &outbox_sources,
                &outbox_props,
                &outbox_bodies,
            );
            futures.push(Box::pin(async move {
                txn.execute(&insert_outbox, &[ids, q, src, props, bodies])
                    .await
            }));
        }

        for f in finishes {
            if let Some(d) = &f.dead_letter {
                let (stmt, q) = (&insert_dead, &queue);
                futures.push(Box::pin(async move {
                    let attempts = d.attempts.map(|a| a as i32);
                    txn.execute(
                        stmt,
                        &[
                            q,
                            &d.message_id,
                            &d.kind.as_str(),
                            &d.reason,
                            &attempts,
                            &d.headers,
                            &d.body,
                        ],
                    )
                    .await
                }));
            }
        }
        // tokio-postgres pipelines statements issued together on one connection: one round trip.
        futures::future::try_join_all(futures).await?;
        Ok(())
    }
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The finished messages of one group, as the columns of one `unnest`.
#[derive(Default)]
struct DoneRows<'a> {
    ids: Vec<Uuid>,
    statuses: Vec<&'a str>,
    attempts: Vec<i32>,
    routing_keys: Vec<&'a str>,
    results: Vec<&'a Value>,
    errors: Vec<Option<Value>>,
}

fn execute<'a>(
    txn: &'a Transaction<'_>,
    stmt: &'a tokio_postgres::Statement,
    params: &'a [Box<dyn ToSql + Sync + Send>],
) -> BoxFuture<'a, Result<u64, tokio_postgres::Error>> {
    Box::pin(async move {
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        txn.execute(stmt, &refs).await
    })
}

struct WorkRow {
    state: String,
    status: Option<String>,
    attempts: u32,
    next_attempt: u32,
    leased: bool,
    routing_key: Option<String>,
    result: Option<Value>,
}

/// What a claim on an existing work row gets.
fn decide(row: &WorkRow, c: &ClaimRequest) -> Claim {
    match row.state.as_str() {
        "done" => {
            let failed = row.status.as_deref() == Some("failed");
            match (&row.routing_key, &row.result) {
                (Some(rk), Some(result)) if !(c.replay && failed) => Claim::Done {
                    routing_key: rk.clone(),
                    result: result.clone(),
                },
                _ => Claim::Take {
                    attempt: 1,
                    possible_duplicate: false,
                },
            }
        }
        "retry_scheduled" if c.header_attempt >= row.next_attempt || c.replay => Claim::Take {
            attempt: row.next_attempt.max(c.header_attempt),
            possible_duplicate: false,
        },
        "retry_scheduled" => Claim::Stale,
        _ if row.leased => Claim::Busy,
        // Its holder's lease ran out without an outcome: the holder died, maybe mid-call.
        _ => Claim::Take {
            attempt: row.attempts + 1,
            possible_duplicate: true,
        },
    }
}

/// Writes `messages` to the outbox inside the caller's transaction, under `queue` and `message_id`,
/// for work done beside a queue (webhook deliveries): flush them with [`flush_outbox_for`] after the
/// commit, and the relay publishes whatever a crash leaves behind.
pub async fn write_outbox<C: tokio_postgres::GenericClient>(
    client: &C,
    queue: &str,
    message_id: Uuid,
    messages: &[OutboundMessage],
) -> Result<(), StoreError> {
    for m in messages {
        let properties = serde_json::to_value(m).expect("outbound properties serialise");
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

/// Publishes a message's outbox rows that are still waiting, and deletes them once confirmed. Rows
/// younger than `older_than` are left to the writer that is publishing them right now.
pub async fn flush_outbox_for(
    pool: &Pool,
    publisher: &crate::broker::Publisher,
    queue: &str,
    message_id: Uuid,
    older_than: Duration,
) -> Result<usize, FlushError> {
    publish_outbox_rows(
        pool,
        publisher,
        "SELECT id, properties, body FROM outbox WHERE queue = $1 AND message_id = $2
           AND created_at < now() - make_interval(secs => $3)
         ORDER BY id FOR UPDATE SKIP LOCKED",
        &[&queue, &message_id, &older_than.as_secs_f64()],
    )
    .await
}

/// One pass of the outbox relay: publishes rows older than `older_than` that a crash or a broker
/// outage left behind. Replicas share the work through `SKIP LOCKED`.
pub async fn relay_outbox(
    pool: &Pool,
    publisher: &crate::broker::Publisher,
    older_than: Duration,
    limit: i64,
) -> Result<usize, FlushError> {
    publish_outbox_rows(
        pool,
        publisher,
        "SELECT id, properties, body FROM outbox
         WHERE created_at < now() - make_interval(secs => $1)
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        &[&older_than.as_secs_f64(), &limit],
    )
    .await
}

/// Locks the outbox rows `select` finds, publishes them with confirms, and deletes them in the same
/// transaction: a row is gone only once the broker has it.
async fn publish_outbox_rows(
    pool: &Pool,
    publisher: &crate::broker::Publisher,
    select: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<usize, FlushError> {
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
    publisher.publish_all(&messages).await?;
    let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
    txn.execute("DELETE FROM outbox WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(StoreError::from)?;
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
pub enum FlushError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker did not confirm.
    #[error(transparent)]
    Publish(#[from] crate::broker::PublishError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, status: Option<&str>, next_attempt: u32, leased: bool) -> WorkRow {
        WorkRow {
            state: state.into(),
            status: status.map(Into::into),
            attempts: next_attempt.saturating_sub(1).max(1),
            next_attempt,
            leased,
            routing_key: Some("otp.send.completed".into()),
            result: Some(serde_json::json!({"status": status})),
        }
    }

    fn req(header_attempt: u32, replay: bool) -> ClaimRequest {
        ClaimRequest {
            message_id: Uuid::nil(),
            header_attempt,
            replay,
        }
    }

    #[test]
    fn finished_work_is_answered_from_the_stored_result() {
        let r = row("done", Some("sent"), 1, false);
        assert!(matches!(decide(&r, &req(1, false)), Claim::Done { .. }));
        assert!(matches!(decide(&r, &req(1, true)), Claim::Done { .. }));
    }

    #[test]
    fn only_a_replay_restarts_failed_work() {
        let r = row("done", Some("failed"), 3, false);
        assert!(matches!(decide(&r, &req(3, false)), Claim::Done { .. }));
        assert_eq!(
            decide(&r, &req(1, true)),
            Claim::Take {
                attempt: 1,
                possible_duplicate: false
            }
        );
    }

    #[test]
    fn the_scheduled_copy_proceeds_and_older_copies_are_stale() {
        let r = row("retry_scheduled", None, 3, false);
        assert_eq!(
            decide(&r, &req(3, false)),
            Claim::Take {
                attempt: 3,
                possible_duplicate: false
            }
        );
        assert_eq!(decide(&r, &req(2, false)), Claim::Stale);
    }

    #[test]
    fn a_held_message_is_busy_until_its_lease_runs_out() {
        assert_eq!(
            decide(&row("in_flight", None, 1, true), &req(1, false)),
            Claim::Busy
        );
        let orphan = row("in_flight", None, 2, false);
        assert_eq!(
            decide(&orphan, &req(2, false)),
            Claim::Take {
                attempt: orphan.attempts + 1,
                possible_duplicate: true
            }
        );
    }
}
