//! Event bodies: the fields every event on `pasarela.events` carries (docs/CONTRACT.md, "Events").

use uuid::Uuid;

use crate::contract::errors::Failure;

/// Builds an event body with the fields every event carries: the work message's id
/// under `id_field`, `status`, `attempts`, `completed_at` and, on failure, `error`.
pub fn event_body(
    id_field: &str,
    id: Uuid,
    status: &str,
    attempts: u32,
    error: Option<&Failure>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut body = serde_json::Map::new();
    body.insert(id_field.into(), id.to_string().into());
    body.insert("status".into(), status.into());
    body.insert("attempts".into(), attempts.into());
    body.insert(
        "completed_at".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
    );
    if let Some(e) = error {
        body.insert(
            "error".into(),
            serde_json::json!({ "kind": e.kind.as_str(), "message": e.message }),
        );
    }
    body
}

/// What a `doc.*` event says about its document beyond the fields every event carries.
#[derive(Debug, Clone, Default)]
pub struct DocumentFacts {
    /// The vendor's id, once it has one.
    pub vendor_document_id: Option<String>,
    /// When the vendor first sent it to sign.
    pub date_sent_to_sign: Option<chrono::DateTime<chrono::Utc>>,
    /// When it was signed.
    pub signing_date: Option<chrono::DateTime<chrono::Utc>>,
    /// Who was to sign it.
    pub assigned_active_directory_user: Option<String>,
}

/// A `doc.*` event body: the common fields and the document's.
pub fn document_event(
    document_id: Uuid,
    status: &str,
    attempts: u32,
    error: Option<&Failure>,
    facts: &DocumentFacts,
) -> serde_json::Map<String, serde_json::Value> {
    let mut body = event_body("document_id", document_id, status, attempts, error);
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    body.insert(
        "vendor_document_id".into(),
        facts.vendor_document_id.clone().into(),
    );
    body.insert(
        "date_sent_to_sign".into(),
        time(facts.date_sent_to_sign).into(),
    );
    body.insert("signing_date".into(), time(facts.signing_date).into());
    body.insert(
        "assigned_active_directory_user".into(),
        facts.assigned_active_directory_user.clone().into(),
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::errors::ErrorKind;

    #[test]
    fn event_bodies_carry_the_contract_fields() {
        let id = Uuid::now_v7();
        let f = Failure::new(ErrorKind::Exhausted, "vendor kept failing");
        let body = event_body("request_id", id, "failed", 4, Some(&f));
        assert_eq!(body["request_id"], id.to_string());
        assert_eq!(body["status"], "failed");
        assert_eq!(body["attempts"], 4);
        assert_eq!(body["error"]["kind"], "exhausted");
        let at = body["completed_at"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok());
        assert!(!event_body("request_id", id, "sent", 1, None).contains_key("error"));
    }
}
