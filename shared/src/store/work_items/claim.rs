//! The claim: who works on a message. One statement inserts the rows of new messages; the others are
//! decided row by row under their locks.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;
use serde_json::Value;
use uuid::Uuid;

use crate::store::error::StoreError;
use crate::store::otp::{SendAdmission, SendToAdmit};
use crate::store::work_items::WorkState;

/// A request to work on a message.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The producer's `message_id`.
    pub message_id: Uuid,
    /// The attempt number the delivery carries.
    pub header_attempt: u32,
    /// Set by `pasarela dlq replay`: a failed message may start over.
    pub replay: bool,
    /// The most attempts a message gets, takeovers included: past it, an orphan is abandoned.
    pub max_attempts: u32,
    /// The trace the delivery runs in, kept with a new row for `pasarela status`.
    pub trace_id: Option<Uuid>,
    /// A send the fraud guard counts, admitted in the claim's transaction (see [`Claimed`]).
    pub admission: Option<SendToAdmit>,
}

/// The answer to a claim, and the fraud guard's answer for its send when it asked for one.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Who works on the message.
    pub claim: Claim,
    /// The guard's verdict on the send (idempotent per request: a duplicate of an admitted send is
    /// admitted again without counting twice).
    pub admission: Option<SendAdmission>,
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
    /// Its holders vanished mid-attempt `attempts` times, as many as it may have: give it up rather
    /// than call the vendor once more. The claim holds it, so that one holder gives it up.
    Abandoned {
        /// Attempts made.
        attempts: u32,
    },
}

/// Claims every message of a group in one statement, then settles the conflicts row by row.
pub(crate) async fn claim_all(
    txn: &Transaction<'_>,
    queue: &str,
    lease_secs: f64,
    claims: &[&ClaimRequest],
) -> Result<Vec<Claim>, StoreError> {
    let inserted = insert_new(txn, queue, lease_secs, claims).await?;
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
        settle_conflicts(txn, queue, lease_secs, claims, &conflicts, &mut answers).await?;
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or(Claim::Busy))
        .collect())
}

/// Inserts a work row for every message that has none; answers the messages inserted.
async fn insert_new(
    txn: &Transaction<'_>,
    queue: &str,
    lease_secs: f64,
    claims: &[&ClaimRequest],
) -> Result<HashSet<Uuid>, StoreError> {
    let ids: Vec<Uuid> = claims.iter().map(|c| c.message_id).collect();
    let attempts: Vec<i32> = claims.iter().map(|c| c.header_attempt as i32).collect();
    let traces: Vec<Option<Uuid>> = claims.iter().map(|c| c.trace_id).collect();
    let insert = txn
        .prepare_cached(
            "INSERT INTO work_items (queue, message_id, state, attempts, next_attempt, claimed_until,
                 trace_id)
             SELECT $1, t.m, 'in_flight', t.a, t.a, now() + make_interval(secs => $4), t.t
             FROM unnest($2::uuid[], $3::int4[], $5::uuid[]) AS t(m, a, t)
             ON CONFLICT (queue, message_id) DO NOTHING
             RETURNING message_id",
        )
        .await?;
    Ok(txn
        .query(&insert, &[&queue, &ids, &attempts, &lease_secs, &traces])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Decides the claims on messages that already had a row, under the rows' locks, and takes over
/// those whose claim says take.
async fn settle_conflicts(
    txn: &Transaction<'_>,
    queue: &str,
    lease_secs: f64,
    claims: &[&ClaimRequest],
    conflicts: &[usize],
    answers: &mut [Option<Claim>],
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = conflicts.iter().map(|i| claims[*i].message_id).collect();
    let mut rows = lock_rows(txn, queue, &ids).await?;
    let take = txn
        .prepare_cached(
            "UPDATE work_items SET state = 'in_flight', status = NULL, attempts = $3,
                 claimed_until = now() + make_interval(secs => $4),
                 possible_duplicates = possible_duplicates + $5, updated_at = now()
             WHERE queue = $1 AND message_id = $2",
        )
        .await?;
    for &i in conflicts {
        let c = &claims[i];
        let Some(row) = rows.get_mut(&c.message_id) else {
            // Inserted by this very group for an earlier claim in it: that one holds it.
            answers[i] = Some(Claim::Busy);
            continue;
        };
        let answer = decide(row, c);
        let held = match answer {
            Claim::Take {
                attempt,
                possible_duplicate,
            } => Some((attempt, possible_duplicate)),
            Claim::Abandoned { attempts } => Some((attempts, false)),
            _ => None,
        };
        if let Some((attempt, possible_duplicate)) = held {
            let dup = i32::from(possible_duplicate);
            txn.execute(
                &take,
                &[&queue, &c.message_id, &(attempt as i32), &lease_secs, &dup],
            )
            .await?;
            row.state = WorkState::InFlight;
            row.leased = true;
            row.attempts = attempt;
        }
        answers[i] = Some(answer);
    }
    Ok(())
}

/// Reads and locks the work rows of `ids`.
async fn lock_rows(
    txn: &Transaction<'_>,
    queue: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, WorkRow>, StoreError> {
    let select = txn
        .prepare_cached(
            "SELECT message_id, state, status, attempts, next_attempt,
                    coalesce(claimed_until > now(), false), result_routing_key, result
             FROM work_items WHERE queue = $1 AND message_id = ANY($2) FOR UPDATE",
        )
        .await?;
    let rows = txn.query(&select, &[&queue, &ids]).await?;
    let mut by_id = HashMap::with_capacity(rows.len());
    for r in &rows {
        let row = WorkRow {
            state: r.try_get(1)?,
            status: r.get(2),
            attempts: r.get::<_, i32>(3) as u32,
            next_attempt: r.get::<_, i32>(4) as u32,
            leased: r.get(5),
            routing_key: r.get(6),
            result: r.get(7),
        };
        by_id.insert(r.get(0), row);
    }
    Ok(by_id)
}

struct WorkRow {
    state: WorkState,
    status: Option<String>,
    attempts: u32,
    next_attempt: u32,
    leased: bool,
    routing_key: Option<String>,
    result: Option<Value>,
}

/// What a claim on an existing work row gets.
fn decide(row: &WorkRow, c: &ClaimRequest) -> Claim {
    match row.state {
        WorkState::Done => {
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
        WorkState::RetryScheduled if c.header_attempt >= row.next_attempt || c.replay => {
            Claim::Take {
                attempt: row.next_attempt.max(c.header_attempt),
                possible_duplicate: false,
            }
        }
        WorkState::RetryScheduled => Claim::Stale,
        WorkState::InFlight if row.leased => Claim::Busy,
        // Its holders' leases ran out without an outcome as often as it may be attempted: a message
        // that kills its holder, or whose outcome cannot be recorded, must not call a vendor forever.
        WorkState::InFlight if row.attempts >= c.max_attempts => Claim::Abandoned {
            attempts: row.attempts,
        },
        // Its holder's lease ran out without an outcome: the holder died, maybe mid-call.
        WorkState::InFlight => Claim::Take {
            attempt: row.attempts + 1,
            possible_duplicate: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, status: Option<&str>, next_attempt: u32, leased: bool) -> WorkRow {
        WorkRow {
            state: WorkState::from_text(state).unwrap(),
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
            max_attempts: 5,
            trace_id: None,
            admission: None,
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

    #[test]
    fn hole_1_an_orphan_that_spent_its_attempts_is_abandoned_not_called_again() {
        let spent = row("in_flight", None, 6, false);
        assert_eq!(spent.attempts, 5);
        assert_eq!(
            decide(&spent, &req(1, false)),
            Claim::Abandoned { attempts: 5 }
        );
        // While its holder's lease lasts, it is that holder's.
        assert_eq!(
            decide(&row("in_flight", None, 6, true), &req(1, false)),
            Claim::Busy
        );
    }
}
