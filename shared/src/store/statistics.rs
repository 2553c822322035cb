//! The planner's first statistics for a new database. Until a table is analyzed the planner plans for
//! an empty table, and the group statements' cached plans then read every row of a queue per statement;
//! autovacuum analyzes a database at most once a minute, by which time a busy new worker has slowed
//! down with every row it added.

use deadpool_postgres::Pool;

use crate::store::error::{DbError, StoreError};

/// Analyzes the tables this role owns that hold at least `min_rows` rows and were never analyzed, by
/// autovacuum or anyone; answers their names. A role that owns none (a least-privilege runtime role)
/// analyzes nothing and leaves it to autovacuum.
pub async fn analyze_new_tables(pool: &Pool, min_rows: i64) -> Result<Vec<String>, StoreError> {
    let client = pool.get().await.map_err(DbError::from)?;
    let rows = client
        .query(
            "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
             WHERE s.schemaname = current_schema()
               AND s.last_analyze IS NULL AND s.last_autoanalyze IS NULL
               AND s.n_live_tup + s.n_dead_tup >= $1
               AND pg_has_role(current_user, c.relowner, 'USAGE')",
            &[&min_rows],
        )
        .await?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if !names.is_empty() {
        let tables: Vec<String> = names
            .iter()
            .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
            .collect();
        client
            .batch_execute(&format!("ANALYZE {}", tables.join(", ")))
            .await?;
    }
    Ok(names)
}
