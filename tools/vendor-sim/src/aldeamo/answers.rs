//! The shapes a `/validateOtp` answer may take. Aldeamo's document shows no answer, so the simulator can
//! give each plausible one, switched with `POST /sim/aldeamo/settings {"validation_answer": "<shape>"}`:
//!
//! | shape | a right pin | any other status |
//! |---|---|---|
//! | `status` (default) | 200 `{"otpId", "status": "VALIDATED"}` | 200 `{"otpId", "status": "INVALID"}` …, 404 `NOT_FOUND` |
//! | `code` | 200 `{"code": "OTP_VALIDATED", "message"}` | 200 `{"code": "OTP_EXPIRED", "message"}` …, 404 for `OTP_NOT_FOUND` |
//! | `spanish` | 200 `{"estado": "Validado exitoso"}` | 200 `{"estado": "Vencido"}` … (the report's words) |
//! | `boolean` | 200 `{"otpId", "valid": true}` | 200 `{"otpId", "valid": false, "reason": "expired"}` (no reason for a wrong pin) |
//! | `success` | 200 `{"success": true, "data": {"otpId"}}` | 200 `{"success": false, "error": {"code": "INVALID_PIN", "message"}}` |
//! | `http_status` | 200 `{"valid": true}` | `{"valid": false}` with 400 (wrong), 410 (expired), 409 (used), 423 (blocked), 404 (unknown) |
//! | `unknown` | 200 `{"resultado": 1, "detalle"}` | 200 `{"resultado": 0, "detalle"}`: a shape nobody can read |

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A status the simulator decided, in its own words (the `status` shape's).
pub const STATUSES: [&str; 6] = [
    "VALIDATED",
    "INVALID",
    "EXPIRED",
    "ALREADY_USED",
    "MAX_ATTEMPTS",
    "NOT_FOUND",
];

/// How `/validateOtp` words its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerShape {
    /// `{"otpId", "status"}`.
    #[default]
    Status,
    /// `{"code": "OTP_…", "message"}`.
    Code,
    /// `{"estado"}` with the report's Spanish states.
    Spanish,
    /// `{"otpId", "valid", "reason"?}`.
    Boolean,
    /// `{"success", "data" | "error"}`.
    Success,
    /// `{"valid"}` with the status in the HTTP status.
    HttpStatus,
    /// `{"resultado", "detalle"}`: no field a client could read.
    Unknown,
}

impl AnswerShape {
    /// Every shape, as the settings name them.
    pub const ALL: [(&'static str, AnswerShape); 7] = [
        ("status", Self::Status),
        ("code", Self::Code),
        ("spanish", Self::Spanish),
        ("boolean", Self::Boolean),
        ("success", Self::Success),
        ("http_status", Self::HttpStatus),
        ("unknown", Self::Unknown),
    ];

    /// The shape named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, shape)| *shape)
    }

    /// The shape's name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, shape)| *shape == self)
            .map(|(n, _)| *n)
            .expect("every shape is listed")
    }

    /// The answer for `status` (one of [`STATUSES`], or a scripted word given as is) about `otp_id`.
    pub fn answer(self, otp_id: &str, status: &str) -> Response {
        let validated = status == "VALIDATED";
        let not_found = status == "NOT_FOUND";
        let (code, body) = match self {
            Self::Status => (
                if not_found {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::OK
                },
                json!({ "otpId": otp_id, "status": status }),
            ),
            Self::Code => (
                if not_found {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::OK
                },
                json!({ "code": format!("OTP_{status}"), "message": spanish(status) }),
            ),
            Self::Spanish => (StatusCode::OK, json!({ "estado": spanish(status) })),
            Self::Boolean if validated => {
                (StatusCode::OK, json!({ "otpId": otp_id, "valid": true }))
            }
            Self::Boolean if status == "INVALID" => {
                (StatusCode::OK, json!({ "otpId": otp_id, "valid": false }))
            }
            Self::Boolean => (
                StatusCode::OK,
                json!({ "otpId": otp_id, "valid": false, "reason": status.to_ascii_lowercase() }),
            ),
            Self::Success if validated => (
                StatusCode::OK,
                json!({ "success": true, "data": { "otpId": otp_id } }),
            ),
            Self::Success => {
                let code = if status == "INVALID" {
                    "INVALID_PIN".to_string()
                } else {
                    status.to_string()
                };
                (
                    StatusCode::OK,
                    json!({ "success": false, "error": { "code": code, "message": spanish(status) } }),
                )
            }
            Self::HttpStatus => (http_status(status), json!({ "valid": validated })),
            Self::Unknown => (
                StatusCode::OK,
                json!({ "resultado": u8::from(validated), "detalle": spanish(status) }),
            ),
        };
        (code, Json(body)).into_response()
    }
}

/// The report's word for a status (document §7, "Estados del OTP"), and Spanish for the rest.
fn spanish(status: &str) -> Value {
    Value::from(match status {
        "VALIDATED" => "Validado exitoso",
        "INVALID" => "Validado no exitoso",
        "EXPIRED" => "Vencido",
        "ALREADY_USED" => "Utilizado",
        "MAX_ATTEMPTS" => "Bloqueado",
        "NOT_FOUND" => "No encontrado",
        other => other,
    })
}

fn http_status(status: &str) -> StatusCode {
    match status {
        "VALIDATED" => StatusCode::OK,
        "EXPIRED" => StatusCode::GONE,
        "ALREADY_USED" => StatusCode::CONFLICT,
        "MAX_ATTEMPTS" => StatusCode::LOCKED,
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_has_a_name_that_reads_back() {
        for (name, shape) in AnswerShape::ALL {
            assert_eq!(AnswerShape::parse(name), Some(shape));
            assert_eq!(shape.name(), name);
        }
        assert_eq!(AnswerShape::parse("xml"), None);
    }

    #[test]
    fn the_http_status_shape_puts_the_status_in_the_status() {
        let codes: Vec<u16> = STATUSES
            .iter()
            .map(|s| AnswerShape::HttpStatus.answer("x1", s).status().as_u16())
            .collect();
        assert_eq!(codes, [200, 400, 410, 409, 423, 404]);
        assert_eq!(AnswerShape::Spanish.answer("x1", "NOT_FOUND").status(), 200);
    }
}
