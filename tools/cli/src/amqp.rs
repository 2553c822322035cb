//! Broker helpers the CLI needs beyond `pasarela_shared::broker`: passive queue look-ups, a private
//! reply queue, and a confirmed publish that can set `reply_to`.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::queue::Names;
use pasarela_shared::runtime::publisher::headers_to_table;
use pasarela_shared::runtime::settings::RuntimeSettings;
use pasarela_shared::runtime::topology::{self, QueueTopology};
use uuid::Uuid;

/// Whether the broker said that a queue or exchange does not exist.
pub fn is_not_found(e: &lapin::Error) -> bool {
    matches!(
        e.kind(),
        lapin::ErrorKind::ProtocolError(err)
            if matches!(err.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
    )
}

/// The number of ready messages in `queue`, or `None` when the queue does not exist.
pub async fn message_count(
    connection: &Connection,
    queue: &str,
) -> Result<Option<u32>, lapin::Error> {
    Ok(queue_counts(connection, queue)
        .await?
        .map(|(ready, _)| ready))
}

/// Ready messages and consumers of `queue` by a passive declare, or `None` when it does not exist.
pub async fn queue_counts(
    connection: &Connection,
    queue: &str,
) -> Result<Option<(u32, u32)>, lapin::Error> {
    // A passive declare of a missing queue closes its channel, so it gets a channel of its own.
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
    {
        Ok(q) => {
            let _ = channel.close(200, "done".into()).await;
            Ok(Some((q.message_count(), q.consumer_count())))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes sure the topology exists before publishing work for `queue`, so that work published before
/// any worker has started is queued rather than dropped as unroutable. When the work queue exists, a
/// worker or a deploy step has declared everything already.
pub async fn ensure_work_topology(
    connection: &Connection,
    settings: &RuntimeSettings,
    queue: &str,
) -> anyhow::Result<()> {
    let names = Names::new(&settings.namespace);
    if message_count(connection, &names.work_queue(queue))
        .await?
        .is_some()
    {
        return Ok(());
    }
    declare_topology(connection, settings, queue).await?;
    Ok(())
}

/// Declares the whole topology with `settings`' tiers and delivery limit, `queue`'s first, as every
/// worker does at start; returns what was declared.
pub async fn declare_topology(
    connection: &Connection,
    settings: &RuntimeSettings,
    queue: &str,
) -> anyhow::Result<QueueTopology> {
    let topology = QueueTopology {
        names: Names::new(&settings.namespace),
        queue: queue.to_string(),
        tiers: settings.retry.delays().to_vec(),
        delivery_limit: settings.delivery_limit,
        // The command that declares for a deploy pipeline declares everything.
        whole: true,
    };
    topology
        .declare(connection)
        .await
        .context("declaring the topology")?;
    Ok(topology)
}

/// A server-named, exclusive, auto-deleted queue with a consumer on it (no acks: losing its
/// messages when this process ends is the point). Keep the channel alive while consuming.
pub struct PrivateQueue {
    /// The channel the queue and its consumer live on.
    pub channel: Channel,
    /// The server-chosen queue name.
    pub name: String,
    /// The consumer; a stream of deliveries.
    pub consumer: Consumer,
}

/// Declares a [`PrivateQueue`], bound to topic `exchange` with `routing_key` when one is given.
pub async fn private_queue(
    connection: &Connection,
    bind: Option<(&str, &str)>,
) -> Result<PrivateQueue, lapin::Error> {
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await?;
    let name = queue.name().as_str().to_string();
    if let Some((exchange, routing_key)) = bind {
        topology::declare_exchange(&channel, exchange).await?;
        channel
            .queue_bind(
                name.as_str().into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let consume = BasicConsumeOptions {
        no_ack: true,
        exclusive: true,
        ..Default::default()
    };
    let consumer = channel
        .basic_consume(
            name.as_str().into(),
            "".into(),
            consume,
            FieldTable::default(),
        )
        .await?;
    Ok(PrivateQueue {
        channel,
        name,
        consumer,
    })
}

/// Opens a channel in confirm mode.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Publishes `message` persistently with `reply_to` set and waits for the broker's confirm.
///
/// The shared `Publisher` has no `reply_to` (workers never ask for replies), hence this helper.
pub async fn publish_with_reply_to(
    channel: &Channel,
    message: &OutboundMessage,
    reply_to: &str,
) -> anyhow::Result<()> {
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_timestamp(chrono::Utc::now().timestamp() as u64)
        .with_reply_to(ShortString::from(reply_to));
    if let Some(id) = &message.message_id {
        props = props.with_message_id(ShortString::from(id.as_str()));
    }
    if let Some(c) = &message.correlation_id {
        props = props.with_correlation_id(ShortString::from(c.as_str()));
    }
    if let Some(ct) = &message.content_type {
        props = props.with_content_type(ShortString::from(ct.as_str()));
    }
    if !message.headers.is_empty() {
        props = props.with_headers(headers_to_table(&message.headers));
    }
    let confirmation = channel
        .basic_publish(
            message.exchange.as_str().into(),
            message.routing_key.as_str().into(),
            BasicPublishOptions::default(),
            &message.body,
            props,
        )
        .await?
        .await?;
    anyhow::ensure!(
        !confirmation.is_nack(),
        "the broker refused the message (nack)"
    );
    Ok(())
}

/// Publishes `out` with a private `reply_to` and a fresh `correlation_id`, and waits up to `timeout`
/// for the reply that carries it. `None` when none came in time.
pub async fn rpc(
    connection: &lapin::Connection,
    mut out: OutboundMessage,
    timeout: Duration,
) -> anyhow::Result<Option<Vec<u8>>> {
    // The reply queue exists before the message does, so the reply cannot arrive before it.
    let mut replies = private_queue(connection, None).await?;
    let correlation_id = Uuid::new_v4().to_string();
    out.correlation_id = Some(correlation_id.clone());
    let channel = confirm_channel(connection).await?;
    publish_with_reply_to(&channel, &out, &replies.name)
        .await
        .with_context(|| format!("publishing {}", out.routing_key))?;
    let reply = tokio::time::timeout(timeout, async {
        while let Some(delivery) = replies.consumer.next().await {
            let delivery = delivery?;
            let matches = delivery
                .properties
                .correlation_id()
                .as_ref()
                .is_some_and(|c| c.as_str() == correlation_id);
            if matches {
                return Ok(Some(delivery.data));
            }
        }
        Ok::<_, lapin::Error>(None)
    })
    .await;
    match reply {
        Ok(Ok(Some(body))) => Ok(Some(body)),
        Ok(Ok(None)) => anyhow::bail!("the reply queue was closed before a reply came"),
        Ok(Err(e)) => Err(e).context("waiting for the reply"),
        Err(_) => Ok(None),
    }
}
