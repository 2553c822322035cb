//! The harness's side of the broker: the test's own events queue, publishing to the workers, calling
//! them over RPC, and reading events and dead letters back.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use uuid::Uuid;

use crate::environment::TestEnv;
use crate::services::services;

/// A result event as received.
#[derive(Debug, Clone)]
pub struct Event {
    /// Its routing key.
    pub routing_key: String,
    /// Its body.
    pub body: Value,
}

/// A message taken from a `.dead` queue.
#[derive(Debug, Clone)]
pub struct DeadMessage {
    /// Its headers (text and numbers).
    pub headers: HashMap<String, String>,
    /// Its body.
    pub body: Vec<u8>,
    /// Its `message_id`.
    pub message_id: Option<String>,
}

/// A valid `otp.send` body for DANAConnect with a fresh request id.
pub fn otp_send(request_id: Uuid) -> Value {
    serde_json::json!({
        "request_id": request_id.to_string(),
        "tenant": "acme",
        "provider": "danaconnect",
        "channel": "sms",
        // One destination per request, so that the fraud guard's per-destination limit stays out of
        // tests about something else.
        "destination": { "mobile": mobile_for(request_id) },
        "code": { "type": "numeric", "length": 6, "expires_in_s": 300, "max_tries": 5 },
        "danaconnect": {
            "id_conversation": 824541,
            "values": [ { "key": "COD1_MOBILE", "value": format!("+5730{}", &request_id.simple().to_string()[..8]) } ]
        }
    })
}

/// A mobile number derived from a request id: distinct per request, stable for the same one.
pub fn mobile_for(request_id: Uuid) -> String {
    format!("+5730{:08}", request_id.as_u128() % 100_000_000)
}

/// A message's text and number headers (what the workers put on a dead letter), as text.
fn text_headers(props: &BasicProperties) -> HashMap<String, String> {
    let Some(table) = props.headers() else {
        return HashMap::new();
    };
    let text = |v: &AMQPValue| match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::LongLongInt(i) => Some(i.to_string()),
        _ => None,
    };
    table
        .inner()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), text(v)?)))
        .collect()
}

/// Properties as a producer sets them: persistent, so a broker restart keeps the message, and JSON.
pub fn json_props() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

/// The exchange/queue names of a namespace.
pub fn qualify(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

fn declare_args_quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

/// Connects, and declares the events exchange and the test's own durable queue on it.
pub(crate) async fn open_broker(amqp_url: &str, namespace: &str) -> (Connection, Channel) {
    let deadline = Instant::now() + Duration::from_secs(60);
    // `AMQP_URL` may list a cluster's nodes: the first that answers.
    let nodes: Vec<&str> = amqp_url.split(',').map(str::trim).collect();
    let mut turn = 0;
    let connection = loop {
        let node = nodes[turn % nodes.len()];
        turn += 1;
        match Connection::connect(node, ConnectionProperties::default()).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("connecting to RabbitMQ: {e}"),
        }
    };
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    // The events exchange and the test's own queue on it exist before any worker publishes.
    let events_exchange = qualify(namespace, "pasarela.events");
    channel
        .exchange_declare(
            events_exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("events exchange");
    let events_queue = qualify(namespace, "test.events");
    channel
        .queue_declare(
            events_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            declare_args_quorum(),
        )
        .await
        .expect("events queue");
    channel
        .queue_bind(
            events_queue.as_str().into(),
            events_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind events");
    (connection, channel)
}

impl TestEnv {
    /// Waits until `queue` has `consumers` consumers: a worker consumes only once its database is
    /// migrated and its topology declared, so this is when it is ready. Fails pointing at `log`.
    pub(crate) async fn wait_for_consumer(
        &self,
        queue: &str,
        consumers: u32,
        log: &Path,
        timeout: Duration,
    ) {
        let queue = qualify(&self.namespace, queue);
        let deadline = Instant::now() + timeout;
        loop {
            // A passive declare on a missing queue closes the channel: use a throwaway one.
            if let Ok(ch) = self.connection.create_channel().await {
                if let Ok(q) = ch
                    .queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    && q.consumer_count() >= consumers
                {
                    let _ = ch.close(200, "ok".into()).await;
                    return;
                }
                let _ = ch.close(200, "ok".into()).await;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not start consuming; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Publishes a valid `otp.send` for `request_id`, with the request id as its `message_id`.
    pub async fn send_otp(&self, request_id: Uuid) {
        self.publish(&otp_send(request_id), Some(&request_id.to_string()))
            .await;
    }

    /// Publishes an `otp.send` body with this `message_id` to the work exchange, and waits for the confirm.
    pub async fn publish(&self, body: &Value, message_id: Option<&str>) {
        let mut props = json_props();
        if let Some(id) = message_id {
            props = props.with_message_id(ShortString::from(id));
        }
        self.publish_raw(&serde_json::to_vec(body).expect("json"), props)
            .await;
    }

    /// Publishes `(message_id, body)` pairs to `routing_key`, confirms awaited together.
    pub async fn publish_bulk(&self, routing_key: &str, messages: &[(String, Value)]) {
        let mut confirms = Vec::with_capacity(messages.len());
        for (id, body) in messages {
            let props = json_props().with_message_id(ShortString::from(id.as_str()));
            let body = serde_json::to_vec(body).expect("json");
            let confirm = self
                .channel
                .basic_publish(
                    qualify(&self.namespace, "pasarela").into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
                .expect("publish");
            confirms.push(confirm);
        }
        for c in futures::future::try_join_all(confirms)
            .await
            .expect("confirms")
        {
            assert!(c.is_ack(), "the broker refused a message");
        }
    }

    /// Publishes many `otp.send` bodies, each with its request id as `message_id`, confirms pipelined.
    pub async fn publish_many(&self, ids: &[Uuid]) {
        let messages: Vec<(String, Value)> = ids
            .iter()
            .map(|id| (id.to_string(), otp_send(*id)))
            .collect();
        self.publish_bulk("otp.send", &messages).await;
    }

    /// Publishes raw bytes with the given properties to `otp.send`.
    pub async fn publish_raw(&self, body: &[u8], props: BasicProperties) {
        self.publish_raw_to("otp.send", body, props).await;
    }

    /// Publishes a JSON body to the work exchange with `routing_key` (a queue name) and this
    /// `message_id`, and waits for the confirm.
    pub async fn publish_to(&self, routing_key: &str, body: &Value, message_id: &str) {
        let props = json_props().with_message_id(ShortString::from(message_id));
        let body = serde_json::to_vec(body).expect("json");
        self.publish_raw_to(routing_key, &body, props).await;
    }

    /// Calls a worker the way a producer waiting on its user does: publishes `body` to `routing_key`
    /// with `reply_to` (a private queue) and a fresh `correlation_id`, and waits for the reply.
    /// Returns the reply's body and correlation id, or `None` after `timeout`.
    pub async fn rpc(
        &self,
        routing_key: &str,
        body: &Value,
        message_id: &str,
        timeout: Duration,
    ) -> Option<(Value, Option<String>, String)> {
        let reply = self
            .channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("reply queue");
        let correlation = Uuid::new_v4().to_string();
        let props = json_props()
            .with_message_id(ShortString::from(message_id))
            .with_reply_to(reply.name().clone())
            .with_correlation_id(ShortString::from(correlation.as_str()));
        let bytes = serde_json::to_vec(body).expect("json");
        self.publish_raw_to(routing_key, &bytes, props).await;
        let deadline = Instant::now() + timeout;
        let mut answer = None;
        while Instant::now() < deadline {
            match self
                .channel
                .basic_get(reply.name().clone(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic_get reply")
            {
                Some(m) => {
                    let got = m
                        .delivery
                        .properties
                        .correlation_id()
                        .as_ref()
                        .map(|c| c.as_str().to_string());
                    answer = Some((
                        serde_json::from_slice(&m.delivery.data).expect("reply json"),
                        got,
                        correlation.clone(),
                    ));
                    break;
                }
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        let _ = self
            .channel
            .queue_delete(reply.name().clone(), QueueDeleteOptions::default())
            .await;
        answer
    }

    /// Publishes raw bytes with the given properties to the work exchange with `routing_key`.
    pub async fn publish_raw_to(&self, routing_key: &str, body: &[u8], props: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                qualify(&self.namespace, "pasarela").into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "the broker refused the message");
    }

    /// Receives events until `count` arrived or `timeout` passed. Polls with `basic.get`, which
    /// survives a broker restart without consumer bookkeeping.
    pub async fn events(&mut self, count: usize, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let queue = qualify(&self.namespace, "test.events");
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            let got = self
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await;
            match got {
                Ok(Some(m)) => out.push(Event {
                    routing_key: m.delivery.routing_key.as_str().to_string(),
                    body: serde_json::from_slice(&m.delivery.data).expect("event json"),
                }),
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                // The broker went away under the harness: reconnect and keep reading.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    self.reconnect_broker().await;
                }
            }
        }
        out
    }

    /// Takes every message from `otp.send.dead` (waiting up to `timeout` for `count`).
    pub async fn dead_letters(&self, count: usize, timeout: Duration) -> Vec<DeadMessage> {
        self.dead_letters_of("otp.send", count, timeout).await
    }

    /// Takes every message from `<work_queue>.dead` (waiting up to `timeout` for `count`).
    pub async fn dead_letters_of(
        &self,
        work_queue: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<DeadMessage> {
        let queue = qualify(&self.namespace, &format!("{work_queue}.dead"));
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            match self
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await
                .expect("basic_get")
            {
                Some(m) => {
                    let headers = text_headers(&m.delivery.properties);
                    m.delivery
                        .ack(BasicAckOptions::default())
                        .await
                        .expect("ack dead");
                    out.push(DeadMessage {
                        headers,
                        body: m.delivery.data.clone(),
                        message_id: m
                            .delivery
                            .properties
                            .message_id()
                            .as_ref()
                            .map(|s| s.as_str().to_string()),
                    });
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        out
    }

    /// A new channel on the harness's connection, for steps that may make the broker close it (a
    /// passive declare of a missing queue, a declaration it refuses).
    pub async fn fresh_channel(&self) -> Channel {
        self.connection.create_channel().await.expect("channel")
    }

    /// The ready messages of queue `name` (namespaced here), or `None` when it does not exist.
    pub async fn queue_depth(&self, name: &str) -> Option<u32> {
        let channel = self.fresh_channel().await;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let depth = channel
            .queue_declare(
                qualify(&self.namespace, name).into(),
                passive,
                FieldTable::default(),
            )
            .await
            .ok()
            .map(|q| q.message_count());
        let _ = channel.close(200, "done".into()).await;
        depth
    }

    /// Reconnects the harness to the broker (after a broker restart); queued events are kept.
    pub async fn reconnect_broker(&mut self) {
        let (connection, channel) = open_broker(&services().await.amqp_url, &self.namespace).await;
        self.connection = connection;
        self.channel = channel;
    }
}
