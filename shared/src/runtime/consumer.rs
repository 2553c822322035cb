//! A worker's life: wait for the database, build the handler, start the companions (broker session,
//! outbox relay, database watchdog, background work, housekeeping), and on stop wind them down in order.
//!
//! What happens to each delivery is [`crate::runtime::delivery`]'s; keeping the broker session up is
//! [`crate::runtime::session`]'s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::contract::queue::Names;
use crate::runtime::catalogue;
use crate::runtime::database::{self, Database};
use crate::runtime::handler::{Background, Handler};
use crate::runtime::health::{self, Health};
use crate::runtime::jobs::{self, Jobs};
use crate::runtime::publisher::Publisher;
use crate::runtime::session::Leaving;
use crate::runtime::settings::RuntimeSettings;
use crate::runtime::stop::{self, StopSignal};
use crate::runtime::topology::QueueTopology;
use crate::runtime::{relay, retention, statistics};
use crate::store::committer::{Store, StoreSettings};
use crate::store::error::DbError;

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

/// Names every delivery uses, computed once at start instead of per message.
pub(crate) struct Routes {
    pub(crate) queue: &'static str,
    pub(crate) span_name: String,
    /// The exchange producers publish this queue's work to.
    pub(crate) work_exchange: String,
    pub(crate) events_exchange: String,
    pub(crate) dead_queue: String,
    /// The shortest retry tier, where a copy waits while another holder finishes the message.
    pub(crate) defer_queue: String,
}

/// One consuming worker: its handler and everything the runtime holds for it.
pub(crate) struct Consumer<H: Handler> {
    pub(crate) routes: Routes,
    pub(crate) handler: H,
    pub(crate) settings: RuntimeSettings,
    pub(crate) store: Store,
    pub(crate) publisher: Publisher,
    pub(crate) topology: QueueTopology,
    pub(crate) health: Health,
    pub(crate) db: Database,
    pub(crate) service: &'static str,
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
    let mut stop = stop::stop_on(shutdown);
    let health = Health::default();
    if let Some(addr) = settings.metrics_addr {
        let mut s = stop.clone();
        let bound = health::serve(addr, health.clone(), async move { s.wait().await }).await?;
        tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
        catalogue::build_info(service);
    }
    let url = settings.database_url.clone();
    let Some(pool) = database::wait_for(
        &url,
        settings.migrate,
        settings.db_pool_size,
        &health,
        &mut stop,
    )
    .await?
    else {
        return Ok(());
    };
    let db = Database::new(pool, health.clone());
    let handler = build(&db);
    let worker = Arc::new(Consumer::new(handler, settings, service, db, health));
    let companions = Companions::start(&worker, &stop);
    let leaving = worker.clone().supervise(stop).await;
    companions.wind_down(&worker, leaving).await;
    tracing::info!("stopped");
    Ok(())
}

impl<H: Handler> Consumer<H> {
    fn new(
        handler: H,
        settings: RuntimeSettings,
        service: &'static str,
        db: Database,
        health: Health,
    ) -> Self {
        let queue = handler.queue();
        let store = Store::start(
            db.pool().clone(),
            queue,
            StoreSettings {
                max_batch: settings.group_commit_max,
                linger: settings.group_commit_linger,
                guard: handler.guard(),
                parallel: 4.min(settings.db_pool_size.max(1)),
                claim_lease: settings.claim_lease,
            },
        );
        let names = Names::new(&settings.namespace);
        let routes = Routes {
            queue,
            span_name: format!("{queue} process"),
            work_exchange: names.work_exchange(),
            events_exchange: names.events_exchange(),
            dead_queue: names.dead_queue(queue),
            defer_queue: names.tier_queue(queue, settings.retry.shortest()),
        };
        let topology = QueueTopology {
            names,
            queue: queue.to_string(),
            tiers: settings.retry.delays().to_vec(),
            delivery_limit: settings.delivery_limit,
            whole: settings.declare_whole_topology,
        };
        Self {
            routes,
            handler,
            settings,
            store,
            publisher: Publisher::new(),
            topology,
            health,
            db,
            service,
        }
    }
}

impl<H: Handler> Consumer<H> {
    /// The outbox rows this worker publishes: its queue's and its handler's others.
    fn outbox_queues(&self) -> Vec<String> {
        std::iter::once(self.routes.queue)
            .chain(self.handler.outbox_queues().iter().copied())
            .map(String::from)
            .collect()
    }
}

/// The tasks that run beside the broker session.
struct Companions {
    watchdog: JoinHandle<()>,
    background: JoinHandle<()>,
    relay: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
    retention: JoinHandle<()>,
    statistics: JoinHandle<()>,
}

impl Companions {
    fn start<H: Handler>(worker: &Arc<Consumer<H>>, stop: &StopSignal) -> Self {
        let services = Background {
            db: worker.db.clone(),
            publisher: worker.publisher.clone(),
            names: worker.topology.names.clone(),
            stop: stop.clone(),
        };
        let w = worker.clone();
        Self {
            watchdog: tokio::spawn(database::watch(
                worker.db.pool().clone(),
                worker.health.clone(),
                stop.clone(),
            )),
            background: tokio::spawn(async move { w.handler.background(services).await }),
            relay: tokio::spawn(relay::run(
                worker.db.pool().clone(),
                worker.publisher.clone(),
                worker.settings.outbox_relay_interval,
                worker.settings.outbox_relay_after,
                worker.outbox_queues(),
                stop.clone(),
            )),
            housekeeping: tokio::spawn(housekeeping(worker.clone(), stop.clone())),
            retention: tokio::spawn(retention::run(
                worker.db.pool().clone(),
                worker.routes.queue,
                worker.settings.work_retention,
                worker.settings.work_prune_interval,
                stop.clone(),
            )),
            statistics: tokio::spawn(statistics::run(worker.db.pool().clone(), stop.clone())),
        }
    }

    /// Within what is left of the grace period: lets background work finish, commits the last
    /// outbox clean-ups, sends what the outbox still holds through the still-open connection, and
    /// closes it. What does not fit is left to the relay of another replica or of the restart.
    async fn wind_down<H: Handler>(self, worker: &Consumer<H>, leaving: Leaving) {
        let _ = self.watchdog.await;
        // Background work saw the same stop when the session did.
        if leaving.within(self.background).await.is_none() {
            tracing::warn!("background work did not stop within the grace period");
        }
        self.relay.abort();
        self.housekeeping.abort();
        self.retention.abort();
        self.statistics.abort();
        if leaving.within(worker.store.settle()).await.is_none() {
            tracing::warn!("the last outbox clean-ups did not commit within the grace period");
        }
        let queues = worker.outbox_queues();
        let flushed = leaving.within(relay::flush_all(
            worker.db.pool(),
            &worker.publisher,
            &queues,
        ));
        if flushed.await.is_none() {
            tracing::warn!(
                "the outbox was not flushed within the grace period; the relay will send it"
            );
        }
        worker.publisher.detach();
        if let Some(connection) = leaving.connection {
            // A broker that stopped answering must not hold the process past its grace period.
            let close = connection.close(200, "shutdown".into());
            let left = leaving
                .deadline
                .saturating_duration_since(std::time::Instant::now());
            if tokio::time::timeout(left.max(LAST_CLOSE), close)
                .await
                .is_err()
            {
                tracing::warn!("the broker did not answer the close; leaving anyway");
            }
        }
    }
}

/// The least time the way out gives the broker to answer the connection's close.
const LAST_CLOSE: Duration = Duration::from_millis(200);

/// The handler's housekeeping as a job loop: one job a turn, every `housekeeping_interval`.
struct Housekeeping<H: Handler> {
    consumer: Arc<Consumer<H>>,
    every: Duration,
}

impl<H: Handler> Jobs for Housekeeping<H> {
    type Job = ();
    type Error = std::convert::Infallible;

    fn name(&self) -> &'static str {
        "housekeeping"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn take(&self, _free: usize) -> Result<Vec<()>, Self::Error> {
        Ok(vec![()])
    }

    async fn run(self: Arc<Self>, _job: ()) {
        self.consumer.handler.housekeep().await;
    }
}

async fn housekeeping<H: Handler>(consumer: Arc<Consumer<H>>, stop: StopSignal) {
    if let Some(every) = consumer.handler.housekeeping_interval() {
        jobs::run(Arc::new(Housekeeping { consumer, every }), stop).await;
    }
}
