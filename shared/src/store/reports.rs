//! The OTP reports' reads from `otp_requests` and `otp_verifications`: the detail rows, the counts
//! per state with the traffic light's and the fraud guard's numbers, and sends per channel per hour.
//! The Grafana dashboard `deploy/grafana/dashboards/otp-reports.json` counts the same way.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::store::database::snapshot;
use crate::store::error::DbError;

/// Which OTPs a report covers. Each filter is a list of values any of which matches, off when empty;
/// state and channel are the columns' text.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    /// Start of the window (creation time, inclusive).
    pub since: DateTime<Utc>,
    /// End of the window (creation time, inclusive).
    pub until: DateTime<Utc>,
    /// Tenants.
    pub tenants: &'a [String],
    /// Exact mobiles or e-mails, matched against the unmasked columns.
    pub destinations: &'a [String],
    /// States (`otp_requests.state`).
    pub states: &'a [String],
    /// Channels (`otp_requests.channel`).
    pub channels: &'a [String],
    /// Providers.
    pub providers: &'a [String],
    /// Detail rows at most; `None` for all.
    pub limit: Option<u32>,
}

/// One OTP in the detailed report, its destination masked.
#[derive(Debug, Clone, Serialize)]
pub struct DetailRow {
    /// The request id.
    pub transaction_id: Uuid,
    /// The vendor's id for it (Aldeamo's `otpTransactionId`, DANAConnect's `idRequest`).
    pub vendor_transaction_id: Option<String>,
    /// The tenant.
    pub user: String,
    /// The destination, masked.
    pub destination: Option<String>,
    /// The channel.
    pub channel: String,
    /// The provider that served it.
    pub provider: String,
    /// When it was sent.
    pub generated_at: Option<DateTime<Utc>>,
    /// When it was verified.
    pub validated_at: Option<DateTime<Utc>>,
    /// Its state.
    pub state: String,
}

/// Sends in one hour, per channel.
#[derive(Debug, Clone, Serialize)]
pub struct HourRow {
    /// The hour's start (UTC).
    pub hour: DateTime<Utc>,
    /// SMS sends.
    pub sms: i64,
    /// E-mail sends.
    pub email: i64,
    /// WhatsApp sends.
    pub whatsapp: i64,
    /// Voice sends.
    pub voice: i64,
    /// Every send of the hour, whatever its channel.
    pub total: i64,
}

/// The counts of one pass over the selected rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// OTPs generated and sent, not validated yet.
    pub generated: i64,
    /// OTPs validated successfully.
    pub validated_ok: i64,
    /// OTPs whose validation did not pass.
    pub validated_failed: i64,
    /// OTPs not validated in time.
    pub expired: i64,
    /// OTPs never generated or sent.
    pub errored: i64,
    /// OTPs not errored: the traffic light's denominator.
    pub not_errored: i64,
    /// OTPs with at least one verification the vendor answered: the traffic light's numerator.
    pub validated: i64,
    /// Sends the fraud guard refused for the destination's limit.
    pub destination_limit: i64,
    /// Sends the fraud guard refused for the tenant's limit.
    pub tenant_limit: i64,
    /// Sends the fraud guard refused for the destination's country.
    pub country_limit: i64,
}

/// Everything one report reads, from one snapshot.
#[derive(Debug, Clone)]
pub struct OtpRows {
    /// The detail, newest first, at most the selection's limit.
    pub detail: Vec<DetailRow>,
    /// The counts.
    pub totals: Totals,
    /// Sends per channel per hour, hours with sends only, oldest first.
    pub hourly: Vec<HourRow>,
    /// The destination filter, masked like every destination in a report.
    pub masked_destinations: Vec<String>,
}

/// The rows every section counts: parameters $1 to $7 are the window and the filters, each filter a
/// list that is off when empty. BETWEEN, like Grafana's `$__timeFilter`, so the dashboard and the CLI
/// agree.
macro_rules! selected {
    () => {
        "o.created_at BETWEEN $1 AND $2
    AND (cardinality($3::text[]) = 0 OR o.tenant = ANY($3))
    AND (cardinality($4::text[]) = 0 OR o.destination_mobile = ANY($4)
         OR o.destination_email = ANY($4))
    AND (cardinality($5::text[]) = 0 OR o.state = ANY($5))
    AND (cardinality($6::text[]) = 0 OR o.channel = ANY($6))
    AND (cardinality($7::text[]) = 0 OR o.provider = ANY($7))"
    };
}

/// The detail, newest first, at most `$8` rows (all when NULL).
const DETAIL: &str = concat!(
    "SELECT o.request_id, o.tenant, pasarela_mask_destination(o.destination_mobile, o.destination_email),
            o.channel, o.provider, o.generated_at, o.validated_at, o.state, o.vendor_request_id
     FROM otp_requests o WHERE ",
    selected!(),
    "
     ORDER BY o.created_at DESC, o.request_id
     LIMIT $8"
);

/// States, the traffic light and the fraud guard's refusals in one pass over the rows.
/// Validated: a verification the vendor answered, whatever the answer (pending rows and pasarela's
/// own refusals, such as unknown_request, are not validations).
const TOTALS: &str = concat!(
    "SELECT count(*) FILTER (WHERE o.state = 'generated'),
            count(*) FILTER (WHERE o.state = 'validated_ok'),
            count(*) FILTER (WHERE o.state = 'validated_failed'),
            count(*) FILTER (WHERE o.state = 'expired'),
            count(*) FILTER (WHERE o.state = 'errored'),
            count(*) FILTER (WHERE o.state <> 'errored'),
            count(*) FILTER (WHERE EXISTS (
                SELECT 1 FROM otp_verifications v
                WHERE v.request_id = o.request_id
                  AND v.outcome IN ('verified', 'incorrect', 'expired', 'already_used', 'max_attempts'))),
            count(*) FILTER (WHERE o.error_kind = 'rate_limited'
                               AND o.error_message LIKE 'limit.destination:%'),
            count(*) FILTER (WHERE o.error_kind = 'rate_limited'
                               AND o.error_message LIKE 'limit.tenant:%'),
            count(*) FILTER (WHERE o.error_kind = 'rejected'
                               AND o.error_message LIKE 'limit.country:%')
     FROM otp_requests o WHERE ",
    selected!()
);

/// Hours in UTC whatever the session's time zone, as reports print them.
const HOURLY: &str = concat!(
    "SELECT date_trunc('hour', o.created_at, 'UTC'),
            count(*) FILTER (WHERE o.channel = 'sms'),
            count(*) FILTER (WHERE o.channel = 'email'),
            count(*) FILTER (WHERE o.channel = 'whatsapp'),
            count(*) FILTER (WHERE o.channel = 'voice'),
            count(*)
     FROM otp_requests o WHERE ",
    selected!(),
    "
     GROUP BY 1 ORDER BY 1"
);

/// The destination filter is echoed in a report, so each is masked like every destination.
const MASK: &str = "SELECT coalesce(array_agg(pasarela_mask_destination(
        CASE WHEN d LIKE '%@%' THEN NULL ELSE d END, CASE WHEN d LIKE '%@%' THEN d END)
        ORDER BY n), '{}')
    FROM unnest($1::text[]) WITH ORDINALITY AS f(d, n)";

/// Reads a whole OTP report. One read-only snapshot, so that the sections agree with each other
/// (the detail's rows are the ones the states count); the queries are pipelined on one connection.
pub async fn otp(pool: &Pool, selection: &Selection<'_>) -> Result<OtpRows, DbError> {
    let params: [&(dyn ToSql + Sync); 7] = [
        &selection.since,
        &selection.until,
        &selection.tenants,
        &selection.destinations,
        &selection.states,
        &selection.channels,
        &selection.providers,
    ];
    let limit = selection.limit.map(i64::from);
    let mut detail_params = params.to_vec();
    detail_params.push(&limit);
    let mask_params: [&(dyn ToSql + Sync); 1] = [&selection.destinations];

    let mut client = pool.get().await?;
    let tx = snapshot(&mut client).await?;
    let (detail, totals, hourly, masked) = futures::try_join!(
        tx.query(DETAIL, &detail_params),
        tx.query_one(TOTALS, &params),
        tx.query(HOURLY, &params),
        tx.query_one(MASK, &mask_params),
    )?;
    tx.commit().await?;

    Ok(OtpRows {
        detail: detail
            .iter()
            .map(detail_row)
            .collect::<Result<_, tokio_postgres::Error>>()?,
        totals: totals_of(&totals)?,
        hourly: hourly
            .iter()
            .map(hour_row)
            .collect::<Result<_, tokio_postgres::Error>>()?,
        masked_destinations: masked.try_get(0)?,
    })
}

fn detail_row(r: &tokio_postgres::Row) -> Result<DetailRow, tokio_postgres::Error> {
    Ok(DetailRow {
        transaction_id: r.try_get(0)?,
        user: r.try_get(1)?,
        destination: r.try_get(2)?,
        channel: r.try_get(3)?,
        provider: r.try_get(4)?,
        generated_at: r.try_get(5)?,
        validated_at: r.try_get(6)?,
        state: r.try_get(7)?,
        vendor_transaction_id: r.try_get(8)?,
    })
}

fn totals_of(row: &tokio_postgres::Row) -> Result<Totals, tokio_postgres::Error> {
    let count = |i: usize| row.try_get::<_, i64>(i);
    Ok(Totals {
        generated: count(0)?,
        validated_ok: count(1)?,
        validated_failed: count(2)?,
        expired: count(3)?,
        errored: count(4)?,
        not_errored: count(5)?,
        validated: count(6)?,
        destination_limit: count(7)?,
        tenant_limit: count(8)?,
        country_limit: count(9)?,
    })
}

fn hour_row(r: &tokio_postgres::Row) -> Result<HourRow, tokio_postgres::Error> {
    Ok(HourRow {
        hour: r.try_get(0)?,
        sms: r.try_get(1)?,
        email: r.try_get(2)?,
        whatsapp: r.try_get(3)?,
        voice: r.try_get(4)?,
        total: r.try_get(5)?,
    })
}
