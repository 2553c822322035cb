//! The events on `pasarela.events`, one struct per event (docs/CONTRACT.md): each carries its message's
//! id, the [`Ending`] every event shares, and its own fields. The same body is the RPC reply and what a
//! duplicate of the message gets again.

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use uuid::Uuid;

use crate::contract::errors::Failure;

/// Every routing key an event is published under on `pasarela.events`.
pub const EVENT_KEYS: [&str; 8] = [
    "otp.send.completed",
    "otp.verify.completed",
    "vendor.call.completed",
    "doc.sign.submitted",
    "doc.signed",
    "doc.sign.failed",
    "doc.webhook.delivered",
    "doc.webhook.failed",
];

/// An event body and the routing key it is published under.
pub trait Event: Serialize {
    /// The routing key on `pasarela.events`; empty for a result that is only stored and replied.
    fn routing_key(&self) -> &'static str;

    /// How the message ended.
    fn ending(&self) -> &Ending;
}

/// What every event says of how its message ended.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Ending {
    /// `sent`, `completed`, `rejected`, `failed`, `signed`, ...
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it ended, RFC 3339 in UTC with milliseconds.
    pub completed_at: String,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

impl Ending {
    /// An ending now with `status` after `attempts`, failed with `error` if given.
    pub fn now(status: &str, attempts: u32, error: Option<&Failure>) -> Self {
        Self {
            status: status.to_string(),
            attempts,
            completed_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            error: error.cloned(),
        }
    }
}

/// `otp.send.completed`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OtpSendCompleted {
    /// The producer's `request_id`.
    pub request_id: Uuid,
    /// How it ended.
    #[serde(flatten)]
    pub ending: Ending,
    /// The tenant.
    pub tenant: String,
    /// The provider that served, or the one requested when none did.
    pub provider: String,
    /// The producer's `provider` as asked.
    pub requested_provider: String,
    /// The providers tried, in order.
    pub providers_tried: Vec<String>,
    /// The channel.
    pub channel: String,
    /// The vendor's request id.
    pub vendor_request_id: Option<String>,
    /// The vendor's answer code.
    pub vendor_code: Option<String>,
    /// The vendor's id for tracking the run (DANAConnect's `conversationRequestId`).
    pub vendor_tracking_id: Option<String>,
    /// The vendor's words for its code (DANAConnect's `responseDescription`).
    pub vendor_description: Option<String>,
}

impl Event for OtpSendCompleted {
    fn routing_key(&self) -> &'static str {
        "otp.send.completed"
    }

    fn ending(&self) -> &Ending {
        &self.ending
    }
}

/// `otp.verify.completed`, also the RPC reply.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OtpVerifyCompleted {
    /// The producer's `verification_id`.
    pub verification_id: Uuid,
    /// How it ended.
    #[serde(flatten)]
    pub ending: Ending,
    /// The send verified.
    pub request_id: Uuid,
    /// `verified`, `incorrect`, `expired`, `already_used`, `max_attempts`, `unknown_request`,
    /// `failed` or `vendor_unavailable`.
    pub outcome: &'static str,
    /// The provider that sent the code, when the send is known.
    pub provider: Option<String>,
    /// The send's tenant, when the send is known.
    pub tenant: Option<String>,
}

impl Event for OtpVerifyCompleted {
    fn routing_key(&self) -> &'static str {
        "otp.verify.completed"
    }

    fn ending(&self) -> &Ending {
        &self.ending
    }
}

/// `vendor.call.completed`, also the RPC reply.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VendorCallCompleted {
    /// The producer's `call_id`.
    pub call_id: Uuid,
    /// How it ended.
    #[serde(flatten)]
    pub ending: Ending,
    /// The vendor called.
    pub vendor: String,
    /// The vendor's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// The vendor's answer: JSON, or its text as a JSON string; null without one.
    pub response: serde_json::Value,
}

impl Event for VendorCallCompleted {
    fn routing_key(&self) -> &'static str {
        "vendor.call.completed"
    }

    fn ending(&self) -> &Ending {
        &self.ending
    }
}

/// What a `doc.*` event says about its document beyond the fields every event carries.
#[derive(Debug, Clone, Default)]
pub struct DocumentFacts {
    /// The vendor's id, once it has one.
    pub vendor_document_id: Option<String>,
    /// When the vendor first sent it to sign.
    pub date_sent_to_sign: Option<DateTime<Utc>>,
    /// When it was signed.
    pub signing_date: Option<DateTime<Utc>>,
    /// Who was to sign it.
    pub assigned_active_directory_user: Option<String>,
}

/// The routing keys of a document's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentStep {
    /// `doc.sign.submitted`: the vendor took it.
    Submitted,
    /// `doc.signed`.
    Signed,
    /// `doc.sign.failed`: it will never be signed.
    Failed,
}

/// `doc.sign.submitted`, `doc.signed` and `doc.sign.failed`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DocumentEvent {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// How it ended (or, for `submitted`, how far it got).
    #[serde(flatten)]
    pub ending: Ending,
    /// The vendor's id, once it has one.
    pub vendor_document_id: Option<String>,
    /// When the vendor first sent it to sign, RFC 3339 in seconds.
    pub date_sent_to_sign: Option<String>,
    /// When it was signed, RFC 3339 in seconds.
    pub signing_date: Option<String>,
    /// Who was to sign it.
    pub assigned_active_directory_user: Option<String>,
    /// Which step of the document's life this is.
    #[serde(skip)]
    pub step: DocumentStep,
}

impl DocumentEvent {
    /// The event of `step` for `document_id`, with what is known of it.
    pub fn new(
        document_id: Uuid,
        step: DocumentStep,
        ending: Ending,
        facts: &DocumentFacts,
    ) -> Self {
        let time =
            |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        Self {
            document_id,
            ending,
            vendor_document_id: facts.vendor_document_id.clone(),
            date_sent_to_sign: time(facts.date_sent_to_sign),
            signing_date: time(facts.signing_date),
            assigned_active_directory_user: facts.assigned_active_directory_user.clone(),
            step,
        }
    }
}

impl Event for DocumentEvent {
    fn routing_key(&self) -> &'static str {
        match self.step {
            DocumentStep::Submitted => "doc.sign.submitted",
            DocumentStep::Signed => "doc.signed",
            DocumentStep::Failed => "doc.sign.failed",
        }
    }

    fn ending(&self) -> &Ending {
        &self.ending
    }
}

/// The stored result of a `doc.callback` that finished nothing (still in progress, already finished
/// by another message, or unknown): kept for duplicates, published nowhere.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CallbackChecked {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// How the check ended.
    #[serde(flatten)]
    pub ending: Ending,
    /// `webhook` or `poll`.
    pub source: String,
}

impl Event for CallbackChecked {
    fn routing_key(&self) -> &'static str {
        ""
    }

    fn ending(&self) -> &Ending {
        &self.ending
    }
}

/// `doc.webhook.delivered` and `doc.webhook.failed`: how a client webhook ended.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WebhookEvent {
    /// The document the webhook was about.
    pub document_id: Uuid,
    /// How the delivery ended; `attempts` counts its attempts.
    #[serde(flatten)]
    pub ending: Ending,
    /// The document's vendor id, as the webhook carried it.
    pub vendor_document_id: serde_json::Value,
    /// As the webhook carried it.
    pub date_sent_to_sign: serde_json::Value,
    /// As the webhook carried it.
    pub signing_date: serde_json::Value,
    /// As the webhook carried it.
    pub assigned_active_directory_user: serde_json::Value,
    /// The client's endpoint.
    pub url: String,
    /// The endpoint's last HTTP status, when it answered.
    pub http_status: Option<i32>,
    /// The Standard Webhooks `webhook-id` of every attempt.
    pub webhook_id: String,
    /// The webhook's `type`, e.g. `document.signed`.
    pub event_type: serde_json::Value,
}

impl Event for WebhookEvent {
    fn routing_key(&self) -> &'static str {
        if self.ending.status == "delivered" {
            "doc.webhook.delivered"
        } else {
            "doc.webhook.failed"
        }
    }

    fn ending(&self) -> &Ending {
        &self.ending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::errors::ErrorKind;

    /// Every event a type can publish is one of `EVENT_KEYS`, and every key has its type.
    #[test]
    fn every_routing_key_is_listed() {
        let ending = Ending::now("delivered", 1, None);
        let facts = DocumentFacts::default();
        let mut keys: Vec<&str> = [
            DocumentStep::Submitted,
            DocumentStep::Signed,
            DocumentStep::Failed,
        ]
        .into_iter()
        .map(|step| DocumentEvent::new(Uuid::nil(), step, ending.clone(), &facts).routing_key())
        .collect();
        let webhook = |status: &str| WebhookEvent {
            document_id: Uuid::nil(),
            ending: Ending::now(status, 1, None),
            vendor_document_id: serde_json::Value::Null,
            date_sent_to_sign: serde_json::Value::Null,
            signing_date: serde_json::Value::Null,
            assigned_active_directory_user: serde_json::Value::Null,
            url: String::new(),
            http_status: None,
            webhook_id: String::new(),
            event_type: serde_json::Value::Null,
        };
        keys.push(webhook("delivered").routing_key());
        keys.push(webhook("failed").routing_key());
        keys.extend([
            "otp.send.completed",
            "otp.verify.completed",
            "vendor.call.completed",
        ]);
        keys.sort();
        let mut listed = EVENT_KEYS.to_vec();
        listed.sort();
        assert_eq!(keys, listed);
    }

    #[test]
    fn every_event_carries_the_contract_fields() {
        let id = Uuid::now_v7();
        let f = Failure::new(ErrorKind::Exhausted, "vendor kept failing");
        let event = VendorCallCompleted {
            call_id: id,
            ending: Ending::now("failed", 4, Some(&f)),
            vendor: "numrot".into(),
            http_status: None,
            response: serde_json::Value::Null,
        };
        let body = serde_json::to_value(&event).unwrap();
        assert_eq!(body["call_id"], id.to_string());
        assert_eq!(body["status"], "failed");
        assert_eq!(body["attempts"], 4);
        assert_eq!(body["error"]["kind"], "exhausted");
        assert_eq!(body["error"]["message"], "vendor kept failing");
        assert!(body.as_object().unwrap().contains_key("http_status"));
        let at = body["completed_at"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(at).is_ok());
        let ok = Ending::now("ok", 1, None);
        assert!(
            !serde_json::to_value(&ok)
                .unwrap()
                .as_object()
                .unwrap()
                .contains_key("error")
        );
        assert_eq!(event.routing_key(), "vendor.call.completed");
    }

    #[test]
    fn a_document_event_names_its_step_and_formats_its_times() {
        let facts = DocumentFacts {
            vendor_document_id: Some("v-1".into()),
            signing_date: DateTime::parse_from_rfc3339("2026-11-24T10:00:00.250Z")
                .ok()
                .map(|t| t.to_utc()),
            ..Default::default()
        };
        let id = Uuid::now_v7();
        let e = DocumentEvent::new(
            id,
            DocumentStep::Signed,
            Ending::now("signed", 1, None),
            &facts,
        );
        assert_eq!(e.routing_key(), "doc.signed");
        let body = serde_json::to_value(&e).unwrap();
        assert_eq!(body["signing_date"], "2026-11-24T10:00:00Z");
        assert_eq!(body["date_sent_to_sign"], serde_json::Value::Null);
        assert!(body.get("step").is_none());
    }
}
