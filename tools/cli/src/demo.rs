//! `pasarela demo`: the sample workload of `make demo`. Publishes OTP sends through DANAConnect, Aldeamo
//! and `auto` (about one in ten broken on purpose), waits for each one's `otp.send.completed` event,
//! then, given the simulator's address, reads the delivered codes and verifies them over RPC (one in
//! five first with a wrong code), and prints a summary. The vendor simulator and the workers are
//! started separately.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::messages::{
    AldeamoBlock, CodeSpec, DanaConnectBlock, Destination, KeyValue, OtpSend,
};
use pasarela_shared::runtime::publisher::Publisher;
use serde::Deserialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::amqp;
use crate::context::{self, Context};
use crate::otp;
use crate::summary::{Completed, Summary};

/// The event every otp.send ends with.
const COMPLETED: &str = "otp.send.completed";

/// Messages published per round of confirms.
const BATCH: usize = 50;

/// Flags of `pasarela demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many otp.send messages to publish.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// How long to wait for the completed events (2m, 90s; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = crate::format::duration)]
    pub timeout: Duration,
    /// vendor.call messages to send after the OTPs (half NumRot, half GestoPago); 0 skips them.
    #[arg(long, default_value_t = 0)]
    pub vendor_calls: usize,
    /// The vendor simulator's base URL (e.g. http://127.0.0.1:7070): the demo reads the delivered
    /// codes from its inbox and verifies them. Without it, nothing is verified.
    #[arg(long, env = "VENDOR_SIM_URL")]
    pub sim_url: Option<String>,
}

/// The fields of an `otp.send.completed` event the demo reads.
#[derive(Debug, Deserialize)]
struct Event {
    request_id: Uuid,
    status: String,
}

/// The `i`th demo send and whether it breaks a DANAConnect limit on purpose (every tenth does, by a
/// code length of 20 or a lifetime of 5000 s, so that it comes back `rejected`). Of the rest, about a
/// quarter go through Aldeamo and a quarter through `auto`. Destinations come from the request id, so
/// that repeated demos stay inside the fraud guard's per-destination limit.
pub fn demo_message(i: usize, request_id: Uuid) -> (OtpSend, bool) {
    const CHANNELS: [&str; 4] = ["sms", "email", "whatsapp", "voice"];
    let channel = CHANNELS[i % CHANNELS.len()];
    let unique = request_id.as_u128() % 100_000_000;
    let (destination, contact) = if channel == "email" {
        let email = format!("demo{i}-{unique:08}@example.com");
        let value = KeyValue {
            key: "COD1_EMAIL".into(),
            value: email.clone(),
        };
        let destination = Destination {
            mobile: None,
            email: Some(email),
        };
        (destination, value)
    } else {
        let mobile = format!("+5730{unique:08}");
        let value = KeyValue {
            key: "COD1_MOBILE".into(),
            value: mobile.clone(),
        };
        let destination = Destination {
            mobile: Some(mobile),
            email: None,
        };
        (destination, value)
    };
    let invalid = i % 10 == 9;
    let provider = match i % 4 {
        _ if invalid => "danaconnect",
        1 => "aldeamo",
        3 => "auto",
        _ => "danaconnect",
    };
    // Aldeamo configurations hold 4 to 8 characters; DANAConnect takes 3 to 12.
    let mut length = if provider == "danaconnect" {
        4 + (i % 7) as u32
    } else {
        4 + (i % 5) as u32
    };
    let mut expires_in_s = 60 * (1 + (i % 10) as u32);
    if invalid {
        if (i / 10) % 2 == 1 {
            expires_in_s = 5000;
        } else {
            length = 20;
        }
    }
    let message = OtpSend {
        request_id,
        tenant: "demo".into(),
        provider: provider.into(),
        channel: channel.into(),
        destination,
        code: CodeSpec {
            code_type: if (i / 4) % 2 == 1 {
                "alphanumeric"
            } else {
                "numeric"
            }
            .into(),
            length,
            expires_in_s: Some(expires_in_s),
            max_tries: Some(3 + (i % 3) as u32),
        },
        danaconnect: Some(DanaConnectBlock {
            id_conversation: 824541,
            values: vec![
                contact,
                KeyValue {
                    key: "COD1_NOMBRE".into(),
                    value: format!("Demo {i}"),
                },
            ],
            parameters: [("origin".to_string(), "demo".to_string())].into(),
        }),
        aldeamo: Some(AldeamoBlock {
            config_id: format!("cfg-{channel}"),
            otp_id: None,
        }),
    };
    (message, invalid)
}

/// A progress bar on stdout, or a hidden one when stdout is not a terminal (CI logs).
fn progress(len: usize, prefix: &'static str, interactive: bool) -> ProgressBar {
    if !interactive {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stdout());
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{bar:40.cyan/blue}] {pos:>6}/{len:6} {elapsed_precise}",
    )
    .expect("the template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix);
    bar
}

/// Runs `pasarela demo`.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let connection = ctx.broker().await?;
    amqp::ensure_work_topology(&connection, &ctx.settings, otp::QUEUE).await?;

    // Listen before publishing, so that no event can come before its listener.
    let events_exchange = ctx.names.events_exchange();
    let amqp::PrivateQueue {
        channel: _events_channel,
        mut consumer,
        ..
    } = amqp::private_queue(&connection, Some((&events_exchange, COMPLETED))).await?;
    let (tx, mut events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            // Stamped on arrival: the events are read only after publishing ends.
            let received = Instant::now();
            let Ok(event) = serde_json::from_slice::<Event>(&delivery.data) else {
                continue;
            };
            if tx.send((event, received)).is_err() {
                break;
            }
        }
    });

    let interactive = std::io::stdout().is_terminal();
    let publisher = Publisher::new();
    publisher.attach(&connection).await?;
    let exchange = ctx.names.work_exchange();
    let mut pending: HashMap<Uuid, (Instant, bool)> = HashMap::with_capacity(args.count);
    let mut destinations: HashMap<Uuid, String> = HashMap::with_capacity(args.count);
    let mut meant_invalid = 0;
    let bar = progress(args.count, "published", interactive);
    for start in (0..args.count).step_by(BATCH) {
        let batch: Vec<(OtpSend, bool)> = (start..args.count.min(start + BATCH))
            .map(|i| demo_message(i, Uuid::new_v4()))
            .collect();
        let messages: Vec<OutboundMessage> = batch
            .iter()
            .map(|(m, _)| otp::outbound(exchange.clone(), m))
            .collect();
        let sent_at = Instant::now();
        publisher
            .publish_all(&messages)
            .await
            .context("publishing the demo's otp.send messages")?;
        for (m, invalid) in batch {
            meant_invalid += usize::from(invalid);
            let to = m.destination.email.clone().or(m.destination.mobile.clone());
            destinations.insert(m.request_id, to.unwrap_or_default());
            pending.insert(m.request_id, (sent_at, invalid));
        }
        bar.inc(messages.len() as u64);
    }
    bar.finish();
    if !interactive {
        println!(
            "published {} otp.send message(s) to {exchange}; waiting up to {} for {COMPLETED}",
            args.count,
            crate::format::span(args.timeout)
        );
    }

    let bar = progress(args.count, "completed", interactive);
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut completed = Vec::with_capacity(args.count);
    let mut sent = Vec::with_capacity(args.count);
    while !pending.is_empty() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some((event, received))) => {
                // Events of other producers in the namespace, and repeated events, are not ours to count.
                if let Some((sent_at, meant_invalid)) = pending.remove(&event.request_id) {
                    if event.status == "sent" {
                        sent.push(event.request_id);
                    }
                    completed.push(Completed {
                        status: event.status,
                        latency: received.saturating_duration_since(sent_at),
                        meant_invalid,
                    });
                    bar.inc(1);
                }
            }
            Ok(None) => {
                eprintln!("warning: the broker connection ended while waiting for events");
                break;
            }
            Err(_) => break,
        }
    }
    bar.finish();
    let verified = match &args.sim_url {
        Some(sim) => {
            let codes = crate::demo_verify::delivered_codes(sim).await?;
            Some(
                crate::demo_verify::verify_all(&ctx, &connection, &sent, &destinations, &codes)
                    .await?,
            )
        }
        None => None,
    };
    let vendor = if args.vendor_calls > 0 {
        Some(crate::vendor::demo_calls(&ctx, &connection, args.vendor_calls).await?)
    } else {
        None
    };
    context::close(&connection).await;

    let mut missing: Vec<Uuid> = pending.into_keys().collect();
    missing.sort();
    let summary = Summary::new(args.count, meant_invalid, &completed, missing);
    println!();
    print!("{}", summary.render());
    let verify_ok = match &verified {
        Some(v) => {
            print!("{}", v.render());
            v.as_expected()
        }
        None => true,
    };
    let vendor_ok = match &vendor {
        Some((text, ok)) => {
            print!("{text}");
            *ok
        }
        None => true,
    };
    Ok(if summary.all_terminal() && verify_ok && vendor_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_ten_breaks_a_limit_and_the_rest_fit_danaconnect() {
        let mut channels = std::collections::HashSet::new();
        let mut invalid = 0;
        for i in 0..200 {
            let (m, meant_invalid) = demo_message(i, Uuid::new_v4());
            channels.insert(m.channel.clone());
            let fits = (3..=12).contains(&m.code.length)
                && m.code.expires_in_s.is_some_and(|s| (1..=3200).contains(&s));
            assert_eq!(fits, !meant_invalid, "message {i}: {m:?}");
            invalid += usize::from(meant_invalid);
            let contact = &m.danaconnect.as_ref().unwrap().values[0].value;
            let destination = m
                .destination
                .email
                .as_ref()
                .or(m.destination.mobile.as_ref());
            assert_eq!(Some(contact), destination);
            // It is a well-formed otp.send, whatever its limits.
            let json = serde_json::to_value(&m).unwrap();
            assert!(serde_json::from_value::<OtpSend>(json).is_ok());
        }
        assert_eq!(invalid, 20);
        assert_eq!(channels.len(), 4);
    }
}
