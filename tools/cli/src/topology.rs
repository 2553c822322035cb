//! `pasarela topology`: declares the whole broker topology, as every worker does at start, so that a
//! deploy pipeline can create it before any producer or worker runs.

use std::process::ExitCode;

use pasarela_shared::contract::queue::Queue;

use crate::amqp;
use crate::context::{self, Context};

/// Declares both exchanges and every work queue with its tiers and `.dead` queue, then lists them.
pub async fn run() -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let connection = ctx.broker().await?;
    let declared = amqp::declare_topology(&connection, &ctx.settings, Queue::OtpSend.name()).await;
    context::close(&connection).await;
    let topology = declared?;
    println!("exchange {}", ctx.names.work_exchange());
    println!("exchange {}", ctx.names.events_exchange());
    for name in topology.queue_names() {
        println!("queue {name}");
    }
    Ok(ExitCode::SUCCESS)
}
