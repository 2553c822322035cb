//! The client webhook: what pasarela POSTs to a document's `callback_url` when it is signed or will
//! not be (docs/CONTRACT.md, "Client webhooks"), signed with the Standard Webhooks headers.

use schemars::JsonSchema;
use serde::Serialize;
use uuid::Uuid;

/// The body of a client webhook.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClientWebhook {
    /// `document.signed` or `document.sign_failed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the webhook was made, RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
    /// The document, as the vendor reported it, with pasarela's ids.
    pub data: ClientWebhookData,
}

/// A client webhook's `data`: the vendor's callback fields with pasarela's ids.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClientWebhookData {
    /// The producer's `document_id`.
    pub document_id: Uuid,
    /// The vendor's id for the document.
    pub vendor_document_id: Option<String>,
    /// Whose document it is.
    pub tenant: String,
    /// The file name.
    pub document_name: String,
    /// The vendor's status word: `signed`, `rejected`, `expired`, `error`, ...
    pub status: String,
    /// When it was signed, RFC 3339 in UTC.
    pub signing_date: Option<String>,
    /// The vendor's message.
    pub message: Option<String>,
    /// When it was first sent to sign, RFC 3339 in UTC.
    pub date_sent_to_sign: Option<String>,
    /// Who signs it, as the vendor assigned it.
    pub assigned_active_directory_user: Option<String>,
}
