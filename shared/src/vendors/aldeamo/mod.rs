//! Aldeamo's OTP API (docs/vendors/aldeamo.md): `POST /otp` and `POST /validateOtp` with HTTP Basic auth.
//!
//! The code's length, alphabet and lifetime belong to a configuration (`configId`) set in Aldeamo's
//! web app, not to the request; `otpId` is the caller's key for the code, at most 20 alphanumeric
//! characters. The validation answer is undocumented: [`validation`] reads every plausible shape and
//! reports the one it cannot read.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::demo;
use super::http::{BasicJsonApi, VendorError};

pub mod validation;

use crate::contract::env::{ConfigError, Env, FromEnv, base_url};
use crate::contract::errors::InvalidField;
pub use validation::{ValidateStatus, read_answer};

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

/// Each configuration's code lifetime, as set in Aldeamo's web app and told to pasarela by
/// `ALDEAMO_CONFIG_EXPIRY` (`cfg-sms=5m,cfg-email=10m`): the request cannot carry it, and the code's
/// `expires_at` (and so the report's "vencido") must follow it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigExpiry(std::collections::BTreeMap<String, Duration>);

impl ConfigExpiry {
    /// Reads `config=duration` pairs separated by commas; each lifetime 1 s to 120 minutes.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut lifetimes = std::collections::BTreeMap::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (config, duration) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not config=duration"))?;
            let lifetime = crate::contract::retry::parse_duration(duration.trim())
                .map_err(|e| format!("{}: {e}", config.trim()))?;
            if lifetime < Duration::from_secs(1)
                || lifetime > Duration::from_secs(u64::from(limits::MAX_EXPIRY_S))
            {
                return Err(format!(
                    "{}: a configuration's lifetime is 1s to 120m",
                    config.trim()
                ));
            }
            lifetimes.insert(config.trim().to_string(), lifetime);
        }
        Ok(Self(lifetimes))
    }

    /// The lifetime of a code sent under `config_id`, in seconds: the producer's `override_s` when
    /// given, else the configuration's, else the longest a configuration may set (120 minutes), so
    /// that no code is called expired before Aldeamo expires it.
    pub fn lifetime_s(&self, config_id: &str, override_s: Option<u32>) -> u32 {
        override_s
            .or_else(|| self.0.get(config_id).map(|d| d.as_secs() as u32))
            .unwrap_or(limits::MAX_EXPIRY_S)
    }
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

/// The `/otp` answer. The document shows only the SMS and e-mail statuses; WhatsApp and voice may
/// come in a field of their own, so each is read when present.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendOtpResponse {
    /// SMS (and, without a field of their own, the other phone channels) sending status; `ok` when
    /// sent.
    pub sms_sending_status: Option<String>,
    /// E-mail sending status; `ok` when sent.
    pub email_sending_status: Option<String>,
    /// WhatsApp sending status, when Aldeamo gives one.
    #[serde(default)]
    pub whatsapp_sending_status: Option<String>,
    /// Voice sending status, when Aldeamo gives one.
    #[serde(default)]
    pub voice_sending_status: Option<String>,
    /// Aldeamo's id for the transaction; required, so that an error body is not taken for an answer.
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
    /// The sending status of `channel`: e-mail's own; WhatsApp's and voice's own when present, else
    /// `smsSendingStatus`, which the document gives for every phone channel.
    pub fn status_of(&self, channel: &str) -> Option<&str> {
        let own = match channel {
            "email" => return self.email_sending_status.as_deref(),
            "whatsapp" => &self.whatsapp_sending_status,
            "voice" => &self.voice_sending_status,
            _ => &None,
        };
        own.as_deref().or(self.sms_sending_status.as_deref())
    }

    /// The verdict for `channel`, from its sending status.
    pub fn verdict(&self, channel: &str) -> SendVerdict {
        match self.status_of(channel) {
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

/// The Aldeamo OTP client.
#[derive(Debug, Clone)]
pub struct AldeamoClient {
    api: BasicJsonApi,
    send_url: reqwest::Url,
    validate_url: reqwest::Url,
    config_expiry: ConfigExpiry,
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
            config_expiry: settings.config_expiry.clone(),
        })
    }

    /// Each configuration's code lifetime, as configured.
    pub fn config_expiry(&self) -> &ConfigExpiry {
        &self.config_expiry
    }

    /// `POST /otp`: generate a code under the configuration and send it.
    #[tracing::instrument(name = "aldeamo.otp", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn send(&self, request: &SendOtpRequest) -> Result<SendOtpResponse, VendorError> {
        self.api.post("otp", &self.send_url, request).await
    }

    /// `POST /validateOtp`: check a pin the user typed, and read whatever shape the answer has.
    #[tracing::instrument(name = "aldeamo.validate_otp", skip_all, fields(otel.kind = "client", vendor = VENDOR, http.request.method, server.address, http.response.status_code, error.type, otel.status_code))]
    pub async fn validate(
        &self,
        request: &ValidateOtpRequest,
    ) -> Result<ValidateStatus, VendorError> {
        let answer = self
            .api
            .exchange("validateOtp", &self.validate_url, request)
            .await?;
        read_answer(&answer)
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
    /// `ALDEAMO_CONFIG_EXPIRY`: each configuration's code lifetime.
    pub config_expiry: ConfigExpiry,
}

impl FromEnv for AldeamoSettings {
    /// Reads `ALDEAMO_*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let base_url = base_url(env, "ALDEAMO_BASE_URL", demo::ALDEAMO_BASE_URL)?;
        Ok(Self {
            base_url,
            user: env.demo_or_required("ALDEAMO_USER", demo::ALDEAMO_USER),
            password: env.demo_or_required_secret("ALDEAMO_PASSWORD", demo::ALDEAMO_PASSWORD),
            timeout: env.duration("ALDEAMO_TIMEOUT", Duration::from_secs(10))?,
            config_expiry: ConfigExpiry::parse(&env.string("ALDEAMO_CONFIG_EXPIRY", ""))
                .map_err(|problem| ConfigError::new("ALDEAMO_CONFIG_EXPIRY", problem))?,
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
        // A phone channel's own field, when there is one, is the one read.
        let r: SendOtpResponse = serde_json::from_value(serde_json::json!({
            "smsSendingStatus": "not_requested", "whatsappSendingStatus": "ok",
            "voiceSendingStatus": "failed", "otpTransactionId": "013ff9a3"
        }))
        .unwrap();
        assert_eq!(r.verdict("whatsapp"), SendVerdict::Sent);
        assert_eq!(r.status_of("voice"), Some("failed"));
        assert!(matches!(r.verdict("sms"), SendVerdict::NotSent(_)));
        // An error body does not pass for an answer.
        assert!(serde_json::from_str::<SendOtpResponse>(r#"{"error":"bad otpId"}"#).is_err());
    }

    #[test]
    fn a_codes_lifetime_is_the_override_then_its_configuration_then_the_longest() {
        let expiry = ConfigExpiry::parse("cfg-sms=5m, cfg-email=90s").unwrap();
        assert_eq!(expiry.lifetime_s("cfg-sms", None), 300);
        assert_eq!(expiry.lifetime_s("cfg-email", None), 90);
        assert_eq!(expiry.lifetime_s("cfg-sms", Some(60)), 60);
        assert_eq!(expiry.lifetime_s("cfg-other", None), 7200);
        assert_eq!(ConfigExpiry::parse("").unwrap(), ConfigExpiry::default());
        for bad in ["cfg-sms", "cfg-sms=3h", "cfg-sms=0s", "cfg-sms=soon"] {
            assert!(ConfigExpiry::parse(bad).is_err(), "{bad}");
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
