//! A broker link: connect, declare the topology, hand the publisher its channel, and keep that up.
//! The consumer builds its session on it; a service that only publishes (callback-ingress) keeps a
//! link with [`publish_only`], which also watches the connection's events.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Event};
use secrecy::SecretString;

use crate::runtime::backoff;
use crate::runtime::health::Health;
use crate::runtime::publisher::{self, Publisher};
use crate::runtime::stop::StopSignal;
use crate::runtime::topology::QueueTopology;

/// How often a link looks at its connection and publishing channel, besides their events.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where to connect, what to declare, and the publisher and health a link keeps up.
#[derive(Clone)]
pub struct Link {
    /// `AMQP_URL`.
    pub url: SecretString,
    /// The service name the connection is named after.
    pub service: &'static str,
    /// The topology declared on every connect.
    pub topology: QueueTopology,
    /// The publisher handed a channel on every connect.
    pub publisher: Publisher,
    /// Where broker readiness is reported.
    pub health: Health,
    /// `PASARELA_AMQP_HEARTBEAT`: the heartbeat asked of the broker, and how long any broker call may
    /// go unanswered before the broker is taken for gone.
    pub heartbeat: Duration,
}

/// Why a link could not be opened or kept.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The broker answered with an error, or the connection failed.
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    /// The broker did not answer in time: a node that keeps its port open but no longer speaks.
    #[error("the broker did not answer {what} within {after:?}")]
    Silent {
        /// What went unanswered.
        what: &'static str,
        /// How long it was given.
        after: Duration,
    },
}

/// Awaits a broker call for at most `after`.
pub(crate) async fn answered<T>(
    what: &'static str,
    after: Duration,
    call: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(after, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LinkError::Silent { what, after }),
    }
}

/// An open link: its connection, and the channel its liveness probe runs on.
pub(crate) struct Opened {
    pub(crate) connection: Connection,
    pub(crate) probe: Channel,
}

/// How a session ended.
pub(crate) enum SessionEnd {
    /// The worker is stopping.
    Stopped,
    /// The broker went away.
    Lost,
}

impl Link {
    /// Connects, declares the topology, and gives the publisher a channel: the handshake within
    /// [`Link::open_within`], so that a broker which accepts connections but never answers is given up,
    /// and the declarations within [`Link::declare_within`].
    pub(crate) async fn open(&self) -> Result<Opened, LinkError> {
        let connect = publisher::connect(&self.url, self.service, self.heartbeat);
        let connection = answered("the connection handshake", self.open_within(), connect).await?;
        let ready = async {
            self.topology.declare(&connection).await?;
            self.publisher.attach(&connection).await?;
            connection.create_channel().await
        };
        match answered("the topology declaration", self.declare_within(), ready).await {
            Ok(probe) => Ok(Opened { connection, probe }),
            Err(e) => {
                let _ = answered(
                    "a close",
                    self.heartbeat,
                    connection.close(200, "setup failed".into()),
                )
                .await;
                Err(e)
            }
        }
    }

    /// How long a connection handshake may take: a node that does not answer it is taken for gone.
    fn open_within(&self) -> Duration {
        self.heartbeat.saturating_mul(3).max(Duration::from_secs(5))
    }

    /// How long declaring the topology may take: creating some thirty quorum queues on a busy broker is
    /// slow but not a sign of a dead one (the heartbeat catches that), and giving up early only repeats
    /// the work.
    fn declare_within(&self) -> Duration {
        self.heartbeat
            .saturating_mul(12)
            .max(Duration::from_secs(60))
    }

    /// Reopens the publisher's channel after the broker closed it while the connection lives (a 404 on
    /// a deleted exchange, an unroutable copy for a deleted queue), declaring the topology again first.
    /// Not ready until it is done.
    pub(crate) async fn repair(&self, connection: &Connection) -> Result<(), lapin::Error> {
        self.health.set_broker(false);
        tracing::warn!(
            "the broker closed the publishing channel; declaring the topology and reopening it"
        );
        self.topology.declare(connection).await?;
        self.publisher.attach(connection).await?;
        self.health.set_broker(true);
        tracing::info!("publishing again");
        Ok(())
    }

    /// What a periodic look at a session's connection finds. Besides the connection's state, it asks
    /// the broker a question (a passive declaration of the work queue) and waits one heartbeat
    /// interval for the answer: a node that stopped answering is found within that, even while the TCP
    /// connection looks alive.
    pub(crate) async fn check(&self, opened: &Opened) -> Option<SessionEnd> {
        let connection = &opened.connection;
        if !connection.status().connected() {
            return Some(SessionEnd::Lost);
        }
        let work_queue = self.topology.names.work_queue(&self.topology.queue);
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let probe =
            opened
                .probe
                .queue_declare(work_queue.as_str().into(), passive, FieldTable::default());
        if let Err(e) = answered("a liveness probe", self.heartbeat, probe).await {
            tracing::warn!(error = %e, "the broker failed a liveness probe; reconnecting");
            self.health.set_broker(false);
            return Some(SessionEnd::Lost);
        }
        if !self.publisher.is_connected()
            && let Err(e) = self.repair(connection).await
        {
            tracing::warn!(error = %e, "could not reopen the publishing channel; reconnecting");
            return Some(SessionEnd::Lost);
        }
        None
    }

    /// Marks the link down: no publisher channel, not ready.
    pub(crate) fn down(&self) {
        self.publisher.detach();
        self.health.set_broker(false);
    }
}

/// Keeps a link up until stopped, reconnecting with backoff; `/readyz` says not ready and publishes
/// fail fast whenever there is none. For services that publish but consume nothing.
pub async fn publish_only(link: Link, mut stop: StopSignal) {
    let mut delays = backoff::reconnect();
    while !stop.is_set() {
        match watch(&link, &mut stop).await {
            Ok(SessionEnd::Stopped) => break,
            Ok(SessionEnd::Lost) => {
                tracing::warn!("lost the broker; reconnecting");
                delays = backoff::reconnect();
            }
            Err(e) => tracing::warn!(error = %e, "broker unavailable; retrying"),
        }
        link.down();
        if !stop.sleep(delays.next().unwrap_or_default()).await {
            break;
        }
    }
    link.down();
}

/// One publish-only session: open, then follow the connection's events until it fails or stops.
async fn watch(link: &Link, stop: &mut StopSignal) -> Result<SessionEnd, LinkError> {
    let opened = tokio::select! {
        opened = link.open() => opened?,
        _ = stop.wait() => return Ok(SessionEnd::Stopped),
    };
    let conn = &opened.connection;
    let events = conn.events_listener();
    link.health.set_broker(true);
    tracing::info!(queue = %link.topology.names.work_queue(&link.topology.queue),
        "connected to the broker");
    futures::pin_mut!(events);
    let mut check = tokio::time::interval(CHECK_EVERY);
    let end = loop {
        tokio::select! {
            _ = stop.wait() => break SessionEnd::Stopped,
            event = events.next() => match event {
                Some(Event::Error(e)) => {
                    tracing::warn!(error = %e, "broker connection failed");
                    break SessionEnd::Lost;
                }
                // A blocked connection takes publishes but confirms none: say not ready, so that an
                // orchestrator sends traffic elsewhere; the publish timeout bounds each answer.
                Some(Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(%reason, "the broker blocked publishing");
                    link.health.set_broker(false);
                }
                Some(Event::ConnectionUnblocked) => {
                    tracing::info!("the broker unblocked publishing");
                    link.health.set_broker(true);
                }
                Some(_) => {}
                None => break SessionEnd::Lost,
            },
            // A channel can close on its own (a channel-level error) while the connection lives.
            _ = check.tick() => if let Some(end) = link.check(&opened).await {
                break end;
            },
        }
    };
    // Close the connection before dropping the publishing channel: dropping an open channel closes it
    // on its own, racing the connection's close. Closing a connection already gone fails, as expected;
    // a broker that stopped answering gets one heartbeat interval.
    let _ = answered(
        "a close",
        link.heartbeat,
        conn.close(200, "stopping".into()),
    )
    .await;
    link.publisher.detach();
    Ok(end)
}
