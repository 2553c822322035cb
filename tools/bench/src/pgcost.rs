//! What PostgreSQL spends on a measurement: WAL bytes and committed transactions, read from the
//! server's own counters before and after, and how many `work_items` updates stayed heap-only (HOT).

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// A backend flushes its statistics at most once a second, and within a second of going idle
/// (PostgreSQL 15's `PGSTAT_MIN_INTERVAL`): waiting this long makes the counters current.
const STATS_SETTLE: Duration = Duration::from_millis(1_500);

/// The server's counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    /// WAL insert position, in bytes from the start.
    wal_bytes: i64,
    /// Transactions committed in the bench's database (read-only ones count too).
    commits: i64,
}

/// PostgreSQL's cost of one measurement, per message.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgCost {
    /// Commits per message.
    pub commits_per_message: f64,
    /// WAL bytes per message (server-wide: nothing else runs during a bench).
    pub wal_bytes_per_message: f64,
    /// `work_items` row updates, and how many of them were HOT.
    pub work_updates: i64,
    /// Heap-only updates among `work_updates`.
    pub work_hot_updates: i64,
}

/// A connection to the bench's database for reading counters.
pub struct Probe {
    client: Client,
    database: String,
}

impl Probe {
    /// Connects to `database` on the server at `pg_base`.
    pub async fn connect(pg_base: &str, database: &str) -> anyhow::Result<Self> {
        let (client, connection) =
            tokio_postgres::connect(&format!("{pg_base}/{database}"), NoTls).await?;
        tokio::spawn(connection);
        Ok(Self {
            client,
            database: database.to_string(),
        })
    }

    /// Gathers the planner's statistics of every table, as autovacuum does on a running system. A
    /// fresh database has none, and for its first minute (autovacuum's naptime) the hot path's plans
    /// are made for empty tables: a measurement of seconds would see only that.
    pub async fn analyze(&self) -> anyhow::Result<()> {
        self.client.batch_execute("ANALYZE").await?;
        Ok(())
    }

    /// The counters once every backend has flushed what it did so far.
    pub async fn counters(&self) -> anyhow::Result<Counters> {
        tokio::time::sleep(STATS_SETTLE).await;
        let row = self
            .client
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint,
                        (SELECT xact_commit FROM pg_stat_database WHERE datname = $1)",
                &[&self.database],
            )
            .await?;
        Ok(Counters {
            wal_bytes: row.get(0),
            commits: row.get(1),
        })
    }

    /// What the server spent between `before` and now, over `messages` messages.
    pub async fn cost_since(&self, before: Counters, messages: usize) -> anyhow::Result<PgCost> {
        let after = self.counters().await?;
        let row = self
            .client
            .query_one(
                "SELECT coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_hot_upd), 0)::bigint
                 FROM pg_stat_user_tables WHERE relname = 'work_items'",
                &[],
            )
            .await?;
        let n = messages.max(1) as f64;
        Ok(PgCost {
            commits_per_message: (after.commits - before.commits) as f64 / n,
            wal_bytes_per_message: (after.wal_bytes - before.wal_bytes) as f64 / n,
            work_updates: row.get(0),
            work_hot_updates: row.get(1),
        })
    }
}
