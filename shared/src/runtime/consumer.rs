//! The consumer loop every worker runs: connect, declare, consume, and for each delivery decide ack,
//! retry tier or `.dead` from the handler's outcome.
//!
//! Per delivery: decode → claim → handle → commit the outcome with its outbox rows → publish with
//! confirms → ack → forget the outbox rows. A delivery is acked only after its outcome is committed and
//! everything it caused is confirmed. Losing the broker or the database pauses work; the process stays
//! up, reconnects with backoff and reports not-ready meanwhile.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::Instrument;
use uuid::Uuid;

use crate::contract::envelope::OutboundMessage;
use crate::contract::errors::{ErrorKind, Failure};
use crate::contract::headers::{
    ATTEMPT_HEADER, DEFERRED_HEADER, ERROR_HEADER, ERROR_KIND_HEADER, HeaderValue, REPLAY_HEADER,
    attempt_of,
};
use crate::contract::queue::Names;
use crate::runtime::database::Database;
use crate::runtime::handler::{Background, Completion, HandleContext, Handler, NO_EVENT, Outcome};
use crate::runtime::health::{self, Health};
use crate::runtime::publisher::{self, Publisher};
use crate::runtime::settings::RuntimeSettings;
use crate::runtime::topology::QueueTopology;
use crate::store::committer::{Finish, Store, StoreSettings};
use crate::store::database::{self as db};
use crate::store::dead_letters::DeadLetterRow;
use crate::store::error::{DbError, StoreError};
use crate::store::outbox;
use crate::store::work_items::{Claim, ClaimRequest, WorkUpdate};
use crate::telemetry;

/// The largest body a work message may have; larger ones are dead-lettered unread.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database cannot be used and waiting will not help (bad URL, failed migration).
    #[error(transparent)]
    Database(#[from] DbError),
    /// The metrics endpoint could not listen.
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] std::io::Error),
}

/// A stop signal every part of a worker can wait on.
#[derive(Clone)]
pub struct StopSignal(watch::Receiver<bool>);

type Stop = StopSignal;

impl StopSignal {
    /// Whether the worker is stopping.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the worker is stopping.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps `d` unless stopped first; says whether the sleep ran its course.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.wait() => false,
        }
    }
}

/// Runs the handler `build` makes once the database is reachable (so a handler can hold the database
/// and start what it needs at start-up), on its queue until `shutdown` resolves, then drains in-flight
/// work and returns.
pub async fn run<H: Handler>(
    build: impl FnOnce(&Database) -> H,
    settings: RuntimeSettings,
    service: &'static str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new deliveries, finishing in-flight work");
        let _ = stop_tx.send(true);
    });
    let mut stop = StopSignal(stop_rx);
    let health = Health::default();
    if let Some(addr) = settings.metrics_addr {
        let mut s = stop.clone();
        let bound = health::serve(addr, health.clone(), async move { s.wait().await }).await?;
        tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
    }

    let Some(pool) = connect_database(&settings, &health, &mut stop).await? else {
        return Ok(());
    };
    let db = Database::new(pool.clone(), health.clone());
    let handler = build(&db);
    let queue = handler.queue();
    let store = Store::start(
        pool.clone(),
        queue,
        StoreSettings {
            max_batch: settings.group_commit_max,
            parallel: 4.min(settings.db_pool_size.max(1)),
            claim_lease: settings.claim_lease,
        },
    );
    let topology = QueueTopology {
        names: Names::new(&settings.namespace),
        queue: queue.to_string(),
        tiers: settings.retry.delays().to_vec(),
        delivery_limit: settings.delivery_limit,
    };
    let publisher = Publisher::new();
    let routes = Routes {
        queue,
        span_name: format!("{queue} process"),
        events_exchange: topology.names.events_exchange(),
        dead_queue: topology.names.dead_queue(queue),
        defer_queue: topology.names.tier_queue(queue, settings.retry.shortest()),
    };
    let worker = Arc::new(Worker {
        routes,
        handler,
        settings,
        store,
        publisher: publisher.clone(),
        topology,
        health: health.clone(),
        db,
        service,
    });
    let housekeeping = tokio::spawn(housekeeping_loop(worker.clone(), stop.clone()));
    let background = {
        let worker = worker.clone();
        let services = Background {
            db: worker.db.clone(),
            publisher: publisher.clone(),
            names: worker.topology.names.clone(),
            stop: stop.clone(),
        };
        tokio::spawn(async move { worker.handler.background(services).await })
    };
    let relay = tokio::spawn(relay_loop(worker.clone(), stop.clone()));
    let watchdog = tokio::spawn(database_watchdog(
        pool.clone(),
        health.clone(),
        stop.clone(),
    ));

    worker.clone().supervise(stop.clone()).await;

    // Whatever the outbox still holds goes out before the process leaves.
    let _ = watchdog.await;
    // Background work saw the same stop; give it the grace period to wind down.
    if tokio::time::timeout(worker.settings.shutdown_grace, background)
        .await
        .is_err()
    {
        tracing::warn!("background work did not stop within the grace period");
    }
    relay.abort();
    housekeeping.abort();
    match outbox::relay(&pool, &publisher, Duration::ZERO, 10_000).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(published = n, "flushed the outbox"),
        Err(e) => {
            tracing::warn!(error = %e, "outbox left for the relay of another replica or restart")
        }
    }
    publisher.detach();
    tracing::info!("stopped");
    Ok(())
}

async fn connect_database(
    settings: &RuntimeSettings,
    health: &Health,
    stop: &mut Stop,
) -> Result<Option<deadpool_postgres::Pool>, RunError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match db::connect(&settings.database_url, settings.db_pool_size).await {
            Ok(pool) => {
                health.set_database(true);
                return Ok(Some(pool));
            }
            Err(e) if e.is_transient() => {
                health.set_database(false);
                tracing::warn!(error = %e, retry_in = ?delay, "database unavailable; retrying");
                if !stop.sleep(delay).await {
                    return Ok(None);
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn database_watchdog(pool: deadpool_postgres::Pool, health: Health, mut stop: Stop) {
    while stop.sleep(Duration::from_secs(2)).await {
        let ok = match pool.get().await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        };
        health.set_database(ok);
    }
}

async fn relay_loop<H: Handler>(worker: Arc<Worker<H>>, mut stop: Stop) {
    while stop.sleep(worker.settings.outbox_relay_interval).await {
        if !worker.publisher.is_connected() {
            continue;
        }
        match outbox::relay(
            worker.store.pool(),
            &worker.publisher,
            worker.settings.outbox_relay_after,
            500,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("pasarela_outbox_relayed_total").increment(n as u64);
                tracing::info!(published = n, "relayed outbox rows left behind");
            }
            Err(e) => tracing::debug!(error = %e, "outbox relay pass failed"),
        }
    }
}

async fn housekeeping_loop<H: Handler>(worker: Arc<Worker<H>>, mut stop: Stop) {
    let Some(every) = worker.handler.housekeeping_interval() else {
        return;
    };
    while stop.sleep(every).await {
        worker.handler.housekeep().await;
    }
}

/// A delivery whose body is shared bytes: a handler may keep a part of it (a document) without a
/// copy. Everything else is the delivery's.
struct Inbound {
    delivery: Delivery,
    body: bytes::Bytes,
}

impl From<Delivery> for Inbound {
    fn from(mut delivery: Delivery) -> Self {
        let body = bytes::Bytes::from(std::mem::take(&mut delivery.data));
        Self { delivery, body }
    }
}

impl std::ops::Deref for Inbound {
    type Target = Delivery;

    fn deref(&self) -> &Delivery {
        &self.delivery
    }
}

/// Names every delivery uses, computed once at start instead of per message.
struct Routes {
    queue: &'static str,
    span_name: String,
    events_exchange: String,
    dead_queue: String,
    /// The shortest retry tier, where a copy waits while another holder finishes the message.
    defer_queue: String,
}

struct Worker<H: Handler> {
    routes: Routes,
    handler: H,
    settings: RuntimeSettings,
    store: Store,
    publisher: Publisher,
    topology: QueueTopology,
    health: Health,
    db: Database,
    service: &'static str,
}

enum SessionEnd {
    Stopped,
    Lost,
}

impl<H: Handler> Worker<H> {
    /// Keeps a broker session up until stopped, reconnecting with backoff.
    async fn supervise(self: Arc<Self>, mut stop: Stop) {
        let mut delay = Duration::from_millis(200);
        while !stop.is_set() {
            match self.session(&mut stop).await {
                Ok(SessionEnd::Stopped) => return,
                Ok(SessionEnd::Lost) => {
                    tracing::warn!("lost the broker; reconnecting");
                    delay = Duration::from_millis(200);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "broker unavailable; retrying");
                }
            }
            self.publisher.detach();
            self.health.set_broker(false);
            if !stop.sleep(delay).await {
                return;
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn session(self: &Arc<Self>, stop: &mut Stop) -> Result<SessionEnd, lapin::Error> {
        let conn = publisher::connect(&self.settings.amqp_url, self.service).await?;
        let setup = conn.create_channel().await?;
        self.topology.declare(&setup).await?;
        let _ = setup.close(200, "topology declared".into()).await;
        self.publisher.attach(&conn).await?;
        let channel = conn.create_channel().await?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let work_queue = self.topology.names.work_queue(&self.topology.queue);
        let mut consumer = channel
            .basic_consume(
                work_queue.as_str().into(),
                format!("{}-{}", self.service, Uuid::now_v7()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.health.set_broker(true);
        tracing::info!(queue = %work_queue, prefetch = self.settings.prefetch,
            concurrency = self.settings.concurrency, "consuming");

        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let end = loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = stop.wait() => break SessionEnd::Stopped,
            };
            let next = tokio::select! {
                d = consumer.next() => d,
                _ = stop.wait() => break SessionEnd::Stopped,
            };
            match next {
                Some(Ok(delivery)) => {
                    let this = self.clone();
                    tokio::spawn(async move { this.process(delivery, permit).await });
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer failed");
                    break SessionEnd::Lost;
                }
                None => break SessionEnd::Lost,
            }
        };
        if let SessionEnd::Stopped = end {
            // Stop the broker pushing more; prefetched deliveries not yet started go back to the
            // queue when the channel closes.
            let _ = channel
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await;
            let all = self.settings.concurrency as u32;
            match tokio::time::timeout(self.settings.shutdown_grace, slots.acquire_many(all)).await
            {
                Ok(_) => tracing::info!("in-flight work finished"),
                Err(_) => tracing::warn!(
                    grace = ?self.settings.shutdown_grace,
                    "in-flight work did not finish within the grace period; it will be redelivered"
                ),
            }
            let _ = channel.close(200, "shutdown".into()).await;
            let _ = conn.close(200, "shutdown".into()).await;
        }
        Ok(end)
    }

    async fn process(self: Arc<Self>, delivery: Delivery, _permit: OwnedSemaphorePermit) {
        let delivery = Inbound::from(delivery);
        let headers = publisher::headers_from_table(delivery.properties.headers().as_ref());
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_string());
        let span = tracing::info_span!(
            "process",
            otel.name = %self.routes.span_name,
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.destination.name = self.routes.queue,
            messaging.message.id = message_id.as_deref().unwrap_or(""),
            attempt = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        telemetry::adopt_parent(&span, &headers);
        let started = Instant::now();
        let outcome = self
            .process_inner(&delivery, headers, message_id)
            .instrument(span.clone())
            .await;
        span.record("outcome", outcome);
        metrics::counter!("pasarela_messages_total", "queue" => self.routes.queue, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("pasarela_message_seconds", "queue" => self.routes.queue)
            .record(started.elapsed().as_secs_f64());
    }

    async fn process_inner(
        &self,
        delivery: &Inbound,
        headers: BTreeMap<String, HeaderValue>,
        raw_message_id: Option<String>,
    ) -> &'static str {
        let message_id = match raw_message_id.as_deref().map(Uuid::parse_str) {
            Some(Ok(id)) => id,
            None => {
                let reason =
                    "missing message_id: every work message needs a message_id property (a UUID)";
                return self
                    .dead_letter_input(delivery, &headers, None, reason)
                    .await;
            }
            Some(Err(_)) => {
                let reason = "message_id is not a UUID";
                return self
                    .dead_letter_input(delivery, &headers, raw_message_id, reason)
                    .await;
            }
        };
        let limit = self.handler.max_message_bytes();
        if delivery.body.len() > limit {
            let reason = format!(
                "body of {} bytes is over the limit of {limit}",
                delivery.body.len()
            );
            return self
                .dead_letter_input(delivery, &headers, raw_message_id, &reason)
                .await;
        }
        let message: H::Message = match self.handler.decode(&delivery.body) {
            Ok(m) => m,
            Err(e) => {
                let reason = format!("invalid {} message: {e}", self.routes.queue);
                return self
                    .dead_letter_input(delivery, &headers, raw_message_id, &reason)
                    .await;
            }
        };

        let request = ClaimRequest {
            message_id,
            header_attempt: attempt_of(&headers),
            replay: headers.contains_key(REPLAY_HEADER),
        };
        let store = self.store.clone();
        let claim = match self.with_db_retry("claim", || store.claim(request)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "could not claim; returning the message to the queue");
                self.requeue(delivery).await;
                return "requeued";
            }
        };
        match claim {
            Claim::Take {
                attempt,
                possible_duplicate,
            } => {
                tracing::Span::current().record("attempt", attempt);
                if possible_duplicate {
                    metrics::counter!("pasarela_possible_duplicates_total", "queue" => self.routes.queue).increment(1);
                    tracing::warn!(
                        "taking over a message whose previous holder vanished mid-attempt: the vendor may be called twice"
                    );
                }
                let ctx = HandleContext {
                    message_id,
                    attempt,
                    possible_duplicate,
                };
                self.attempt(delivery, &headers, &message, ctx).await
            }
            Claim::Done {
                routing_key,
                result,
            } => {
                let mut out = Vec::with_capacity(2);
                if routing_key != NO_EVENT {
                    out.push(self.event(&routing_key, &result));
                }
                out.extend(self.reply(delivery, &result));
                // A copy may still wait in the outbox (a crash before its confirm): send it too.
                let flushed = outbox::flush(
                    self.store.pool(),
                    &self.publisher,
                    self.routes.queue,
                    message_id,
                    self.settings.outbox_relay_after,
                )
                .await;
                match (flushed, self.publisher.publish_all(&out).await) {
                    (Ok(_), Ok(())) => {
                        self.ack(delivery).await;
                        "duplicate"
                    }
                    (Err(e), _) => {
                        tracing::warn!(error = %e, "could not flush the outbox for a duplicate");
                        self.requeue(delivery).await;
                        "requeued"
                    }
                    (_, Err(e)) => {
                        tracing::warn!(error = %e, "could not re-publish the stored result");
                        self.requeue(delivery).await;
                        "requeued"
                    }
                }
            }
            Claim::Stale => {
                match outbox::flush(
                    self.store.pool(),
                    &self.publisher,
                    self.routes.queue,
                    message_id,
                    self.settings.outbox_relay_after,
                )
                .await
                {
                    Ok(_) => {
                        self.ack(delivery).await;
                        "stale"
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not flush the outbox for a stale copy");
                        self.requeue(delivery).await;
                        "requeued"
                    }
                }
            }
            Claim::Busy => {
                // Another holder is on it: set this copy aside in the shortest tier and look again
                // later, instead of calling the vendor a second time.
                let mut copy = self.copy_of(delivery, &headers);
                copy.routing_key = self.routes.defer_queue.clone();
                let deferred = match headers.get(DEFERRED_HEADER) {
                    Some(HeaderValue::Int(n)) => n + 1,
                    _ => 1,
                };
                copy.headers
                    .insert(DEFERRED_HEADER.into(), HeaderValue::Int(deferred));
                match self.publisher.publish(&copy).await {
                    Ok(()) => {
                        self.ack(delivery).await;
                        "deferred"
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not defer a busy message");
                        self.requeue(delivery).await;
                        "requeued"
                    }
                }
            }
        }
    }

    /// One attempt at a claimed message, from the handler's outcome to the ack.
    async fn attempt(
        &self,
        delivery: &Inbound,
        headers: &BTreeMap<String, HeaderValue>,
        message: &H::Message,
        ctx: HandleContext,
    ) -> &'static str {
        let started = Instant::now();
        let outcome = AssertUnwindSafe(self.handler.handle(message, &ctx))
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

        let (finish, label) = match outcome {
            Outcome::Complete(c) => (self.complete(delivery, headers, &ctx, c, None), "completed"),
            Outcome::Retry {
                failure,
                retry_after,
            } if self.handler.retries_in_tiers() && self.settings.retry.may_retry(ctx.attempt) => {
                let tier = self.settings.retry.tier_after(ctx.attempt, retry_after);
                let mut copy = self.copy_of(delivery, headers);
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
                    "tier" => crate::contract::retry::format_duration(tier.delay))
                .increment(1);
                let finish = Finish {
                    message_id: Some(ctx.message_id),
                    work: Some(WorkUpdate::RetryScheduled {
                        attempts: ctx.attempt,
                        next_attempt: ctx.attempt + 1,
                        error: failure,
                    }),
                    outbox: vec![copy],
                    ..Default::default()
                };
                (finish, "retry")
            }
            Outcome::Retry { failure, .. } => {
                tracing::warn!(error = %failure, attempts = ctx.attempt, "retries exhausted; dead-lettering");
                let completion = self.handler.exhausted(message, &ctx, &failure);
                let reason = format!("exhausted after {} attempts: {failure}", ctx.attempt);
                let mut finish = self.complete(delivery, headers, &ctx, completion, Some(&reason));
                finish.dead_letter = Some(DeadLetterRow {
                    message_id: Some(ctx.message_id.to_string()),
                    kind: ErrorKind::Exhausted,
                    reason,
                    attempts: Some(ctx.attempt),
                    headers: serde_json::to_value(headers).unwrap_or_default(),
                    body: self.handler.stored_body(&delivery.body),
                });
                metrics::counter!("pasarela_dead_letters_total", "queue" => self.routes.queue, "kind" => "exhausted").increment(1);
                (finish, "dead")
            }
        };
        let ids: Vec<Uuid> = finish.outbox.iter().map(|m| m.id).collect();
        let messages = finish.outbox.clone();
        let store = self.store.clone();
        let finish = Arc::new(finish);
        // The outcome must land: the vendor has been called. Hold the delivery until it does.
        let committed = self
            .with_db_retry("record outcome", || store.finish(finish.clone()))
            .await;
        if let Err(e) = committed {
            tracing::error!(error = %e, "could not record the outcome; the message will be redelivered");
            self.requeue(delivery).await;
            return "requeued";
        }
        self.publish_then_ack(delivery, &messages, ids).await;
        label
    }

    /// Builds the writes of a finished message: its state, domain rows, event, reply, and for a
    /// dead-lettered one the copy for `.dead`.
    fn complete(
        &self,
        delivery: &Inbound,
        headers: &BTreeMap<String, HeaderValue>,
        ctx: &HandleContext,
        c: Completion,
        dead_reason: Option<&str>,
    ) -> Finish {
        let mut outbox = Vec::with_capacity(2);
        if c.routing_key != NO_EVENT {
            outbox.push(self.event(c.routing_key, &c.event));
        }
        outbox.extend(self.reply(delivery, &c.event));
        if let Some(reason) = dead_reason {
            outbox.push(self.dead_copy(delivery, headers, reason, ErrorKind::Exhausted));
        }
        Finish {
            message_id: Some(ctx.message_id),
            work: Some(WorkUpdate::Done {
                status: c.status,
                attempts: ctx.attempt,
                routing_key: c.routing_key.to_string(),
                result: c.event,
                error: c.error,
            }),
            writes: c.writes,
            outbox,
            dead_letter: None,
        }
    }

    /// Dead-letters a message that cannot be read: no claim, no handler, a reason in the header.
    async fn dead_letter_input(
        &self,
        delivery: &Inbound,
        headers: &BTreeMap<String, HeaderValue>,
        message_id: Option<String>,
        reason: &str,
    ) -> &'static str {
        tracing::warn!(%reason, "dead-lettering unreadable message");
        metrics::counter!("pasarela_dead_letters_total", "queue" => self.routes.queue, "kind" => "invalid").increment(1);
        let copy = self.dead_copy(delivery, headers, reason, ErrorKind::Internal);
        let ids = vec![copy.id];
        let messages = vec![copy.clone()];
        let finish = Finish {
            message_id: None,
            work: None,
            writes: Vec::new(),
            outbox: vec![copy],
            dead_letter: Some(DeadLetterRow {
                message_id,
                kind: ErrorKind::Internal,
                reason: reason.to_string(),
                attempts: None,
                headers: serde_json::to_value(headers).unwrap_or_default(),
                body: self.handler.stored_body(&delivery.body),
            }),
        };
        let store = self.store.clone();
        let finish = Arc::new(finish);
        let res = self
            .with_db_retry("record dead letter", || store.finish(finish.clone()))
            .await;
        if res.is_err() {
            self.requeue(delivery).await;
            return "requeued";
        }
        self.publish_then_ack(delivery, &messages, ids).await;
        "dead"
    }

    async fn publish_then_ack(
        &self,
        delivery: &Inbound,
        messages: &[OutboundMessage],
        ids: Vec<Uuid>,
    ) {
        match self.publisher.publish_all(messages).await {
            Ok(()) => {
                self.ack(delivery).await;
                self.store.forget(ids).await;
            }
            Err(e) => {
                // Committed but not confirmed: the outbox keeps the messages. Requeue so the
                // redelivery (or the relay) publishes them before anything is acked.
                tracing::warn!(error = %e, "publish not confirmed; the outbox keeps the messages");
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.requeue(delivery).await;
            }
        }
    }

    fn event(&self, routing_key: &str, body: &serde_json::Value) -> OutboundMessage {
        let mut m = OutboundMessage::json(&self.routes.events_exchange, routing_key, body);
        m.message_id = Some(m.id.to_string());
        telemetry::inject_current(&mut m.headers);
        m
    }

    fn reply(&self, delivery: &Inbound, body: &serde_json::Value) -> Option<OutboundMessage> {
        let reply_to = delivery.properties.reply_to().as_ref()?;
        let mut m = OutboundMessage::json("", reply_to.as_str(), body);
        m.correlation_id = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str().to_string());
        telemetry::inject_current(&mut m.headers);
        Some(m)
    }

    /// The delivery as it came, ready to be published elsewhere.
    fn copy_of(
        &self,
        delivery: &Inbound,
        headers: &BTreeMap<String, HeaderValue>,
    ) -> OutboundMessage {
        let p = &delivery.properties;
        OutboundMessage {
            id: Uuid::now_v7(),
            exchange: String::new(),
            routing_key: String::new(),
            message_id: p.message_id().as_ref().map(|s| s.as_str().to_string()),
            correlation_id: p.correlation_id().as_ref().map(|s| s.as_str().to_string()),
            content_type: p.content_type().as_ref().map(|s| s.as_str().to_string()),
            expiration_ms: None,
            headers: headers.clone(),
            body: delivery.body.to_vec(),
        }
    }

    fn dead_copy(
        &self,
        delivery: &Inbound,
        headers: &BTreeMap<String, HeaderValue>,
        reason: &str,
        kind: ErrorKind,
    ) -> OutboundMessage {
        let mut copy = self.copy_of(delivery, headers);
        // The copy passes through the outbox table: it carries only what a table may keep.
        copy.body = self.handler.stored_body(&delivery.body);
        copy.routing_key = self.routes.dead_queue.clone();
        copy.headers
            .insert(ERROR_HEADER.into(), HeaderValue::Text(reason.to_string()));
        copy.headers.insert(
            ERROR_KIND_HEADER.into(),
            HeaderValue::Text(kind.as_str().into()),
        );
        // reply_to is dropped on purpose: a replay must not answer a caller that gave up long ago.
        copy
    }

    async fn ack(&self, delivery: &Inbound) {
        if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
            // The channel is gone; the broker redelivers and the claim answers from the stored state.
            tracing::debug!(error = %e, "ack failed");
        }
    }

    async fn requeue(&self, delivery: &Inbound) {
        let opts = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        if let Err(e) = delivery.acker.nack(opts).await {
            tracing::debug!(error = %e, "nack failed");
        }
    }

    /// Runs a store operation, waiting out a database outage.
    async fn with_db_retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.db.retrying(what, op).await
    }
}

/// Resolves on SIGTERM or Ctrl-C: what every worker binary passes as its shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
