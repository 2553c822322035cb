//! Taking chosen messages out of a `.dead` queue: each message the queue held at the start is taken
//! once; a chosen one is replayed (republished, confirmed, then acked) or discarded (acked), and the
//! others are held unacked and handed back together at the end, so none is taken twice and none lost.

use std::collections::HashSet;

use indicatif::ProgressBar;
use lapin::Connection;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use pasarela_shared::runtime::publisher::Publisher;

use super::replay::replay_copy;

/// Which messages of the `.dead` queue are meant.
pub enum Wanted {
    /// Every one (the whole queue was selected).
    All,
    /// Those whose `message_id` is one of these.
    Ids(HashSet<String>),
}

impl Wanted {
    fn takes(&self, message_id: Option<&str>) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Ids(ids) => message_id.is_some_and(|id| ids.contains(id)),
        }
    }
}

/// What happens to a chosen message.
pub enum Action<'a> {
    /// Republished to the work exchange with this routing key (confirmed before the ack).
    Replay {
        /// A publisher attached to the connection.
        publisher: &'a Publisher,
        /// The work exchange.
        exchange: String,
        /// The work queue's routing key.
        routing_key: &'a str,
    },
    /// Acked away; the `dead_letters` row keeps its body and headers.
    Discard,
}

/// What a walk did.
#[derive(Debug, Default)]
pub struct Walked {
    /// The `message_id`s of the messages replayed or discarded.
    pub message_ids: Vec<String>,
    /// How many messages were replayed or discarded (those without a `message_id` too).
    pub done: u32,
    /// How many were looked at and handed back.
    pub kept: u32,
}

/// Looks at up to `count` messages of `dead` (what it held at the start: a replayed message that fails
/// again at once must not come round again), acting on at most `limit` chosen ones.
pub async fn walk(
    connection: &Connection,
    dead: &str,
    count: u32,
    limit: u32,
    wanted: &Wanted,
    action: &Action<'_>,
    bar: &ProgressBar,
) -> (Walked, Option<anyhow::Error>) {
    let mut walked = Walked::default();
    let channel = match connection.create_channel().await {
        Ok(c) => c,
        Err(e) => {
            return (
                walked,
                Some(anyhow::Error::from(e).context("opening a channel")),
            );
        }
    };
    let mut held = Vec::new();
    let mut failure = None;
    for _ in 0..count {
        if walked.done >= limit {
            break;
        }
        let message = match channel
            .basic_get(dead.into(), BasicGetOptions { no_ack: false })
            .await
        {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                failure = Some(anyhow::Error::from(e).context("taking a message from the broker"));
                break;
            }
        };
        let lapin::message::Delivery {
            properties,
            data,
            acker,
            ..
        } = message.delivery;
        let message_id = properties.message_id().as_ref().map(|m| m.to_string());
        if !wanted.takes(message_id.as_deref()) {
            held.push(acker);
            walked.kept += 1;
            continue;
        }
        if let Action::Replay {
            publisher,
            exchange,
            routing_key,
        } = action
        {
            let copy = replay_copy(&properties, data, exchange.clone(), routing_key);
            if let Err(e) = publisher.publish(&copy).await {
                // Not confirmed: the dead copy goes back where it was, nothing is lost.
                held.push(acker);
                failure = Some(anyhow::Error::from(e).context("republishing a dead message"));
                break;
            }
        }
        if let Err(e) = acker.ack(BasicAckOptions::default()).await {
            // A replayed copy stands; the dead copy returns to `.dead`, and replaying it again is
            // harmless because the work row answers a finished message from its stored result.
            failure = Some(anyhow::Error::from(e).context("acking a dead message"));
            break;
        }
        walked.done += 1;
        walked.message_ids.extend(message_id);
        bar.inc(1);
    }
    for acker in held {
        let back = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        if let Err(e) = acker.nack(back).await {
            // The channel closing hands every unacked message back anyway.
            failure.get_or_insert(anyhow::Error::from(e).context("handing a message back"));
            break;
        }
    }
    let _ = channel.close(200, "done".into()).await;
    (walked, failure)
}
