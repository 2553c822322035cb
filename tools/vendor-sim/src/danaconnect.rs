//! DANAConnect's OTP API as its document describes it (docs/vendors/danaconnect.md).
//!
//! Basic auth with `user@IDCompany`; `/send` checks type (1|2 → 07), length (3..12 → 08),
//! secondsExpiration (1..3200 → 09), the conversation (→ 10) and the request's shape (→ 15: `values`
//! not a list of `{key, value}` strings, `parameters` not a map of strings), then "delivers" the code to
//! the inbox; `/verify` answers 01, 03 expired, 04 "Incorrect code", 14 already used and 16 after
//! `maximumTries` wrong answers. A code is single use. The same code reads differently per service:
//! `/send`'s 04 is "Failed", `/verify`'s is "Incorrect code".

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rand::Rng;
use serde_json::{Value, json};

use crate::{InboxEntry, Sim};

const VENDOR: &str = "danaconnect";

/// Codes issued and their state.
#[derive(Default)]
pub struct DanaState {
    next_id: AtomicI64,
    codes: Mutex<HashMap<i64, IssuedCode>>,
}

struct IssuedCode {
    code: String,
    expires_at: Instant,
    max_tries: u32,
    failed: u32,
    used: bool,
}

/// The document's words for `code` from the service `op` (`send` or `verify`).
fn description(op: &str, code: &str) -> &'static str {
    match code {
        "01" => "Success",
        "03" => "Expired Code",
        "04" if op == "verify" => "Incorrect code",
        "04" => "Failed",
        "05" => "Maintenance Service",
        "06" => "Error: Invalid credentials",
        "07" => "Incorrect type, Enter 1 Number or 2 Alphanumeric",
        "08" => "Incorrect length, allowable range 3 to 12",
        "09" => "Incorrect expiration time, allowed range 1 to 3200",
        "10" => "Incorrect IDConversation",
        "14" => "IdRequest has already been used",
        "16" => "Maximum failed attempts allowed",
        _ => "Incorrect Request",
    }
}

fn answer(op: &str, code: &str, id_request: Option<i64>) -> Response {
    let mut body = json!({ "responseCode": code, "responseDescription": description(op, code) });
    if let Some(id) = id_request {
        body["idRequest"] = id.into();
    }
    let status = if code == "06" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

/// Checks Basic auth; returns the login when it is the configured one.
fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<String, String> {
    let expected = format!(
        "{}@{}",
        sim.config.danaconnect_user, sim.config.danaconnect_company
    );
    match crate::basic_credentials(headers) {
        Some((login, password))
            if login == expected && password == sim.config.danaconnect_password =>
        {
            Ok(login)
        }
        Some((login, _)) => Err(login),
        None => Err(String::new()),
    }
}

fn int_field(body: &Value, name: &str) -> Option<i64> {
    body.get(name).and_then(Value::as_i64)
}

fn generate(otp_type: i64, length: usize) -> String {
    const DIGITS: &[u8] = b"0123456789";
    const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    let alphabet = if otp_type == 1 { DIGITS } else { ALNUM };
    let mut rng = rand::rng();
    (0..length)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// Where the conversation would deliver: the first contact value that looks like an address.
fn destination(body: &Value, id_conversation: i64) -> String {
    body.get("values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|kv| kv.get("value").and_then(Value::as_str))
        .find(|v| v.contains('@') || v.starts_with('+'))
        .map(str::to_string)
        .unwrap_or_else(|| format!("conversation:{id_conversation}"))
}

async fn send(State(sim): State<Sim>, headers: HeaderMap, raw: String) -> Response {
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let login = authenticate(&sim, &headers);
    let login_seen = Some(login.clone().unwrap_or_else(|l| l));
    let forced = match sim.intake(VENDOR, "send", login_seen, body.clone()).await {
        Ok(forced) => forced,
        Err(response) => return response,
    };
    if login.is_err() {
        return answer("send", "06", None);
    }
    if let Some(code) = forced.filter(|c| c != "01") {
        return answer("send", &code, None);
    }
    if !body.is_object() {
        return answer("send", "15", None);
    }
    let values_ok = match body.get("values") {
        None => true,
        Some(Value::Array(items)) => items.iter().all(|kv| {
            kv.get("key").is_some_and(Value::is_string)
                && kv.get("value").is_some_and(Value::is_string)
        }),
        Some(_) => false,
    };
    let parameters_ok = match body.get("parameters") {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.values().all(Value::is_string),
        Some(_) => false,
    };
    let tries = match body.get("maximumTries") {
        None => Some(5),
        Some(v) => v.as_i64().filter(|t| *t >= 1),
    };
    if !values_ok || !parameters_ok || tries.is_none() {
        return answer("send", "15", None);
    }
    let conversation = int_field(&body, "idConversation");
    let active = |id: i64| {
        id > 0
            && (sim.config.danaconnect_conversations.is_empty()
                || sim.config.danaconnect_conversations.contains(&id))
    };
    let Some(id_conversation) = conversation.filter(|id| active(*id)) else {
        return answer("send", "10", None);
    };
    let otp_type = int_field(&body, "type").filter(|t| *t == 1 || *t == 2);
    let Some(otp_type) = otp_type else {
        return answer("send", "07", None);
    };
    let Some(length) = int_field(&body, "length").filter(|l| (3..=12).contains(l)) else {
        return answer("send", "08", None);
    };
    let Some(seconds) = int_field(&body, "secondsExpiration").filter(|s| (1..=3200).contains(s))
    else {
        return answer("send", "09", None);
    };
    let id_request = sim.danaconnect.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let code = generate(otp_type, length as usize);
    sim.danaconnect.codes.lock().expect("codes").insert(
        id_request,
        IssuedCode {
            code: code.clone(),
            expires_at: Instant::now() + Duration::from_secs(seconds as u64),
            max_tries: tries.unwrap_or(5) as u32,
            failed: 0,
            used: false,
        },
    );
    sim.deliver(InboxEntry {
        vendor: VENDOR.into(),
        to: destination(&body, id_conversation),
        code,
        request_id: id_request.to_string(),
        at: chrono::Utc::now().to_rfc3339(),
    });
    let body = json!({
        "idRequest": id_request,
        "responseCode": "01",
        "responseDescription": "Success",
        "conversationRequestId": uuid::Uuid::new_v4().to_string(),
    });
    (StatusCode::OK, Json(body)).into_response()
}

async fn verify(State(sim): State<Sim>, headers: HeaderMap, raw: String) -> Response {
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let login = authenticate(&sim, &headers);
    // The code the user typed is not recorded: only that a verify came for this request.
    let recorded = json!({ "idRequest": body.get("idRequest").cloned().unwrap_or(Value::Null) });
    let login_seen = Some(login.clone().unwrap_or_else(|l| l));
    let forced = match sim.intake(VENDOR, "verify", login_seen, recorded).await {
        Ok(forced) => forced,
        Err(response) => return response,
    };
    if login.is_err() {
        return answer("verify", "06", None);
    }
    let id = int_field(&body, "idRequest");
    if let Some(code) = forced.filter(|c| c != "01") {
        return answer("verify", &code, id);
    }
    let (Some(id), Some(otp)) = (id, body.get("otp").and_then(Value::as_str)) else {
        return answer("verify", "15", None);
    };
    let mut codes = sim.danaconnect.codes.lock().expect("codes");
    let Some(issued) = codes.get_mut(&id) else {
        return answer("verify", "15", Some(id));
    };
    let code = if issued.used {
        "14"
    } else if issued.failed >= issued.max_tries {
        "16"
    } else if Instant::now() >= issued.expires_at {
        "03"
    } else if issued.code != otp {
        issued.failed += 1;
        "04"
    } else {
        issued.used = true;
        "01"
    };
    answer("verify", code, Some(id))
}

/// The routes under `/danaconnect/otp/1.0`.
pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/send", post(send))
        .route("/verify", post(verify))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_requested_alphabet_and_length() {
        let numeric = generate(1, 12);
        assert_eq!(numeric.len(), 12);
        assert!(numeric.chars().all(|c| c.is_ascii_digit()));
        let alnum = generate(2, 3);
        assert_eq!(alnum.len(), 3);
        assert!(alnum.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn the_destination_is_the_first_address_among_the_values() {
        let body = json!({"values": [{"key": "NAME", "value": "Ana"},
                                     {"key": "COD1_EMAIL", "value": "ana@example.com"}]});
        assert_eq!(destination(&body, 1), "ana@example.com");
        assert_eq!(destination(&json!({}), 7), "conversation:7");
    }
}
