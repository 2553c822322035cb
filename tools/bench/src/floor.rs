//! The broker's own floor: what RabbitMQ alone does with persistent, confirmed messages on quorum
//! queues, measured the same way as pasarela.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::sync::Arc;
use tokio::sync::Semaphore;

use crate::Options;
use crate::measure::{Measurement, Pace};

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

/// Publishes `pace.count` messages to `queue` through the default exchange with confirms, at most
/// `pace.window` unconfirmed, no more than the receiver has released from `in_flight`, and no sooner
/// than `pace.rate` allows; `message(i)` gives the i-th body and properties.
pub async fn publish_window(
    ch: &Channel,
    queue: &str,
    pace: &Pace,
    in_flight: &Semaphore,
    mut message: impl FnMut(usize) -> (Vec<u8>, BasicProperties),
) -> anyhow::Result<()> {
    let mut pending = FuturesUnordered::new();
    let start = tokio::time::Instant::now();
    for i in 0..pace.count {
        // Closed loop: at most `in_flight` messages between publish and receipt, so the figures are
        // sustained throughput and latency, not the draining of a backlog.
        in_flight.acquire().await?.forget();
        if let Some(rate) = pace.rate {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        }
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
        // A sliding window: one confirm awaited frees one place, so paced publishes keep their pace.
        while pending.len() >= pace.window.max(1) {
            pending.next().await.transpose()?;
        }
    }
    while pending.next().await.transpose()?.is_some() {}
    Ok(())
}

async fn measure(
    conn: &Connection,
    publish_to: &str,
    receive_from: &str,
    pace: &Pace,
    timeout: Duration,
    size: usize,
) -> anyhow::Result<Measurement> {
    let n = pace.count;
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
    let in_flight = Arc::new(Semaphore::new(pace.in_flight));
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
    let deadline = tokio::time::Instant::now() + timeout;
    tokio::time::timeout_at(
        deadline,
        publish_window(&publisher, publish_to, pace, &in_flight, |_| {
            (
                stamped(epoch, size),
                BasicProperties::default().with_delivery_mode(2),
            )
        }),
    )
    .await
    .context("the floor run did not finish in time")??;
    let (latencies, elapsed) = tokio::time::timeout_at(deadline, receive)
        .await
        .context("the floor run did not finish in time")??;
    let _ = receiver.close(200, "done".into()).await;
    let _ = publisher.close(200, "done".into()).await;
    anyhow::ensure!(latencies.len() == n, "received {} of {n}", latencies.len());
    Ok(Measurement::of(latencies, elapsed))
}

/// The closed-loop warm-up before measuring at `pace`: `opts.warmup` messages, or a tenth of the
/// measurement when that is less (large bodies are measured in hundreds, not thousands).
pub fn warmup(opts: &Options, pace: &Pace) -> Pace {
    Pace {
        count: opts.warmup.min(pace.count / 10).max(10),
        in_flight: pace.in_flight.min(opts.in_flight),
        rate: None,
        ..*pace
    }
}

/// Persistent publish with confirms → quorum queue → consume with ack.
pub async fn one_leg(opts: &Options, pace: &Pace, size: usize) -> anyhow::Result<Measurement> {
    let conn = Connection::connect(&opts.amqp_url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let q = format!("bench-floor-{}.one", uuid::Uuid::new_v4().simple());
    quorum_queue(&ch, &q).await?;
    let timeout = Duration::from_secs(opts.timeout_s);
    measure(&conn, &q, &q, &warmup(opts, pace), timeout, size).await?;
    let m = measure(&conn, &q, &q, pace, timeout, size).await;
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
/// confirm: the least a worker does. Measured at each of `paces`, after a closed-loop warm-up.
pub async fn two_legs(
    opts: &Options,
    paces: &[Pace],
    size: usize,
) -> anyhow::Result<Vec<Measurement>> {
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
    let timeout = Duration::from_secs(opts.timeout_s);
    let mut m = Ok(Vec::new());
    if let Some(first) = paces.first() {
        m = measure(&conn, &q_in, &q_out, &warmup(opts, first), timeout, size)
            .await
            .map(|_| Vec::new());
    }
    for pace in paces {
        let Ok(done) = &mut m else { break };
        match measure(&conn, &q_in, &q_out, pace, timeout, size).await {
            Ok(one) => done.push(one),
            Err(e) => m = Err(e),
        }
    }
    relay.abort();
    delete_queues(&conn, &[q_in, q_out]).await;
    let _ = conn.close(200, "done".into()).await;
    m
}
