//! The hot-path writes, committed in groups.
//!
//! A commit costs more than a broker hop here, so concurrent deliveries do not commit one by one: each
//! hands its claim or outcome to [`Store`], whose committer puts whatever is waiting into one transaction
//! (up to `PASARELA_GROUP_COMMIT_MAX` operations) and wakes every waiter with its own answer. Claims and
//! outbox clean-up commit with `synchronous_commit = off`: losing them in a database crash loses no work
//! (a lost claim only hides a possible duplicate; a lost clean-up re-publishes an event), while outcomes
//! commit durably. The statements are the table modules'; this module only groups them.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use crate::contract::envelope::OutboundMessage;
use crate::store::dead_letters::DeadLetterRow;
use crate::store::error::{DbError, StoreError};
use crate::store::otp::{self, GuardLimits, SendToAdmit};
use crate::store::work_items::{self, Claim, ClaimRequest, Claimed, Settlement};
use crate::store::{Record, dead_letters, outbox};

/// Everything one attempt's outcome writes, committed together.
#[derive(Debug, Default)]
pub struct Commit {
    /// The message, when it had a usable `message_id`.
    pub message_id: Option<Uuid>,
    /// The work row's new state (none for a message that never got one).
    pub work: Option<Settlement>,
    /// Domain rows.
    pub records: Vec<Record>,
    /// Messages to publish once committed.
    pub outbox: Vec<OutboundMessage>,
    /// How many of `outbox`, from its start, are published without a row: the event and reply of a
    /// delivery still held unacked. Should they be lost, its redelivery finds the work row done and
    /// publishes them again from the stored result, so a row would only cost an insert and a delete.
    pub direct: usize,
    /// A dead-letter record.
    pub dead_letter: Option<DeadLetterRow>,
}

impl Commit {
    /// The messages written to the outbox with the outcome.
    pub fn stored(&self) -> &[OutboundMessage] {
        &self.outbox[self.direct.min(self.outbox.len())..]
    }
}

/// Where a claim's answer goes.
type ClaimReply = oneshot::Sender<Result<Claimed, StoreError>>;
/// Where a commit's answer goes.
type CommitReply = oneshot::Sender<Result<(), StoreError>>;

enum Op {
    Claim(ClaimRequest, ClaimReply),
    Commit(Arc<Commit>, CommitReply),
    Forget(Vec<Uuid>),
    /// Answers once every operation sent before it is committed.
    Settle(oneshot::Sender<()>),
}

/// Group-committing access to the state of one work queue.
#[derive(Clone)]
pub struct Store {
    ops: mpsc::Sender<Op>,
    pool: Pool,
    queue: Arc<str>,
    lease: Duration,
}

/// How the committer groups work.
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    /// Most operations in one transaction.
    pub max_batch: usize,
    /// Transactions in flight at once.
    pub parallel: usize,
    /// How long a group waits for more operations while another group is committing.
    pub linger: Duration,
    /// The fraud guard's limits, for claims that carry a send to admit.
    pub guard: Option<GuardLimits>,
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
            guard: settings.guard,
        };
        tokio::spawn(committer.run(rx, settings));
        Self {
            ops: tx,
            pool,
            queue,
            lease: settings.claim_lease,
        }
    }

    /// How long a claim holds a message.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Extends the lease of a message its holder is still working on; says whether it still held it.
    /// Rare (only attempts longer than a third of the lease), so not grouped.
    pub async fn renew(&self, message_id: Uuid) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(DbError::from)?;
        work_items::renew(&client, &self.queue, message_id, self.lease.as_secs_f64()).await
    }

    /// The pool, for the rare paths that need no grouping.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Claims a message for an attempt (see [`Claim`]), admitting its send when it carries one.
    pub async fn claim(&self, request: ClaimRequest) -> Result<Claimed, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(Op::Claim(request, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Commits an attempt's outcome and its outbox rows.
    pub async fn commit(&self, commit: Arc<Commit>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(Op::Commit(commit, tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until every operation handed over before it is committed: on the way out, so that the
    /// last confirmed outbox rows are deleted rather than published again after a restart.
    pub async fn settle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.ops.send(Op::Settle(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Deletes outbox rows the broker has confirmed; grouped with whatever commits next.
    pub async fn forget(&self, ids: Vec<Uuid>) {
        if !ids.is_empty() {
            // If the committer is gone the rows stay, and the relay publishes them once more.
            let _ = self.ops.send(Op::Forget(ids)).await;
        }
    }
}

/// Adds the operations waiting in `rx` to `batch`, up to `max` in all. With a `linger`, it keeps
/// looking for that long, yielding to the tasks about to hand theirs over: tokio's timers tick in
/// milliseconds, too coarse for a wait of a few hundred microseconds.
async fn gather(
    rx: &mut mpsc::Receiver<Op>,
    batch: &mut Vec<Op>,
    max: usize,
    linger: Option<Duration>,
) {
    let until = linger.map(|l| std::time::Instant::now() + l);
    while batch.len() < max {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(mpsc::error::TryRecvError::Empty)
                if until.is_some_and(|t| std::time::Instant::now() < t) =>
            {
                tokio::task::yield_now().await;
            }
            Err(_) => break,
        }
    }
}

struct Committer {
    pool: Pool,
    queue: Arc<str>,
    lease_secs: f64,
    guard: Option<GuardLimits>,
}

impl Committer {
    async fn run(self, mut rx: mpsc::Receiver<Op>, settings: StoreSettings) {
        let (max_batch, parallel) = (settings.max_batch.max(1), settings.parallel.max(1));
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
            let busy = slots.available_permits() + 1 < parallel;
            gather(
                &mut rx,
                &mut batch,
                max_batch,
                busy.then_some(settings.linger),
            )
            .await;
            if batch.iter().any(|op| matches!(op, Op::Settle(_))) {
                // Every earlier group must be committed first: wait for all the other slots.
                let others = u32::try_from(parallel - 1).unwrap_or(u32::MAX);
                let _all = slots.acquire_many(others).await;
                this.commit_group(batch).await;
                drop(permit);
                continue;
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
        let mut settled = Vec::new();
        for op in batch {
            match op {
                Op::Claim(r, tx) => claims.push((r, tx)),
                Op::Commit(f, tx) => finishes.push((f, tx)),
                Op::Forget(ids) => forgets.extend(ids),
                Op::Settle(tx) => settled.push(tx),
            }
        }
        self.commit_ops(claims, finishes, forgets).await;
        for tx in settled {
            let _ = tx.send(());
        }
    }

    /// Commits a group's claims, outcomes and clean-ups, and answers each waiter.
    async fn commit_ops(
        &self,
        claims: Vec<(ClaimRequest, ClaimReply)>,
        finishes: Vec<(Arc<Commit>, CommitReply)>,
        forgets: Vec<Uuid>,
    ) {
        if claims.is_empty() && finishes.is_empty() && forgets.is_empty() {
            return;
        }
        let claim_reqs: Vec<&ClaimRequest> = claims.iter().map(|(r, _)| r).collect();
        let finish_refs: Vec<&Commit> = finishes.iter().map(|(f, _)| f.as_ref()).collect();
        match self.transaction(&claim_reqs, &finish_refs, &forgets).await {
            Ok(answers) => {
                for ((_, tx), answer) in claims.into_iter().zip(answers) {
                    let _ = tx.send(Ok(answer));
                }
                for (_, tx) in finishes {
                    let _ = tx.send(Ok(()));
                }
            }
            Err(e) if e.is_transient() || claims.len() + finishes.len() <= 1 => {
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
                    let res = self.transaction(&[&r], &[], &[]).await;
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
        claims: &[&ClaimRequest],
        finishes: &[&Commit],
        forgets: &[Uuid],
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut conn = self.pool.get().await.map_err(DbError::from)?;
        let txn = conn.transaction().await?;
        // Issued together, so tokio-postgres pipelines them in one round trip; each touches rows of
        // its own messages, so their order does not matter.
        let relaxed = async {
            if finishes.is_empty() {
                txn.batch_execute("SET LOCAL synchronous_commit TO off")
                    .await?;
            }
            Ok::<_, StoreError>(())
        };
        // The guard counts in the claim's transaction, so it costs no transaction and no wait of its
        // own; only the claims that take their message count, so that a duplicate of a refused send
        // is not counted.
        let claiming = async {
            if claims.is_empty() {
                return Ok((Vec::new(), Default::default()));
            }
            let answers = work_items::claim_all(&txn, &self.queue, self.lease_secs, claims).await?;
            let sends: Vec<&SendToAdmit> = claims
                .iter()
                .zip(&answers)
                .filter(|(_, answer)| matches!(answer, Claim::Take { .. }))
                .filter_map(|(c, _)| c.admission.as_ref())
                .collect();
            let admitted = match self.guard {
                Some(limits) if !sends.is_empty() => {
                    otp::admit_within(&txn, &limits, &sends).await?
                }
                _ => Default::default(),
            };
            Ok::<_, StoreError>((answers, admitted))
        };
        let writing = async {
            if finishes.is_empty() {
                Ok(())
            } else {
                self.write_commits(&txn, finishes).await
            }
        };
        let forgetting = async {
            if forgets.is_empty() {
                Ok(())
            } else {
                outbox::delete(&txn, forgets).await
            }
        };
        let (relaxed, claimed, written, forgotten) =
            futures::join!(relaxed, claiming, writing, forgetting);
        let ((answers, admitted), claim_failure) = match claimed {
            Ok(claimed) => (claimed, None),
            Err(e) => (Default::default(), Some(e)),
        };
        // Every result is awaited, so that a failure reports its cause rather than a later
        // statement's "transaction aborted".
        let failures = [relaxed.err(), claim_failure, written.err(), forgotten.err()];
        if let Some(cause) = StoreError::first_cause(failures.into_iter().flatten()) {
            return Err(cause);
        }
        txn.commit().await?;
        Ok(claims
            .iter()
            .zip(answers)
            .map(|(request, claim)| Claimed {
                claim,
                admission: request
                    .admission
                    .as_ref()
                    .and_then(|send| admitted.get(&send.request_id).copied()),
            })
            .collect())
    }

    /// Writes every outcome of a group: each table's rows in one statement, all pipelined.
    async fn write_commits(
        &self,
        txn: &Transaction<'_>,
        finishes: &[&Commit],
    ) -> Result<(), StoreError> {
        let queue = &*self.queue;
        let outcomes: Vec<(Uuid, &Settlement)> = finishes
            .iter()
            .filter_map(|f| Some((f.message_id?, f.work.as_ref()?)))
            .collect();
        let records: Vec<&Record> = finishes.iter().flat_map(|f| f.records.iter()).collect();
        let messages: Vec<(Option<Uuid>, &OutboundMessage)> = finishes
            .iter()
            .flat_map(|f| f.stored().iter().map(move |m| (f.message_id, m)))
            .collect();
        let dead: Vec<&DeadLetterRow> = finishes
            .iter()
            .filter_map(|f| f.dead_letter.as_ref())
            .collect();
        // tokio-postgres pipelines statements issued together on one connection: one round trip. All
        // are awaited, so that a failure reports its cause rather than a later "transaction aborted".
        let (a, b, c, d) = futures::join!(
            work_items::record(txn, queue, &outcomes),
            crate::store::write_all(txn, &records),
            outbox::insert(txn, queue, &messages),
            dead_letters::insert(txn, queue, &dead),
        );
        match StoreError::first_cause([a, b, c, d].into_iter().filter_map(Result::err)) {
            Some(cause) => Err(cause),
            None => Ok(()),
        }
    }
}
