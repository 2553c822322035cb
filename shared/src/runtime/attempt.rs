//! One attempt at a claimed message: run the handler, turn its outcome into what must be written
//! (a result, a retry copy, or a dead letter), commit it, publish, and only then ack.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::Instrument;
use uuid::Uuid;

use crate::contract::envelope::OutboundMessage;
use crate::contract::errors::{ErrorKind, Failure};
use crate::contract::headers::{ATTEMPT_HEADER, DEFERRED_HEADER, HeaderValue};
use crate::contract::retry::format_duration;
use crate::runtime::consumer::Consumer;
use crate::runtime::delivery::Inbound;
use crate::runtime::handler::{Completion, HandleContext, Handler, NO_EVENT, Outcome};
use crate::store::committer::Commit;
use crate::store::error::StoreError;
use crate::store::work_items::Settlement;

impl<H: Handler> Consumer<H> {
    /// One attempt at a claimed message, from the handler's outcome to the ack.
    pub(crate) async fn attempt(
        &self,
        delivery: &Inbound,
        message: &H::Message,
        ctx: HandleContext,
    ) -> &'static str {
        tracing::Span::current().record("attempt", ctx.attempt);
        if ctx.possible_duplicate {
            metrics::counter!("pasarela_possible_duplicates_total", "queue" => self.routes.queue)
                .increment(1);
            tracing::warn!(
                "taking over a message whose previous holder vanished mid-attempt: the vendor may be called twice"
            );
        }
        let outcome = tokio::select! {
            outcome = self.handle(message, &ctx) => outcome,
            never = self.hold(ctx.message_id) => match never {},
        };
        let (finish, label) = match outcome {
            Outcome::Complete(c) => (self.complete(delivery, &ctx, c, None), "completed"),
            Outcome::Retry {
                failure,
                retry_after,
            } if self.handler.retries_in_tiers() && self.settings.retry.may_retry(ctx.attempt) => {
                (self.retry(delivery, &ctx, failure, retry_after), "retry")
            }
            Outcome::Retry { failure, .. } => {
                (self.give_up(delivery, message, &ctx, &failure), "dead")
            }
        };
        self.record_then_ack(delivery, finish, label).await
    }

    /// Runs the handler; a panic is a failed attempt, not a dead worker.
    async fn handle(&self, message: &H::Message, ctx: &HandleContext) -> Outcome {
        let started = Instant::now();
        let outcome = AssertUnwindSafe(self.handler.handle(message, ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!("the handler panicked; treating the attempt as failed");
                Outcome::Retry {
                    failure: Failure::new(ErrorKind::Internal, "the handler panicked"),
                    retry_after: None,
                }
            });
        metrics::histogram!("pasarela_handler_seconds", "queue" => self.routes.queue)
            .record(started.elapsed().as_secs_f64());
        outcome
    }

    /// Keeps the claim while the handler runs: a call or a wait may outlast the lease, and a lapsed
    /// lease would let another holder call the vendor too.
    async fn hold(&self, message_id: Uuid) -> std::convert::Infallible {
        let every = self.store.lease() / 3;
        loop {
            tokio::time::sleep(every).await;
            match self.store.renew(message_id).await {
                Ok(true) => tracing::debug!("claim renewed"),
                Ok(false) => tracing::warn!("the claim was lost while the handler ran"),
                Err(e) => tracing::warn!(error = %e, "could not renew the claim"),
            }
        }
    }

    /// A message whose holders vanished mid-attempt as often as it may be attempted (see
    /// [`crate::store::work_items::Claim::Abandoned`]): its failure is recorded and it goes to `.dead`,
    /// without another call.
    pub(crate) async fn abandon(
        &self,
        delivery: &Inbound,
        message: &H::Message,
        message_id: Uuid,
        attempts: u32,
    ) -> &'static str {
        let ctx = HandleContext {
            message_id,
            attempt: attempts,
            possible_duplicate: true,
            admission: None,
        };
        let failure = Failure::new(
            ErrorKind::Internal,
            format!("abandoned: its holders vanished mid-attempt {attempts} times"),
        );
        let finish = self.give_up(delivery, message, &ctx, &failure);
        self.record_then_ack(delivery, finish, "dead").await
    }

    /// A retry: the copy for the tier the policy picks, and the work row's new state.
    fn retry(
        &self,
        delivery: &Inbound,
        ctx: &HandleContext,
        failure: Failure,
        retry_after: Option<Duration>,
    ) -> Commit {
        let tier = self.settings.retry.tier_after(ctx.attempt, retry_after);
        let mut copy = self.copy_of(delivery);
        copy.routing_key = self
            .topology
            .names
            .tier_queue(&self.topology.queue, tier.delay);
        copy.expiration_ms = Some(tier.expiration.as_millis() as u64);
        copy.headers.insert(
            ATTEMPT_HEADER.into(),
            HeaderValue::Int(i64::from(ctx.attempt + 1)),
        );
        copy.headers.remove(DEFERRED_HEADER);
        tracing::info!(error = %failure, tier = ?tier.delay, "attempt failed; retry scheduled");
        metrics::counter!("pasarela_retries_total", "queue" => self.routes.queue,
            "tier" => format_duration(tier.delay))
        .increment(1);
        Commit {
            message_id: Some(ctx.message_id),
            work: Some(Settlement::RetryScheduled {
                attempts: ctx.attempt,
                next_attempt: ctx.attempt + 1,
                tier: format_duration(tier.delay),
                wait: tier.expiration,
                error: failure,
            }),
            outbox: vec![copy],
            ..Default::default()
        }
    }

    /// Every attempt spent: the handler's exhausted result, and the message to `.dead`.
    fn give_up(
        &self,
        delivery: &Inbound,
        message: &H::Message,
        ctx: &HandleContext,
        failure: &Failure,
    ) -> Commit {
        tracing::warn!(error = %failure, attempts = ctx.attempt, "retries exhausted; dead-lettering");
        let completion = self.handler.exhausted(message, ctx, failure);
        let reason = format!("exhausted after {} attempts: {failure}", ctx.attempt);
        let mut finish = self.complete(delivery, ctx, completion, Some(&reason));
        finish.dead_letter = Some(self.dead_letter_row(
            delivery,
            Some(ctx.message_id.to_string()),
            ErrorKind::Exhausted,
            reason,
            Some(ctx.attempt),
        ));
        metrics::counter!("pasarela_dead_letters_total", "queue" => self.routes.queue, "kind" => "exhausted").increment(1);
        finish
    }

    /// Builds the writes of a finished message: its state, domain rows, event, reply, and for a
    /// dead-lettered one the copy for `.dead`.
    fn complete(
        &self,
        delivery: &Inbound,
        ctx: &HandleContext,
        c: Completion,
        dead_reason: Option<&str>,
    ) -> Commit {
        let mut outbox = Vec::with_capacity(2);
        if c.routing_key != NO_EVENT {
            outbox.push(self.event(c.routing_key, &c.event));
        }
        outbox.extend(self.reply(delivery, &c.event));
        // The event and the reply are the stored result's: the held delivery stands for them.
        let direct = outbox.len();
        if let Some(reason) = dead_reason {
            outbox.push(self.dead_copy(delivery, reason, ErrorKind::Exhausted));
        }
        Commit {
            message_id: Some(ctx.message_id),
            work: Some(Settlement::Done {
                status: c.status,
                attempts: ctx.attempt,
                routing_key: c.routing_key.to_string(),
                result: c.event,
                error: c.error,
            }),
            records: c.records,
            outbox,
            direct,
            dead_letter: None,
        }
    }

    /// Dead-letters a message that cannot be read: no claim, no handler, a reason in the header.
    pub(crate) async fn dead_letter_input(
        &self,
        delivery: &Inbound,
        message_id: Option<String>,
        reason: &str,
    ) -> &'static str {
        tracing::warn!(%reason, "dead-lettering unreadable message");
        metrics::counter!("pasarela_dead_letters_total", "queue" => self.routes.queue, "kind" => "invalid").increment(1);
        let copy = self.dead_copy(delivery, reason, ErrorKind::Internal);
        let row = self.dead_letter_row(
            delivery,
            message_id,
            ErrorKind::Internal,
            reason.into(),
            None,
        );
        let finish = Commit {
            outbox: vec![copy],
            dead_letter: Some(row),
            ..Default::default()
        };
        self.record_then_ack(delivery, finish, "dead").await
    }

    /// Commits `finish`, publishes what it holds, and acks; or requeues when either fails.
    async fn record_then_ack(
        &self,
        delivery: &Inbound,
        finish: Commit,
        label: &'static str,
    ) -> &'static str {
        let store = self.store.clone();
        let mut finish = Arc::new(finish);
        // The outcome must land: the vendor has been called. Hold the delivery until it does.
        let started = Instant::now();
        let mut committed = self
            .db
            .retrying("record outcome", || store.commit(finish.clone()))
            .instrument(crate::telemetry::database_span("commit", "work_items"))
            .await;
        self.step("commit", started);
        if let Err(e) = &committed
            && !e.is_transient()
            && let Some(fallback) = self.unrecordable(delivery, &finish, e)
        {
            // Trying again would fail again, and a redelivery would call the vendor again.
            tracing::error!(error = %e, "the outcome cannot be recorded; recording its failure and dead-lettering");
            finish = Arc::new(fallback);
            committed = self
                .db
                .retrying("record the unrecordable outcome", || {
                    store.commit(finish.clone())
                })
                .await;
        }
        if let Err(e) = committed {
            tracing::error!(error = %e, "could not record the outcome; the message will be redelivered");
            return self.requeue(delivery).await;
        }
        let publishing = self
            .publisher
            .publish_all(&finish.outbox)
            .instrument(crate::telemetry::publish_span(&finish.outbox));
        let started = Instant::now();
        let published = publishing.await;
        self.step("publish", started);
        match published {
            Ok(()) => {
                self.ack(delivery).await;
                let ids: Vec<Uuid> = finish.stored().iter().map(|m| m.id).collect();
                self.store.forget(ids).await;
                label
            }
            Err(e) => {
                // Committed but not confirmed: the outbox keeps the stored messages, the work row the
                // result. Requeue so the redelivery (or the relay) publishes them before any ack.
                tracing::warn!(error = %e, "publish not confirmed; the outbox keeps the messages");
                self.requeue_later(delivery).await;
                label
            }
        }
    }

    /// What is recorded when an outcome cannot be (the database refuses it for good): the work row
    /// settles with the failure, the event and reply still go out, the message goes to `.dead` with
    /// the reason, and the handler's domain rows are not written. `None` for a message with no work
    /// row, or one already dead-lettered.
    fn unrecordable(
        &self,
        delivery: &Inbound,
        finish: &Commit,
        error: &StoreError,
    ) -> Option<Commit> {
        let message_id = finish.message_id?;
        if finish.dead_letter.is_some() && finish.work.is_none() {
            return None;
        }
        let reason = format!(
            "the outcome could not be recorded ({error}); the vendor was called; domain rows were not written"
        );
        let failure = Failure::new(ErrorKind::Internal, reason.clone());
        let (work, mut outbox) = match &finish.work {
            Some(Settlement::Done {
                status,
                attempts,
                routing_key,
                result,
                ..
            }) => {
                let work = Settlement::Done {
                    status: status.clone(),
                    attempts: *attempts,
                    routing_key: routing_key.clone(),
                    result: result.clone(),
                    error: Some(failure),
                };
                // The event and reply still go out; a `.dead` copy is replaced by the one below.
                let outbox: Vec<OutboundMessage> = finish
                    .outbox
                    .iter()
                    .filter(|m| m.routing_key != self.routes.dead_queue)
                    .cloned()
                    .collect();
                (work, outbox)
            }
            // A retry that cannot be recorded is not sent: the message ends here.
            other => {
                let work = Settlement::Done {
                    status: "failed".into(),
                    attempts: other.as_ref().map_or(1, Settlement::attempts),
                    routing_key: NO_EVENT.into(),
                    result: serde_json::json!({ "status": "failed", "error": failure }),
                    error: Some(failure),
                };
                (work, Vec::new())
            }
        };
        let attempts = work.attempts();
        let direct = outbox.len();
        outbox.push(self.dead_copy(delivery, &reason, ErrorKind::Internal));
        metrics::counter!("pasarela_dead_letters_total", "queue" => self.routes.queue, "kind" => "unrecordable").increment(1);
        Some(Commit {
            message_id: Some(message_id),
            work: Some(work),
            records: Vec::new(),
            outbox,
            direct,
            dead_letter: Some(self.dead_letter_row(
                delivery,
                Some(message_id.to_string()),
                ErrorKind::Internal,
                reason,
                Some(attempts),
            )),
        })
    }
}
