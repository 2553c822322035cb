//! JSON Schemas of every work message, event and webhook body, generated from the types the workers
//! read and write, so that a producer in any language checks what it publishes against what pasarela
//! parses. They are committed under `docs/schemas/` (one file per queue or routing key, named after
//! it); `make schemas` writes them and a test fails when they drift from the types.

use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::events::{
    CallbackChecked, DocumentEvent, OtpSendCompleted, OtpVerifyCompleted, VendorCallCompleted,
    WebhookEvent,
};
use super::messages::{DocCallback, DocSign, OtpSend, OtpVerify, VendorCall};
use super::webhooks::ClientWebhook;

fn schema<T: JsonSchema>() -> Schema {
    SchemaGenerator::default().into_root_schema_for::<T>()
}

/// Every schema with the name it is committed under: a work queue, an event's routing key, or
/// `webhook.document` for the client webhook.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("otp.send", schema::<OtpSend>()),
        ("otp.send.completed", schema::<OtpSendCompleted>()),
        ("otp.verify", schema::<OtpVerify>()),
        ("otp.verify.completed", schema::<OtpVerifyCompleted>()),
        ("vendor.call", schema::<VendorCall>()),
        ("vendor.call.completed", schema::<VendorCallCompleted>()),
        ("doc.sign", schema::<DocSign>()),
        ("doc.sign.submitted", schema::<DocumentEvent>()),
        ("doc.signed", schema::<DocumentEvent>()),
        ("doc.sign.failed", schema::<DocumentEvent>()),
        ("doc.callback", schema::<DocCallback>()),
        ("doc.callback.result", schema::<CallbackChecked>()),
        ("doc.webhook.delivered", schema::<WebhookEvent>()),
        ("doc.webhook.failed", schema::<WebhookEvent>()),
        ("webhook.document", schema::<ClientWebhook>()),
    ]
}
