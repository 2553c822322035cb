//! What the broker says of its queues: the management API (depth, ready, unacked, rates, consumers),
//! or, when that plugin is not reachable, a passive declare over AMQP (ready and consumers only).

use std::str::FromStr;
use std::time::Duration;

use lapin::Connection;
use lapin::uri::AMQPUri;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::amqp;

/// One queue's figures; `None` where the source cannot tell.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Whether the queue exists.
    pub exists: bool,
    /// Ready plus unacked.
    pub messages: Option<u64>,
    /// Waiting for a consumer.
    pub ready: Option<u64>,
    /// Delivered, not yet acked.
    pub unacked: Option<u64>,
    /// Published into it, per second.
    pub rate_in: Option<f64>,
    /// Leaving it (acked, expired to the next hop), per second.
    pub rate_out: Option<f64>,
    /// Consumers attached.
    pub consumers: Option<u64>,
}

/// Where the management API is and how to log in, from `PASARELA_RABBITMQ_API` or `AMQP_URL`.
pub struct ManagementApi {
    base: String,
    vhost: String,
    user: String,
    password: SecretString,
    http: reqwest::Client,
}

impl ManagementApi {
    /// The API of the first broker node of `amqp_url` on port 15672, or at `api` when given; the
    /// credentials and vhost are `AMQP_URL`'s.
    pub fn new(amqp_url: &SecretString, api: Option<&str>) -> anyhow::Result<Self> {
        let first = amqp_url
            .expose_secret()
            .split(',')
            .next()
            .unwrap_or_default();
        let uri = AMQPUri::from_str(first)
            .map_err(|_| anyhow::anyhow!("AMQP_URL is not a valid amqp:// URL"))?;
        let base = match api {
            Some(api) => api.trim_end_matches('/').to_string(),
            None => format!("http://{}:15672", uri.authority.host),
        };
        Ok(Self {
            base,
            vhost: uri.vhost.clone(),
            user: uri.authority.userinfo.username.clone(),
            password: SecretString::from(uri.authority.userinfo.password.clone()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?,
        })
    }

    /// Where the API is (no credentials in it).
    pub fn address(&self) -> &str {
        &self.base
    }

    /// Every queue of the vhost, by name.
    pub async fn queues(&self) -> anyhow::Result<Vec<(String, Figures)>> {
        #[derive(Deserialize)]
        struct Rate {
            rate: f64,
        }
        #[derive(Deserialize, Default)]
        struct Stats {
            publish_details: Option<Rate>,
        }
        #[derive(Deserialize)]
        struct Queue {
            name: String,
            messages: Option<u64>,
            messages_ready: Option<u64>,
            messages_unacknowledged: Option<u64>,
            messages_details: Option<Rate>,
            consumers: Option<u64>,
            message_stats: Option<Stats>,
        }
        let vhost = utf8_percent_encode(&self.vhost, NON_ALPHANUMERIC);
        let url = format!("{}/api/queues/{vhost}", self.base);
        let queues: Vec<Queue> = self
            .http
            .get(url)
            .basic_auth(&self.user, Some(self.password.expose_secret()))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(queues
            .into_iter()
            .map(|q| {
                let rate_in = q
                    .message_stats
                    .unwrap_or_default()
                    .publish_details
                    .map_or(0.0, |r| r.rate);
                // What left is what came in less what stayed: acks and expiries to the next hop alike.
                let growth = q.messages_details.map_or(0.0, |r| r.rate);
                let figures = Figures {
                    exists: true,
                    messages: q.messages,
                    ready: q.messages_ready,
                    unacked: q.messages_unacknowledged,
                    rate_in: Some(rate_in),
                    rate_out: Some((rate_in - growth).max(0.0)),
                    consumers: q.consumers,
                };
                (q.name, figures)
            })
            .collect())
    }
}

/// Ready and consumers of `queue` by a passive declare; `exists: false` when it is missing.
pub async fn passive(connection: &Connection, queue: &str) -> anyhow::Result<Figures> {
    Ok(match amqp::queue_counts(connection, queue).await? {
        Some((ready, consumers)) => Figures {
            exists: true,
            ready: Some(u64::from(ready)),
            consumers: Some(u64::from(consumers)),
            ..Figures::default()
        },
        None => Figures::default(),
    })
}
