//! The broker session: connect, declare the topology, hand the publisher its channel, consume, and
//! reconnect with backoff when the broker goes away. On stop: cancel the consumer, let in-flight work
//! finish within the grace period, close.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::runtime::backoff;
use crate::runtime::consumer::Consumer;
use crate::runtime::handler::Handler;
use crate::runtime::link::{CHECK_EVERY, Link, LinkError, Opened, SessionEnd, answered};
use crate::runtime::stop::StopSignal;

/// A session's open link, its consuming channel and the consumer.
struct Open {
    link: Opened,
    channel: Channel,
    consumer: lapin::Consumer,
}

impl<H: Handler> Consumer<H> {
    /// The broker link this consumer keeps: its queue's topology and its publisher.
    fn link(&self) -> Link {
        Link {
            url: self.settings.amqp_url.clone(),
            service: self.service,
            topology: self.topology.clone(),
            publisher: self.publisher.clone(),
            health: self.health.clone(),
            heartbeat: self.settings.amqp_heartbeat,
        }
    }

    /// Keeps a broker session up until stopped, reconnecting with backoff; returns what the way out
    /// needs.
    pub(crate) async fn supervise(self: Arc<Self>, mut stop: StopSignal) -> Leaving {
        let mut delays = backoff::reconnect();
        let mut leaving = None;
        while !stop.is_set() {
            match self.session(&mut stop, &mut leaving).await {
                Ok(SessionEnd::Stopped) => break,
                Ok(SessionEnd::Lost) => {
                    tracing::warn!("lost the broker; reconnecting");
                    delays = backoff::reconnect();
                }
                Err(e) => tracing::warn!(error = %e, "broker unavailable; retrying"),
            }
            self.link().down();
            let delay = delays.next().unwrap_or_default();
            if !stop.sleep(delay).await {
                break;
            }
        }
        leaving.unwrap_or_else(|| Leaving {
            connection: None,
            deadline: Instant::now() + self.settings.shutdown_grace,
        })
    }

    /// Connects, declares the whole topology, and starts consuming this worker's queue.
    async fn open(&self) -> Result<Open, LinkError> {
        let link = self.link().open().await?;
        let work_queue = self.topology.names.work_queue(&self.topology.queue);
        let consume = async {
            let channel = link.connection.create_channel().await?;
            channel
                .basic_qos(self.settings.prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    work_queue.as_str().into(),
                    format!("{}-{}", self.service, Uuid::now_v7()).into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok((channel, consumer))
        };
        let (channel, consumer) =
            answered("the consumer", self.settings.amqp_heartbeat, consume).await?;
        tracing::info!(queue = %work_queue, prefetch = self.settings.prefetch,
            concurrency = self.settings.concurrency, "consuming");
        Ok(Open {
            link,
            channel,
            consumer,
        })
    }

    /// One session: deliveries are handed to tasks, at most `concurrency` at once, until the broker
    /// goes away or the worker stops.
    async fn session(
        self: &Arc<Self>,
        stop: &mut StopSignal,
        leaving: &mut Option<Leaving>,
    ) -> Result<SessionEnd, LinkError> {
        // A broker that accepts the connection but never answers must not keep SIGTERM waiting.
        let mut open = tokio::select! {
            open = self.open() => open?,
            _ = stop.wait() => return Ok(SessionEnd::Stopped),
        };
        self.health.set_broker(true);
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let link = self.link();
        let mut check = tokio::time::interval(CHECK_EVERY);
        let end = loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = stop.wait() => break SessionEnd::Stopped,
                _ = check.tick() => match link.check(&open.link).await {
                    Some(end) => break end,
                    None => continue,
                },
            };
            let next = tokio::select! {
                d = open.consumer.next() => d,
                _ = stop.wait() => break SessionEnd::Stopped,
                // A publishing channel the broker closed is reopened while consuming goes on.
                _ = check.tick() => match link.check(&open.link).await {
                    Some(end) => break end,
                    None => continue,
                },
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
            *leaving = Some(self.drain(open, &slots).await);
        }
        Ok(end)
    }

    /// Stops the broker pushing more and waits, within the grace period, for in-flight work.
    /// Prefetched deliveries not yet started go back to the queue when the consuming channel closes;
    /// the connection stays open for the last outbox flush.
    async fn drain(&self, open: Open, slots: &Semaphore) -> Leaving {
        let grace = self.settings.shutdown_grace;
        let deadline = Instant::now() + grace;
        let all = self.settings.concurrency as u32;
        let finished = tokio::time::timeout_at(deadline.into(), async {
            let _ = open
                .channel
                .basic_cancel(open.consumer.tag(), BasicCancelOptions::default())
                .await;
            let _ = slots.acquire_many(all).await;
            let _ = open.channel.close(200, "shutdown".into()).await;
        })
        .await;
        match finished {
            Ok(()) => tracing::info!("in-flight work finished"),
            Err(_) => tracing::warn!(
                ?grace,
                "in-flight work did not finish within the grace period; it will be redelivered"
            ),
        }
        Leaving {
            connection: Some(open.link.connection),
            deadline,
        }
    }
}

/// What a stopped session leaves for the way out: its connection, still open so that the outbox can
/// be flushed through it, and the end of the grace period, which every step of the way out shares.
pub(crate) struct Leaving {
    /// The broker connection, when the worker was connected as it stopped.
    pub(crate) connection: Option<Connection>,
    /// When the grace period ends.
    pub(crate) deadline: Instant,
}

impl Leaving {
    /// Runs `step` until the deadline; says whether it finished.
    pub(crate) async fn within<T>(&self, step: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::time::timeout_at(self.deadline.into(), step)
            .await
            .ok()
    }
}
