//! The broker session: connect, declare `doc.callback`'s topology, attach the publisher, and keep it so.
//!
//! The topology is declared here too, not only by doc-callback, so that a callback received before
//! doc-callback ever started is routed to its queue instead of being dropped as unroutable.

use std::time::Duration;

use futures::StreamExt;
use lapin::Event;
use pasarela_shared::runtime::health::Health;
use pasarela_shared::runtime::publisher as broker;
use pasarela_shared::runtime::publisher::Publisher;
use pasarela_shared::runtime::topology::QueueTopology;
use secrecy::SecretString;
use tokio::sync::watch;

use crate::{BACKOFF_MAX, BACKOFF_START, DEFAULTS, sleep_unless_stopped};

/// How often the connection and the publishing channel are looked at, besides the error events.
const CHECK_EVERY: Duration = Duration::from_secs(1);

enum SessionEnd {
    Stopped,
    Lost,
}

/// Keeps a broker session up until `stop`, reconnecting with backoff; `/readyz` says not ready and
/// publishes fail fast (the route answers 503) whenever there is none.
pub(crate) async fn supervise(
    url: SecretString,
    topology: QueueTopology,
    publisher: Publisher,
    health: Health,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = BACKOFF_START;
    while !*stop.borrow() {
        match session(&url, &topology, &publisher, &health, &mut stop).await {
            Ok(SessionEnd::Stopped) => break,
            Ok(SessionEnd::Lost) => {
                tracing::warn!("lost the broker; reconnecting");
                delay = BACKOFF_START;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "broker unavailable; retrying");
            }
        }
        publisher.detach();
        health.set_broker(false);
        if !sleep_unless_stopped(delay, &mut stop).await {
            break;
        }
        delay = (delay * 2).min(BACKOFF_MAX);
    }
    publisher.detach();
    health.set_broker(false);
}

async fn session(
    url: &SecretString,
    topology: &QueueTopology,
    publisher: &Publisher,
    health: &Health,
    stop: &mut watch::Receiver<bool>,
) -> Result<SessionEnd, lapin::Error> {
    let conn = broker::connect(url, DEFAULTS.service).await?;
    // Listen before anything can fail, so that no error event is missed.
    let events = conn.events_listener();
    let ready = async {
        let setup = conn.create_channel().await?;
        topology.declare(&setup).await?;
        let _ = setup.close(200, "topology declared".into()).await;
        publisher.attach(&conn).await
    };
    if let Err(e) = ready.await {
        let _ = conn.close(200, "setup failed".into()).await;
        return Err(e);
    }
    health.set_broker(true);
    tracing::info!(queue = %topology.names.work_queue(&topology.queue), "connected to the broker");

    futures::pin_mut!(events);
    let mut check = tokio::time::interval(CHECK_EVERY);
    let end = loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break SessionEnd::Stopped,
            event = events.next() => match event {
                Some(Event::Error(e)) => {
                    tracing::warn!(error = %e, "broker connection failed");
                    break SessionEnd::Lost;
                }
                // A blocked connection takes publishes but confirms none: say not ready, so that an
                // orchestrator sends the vendor elsewhere; the publish timeout bounds each answer.
                Some(Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(%reason, "the broker blocked publishing");
                    health.set_broker(false);
                }
                Some(Event::ConnectionUnblocked) => {
                    tracing::info!("the broker unblocked publishing");
                    health.set_broker(true);
                }
                Some(_) => {}
                None => break SessionEnd::Lost,
            },
            _ = check.tick() => {
                // A channel can close on its own (a channel-level error) while the connection lives.
                if !conn.status().connected() || !publisher.is_connected() {
                    break SessionEnd::Lost;
                }
            }
        }
    };
    // Close the connection before dropping the publishing channel: dropping an open channel closes it
    // on its own, racing the connection's close. Closing a connection that is already gone fails;
    // that is the expected case after a loss.
    let _ = conn.close(200, "callback-ingress stopping".into()).await;
    publisher.detach();
    Ok(end)
}
