//! OTP steps the end-to-end tests share: a send through either vendor, a verification over RPC, and a
//! wrong code of the right shape.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{TestEnv, mobile_for};

/// How long a send or a verification may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// A DANAConnect `otp.send` to the request's own mobile, on conversation 824541.
pub fn danaconnect_send(request_id: Uuid, code_type: &str, length: u32, expires: u32) -> Value {
    let mobile = mobile_for(request_id);
    json!({
        "request_id": request_id.to_string(), "tenant": "acme", "provider": "danaconnect",
        "channel": "sms", "destination": { "mobile": mobile },
        "code": { "type": code_type, "length": length, "expires_in_s": expires, "max_tries": 3 },
        "danaconnect": { "id_conversation": 824541,
                         "values": [ { "key": "COD1_MOBILE", "value": mobile } ] }
    })
}

/// An Aldeamo `otp.send` under `config_id`, with both a mobile and an e-mail.
pub fn aldeamo_send(request_id: Uuid, config_id: &str, channel: &str) -> Value {
    json!({
        "request_id": request_id.to_string(), "tenant": "acme", "provider": "aldeamo",
        "channel": channel,
        "destination": { "mobile": mobile_for(request_id),
                         "email": format!("u{}@example.com", &request_id.simple().to_string()[..10]) },
        "code": { "type": "alphanumeric", "length": 8, "expires_in_s": 600, "max_tries": 3 },
        "aldeamo": { "config_id": config_id }
    })
}

/// Publishes a send and waits for its event.
pub async fn send(env: &mut TestEnv, body: &Value) -> Value {
    let id = body["request_id"].as_str().unwrap().to_string();
    env.publish_to("otp.send", body, &id).await;
    let events = env.events(1, WAIT).await;
    assert_eq!(
        events.len(),
        1,
        "no send event; logs:\n{}",
        env.worker_log()
    );
    assert_eq!(events[0].routing_key, "otp.send.completed");
    events[0].body.clone()
}

/// Verifies `code` for `request_id` over RPC; checks the reply's correlation id and the event, and
/// returns the reply.
pub async fn verify(env: &mut TestEnv, request_id: &str, code: &str) -> Value {
    let verification_id = Uuid::new_v4().to_string();
    let body =
        json!({ "verification_id": verification_id, "request_id": request_id, "code": code });
    let (reply, got, sent) = env
        .rpc("otp.verify", &body, &verification_id, WAIT)
        .await
        .unwrap_or_else(|| panic!("no verify reply; logs:\n{}", env.worker_log()));
    assert_eq!(
        got.as_deref(),
        Some(sent.as_str()),
        "the reply carries the caller's correlation_id"
    );
    assert_eq!(reply["verification_id"], verification_id.as_str());
    let events = env.events(1, WAIT).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].routing_key, "otp.verify.completed");
    assert_eq!(events[0].body["outcome"], reply["outcome"]);
    reply
}

/// The `otp_requests.state` of a request.
pub async fn state_of(env: &TestEnv, request_id: &str) -> String {
    env.query(&format!(
        "SELECT state FROM otp_requests WHERE request_id = '{request_id}'"
    ))
    .await[0]
        .get(0)
}

/// A wrong code of the same shape as `code`.
pub fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| match c {
            '0'..='8' => char::from(c as u8 + 1),
            '9' => '0',
            'a'..='y' | 'A'..='Y' => char::from(c as u8 + 1),
            _ => 'a',
        })
        .collect()
}
