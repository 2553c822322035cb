//! The `x-pasarela-*` headers and the values pasarela carries in headers (docs/CONTRACT.md, "Headers").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The header that carries the attempt number of a work message (1 for the first delivery).
pub const ATTEMPT_HEADER: &str = "x-pasarela-attempt";
/// The header that says why a message was dead-lettered.
pub const ERROR_HEADER: &str = "x-pasarela-error";
/// The header set by `pasarela dlq replay`, which lets a failed message be tried afresh.
pub const REPLAY_HEADER: &str = "x-pasarela-replay";
/// The header on a copy set aside while another holder of the same message finishes it.
pub const DEFERRED_HEADER: &str = "x-pasarela-deferred";

/// A header value pasarela writes or carries over: text or a whole number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    /// A whole number.
    Int(i64),
    /// Text.
    Text(String),
}

/// The attempt number a delivery carries (1 when the header is absent or unusable).
pub fn attempt_of(headers: &BTreeMap<String, HeaderValue>) -> u32 {
    match headers.get(ATTEMPT_HEADER) {
        Some(HeaderValue::Int(n)) if *n >= 1 => (*n).min(i64::from(u32::MAX)) as u32,
        Some(HeaderValue::Text(s)) => s.parse().ok().filter(|n| *n >= 1).unwrap_or(1),
        _ => 1,
    }
}

/// The header that names the error kind of a dead-lettered message.
pub const ERROR_KIND_HEADER: &str = "x-pasarela-error-kind";
