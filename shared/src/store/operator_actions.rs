//! The `operator_actions` table: what operators did from the console (who, what, on what, why, when,
//! and what came of it), written before an action is carried out and completed after it.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

use crate::store::column::storable_text;
use crate::store::error::DbError;

/// An action an operator asked for.
#[derive(Debug, Clone)]
pub struct NewAction<'a> {
    /// The one-time id of the form that asked for it.
    pub action_id: Uuid,
    /// Who asked, as the console knows them.
    pub operator: &'a str,
    /// What: `replay`, `discard`, `redeliver`, `reenable`.
    pub action: &'a str,
    /// On what, in words an operator reads (`otp.send dead letter 42`).
    pub target: &'a str,
    /// Why, when a reason was given.
    pub reason: Option<&'a str>,
}

/// A row of `operator_actions`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionRow {
    /// The form's one-time id.
    pub action_id: Uuid,
    /// Who.
    pub operator: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Why.
    pub reason: Option<String>,
    /// What came of it; `None` while it is being carried out (or if the console stopped meanwhile).
    pub outcome: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it was finished.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Whether an action is new or was asked for before by the same form.
#[derive(Debug, Clone)]
pub enum Begun {
    /// Recorded now: carry it out.
    Fresh,
    /// The same form was sent before: this is its row, and it must not be carried out again.
    Seen(ActionRow),
}

const INSERT: &str = "INSERT INTO operator_actions (action_id, operator, action, target, reason)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (action_id) DO NOTHING";

const COLUMNS: &str =
    "action_id, operator, action, target, reason, outcome, created_at, completed_at";

fn row(r: &tokio_postgres::Row) -> Result<ActionRow, tokio_postgres::Error> {
    Ok(ActionRow {
        action_id: r.try_get(0)?,
        operator: r.try_get(1)?,
        action: r.try_get(2)?,
        target: r.try_get(3)?,
        reason: r.try_get(4)?,
        outcome: r.try_get(5)?,
        created_at: r.try_get(6)?,
        completed_at: r.try_get(7)?,
    })
}

/// Records an action before it is carried out; a form sent twice finds the first row instead.
pub async fn begin(pool: &Pool, action: &NewAction<'_>) -> Result<Begun, DbError> {
    let client = pool.get().await?;
    let reason = action.reason.map(storable_text);
    let inserted = client
        .execute(
            INSERT,
            &[
                &action.action_id,
                &&*storable_text(action.operator),
                &action.action,
                &&*storable_text(action.target),
                &reason.as_deref(),
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok(Begun::Fresh);
    }
    let seen = client
        .query_one(
            &format!("SELECT {COLUMNS} FROM operator_actions WHERE action_id = $1"),
            &[&action.action_id],
        )
        .await?;
    Ok(Begun::Seen(row(&seen)?))
}

/// Records what came of an action.
pub async fn finish(pool: &Pool, action_id: Uuid, outcome: &str) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE operator_actions SET outcome = $2, completed_at = now() WHERE action_id = $1",
            &[&action_id, &&*storable_text(outcome)],
        )
        .await?;
    Ok(())
}

/// The newest `limit` actions, newest first; only those whose target contains `about` when given.
pub async fn recent(
    pool: &Pool,
    about: Option<&str>,
    limit: i64,
) -> Result<Vec<ActionRow>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM operator_actions
                 WHERE $1::text IS NULL OR strpos(target, $1) > 0
                 ORDER BY created_at DESC LIMIT $2"
            ),
            &[&about, &limit],
        )
        .await?;
    Ok(rows.iter().map(row).collect::<Result<Vec<_>, _>>()?)
}
