//! Aldeamo's `/validateOtp` answer, which the document leaves out (docs/vendors/aldeamo.md, "readings
//! we chose").
//!
//! Nothing says whether a good pin comes back as a status word, a code, a boolean or an HTTP status,
//! so the answer is read for every plausible shape at once: a word in one of the usual fields (`status`,
//! `state`, `result`, `code`, `estado`, …, also inside `data`, `result`, `response` or `error`), a boolean
//! about the pin (`valid`, `validated`, `verified`), a boolean about the request (`success`), and the HTTP
//! status. What the signals agree on is the answer. A pin is only ever `Validated` on a positive statement
//! in the body: a bare 200 could be any answer, and reading it as "right" would let any code in. Anything
//! else is [`VendorError::Unrecognised`] with the answer's shape (keys and types, never a value), and the
//! pin is not sent again, since a second question could count a right pin twice or spend a try.

use serde_json::{Map, Value};

use crate::vendors::http::{Answer, VendorError, status_error};
use crate::vendors::shape::shape_of;

use super::VENDOR;

/// What a validation answer says about the pin.
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
}

/// Fields whose text value may be a status word or code, compared lowercase without `_` or `-`.
const WORD_FIELDS: [&str; 14] = [
    "status",
    "state",
    "result",
    "code",
    "reason",
    "estado",
    "resultado",
    "codigo",
    "validationstatus",
    "validationresult",
    "otpstatus",
    "statuscode",
    "errorcode",
    "responsecode",
];
/// Booleans about the pin itself.
const PIN_FLAGS: [&str; 7] = [
    "valid",
    "isvalid",
    "validated",
    "isvalidated",
    "verified",
    "isverified",
    "valido",
];
/// Booleans about the request, which say "the pin is right" only when nothing says otherwise.
const REQUEST_FLAGS: [&str; 3] = ["success", "successful", "exito"];
/// Objects that may hold the fields above, one level down.
const CONTAINERS: [&str; 5] = ["data", "result", "response", "error", "resultado"];

/// Status words, after [`normalise`]: a word names exactly one status or is not read at all.
const WORDS: &[(&str, ValidateStatus)] = {
    use ValidateStatus::*;
    &[
        ("VALIDATED", Validated),
        ("VALID", Validated),
        ("VERIFIED", Validated),
        ("APPROVED", Validated),
        ("CORRECT", Validated),
        ("MATCH", Validated),
        ("VALIDADO", Validated),
        ("VALIDADO_EXITOSO", Validated),
        ("VALIDACION_EXITOSA", Validated),
        ("VALIDO", Validated),
        ("CORRECTO", Validated),
        ("APROBADO", Validated),
        ("INVALID", Invalid),
        ("NOT_VALID", Invalid),
        ("INCORRECT", Invalid),
        ("WRONG", Invalid),
        ("MISMATCH", Invalid),
        ("REJECTED", Invalid),
        ("NOT_VALIDATED", Invalid),
        ("VALIDADO_NO_EXITOSO", Invalid),
        ("NO_EXITOSO", Invalid),
        ("INVALIDO", Invalid),
        ("NO_VALIDO", Invalid),
        ("INCORRECTO", Invalid),
        ("ERRONEO", Invalid),
        ("EXPIRED", Expired),
        ("VENCIDO", Expired),
        ("EXPIRADO", Expired),
        ("CADUCADO", Expired),
        ("ALREADY_USED", AlreadyUsed),
        ("USED", AlreadyUsed),
        ("ALREADY_VALIDATED", AlreadyUsed),
        ("CONSUMED", AlreadyUsed),
        ("UTILIZADO", AlreadyUsed),
        ("USADO", AlreadyUsed),
        ("YA_UTILIZADO", AlreadyUsed),
        ("YA_VALIDADO", AlreadyUsed),
        ("MAX_ATTEMPTS", MaxAttempts),
        ("MAX_ATTEMPTS_EXCEEDED", MaxAttempts),
        ("MAX_ATTEMPTS_REACHED", MaxAttempts),
        ("TOO_MANY_ATTEMPTS", MaxAttempts),
        ("ATTEMPTS_EXCEEDED", MaxAttempts),
        ("BLOCKED", MaxAttempts),
        ("LOCKED", MaxAttempts),
        ("BLOQUEADO", MaxAttempts),
        ("INTENTOS_EXCEDIDOS", MaxAttempts),
        ("MAXIMO_INTENTOS", MaxAttempts),
        ("NOT_FOUND", NotFound),
        ("UNKNOWN", NotFound),
        ("DOES_NOT_EXIST", NotFound),
        ("NO_ENCONTRADO", NotFound),
        ("NO_EXISTE", NotFound),
        ("INEXISTENTE", NotFound),
    ]
};
/// Words that say the request went well, not that the pin is right: read like `success: true`.
const REQUEST_WORDS: [&str; 5] = ["OK", "SUCCESS", "SUCCESSFUL", "EXITO", "EXITOSO"];

/// Affixes a vendor may put around a status word (`OTP_EXPIRED`, `PIN_INVALID`, `INVALID_PIN`).
const PREFIXES: [&str; 4] = ["OTP_", "PIN_", "CODE_", "CODIGO_"];
const SUFFIXES: [&str; 4] = ["_OTP", "_PIN", "_CODE", "_CODIGO"];

impl ValidateStatus {
    /// Reads one status word in any case, spacing or accent (`"Validado no exitoso"`, `OTP_EXPIRED`).
    pub fn from_word(word: &str) -> Option<Self> {
        let word = normalise(word);
        WORDS
            .iter()
            .find(|(known, _)| *known == word)
            .map(|(_, status)| *status)
    }
}

/// Uppercase ASCII with Spanish accents folded, every run of other characters one `_`, and the usual
/// affixes cut.
fn normalise(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.trim().chars().take(64) {
        let c = match c {
            'á' | 'Á' => 'A',
            'é' | 'É' => 'E',
            'í' | 'Í' => 'I',
            'ó' | 'Ó' => 'O',
            'ú' | 'Ú' | 'ü' | 'Ü' => 'U',
            'ñ' | 'Ñ' => 'N',
            c if c.is_ascii_alphanumeric() => c.to_ascii_uppercase(),
            _ => '_',
        };
        if c != '_' || !out.ends_with('_') {
            out.push(c);
        }
    }
    let mut word = out.trim_matches('_');
    if let Some(rest) = PREFIXES.iter().find_map(|p| word.strip_prefix(p)) {
        word = rest;
    }
    if let Some(rest) = SUFFIXES.iter().find_map(|s| word.strip_suffix(s)) {
        word = rest;
    }
    word.to_string()
}

/// What the body's fields say, gathered before they are weighed.
#[derive(Debug, Default)]
struct Signals {
    /// Statuses named by words, each once.
    words: Vec<ValidateStatus>,
    /// A pin flag: `valid: true` or `valid: false`.
    pin: Option<bool>,
    /// A request flag or word: `success: true`, `status: "ok"`.
    request: Option<bool>,
    /// Two flags of one kind that disagree.
    conflict: bool,
}

impl Signals {
    fn of(fields: &Map<String, Value>, depth: usize) -> Self {
        let mut signals = Self::default();
        signals.gather(fields, depth);
        signals
    }

    fn gather(&mut self, fields: &Map<String, Value>, depth: usize) {
        for (key, value) in fields {
            let key: String = key
                .chars()
                .filter(|c| *c != '_' && *c != '-')
                .flat_map(char::to_lowercase)
                .collect();
            let key = key.as_str();
            match value {
                Value::String(text) if WORD_FIELDS.contains(&key) => self.word(text),
                Value::Bool(flag) if PIN_FLAGS.contains(&key) => {
                    Self::flag(&mut self.pin, *flag, &mut self.conflict)
                }
                Value::Bool(flag) if REQUEST_FLAGS.contains(&key) => {
                    Self::flag(&mut self.request, *flag, &mut self.conflict)
                }
                Value::Object(inner) if depth == 0 && CONTAINERS.contains(&key) => {
                    self.gather(inner, depth + 1)
                }
                _ => {}
            }
        }
    }

    fn word(&mut self, text: &str) {
        if let Some(status) = ValidateStatus::from_word(text) {
            if !self.words.contains(&status) {
                self.words.push(status);
            }
        } else if REQUEST_WORDS.contains(&normalise(text).as_str()) {
            Self::flag(&mut self.request, true, &mut self.conflict);
        }
    }

    fn flag(slot: &mut Option<bool>, flag: bool, conflict: &mut bool) {
        match slot {
            Some(seen) if *seen != flag => *conflict = true,
            _ => *slot = Some(flag),
        }
    }
}

/// The negative an HTTP status names by itself, where it names one.
fn negative_of_status(status: u16) -> Option<ValidateStatus> {
    match status {
        404 => Some(ValidateStatus::NotFound),
        409 => Some(ValidateStatus::AlreadyUsed),
        410 => Some(ValidateStatus::Expired),
        423 => Some(ValidateStatus::MaxAttempts),
        _ => None,
    }
}

/// Weighs the signals: `Err` says why they do not add up to one status.
fn weigh(signals: &Signals, status: u16) -> Result<ValidateStatus, &'static str> {
    use ValidateStatus::*;
    if signals.conflict {
        return Err("two of its flags disagree");
    }
    let positive_word = signals.words.contains(&Validated);
    let specific: Vec<ValidateStatus> = signals
        .words
        .iter()
        .copied()
        .filter(|s| !matches!(s, Validated | Invalid))
        .collect();
    let negative = signals.words.contains(&Invalid)
        || !specific.is_empty()
        || signals.pin == Some(false)
        || signals.request == Some(false);
    let positive = positive_word || signals.pin == Some(true);
    if positive && negative {
        return Err("it says both that the pin is right and that it is not");
    }
    if positive || (signals.request == Some(true) && !negative) {
        // A right pin with an error status is no answer to trust.
        return if (200..300).contains(&status) {
            Ok(Validated)
        } else {
            Err("it says the pin is right under an error status")
        };
    }
    match specific.as_slice() {
        [one] => return Ok(*one),
        [_, _, ..] => return Err("it names more than one status"),
        [] => {}
    }
    if let Some(named) = negative_of_status(status) {
        return Ok(named);
    }
    if signals.words.contains(&Invalid) || signals.pin == Some(false) {
        return Ok(Invalid);
    }
    Err(if signals.request == Some(false) {
        "it says only that the request failed"
    } else {
        "it names no status pasarela reads"
    })
}

/// Reads a `/validateOtp` answer. A refused credential is [`VendorError::Credentials`]; a 408, 429 or
/// 5xx is [`VendorError::Status`] (the vendor did not answer the question); an answer whose signals do
/// not add up to one status is [`VendorError::Unrecognised`], carrying the body's shape.
pub fn read_answer(answer: &Answer) -> Result<ValidateStatus, VendorError> {
    let status = answer.status.as_u16();
    if status == 401 || status == 403 {
        return Err(VendorError::Credentials {
            vendor: VENDOR,
            detail: format!("validateOtp refused ALDEAMO_USER/ALDEAMO_PASSWORD (HTTP {status})"),
        });
    }
    if matches!(status, 408 | 429 | 500..=599) {
        return Err(status_error(
            VENDOR,
            answer.status,
            &answer.headers,
            &answer.text,
        ));
    }
    let signals = match serde_json::from_str::<Value>(&answer.text) {
        Ok(Value::Object(fields)) => Signals::of(&fields, 0),
        Ok(Value::String(word)) => {
            let mut signals = Signals::default();
            signals.word(&word);
            signals
        }
        _ => Signals::default(),
    };
    weigh(&signals, status).map_err(|why| VendorError::Unrecognised {
        vendor: VENDOR,
        detail: format!(
            "validateOtp answered HTTP {status} and {why}; the answer's shape: {}",
            shape_of(&answer.text)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::ValidateStatus::*;
    use super::*;

    fn read(status: u16, body: &str) -> Result<ValidateStatus, String> {
        read_answer(&Answer::of(status, body).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn words_in_any_case_spacing_accent_or_affix() {
        for (word, status) in [
            ("VALIDATED", Validated),
            ("validated", Validated),
            ("Validado exitoso", Validated),
            ("OTP_VALIDATED", Validated),
            ("Validado no exitoso", Invalid),
            ("INVALID_PIN", Invalid),
            ("pin-invalid", Invalid),
            ("Vencido", Expired),
            ("OTP_EXPIRED", Expired),
            ("already used", AlreadyUsed),
            ("Utilizado", AlreadyUsed),
            ("MAX_ATTEMPTS", MaxAttempts),
            ("Bloqueado", MaxAttempts),
            ("NOT_FOUND", NotFound),
            ("No encontrado", NotFound),
        ] {
            assert_eq!(ValidateStatus::from_word(word), Some(status), "{word}");
        }
        for word in ["OK", "SUCCESS", "FAILED", "ERROR", "", "7"] {
            assert_eq!(ValidateStatus::from_word(word), None, "{word}");
        }
    }

    #[test]
    fn every_shape_the_simulator_can_give() {
        let cases = [
            (200, r#"{"otpId":"x1","status":"VALIDATED"}"#, Ok(Validated)),
            (200, r#"{"otpId":"x1","status":"INVALID"}"#, Ok(Invalid)),
            (404, r#"{"otpId":"x1","status":"NOT_FOUND"}"#, Ok(NotFound)),
            (
                200,
                r#"{"code":"OTP_EXPIRED","message":"El OTP venció"}"#,
                Ok(Expired),
            ),
            (200, r#"{"estado":"Validado exitoso"}"#, Ok(Validated)),
            (200, r#"{"estado":"Utilizado"}"#, Ok(AlreadyUsed)),
            (200, r#"{"otpId":"x1","valid":true}"#, Ok(Validated)),
            (200, r#"{"otpId":"x1","valid":false}"#, Ok(Invalid)),
            (200, r#"{"valid":false,"reason":"expired"}"#, Ok(Expired)),
            (
                200,
                r#"{"success":true,"data":{"otpId":"x1"}}"#,
                Ok(Validated),
            ),
            (
                200,
                r#"{"success":false,"error":{"code":"MAX_ATTEMPTS"}}"#,
                Ok(MaxAttempts),
            ),
            (
                200,
                r#"{"success":false,"error":{"code":"INVALID_PIN"}}"#,
                Ok(Invalid),
            ),
            (200, r#"{"valid":true}"#, Ok(Validated)),
            (400, r#"{"valid":false}"#, Ok(Invalid)),
            (410, r#"{"valid":false}"#, Ok(Expired)),
            (409, r#"{"valid":false}"#, Ok(AlreadyUsed)),
            (423, r#"{"valid":false}"#, Ok(MaxAttempts)),
            (404, "", Ok(NotFound)),
            (200, r#""VALIDATED""#, Ok(Validated)),
            // A request word yields to what the body says of the pin.
            (200, r#"{"status":"ok","valid":false}"#, Ok(Invalid)),
            (
                200,
                r#"{"status":"success","result":"EXPIRED"}"#,
                Ok(Expired),
            ),
            (
                200,
                r#"{"status":"INVALID","reason":"EXPIRED"}"#,
                Ok(Expired),
            ),
        ];
        for (status, body, expected) in cases {
            assert_eq!(read(status, body), expected, "{status} {body}");
        }
    }

    #[test]
    fn a_pin_is_right_only_on_a_positive_statement_that_nothing_contradicts() {
        for (status, body, why) in [
            (200, "", "names no status"),
            (204, "", "names no status"),
            (200, r#"{"resultado":1,"detalle":"x"}"#, "names no status"),
            (200, r#"{"success":false}"#, "only that the request failed"),
            (200, r#"{"status":"VALIDATED","valid":false}"#, "both"),
            (400, r#"{"status":"VALIDATED"}"#, "under an error status"),
            (200, r#"{"valid":true,"isValid":false}"#, "disagree"),
            (
                200,
                r#"{"status":"EXPIRED","code":"ALREADY_USED"}"#,
                "more than one",
            ),
            (400, "<html>bad request</html>", "names no status"),
        ] {
            let err = read(status, body).unwrap_err();
            assert!(err.contains(why), "{status} {body}: {err}");
            assert!(err.contains("the answer's shape"), "{err}");
        }
    }

    #[test]
    fn the_shape_keeps_no_value() {
        let err = read(200, r#"{"resultado":"123456","detalle":"pin 123456"}"#).unwrap_err();
        assert!(!err.contains("123456"), "{err}");
        assert!(err.contains("detalle") && err.contains("string"), "{err}");
    }

    #[test]
    fn credentials_and_unanswered_questions_are_not_readings() {
        assert!(
            read(401, r#"{"status":"VALIDATED"}"#)
                .unwrap_err()
                .contains("ALDEAMO_USER")
        );
        for status in [408, 429, 500, 503] {
            let answer = Answer::of(status, "").unwrap();
            assert!(
                matches!(read_answer(&answer), Err(VendorError::Status { .. })),
                "{status}"
            );
        }
    }
}
