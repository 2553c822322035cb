//! The OTP tables: `otp_requests` (one row per send, with its lifecycle state), `otp_verifications`,
//! and the fraud guard's admissions, counted in PostgreSQL so that every replica enforces one limit.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use uuid::Uuid;

use crate::contract::errors::Failure;
use crate::store::column::text_column;
use crate::store::error::DbError;

/// A send's lifecycle state (`otp_requests.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpState {
    /// The vendor generated and sent the code.
    Generated,
    /// The send failed or was refused.
    Errored,
    /// A verification said the code was right.
    ValidatedOk,
    /// Verifications said the code was wrong, or ran out.
    ValidatedFailed,
    /// The code's time ran out before it was validated.
    Expired,
}

impl OtpState {
    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            OtpState::Generated => "generated",
            OtpState::Errored => "errored",
            OtpState::ValidatedOk => "validated_ok",
            OtpState::ValidatedFailed => "validated_failed",
            OtpState::Expired => "expired",
        }
    }
}

text_column!(OtpState: Generated, Errored, ValidatedOk, ValidatedFailed, Expired);

/// A finished send, as `otp_requests` keeps it.
#[derive(Debug, Clone)]
pub struct SendRow {
    /// The producer's `request_id`.
    pub request_id: Uuid,
    /// The message that finished it.
    pub message_id: Uuid,
    /// The tenant.
    pub tenant: String,
    /// The provider that served, or the one requested when none did.
    pub provider: String,
    /// `sms`, `email`, `whatsapp` or `voice`.
    pub channel: String,
    /// The mobile destination.
    pub mobile: Option<String>,
    /// The e-mail destination.
    pub email: Option<String>,
    /// `numeric`, `alphanumeric` or `alphabetic`.
    pub code_type: String,
    /// The code's length.
    pub code_length: i32,
    /// The code's lifetime in seconds.
    pub expires_in_s: i32,
    /// Verifications allowed.
    pub max_tries: i32,
    /// `sent`, `rejected` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The vendor's request id.
    pub vendor_request_id: Option<String>,
    /// The vendor's answer code.
    pub vendor_code: Option<String>,
    /// The vendor's id for tracking the run.
    pub vendor_tracking_id: Option<String>,
    /// The vendor's words for its code.
    pub vendor_description: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<Failure>,
    /// `Generated` when sent, else `Errored`.
    pub state: OtpState,
    /// The producer's `provider` as asked.
    pub requested_provider: String,
    /// The providers tried, in order.
    pub providers_tried: Vec<String>,
    /// Aldeamo's `otpId`.
    pub vendor_otp_id: Option<String>,
}

/// Every send of a group in one statement: a row per send, from one array per column.
const UPSERT_SENDS: &str = "INSERT INTO otp_requests (request_id, message_id, tenant, provider,
        channel, destination_mobile, destination_email, code_type, code_length, expires_in_s,
        max_tries, status, attempts, vendor_request_id, vendor_code, error_kind, error_message, state,
        requested_provider, providers_tried, vendor_otp_id, vendor_tracking_id, vendor_description,
        completed_at, generated_at, expires_at)
    SELECT t.request_id, t.message_id, t.tenant, t.provider, t.channel, t.mobile, t.email,
        t.code_type, t.code_length, t.expires_in_s, t.max_tries, t.status, t.attempts,
        t.vendor_request_id, t.vendor_code, t.error_kind, t.error_message, t.state,
        t.requested_provider, string_to_array(t.providers_tried, ','), t.vendor_otp_id,
        t.vendor_tracking_id, t.vendor_description, now(),
        CASE WHEN t.state = 'generated' THEN now() END,
        CASE WHEN t.state = 'generated' THEN now() + make_interval(secs => t.expires_in_s) END
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::int4[], $10::int4[], $11::int4[], $12::text[], $13::int4[], $14::text[],
        $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[],
        $22::text[], $23::text[])
        AS t(request_id, message_id, tenant, provider, channel, mobile, email, code_type,
             code_length, expires_in_s, max_tries, status, attempts, vendor_request_id, vendor_code,
             error_kind, error_message, state, requested_provider, providers_tried, vendor_otp_id,
             vendor_tracking_id, vendor_description)
    ON CONFLICT (request_id) DO UPDATE SET message_id = EXCLUDED.message_id,
        provider = EXCLUDED.provider, status = EXCLUDED.status,
        attempts = EXCLUDED.attempts, vendor_request_id = EXCLUDED.vendor_request_id,
        vendor_code = EXCLUDED.vendor_code, error_kind = EXCLUDED.error_kind,
        error_message = EXCLUDED.error_message, state = EXCLUDED.state,
        providers_tried = EXCLUDED.providers_tried,
        vendor_otp_id = EXCLUDED.vendor_otp_id, vendor_tracking_id = EXCLUDED.vendor_tracking_id,
        vendor_description = EXCLUDED.vendor_description, completed_at = now(),
        generated_at = EXCLUDED.generated_at, expires_at = EXCLUDED.expires_at";

/// Records a group's sends in one statement. Of two rows for one request the later wins, as two
/// upserts in turn would have it (one statement may not update a row twice).
pub(crate) async fn write_sends(
    txn: &Transaction<'_>,
    rows: &[&SendRow],
) -> Result<u64, tokio_postgres::Error> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut last: Vec<&SendRow> = rows
        .iter()
        .rev()
        .filter(|r| seen.insert(r.request_id))
        .copied()
        .collect();
    last.reverse();
    let rows = last;
    let stmt = txn.prepare_cached(UPSERT_SENDS).await?;
    let column = |f: fn(&SendRow) -> Option<&str>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let ints = |f: fn(&SendRow) -> i32| rows.iter().map(|r| f(r)).collect::<Vec<i32>>();
    let request_ids: Vec<Uuid> = rows.iter().map(|r| r.request_id).collect();
    let message_ids: Vec<Uuid> = rows.iter().map(|r| r.message_id).collect();
    let states: Vec<String> = rows.iter().map(|r| r.state.to_string()).collect();
    let tried: Vec<String> = rows.iter().map(|r| r.providers_tried.join(",")).collect();
    txn.execute(
        &stmt,
        &[
            &request_ids,
            &message_ids,
            &column(|r| Some(r.tenant.as_str())),
            &column(|r| Some(r.provider.as_str())),
            &column(|r| Some(r.channel.as_str())),
            &column(|r| r.mobile.as_deref()),
            &column(|r| r.email.as_deref()),
            &column(|r| Some(r.code_type.as_str())),
            &ints(|r| r.code_length),
            &ints(|r| r.expires_in_s),
            &ints(|r| r.max_tries),
            &column(|r| Some(r.status.as_str())),
            &ints(|r| r.attempts),
            &column(|r| r.vendor_request_id.as_deref()),
            &column(|r| r.vendor_code.as_deref()),
            &column(|r| r.error.as_ref().map(|e| e.kind.as_str())),
            &column(|r| r.error.as_ref().map(|e| e.message.as_str())),
            &states,
            &column(|r| Some(r.requested_provider.as_str())),
            &tried,
            &column(|r| r.vendor_otp_id.as_deref()),
            &column(|r| r.vendor_tracking_id.as_deref()),
            &column(|r| r.vendor_description.as_deref()),
        ],
    )
    .await
}

/// A finished verification, as `otp_verifications` keeps it; when its send is known, the send's
/// state follows it.
#[derive(Debug, Clone)]
pub struct VerificationRow {
    /// The producer's `verification_id`.
    pub verification_id: Uuid,
    /// The message that finished it.
    pub message_id: Uuid,
    /// The send it verifies.
    pub request_id: Uuid,
    /// The send's tenant, when the send is known.
    pub tenant: Option<String>,
    /// The send's provider, when the send is known.
    pub provider: Option<String>,
    /// The event's status.
    pub status: String,
    /// `verified`, `incorrect`, `expired`, `max_attempts`, ...
    pub outcome: String,
    /// Attempts made.
    pub attempts: i32,
    /// Why it failed, if it did.
    pub error: Option<Failure>,
    /// Whether the send exists, so its state follows this verification.
    pub send_known: bool,
}

const UPSERT_VERIFICATION: &str = "INSERT INTO otp_verifications (verification_id, message_id,
        request_id, tenant, provider, status, outcome, attempts, error_kind, error_message,
        completed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
    ON CONFLICT (verification_id) DO UPDATE SET status = EXCLUDED.status,
        outcome = EXCLUDED.outcome, attempts = EXCLUDED.attempts,
        error_kind = EXCLUDED.error_kind, error_message = EXCLUDED.error_message,
        completed_at = now()
    WHERE otp_verifications.message_id = EXCLUDED.message_id";

/// The send's state follows its verifications; a validated code stays validated.
const FOLLOW_VERIFICATION: &str = "UPDATE otp_requests SET
        state = CASE
            WHEN state = 'validated_ok' THEN state
            WHEN $2 = 'verified' THEN 'validated_ok'
            WHEN $2 = 'expired' THEN 'expired'
            WHEN $2 IN ('incorrect', 'max_attempts') THEN 'validated_failed'
            ELSE state END,
        validated_at = CASE WHEN $2 = 'verified' AND state <> 'validated_ok'
            THEN now() ELSE validated_at END
    WHERE request_id = $1";

impl VerificationRow {
    /// Records the verification, and its send's new state, inside the group's transaction.
    pub(crate) async fn write(&self, txn: &Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
        let stmt = txn.prepare_cached(UPSERT_VERIFICATION).await?;
        let kind = self.error.as_ref().map(|e| e.kind.as_str());
        let message = self.error.as_ref().map(|e| e.message.as_str());
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
            &self.verification_id,
            &self.message_id,
            &self.request_id,
            &self.tenant,
            &self.provider,
            &self.status,
            &self.outcome,
            &self.attempts,
            &kind,
            &message,
        ];
        let written = txn.execute(&stmt, &params);
        if !self.send_known {
            return written.await;
        }
        let follow = txn.prepare_cached(FOLLOW_VERIFICATION).await?;
        let follow_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&self.request_id, &self.outcome];
        let followed = txn.execute(&follow, &follow_params);
        let (w, f) = futures::try_join!(written, followed)?;
        Ok(w + f)
    }
}

/// What the fraud guard says about one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAdmission {
    /// Within every limit: send it.
    Admitted,
    /// The destination's window is full.
    DestinationLimit,
    /// The tenant's window is full.
    TenantLimit,
}

/// The fraud guard's limits.
#[derive(Debug, Clone, Copy)]
pub struct GuardLimits {
    /// Sends allowed to one destination per window; 0 turns it off.
    pub destination_limit: i32,
    /// The destination window, in seconds.
    pub destination_window_s: i32,
    /// Sends allowed to one tenant per window; 0 turns it off.
    pub tenant_limit: i32,
    /// The tenant window, in seconds.
    pub tenant_window_s: i32,
}

/// One send to admit.
#[derive(Debug, Clone)]
pub struct SendToAdmit {
    /// The send's request id: a retried send is counted once.
    pub request_id: Uuid,
    /// Its tenant.
    pub tenant: String,
    /// The destination the guard counts.
    pub destination: String,
}

/// Counts a batch of sends inside `txn`, leaving its durability as it is: the claim's group
/// transaction admits the sends of the claims that take their message this way.
pub(crate) async fn admit_within(
    txn: &Transaction<'_>,
    limits: &GuardLimits,
    sends: &[&SendToAdmit],
) -> Result<HashMap<Uuid, SendAdmission>, DbError> {
    let stmt = txn
        .prepare_cached(
            "SELECT admitted_request, verdict
             FROM pasarela_admit_otp_sends_within($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    let requests: Vec<Uuid> = sends.iter().map(|s| s.request_id).collect();
    let tenants: Vec<&str> = sends.iter().map(|s| s.tenant.as_str()).collect();
    let destinations: Vec<&str> = sends.iter().map(|s| s.destination.as_str()).collect();
    let rows = txn
        .query(
            &stmt,
            &[
                &requests,
                &tenants,
                &destinations,
                &limits.destination_limit,
                &limits.destination_window_s,
                &limits.tenant_limit,
                &limits.tenant_window_s,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let admission = match r.get::<_, &str>(1) {
                "admitted" => SendAdmission::Admitted,
                "destination" => SendAdmission::DestinationLimit,
                _ => SendAdmission::TenantLimit,
            };
            (r.get(0), admission)
        })
        .collect())
}

/// A send as a verification finds it, and whether this verification was counted.
#[derive(Debug, Clone)]
pub struct SendRecord {
    /// Whether this verification was counted and may go to the vendor.
    pub counted: bool,
    /// Its verification_id was already used by another message.
    pub reused: bool,
    /// The send's status (`sent`, `rejected`, `failed`).
    pub status: String,
    /// The send's OTP state.
    pub state: OtpState,
    /// The provider that sent it.
    pub provider: String,
    /// The vendor's request id (DANAConnect's `idRequest`).
    pub vendor_request_id: Option<String>,
    /// Aldeamo's `otpId`.
    pub vendor_otp_id: Option<String>,
    /// The tenant.
    pub tenant: String,
    /// Verifications allowed.
    pub max_tries: Option<i32>,
    /// Verifications counted so far.
    pub verify_attempts: i32,
}

/// Finds the send a verification names and counts the verification against its tries, once per
/// verification; `None` when no such send exists.
pub async fn admit_verification(
    pool: &Pool,
    verification_id: Uuid,
    message_id: Uuid,
    request_id: Uuid,
) -> Result<Option<SendRecord>, DbError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT counted, reused, status, state, provider, vendor_request_id,
                    vendor_otp_id, tenant, max_tries, verify_attempts
             FROM pasarela_admit_otp_verify($1, $2, $3)",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&verification_id, &message_id, &request_id])
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(SendRecord {
        counted: r.get(0),
        reused: r.get(1),
        status: r.get(2),
        state: r.try_get(3)?,
        provider: r.get(4),
        vendor_request_id: r.get(5),
        vendor_otp_id: r.get(6),
        tenant: r.get(7),
        max_tries: r.get(8),
        verify_attempts: r.get(9),
    }))
}

/// Marks at most `batch` codes never validated in time as expired, and forgets at most `batch` guard
/// admissions older than `keep_admissions`. One replica at a time does it (a transaction-scoped
/// advisory lock); returns (expired, forgotten).
pub async fn sweep(
    pool: &Pool,
    keep_admissions: Duration,
    batch: i64,
) -> Result<(u64, u64), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('pasarela.otp.sweep', 0))",
            &[],
        )
        .await?
        .get(0);
    if !locked {
        return Ok((0, 0));
    }
    let expired = tx
        .execute(
            "UPDATE otp_requests SET state = 'expired'
             WHERE request_id IN (
                 SELECT request_id FROM otp_requests
                 WHERE state = 'generated' AND expires_at < now()
                 ORDER BY expires_at LIMIT $1)
               AND state = 'generated'",
            &[&batch],
        )
        .await?;
    let keep = keep_admissions.as_secs() as i64;
    let forgotten = tx
        .execute(
            "DELETE FROM otp_send_admissions
             WHERE request_id IN (
                 SELECT request_id FROM otp_send_admissions
                 WHERE admitted_at < now() - $2::bigint * interval '1 second' LIMIT $1)",
            &[&batch, &keep],
        )
        .await?;
    tx.execute(
        "DELETE FROM otp_tenant_sends WHERE minute < now() - $1::bigint * interval '1 second'",
        &[&(keep + 60)],
    )
    .await?;
    tx.commit().await?;
    Ok((expired, forgotten))
}
