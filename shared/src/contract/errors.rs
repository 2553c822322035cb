//! How a failure is named on the wire, and the one verdict every vendor answer becomes.
//!
//! `ErrorKind` and `Failure` are what events, tables and headers carry. `Verdict` is what a vendor's
//! answer means for the message: try again (perhaps not before a time the vendor gave) or give up. Every
//! caller of a vendor turns its answer into a `Verdict`, and the runtime alone turns the verdict into a
//! retry tier, a dead letter or a result (see docs/ARCHITECTURE.md, "Where each decision lives").

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `error.kind` values of the event contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The message breaks a rule: a vendor's range, a limit, a field the vendor refused.
    Rejected,
    /// The vendor asked us to slow down.
    RateLimited,
    /// The vendor failed or answered something unusable.
    Vendor,
    /// The vendor refused pasarela's credentials.
    Auth,
    /// The vendor did not answer in time.
    Timeout,
    /// Every retry was spent.
    Exhausted,
    /// pasarela itself failed, or the message could not be decoded.
    Internal,
}

impl ErrorKind {
    /// The contract's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Rejected => "rejected",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Vendor => "vendor",
            ErrorKind::Auth => "auth",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Exhausted => "exhausted",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A failure as events, tables and headers carry it: a kind and a message with no secret in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    /// The contract's classification.
    pub kind: ErrorKind,
    /// What happened, for people; never a secret or an OTP code.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Every attempt was spent; `last` is the final attempt's failure.
    pub fn exhausted(attempts: u32, last: &Failure) -> Self {
        Self::new(
            ErrorKind::Exhausted,
            format!("gave up after {attempts} attempts; last: {last}"),
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// A field of a message that breaks a rule: which, and why, in words a producer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    /// The field, as the contract names it (e.g. `aldeamo.otp_id`).
    pub field: &'static str,
    /// The rule it breaks (never a secret or a code).
    pub problem: String,
}

impl InvalidField {
    /// `field` breaks the rule `problem` says.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// What a failed vendor exchange means for the message that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It may pass: try again, not before `after` when the vendor named a time.
    Retry {
        /// Why this attempt failed.
        failure: Failure,
        /// The vendor's `Retry-After`, if it gave one.
        after: Option<Duration>,
    },
    /// It will not pass however often it is tried.
    GiveUp(Failure),
}

impl Verdict {
    /// A retry with no time named.
    pub fn retry(failure: Failure) -> Self {
        Verdict::Retry {
            failure,
            after: None,
        }
    }

    /// The failure behind the verdict.
    pub fn failure(&self) -> &Failure {
        match self {
            Verdict::Retry { failure, .. } | Verdict::GiveUp(failure) => failure,
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retry(&self) -> bool {
        matches!(self, Verdict::Retry { .. })
    }
}
