//! A broker link: connect, declare the topology, hand the publisher its channel, and keep that up.
//! The consumer builds its session on it; a service that only publishes (callback-ingress) keeps a
//! link with [`publish_only`], which also watches the connection's events.

use std::time::Duration;

use futures::StreamExt;
use lapin::{Connection, Event};
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
}

/// How a session ended.
pub(crate) enum SessionEnd {
    /// The worker is stopping.
    Stopped,
    /// The broker went away.
    Lost,
}

impl Link {
    /// Connects, declares the whole topology, and gives the publisher a channel.
    pub async fn open(&self) -> Result<Connection, lapin::Error> {
        let connection = publisher::connect(&self.url, self.service).await?;
        let ready = async {
            self.topology.declare(&connection).await?;
            self.publisher.attach(&connection).await
        };
        if let Err(e) = ready.await {
            let _ = connection.close(200, "setup failed".into()).await;
            return Err(e);
        }
        Ok(connection)
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

    /// What a periodic look at a session's connection finds.
    pub(crate) async fn check(&self, connection: &Connection) -> Option<SessionEnd> {
        if !connection.status().connected() {
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
async fn watch(link: &Link, stop: &mut StopSignal) -> Result<SessionEnd, lapin::Error> {
    let conn = link.open().await?;
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
            _ = check.tick() => if let Some(end) = link.check(&conn).await {
                break end;
            },
        }
    };
    // Close the connection before dropping the publishing channel: dropping an open channel closes it
    // on its own, racing the connection's close. Closing a connection already gone fails, as expected.
    let _ = conn.close(200, "stopping".into()).await;
    link.publisher.detach();
    Ok(end)
}
