//! The work messages of the contract (docs/CONTRACT.md) as serde types.
//!
//! Unknown fields are ignored and new fields are optional, so messages already queued keep parsing when
//! producers or pasarela move ahead. Values with a fixed set of choices (provider, channel, code type)
//! are kept as text here and checked by the handler, so that a wrong choice is a `rejected` result that
//! names the field, not an unreadable message.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `otp.send`: generate a one-time code and send it to a destination.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OtpSend {
    /// The producer's id for this send; `otp.verify` refers to it.
    pub request_id: Uuid,
    /// The producer's tenant.
    pub tenant: String,
    /// `danaconnect`, `aldeamo`, `auto` (the configured order, with failover), or a list in order.
    pub provider: ProviderChoice,
    /// `sms`, `email`, `whatsapp` or `voice`.
    pub channel: String,
    /// Where the code goes.
    #[serde(default)]
    pub destination: Destination,
    /// The code's shape and lifetime.
    pub code: CodeSpec,
    /// DANAConnect's block, when it is the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub danaconnect: Option<DanaConnectBlock>,
    /// Aldeamo's block, when it is the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aldeamo: Option<AldeamoBlock>,
}

/// The destination of a code.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Destination {
    /// E.164 mobile number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The code's alphabet, length, lifetime and tries.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CodeSpec {
    /// `numeric`, `alphanumeric` or `alphabetic`.
    #[serde(rename = "type")]
    pub code_type: String,
    /// Number of characters.
    pub length: u32,
    /// Lifetime in seconds: required by DANAConnect; for Aldeamo an override of the configuration's
    /// lifetime (`ALDEAMO_CONFIG_EXPIRY`), which sets the code's real one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u32>,
    /// Wrong answers allowed; the vendor's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tries: Option<u32>,
}

/// DANAConnect's conversation and contact-list values.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DanaConnectBlock {
    /// An active conversation's id.
    pub id_conversation: i64,
    /// Values for the conversation's contact list.
    #[serde(default)]
    pub values: Vec<KeyValue>,
    /// The conversation's additional parameters (the document's `parameters`, a map of strings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// A `{key, value}` pair.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct KeyValue {
    /// The field.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// Aldeamo's configuration and optional OTP id.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AldeamoBlock {
    /// The configuration set up in Aldeamo's web app.
    pub config_id: String,
    /// The key later used to validate, at most 20 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_id: Option<String>,
}

/// The provider a send asks for: one name (`danaconnect`, `aldeamo`, `auto`) or a list tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ProviderChoice {
    /// One name; `auto` means the configured order with failover.
    One(String),
    /// Providers tried in this order, failing over from one to the next.
    List(Vec<String>),
}

impl ProviderChoice {
    /// As stored and reported: the name, or the list joined with commas.
    pub fn label(&self) -> String {
        match self {
            Self::One(name) => name.clone(),
            Self::List(names) => names.join(","),
        }
    }
}

impl From<&str> for ProviderChoice {
    fn from(name: &str) -> Self {
        Self::One(name.to_string())
    }
}

/// `vendor.call`: one call to a token-protected vendor (NumRot, GestoPago) on a producer's behalf.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VendorCall {
    /// The producer's id for this call.
    pub call_id: Uuid,
    /// `numrot` or `gestopago`.
    pub vendor: String,
    /// `GET` or `POST`.
    pub method: String,
    /// The vendor's path, starting with `/`; it must stay on the vendor's host.
    pub path: String,
    /// The JSON payload (for GestoPago, encrypted into `signed`).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// `doc.sign`: a PDF to have signed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct DocSign {
    /// The producer's id for the document.
    pub document_id: Uuid,
    /// Whose document it is.
    pub tenant: String,
    /// The file name the vendor shows.
    pub document_name: String,
    /// Standard base64 of the PDF, held as the bytes of the text: a large document is sent on as it
    /// came, never copied into a second string.
    #[serde(deserialize_with = "text_bytes")]
    #[schemars(with = "String")]
    pub document_content: bytes::Bytes,
    /// Who signs it.
    pub active_directory_user: String,
    /// The signature type, passed on as given; `digital_signature` (the document's example) when absent.
    #[serde(default = "digital_signature")]
    pub signature_type: String,
    /// The producer's webhook for the outcome.
    #[serde(default)]
    pub callback_url: Option<String>,
}

/// `doc.sign` as parsed from a body it borrows from.
#[derive(Deserialize)]
struct DocSignFields<'a> {
    document_id: Uuid,
    tenant: String,
    document_name: String,
    #[serde(borrow)]
    document_content: std::borrow::Cow<'a, str>,
    active_directory_user: String,
    #[serde(default = "digital_signature")]
    signature_type: String,
    #[serde(default)]
    callback_url: Option<String>,
}

impl DocSign {
    /// Decodes a body, keeping `document_content` as a slice of `body` (no copy) when the JSON
    /// string holds no escapes, which base64 never needs.
    pub fn from_shared(body: &bytes::Bytes) -> Result<Self, serde_json::Error> {
        let f: DocSignFields<'_> = serde_json::from_slice(body)?;
        let document_content = match f.document_content {
            std::borrow::Cow::Borrowed(text) => body.slice_ref(text.as_bytes()),
            std::borrow::Cow::Owned(text) => bytes::Bytes::from(text),
        };
        Ok(Self {
            document_id: f.document_id,
            tenant: f.tenant,
            document_name: f.document_name,
            document_content,
            active_directory_user: f.active_directory_user,
            signature_type: f.signature_type,
            callback_url: f.callback_url,
        })
    }
}

fn digital_signature() -> String {
    "digital_signature".into()
}

/// Takes a JSON string's own buffer as bytes, without a copy.
fn text_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
    String::deserialize(d).map(bytes::Bytes::from)
}

/// `doc.callback`: the vendor said (or a poll asks whether) a document is done. The handler trusts
/// none of it but the document id: the vendor is asked.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DocCallback {
    /// pasarela's document id.
    pub document_id: Uuid,
    /// The vendor's id, as the sender knew it.
    #[serde(default)]
    pub vendor_document_id: Option<String>,
    /// The status the sender saw, if any.
    #[serde(default)]
    pub status: Option<String>,
    /// `vendor_webhook` or `poll`.
    pub source: String,
}

/// `otp.verify`: check a code a user typed against the send it belongs to.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct OtpVerify {
    /// The producer's id for this verification.
    pub verification_id: Uuid,
    /// The `request_id` of the `otp.send`.
    pub request_id: Uuid,
    /// The code the user typed.
    pub code: OtpCode,
}

/// A code a user typed. It is secret: it never prints, and a wrong-typed one is refused without
/// echoing it (serde's own messages quote the value they could not read).
#[derive(Clone)]
pub struct OtpCode(pub secrecy::SecretString);

impl JsonSchema for OtpCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OtpCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "The code the user typed, as a string; pasarela never stores or logs it."
        })
    }
}

impl std::fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpCode([REDACTED])")
    }
}

impl<'de> Deserialize<'de> for OtpCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CodeVisitor;
        fn refuse<E: serde::de::Error>() -> E {
            E::custom("code: expected a string")
        }
        impl serde::de::Visitor<'_> for CodeVisitor {
            type Value = OtpCode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the code as a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OtpCode, E> {
                Ok(OtpCode(v.to_string().into()))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<OtpCode, E> {
                Err(refuse())
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<OtpCode, E> {
                Err(refuse())
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<OtpCode, E> {
                Err(refuse())
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<OtpCode, E> {
                Err(refuse())
            }
        }
        d.deserialize_any(CodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_sign_keeps_the_document_as_a_slice_of_the_body() {
        let body = bytes::Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "document_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c11", "tenant": "acme",
                "document_name": "contract.pdf", "document_content": "JVBERi0xLjQK",
                "active_directory_user": "john.doe@company.com"
            }))
            .unwrap(),
        );
        let m = DocSign::from_shared(&body).unwrap();
        assert_eq!(&m.document_content[..], b"JVBERi0xLjQK");
        assert_eq!(m.signature_type, "digital_signature");
        let inside = body.as_ptr_range();
        assert!(
            inside.contains(&m.document_content.as_ptr()),
            "a slice, not a copy"
        );
        // An escaped string (never base64, but valid JSON) still decodes, as a copy.
        let escaped = bytes::Bytes::from_static(
            br#"{"document_id":"0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c11","tenant":"a","document_name":"n","document_content":"JVBE\/","active_directory_user":"u"}"#,
        );
        assert_eq!(
            &DocSign::from_shared(&escaped).unwrap().document_content[..],
            b"JVBE/"
        );
        assert!(DocSign::from_shared(&bytes::Bytes::from_static(b"{}")).is_err());
    }

    #[test]
    fn the_contract_example_parses_and_unknown_fields_are_ignored() {
        let raw = serde_json::json!({
            "request_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c11", "tenant": "acme",
            "provider": "danaconnect", "channel": "sms",
            "destination": { "mobile": "+573001234567", "email": "ana@example.com" },
            "code": { "type": "numeric", "length": 6, "expires_in_s": 300, "max_tries": 5 },
            "danaconnect": { "id_conversation": 824541,
                             "values": [ { "key": "COD1_EMAIL", "value": "ana@example.com" } ] },
            "aldeamo": { "config_id": "cfg-1", "otp_id": "x" },
            "added_later": true
        });
        let m: OtpSend = serde_json::from_value(raw).unwrap();
        assert_eq!(m.code.length, 6);
        assert_eq!(m.danaconnect.unwrap().id_conversation, 824541);
    }

    #[test]
    fn providers_are_one_name_or_a_list() {
        let one: ProviderChoice = serde_json::from_str(r#""auto""#).unwrap();
        assert_eq!(one, ProviderChoice::One("auto".into()));
        let list: ProviderChoice = serde_json::from_str(r#"["aldeamo","danaconnect"]"#).unwrap();
        assert_eq!(list.label(), "aldeamo,danaconnect");
    }

    #[test]
    fn a_verify_code_never_prints_even_when_refused() {
        let ok: OtpVerify = serde_json::from_value(serde_json::json!({
            "verification_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c11",
            "request_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c12", "code": "Rf24sG"
        }))
        .unwrap();
        assert!(!format!("{ok:?}").contains("Rf24sG"));
        use secrecy::ExposeSecret;
        assert_eq!(ok.code.0.expose_secret(), "Rf24sG");
        let err = serde_json::from_value::<OtpVerify>(serde_json::json!({
            "verification_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c11",
            "request_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c12", "code": 482913
        }))
        .unwrap_err();
        assert!(!err.to_string().contains("482913"), "{err}");
        assert!(err.to_string().contains("code"), "{err}");
    }

    #[test]
    fn wrong_types_do_not_parse() {
        let raw = serde_json::json!({
            "request_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c11", "tenant": "acme",
            "provider": "danaconnect", "channel": "sms",
            "code": { "type": "numeric", "length": "six", "expires_in_s": 300 }
        });
        assert!(serde_json::from_value::<OtpSend>(raw).is_err());
    }
}
