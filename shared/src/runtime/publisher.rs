//! RabbitMQ connections and the confirmed publisher.
//!
//! Every publish waits for the broker's confirm: a delivery is acked only after everything it caused is
//! confirmed (docs/ARCHITECTURE.md, "Ack last"). The [`Publisher`] outlives connections: the runtime hands it a new
//! channel after each reconnect, and a publish made while the broker is away fails fast instead of
//! hanging, leaving the message to the outbox relay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

use crate::contract::envelope::OutboundMessage;
use crate::contract::headers::HeaderValue;
use crate::store::outbox::Sink;

/// The AMQP properties of a message: persistent, stamped, with its ids, type, expiry and headers.
fn properties(m: &OutboundMessage) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_timestamp(chrono::Utc::now().timestamp() as u64);
    if let Some(id) = &m.message_id {
        props = props.with_message_id(ShortString::from(id.as_str()));
    }
    if let Some(c) = &m.correlation_id {
        props = props.with_correlation_id(ShortString::from(c.as_str()));
    }
    if let Some(r) = &m.reply_to {
        props = props.with_reply_to(ShortString::from(r.as_str()));
    }
    if let Some(ct) = &m.content_type {
        props = props.with_content_type(ShortString::from(ct.as_str()));
    }
    if let Some(ms) = m.expiration_ms {
        props = props.with_expiration(ShortString::from(ms.to_string()));
    }
    if !m.headers.is_empty() {
        props = props.with_headers(headers_to_table(&m.headers));
    }
    props
}

/// Converts pasarela's headers to an AMQP table.
pub fn headers_to_table(headers: &BTreeMap<String, HeaderValue>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in headers {
        let value = match v {
            HeaderValue::Int(i) => AMQPValue::LongLongInt(*i),
            HeaderValue::Text(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        };
        table.insert(ShortString::from(k.as_str()), value);
    }
    table
}

/// Reads the headers pasarela can carry over from an AMQP table: numbers and text.
pub fn headers_from_table(table: Option<&FieldTable>) -> BTreeMap<String, HeaderValue> {
    let mut out = BTreeMap::new();
    let Some(table) = table else { return out };
    for (k, v) in table.inner() {
        let value = match v {
            AMQPValue::ShortShortInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::ShortShortUInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::ShortInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::ShortUInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::LongInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::LongUInt(i) => HeaderValue::Int(i64::from(*i)),
            AMQPValue::LongLongInt(i) => HeaderValue::Int(*i),
            AMQPValue::Timestamp(t) => HeaderValue::Int(*t as i64),
            AMQPValue::ShortString(s) => HeaderValue::Text(s.as_str().to_string()),
            AMQPValue::LongString(s) => {
                HeaderValue::Text(String::from_utf8_lossy(s.as_bytes()).into_owned())
            }
            AMQPValue::Boolean(b) => HeaderValue::Text(b.to_string()),
            // Arrays and tables (x-death and the like) are the broker's bookkeeping, not ours to carry.
            _ => continue,
        };
        out.insert(k.as_str().to_string(), value);
    }
    out
}

/// Why a publish did not get the broker's confirm.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No channel: the broker connection is down and being re-established.
    #[error("not connected to the broker")]
    NotConnected,
    /// The channel or connection failed.
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker refused the message (e.g. a full queue with `reject-publish`).
    #[error("the broker refused the message (nack)")]
    Nacked,
    /// A `mandatory` copy matched no queue: the queue is missing. The channel is closed so that the
    /// link declares the topology again before the next publish.
    #[error("no queue {0} on the broker: the message was returned")]
    Unroutable(String),
    /// No confirm came in time.
    #[error("no confirm from the broker within {0:?}")]
    Timeout(Duration),
}

/// Publishes with confirms over whatever channel the current connection has.
#[derive(Clone)]
pub struct Publisher {
    channel: Arc<watch::Sender<Option<Channel>>>,
    confirm_timeout: Duration,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    /// A publisher with no channel yet.
    pub fn new() -> Self {
        Self {
            channel: Arc::new(watch::Sender::new(None)),
            confirm_timeout: Duration::from_secs(30),
        }
    }

    /// Opens a confirm-mode channel on `connection` and publishes through it from now on.
    pub async fn attach(&self, connection: &Connection) -> Result<(), lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.channel.send_replace(Some(channel));
        Ok(())
    }

    /// Stops publishing until the next [`Publisher::attach`].
    pub fn detach(&self) {
        self.channel.send_replace(None);
    }

    /// Whether a channel is attached and open.
    pub fn is_connected(&self) -> bool {
        self.channel
            .borrow()
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish(&self, message: &OutboundMessage) -> Result<(), PublishError> {
        self.publish_all(std::slice::from_ref(message)).await
    }

    /// Publishes all messages, then waits for every confirm: one round of confirms, not one per message.
    pub async fn publish_all(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        if messages.is_empty() {
            return Ok(());
        }
        let channel = self
            .channel
            .borrow()
            .clone()
            .filter(|c| c.status().connected())
            .ok_or(PublishError::NotConnected)?;
        tokio::time::timeout(self.confirm_timeout, self.publish_on(&channel, messages))
            .await
            .map_err(|_| PublishError::Timeout(self.confirm_timeout))?
    }

    /// Publishes on `channel` and waits for every confirm.
    async fn publish_on(
        &self,
        channel: &Channel,
        messages: &[OutboundMessage],
    ) -> Result<(), PublishError> {
        let mut confirms = Vec::with_capacity(messages.len());
        for m in messages {
            let confirm = channel
                .basic_publish(
                    ShortString::from(m.exchange.as_str()),
                    ShortString::from(m.routing_key.as_str()),
                    BasicPublishOptions {
                        mandatory: m.mandatory,
                        ..Default::default()
                    },
                    &m.body,
                    properties(m),
                )
                .await?;
            confirms.push(confirm);
        }
        let confirmations = futures::future::try_join_all(confirms).await?;
        let mut nacked = false;
        for (confirmation, m) in confirmations.into_iter().zip(messages) {
            nacked |= confirmation.is_nack();
            if confirmation.take_message().is_some() {
                let _ = channel
                    .close(
                        312,
                        "a copy was unroutable; declaring the topology again".into(),
                    )
                    .await;
                return Err(PublishError::Unroutable(m.routing_key.clone()));
            }
        }
        if nacked {
            return Err(PublishError::Nacked);
        }
        Ok(())
    }
}

impl Sink for Publisher {
    type Error = PublishError;

    async fn send(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        self.publish_all(messages).await
    }
}

/// The node a process last connected to, among the URLs of `AMQP_URL`: the next connect starts there,
/// and moves on to the next node when that one does not answer.
static PREFERRED_NODE: AtomicUsize = AtomicUsize::new(0);

/// Connects to RabbitMQ, naming the connection after the service so operators can find it, and asking
/// for `heartbeat` unless the URL names its own. `url` may list the nodes of a cluster, separated by
/// commas: they are tried in turn, from the one that answered last, each given one heartbeat.
pub async fn connect(
    url: &SecretString,
    service: &str,
    heartbeat: Duration,
) -> Result<Connection, lapin::Error> {
    let nodes: Vec<&str> = url
        .expose_secret()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if nodes.len() <= 1 {
        return connect_node(url.expose_secret(), service, heartbeat).await;
    }
    let first = PREFERRED_NODE.load(Ordering::Relaxed) % nodes.len();
    let mut last_error = None;
    for step in 0..nodes.len() {
        let index = (first + step) % nodes.len();
        let attempt = connect_node(nodes[index], service, heartbeat);
        match tokio::time::timeout(heartbeat, attempt).await {
            Ok(Ok(connection)) => {
                PREFERRED_NODE.store(index, Ordering::Relaxed);
                if step > 0 {
                    tracing::info!(
                        node = index + 1,
                        of = nodes.len(),
                        "connected to another node of the cluster"
                    );
                }
                return Ok(connection);
            }
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => {
                last_error = Some(lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "node {} of AMQP_URL did not answer within {heartbeat:?}",
                        index + 1
                    ),
                )))
            }
        }
    }
    Err(last_error.expect("at least two nodes were tried"))
}

/// Connects to one node.
async fn connect_node(
    url: &str,
    service: &str,
    heartbeat: Duration,
) -> Result<Connection, lapin::Error> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("{service}@{}", hostname())));
    let mut uri: lapin::uri::AMQPUri = url
        .parse()
        // serde of the URL's own error could quote the URL, password included.
        .map_err(|_: String| {
            lapin::Error::from(std::io::Error::other("AMQP_URL is not an amqp:// URL"))
        })?;
    if uri.query.heartbeat.is_none() {
        let seconds = heartbeat.as_secs().clamp(1, u64::from(u16::MAX));
        uri.query.heartbeat = Some(seconds as u16);
    }
    Connection::connect_uri(uri, props).await
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::headers::{ATTEMPT_HEADER, attempt_of};

    #[test]
    fn headers_round_trip_through_amqp() {
        let mut h = BTreeMap::new();
        h.insert(ATTEMPT_HEADER.to_string(), HeaderValue::Int(3));
        h.insert(
            "traceparent".to_string(),
            HeaderValue::Text("00-abc-def-01".into()),
        );
        let table = headers_to_table(&h);
        assert_eq!(headers_from_table(Some(&table)), h);
        assert_eq!(attempt_of(&h), 3);
        assert_eq!(attempt_of(&BTreeMap::new()), 1);
    }
}
