//! Per-provider rules: which providers a send may use, each one's documented limits checked before
//! any call, and each one's answer mapped to sent, retry, or a final failure.

use std::time::Duration;

use pasarela_shared::contract::errors::{ErrorKind, Failure, Verdict};
use pasarela_shared::contract::messages::{OtpSend, ProviderChoice};
use pasarela_shared::contract::settings::OTP_PROVIDERS;
use pasarela_shared::vendors::aldeamo::{self, AldeamoClient};
use pasarela_shared::vendors::danaconnect::{
    self, ConversationValue, DanaConnectClient, OtpType, SendCode, SendVerdict,
};
use pasarela_shared::vendors::http::VendorError;

/// Verifications allowed when a send names no `max_tries`: DANAConnect's documented default, used for
/// every provider so that the count is one rule.
pub const DEFAULT_MAX_TRIES: u32 = danaconnect::limits::DEFAULT_MAXIMUM_TRIES;

fn rejected(message: impl Into<String>) -> Failure {
    Failure::new(ErrorKind::Rejected, message)
}

/// The providers to try, in order, from the message's choice and the configured `auto` order.
pub fn provider_order(
    choice: &ProviderChoice,
    auto: &[String],
) -> Result<Vec<&'static str>, Failure> {
    let names: Vec<&str> = match choice {
        ProviderChoice::One(name) if name == "auto" => auto.iter().map(String::as_str).collect(),
        ProviderChoice::One(name) => vec![name.as_str()],
        ProviderChoice::List(names) => names.iter().map(String::as_str).collect(),
    };
    if names.is_empty() {
        return Err(rejected("provider: the list is empty"));
    }
    let mut order = Vec::with_capacity(names.len());
    for name in names {
        let Some(known) = OTP_PROVIDERS.iter().find(|p| **p == name) else {
            return Err(rejected(format!(
                "provider: must be danaconnect, aldeamo, auto or a list of them, got {name:?}"
            )));
        };
        if !order.contains(known) {
            order.push(*known);
        }
    }
    Ok(order)
}

/// A send checked against one provider's rules, ready to go.
#[derive(Debug, Clone)]
pub enum PreparedSend {
    /// Through DANAConnect.
    DanaConnect(danaconnect::SendOtpRequest),
    /// Through Aldeamo.
    Aldeamo(aldeamo::SendOtpRequest),
}

/// How one provider's call ended, when it did not send.
#[derive(Debug)]
pub enum SendFailure {
    /// Another attempt, or another provider, may succeed.
    Retryable {
        /// What failed.
        failure: Failure,
        /// The vendor's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The vendor refused pasarela's credentials: fail over, and alert.
    Credentials(Failure),
    /// The send is finished with this status (`rejected` or `failed`): no provider will do better.
    Final {
        /// The terminal status.
        status: &'static str,
        /// Why.
        failure: Failure,
    },
}

/// What one provider said.
#[derive(Debug)]
pub struct ProviderAnswer {
    /// The vendor's id for the request.
    pub request_id: Option<String>,
    /// The vendor's response code or sending status.
    pub code: Option<String>,
    /// The vendor's id for tracking the run (DANAConnect's `conversationRequestId`).
    pub tracking_id: Option<String>,
    /// The vendor's words for its code (DANAConnect's `responseDescription`).
    pub description: Option<String>,
    /// Sent, or why not.
    pub verdict: Result<(), SendFailure>,
}

impl ProviderAnswer {
    fn failed(e: &VendorError) -> Self {
        let verdict = match e.verdict() {
            Verdict::Retry { failure, after } => SendFailure::Retryable {
                failure,
                retry_after: after,
            },
            Verdict::GiveUp(failure) if failure.kind == ErrorKind::Auth => {
                SendFailure::Credentials(failure)
            }
            Verdict::GiveUp(failure) => match e {
                // A 4xx the vendor gives for a request it will not take: the input is wrong.
                VendorError::Status { status, .. } if (400..500).contains(status) => {
                    SendFailure::Final {
                        status: "rejected",
                        failure: Failure::new(ErrorKind::Rejected, failure.message),
                    }
                }
                _ => SendFailure::Final {
                    status: "failed",
                    failure,
                },
            },
        };
        Self {
            request_id: None,
            code: None,
            tracking_id: None,
            description: None,
            verdict: Err(verdict),
        }
    }
}

impl PreparedSend {
    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::DanaConnect(_) => "danaconnect",
            Self::Aldeamo(_) => "aldeamo",
        }
    }

    /// How long the code lives, in seconds: what DANAConnect was asked for, or for Aldeamo the
    /// producer's override, else the configuration's lifetime in `expiry`.
    pub fn lifetime_s(&self, m: &OtpSend, expiry: &aldeamo::ConfigExpiry) -> u32 {
        match self {
            Self::DanaConnect(r) => r.seconds_expiration,
            Self::Aldeamo(r) => expiry.lifetime_s(&r.config_id, m.code.expires_in_s),
        }
    }

    /// The key Aldeamo validates by, when it is the provider.
    pub fn otp_id(&self) -> Option<String> {
        match self {
            Self::DanaConnect(_) => None,
            Self::Aldeamo(r) => Some(r.otp_id.clone()),
        }
    }

    /// Sends it and maps the answer.
    pub async fn call(
        &self,
        danaconnect: &DanaConnectClient,
        aldeamo: &AldeamoClient,
        channel: &str,
    ) -> ProviderAnswer {
        match self {
            Self::DanaConnect(request) => match danaconnect.send(request).await {
                Ok(r) => {
                    let code = SendCode::parse(&r.response_code);
                    let described = format!("danaconnect {}: {}", r.response_code, code.meaning());
                    let verdict = match code.verdict() {
                        SendVerdict::Sent => Ok(()),
                        SendVerdict::Retry => Err(SendFailure::Retryable {
                            failure: Failure::new(ErrorKind::Vendor, described),
                            retry_after: None,
                        }),
                        SendVerdict::AuthFailed => Err(SendFailure::Credentials(Failure::new(
                            ErrorKind::Auth,
                            described,
                        ))),
                        SendVerdict::Rejected => Err(SendFailure::Final {
                            status: "rejected",
                            failure: rejected(described),
                        }),
                        SendVerdict::Unknown => Err(SendFailure::Final {
                            status: "failed",
                            failure: Failure::new(ErrorKind::Vendor, described),
                        }),
                    };
                    ProviderAnswer {
                        request_id: r.id_request.map(|id| id.to_string()),
                        code: Some(r.response_code),
                        tracking_id: r.conversation_request_id,
                        description: r.response_description,
                        verdict,
                    }
                }
                Err(e) => ProviderAnswer::failed(&e),
            },
            Self::Aldeamo(request) => match aldeamo.send(request).await {
                Ok(r) => {
                    let verdict = match r.verdict(channel) {
                        aldeamo::SendVerdict::Sent => Ok(()),
                        // The code did not go out on the channel: another attempt may get through.
                        aldeamo::SendVerdict::NotSent(status) => Err(SendFailure::Retryable {
                            failure: Failure::new(
                                ErrorKind::Vendor,
                                format!("aldeamo: {channel} sending status {status:?}"),
                            ),
                            retry_after: None,
                        }),
                    };
                    let code = r.status_of(channel).map(str::to_string);
                    ProviderAnswer {
                        request_id: Some(r.otp_transaction_id),
                        code,
                        tracking_id: None,
                        description: None,
                        verdict,
                    }
                }
                Err(e) => ProviderAnswer::failed(&e),
            },
        }
    }
}

/// Checks the send against every provider in `order` and keeps those it fits. With one provider, a
/// misfit is the answer; with several, the send goes through those it fits, and only when it fits
/// none is it refused, with each provider's reason.
pub fn prepare(m: &OtpSend, order: &[&'static str]) -> Result<Vec<PreparedSend>, Failure> {
    let mut fits = Vec::with_capacity(order.len());
    let mut reasons = Vec::new();
    for provider in order {
        let prepared = match *provider {
            "danaconnect" => danaconnect_request(m).map(PreparedSend::DanaConnect),
            _ => aldeamo_request(m).map(PreparedSend::Aldeamo),
        };
        match prepared {
            Ok(p) => fits.push(p),
            Err(f) => reasons.push(f.message),
        }
    }
    if fits.is_empty() {
        return Err(rejected(reasons.join("; ")));
    }
    Ok(fits)
}

/// Checks a send against DANAConnect's documented limits and builds its request; a refusal names the
/// field and the allowed range.
pub fn danaconnect_request(m: &OtpSend) -> Result<danaconnect::SendOtpRequest, Failure> {
    let otp_type = match m.code.code_type.as_str() {
        "numeric" => OtpType::Numeric,
        "alphanumeric" => OtpType::Alphanumeric,
        other => {
            return Err(rejected(format!(
                "code.type: danaconnect supports numeric or alphanumeric, got {other:?}"
            )));
        }
    };
    let range = danaconnect::limits::LENGTH;
    if !range.contains(&m.code.length) {
        return Err(rejected(format!(
            "code.length: danaconnect allows {} to {}, got {}",
            range.start(),
            range.end(),
            m.code.length
        )));
    }
    let range = danaconnect::limits::SECONDS_EXPIRATION;
    let Some(seconds_expiration) = m.code.expires_in_s else {
        return Err(rejected(format!(
            "code.expires_in_s: danaconnect needs the code's lifetime, {} to {} seconds",
            range.start(),
            range.end()
        )));
    };
    if !range.contains(&seconds_expiration) {
        return Err(rejected(format!(
            "code.expires_in_s: danaconnect allows {} to {} seconds, got {seconds_expiration}",
            range.start(),
            range.end(),
        )));
    }
    let maximum_tries = m.code.max_tries.unwrap_or(DEFAULT_MAX_TRIES);
    if maximum_tries == 0 {
        return Err(rejected("code.max_tries: must be at least 1, got 0"));
    }
    let block = m.danaconnect.as_ref().ok_or_else(|| {
        rejected("danaconnect: this block is required when sending through danaconnect")
    })?;
    if block.id_conversation <= 0 {
        return Err(rejected(format!(
            "danaconnect.id_conversation: must be a positive conversation id, got {}",
            block.id_conversation
        )));
    }
    Ok(danaconnect::SendOtpRequest {
        id_conversation: block.id_conversation,
        values: block
            .values
            .iter()
            .map(|kv| ConversationValue {
                key: kv.key.clone(),
                value: kv.value.clone(),
            })
            .collect(),
        parameters: block.parameters.clone(),
        otp_type: otp_type as u8,
        length: m.code.length,
        seconds_expiration,
        maximum_tries,
    })
}

/// Checks a send against Aldeamo's documented limits and builds its request. The code's shape is set
/// by the Aldeamo configuration, not the request, so the message's is checked against what a
/// configuration may hold.
pub fn aldeamo_request(m: &OtpSend) -> Result<aldeamo::SendOtpRequest, Failure> {
    let block = m
        .aldeamo
        .as_ref()
        .ok_or_else(|| rejected("aldeamo: this block is required when sending through aldeamo"))?;
    if block.config_id.trim().is_empty() {
        return Err(rejected("aldeamo.config_id: must not be empty"));
    }
    if !aldeamo::limits::TYPES.contains(&m.code.code_type.as_str()) {
        return Err(rejected(format!(
            "code.type: aldeamo supports numeric, alphanumeric or alphabetic, got {:?}",
            m.code.code_type
        )));
    }
    let range = aldeamo::limits::LENGTH;
    if !range.contains(&m.code.length) {
        return Err(rejected(format!(
            "code.length: aldeamo allows {} to {}, got {}",
            range.start(),
            range.end(),
            m.code.length
        )));
    }
    if let Some(seconds) = m.code.expires_in_s
        && (seconds == 0 || seconds > aldeamo::limits::MAX_EXPIRY_S)
    {
        return Err(rejected(format!(
            "code.expires_in_s: aldeamo allows 1 to {} seconds (120 minutes), got {seconds}",
            aldeamo::limits::MAX_EXPIRY_S,
        )));
    }
    if m.code.max_tries == Some(0) {
        return Err(rejected("code.max_tries: must be at least 1, got 0"));
    }
    let otp_id = match &block.otp_id {
        Some(id) => {
            aldeamo::check_otp_id(id).map_err(|e| rejected(e.to_string()))?;
            id.clone()
        }
        None => aldeamo::otp_id_for(m.request_id),
    };
    let (mobile, email) = match m.channel.as_str() {
        "email" => {
            let email = m.destination.email.clone().ok_or_else(|| {
                rejected("destination.email: aldeamo requires it for the email channel")
            })?;
            (None, Some(email))
        }
        channel => {
            let mobile = m.destination.mobile.clone().ok_or_else(|| {
                rejected(format!(
                    "destination.mobile: aldeamo requires it for the {channel} channel"
                ))
            })?;
            (Some(mobile), None)
        }
    };
    Ok(aldeamo::SendOtpRequest {
        config_id: block.config_id.clone(),
        otp_id,
        mobile,
        email,
    })
}

/// The destination the fraud guard counts: the channel's address, or for a DANAConnect send without
/// one, the contact-list values that name the recipient.
pub fn guard_key(m: &OtpSend) -> String {
    let address = if m.channel == "email" {
        m.destination.email.as_deref()
    } else {
        m.destination.mobile.as_deref()
    };
    match address {
        Some(a) => a.trim().to_ascii_lowercase(),
        None => {
            let values: Vec<&str> = m
                .danaconnect
                .iter()
                .flat_map(|b| b.values.iter().map(|kv| kv.value.as_str()))
                .collect();
            format!("values:{}", values.join(",").to_ascii_lowercase())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(v: serde_json::Value) -> OtpSend {
        let mut base = serde_json::json!({
            "request_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c11", "tenant": "acme",
            "provider": "danaconnect", "channel": "sms",
            "destination": { "mobile": "+573001234567" },
            "code": { "type": "numeric", "length": 6, "expires_in_s": 300 },
            "danaconnect": { "id_conversation": 824541, "values": [] },
            "aldeamo": { "config_id": "cfg-sms" }
        });
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn code(t: &str, length: u32, expires: u32) -> serde_json::Value {
        serde_json::json!({ "code": { "type": t, "length": length, "expires_in_s": expires } })
    }

    #[test]
    fn danaconnect_limits_are_checked_before_any_call_and_name_the_field() {
        let err = danaconnect_request(&message(code("numeric", 13, 300))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Rejected);
        assert!(
            err.message.contains("code.length") && err.message.contains("3 to 12"),
            "{}",
            err.message
        );
        let err = danaconnect_request(&message(code("numeric", 6, 3201))).unwrap_err();
        assert!(err.message.contains("code.expires_in_s") && err.message.contains("1 to 3200"));
        let err = danaconnect_request(&message(code("alphabetic", 6, 300))).unwrap_err();
        assert!(err.message.contains("code.type"));
        assert!(danaconnect_request(&message(code("numeric", 3, 1))).is_ok());
        let req = danaconnect_request(&message(code("alphanumeric", 12, 3200))).unwrap();
        assert_eq!((req.otp_type, req.length, req.maximum_tries), (2, 12, 5));
    }

    #[test]
    fn aldeamo_rules_are_checked_before_any_call() {
        let long = serde_json::json!({ "aldeamo": { "config_id": "c", "otp_id": "a".repeat(21) } });
        let err = aldeamo_request(&message(long)).unwrap_err();
        assert!(err.message.contains("aldeamo.otp_id"), "{}", err.message);
        let no_mobile = serde_json::json!({ "destination": { "email": "ana@example.com" } });
        let err = aldeamo_request(&message(no_mobile)).unwrap_err();
        assert!(
            err.message.contains("destination.mobile"),
            "{}",
            err.message
        );
        let email =
            serde_json::json!({ "channel": "email", "destination": { "mobile": "+57300" } });
        assert!(
            aldeamo_request(&message(email))
                .unwrap_err()
                .message
                .contains("destination.email")
        );
        let err = aldeamo_request(&message(code("numeric", 9, 300))).unwrap_err();
        assert!(err.message.contains("4 to 8"), "{}", err.message);
        let err = aldeamo_request(&message(code("numeric", 6, 7201))).unwrap_err();
        assert!(err.message.contains("code.expires_in_s"), "{}", err.message);
        let ok = aldeamo_request(&message(code("alphabetic", 8, 7200))).unwrap();
        assert_eq!(ok.otp_id.len(), 20, "derived from request_id");
        assert_eq!(ok.mobile.as_deref(), Some("+573001234567"));
        assert!(ok.email.is_none());
    }

    #[test]
    fn auto_and_lists_give_the_order_to_try() {
        let auto = vec!["danaconnect".to_string(), "aldeamo".to_string()];
        let order = provider_order(&"auto".into(), &auto).unwrap();
        assert_eq!(order, ["danaconnect", "aldeamo"]);
        let list = ProviderChoice::List(vec!["aldeamo".into(), "danaconnect".into()]);
        assert_eq!(
            provider_order(&list, &auto).unwrap(),
            ["aldeamo", "danaconnect"]
        );
        assert!(provider_order(&"twilio".into(), &auto).is_err());
        assert!(provider_order(&ProviderChoice::List(vec![]), &auto).is_err());
    }

    #[test]
    fn failover_keeps_only_the_providers_a_send_fits() {
        // Alphabetic codes are Aldeamo's alone.
        let m = message(code("alphabetic", 6, 300));
        let fits = prepare(&m, &["danaconnect", "aldeamo"]).unwrap();
        assert_eq!(fits.len(), 1);
        assert_eq!(fits[0].provider(), "aldeamo");
        // A send that fits neither names both reasons.
        let m = message(code("alphabetic", 10, 300));
        let err = prepare(&m, &["danaconnect", "aldeamo"]).unwrap_err();
        assert!(err.message.contains("danaconnect") && err.message.contains("aldeamo"));
    }

    #[test]
    fn the_guard_counts_the_channel_address() {
        assert_eq!(guard_key(&message(serde_json::json!({}))), "+573001234567");
        let m = message(serde_json::json!({
            "channel": "email", "destination": { "email": "Ana@Example.com" } }));
        assert_eq!(guard_key(&m), "ana@example.com");
        let m = message(serde_json::json!({ "destination": {},
            "danaconnect": { "id_conversation": 1, "values": [{ "key": "K", "value": "x@y.z" }] } }));
        assert_eq!(guard_key(&m), "values:x@y.z");
    }
}
