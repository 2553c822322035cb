//! Aldeamo's OTP API (docs/vendors/aldeamo.md): `POST /otp` and `POST /validateOtp` with HTTP Basic auth.
//!
//! The code's length, alphabet and lifetime belong to a configuration (`configId`) set in Aldeamo's
//! web app, not to the request; `otpId` is the caller's key for the code, at most 20 alphanumeric
//! characters. The validation answer is undocumented: pasarela reads the shape its simulator gives
//! (`{"otpId", "status"}`) and treats anything else as a vendor error that keeps a redacted body.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::demo;
use super::http::{BasicJsonApi, VendorError};
use crate::contract::env::{ConfigError, Env, FromEnv, base_url};
use crate::contract::errors::InvalidField;

const VENDOR: &str = "aldeamo";

/// The documented bounds, checked before any call.
pub mod limits {
    /// Code length a configuration may set, inclusive.
    pub const LENGTH: std::ops::RangeInclusive<u32> = 4..=8;
    /// Longest lifetime a configuration may set: 120 minutes.
    pub const MAX_EXPIRY_S: u32 = 120 * 60;
    /// Longest `otpId`.
    pub const OTP_ID_MAX: usize = 20;
    /// Code alphabets a configuration may set.
    pub const TYPES: [&str; 3] = ["numeric", "alphanumeric", "alphabetic"];
    /// Channels Aldeamo sends on.
    pub const CHANNELS: [&str; 4] = ["sms", "email", "whatsapp", "voice"];
}

/// Checks a caller's `otpId`: 1 to 20 ASCII letters and digits.
pub fn check_otp_id(otp_id: &str) -> Result<(), InvalidField> {
    const FIELD: &str = "aldeamo.otp_id";
    if otp_id.is_empty() || otp_id.len() > limits::OTP_ID_MAX {
        return Err(InvalidField::new(
            FIELD,
            format!(
                "1 to {} characters, got {}",
                limits::OTP_ID_MAX,
                otp_id.chars().count()
            ),
        ));
    }
    if !otp_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(InvalidField::new(
            FIELD,
            "only letters and digits are allowed",
        ));
    }
    Ok(())
}

/// An `otpId` derived from a request id when the producer gives none: the id's 128 bits in base 62,
/// cut to 20 characters (about 119 bits), so it is stable across retries and collisions are out of
/// reach.
pub fn otp_id_for(request_id: Uuid) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = request_id.as_u128();
    let mut out = [b'0'; limits::OTP_ID_MAX];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base 62 digits are ASCII")
}

/// The `/otp` body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendOtpRequest {
    /// The configuration that sets the code's properties and channel.
    pub config_id: String,
    /// The caller's key for the code, used to validate it.
    pub otp_id: String,
    /// Required for SMS, voice and WhatsApp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// Required for e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The `/otp` answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendOtpResponse {
    /// SMS (and phone channels) sending status; `ok` when sent.
    pub sms_sending_status: Option<String>,
    /// E-mail sending status; `ok` when sent.
    pub email_sending_status: Option<String>,
    /// Aldeamo's id for the transaction.
    pub otp_transaction_id: String,
}

/// What a send's answer says about the channel used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendVerdict {
    /// The channel reported `ok`.
    Sent,
    /// The channel reported something else: the code did not go out.
    NotSent(String),
}

impl SendOtpResponse {
    /// The verdict for `channel`: e-mail reports through `emailSendingStatus`, the phone channels
    /// through `smsSendingStatus`.
    pub fn verdict(&self, channel: &str) -> SendVerdict {
        let status = if channel == "email" {
            &self.email_sending_status
        } else {
            &self.sms_sending_status
        };
        match status.as_deref() {
            Some(s) if s.eq_ignore_ascii_case("ok") => SendVerdict::Sent,
            Some(s) => SendVerdict::NotSent(s.chars().take(40).collect()),
            None => SendVerdict::NotSent("no sending status".into()),
        }
    }
}

/// The `/validateOtp` body. The pin is secret: it is exposed only while the body is serialised.
#[derive(Debug)]
pub struct ValidateOtpRequest {
    /// The `otpId` the code was sent under.
    pub otp_id: String,
    /// The code the user typed.
    pub pin: SecretString,
}

impl Serialize for ValidateOtpRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ValidateOtpRequest", 2)?;
        st.serialize_field("otpId", &self.otp_id)?;
        st.serialize_field("pin", self.pin.expose_secret())?;
        st.end()
    }
}

/// The `/validateOtp` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct ValidateOtpResponse {
    /// The `otpId`; the document spells it `otpld` once, so both are read.
    #[serde(rename = "otpId", alias = "otpld")]
    pub otp_id: Option<String>,
    /// `VALIDATED`, `INVALID`, `EXPIRED`, `ALREADY_USED`, `MAX_ATTEMPTS` or `NOT_FOUND`.
    pub status: String,
}

/// The validation statuses, as pasarela's verify outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidateStatus {
    /// The pin is right.
    Validated,
    /// The pin is wrong.
    Invalid,
    /// The code's time is up.
    Expired,
    /// The code was validated before.
    AlreadyUsed,
    /// Too many wrong pins.
    MaxAttempts,
    /// No code under this `otpId`.
    NotFound,
    /// A status nobody documented.
    Undocumented,
}

impl ValidateStatus {
    /// Reads a status.
    pub fn parse(status: &str) -> Self {
        match status.trim().to_ascii_uppercase().as_str() {
            "VALIDATED" => Self::Validated,
            "INVALID" => Self::Invalid,
            "EXPIRED" => Self::Expired,
            "ALREADY_USED" => Self::AlreadyUsed,
            "MAX_ATTEMPTS" => Self::MaxAttempts,
            "NOT_FOUND" => Self::NotFound,
            _ => Self::Undocumented,
        }
    }
}

/// The Aldeamo OTP client.
#[derive(Debug, Clone)]
pub struct AldeamoClient {
    api: BasicJsonApi,
    send_url: reqwest::Url,
    validate_url: reqwest::Url,
}

impl AldeamoClient {
    /// A client for the configured account; the URLs are parsed once, here.
    pub fn new(settings: &AldeamoSettings) -> Result<Self, url::ParseError> {
        let base = settings.base_url.trim_end_matches('/');
        Ok(Self {
            api: BasicJsonApi::new(
                VENDOR,
                settings.user.clone(),
                settings.password.clone(),
                settings.timeout,
            ),
            send_url: reqwest::Url::parse(&format!("{base}/otp"))?,
            validate_url: reqwest::Url::parse(&format!("{base}/validateOtp"))?,
        })
    }

    /// `POST /otp`: generate a code under the configuration and send it.
    #[tracing::instrument(name = "aldeamo.otp", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.status_code))]
    pub async fn send(&self, request: &SendOtpRequest) -> Result<SendOtpResponse, VendorError> {
        self.api.post("otp", &self.send_url, request).await
    }

    /// `POST /validateOtp`: check a pin the user typed.
    #[tracing::instrument(name = "aldeamo.validate_otp", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.status_code))]
    pub async fn validate(
        &self,
        request: &ValidateOtpRequest,
    ) -> Result<ValidateOtpResponse, VendorError> {
        self.api
            .post("validateOtp", &self.validate_url, request)
            .await
    }
}

/// Aldeamo credentials and endpoint (`ALDEAMO_*`).
#[derive(Debug, Clone)]
pub struct AldeamoSettings {
    /// `ALDEAMO_BASE_URL`: the part before `/otp` and `/validateOtp`.
    pub base_url: String,
    /// `ALDEAMO_USER`.
    pub user: String,
    /// `ALDEAMO_PASSWORD`.
    pub password: SecretString,
    /// `ALDEAMO_TIMEOUT`: the whole request's deadline.
    pub timeout: Duration,
}

impl FromEnv for AldeamoSettings {
    /// Reads `ALDEAMO_*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let base_url = base_url(env, "ALDEAMO_BASE_URL", demo::ALDEAMO_BASE_URL)?;
        Ok(Self {
            base_url,
            user: env.string("ALDEAMO_USER", demo::ALDEAMO_USER),
            password: env.secret("ALDEAMO_PASSWORD", demo::ALDEAMO_PASSWORD),
            timeout: env.duration("ALDEAMO_TIMEOUT", Duration::from_secs(10))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_otp_ids_fit_the_vendor_and_are_stable() {
        let id = Uuid::new_v4();
        let a = otp_id_for(id);
        assert_eq!(a.len(), 20);
        assert!(check_otp_id(&a).is_ok(), "{a}");
        assert_eq!(a, otp_id_for(id));
        assert_ne!(a, otp_id_for(Uuid::new_v4()));
        // Consecutive time-ordered ids differ in their low bits, which the encoding keeps.
        assert_ne!(otp_id_for(Uuid::now_v7()), otp_id_for(Uuid::now_v7()));
    }

    #[test]
    fn caller_otp_ids_are_checked() {
        assert!(check_otp_id("abc123").is_ok());
        assert!(check_otp_id(&"a".repeat(20)).is_ok());
        let err = check_otp_id(&"a".repeat(21)).unwrap_err();
        assert_eq!(err.field, "aldeamo.otp_id");
        assert!(err.to_string().contains("20"), "{err}");
        assert!(check_otp_id("").is_err());
        assert!(check_otp_id("has-dash").is_err());
    }

    #[test]
    fn the_channel_used_decides_the_send_verdict() {
        let r: SendOtpResponse = serde_json::from_value(serde_json::json!({
            "smsSendingStatus": "ok", "emailSendingStatus": "not_requested",
            "otpTransactionId": "013ff9a3-4ccf-4125-af33-8e38862680c2"
        }))
        .unwrap();
        assert_eq!(r.verdict("sms"), SendVerdict::Sent);
        assert_eq!(r.verdict("voice"), SendVerdict::Sent);
        assert!(matches!(r.verdict("email"), SendVerdict::NotSent(_)));
        // An error body does not pass for an answer.
        assert!(serde_json::from_str::<SendOtpResponse>(r#"{"error":"bad otpId"}"#).is_err());
    }

    #[test]
    fn validation_reads_both_spellings_and_every_status() {
        let r: ValidateOtpResponse =
            serde_json::from_str(r#"{"otpld":"x1","status":"VALIDATED"}"#).unwrap();
        assert_eq!(r.otp_id.as_deref(), Some("x1"));
        for (s, v) in [
            ("VALIDATED", ValidateStatus::Validated),
            ("INVALID", ValidateStatus::Invalid),
            ("EXPIRED", ValidateStatus::Expired),
            ("ALREADY_USED", ValidateStatus::AlreadyUsed),
            ("MAX_ATTEMPTS", ValidateStatus::MaxAttempts),
            ("NOT_FOUND", ValidateStatus::NotFound),
            ("SOMETHING", ValidateStatus::Undocumented),
        ] {
            assert_eq!(ValidateStatus::parse(s), v, "{s}");
        }
    }

    #[test]
    fn the_pin_is_hidden_from_debug() {
        let req = ValidateOtpRequest {
            otp_id: "x1".into(),
            pin: SecretString::from("7Hq2"),
        };
        assert!(!format!("{req:?}").contains("7Hq2"));
        let body = serde_json::to_value(&req).unwrap();
        assert_eq!(body["pin"], "7Hq2");
        assert_eq!(body["otpId"], "x1");
    }
}
