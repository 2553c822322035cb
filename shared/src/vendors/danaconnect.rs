//! DANAConnect's OTP API (docs/vendors/danaconnect.md): `POST /send` and `POST /verify`, HTTP Basic auth with the
//! login `user@IDCompany`, and every documented response code mapped to what pasarela does with it.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::demo;
use super::http::{BasicJsonApi, VendorError};
use crate::contract::env::{ConfigError, Env, FromEnv, base_url};

const VENDOR: &str = "danaconnect";

/// The documented bounds, checked before any call.
pub mod limits {
    /// Code length, inclusive.
    pub const LENGTH: std::ops::RangeInclusive<u32> = 3..=12;
    /// `secondsExpiration`, inclusive.
    pub const SECONDS_EXPIRATION: std::ops::RangeInclusive<u32> = 1..=3200;
    /// `maximumTries` when none is given.
    pub const DEFAULT_MAXIMUM_TRIES: u32 = 5;
}

/// The code alphabet (`type`): 1 numeric, 2 alphanumeric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpType {
    /// Digits only (`1`).
    Numeric = 1,
    /// Letters and digits (`2`).
    Alphanumeric = 2,
}

/// A `{key, value}` pair for the conversation's contact list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationValue {
    /// The contact-list field.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// The `/send` body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendOtpRequest {
    /// An active conversation's id.
    pub id_conversation: i64,
    /// Values for the conversation's contact list.
    pub values: Vec<ConversationValue>,
    /// The conversation's additional parameters, sent only when there are some.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub parameters: std::collections::BTreeMap<String, String>,
    /// 1 numeric, 2 alphanumeric.
    #[serde(rename = "type")]
    pub otp_type: u8,
    /// Code length, 3..12.
    pub length: u32,
    /// Lifetime in seconds, 1..3200.
    pub seconds_expiration: u32,
    /// Wrong answers allowed before the code is disabled.
    pub maximum_tries: u32,
}

/// The `/send` answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendOtpResponse {
    /// The request's id, needed to verify.
    pub id_request: Option<i64>,
    /// The response code (`01`, `04`, ...).
    pub response_code: String,
    /// The vendor's words for the code.
    pub response_description: Option<String>,
    /// Tracking id of the conversation run.
    pub conversation_request_id: Option<String>,
}

/// The documented `/send` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendCode {
    /// `01` Success.
    Success,
    /// `04` Failed: internal, uncategorised.
    Failed,
    /// `05` Maintenance Service.
    Maintenance,
    /// `06` Invalid credentials.
    InvalidCredentials,
    /// `07` Incorrect type.
    IncorrectType,
    /// `08` Incorrect length.
    IncorrectLength,
    /// `09` Incorrect expiration time.
    IncorrectExpiration,
    /// `10` Incorrect IDConversation.
    IncorrectConversation,
    /// `15` Incorrect Request.
    IncorrectRequest,
    /// Any code the document does not list.
    Undocumented,
}

/// What pasarela does with a `/send` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendVerdict {
    /// The code was sent.
    Sent,
    /// The vendor failed; another attempt may succeed.
    Retry,
    /// pasarela's credentials were refused: permanent, and an operator must act.
    AuthFailed,
    /// The request breaks one of the vendor's rules: permanent.
    Rejected,
    /// Not in the contract: permanent, kept as a vendor error so nobody is sent codes in a loop.
    Unknown,
}

impl SendCode {
    /// Reads a response code.
    pub fn parse(code: &str) -> Self {
        match code.trim() {
            "01" => Self::Success,
            "04" => Self::Failed,
            "05" => Self::Maintenance,
            "06" => Self::InvalidCredentials,
            "07" => Self::IncorrectType,
            "08" => Self::IncorrectLength,
            "09" => Self::IncorrectExpiration,
            "10" => Self::IncorrectConversation,
            "15" => Self::IncorrectRequest,
            _ => Self::Undocumented,
        }
    }

    /// The verdict docs/vendors/danaconnect.md gives this code.
    pub fn verdict(self) -> SendVerdict {
        match self {
            Self::Success => SendVerdict::Sent,
            Self::Failed | Self::Maintenance => SendVerdict::Retry,
            Self::InvalidCredentials => SendVerdict::AuthFailed,
            Self::IncorrectType
            | Self::IncorrectLength
            | Self::IncorrectExpiration
            | Self::IncorrectConversation
            | Self::IncorrectRequest => SendVerdict::Rejected,
            Self::Undocumented => SendVerdict::Unknown,
        }
    }

    /// What the code means, naming the field and range where there is one.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed (vendor internal error)",
            Self::Maintenance => "service in maintenance",
            Self::InvalidCredentials => "invalid credentials",
            Self::IncorrectType => "code.type: the vendor takes 1 numeric or 2 alphanumeric",
            Self::IncorrectLength => "code.length: allowed range 3 to 12",
            Self::IncorrectExpiration => "code.expires_in_s: allowed range 1 to 3200",
            Self::IncorrectConversation => {
                "danaconnect.id_conversation: not an active conversation"
            }
            Self::IncorrectRequest => "the vendor refused the request as incorrect",
            Self::Undocumented => "a response code the vendor's contract does not list",
        }
    }
}

/// The `/verify` body. The code is secret: it is exposed only while the body is serialised.
#[derive(Debug)]
pub struct VerifyOtpRequest {
    /// The id `/send` returned.
    pub id_request: i64,
    /// The code the user typed.
    pub otp: SecretString,
}

impl Serialize for VerifyOtpRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("VerifyOtpRequest", 2)?;
        st.serialize_field("idRequest", &self.id_request)?;
        st.serialize_field("otp", self.otp.expose_secret())?;
        st.end()
    }
}

/// The `/verify` answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOtpResponse {
    /// The request's id.
    pub id_request: Option<i64>,
    /// The response code.
    pub response_code: String,
    /// The vendor's words for the code.
    pub response_description: Option<String>,
}

/// The documented `/verify` codes, as pasarela's verify outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyCode {
    /// `01`: the code is valid.
    Verified,
    /// `03`: expired.
    Expired,
    /// `04`: incorrect code.
    Incorrect,
    /// `06`: invalid credentials.
    InvalidCredentials,
    /// `14`: already used.
    AlreadyUsed,
    /// `16`: too many failed attempts.
    MaxAttempts,
    /// Not in the contract.
    Undocumented,
}

impl VerifyCode {
    /// Reads a response code.
    pub fn parse(code: &str) -> Self {
        match code.trim() {
            "01" => Self::Verified,
            "03" => Self::Expired,
            "04" => Self::Incorrect,
            "06" => Self::InvalidCredentials,
            "14" => Self::AlreadyUsed,
            "16" => Self::MaxAttempts,
            _ => Self::Undocumented,
        }
    }
}

/// The DANAConnect OTP client.
#[derive(Debug, Clone)]
pub struct DanaConnectClient {
    api: BasicJsonApi,
    send_url: reqwest::Url,
    verify_url: reqwest::Url,
}

impl DanaConnectClient {
    /// A client for the configured account; the URLs are parsed once, here.
    pub fn new(settings: &DanaConnectSettings) -> Result<Self, url::ParseError> {
        let base = settings.base_url.trim_end_matches('/');
        Ok(Self {
            api: BasicJsonApi::new(
                VENDOR,
                format!("{}@{}", settings.user, settings.company),
                settings.password.clone(),
                settings.timeout,
            ),
            send_url: reqwest::Url::parse(&format!("{base}/send"))?,
            verify_url: reqwest::Url::parse(&format!("{base}/verify"))?,
        })
    }

    /// `POST /send`: generate and send a code. Codes come back as data; only transport and
    /// undocumented HTTP failures are errors.
    #[tracing::instrument(name = "danaconnect.send", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn send(&self, request: &SendOtpRequest) -> Result<SendOtpResponse, VendorError> {
        self.api.post("send", &self.send_url, request).await
    }

    /// `POST /verify`: check a code the user typed.
    #[tracing::instrument(name = "danaconnect.verify", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn verify(
        &self,
        request: &VerifyOtpRequest,
    ) -> Result<VerifyOtpResponse, VendorError> {
        self.api.post("verify", &self.verify_url, request).await
    }
}

/// DANAConnect credentials and endpoint (`DANACONNECT_*`).
#[derive(Debug, Clone)]
pub struct DanaConnectSettings {
    /// `DANACONNECT_BASE_URL`: the part before `/send` and `/verify`.
    pub base_url: String,
    /// `DANACONNECT_USER`.
    pub user: String,
    /// `DANACONNECT_COMPANY`: the IDCompany appended to the login after `@`.
    pub company: String,
    /// `DANACONNECT_PASSWORD`.
    pub password: SecretString,
    /// `DANACONNECT_TIMEOUT`: the whole request's deadline.
    pub timeout: Duration,
}

impl FromEnv for DanaConnectSettings {
    /// Reads `DANACONNECT_*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let base_url = base_url(env, "DANACONNECT_BASE_URL", demo::DANACONNECT_BASE_URL)?;
        Ok(Self {
            base_url,
            user: env.demo_or_required("DANACONNECT_USER", demo::DANACONNECT_USER),
            company: env.demo_or_required("DANACONNECT_COMPANY", demo::DANACONNECT_COMPANY),
            password: env
                .demo_or_required_secret("DANACONNECT_PASSWORD", demo::DANACONNECT_PASSWORD),
            timeout: env.duration("DANACONNECT_TIMEOUT", Duration::from_secs(10))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_send_code_has_its_verdict() {
        let cases = [
            ("01", SendVerdict::Sent),
            ("04", SendVerdict::Retry),
            ("05", SendVerdict::Retry),
            ("06", SendVerdict::AuthFailed),
            ("07", SendVerdict::Rejected),
            ("08", SendVerdict::Rejected),
            ("09", SendVerdict::Rejected),
            ("10", SendVerdict::Rejected),
            ("15", SendVerdict::Rejected),
            ("99", SendVerdict::Unknown),
        ];
        for (code, verdict) in cases {
            assert_eq!(SendCode::parse(code).verdict(), verdict, "code {code}");
        }
    }

    #[test]
    fn every_documented_verify_code_is_read() {
        assert_eq!(VerifyCode::parse("01"), VerifyCode::Verified);
        assert_eq!(VerifyCode::parse("03"), VerifyCode::Expired);
        assert_eq!(VerifyCode::parse("04"), VerifyCode::Incorrect);
        assert_eq!(VerifyCode::parse("06"), VerifyCode::InvalidCredentials);
        assert_eq!(VerifyCode::parse("14"), VerifyCode::AlreadyUsed);
        assert_eq!(VerifyCode::parse("16"), VerifyCode::MaxAttempts);
        assert_eq!(VerifyCode::parse("02"), VerifyCode::Undocumented);
    }

    #[test]
    fn the_send_body_has_the_documented_field_names() {
        let body = serde_json::to_value(SendOtpRequest {
            id_conversation: 824541,
            values: vec![ConversationValue {
                key: "COD1_EMAIL".into(),
                value: "test@danaconnect.com".into(),
            }],
            otp_type: 1,
            length: 12,
            seconds_expiration: 3000,
            maximum_tries: 5,
            parameters: Default::default(),
        })
        .unwrap();
        let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "idConversation",
                "length",
                "maximumTries",
                "secondsExpiration",
                "type",
                "values"
            ]
        );
    }

    #[test]
    fn the_verify_code_is_hidden_from_debug() {
        let req = VerifyOtpRequest {
            id_request: 1,
            otp: SecretString::from("Rf24sG"),
        };
        assert!(!format!("{req:?}").contains("Rf24sG"));
        assert_eq!(serde_json::to_value(&req).unwrap()["otp"], "Rf24sG");
    }
}
