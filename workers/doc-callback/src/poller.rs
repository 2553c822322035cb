//! Status polls for documents whose webhook may never come: documents due for a poll (`next_poll_at`)
//! get a `doc.callback` with source `poll`. A leased job loop of the runtime: replicas share the due
//! documents through `SKIP LOCKED`, and a poll's due time is pushed out when it is taken, so a lost
//! publish is only a later poll.

use std::sync::Arc;
use std::time::Duration;

use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::headers::HeaderValue;
use pasarela_shared::contract::messages::DocCallback;
use pasarela_shared::contract::queue::Queue;
use pasarela_shared::runtime::handler::Background;
use pasarela_shared::runtime::jobs::Jobs;
use pasarela_shared::store::documents::{self, DuePoll};
use pasarela_shared::store::error::DbError;

/// How often due documents are looked for.
const TICK: Duration = Duration::from_secs(1);
/// Documents polled per turn at most.
const BATCH: i64 = 200;
/// How far a taken poll's due time is pushed out: the time its message has to be handled in.
const LEASE: Duration = Duration::from_secs(300);

/// Publishes due status polls.
pub struct Poller {
    services: Background,
    tick: Duration,
}

impl Poller {
    /// A poller publishing through `services`; `first` is the shortest poll delay (the tick is never
    /// longer than it).
    pub fn new(services: Background, first: Option<Duration>) -> Self {
        Self {
            services,
            tick: first.map_or(TICK, |d| d.min(TICK)),
        }
    }
}

impl Jobs for Poller {
    /// One turn's due documents, published together.
    type Job = Vec<DuePoll>;
    type Error = DbError;

    fn name(&self) -> &'static str {
        "polls"
    }

    fn every(&self) -> Duration {
        self.tick
    }

    async fn take(&self, _free: usize) -> Result<Vec<Vec<DuePoll>>, DbError> {
        // Without a broker a taken poll would only wait out its lease.
        if !self.services.publisher.is_connected() {
            return Ok(Vec::new());
        }
        let due = documents::lease_due_polls(self.services.db.pool(), BATCH, LEASE).await?;
        Ok(if due.is_empty() {
            Vec::new()
        } else {
            vec![due]
        })
    }

    async fn run(self: Arc<Self>, due: Vec<DuePoll>) {
        let exchange = self.services.names.work_exchange();
        let messages: Vec<OutboundMessage> = due
            .into_iter()
            .map(|poll| {
                let body = DocCallback {
                    document_id: poll.document_id,
                    vendor_document_id: poll.vendor_document_id,
                    status: None,
                    source: "poll".into(),
                };
                let mut message = OutboundMessage::json(
                    exchange.clone(),
                    Queue::DocCallback.name(),
                    &serde_json::to_value(body).expect("a callback serialises"),
                );
                // The poll continues the trace of the message that brought the document.
                if let Some(traceparent) = poll.trace_context {
                    message
                        .headers
                        .insert("traceparent".into(), HeaderValue::Text(traceparent));
                }
                message
            })
            .collect();
        match self.services.publisher.publish_all(&messages).await {
            Ok(()) => {
                metrics::counter!("pasarela_document_polls_total").increment(messages.len() as u64);
                tracing::debug!(polls = messages.len(), "published status polls");
            }
            Err(e) => tracing::warn!(error = %e, polls = messages.len(),
                "status polls not published; they come due again when their lease ends"),
        }
    }
}
