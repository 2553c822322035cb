//! Status polls for documents whose webhook may never come: documents due for a poll (`next_poll_at`)
//! get a `doc.callback` with source `poll`. Replicas share the work through `SKIP LOCKED`, and a
//! poll's due time is pushed out before it is published, so a lost publish is only a later poll.

use std::time::Duration;

use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::messages::DocCallback;
use pasarela_shared::runtime::handler::Background;
use uuid::Uuid;

/// How often due documents are looked for.
const TICK: Duration = Duration::from_secs(1);
/// Documents polled per tick at most.
const BATCH: i64 = 200;
/// How far a taken poll's due time is pushed out: the time its message has to be handled in.
const LEASE_SECS: f64 = 300.0;

/// Publishes due polls until the worker stops; `first` is the shortest poll delay (the tick is never
/// longer than it).
pub async fn run(services: Background, first: Option<Duration>) {
    let tick = first.map_or(TICK, |d| d.min(TICK));
    let mut stop = services.stop.clone();
    while stop.sleep(tick).await {
        if !services.publisher.is_connected() {
            continue;
        }
        match poll_due(&services).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("pasarela_document_polls_total").increment(n as u64);
                tracing::debug!(polls = n, "published status polls");
            }
            Err(e) => tracing::warn!(error = %e, "status poll pass failed"),
        }
    }
}

async fn poll_due(services: &Background) -> Result<usize, String> {
    let mut conn = services.db.pool().get().await.map_err(|e| e.to_string())?;
    let txn = conn.transaction().await.map_err(|e| e.to_string())?;
    let rows = txn
        .query(
            "UPDATE documents d SET next_poll_at = now() + make_interval(secs => $2)
             FROM (SELECT document_id FROM documents
                   WHERE state = 'submitted' AND next_poll_at <= now()
                   ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
             WHERE d.document_id = due.document_id
             RETURNING d.document_id, d.vendor_document_id",
            &[&BATCH, &LEASE_SECS],
        )
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Ok(0);
    }
    let exchange = services.names.work_exchange();
    let messages: Vec<OutboundMessage> = rows
        .iter()
        .map(|r| {
            let body = DocCallback {
                document_id: r.get::<_, Uuid>(0),
                vendor_document_id: r.get(1),
                status: None,
                source: "poll".into(),
            };
            OutboundMessage::json(
                exchange.clone(),
                "doc.callback",
                &serde_json::to_value(body).expect("a callback serialises"),
            )
        })
        .collect();
    // Published before the commit: if the broker refuses, the rollback leaves them due again.
    services
        .publisher
        .publish_all(&messages)
        .await
        .map_err(|e| e.to_string())?;
    txn.commit().await.map_err(|e| e.to_string())?;
    Ok(messages.len())
}
