//! The checks of one vendor webhook, as plain functions over the request and the document row, so that
//! they are tested without a server: the capability token, replays for final documents, the body, and
//! the `doc.callback` message built from it.

use pasarela_shared::contract::documents;
use pasarela_shared::store::documents::CallbackTarget;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// A digest no token has, compared against when the document is unknown so that an unknown document
/// and a wrong token take the same time.
const NO_DIGEST: [u8; 32] = [0; 32];

/// Why a callback is refused before its body is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown document or wrong token: one answer for both, so the URL space cannot be probed.
    NotFound,
    /// The document is final; the state it is in.
    AlreadyFinal(String),
}

/// Why a callback body is refused. The messages never quote the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON at all.
    #[error("the body is not valid JSON")]
    NotJson,
    /// JSON, but not an object.
    #[error("the body is not a JSON object")]
    NotObject,
    /// `document_id` is neither text nor a number.
    #[error("document_id must be a string")]
    BadVendorId,
    /// `document_id` names another document than the one this URL is for.
    #[error("document_id does not match the document of this callback URL")]
    VendorIdMismatch,
}

/// The document id of the URL; `None` (answered 404) when it is not a UUID.
pub fn parse_document_id(raw: &str) -> Option<Uuid> {
    Uuid::try_parse(raw).ok()
}

/// Checks the capability `token` against the document's row: only a known document whose token
/// matches, in constant time, and that is not final yet, passes.
pub fn authorize<'a>(
    row: Option<&'a CallbackTarget>,
    token: &str,
) -> Result<&'a CallbackTarget, Refusal> {
    let Some(row) = row else {
        // Spend the same work as for a known document, so timing does not tell the two apart.
        let _ = documents::token_matches(token, &NO_DIGEST);
        return Err(Refusal::NotFound);
    };
    if !documents::token_matches(token, &row.token_sha256) {
        return Err(Refusal::NotFound);
    }
    if row.state.is_final() {
        return Err(Refusal::AlreadyFinal(row.state.as_str().to_string()));
    }
    Ok(row)
}

/// Reads the webhook body, which must be a JSON object.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, BodyError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BodyError::NotObject),
        Err(_) => Err(BodyError::NotJson),
    }
}

/// The `doc.callback` message for a callback that passed [`authorize`]: the vendor's id from the row
/// (from the body only while the row has none yet: the webhook can outrun doc-sign recording it), the
/// status the vendor claims, and `source: vendor_webhook`. A body naming another vendor document than
/// the row's is refused.
pub fn callback_message(
    document_id: Uuid,
    row: &CallbackTarget,
    body: &Map<String, Value>,
) -> Result<Value, BodyError> {
    let claimed = match body.get("document_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(BodyError::BadVendorId),
    };
    let vendor_document_id = match (&row.vendor_document_id, claimed) {
        (Some(known), Some(claimed)) if *known != claimed => {
            return Err(BodyError::VendorIdMismatch);
        }
        (Some(known), _) => Some(known.clone()),
        (None, claimed) => claimed,
    };
    let status = body.get("status").and_then(Value::as_str);
    Ok(json!({
        "document_id": document_id,
        "vendor_document_id": vendor_document_id,
        "status": status,
        "source": "vendor_webhook",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasarela_shared::store::documents::DocumentState;

    fn row(state: DocumentState, vendor_id: Option<&str>) -> CallbackTarget {
        CallbackTarget {
            token_sha256: documents::token_digest("the-token"),
            state,
            vendor_document_id: vendor_id.map(str::to_string),
            trace_context: None,
        }
    }

    proptest::proptest! {
        /// Any body and any path segment is read or refused, never a panic, and a message is only
        /// ever built from an object.
        #[test]
        fn any_callback_body_or_path_is_read_or_refused(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            path in ".{0,48}",
        ) {
            let _ = parse_document_id(&path);
            if let Ok(map) = parse_body(&body) {
                let _ = callback_message(Uuid::now_v7(), &row(DocumentState::Submitted, Some("v-1")), &map);
                let _ = callback_message(Uuid::now_v7(), &row(DocumentState::Submitted, None), &map);
            }
        }
    }

    #[test]
    fn only_uuids_name_documents() {
        let id = Uuid::now_v7();
        assert_eq!(parse_document_id(&id.to_string()), Some(id));
        assert_eq!(parse_document_id("not-a-uuid"), None);
        assert_eq!(parse_document_id(""), None);
        assert_eq!(parse_document_id("../../etc/passwd"), None);
    }

    #[test]
    fn an_unknown_document_and_a_wrong_token_get_the_same_refusal() {
        let known = row(DocumentState::Submitted, Some("v-1"));
        assert_eq!(authorize(None, "the-token"), Err(Refusal::NotFound));
        assert_eq!(authorize(Some(&known), "another"), Err(Refusal::NotFound));
        assert_eq!(authorize(Some(&known), ""), Err(Refusal::NotFound));
        assert_eq!(authorize(Some(&known), "the-token"), Ok(&known));
    }

    #[test]
    fn final_documents_refuse_replays_but_stored_ones_are_taken() {
        for state in [DocumentState::Signed, DocumentState::Failed] {
            assert_eq!(
                authorize(Some(&row(state, Some("v-1"))), "the-token"),
                Err(Refusal::AlreadyFinal(state.as_str().into()))
            );
        }
        // The vendor can call before doc-sign has recorded its answer: the document is still `stored`.
        let stored = row(DocumentState::Stored, None);
        assert_eq!(authorize(Some(&stored), "the-token"), Ok(&stored));
        // A wrong token on a final document is still a 404: the state is the capability holder's to see.
        assert_eq!(
            authorize(Some(&row(DocumentState::Signed, None)), "wrong"),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(parse_body(br#"{"status":"signed"}"#).is_ok());
        assert_eq!(parse_body(b"status=signed"), Err(BodyError::NotJson));
        assert_eq!(parse_body(b""), Err(BodyError::NotJson));
        assert_eq!(parse_body(b"[1,2]"), Err(BodyError::NotObject));
        assert_eq!(parse_body(b"\"signed\""), Err(BodyError::NotObject));
        // The refusal never quotes what it refused.
        let secretish = br#"{"status": "signed""#;
        assert!(
            !parse_body(secretish)
                .unwrap_err()
                .to_string()
                .contains("signed")
        );
    }

    #[test]
    fn the_message_takes_the_vendor_id_from_the_row() {
        let id = Uuid::now_v7();
        let body =
            parse_body(br#"{"document_id":"v-1","status":"signed","message":"ok"}"#).unwrap();
        let message =
            callback_message(id, &row(DocumentState::Submitted, Some("v-1")), &body).unwrap();
        assert_eq!(
            message,
            json!({"document_id": id.to_string(), "vendor_document_id": "v-1",
                   "status": "signed", "source": "vendor_webhook"})
        );
        // No id in the body: the row's.
        let body = parse_body(br#"{"status":"rejected"}"#).unwrap();
        let message =
            callback_message(id, &row(DocumentState::Submitted, Some("v-1")), &body).unwrap();
        assert_eq!(message["vendor_document_id"], "v-1");
        assert_eq!(message["status"], "rejected");
    }

    #[test]
    fn the_body_fills_in_only_what_the_row_lacks() {
        let id = Uuid::now_v7();
        let body = parse_body(br#"{"document_id":"v-9","status":7}"#).unwrap();
        let message = callback_message(id, &row(DocumentState::Stored, None), &body).unwrap();
        assert_eq!(message["vendor_document_id"], "v-9");
        // A status that is not text is not passed on.
        assert_eq!(message["status"], Value::Null);
        let empty = callback_message(id, &row(DocumentState::Stored, None), &Map::new()).unwrap();
        assert_eq!(empty["vendor_document_id"], Value::Null);
        assert_eq!(empty["source"], "vendor_webhook");
    }

    #[test]
    fn a_body_for_another_vendor_document_is_refused() {
        let id = Uuid::now_v7();
        let known = row(DocumentState::Submitted, Some("v-1"));
        let other = parse_body(br#"{"document_id":"v-2"}"#).unwrap();
        assert_eq!(
            callback_message(id, &known, &other),
            Err(BodyError::VendorIdMismatch)
        );
        let odd = parse_body(br#"{"document_id":{"id":"v-1"}}"#).unwrap();
        assert_eq!(
            callback_message(id, &known, &odd),
            Err(BodyError::BadVendorId)
        );
        let numeric = parse_body(br#"{"document_id":42}"#).unwrap();
        let message =
            callback_message(id, &row(DocumentState::Submitted, Some("42")), &numeric).unwrap();
        assert_eq!(message["vendor_document_id"], "42");
    }
}
