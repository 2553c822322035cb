//! `pasarela dlq show <id>`: one dead letter whole, its secrets redacted.

use std::process::ExitCode;

use chrono::SecondsFormat;
use clap::Args;
use pasarela_shared::store::dead_letters::{self, Letter};
use serde::Serialize;
use serde_json::Value;

use crate::context::Context;
use crate::format::Format;

/// Flags of `pasarela dlq show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The dead letter's id (from `dlq list`), or its message's message_id.
    pub id: String,
    /// table or json.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// The words that mark a field as a secret, whole or as the end of a longer name (`client_secret`,
/// `api_token`); a value under one is printed as `[REDACTED]`.
const SECRET_WORDS: [&str; 13] = [
    "password",
    "secret",
    "token",
    "code",
    "otp",
    "pin",
    "authorization",
    "apikey",
    "api_key",
    "signature",
    "credential",
    "credentials",
    "cvv",
];

fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    SECRET_WORDS
        .iter()
        .any(|w| key == *w || key.ends_with(&format!("_{w}")))
}

/// `value` with every scalar under a secret-looking key replaced, at any depth.
pub fn redact(value: &Value) -> Value {
    redact_under(value, false)
}

/// An object under a secret-looking key is read on rather than hidden whole, because otp.send's
/// `code` is the code's shape (type, length, expiry), not a code; its own keys decide its fields.
fn redact_under(value: &Value, secret: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_under(v, is_secret(k))))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| redact_under(v, secret)).collect())
        }
        Value::Null => Value::Null,
        _ if secret => Value::String("[REDACTED]".into()),
        other => other.clone(),
    }
}

/// The body for printing: JSON redacted; anything else by its size only, as it cannot be redacted.
pub(crate) fn printable_body(body: Option<&[u8]>) -> Value {
    match body {
        None => Value::Null,
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(json) => redact(&json),
            Err(_) => Value::String(format!("({} bytes, not JSON: not shown)", bytes.len())),
        },
    }
}

/// `dlq show --format json`: the letter with its body and headers redacted.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    letter: &'a Letter,
    body: Value,
}

/// Runs `pasarela dlq show`.
pub async fn run(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let Some(mut letter) = dead_letters::letter(&pool, &args.id).await? else {
        eprintln!("no dead letter has id or message_id {:?}", args.id);
        return Ok(ExitCode::FAILURE);
    };
    letter.headers = letter.headers.as_ref().map(redact);
    let body = printable_body(letter.body.as_deref());
    if args.format == Format::Json {
        let shown = Shown {
            letter: &letter,
            body,
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    println!("dead letter {} of {}", letter.id, letter.queue);
    println!(
        "  message_id   {}",
        letter.message_id.as_deref().unwrap_or("-")
    );
    println!("  kind         {}", letter.kind);
    println!("  reason       {}", letter.reason);
    if let Some(a) = letter.attempts {
        println!("  attempts     {a}");
    }
    println!("  dead since   {}", time(letter.created_at));
    match (letter.replayed_at, letter.discarded_at) {
        (Some(t), _) => println!("  replayed     {}", time(t)),
        (None, Some(t)) => println!(
            "  discarded    {} ({})",
            time(t),
            letter.discard_reason.as_deref().unwrap_or("no reason")
        ),
        (None, None) => {
            println!("  state        open (in the .dead queue until replayed or discarded)")
        }
    }
    println!("headers:");
    println!(
        "{}",
        serde_json::to_string_pretty(letter.headers.as_ref().unwrap_or(&Value::Null))?
    );
    println!("body:");
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_the_rest_kept() {
        let body = serde_json::json!({
            "request_id": "r-1",
            "otp": "123456",
            "credentials": {"user": "u", "password": "p"},
            "items": [{"api_token": "t", "amount": 5}],
            "pins": {"pin": ["4321"]},
            "headers": {"Authorization": "Bearer x", "x-client-secret": "s"}
        });
        let out = redact(&body).to_string();
        for secret in ["123456", "\"p\"", "\"t\"", "4321", "Bearer x", "\"s\""] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("r-1") && out.contains("\"amount\":5"), "{out}");
    }

    #[test]
    fn the_shape_of_an_otp_code_is_shown_because_it_is_not_a_code() {
        let body = serde_json::json!({
            "request_id": "r-1",
            "code": {"type": "numeric", "length": 6, "expires_in_s": 300, "max_tries": 5}
        });
        let out = redact(&body);
        assert_eq!(out["code"]["type"], "numeric");
        assert_eq!(out["code"]["length"], 6);
        let verify = redact(&serde_json::json!({"verification_id": "v", "code": "Rf24sG"}));
        assert_eq!(verify["code"], "[REDACTED]");
    }
}
