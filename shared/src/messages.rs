//! The work messages of the contract (DESIGN.md §2) as serde types.
//!
//! Unknown fields are ignored and new fields are optional, so messages already queued keep parsing when
//! producers or pasarela move ahead. Values with a fixed set of choices (provider, channel, code type)
//! are kept as text here and checked by the handler, so that a wrong choice is a `rejected` result that
//! names the field, not an unreadable message.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `otp.send`: generate a one-time code and send it to a destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Destination {
    /// E.164 mobile number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The code's alphabet, length, lifetime and tries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeSpec {
    /// `numeric`, `alphanumeric` or `alphabetic`.
    #[serde(rename = "type")]
    pub code_type: String,
    /// Number of characters.
    pub length: u32,
    /// Lifetime in seconds.
    pub expires_in_s: u32,
    /// Wrong answers allowed; the vendor's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tries: Option<u32>,
}

/// DANAConnect's conversation and contact-list values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DanaConnectBlock {
    /// An active conversation's id.
    pub id_conversation: i64,
    /// Values for the conversation's contact list.
    #[serde(default)]
    pub values: Vec<KeyValue>,
}

/// A `{key, value}` pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyValue {
    /// The field.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// Aldeamo's configuration and optional OTP id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AldeamoBlock {
    /// The configuration set up in Aldeamo's web app.
    pub config_id: String,
    /// The key later used to validate, at most 20 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_id: Option<String>,
}

/// The provider a send asks for: one name (`danaconnect`, `aldeamo`, `auto`) or a list tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// `otp.verify`: check a code a user typed against the send it belongs to.
#[derive(Debug, Clone, Deserialize)]
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
