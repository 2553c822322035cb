//! The signing API's documents: submit, status and download, and what each answer means.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::{SigningClient, SigningError, VENDOR, refused};
use crate::vendors::http::{self, VendorError};
use crate::vendors::tokens::TokenVault;

/// The fields of a submission before its content, which is streamed after them.
#[derive(Serialize)]
struct SubmitHead<'a> {
    document_name: &'a str,
    active_directory_user: &'a str,
    signature_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
}

/// A document to submit; `content` is the producer's base64 text, sent as it is.
#[derive(Debug, Clone)]
pub struct SubmitDocument {
    /// `document_name`.
    pub document_name: String,
    /// `document_content`: standard base64 of the PDF, already checked.
    pub content: Bytes,
    /// `active_directory_user`: who signs.
    pub active_directory_user: String,
    /// `signature_type`.
    pub signature_type: String,
    /// `callback_url`: pasarela's capability URL for this document.
    pub callback_url: Option<String>,
}

/// The vendor's 202 to a submission.
#[derive(Debug, Clone, Deserialize)]
pub struct Submitted {
    /// The vendor's id of the document.
    pub document_id: String,
    /// `received`.
    #[serde(default)]
    pub status: String,
    /// The vendor's words.
    #[serde(default)]
    pub message: Option<String>,
}

/// Where a document stands at the vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorStatus {
    /// Received, queued for signing: ask again later.
    Received,
    /// Signed: download it.
    Signed,
    /// Refused by the signer (not in the document; handled if seen).
    Rejected,
    /// Never signed in time (not in the document; handled if seen).
    Expired,
    /// The vendor failed it (not in the document; handled if seen).
    Error,
    /// Anything else, treated as still in progress.
    Other(String),
}

impl VendorStatus {
    /// Reads the vendor's status word.
    pub fn parse(raw: &str) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "received" | "queued" | "pending" | "in_progress" | "sent_to_sign" => {
                VendorStatus::Received
            }
            "signed" => VendorStatus::Signed,
            "rejected" | "declined" => VendorStatus::Rejected,
            "expired" => VendorStatus::Expired,
            "error" | "failed" => VendorStatus::Error,
            _ => VendorStatus::Other(raw.chars().take(40).collect()),
        }
    }

    /// Whether the document will never be signed.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            VendorStatus::Rejected | VendorStatus::Expired | VendorStatus::Error
        )
    }
}

/// `GET /documents/{id}/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct DocumentStatus {
    /// The vendor's id.
    #[serde(default)]
    pub document_id: String,
    /// The status word, as the vendor wrote it.
    pub status: String,
    /// When the document was first sent to sign.
    #[serde(default)]
    pub date_sent_to_sign: Option<DateTime<Utc>>,
    /// The signer assigned.
    #[serde(default)]
    pub assigned_active_directory_user: Option<String>,
    /// When it was signed.
    #[serde(default)]
    pub signing_date: Option<DateTime<Utc>>,
    /// The vendor's words.
    #[serde(default)]
    pub message: Option<String>,
}

impl DocumentStatus {
    /// The status, classified.
    pub fn state(&self) -> VendorStatus {
        VendorStatus::parse(&self.status)
    }
}

/// The download's answer, read whole but not copied: the signed content borrows from it.
pub struct Download {
    raw: Vec<u8>,
}

/// The fields of a download, borrowing the signed content from the answer's bytes.
#[derive(Debug, Deserialize)]
pub struct DownloadView<'a> {
    /// The vendor's id.
    #[serde(default)]
    pub document_id: String,
    /// The signed file's name.
    #[serde(default)]
    pub document_name: Option<String>,
    /// Standard base64 of the signed PDF.
    #[serde(borrow)]
    pub signed_document_content: Cow<'a, str>,
    /// When the document was first sent to sign.
    #[serde(default)]
    pub date_sent_to_sign: Option<DateTime<Utc>>,
    /// The signer assigned.
    #[serde(default)]
    pub assigned_active_directory_user: Option<String>,
}

impl Download {
    /// The answer's fields.
    pub fn view(&self) -> Result<DownloadView<'_>, VendorError> {
        serde_json::from_slice(&self.raw).map_err(|e| {
            http::unreadable(VENDOR, "download", &String::from_utf8_lossy(&self.raw), &e)
        })
    }
}

impl SigningClient {
    /// `POST /documents`: submits a PDF for signing. The base64 text goes out as it came, streamed
    /// between the JSON around it, so a large document is never copied to build the request.
    #[tracing::instrument(name = "signing.submit", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn submit(
        &self,
        tokens: &dyn TokenVault,
        document: &SubmitDocument,
    ) -> Result<Submitted, SigningError> {
        let head = SubmitHead {
            document_name: &document.document_name,
            active_directory_user: &document.active_directory_user,
            signature_type: &document.signature_type,
            callback_url: document.callback_url.as_deref(),
        };
        let head = serde_json::to_string(&head).expect("strings serialise");
        // `{...fields` + `,"document_content":"` + base64 + `"}`: base64 needs no JSON escaping.
        let prefix = Bytes::from(format!(
            "{},\"document_content\":\"",
            &head[..head.len() - 1]
        ));
        let suffix = Bytes::from_static(b"\"}");
        let length = prefix.len() + document.content.len() + suffix.len();
        let response = self
            .authorized(tokens, "submit", |access| {
                let parts = [prefix.clone(), document.content.clone(), suffix.clone()];
                let body = reqwest::Body::wrap_stream(
                    futures::stream::iter(parts).map(Ok::<_, std::io::Error>),
                );
                self.transfer
                    .post(self.url("/documents"))
                    .bearer_auth(access)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(reqwest::header::CONTENT_LENGTH, length)
                    .body(body)
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| http::transport_error(VENDOR, self.transfer_timeout, &e))?;
        if !status.is_success() {
            return Err(refused(status, &headers, &text));
        }
        let submitted: Submitted = serde_json::from_str(&text)
            .map_err(|e| http::unreadable(VENDOR, "submit answer", &text, &e))?;
        if submitted.document_id.is_empty() {
            return Err(VendorError::Decode {
                vendor: VENDOR,
                detail: "submit answer has no document_id".into(),
            }
            .into());
        }
        Ok(submitted)
    }

    /// `GET /documents/{id}/status`.
    #[tracing::instrument(name = "signing.status", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn status(
        &self,
        tokens: &dyn TokenVault,
        vendor_document_id: &str,
    ) -> Result<DocumentStatus, SigningError> {
        let url = self.document_url(vendor_document_id, "status")?;
        let response = self
            .authorized(tokens, "status", |access| {
                self.http.get(url.clone()).bearer_auth(access)
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| http::transport_error(VENDOR, self.timeout, &e))?;
        if status == StatusCode::NOT_FOUND {
            return Err(SigningError::UnknownDocument(vendor_document_id.into()));
        }
        if !status.is_success() {
            return Err(refused(status, &headers, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            VendorError::Decode {
                vendor: VENDOR,
                detail: format!("status answer: {e}"),
            }
            .into()
        })
    }

    /// `GET /documents/{id}/download`: the answer read into one buffer sized from `Content-Length`,
    /// refused past `limit` bytes.
    #[tracing::instrument(name = "signing.download", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn download(
        &self,
        tokens: &dyn TokenVault,
        vendor_document_id: &str,
        limit: usize,
    ) -> Result<Download, SigningError> {
        let url = self.document_url(vendor_document_id, "download")?;
        let response = self
            .authorized(tokens, "download", |access| {
                self.transfer.get(url.clone()).bearer_auth(access)
            })
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(match status {
                StatusCode::NOT_FOUND => SigningError::UnknownDocument(vendor_document_id.into()),
                StatusCode::CONFLICT => SigningError::NotSigned(vendor_document_id.into()),
                _ => refused(status, &headers, &text),
            });
        }
        let too_large = |size: usize| VendorError::Decode {
            vendor: VENDOR,
            detail: format!("download of {size} bytes is over the limit of {limit}"),
        };
        let expected = response.content_length().unwrap_or(0) as usize;
        if expected > limit {
            return Err(too_large(expected).into());
        }
        let mut raw = Vec::with_capacity(expected);
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| http::transport_error(VENDOR, self.transfer_timeout, &e))?;
            if raw.len() + chunk.len() > limit {
                return Err(too_large(raw.len() + chunk.len()).into());
            }
            raw.extend_from_slice(&chunk);
        }
        Ok(Download { raw })
    }

    fn document_url(&self, id: &str, what: &str) -> Result<String, SigningError> {
        // The id is the vendor's, but it goes in a path: only what an id can be is accepted.
        if id.is_empty()
            || id.len() > 200
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(VendorError::Decode {
                vendor: VENDOR,
                detail: format!("vendor document id {:?} is not an id", http::snippet(id)),
            }
            .into());
        }
        Ok(self.url(&format!("/documents/{id}/{what}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_borrow_the_signed_content() {
        let d = Download {
            raw: br#"{"document_id":"d1","document_name":"a_signed.pdf","signed_document_content":"JVBERi0=","date_sent_to_sign":"2024-02-25T14:30:00Z","assigned_active_directory_user":"j@x"}"#.to_vec(),
        };
        let v = d.view().unwrap();
        assert!(matches!(
            v.signed_document_content,
            Cow::Borrowed("JVBERi0=")
        ));
        assert_eq!(v.document_name.as_deref(), Some("a_signed.pdf"));
        assert!(v.date_sent_to_sign.is_some());
    }
}
