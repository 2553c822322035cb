//! `pasarela vendor call`: one `vendor.call` to NumRot or GestoPago through the vendor-call worker,
//! optionally waiting for its answer; and the demo's small vendor workload.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::messages::VendorCall;
use pasarela_shared::runtime::publisher::Publisher;
use uuid::Uuid;

use crate::amqp;
use crate::context::{self, Context};
use crate::format;
use crate::summary::{millis, percentile};

/// The work queue (and routing key) of vendor calls.
pub const QUEUE: &str = "vendor.call";

/// `pasarela vendor ...`.
#[derive(Debug, Subcommand)]
pub enum VendorCommand {
    /// Publish a vendor.call (NumRot or GestoPago) and print its call_id, or with --wait its answer.
    Call(CallArgs),
}

/// Flags of `pasarela vendor call`.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// `numrot` or `gestopago`.
    pub vendor: String,
    /// `GET` or `POST`.
    pub method: String,
    /// The vendor's path, starting with `/`.
    pub path: String,
    /// The JSON body (for GestoPago, the payload pasarela encrypts as `signed`).
    #[arg(long)]
    pub body: Option<String>,
    /// Wait for the answer and print it; exits 0 only when the call is `ok`.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (30s, 2m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = format::duration)]
    pub timeout: Duration,
}

/// The `vendor.call` message for these arguments, as the contract's type (the one the worker reads).
pub fn message(call_id: Uuid, args: &CallArgs) -> anyhow::Result<serde_json::Value> {
    let body = args
        .body
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .context("--body is not JSON")?;
    let call = VendorCall {
        call_id,
        vendor: args.vendor.clone(),
        method: args.method.to_uppercase(),
        path: args.path.clone(),
        body,
    };
    Ok(serde_json::to_value(call).expect("a VendorCall serialises"))
}

fn outbound(exchange: String, call_id: Uuid, body: &serde_json::Value) -> OutboundMessage {
    let mut out = OutboundMessage::json(exchange, QUEUE, body);
    out.message_id = Some(call_id.to_string());
    out
}

/// Runs `pasarela vendor ...`.
pub async fn run(command: VendorCommand) -> anyhow::Result<ExitCode> {
    let VendorCommand::Call(args) = command;
    let call_id = Uuid::new_v4();
    let body = message(call_id, &args)?;
    let ctx = Context::from_env()?;
    let connection = ctx.broker().await?;
    amqp::ensure_work_topology(&connection, &ctx.settings, QUEUE).await?;
    let out = outbound(ctx.names.work_exchange(), call_id, &body);
    if !args.wait {
        println!("{call_id}");
        let publisher = Publisher::new();
        publisher.attach(&connection).await?;
        publisher
            .publish(&out)
            .await
            .context("publishing vendor.call")?;
        context::close(&connection).await;
        return Ok(ExitCode::SUCCESS);
    }
    // stdout holds the reply alone, so a script can read it as JSON.
    eprintln!("{call_id}");
    let reply = amqp::rpc(&connection, out, args.timeout).await;
    context::close(&connection).await;
    match reply? {
        Some(bytes) => {
            let json: serde_json::Value =
                serde_json::from_slice(&bytes).context("the reply is not JSON")?;
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(if json["status"] == "ok" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => {
            eprintln!(
                "no reply within {}; is vendor-call running? see `pasarela status {call_id}`",
                format::span(args.timeout)
            );
            Ok(crate::exit::timed_out())
        }
    }
}

/// The demo's vendor workload: `n` calls split between NumRot and GestoPago (GET and POST), one at a
/// time over RPC. Returns the summary lines and whether every call came back `ok`.
pub async fn demo_calls(
    ctx: &Context,
    connection: &lapin::Connection,
    n: usize,
) -> anyhow::Result<(String, bool)> {
    amqp::ensure_work_topology(connection, &ctx.settings, QUEUE).await?;
    let (mut ok, mut other, mut missing) = (0, 0, 0);
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let args = CallArgs {
            vendor: if i % 2 == 0 { "gestopago" } else { "numrot" }.into(),
            method: if i % 4 < 2 { "POST" } else { "GET" }.into(),
            path: "/api/demo".into(),
            body: Some(format!(r#"{{"demo": {i}, "referencia": "D-{i}"}}"#)),
            wait: true,
            timeout: Duration::from_secs(30),
        };
        let call_id = Uuid::new_v4();
        let out = outbound(
            ctx.names.work_exchange(),
            call_id,
            &message(call_id, &args)?,
        );
        let started = Instant::now();
        match amqp::rpc(connection, out, Duration::from_secs(30)).await? {
            Some(bytes) => {
                latencies.push(started.elapsed());
                let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                if json["status"] == "ok" {
                    ok += 1;
                } else {
                    other += 1;
                }
            }
            None => missing += 1,
        }
    }
    latencies.sort_unstable();
    let text = format!(
        "vendor calls         {n:>6}\n  ok                 {ok:>6}\n  not ok             {other:>6}\n  no reply           {missing:>6}\nvendor call p50      {:>9}\n",
        millis(percentile(&latencies, 50.0))
    );
    Ok((text, ok == n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_carries_the_contract_fields() {
        let args = CallArgs {
            vendor: "gestopago".into(),
            method: "post".into(),
            path: "/api/x".into(),
            body: Some(r#"{"a":1}"#.into()),
            wait: false,
            timeout: Duration::from_secs(1),
        };
        let id = Uuid::new_v4();
        let m = message(id, &args).unwrap();
        assert_eq!(m["method"], "POST");
        assert_eq!(m["body"]["a"], 1);
        assert_eq!(m["call_id"], id.to_string());
        let bad = CallArgs {
            body: Some("{".into()),
            ..args
        };
        assert!(message(id, &bad).is_err());
    }
}
