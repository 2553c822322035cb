//! The broker's own floor: what RabbitMQ alone does with persistent, confirmed messages on quorum
//! queues, measured the same way as pasarela.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::sync::Arc;
use tokio::sync::Semaphore;

use crate::{Measurement, Options, percentile};

/// Declares a durable quorum queue.
pub async fn quorum_queue(ch: &Channel, name: &str) -> anyhow::Result<()> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .with_context(|| format!("declaring {name}"))?;
    Ok(())
}

/// A body of `size` bytes whose first 20 carry the send time, in nanoseconds since `epoch`.
fn stamped(epoch: Instant, size: usize) -> Vec<u8> {
    let mut body = format!("{:020}", epoch.elapsed().as_nanos()).into_bytes();
    body.resize(size.max(20), b' ');
    body
}

fn latency_of(epoch: Instant, body: &[u8]) -> Duration {
    let sent: u64 = std::str::from_utf8(&body[..20.min(body.len())])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    epoch.elapsed().saturating_sub(Duration::from_nanos(sent))
}

/// Publishes `n` messages to `queue` through the default exchange with confirms, `window` at a time
/// and no more than the receiver has released from `in_flight`; `message(i)` gives the i-th body and
/// properties.
pub async fn publish_window(
    ch: &Channel,
    queue: &str,
    n: usize,
    window: usize,
    in_flight: &Semaphore,
    mut message: impl FnMut(usize) -> (Vec<u8>, BasicProperties),
) -> anyhow::Result<()> {
    let mut pending = Vec::with_capacity(window);
    for i in 0..n {
        // Closed loop: at most `in_flight` messages between publish and receipt, so the figures are
        // sustained throughput and latency, not the draining of a backlog.
        in_flight.acquire().await?.forget();
        let (body, props) = message(i);
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?;
        pending.push(confirm);
        if pending.len() >= window {
            futures::future::try_join_all(pending.drain(..)).await?;
        }
    }
    futures::future::try_join_all(pending).await?;
    Ok(())
}

async fn measure(
    conn: &Connection,
    publish_to: &str,
    receive_from: &str,
    n: usize,
    opts: &Options,
    size: usize,
) -> anyhow::Result<Measurement> {
    let publisher = conn.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let receiver = conn.create_channel().await?;
    receiver.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = receiver
        .basic_consume(
            receive_from.into(),
            "bench-receiver".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let epoch = Instant::now();
    let in_flight = Arc::new(Semaphore::new(opts.in_flight));
    let released = in_flight.clone();
    let receive = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let Some(Ok(d)) = consumer.next().await else {
                break;
            };
            released.add_permits(1);
            latencies.push(latency_of(epoch, &d.data));
            let _ = d.ack(BasicAckOptions::default()).await;
        }
        (latencies, epoch.elapsed())
    });
    // One deadline for publishing and receiving: publishing waits on results to free the window, so
    // it would wait forever if they stopped coming.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(opts.timeout_s);
    tokio::time::timeout_at(
        deadline,
        publish_window(&publisher, publish_to, n, opts.window, &in_flight, |_| {
            (
                stamped(epoch, size),
                BasicProperties::default().with_delivery_mode(2),
            )
        }),
    )
    .await
    .context("the floor run did not finish in time")??;
    let (mut latencies, elapsed) = tokio::time::timeout_at(deadline, receive)
        .await
        .context("the floor run did not finish in time")??;
    let _ = receiver.close(200, "done".into()).await;
    let _ = publisher.close(200, "done".into()).await;
    anyhow::ensure!(latencies.len() == n, "received {} of {n}", latencies.len());
    latencies.sort();
    Ok(Measurement {
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}

/// Persistent publish with confirms → quorum queue → consume with ack.
pub async fn one_leg(opts: &Options, size: usize) -> anyhow::Result<Measurement> {
    let conn = Connection::connect(&opts.amqp_url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let q = format!("bench-floor-{}.one", uuid::Uuid::new_v4().simple());
    quorum_queue(&ch, &q).await?;
    measure(&conn, &q, &q, opts.warmup, opts, size).await?;
    let m = measure(&conn, &q, &q, opts.count, opts, size).await;
    delete_queues(&conn, &[q]).await;
    let _ = conn.close(200, "done".into()).await;
    m
}

/// Deletes the floor's queues, each on a channel of its own and tried three times: a quorum queue's
/// deletion can time out on a busy broker, and a failed one closes its channel.
async fn delete_queues(conn: &Connection, queues: &[String]) {
    for q in queues {
        for _ in 0..3 {
            let Ok(ch) = conn.create_channel().await else {
                return;
            };
            let deleted = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
            let _ = ch.close(200, "done".into()).await;
            if deleted.is_ok() {
                break;
            }
        }
    }
}

/// One leg in, and for each message a confirmed publish out to a second quorum queue, acked after the
/// confirm: the least a worker does.
pub async fn two_legs(opts: &Options, size: usize) -> anyhow::Result<Measurement> {
    let conn = Connection::connect(&opts.amqp_url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let base = format!("bench-floor-{}", uuid::Uuid::new_v4().simple());
    let (q_in, q_out) = (format!("{base}.in"), format!("{base}.out"));
    quorum_queue(&ch, &q_in).await?;
    quorum_queue(&ch, &q_out).await?;

    let relay_in = conn.create_channel().await?;
    relay_in.basic_qos(1000, BasicQosOptions::default()).await?;
    let relay_out = conn.create_channel().await?;
    relay_out
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut work = relay_in
        .basic_consume(
            q_in.as_str().into(),
            "bench-relay".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let out_name = q_out.clone();
    let relay = tokio::spawn(async move {
        while let Some(Ok(d)) = work.next().await {
            let Ok(confirm) = relay_out
                .basic_publish(
                    "".into(),
                    out_name.as_str().into(),
                    BasicPublishOptions::default(),
                    &d.data,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
            else {
                break;
            };
            tokio::spawn(async move {
                if confirm.await.is_ok() {
                    let _ = d.ack(BasicAckOptions::default()).await;
                }
            });
        }
    });
    measure(&conn, &q_in, &q_out, opts.warmup, opts, size).await?;
    let m = measure(&conn, &q_in, &q_out, opts.count, opts, size).await;
    relay.abort();
    delete_queues(&conn, &[q_in, q_out]).await;
    let _ = conn.close(200, "done".into()).await;
    m
}
