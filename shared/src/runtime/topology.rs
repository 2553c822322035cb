//! Declaring the broker topology of the contract (the names are `contract::queue`'s).
//!
//! Declaring is idempotent: every worker declares its queue's whole topology at start and after each
//! reconnect.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::contract::queue::Names;

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
    /// Declares both exchanges, the work queue bound to `pasarela`, its tiers and its `.dead` queue.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        for exchange in [self.names.work_exchange(), self.names.events_exchange()] {
            declare_exchange(channel, &exchange).await?;
        }
        let queue_opts = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let work = self.names.work_queue(&self.queue);
        let dead = self.names.dead_queue(&self.queue);

        channel
            .queue_declare(dead.as_str().into(), queue_opts, quorum_args())
            .await?;

        let mut work_args = quorum_args();
        dead_letter_to(&mut work_args, &dead);
        work_args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(self.delivery_limit as i32),
        );
        channel
            .queue_declare(work.as_str().into(), queue_opts, work_args)
            .await?;
        channel
            .queue_bind(
                work.as_str().into(),
                self.names.work_exchange().into(),
                ShortString::from(self.queue.as_str()),
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
            channel
                .queue_declare(
                    self.names.tier_queue(&self.queue, *delay).into(),
                    queue_opts,
                    args,
                )
                .await?;
        }
        Ok(())
    }

    /// Every queue this topology declares, for clean-up and status listings.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names = vec![
            self.names.work_queue(&self.queue),
            self.names.dead_queue(&self.queue),
        ];
        names.extend(
            self.tiers
                .iter()
                .map(|d| self.names.tier_queue(&self.queue, *d)),
        );
        names
    }
}
