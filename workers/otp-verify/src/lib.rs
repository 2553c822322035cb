//! The `otp.verify` handler: finds the send a code belongs to, counts the verification against the
//! send's `max_tries` (across vendors, atomically in PostgreSQL), asks the vendor that sent the code,
//! and answers with one of the contract's outcomes.
//!
//! The code is compared only by the vendor. It lives in the message and in the one request to the
//! vendor, wrapped as a secret; it never reaches a table, log line, span, event or error.
//!
//! A user is waiting on the answer, so a vendor failure is retried in process for well under a second
//! and then answered as `failed`; a verification never waits in a retry tier, where it would come back
//! long after the user gave up (and its code would pass through the outbox table). Failures reported
//! from the vendor keep its status, never its body, which could echo the code.

use std::time::Duration;
use tracing::Instrument;

use pasarela_shared::contract::errors::{ErrorKind, Failure};
use pasarela_shared::contract::events::{Ending, OtpVerifyCompleted};
use pasarela_shared::contract::messages::OtpVerify;
use pasarela_shared::contract::settings::OtpSettings;
use pasarela_shared::runtime::Worker;
use pasarela_shared::runtime::database::Database;
use pasarela_shared::runtime::handler::{Completion, HandleContext, Handler, Outcome};
use pasarela_shared::runtime::settings::WorkerDefaults;
use pasarela_shared::store::Record;
use pasarela_shared::store::error::DbError;
use pasarela_shared::store::otp::{self, OtpState, SendRecord, VerificationRow};
use pasarela_shared::telemetry;
use pasarela_shared::vendors::OtpClients;
use pasarela_shared::vendors::aldeamo::{self, AldeamoClient, ValidateStatus};
use pasarela_shared::vendors::danaconnect::{self, DanaConnectClient, VerifyCode};
use pasarela_shared::vendors::http::VendorError;
use secrecy::ExposeSecret;

/// Longest code accepted; anything longer cannot be a code any vendor issued.
const MAX_CODE_CHARS: usize = 64;

/// The outcomes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// The code is right.
    Verified,
    /// The code is wrong.
    Incorrect,
    /// The code's time is up.
    Expired,
    /// The code was verified before.
    AlreadyUsed,
    /// Too many verifications.
    MaxAttempts,
    /// No send with this request id was sent.
    UnknownRequest,
    /// The vendor refused the question for good (credentials, an unknown request on its side).
    Failed,
    /// The vendor did not answer usably (timeout, 5xx, an unreadable body). It was asked once: asking
    /// again could count a correct code twice or spend a try, so the caller decides.
    VendorUnavailable,
}

impl VerifyOutcome {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Incorrect => "incorrect",
            Self::Expired => "expired",
            Self::AlreadyUsed => "already_used",
            Self::MaxAttempts => "max_attempts",
            Self::UnknownRequest => "unknown_request",
            Self::Failed => "failed",
            Self::VendorUnavailable => "vendor_unavailable",
        }
    }

    /// DANAConnect's verify code as an outcome, with the failure where there is one.
    pub fn from_danaconnect(code: &str) -> (Self, Option<Failure>) {
        let parsed = VerifyCode::parse(code);
        match parsed {
            VerifyCode::Verified => (Self::Verified, None),
            VerifyCode::Expired => (Self::Expired, None),
            VerifyCode::Incorrect => (Self::Incorrect, None),
            VerifyCode::AlreadyUsed => (Self::AlreadyUsed, None),
            VerifyCode::MaxAttempts => (Self::MaxAttempts, None),
            VerifyCode::InvalidCredentials => (
                Self::Failed,
                Some(Failure::new(
                    ErrorKind::Auth,
                    "danaconnect 06: invalid credentials",
                )),
            ),
            VerifyCode::Undocumented => (
                Self::Failed,
                Some(Failure::new(
                    ErrorKind::Vendor,
                    format!("danaconnect {code}: a response code the contract does not list"),
                )),
            ),
        }
    }

    /// What Aldeamo's validation answer says, as an outcome.
    pub fn from_aldeamo(status: ValidateStatus) -> Self {
        match status {
            ValidateStatus::Validated => Self::Verified,
            ValidateStatus::Invalid => Self::Incorrect,
            ValidateStatus::Expired => Self::Expired,
            ValidateStatus::AlreadyUsed => Self::AlreadyUsed,
            ValidateStatus::MaxAttempts => Self::MaxAttempts,
            ValidateStatus::NotFound => Self::UnknownRequest,
        }
    }
}

/// What happens to a verification before any vendor call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precheck {
    /// Ask the vendor.
    AskVendor,
    /// Answer now with this outcome and message.
    Answer(VerifyOutcome, Option<String>),
    /// Refuse: the verification_id belongs to another message.
    Reused,
}

/// Decides from the stored send whether the vendor needs to be asked.
pub fn precheck(record: Option<&SendRecord>) -> Precheck {
    let Some(r) = record else {
        return Precheck::Answer(
            VerifyOutcome::UnknownRequest,
            Some("no send with this request_id".into()),
        );
    };
    if r.status != "sent" {
        return Precheck::Answer(
            VerifyOutcome::UnknownRequest,
            Some(format!("the send was not sent (status {})", r.status)),
        );
    }
    if r.reused {
        return Precheck::Reused;
    }
    if r.counted {
        return Precheck::AskVendor;
    }
    if r.state == OtpState::ValidatedOk {
        return Precheck::Answer(VerifyOutcome::AlreadyUsed, None);
    }
    Precheck::Answer(
        VerifyOutcome::MaxAttempts,
        Some(format!(
            "{} of {} verifications used",
            r.verify_attempts,
            r.max_tries.unwrap_or(5)
        )),
    )
}

/// Verifies one-time passwords with the vendor that sent them.
pub struct OtpVerifyHandler {
    danaconnect: DanaConnectClient,
    aldeamo: AldeamoClient,
    settings: OtpSettings,
    db: Database,
}

impl OtpVerifyHandler {
    /// A handler verifying through `danaconnect` and `aldeamo`, with the sends and the count of
    /// verifications in `db`.
    pub fn new(clients: OtpClients, settings: OtpSettings, db: &Database) -> Self {
        let OtpClients {
            danaconnect,
            aldeamo,
        } = clients;
        Self {
            danaconnect,
            aldeamo,
            settings,
            db: db.clone(),
        }
    }

    async fn admit(
        &self,
        message: &OtpVerify,
        ctx: &HandleContext,
    ) -> Result<Option<SendRecord>, DbError> {
        self.db
            .retrying("look up the send", || {
                otp::admit_verification(
                    self.db.pool(),
                    message.verification_id,
                    ctx.message_id,
                    message.request_id,
                )
            })
            .instrument(telemetry::database_span("admit", "otp_verifications"))
            .await
    }

    /// Asks the vendor once: a second question could count a correct code twice (`already_used`) or
    /// spend a try on a wrong one, so a failure that may pass is answered `vendor_unavailable`.
    async fn ask_vendor(
        &self,
        message: &OtpVerify,
        record: &SendRecord,
    ) -> (VerifyOutcome, Option<Failure>) {
        let answer = match record.provider.as_str() {
            "danaconnect" => self.ask_danaconnect(message, record).await,
            "aldeamo" => self.ask_aldeamo(message, record).await,
            other => {
                return unverifiable(&format!("the send names an unknown provider {other:?}"));
            }
        };
        let e = match answer {
            Ok(decided) => return decided,
            Err(e) => e,
        };
        let verdict = e.verdict();
        let failure = scrubbed(verdict.failure().clone(), &e, message);
        if verdict.is_retry() {
            tracing::warn!(error = %failure, "the vendor did not answer usably; not asking again");
            return (VerifyOutcome::VendorUnavailable, Some(failure));
        }
        if failure.kind == ErrorKind::Auth {
            tracing::error!(alert = true, provider = %record.provider,
                "vendor refused pasarela's credentials");
        } else if matches!(e, VendorError::Unrecognised { .. }) {
            // Its shape (keys and types only) is in the failure, so the reading can be extended.
            tracing::error!(alert = true, provider = %record.provider, error = %failure,
                "the vendor's answer could not be read; not asking again");
        }
        (VerifyOutcome::Failed, Some(failure))
    }

    async fn ask_danaconnect(
        &self,
        message: &OtpVerify,
        record: &SendRecord,
    ) -> Result<(VerifyOutcome, Option<Failure>), VendorError> {
        let Some(id_request) = record
            .vendor_request_id
            .as_deref()
            .and_then(|id| id.parse().ok())
        else {
            return Ok(unverifiable("the send has no DANAConnect idRequest"));
        };
        let request = danaconnect::VerifyOtpRequest {
            id_request,
            otp: message.code.0.clone(),
        };
        let response = self.danaconnect.verify(&request).await?;
        Ok(VerifyOutcome::from_danaconnect(&response.response_code))
    }

    async fn ask_aldeamo(
        &self,
        message: &OtpVerify,
        record: &SendRecord,
    ) -> Result<(VerifyOutcome, Option<Failure>), VendorError> {
        let Some(otp_id) = record.vendor_otp_id.clone() else {
            return Ok(unverifiable("the send has no Aldeamo otpId"));
        };
        let request = aldeamo::ValidateOtpRequest {
            otp_id,
            pin: message.code.0.clone(),
        };
        let status = self.aldeamo.validate(&request).await?;
        Ok((VerifyOutcome::from_aldeamo(status), None))
    }

    fn completion(
        message: &OtpVerify,
        ctx: &HandleContext,
        record: Option<&SendRecord>,
        outcome: VerifyOutcome,
        status: &str,
        error: Option<Failure>,
    ) -> Completion {
        let event = OtpVerifyCompleted {
            verification_id: message.verification_id,
            ending: Ending::now(status, ctx.attempt, error.as_ref()),
            request_id: message.request_id,
            outcome: outcome.as_str(),
            provider: record.map(|r| r.provider.clone()),
            tenant: record.map(|r| r.tenant.clone()),
        };
        let row = VerificationRow {
            verification_id: message.verification_id,
            message_id: ctx.message_id,
            request_id: message.request_id,
            tenant: record.map(|r| r.tenant.clone()),
            provider: record.map(|r| r.provider.clone()),
            status: status.to_string(),
            outcome: outcome.as_str().to_string(),
            attempts: ctx.attempt as i32,
            error: error.clone(),
            send_known: record.is_some(),
        };
        Completion::of(&event, error, vec![Record::OtpVerification(row)])
    }
}

/// A vendor failure as a verification may report it: the status or transport failure, never the
/// vendor's body or a parser's quote of it (either could echo the code), and never the code itself.
fn scrubbed(failure: Failure, e: &VendorError, message: &OtpVerify) -> Failure {
    let text = match e {
        VendorError::Status { vendor, status, .. } => format!("{vendor}: HTTP {status}"),
        VendorError::Decode { vendor, .. } => format!("{vendor}: unreadable answer"),
        // Its detail holds the answer's shape, keys and types only: never a value to scrub.
        VendorError::Unrecognised { .. } => e.to_string(),
        other => other.to_string(),
    };
    let code = message.code.0.expose_secret();
    let text = if code.is_empty() {
        text
    } else {
        text.replace(code, "[REDACTED]")
    };
    Failure::new(failure.kind, text)
}

/// A send pasarela itself cannot verify (its stored record lacks what the vendor needs).
fn unverifiable(why: &str) -> (VerifyOutcome, Option<Failure>) {
    (
        VerifyOutcome::Failed,
        Some(Failure::new(ErrorKind::Internal, why)),
    )
}

/// Checks the code's shape without looking at what it says.
fn check_code(message: &OtpVerify) -> Result<(), Failure> {
    let code = message.code.0.expose_secret();
    let chars = code.chars().count();
    if chars == 0 || chars > MAX_CODE_CHARS {
        return Err(Failure::new(
            ErrorKind::Rejected,
            format!("code: 1 to {MAX_CODE_CHARS} characters, got {chars}"),
        ));
    }
    if code.chars().any(char::is_control) {
        return Err(Failure::new(
            ErrorKind::Rejected,
            "code: control characters are not allowed",
        ));
    }
    Ok(())
}

/// Replaces the code in a raw `otp.verify` body, so that a stored copy keeps everything else.
pub fn redact_code(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut map)) => {
            if map.contains_key("code") {
                map.insert("code".into(), "[REDACTED]".into());
            }
            serde_json::to_vec(&map).unwrap_or_default()
        }
        // Not a JSON object: nothing in it can be told apart from a code, so keep nothing.
        _ => b"[REDACTED: unreadable otp.verify body]".to_vec(),
    }
}

impl Handler for OtpVerifyHandler {
    type Message = OtpVerify;

    fn queue(&self) -> &'static str {
        "otp.verify"
    }

    async fn handle(&self, message: &OtpVerify, ctx: &HandleContext) -> Outcome {
        if let Err(failure) = check_code(message) {
            return Outcome::Complete(Self::completion(
                message,
                ctx,
                None,
                VerifyOutcome::Failed,
                "rejected",
                Some(failure),
            ));
        }
        let record = match self.admit(message, ctx).await {
            Ok(r) => r,
            Err(e) => {
                let failure =
                    Failure::new(ErrorKind::Internal, format!("looking up the send: {e}"));
                return Outcome::Complete(Self::completion(
                    message,
                    ctx,
                    None,
                    VerifyOutcome::Failed,
                    "failed",
                    Some(failure),
                ));
            }
        };
        let (outcome, error) = match precheck(record.as_ref()) {
            Precheck::Reused => {
                let failure = Failure::new(
                    ErrorKind::Rejected,
                    "verification_id: already used by another message; each verification needs its own",
                );
                // Nothing of the other message's verification or the send is touched.
                return Outcome::Complete(Self::completion(
                    message,
                    ctx,
                    None,
                    VerifyOutcome::Failed,
                    "rejected",
                    Some(failure),
                ));
            }
            Precheck::Answer(outcome, note) => {
                tracing::info!(
                    outcome = outcome.as_str(),
                    note = note.as_deref().unwrap_or(""),
                    "answered without a vendor call"
                );
                (outcome, None)
            }
            Precheck::AskVendor => {
                let record = record.as_ref().expect("asked only with a record");
                self.ask_vendor(message, record).await
            }
        };
        let status = if matches!(
            outcome,
            VerifyOutcome::Failed | VerifyOutcome::VendorUnavailable
        ) {
            "failed"
        } else {
            "completed"
        };
        metrics::counter!("pasarela_otp_verifications_total", "outcome" => outcome.as_str())
            .increment(1);
        Outcome::Complete(Self::completion(
            message,
            ctx,
            record.as_ref(),
            outcome,
            status,
            error,
        ))
    }

    fn exhausted(&self, message: &OtpVerify, ctx: &HandleContext, last: &Failure) -> Completion {
        let failure = Failure::exhausted(ctx.attempt, last);
        Self::completion(
            message,
            ctx,
            None,
            VerifyOutcome::Failed,
            "failed",
            Some(failure),
        )
    }

    fn stored_body(&self, body: &[u8]) -> Vec<u8> {
        redact_code(body)
    }

    fn retries_in_tiers(&self) -> bool {
        // A retry copy would carry the code through the outbox table, and come back after the user
        // left: anything still failing after the in-process tries (even a panic) ends here.
        false
    }

    fn housekeeping_interval(&self) -> Option<Duration> {
        Some(self.settings.sweep_interval)
    }

    async fn housekeep(&self) {
        // Bounded batches, repeated while they come back full, so a backlog is worked off in one turn
        // without any one transaction holding many row locks.
        let (mut expired, mut forgotten) = (0, 0);
        for _ in 0..SWEEP_MAX_BATCHES {
            match otp::sweep(
                self.db.pool(),
                self.settings.longest_window(),
                SWEEP_BATCH as i64,
            )
            .await
            {
                Ok((e, f)) => {
                    expired += e;
                    forgotten += f;
                    if e < SWEEP_BATCH && f < SWEEP_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "otp sweep failed; trying again next turn");
                    break;
                }
            }
        }
        if expired + forgotten > 0 {
            metrics::counter!("pasarela_otp_expired_total").increment(expired);
            tracing::info!(expired, forgotten, "otp sweep");
        }
    }
}

/// Rows one sweep transaction touches at most, per table.
const SWEEP_BATCH: u64 = 5000;
/// Sweep transactions per turn at most.
const SWEEP_MAX_BATCHES: usize = 50;

impl Worker for OtpVerifyHandler {
    const DEFAULTS: WorkerDefaults = pasarela_shared::runtime::settings::defaults::OTP_VERIFY;

    type Settings = (OtpClients, OtpSettings);

    fn build((clients, otp): (OtpClients, OtpSettings), db: &Database) -> Self {
        Self::new(clients, otp, db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, state: &str, counted: bool, used: i32) -> SendRecord {
        SendRecord {
            counted,
            reused: false,
            status: status.into(),
            state: OtpState::from_text(state).unwrap(),
            provider: "danaconnect".into(),
            vendor_request_id: Some("1".into()),
            vendor_otp_id: None,
            tenant: "acme".into(),
            max_tries: Some(3),
            verify_attempts: used,
        }
    }

    #[test]
    fn only_counted_verifications_of_sent_codes_reach_the_vendor() {
        assert!(matches!(
            precheck(None),
            Precheck::Answer(VerifyOutcome::UnknownRequest, _)
        ));
        assert!(matches!(
            precheck(Some(&record("rejected", "errored", false, 0))),
            Precheck::Answer(VerifyOutcome::UnknownRequest, _)
        ));
        assert_eq!(
            precheck(Some(&record("sent", "generated", true, 1))),
            Precheck::AskVendor
        );
        let mut reused = record("sent", "generated", false, 1);
        reused.reused = true;
        assert_eq!(precheck(Some(&reused)), Precheck::Reused);
        assert!(matches!(
            precheck(Some(&record("sent", "validated_ok", false, 1))),
            Precheck::Answer(VerifyOutcome::AlreadyUsed, _)
        ));
        assert!(matches!(
            precheck(Some(&record("sent", "validated_failed", false, 3))),
            Precheck::Answer(VerifyOutcome::MaxAttempts, _)
        ));
    }

    #[test]
    fn every_vendor_answer_has_an_outcome() {
        for (code, outcome) in [
            ("01", VerifyOutcome::Verified),
            ("03", VerifyOutcome::Expired),
            ("04", VerifyOutcome::Incorrect),
            ("06", VerifyOutcome::Failed),
            ("14", VerifyOutcome::AlreadyUsed),
            ("16", VerifyOutcome::MaxAttempts),
            ("99", VerifyOutcome::Failed),
        ] {
            assert_eq!(VerifyOutcome::from_danaconnect(code).0, outcome, "{code}");
        }
        assert_eq!(
            VerifyOutcome::from_danaconnect("06").1.unwrap().kind,
            ErrorKind::Auth
        );
        for (status, outcome) in [
            (ValidateStatus::Validated, VerifyOutcome::Verified),
            (ValidateStatus::Invalid, VerifyOutcome::Incorrect),
            (ValidateStatus::Expired, VerifyOutcome::Expired),
            (ValidateStatus::AlreadyUsed, VerifyOutcome::AlreadyUsed),
            (ValidateStatus::MaxAttempts, VerifyOutcome::MaxAttempts),
            (ValidateStatus::NotFound, VerifyOutcome::UnknownRequest),
        ] {
            assert_eq!(VerifyOutcome::from_aldeamo(status), outcome, "{status:?}");
        }
    }

    #[test]
    fn stored_bodies_lose_the_code_and_keep_the_rest() {
        let body = br#"{"verification_id":"v","request_id":"r","code":"Rf24sG"}"#;
        let stored = String::from_utf8(redact_code(body)).unwrap();
        assert!(!stored.contains("Rf24sG"), "{stored}");
        assert!(stored.contains(r#""request_id":"r""#), "{stored}");
        let garbage = b"code=Rf24sG";
        assert!(!String::from_utf8_lossy(&redact_code(garbage)).contains("Rf24sG"));
    }

    #[test]
    fn vendor_failures_never_carry_the_body_or_the_code() {
        let m: OtpVerify = serde_json::from_value(serde_json::json!({
            "verification_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c11",
            "request_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c12", "code": "4821x"
        }))
        .unwrap();
        let e = VendorError::Status {
            vendor: "aldeamo",
            status: 400,
            retry_after: None,
            body: r#"{"error":"pin 4821x invalid"}"#.into(),
        };
        let f = e.verdict().failure().clone();
        assert!(f.message.contains("4821x"), "the raw failure would leak it");
        let clean = scrubbed(f, &e, &m);
        assert_eq!(clean.message, "aldeamo: HTTP 400");
        let e = VendorError::Connect {
            vendor: "aldeamo",
            detail: "reset while sending 4821x".into(),
        };
        let clean = scrubbed(e.verdict().failure().clone(), &e, &m);
        assert!(!clean.message.contains("4821x"), "{}", clean.message);
    }

    #[test]
    fn code_shape_is_checked_without_echoing_it() {
        let m: OtpVerify = serde_json::from_value(serde_json::json!({
            "verification_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c11",
            "request_id": "0b0e0a5e-4a31-4f5e-9a47-1f3a8d1e2c12", "code": "x".repeat(65)
        }))
        .unwrap();
        let err = check_code(&m).unwrap_err();
        assert!(!err.message.contains("xxxx"), "{}", err.message);
    }
}
