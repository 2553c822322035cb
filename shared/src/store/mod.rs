//! Every SQL statement of pasarela, by table, and the group committer that batches the hot path.
//!
//! Nothing outside this layer writes SQL. It imports the contract and the vendors' token vault, never
//! the runtime: outbox rows reach the broker through the [`outbox::Sink`] the runtime supplies.

pub mod committer;
pub mod database;
pub mod dead_letters;
pub mod documents;
pub mod error;
pub mod outbox;
pub mod vendor_tokens;
pub mod work_items;

use tokio_postgres::types::ToSql;

use crate::store::error::StoreError;

/// One domain statement written in the same transaction as the outcome it belongs to.
pub struct SqlWrite {
    /// The statement (prepared once per connection and cached).
    pub sql: &'static str,
    /// Its parameters.
    pub params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl std::fmt::Debug for SqlWrite {
    // Parameters may hold personal data; the statement is enough to recognise a write.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlWrite")
            .field("sql", &self.sql)
            .field("params", &self.params.len())
            .finish()
    }
}

/// Writes the domain rows of a group, all statements pipelined.
pub(crate) async fn write_all(
    txn: &deadpool_postgres::Transaction<'_>,
    writes: &[&SqlWrite],
) -> Result<(), StoreError> {
    let mut prepared = Vec::with_capacity(writes.len());
    for w in writes {
        prepared.push(txn.prepare_cached(w.sql).await?);
    }
    futures::future::try_join_all(writes.iter().zip(&prepared).map(|(w, stmt)| {
        let params: Vec<&(dyn ToSql + Sync)> = w
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        async move { txn.execute(stmt, &params).await }
    }))
    .await?;
    Ok(())
}
