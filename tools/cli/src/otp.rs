//! `pasarela otp send`: publishes one `otp.send` work message, and with `--wait` prints the worker's
//! reply. `pasarela otp verify`: checks a code over RPC and prints the outcome.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use pasarela_shared::contract::envelope::OutboundMessage;
use pasarela_shared::contract::messages::{
    AldeamoBlock, CodeSpec, DanaConnectBlock, Destination, KeyValue, OtpSend,
};
use pasarela_shared::runtime::publisher::Publisher;
use uuid::Uuid;

use crate::amqp;
use crate::context::{self, Context};
use crate::format;

/// The work queue (and routing key) of OTP sends.
pub const QUEUE: &str = "otp.send";

/// The work queue (and routing key) of OTP verifications.
pub const VERIFY_QUEUE: &str = "otp.verify";

/// `pasarela otp ...`.
#[derive(Debug, Subcommand)]
pub enum OtpCommand {
    /// Publish an otp.send message to the work exchange and print its request_id.
    Send(SendArgs),
    /// Check a code for a send over RPC and print the outcome; exits 0 only when it is verified.
    Verify(VerifyArgs),
}

/// Flags of `pasarela otp verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The request_id of the otp.send.
    pub request_id: Uuid,
    /// The code the user typed; `-` reads it from standard input (keeps it out of shell history).
    pub code: String,
    /// The verification_id (and message_id); a fresh UUID v4 when absent.
    #[arg(long)]
    pub verification_id: Option<Uuid>,
    /// How long to wait for the reply (30s, 1m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = format::duration)]
    pub timeout: Duration,
}

/// The OTP vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// DANAConnect.
    Danaconnect,
    /// Aldeamo.
    Aldeamo,
    /// The configured order, failing over when a provider is failing.
    Auto,
}

/// The channels a code can go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Channel {
    /// Text message.
    Sms,
    /// E-mail.
    Email,
    /// WhatsApp message.
    Whatsapp,
    /// Voice call.
    Voice,
}

/// The alphabets a code can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodeType {
    /// Digits only.
    Numeric,
    /// Letters and digits.
    Alphanumeric,
    /// Letters only.
    Alphabetic,
}

/// Flags of `pasarela otp send`.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("destination").required(true).multiple(true).args(["mobile", "email"]))]
pub struct SendArgs {
    /// The producer's tenant.
    #[arg(long)]
    pub tenant: String,
    /// The vendor that sends the code.
    #[arg(long, value_enum)]
    pub provider: Provider,
    /// The channel the code goes through.
    #[arg(long, value_enum)]
    pub channel: Channel,
    /// Destination mobile number (E.164, e.g. +573001234567).
    #[arg(long)]
    pub mobile: Option<String>,
    /// Destination e-mail address.
    #[arg(long)]
    pub email: Option<String>,
    /// The code's alphabet.
    #[arg(long, value_enum, default_value_t = CodeType::Numeric)]
    pub code_type: CodeType,
    /// The code's length in characters.
    #[arg(long, default_value_t = 6)]
    pub length: u32,
    /// The code's lifetime in seconds [default: 300 through DANAConnect; through Aldeamo, the
    /// configuration's (ALDEAMO_CONFIG_EXPIRY)].
    #[arg(long, value_name = "SECONDS")]
    pub expires_in: Option<u32>,
    /// Wrong answers allowed (the vendor's default when absent).
    #[arg(long)]
    pub max_tries: Option<u32>,
    /// DANAConnect conversation id (required with --provider danaconnect or auto): an active
    /// conversation of the account, from DANAConnect's activation report.
    #[arg(long)]
    pub conversation: Option<i64>,
    /// A DANAConnect contact-list value, such as the destination's field; repeat for more.
    #[arg(long = "value", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub values: Vec<(String, String)>,
    /// A DANAConnect conversation parameter; repeat for more.
    #[arg(long = "parameter", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub parameters: Vec<(String, String)>,
    /// Aldeamo configuration id (required with --provider aldeamo).
    #[arg(long)]
    pub config_id: Option<String>,
    /// Aldeamo OTP id, at most 20 characters.
    #[arg(long)]
    pub otp_id: Option<String>,
    /// The request_id (and message_id); a fresh UUID v4 when absent.
    #[arg(long)]
    pub request_id: Option<Uuid>,
    /// Wait for the worker's reply and print it.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (30s, 1m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = format::duration, requires = "wait")]
    pub wait_timeout: Duration,
}

/// The lifetime a DANAConnect code gets when `--expires-in` is not given, in seconds.
const DANACONNECT_EXPIRES_IN: u32 = 300;

/// Parses `KEY=VALUE`.
fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

impl Provider {
    fn as_str(self) -> &'static str {
        match self {
            Provider::Danaconnect => "danaconnect",
            Provider::Aldeamo => "aldeamo",
            Provider::Auto => "auto",
        }
    }
}

impl Channel {
    /// The contract's name, as `otp_requests.channel` stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Whatsapp => "whatsapp",
            Channel::Voice => "voice",
        }
    }
}

impl CodeType {
    fn as_str(self) -> &'static str {
        match self {
            CodeType::Numeric => "numeric",
            CodeType::Alphanumeric => "alphanumeric",
            CodeType::Alphabetic => "alphabetic",
        }
    }
}

/// Builds the `otp.send` body the flags describe, with the chosen provider's block (both, for `auto`,
/// when `--config-id` names the Aldeamo configuration to fail over to).
pub fn build_message(args: &SendArgs, request_id: Uuid) -> anyhow::Result<OtpSend> {
    let danaconnect_block = || -> anyhow::Result<DanaConnectBlock> {
        Ok(DanaConnectBlock {
            id_conversation: args.conversation.context(
                "--provider danaconnect and auto need --conversation, an active DANAConnect conversation id",
            )?,
            values: args
                .values
                .iter()
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            parameters: args.parameters.iter().cloned().collect(),
        })
    };
    let aldeamo_block = |config_id: String| AldeamoBlock {
        config_id,
        otp_id: args.otp_id.clone(),
    };
    let (danaconnect, aldeamo) = match args.provider {
        Provider::Danaconnect => (Some(danaconnect_block()?), None),
        Provider::Aldeamo => {
            let config_id = args
                .config_id
                .clone()
                .context("--provider aldeamo needs --config-id")?;
            (None, Some(aldeamo_block(config_id)))
        }
        Provider::Auto => (
            Some(danaconnect_block()?),
            args.config_id.clone().map(aldeamo_block),
        ),
    };
    Ok(OtpSend {
        request_id,
        tenant: args.tenant.clone(),
        provider: args.provider.as_str().into(),
        channel: args.channel.as_str().into(),
        destination: Destination {
            mobile: args.mobile.clone(),
            email: args.email.clone(),
        },
        code: CodeSpec {
            code_type: args.code_type.as_str().into(),
            length: args.length,
            expires_in_s: args.expires_in.or_else(|| {
                // DANAConnect needs a lifetime; Aldeamo's configuration has its own.
                (!matches!(args.provider, Provider::Aldeamo)).then_some(DANACONNECT_EXPIRES_IN)
            }),
            max_tries: args.max_tries,
        },
        danaconnect,
        aldeamo,
    })
}

/// An `otp.send` work message for the work exchange: message_id = request_id, JSON, persistent.
pub fn outbound(exchange: String, message: &OtpSend) -> OutboundMessage {
    let body = serde_json::to_value(message).expect("an OtpSend always serialises");
    let mut out = OutboundMessage::json(exchange, QUEUE, &body);
    out.message_id = Some(message.request_id.to_string());
    out
}

/// Runs `pasarela otp ...`.
pub async fn run(command: OtpCommand) -> anyhow::Result<ExitCode> {
    match command {
        OtpCommand::Send(args) => send(args).await,
        OtpCommand::Verify(args) => verify(args).await,
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let code = if args.code == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the code from standard input")?;
        line.trim().to_string()
    } else {
        args.code.clone()
    };
    let verification_id = args.verification_id.unwrap_or_else(Uuid::new_v4);
    let body = serde_json::json!({
        "verification_id": verification_id.to_string(),
        "request_id": args.request_id.to_string(),
        "code": code,
    });
    let ctx = Context::from_env()?;
    let connection = ctx.broker().await?;
    amqp::ensure_work_topology(&connection, &ctx.settings, VERIFY_QUEUE).await?;
    let mut out = OutboundMessage::json(ctx.names.work_exchange(), VERIFY_QUEUE, &body);
    out.message_id = Some(verification_id.to_string());
    let timeout = args.timeout;
    let reply = amqp::rpc(&connection, out, timeout).await;
    context::close(&connection).await;
    match reply? {
        Some(body) => {
            let json: serde_json::Value =
                serde_json::from_slice(&body).context("the reply is not JSON")?;
            let outcome = json["outcome"].as_str().unwrap_or("unknown");
            // stdout holds the reply alone, so a script can read it as JSON.
            eprintln!("{outcome}");
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(if outcome == "verified" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => {
            eprintln!(
                "no reply within {}s; is otp-verify running? see `pasarela status {verification_id}`",
                timeout.as_secs()
            );
            Ok(crate::exit::timed_out())
        }
    }
}

async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let request_id = args.request_id.unwrap_or_else(Uuid::new_v4);
    let message = build_message(&args, request_id)?;
    let ctx = Context::from_env()?;
    let connection = ctx.broker().await?;
    amqp::ensure_work_topology(&connection, &ctx.settings, QUEUE).await?;
    let out = outbound(ctx.names.work_exchange(), &message);

    if !args.wait {
        let publisher = Publisher::new();
        publisher.attach(&connection).await?;
        publisher
            .publish(&out)
            .await
            .context("publishing otp.send")?;
        println!("{request_id}");
        context::close(&connection).await;
        return Ok(ExitCode::SUCCESS);
    }

    let timeout = args.wait_timeout;
    // stdout holds the reply alone, so a script can read it as JSON.
    eprintln!("{request_id}");
    let reply = amqp::rpc(&connection, out, timeout).await;
    context::close(&connection).await;
    match reply? {
        Some(body) => {
            let json: serde_json::Value =
                serde_json::from_slice(&body).context("the reply is not JSON")?;
            println!("{}", serde_json::to_string_pretty(&json)?);
            // 0 only for a send the vendor took.
            Ok(if json["status"] == "sent" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => {
            eprintln!(
                "no reply within {}s; the message was published, see `pasarela status {request_id}`",
                timeout.as_secs()
            );
            Ok(crate::exit::timed_out())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SendArgs,
    }

    fn parse(extra: &[&str]) -> Result<SendArgs, clap::Error> {
        let base = ["otp-send", "--tenant", "acme", "--provider"];
        Wrapper::try_parse_from(base.iter().chain(extra)).map(|w| w.args)
    }

    #[test]
    fn the_body_follows_the_contract() {
        let args = parse(&[
            "danaconnect",
            "--channel",
            "sms",
            "--mobile",
            "+573001234567",
            "--length",
            "8",
            "--max-tries",
            "3",
            "--conversation",
            "824541",
            "--value",
            "COD1_EMAIL=ana@example.com",
            "--value",
            "COD1_NOMBRE=Ana = Ana",
            "--parameter",
            "campaign=spring",
        ])
        .unwrap();
        let id = Uuid::new_v4();
        let body = serde_json::to_value(build_message(&args, id).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "request_id": id.to_string(), "tenant": "acme", "provider": "danaconnect",
                "channel": "sms", "destination": { "mobile": "+573001234567" },
                "code": { "type": "numeric", "length": 8, "expires_in_s": 300, "max_tries": 3 },
                "danaconnect": { "id_conversation": 824541, "values": [
                    { "key": "COD1_EMAIL", "value": "ana@example.com" },
                    { "key": "COD1_NOMBRE", "value": "Ana = Ana" } ],
                    "parameters": { "campaign": "spring" } }
            })
        );
        let without = parse(&[
            "danaconnect",
            "--channel",
            "sms",
            "--mobile",
            "+573001234567",
        ])
        .unwrap();
        let refused = build_message(&without, id).unwrap_err().to_string();
        assert!(
            refused.contains("--conversation"),
            "no example id by default: {refused}"
        );
        let out = outbound("ns.pasarela".into(), &build_message(&args, id).unwrap());
        assert_eq!(out.message_id.as_deref(), Some(id.to_string().as_str()));
        assert_eq!(out.routing_key, "otp.send");
        assert_eq!(out.exchange, "ns.pasarela");
    }

    #[test]
    fn aldeamo_needs_its_config_and_gets_only_its_block() {
        let args = parse(&["aldeamo", "--channel", "email", "--email", "a@b.co"]).unwrap();
        assert!(build_message(&args, Uuid::nil()).is_err());
        let args = parse(&[
            "aldeamo",
            "--channel",
            "email",
            "--email",
            "a@b.co",
            "--config-id",
            "cfg-1",
        ])
        .unwrap();
        let body = serde_json::to_value(build_message(&args, Uuid::nil()).unwrap()).unwrap();
        assert_eq!(body["aldeamo"]["config_id"], "cfg-1");
        assert!(body.get("danaconnect").is_none());
    }

    #[test]
    fn a_destination_and_well_formed_values_are_required() {
        assert!(parse(&["danaconnect", "--channel", "sms"]).is_err());
        assert!(
            parse(&[
                "danaconnect",
                "--channel",
                "sms",
                "--mobile",
                "+57",
                "--value",
                "novalue"
            ])
            .is_err()
        );
    }
}
