//! Declaring the broker topology of the contract (the names are `contract::queue`'s).
//!
//! Declaring is idempotent: every worker declares the whole topology at start and after each reconnect,
//! as does `pasarela topology` for deploy pipelines.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use crate::contract::queue::{Names, Queue};

/// The topology of one work queue: what a worker of that queue declares.
#[derive(Debug, Clone)]
pub struct QueueTopology {
    /// Names under the worker's namespace.
    pub names: Names,
    /// The work queue, without namespace.
    pub queue: String,
    /// The retry tiers' delays.
    pub tiers: Vec<Duration>,
    /// `x-delivery-limit` of the work queue.
    pub delivery_limit: u32,
    /// Whether to declare every work queue's topology (`PASARELA_DECLARE_TOPOLOGY=all`, the contract's
    /// default) or only this one's (`own`: a vhost where a worker may configure only its own queues).
    pub whole: bool,
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Dead-letter to `target` through the default exchange, at least once: the broker keeps the message
/// until the target confirms it, and refuses new ones rather than dropping old ones when full.
fn dead_letter_to(args: &mut FieldTable, target: &str) {
    args.insert("x-dead-letter-exchange".into(), long_string(""));
    args.insert("x-dead-letter-routing-key".into(), long_string(target));
    args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    args.insert("x-overflow".into(), long_string("reject-publish"));
}

/// Declares durable queue `name` with `args`; when it already exists with other arguments (the broker
/// answers 406 and closes the channel), opens a new channel and uses the queue as it is.
async fn declare_or_keep(
    connection: &Connection,
    channel: &mut Channel,
    name: &str,
    args: FieldTable,
) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    match channel.queue_declare(name.into(), durable, args).await {
        Ok(_) => Ok(()),
        Err(e) if is_precondition_failed(&e) => {
            tracing::warn!(queue = name, error = %e,
                "the queue exists with other arguments; using it as it is (see docs/OPERATIONS.md, \"Queue arguments\")");
            *channel = connection.create_channel().await?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            channel
                .queue_declare(name.into(), passive, FieldTable::default())
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Whether the broker refused a declaration because the entity exists with other arguments.
fn is_precondition_failed(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
}

/// Declares one of pasarela's topic exchanges, durable, with the arguments every worker uses, so that
/// a tool declaring it too never conflicts with them.
pub async fn declare_exchange(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
}

impl QueueTopology {
    /// Declares the whole topology of the contract on a channel of its own: both exchanges, and for
    /// every work queue (this worker's first) its `.dead` queue, the queue bound to `pasarela`, and its
    /// retry tiers. Work published for a queue whose worker is not deployed yet is then queued, not
    /// dropped as unroutable.
    ///
    /// A queue that already exists with other arguments (another worker's delivery limit, or a release
    /// before this one) is used as it is, with a warning: the broker refuses to redeclare it.
    pub async fn declare(&self, connection: &Connection) -> Result<(), lapin::Error> {
        let mut channel = connection.create_channel().await?;
        for exchange in [self.names.work_exchange(), self.names.events_exchange()] {
            declare_exchange(&channel, &exchange).await?;
        }
        for queue in self.declared_queues() {
            self.declare_queue(connection, &mut channel, queue).await?;
        }
        let _ = channel.close(200, "topology declared".into()).await;
        Ok(())
    }

    /// Declares one work queue's `.dead` queue, the queue and its binding, and its tiers.
    async fn declare_queue(
        &self,
        connection: &Connection,
        channel: &mut Channel,
        queue: &str,
    ) -> Result<(), lapin::Error> {
        let work = self.names.work_queue(queue);
        let dead = self.names.dead_queue(queue);

        // Only an operator drops a dead letter: a replay that fails again and again must not reach a
        // delivery limit (RabbitMQ 4 sets 20 by default, and `.dead` has nowhere to dead-letter to).
        let mut dead_args = quorum_args();
        dead_args.insert("x-delivery-limit".into(), AMQPValue::LongInt(i32::MAX));
        declare_or_keep(connection, channel, &dead, dead_args).await?;

        let mut work_args = quorum_args();
        dead_letter_to(&mut work_args, &dead);
        work_args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(self.delivery_limit as i32),
        );
        declare_or_keep(connection, channel, &work, work_args).await?;
        channel
            .queue_bind(
                work.as_str().into(),
                self.names.work_exchange().into(),
                ShortString::from(queue),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        for delay in &self.tiers {
            let mut args = quorum_args();
            dead_letter_to(&mut args, &work);
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(delay.as_millis() as i64),
            );
            let tier = self.names.tier_queue(queue, *delay);
            declare_or_keep(connection, channel, &tier, args).await?;
        }
        Ok(())
    }

    /// Every queue this topology declares, for clean-up and status listings.
    pub fn queue_names(&self) -> Vec<String> {
        self.declared_queues()
            .flat_map(|queue| {
                let mut names = vec![self.names.work_queue(queue), self.names.dead_queue(queue)];
                names.extend(self.tiers.iter().map(|d| self.names.tier_queue(queue, *d)));
                names
            })
            .collect()
    }

    /// The work queues whose topology this declares: this worker's first, then, when whole, the rest.
    fn declared_queues(&self) -> impl Iterator<Item = &str> {
        let own = std::iter::once(self.queue.as_str());
        let others = Queue::ALL
            .iter()
            .map(|q| q.name())
            .filter(|q| self.whole && *q != self.queue);
        own.chain(others)
    }
}
