//! Aldeamo's OTP API as its document describes it (docs/vendors/aldeamo.md).
//!
//! Basic auth with the account's user and password. A code's channel, length (4..8), alphabet and
//! lifetime (up to 120 minutes) belong to a configuration (`configId`) set in Aldeamo's web app, not
//! to the request: the simulator keeps them per `configId`, with built-in demo configurations and a
//! control endpoint (`/sim/aldeamo/configs`) standing in for the web app. `/otp` checks the request,
//! stores the code under the caller's `otpId` and "delivers" it to the inbox; `/validateOtp`, whose
//! answer the document leaves out, answers `{"otpId", "status"}` with `VALIDATED`, `INVALID`,
//! `EXPIRED`, `ALREADY_USED` or `MAX_ATTEMPTS`, and 404 `NOT_FOUND` for an `otpId` never sent, or in
//! any of the other shapes of [`answers`] (`POST /sim/aldeamo/settings {"validation_answer"}`).

pub mod answers;

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{InboxEntry, Sim, error};
use answers::AnswerShape;

const VENDOR: &str = "aldeamo";

/// Code lengths a configuration may set (document §4: "de 4 a 8 caracteres").
const LENGTHS: RangeInclusive<i64> = 4..=8;
/// Longest lifetime a configuration may set, in minutes (document §4: "el límite es de 120").
const EXPIRY_MINUTES: RangeInclusive<i64> = 1..=120;
/// Longest `otpId` (document §5).
const OTP_ID_MAX: usize = 20;
/// Failed validations after which a code is disabled, unless the configuration says otherwise.
const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// The sending status that means "sent"; as a script entry it lets the call through.
const SENT: &str = "ok";
/// The sending status of the channel a configuration does not use.
const NOT_REQUESTED: &str = "not_requested";

/// The channel a configuration sends on (document §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Channel {
    Sms,
    Email,
    Whatsapp,
    Voice,
}

impl Channel {
    fn parse(name: &str) -> Option<Self> {
        [Self::Sms, Self::Email, Self::Whatsapp, Self::Voice]
            .into_iter()
            .find(|channel| channel.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
            Self::Whatsapp => "whatsapp",
            Self::Voice => "voice",
        }
    }

    /// The request field that names the destination: WhatsApp and voice reach a phone, like SMS.
    fn destination_field(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms | Self::Whatsapp | Self::Voice => "mobile",
        }
    }
}

/// A code's alphabet (document §4, "Tipo").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum CodeType {
    Numeric,
    Alphanumeric,
    Alphabetic,
}

impl CodeType {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "numeric" => Some(Self::Numeric),
            "alphanumeric" => Some(Self::Alphanumeric),
            "alphabetic" => Some(Self::Alphabetic),
            _ => None,
        }
    }

    fn alphabet(self) -> &'static [u8] {
        const DIGITS: &[u8] = b"0123456789";
        const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        const LETTERS_AND_DIGITS: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        match self {
            Self::Numeric => DIGITS,
            Self::Alphanumeric => LETTERS_AND_DIGITS,
            Self::Alphabetic => LETTERS,
        }
    }

    fn generate(self, length: usize) -> String {
        let alphabet = self.alphabet();
        let mut rng = rand::rng();
        (0..length)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
            .collect()
    }
}

/// One configuration's code properties, as `GET /sim/aldeamo/configs` lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct OtpConfig {
    config_id: String,
    channel: Channel,
    length: u32,
    #[serde(rename = "type")]
    code_type: CodeType,
    expiry_minutes: u32,
    /// The lifetime in effect: `expiry_minutes` unless a test overrode it with `expiry_seconds`.
    expiry_seconds: u64,
    max_attempts: u32,
}

impl OtpConfig {
    fn builtin(id: &str, channel: Channel, length: u32, code_type: CodeType, minutes: u32) -> Self {
        Self {
            config_id: id.into(),
            channel,
            length,
            code_type,
            expiry_minutes: minutes,
            expiry_seconds: u64::from(minutes) * 60,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Reads a `POST /sim/aldeamo/configs` body, holding it to the document's limits.
    fn from_request(body: &Value) -> Result<Self, String> {
        let Some(fields) = body.as_object() else {
            return Err("the body must be a JSON object".into());
        };
        let config_id = required_text(fields, "config_id")?;
        let channel = Channel::parse(required_text(fields, "channel")?)
            .ok_or("channel must be sms, email, whatsapp or voice")?;
        let code_type = CodeType::parse(required_text(fields, "type")?)
            .ok_or("type must be numeric, alphanumeric or alphabetic")?;
        let length = optional_int(fields, "length")?.ok_or("length is required")?;
        if !LENGTHS.contains(&length) {
            return Err(format!(
                "length must be 4 to 8 characters (Aldeamo's limit), got {length}"
            ));
        }
        let minutes =
            optional_int(fields, "expiry_minutes")?.ok_or("expiry_minutes is required")?;
        if !EXPIRY_MINUTES.contains(&minutes) {
            return Err(format!(
                "expiry_minutes must be 1 to 120 (Aldeamo's limit), got {minutes}"
            ));
        }
        let max_attempts = match optional_int(fields, "max_attempts")? {
            None => DEFAULT_MAX_ATTEMPTS,
            Some(n) if n >= 1 && n <= i64::from(u32::MAX) => n as u32,
            Some(n) => return Err(format!("max_attempts must be at least 1, got {n}")),
        };
        let expiry_seconds = match optional_int(fields, "expiry_seconds")? {
            None => minutes as u64 * 60,
            Some(s) if s >= 1 && s <= EXPIRY_MINUTES.end() * 60 => s as u64,
            Some(s) => {
                return Err(format!(
                    "expiry_seconds must be 1 to 7200 (120 minutes), got {s}"
                ));
            }
        };
        Ok(Self {
            config_id: config_id.into(),
            channel,
            length: length as u32,
            code_type,
            expiry_minutes: minutes as u32,
            expiry_seconds,
            max_attempts,
        })
    }
}

/// A non-empty string field.
fn required_text<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match optional_text(fields, name)? {
        Some(text) => Ok(text),
        None => Err(format!("{name} is required")),
    }
}

/// A string field; absent, null and empty all count as missing.
fn optional_text<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str()).filter(|t| !t.is_empty())),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

/// An integer field; absent and null count as missing.
fn optional_int(fields: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{name} must be an integer")),
    }
}

/// Checks an `otpId`: the document's "valor alfanumérico", at most 20 characters.
fn check_otp_id(otp_id: &str) -> Result<(), String> {
    let chars = otp_id.chars().count();
    if chars == 0 || chars > OTP_ID_MAX {
        return Err(format!(
            "otpId must be 1 to {OTP_ID_MAX} characters, got {chars}"
        ));
    }
    if !otp_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "otpId must be ASCII letters and digits only (at most {OTP_ID_MAX} characters)"
        ));
    }
    Ok(())
}

/// A code sent under one `otpId`. Expiry and the attempt limit are fixed when it is sent, so a
/// configuration changed later does not reach codes already out.
struct IssuedPin {
    pin: String,
    expires_at: Instant,
    max_attempts: u32,
    failed: u32,
    used: bool,
}

impl IssuedPin {
    /// Judges one validation and updates the code. The order matters: a used or disabled code says
    /// so whatever the pin, and an expired one is not compared either, so a late guess costs nothing.
    fn validate(&mut self, pin: &str, now: Instant) -> &'static str {
        if self.used {
            "ALREADY_USED"
        } else if self.failed >= self.max_attempts {
            "MAX_ATTEMPTS"
        } else if now >= self.expires_at {
            "EXPIRED"
        } else if self.pin == pin {
            self.used = true;
            "VALIDATED"
        } else {
            self.failed += 1;
            "INVALID"
        }
    }
}

/// Aldeamo's configurations and the codes sent under them.
pub struct AldeamoState {
    configs: Mutex<BTreeMap<String, OtpConfig>>,
    pins: Mutex<HashMap<String, IssuedPin>>,
    shape: Mutex<AnswerShape>,
    /// WhatsApp and voice report in a field of their own rather than `smsSendingStatus`.
    channel_fields: std::sync::atomic::AtomicBool,
}

impl Default for AldeamoState {
    fn default() -> Self {
        use {Channel::*, CodeType::*};
        let builtins = [
            OtpConfig::builtin("cfg-sms", Sms, 6, Numeric, 5),
            OtpConfig::builtin("cfg-email", Email, 8, Alphanumeric, 10),
            OtpConfig::builtin("cfg-whatsapp", Whatsapp, 6, Numeric, 5),
            OtpConfig::builtin("cfg-voice", Voice, 4, Numeric, 5),
            OtpConfig::builtin("cfg-1", Sms, 6, Numeric, 5),
        ];
        Self {
            configs: Mutex::new(
                builtins
                    .into_iter()
                    .map(|c| (c.config_id.clone(), c))
                    .collect(),
            ),
            pins: Mutex::default(),
            shape: Mutex::default(),
            channel_fields: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// A valid `/otp` request, with its configuration resolved.
struct SendRequest {
    config: OtpConfig,
    otp_id: String,
    destination: String,
}

impl SendRequest {
    fn parse(body: &Value, configs: &BTreeMap<String, OtpConfig>) -> Result<Self, String> {
        let Some(fields) = body.as_object() else {
            return Err("the body must be a JSON object".into());
        };
        let config_id = required_text(fields, "configId")?;
        let otp_id = required_text(fields, "otpId")?;
        check_otp_id(otp_id)?;
        let Some(config) = configs.get(config_id) else {
            return Err(format!("configId {config_id:?} is not configured"));
        };
        let field = config.channel.destination_field();
        let destination = optional_text(fields, field)?.ok_or_else(|| {
            format!(
                "{field} is required: configId {config_id:?} sends by {}",
                config.channel.name()
            )
        })?;
        Ok(Self {
            config: config.clone(),
            otp_id: otp_id.into(),
            destination: destination.into(),
        })
    }
}

/// Checks Basic auth; returns the login when it is the configured one, else what was offered.
fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<String, String> {
    match crate::basic_credentials(headers) {
        Some((login, password))
            if login == sim.config.aldeamo_user && password == sim.config.aldeamo_password =>
        {
            Ok(login)
        }
        Some((login, _)) => Err(login),
        None => Err(String::new()),
    }
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "missing or invalid Basic credentials",
    )
}

/// The `/otp` answer: the configuration's channel reports `status`, the other one was not asked for.
/// WhatsApp and voice report through `smsSendingStatus` (the document's two fields), or with
/// `channel_fields` through `whatsappSendingStatus` / `voiceSendingStatus`.
fn sending_answer(sim: &Sim, channel: Channel, status: &str) -> Response {
    let own_field = sim
        .aldeamo
        .channel_fields
        .load(std::sync::atomic::Ordering::Relaxed);
    let (sms, email) = match channel {
        Channel::Email => (NOT_REQUESTED, status),
        Channel::Whatsapp | Channel::Voice if own_field => (NOT_REQUESTED, NOT_REQUESTED),
        Channel::Sms | Channel::Whatsapp | Channel::Voice => (status, NOT_REQUESTED),
    };
    let mut body = json!({
        "smsSendingStatus": sms,
        "emailSendingStatus": email,
        "otpTransactionId": uuid::Uuid::new_v4().to_string(),
    });
    if own_field && matches!(channel, Channel::Whatsapp | Channel::Voice) {
        body[format!("{}SendingStatus", channel.name())] = status.into();
    }
    (StatusCode::OK, Json(body)).into_response()
}

fn validation_answer(sim: &Sim, otp_id: &str, status: &str) -> Response {
    let shape = *sim.aldeamo.shape.lock().expect("shape");
    shape.answer(otp_id, status)
}

async fn send_otp(State(sim): State<Sim>, headers: HeaderMap, raw: String) -> Response {
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let login = authenticate(&sim, &headers);
    let login_seen = Some(login.clone().unwrap_or_else(|l| l));
    let forced = match sim.intake(VENDOR, "otp", login_seen, body.clone()).await {
        Ok(forced) => forced,
        Err(response) => return response,
    };
    if login.is_err() {
        return unauthorized();
    }
    let parsed = SendRequest::parse(&body, &sim.aldeamo.configs.lock().expect("configs"));
    let request = match parsed {
        Ok(request) => request,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // A scripted status is the channel failing after the request was accepted: nothing is generated,
    // and a code sent earlier under the same otpId stays as it was.
    if let Some(status) = forced.filter(|s| s != SENT) {
        return sending_answer(&sim, request.config.channel, &status);
    }
    let pin = request
        .config
        .code_type
        .generate(request.config.length as usize);
    // A send under an otpId already used replaces its code and starts its attempts afresh: that is
    // what a retried send must do.
    sim.aldeamo.pins.lock().expect("pins").insert(
        request.otp_id.clone(),
        IssuedPin {
            pin: pin.clone(),
            expires_at: Instant::now() + Duration::from_secs(request.config.expiry_seconds),
            max_attempts: request.config.max_attempts,
            failed: 0,
            used: false,
        },
    );
    sim.deliver(InboxEntry {
        vendor: VENDOR.into(),
        to: request.destination,
        code: pin,
        request_id: request.otp_id,
        at: chrono::Utc::now().to_rfc3339(),
    });
    sending_answer(&sim, request.config.channel, SENT)
}

async fn validate_otp(State(sim): State<Sim>, headers: HeaderMap, raw: String) -> Response {
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let login = authenticate(&sim, &headers);
    // The document's table spells the field `otpld`, a typo of `otpId`: both are read, `otpId` first.
    let otp_id_field = ["otpId", "otpld"]
        .into_iter()
        .find(|name| body.get(*name).is_some_and(|v| !v.is_null()))
        .unwrap_or("otpId");
    // The pin the user typed is not recorded: only which otpId it was for.
    let recorded = json!({ "otpId": body.get(otp_id_field).cloned().unwrap_or(Value::Null) });
    let login_seen = Some(login.clone().unwrap_or_else(|l| l));
    let forced = match sim
        .intake(VENDOR, "validateOtp", login_seen, recorded)
        .await
    {
        Ok(forced) => forced,
        Err(response) => return response,
    };
    if login.is_err() {
        return unauthorized();
    }
    let Some(fields) = body.as_object() else {
        return error(StatusCode::BAD_REQUEST, "the body must be a JSON object");
    };
    let otp_id = match required_text(fields, otp_id_field) {
        Ok(otp_id) => otp_id,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if let Err(message) = check_otp_id(otp_id) {
        return error(StatusCode::BAD_REQUEST, message);
    }
    let pin = match required_text(fields, "pin") {
        Ok(pin) => pin,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if let Some(status) = forced.filter(|s| s != SENT) {
        return validation_answer(&sim, otp_id, &status);
    }
    let status = match sim.aldeamo.pins.lock().expect("pins").get_mut(otp_id) {
        Some(issued) => issued.validate(pin, Instant::now()),
        None => "NOT_FOUND",
    };
    validation_answer(&sim, otp_id, status)
}

async fn list_configs(State(sim): State<Sim>) -> Json<Vec<OtpConfig>> {
    let configs = sim.aldeamo.configs.lock().expect("configs");
    Json(configs.values().cloned().collect())
}

async fn set_config(State(sim): State<Sim>, raw: String) -> Response {
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    match OtpConfig::from_request(&body) {
        Ok(config) => {
            sim.aldeamo
                .configs
                .lock()
                .expect("configs")
                .insert(config.config_id.clone(), config.clone());
            (StatusCode::OK, Json(config)).into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

fn settings_of(sim: &Sim) -> Json<Value> {
    let shape = *sim.aldeamo.shape.lock().expect("shape");
    let own_field = sim
        .aldeamo
        .channel_fields
        .load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({ "validation_answer": shape.name(), "channel_status_fields": own_field }))
}

async fn get_settings(State(sim): State<Sim>) -> Json<Value> {
    settings_of(&sim)
}

/// `{"validation_answer": "<shape>", "channel_status_fields": bool}`: how `/validateOtp` words its
/// answers, and whether WhatsApp and voice report in fields of their own, from now on.
async fn set_settings(State(sim): State<Sim>, raw: String) -> Response {
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    match body.get("channel_status_fields") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(own)) => sim
            .aldeamo
            .channel_fields
            .store(*own, std::sync::atomic::Ordering::Relaxed),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "channel_status_fields must be a boolean",
            );
        }
    }
    match body.get("validation_answer") {
        None | Some(Value::Null) => {}
        Some(name) => match name.as_str().and_then(AnswerShape::parse) {
            Some(shape) => *sim.aldeamo.shape.lock().expect("shape") = shape,
            None => {
                let names: Vec<&str> = AnswerShape::ALL.iter().map(|(n, _)| *n).collect();
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("validation_answer must be one of {}", names.join(", ")),
                );
            }
        },
    }
    settings_of(&sim).into_response()
}

/// The vendor's routes, under `/aldeamo`.
pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/otp", post(send_otp))
        .route("/validateOtp", post(validate_otp))
}

/// The configuration control routes, under `/sim/aldeamo`: Aldeamo's web app, for tests.
pub fn control_routes() -> Router<Sim> {
    Router::new()
        .route("/configs", get(list_configs).post(set_config))
        .route("/settings", get(get_settings).post(set_settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_configured_length_and_alphabet() {
        let numeric = CodeType::Numeric.generate(8);
        assert_eq!(numeric.len(), 8);
        assert!(numeric.chars().all(|c| c.is_ascii_digit()), "{numeric}");
        let alphabetic = CodeType::Alphabetic.generate(8);
        assert_eq!(alphabetic.len(), 8);
        assert!(
            alphabetic.chars().all(|c| c.is_ascii_alphabetic()),
            "{alphabetic}"
        );
        let alphanumeric = CodeType::Alphanumeric.generate(4);
        assert_eq!(alphanumeric.len(), 4);
        assert!(alphanumeric.chars().all(|c| c.is_ascii_alphanumeric()));
        let mixed = CodeType::Alphanumeric.alphabet();
        assert!(mixed.iter().any(u8::is_ascii_digit) && mixed.iter().any(u8::is_ascii_alphabetic));
        assert!(
            !CodeType::Alphabetic
                .alphabet()
                .iter()
                .any(u8::is_ascii_digit)
        );
    }

    #[test]
    fn otp_ids_are_one_to_twenty_ascii_letters_and_digits() {
        assert!(check_otp_id("A").is_ok());
        assert!(check_otp_id("abcDEF0123456789wxyz").is_ok());
        let too_long = check_otp_id("abcDEF0123456789wxyz1").unwrap_err();
        assert!(
            too_long.contains("otpId") && too_long.contains("20"),
            "{too_long}"
        );
        assert!(check_otp_id("").is_err());
        assert!(check_otp_id("abc-123").is_err());
        assert!(check_otp_id("peña").is_err(), "letters outside ASCII");
    }

    fn config_body() -> Value {
        json!({ "config_id": "c", "channel": "voice", "length": 4, "type": "alphabetic",
                "expiry_minutes": 120 })
    }

    #[test]
    fn a_configuration_takes_the_documented_ranges_and_defaults() {
        let config = OtpConfig::from_request(&config_body()).unwrap();
        assert_eq!(
            config,
            OtpConfig::builtin("c", Channel::Voice, 4, CodeType::Alphabetic, 120)
        );
        assert_eq!(config.max_attempts, 5);
        let mut body = config_body();
        body["expiry_seconds"] = json!(2);
        body["max_attempts"] = json!(1);
        let config = OtpConfig::from_request(&body).unwrap();
        assert_eq!((config.expiry_seconds, config.max_attempts), (2, 1));
    }

    #[test]
    fn a_configuration_outside_the_documented_ranges_names_its_field() {
        let rejected = |field: &str, value: Value| {
            let mut body = config_body();
            body[field] = value;
            OtpConfig::from_request(&body).unwrap_err()
        };
        for (field, value) in [
            ("length", json!(3)),
            ("length", json!(9)),
            ("length", json!("6")),
            ("expiry_minutes", json!(0)),
            ("expiry_minutes", json!(121)),
            ("expiry_seconds", json!(0)),
            ("max_attempts", json!(0)),
            ("type", json!("hex")),
            ("channel", json!("fax")),
            ("config_id", json!("")),
        ] {
            let message = rejected(field, value.clone());
            assert!(message.contains(field), "{field}={value}: {message}");
        }
    }

    #[test]
    fn validation_checks_use_then_attempts_then_expiry_then_the_pin() {
        let now = Instant::now();
        let pin = |failed, used| IssuedPin {
            pin: "aB3d".into(),
            expires_at: now + Duration::from_secs(60),
            max_attempts: 2,
            failed,
            used,
        };
        assert_eq!(pin(0, true).validate("aB3d", now), "ALREADY_USED");
        assert_eq!(pin(2, false).validate("aB3d", now), "MAX_ATTEMPTS");
        let late = now + Duration::from_secs(60);
        assert_eq!(pin(0, false).validate("aB3d", late), "EXPIRED");
        let mut issued = pin(0, false);
        assert_eq!(issued.validate("AB3D", now), "INVALID", "case-sensitive");
        assert_eq!(issued.failed, 1);
        assert_eq!(issued.validate("aB3d", now), "VALIDATED");
        assert!(issued.used);
        assert_eq!(issued.validate("aB3d", now), "ALREADY_USED");
    }
}
