//! The report's reads from `otp_requests` and `otp_verifications`.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;

use super::model::{
    Channel, DetailRow, Filters, HourRow, LimitCounts, OtpReport, OtpState, StateCounts,
    TrafficLight,
};

/// Which OTPs a report covers, as the command line gave them.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Start of the window (creation time, inclusive).
    pub since: DateTime<Utc>,
    /// End of the window (creation time, inclusive).
    pub until: DateTime<Utc>,
    /// Tenant filter.
    pub tenant: Option<String>,
    /// Exact mobile or e-mail, matched against the unmasked columns.
    pub destination: Option<String>,
    /// State filter.
    pub state: Option<OtpState>,
    /// Channel filter.
    pub channel: Option<Channel>,
    /// Provider filter.
    pub provider: Option<String>,
    /// Detail rows at most; `None` for all.
    pub limit: Option<u32>,
}

/// The rows every section counts: parameters $1 to $7 are the window and the filters, each filter
/// off when NULL. BETWEEN, like Grafana's `$__timeFilter`, so the dashboard and the CLI agree.
const SELECTED: &str = "o.created_at BETWEEN $1 AND $2
    AND ($3::text IS NULL OR o.tenant = $3)
    AND ($4::text IS NULL OR o.destination_mobile = $4 OR o.destination_email = $4)
    AND ($5::text IS NULL OR o.state = $5)
    AND ($6::text IS NULL OR o.channel = $6)
    AND ($7::text IS NULL OR o.provider = $7)";

/// Reads the whole report. One read-only snapshot, so that the sections agree with each other
/// (the detail's rows are the ones the states count); the queries are pipelined on one connection.
pub async fn otp_report(client: &mut Object, selection: Selection) -> anyhow::Result<OtpReport> {
    let tenant = selection.tenant.as_deref();
    let destination = selection.destination.as_deref();
    let state = selection.state.map(OtpState::as_str);
    let channel = selection.channel.map(Channel::as_str);
    let provider = selection.provider.as_deref();
    let params: [&(dyn ToSql + Sync); 7] = [
        &selection.since,
        &selection.until,
        &tenant,
        &destination,
        &state,
        &channel,
        &provider,
    ];
    let limit = selection.limit.map(i64::from);
    let mut detail_params = params.to_vec();
    detail_params.push(&limit);

    let detail_sql = format!(
        "SELECT o.request_id, o.tenant, pasarela_mask_destination(o.destination_mobile, o.destination_email),
                o.channel, o.provider, o.generated_at, o.validated_at, o.state
         FROM otp_requests o WHERE {SELECTED}
         ORDER BY o.created_at DESC, o.request_id
         LIMIT $8"
    );
    // States, the traffic light and the fraud guard's refusals in one pass over the rows.
    // Validated: a verification the vendor answered, whatever the answer (pending rows and
    // pasarela's own refusals, such as unknown_request, are not validations).
    let totals_sql = format!(
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
         FROM otp_requests o WHERE {SELECTED}"
    );
    // Hours in UTC whatever the session's time zone, as the report prints them.
    let hourly_sql = format!(
        "SELECT date_trunc('hour', o.created_at, 'UTC'),
                count(*) FILTER (WHERE o.channel = 'sms'),
                count(*) FILTER (WHERE o.channel = 'email'),
                count(*) FILTER (WHERE o.channel = 'whatsapp'),
                count(*) FILTER (WHERE o.channel = 'voice'),
                count(*)
         FROM otp_requests o WHERE {SELECTED}
         GROUP BY 1 ORDER BY 1"
    );
    // The destination filter is echoed in the report, so it is masked like every destination.
    let (mobile, email) = match destination {
        Some(d) if d.contains('@') => (None, Some(d)),
        Some(d) => (Some(d), None),
        None => (None, None),
    };
    let mask_params: [&(dyn ToSql + Sync); 2] = [&mobile, &email];

    let tx = crate::context::snapshot(client).await?;
    let (detail, totals, hourly, masked) = futures::try_join!(
        tx.query(&detail_sql, &detail_params),
        tx.query_one(&totals_sql, &params),
        tx.query(&hourly_sql, &params),
        tx.query_one(
            "SELECT pasarela_mask_destination($1::text, $2::text)",
            &mask_params
        ),
    )?;
    tx.commit().await?;

    let count = |i: usize| -> i64 { totals.get(i) };
    Ok(OtpReport {
        filters: Filters {
            since: selection.since,
            until: selection.until,
            tenant: selection.tenant.clone(),
            destination: masked.get(0),
            state,
            channel,
            provider: selection.provider.clone(),
            limit: selection.limit,
        },
        detail: detail
            .iter()
            .map(|r| DetailRow {
                transaction_id: r.get(0),
                user: r.get(1),
                destination: r.get(2),
                channel: r.get(3),
                provider: r.get(4),
                generated_at: r.get(5),
                validated_at: r.get(6),
                state: r.get(7),
            })
            .collect(),
        states: StateCounts {
            generated: count(0),
            validated_ok: count(1),
            validated_failed: count(2),
            expired: count(3),
            errored: count(4),
        },
        traffic_light: TrafficLight::new(count(5), count(6)),
        limits: LimitCounts {
            destination: count(7),
            tenant: count(8),
            country: count(9),
        },
        hourly: hourly
            .iter()
            .map(|r| HourRow {
                hour: r.get(0),
                sms: r.get(1),
                email: r.get(2),
                whatsapp: r.get(3),
                voice: r.get(4),
                total: r.get(5),
            })
            .collect(),
    })
}
