//! The document calls: submission (the Base64 and PDF checks included), status and download.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::oauth::bearer_intake;
use super::webhook::lifecycle;
use super::{Document, Failure, RECEIVED_MESSAGE, Status, is_json, not_json, rfc3339, text};
use crate::Sim;

const PDF_MAGIC: &[u8] = b"%PDF-";
/// Room kept after a decoded PDF (plus the user's length) so signing appends without reallocating.
const SIGNATURE_ROOM: usize = 64;

/// `document_content` as sent: borrowed from the request body unless a JSON escape forced a copy,
/// since it can be tens of megabytes.
struct Base64Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Base64Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // serde names neither the field nor the path, so the expectation does.
                f.write_str("document_content as a Base64 string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        deserializer.deserialize_str(TextVisitor).map(Base64Text)
    }
}

/// A `POST /api/v1/documents` body as sent; [`SubmitBody::validate`] checks it.
#[derive(Deserialize)]
struct SubmitBody<'a> {
    document_name: Option<Value>,
    #[serde(borrow)]
    document_content: Option<Base64Text<'a>>,
    active_directory_user: Option<Value>,
    signature_type: Option<Value>,
    callback_url: Option<Value>,
}

/// A valid submission.
struct Submission {
    name: String,
    user: String,
    callback_url: Option<String>,
    content: Vec<u8>,
}

impl<'a> SubmitBody<'a> {
    fn parse(headers: &HeaderMap, raw: &'a [u8]) -> Result<Self, Failure> {
        if !is_json(headers) {
            return Err(not_json());
        }
        // serde would take a JSON array as the fields in order.
        if !raw.trim_ascii_start().starts_with(b"{") {
            return Err(Failure::invalid_request("the body must be a JSON object"));
        }
        serde_json::from_slice(raw)
            .map_err(|e| Failure::invalid_request(format!("the body is not a valid request: {e}")))
    }

    /// What is recorded: every field but the content, which is only measured.
    fn recorded(&self) -> Value {
        json!({
            "document_name": self.document_name,
            "active_directory_user": self.active_directory_user,
            "signature_type": self.signature_type,
            "callback_url": self.callback_url,
            "document_content_length": self.document_content.as_ref().map(|c| c.0.len()),
        })
    }

    /// Checks every field, the cheap ones first, and decodes the PDF.
    fn validate(self) -> Result<Submission, Failure> {
        let name = text(self.document_name.as_ref(), "document_name")?;
        let user = text(self.active_directory_user.as_ref(), "active_directory_user")?;
        // The document shows `digital_signature` as its example; any type is taken (and recorded).
        text(self.signature_type.as_ref(), "signature_type")?;
        let callback_url = match &self.callback_url {
            None | Some(Value::Null) => None,
            Some(Value::String(url)) => Some(check_callback_url(url)?),
            Some(_) => return Err(Failure::invalid_request("callback_url must be a string")),
        };
        let content = decode_pdf(
            self.document_content.as_ref().map(|c| c.0.as_ref()),
            SIGNATURE_ROOM + user.len(),
        )?;
        Ok(Submission {
            name: name.into(),
            user: user.into(),
            callback_url,
            content,
        })
    }
}

fn check_callback_url(url: &str) -> Result<String, Failure> {
    let absolute = url::Url::parse(url).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    match absolute {
        Some(_) => Ok(url.to_string()),
        None => Err(Failure::invalid_request(format!(
            "callback_url must be an absolute http or https URL, got {url:?}"
        ))),
    }
}

/// Decodes `document_content`: standard Base64 (padded, no line breaks) of bytes that begin `%PDF-`.
/// `room` more bytes are reserved for the signature.
fn decode_pdf(content: Option<&str>, room: usize) -> Result<Vec<u8>, Failure> {
    let Some(content) = content.filter(|c| !c.trim().is_empty()) else {
        return Err(Failure::invalid_request("document_content is required"));
    };
    let mut bytes = Vec::with_capacity(base64::decoded_len_estimate(content.len()) + room);
    STANDARD.decode_vec(content, &mut bytes).map_err(|e| {
        Failure::invalid_request(format!("document_content is not standard Base64: {e}"))
    })?;
    if !bytes.starts_with(PDF_MAGIC) {
        return Err(Failure::invalid_request(
            "document_content is not a PDF: the decoded bytes do not begin with %PDF-",
        ));
    }
    Ok(bytes)
}

pub(super) async fn submit(State(sim): State<Sim>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = SubmitBody::parse(&headers, &raw);
    let recorded = body.as_ref().map_or(Value::Null, SubmitBody::recorded);
    if let Err(response) = bearer_intake(&sim, "submit", &headers, recorded).await {
        return response;
    }
    let submission = match body.and_then(SubmitBody::validate) {
        Ok(submission) => submission,
        Err(failure) => return failure.into_response(),
    };
    let (outcome, sign_after) = {
        let settings = sim.signing.settings.lock().expect("settings");
        let outcome = settings.outcomes.get(&submission.user).copied();
        (
            outcome.unwrap_or(settings.outcome),
            Duration::from_millis(settings.sign_after_ms),
        )
    };
    let id = Uuid::new_v4();
    sim.signing.documents.lock().expect("documents").insert(
        id,
        Document {
            name: submission.name,
            user: submission.user,
            callback_url: submission.callback_url,
            sent_at: Utc::now(),
            outcome,
            status: Status::Received,
            signing_date: None,
            content: Arc::new(submission.content),
            webhook_attempts: 0,
            webhooks_lost: 0,
        },
    );
    tokio::spawn(lifecycle(Arc::clone(&sim), id, sign_after));
    let answer = json!({ "document_id": id, "status": "received", "message": RECEIVED_MESSAGE });
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}

pub(super) async fn status(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let recorded = json!({ "document_id": id });
    if let Err(response) = bearer_intake(&sim, "status", &headers, recorded).await {
        return response;
    }
    let pending = sim
        .signing
        .settings
        .lock()
        .expect("settings")
        .pending_status
        .clone();
    let documents = sim.signing.documents.lock().expect("documents");
    match Uuid::parse_str(&id)
        .ok()
        .and_then(|uuid| Some((uuid, documents.get(&uuid)?)))
    {
        Some((uuid, doc)) => Json(doc.status_body(uuid, &pending)).into_response(),
        None => Failure::not_found(&id).into_response(),
    }
}

/// The download answer; [`DownloadBody::to_json`] writes the content itself.
#[derive(Serialize)]
struct DownloadBody {
    document_id: Uuid,
    document_name: String,
    date_sent_to_sign: String,
    assigned_active_directory_user: String,
    #[serde(skip)]
    content: Arc<Vec<u8>>,
}

impl DownloadBody {
    /// The JSON answer, `signed_document_content` last. Base64 needs no JSON escaping, so it is
    /// encoded straight into the output: no intermediate string tens of megabytes long, and none of
    /// serde's per-character escaping, which made most of a large download's time.
    fn to_json(&self) -> Vec<u8> {
        let encoded_len =
            base64::encoded_len(self.content.len(), true).expect("a body limit far below usize");
        let mut out = Vec::with_capacity(encoded_len + 512);
        serde_json::to_writer(&mut out, self).expect("strings and a UUID always serialize");
        out.pop(); // the object's closing brace
        out.extend_from_slice(br#","signed_document_content":""#);
        let start = out.len();
        out.resize(start + encoded_len, 0);
        let written = STANDARD
            .encode_slice(self.content.as_slice(), &mut out[start..])
            .expect("the room is encoded_len");
        out.truncate(start + written);
        out.extend_from_slice(b"\"}");
        out
    }
}

/// The name of the signed copy: `_signed` before `.pdf`, or at the end.
fn signed_name(name: &str) -> String {
    let extension = name
        .len()
        .checked_sub(4)
        .filter(|&i| name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case(".pdf"));
    match extension {
        Some(i) => format!("{}_signed{}", &name[..i], &name[i..]),
        None => format!("{name}_signed"),
    }
}

pub(super) async fn download(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let recorded = json!({ "document_id": id });
    if let Err(response) = bearer_intake(&sim, "download", &headers, recorded).await {
        return response;
    }
    let found = {
        let documents = sim.signing.documents.lock().expect("documents");
        let uuid = Uuid::parse_str(&id).ok();
        match uuid.and_then(|uuid| Some((uuid, documents.get(&uuid)?))) {
            None => Err(Failure::not_found(&id)),
            Some((_, doc)) if doc.status != Status::Signed => Err(Failure::new(
                StatusCode::CONFLICT,
                "not_signed",
                format!(
                    "the document is {}: only a signed document can be downloaded",
                    doc.status.name()
                ),
            )),
            Some((uuid, doc)) => Ok(DownloadBody {
                document_id: uuid,
                document_name: signed_name(&doc.name),
                content: Arc::clone(&doc.content),
                date_sent_to_sign: rfc3339(doc.sent_at),
                assigned_active_directory_user: doc.user.clone(),
            }),
        }
    };
    let body = match found {
        Ok(body) => body,
        Err(failure) => return failure.into_response(),
    };
    // Encoding tens of megabytes is CPU work: off the async threads.
    match tokio::task::spawn_blocking(move || body.to_json()).await {
        Ok(out) => ([(header::CONTENT_TYPE, "application/json")], out).into_response(),
        Err(e) => Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_name_puts_signed_before_pdf() {
        assert_eq!(signed_name("contract.pdf"), "contract_signed.pdf");
        assert_eq!(signed_name("Contrato.PDF"), "Contrato_signed.PDF");
        assert_eq!(signed_name("contract"), "contract_signed");
        assert_eq!(signed_name("pdf"), "pdf_signed");
        assert_eq!(signed_name("año€.pdf"), "año€_signed.pdf");
        assert_eq!(
            signed_name("ñ€"),
            "ñ€_signed",
            "no char boundary 4 bytes back"
        );
    }

    #[test]
    fn content_must_be_standard_base64_of_a_pdf() {
        let pdf = STANDARD.encode(b"%PDF-1.7\n...");
        let bytes = decode_pdf(Some(&pdf), 100).unwrap();
        assert_eq!(bytes, b"%PDF-1.7\n...");
        assert!(bytes.capacity() >= bytes.len() + 100);
        let message = |content: Option<&str>| decode_pdf(content, 0).unwrap_err().message;
        assert!(message(None).contains("required"));
        assert!(message(Some("")).contains("required"));
        assert!(message(Some("%PDF-1.7")).contains("not standard Base64"));
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode(b"%PDF-\xfb\xff");
        assert!(message(Some(&url_safe)).contains("not standard Base64"));
        let unpadded = STANDARD
            .encode(b"%PDF-1.7")
            .trim_end_matches('=')
            .to_string();
        assert!(message(Some(&unpadded)).contains("not standard Base64"));
        let text = STANDARD.encode(b"hello, not a pdf");
        assert!(message(Some(&text)).contains("not a PDF"));
    }

    #[test]
    fn the_download_answer_is_json_with_the_content_in_base64() {
        for content in [&b""[..], b"%PDF-1", b"%PDF-1.7\n\xff\xfe\x00"] {
            let body = DownloadBody {
                document_id: Uuid::nil(),
                document_name: "a \"quoted\" name_signed.pdf".into(),
                date_sent_to_sign: "2024-02-25T14:30:00Z".into(),
                assigned_active_directory_user: "john.doe@company.com".into(),
                content: Arc::new(content.to_vec()),
            };
            let parsed: Value = serde_json::from_slice(&body.to_json()).unwrap();
            assert_eq!(
                parsed,
                json!({ "document_id": Uuid::nil(), "document_name": "a \"quoted\" name_signed.pdf",
                        "date_sent_to_sign": "2024-02-25T14:30:00Z",
                        "assigned_active_directory_user": "john.doe@company.com",
                        "signed_document_content": STANDARD.encode(content) })
            );
        }
    }
}
