//! `pasarela report otp`: the OTP reports Aldeamo's document promises (section 7), reproduced from
//! pasarela's own tables: the detailed report, totals per state, sends per channel per hour, the
//! validation traffic light and the fraud guard's refusals. The Grafana dashboard
//! `deploy/grafana/dashboards/otp-reports.json` draws the same numbers.

pub mod model;
pub mod render;

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use deadpool_postgres::Pool;
use pasarela_shared::store::error::DbError;
use pasarela_shared::store::reports;

use crate::context::Context;
use crate::format::TimeArg;
use model::{Channel, Filters, Measure, OtpReport, OtpState};

/// Subcommands of `pasarela report`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// OTP sends: detail, totals per state, sends per channel per hour, the validation traffic
    /// light and fraud-guard refusals.
    Otp(OtpReportArgs),
}

/// Flags of `pasarela report otp`.
#[derive(Debug, Args)]
pub struct OtpReportArgs {
    /// Start of the window, by creation time: an RFC 3339 time, or a duration ago (30m, 24h, 7d);
    /// the last week by default, as the document's report opens.
    #[arg(long, default_value = "7d")]
    pub since: TimeArg,
    /// End of the window, like --since [default: now].
    #[arg(long)]
    pub until: Option<TimeArg>,
    /// Only these tenants (the report's "user"): a comma list, or the flag repeated.
    #[arg(long, value_delimiter = ',')]
    pub tenant: Vec<String>,
    /// Only these destinations: exact mobile numbers or e-mail addresses (reports show them masked).
    #[arg(long, value_delimiter = ',')]
    pub destination: Vec<String>,
    /// Only OTPs in these states (`sent` is `generated`), e.g. `--state sent,expired`.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub state: Vec<OtpState>,
    /// Only these channels.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub channel: Vec<Channel>,
    /// Only sends served by these providers.
    #[arg(long, value_delimiter = ',')]
    pub provider: Vec<String>,
    /// What the traffic light measures [default: PASARELA_OTP_TRAFFIC_LIGHT, else unvalidated].
    #[arg(long, value_enum)]
    pub light: Option<Measure>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The section CSV output holds (one per invocation) [default: detail].
    #[arg(long, value_enum)]
    pub section: Option<Section>,
    /// Detail rows at most [default: 50 for table, all for csv and json].
    #[arg(long)]
    pub limit: Option<u32>,
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Every section under a heading, in aligned columns.
    Table,
    /// One section as RFC 4180 CSV, header row first.
    Csv,
    /// Every section in one JSON object.
    Json,
}

/// A section of the report, for CSV output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// One row per OTP.
    Detail,
    /// OTPs per state.
    States,
    /// Sends per channel per hour.
    Hourly,
    /// The validation traffic light.
    Light,
    /// Sends the fraud guard refused, per limit.
    Limits,
}

/// Detail rows shown when `--limit` is not given: a screenful for a table, everything for files.
pub fn effective_limit(format: Format, limit: Option<u32>) -> Option<u32> {
    const TABLE_ROWS: u32 = 50;
    match (format, limit) {
        (_, Some(n)) => Some(n),
        (Format::Table, None) => Some(TABLE_ROWS),
        (Format::Csv | Format::Json, None) => None,
    }
}

/// The CSV section to print, refusing `--section` where it means nothing.
pub fn csv_section(format: Format, section: Option<Section>) -> Result<Section, String> {
    match (format, section) {
        (Format::Csv, section) => Ok(section.unwrap_or(Section::Detail)),
        (_, None) => Ok(Section::Detail),
        (_, Some(_)) => {
            Err("--section chooses the CSV section; table and json print every section".to_string())
        }
    }
}

/// What one OTP report covers, as the command's flags or the console's form give it.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// Start of the window, by creation time.
    pub since: DateTime<Utc>,
    /// End of the window.
    pub until: DateTime<Utc>,
    /// Only these tenants (all when empty).
    pub tenants: Vec<String>,
    /// Only these destinations, typed in full.
    pub destinations: Vec<String>,
    /// Only OTPs in these states.
    pub states: Vec<OtpState>,
    /// Only these channels.
    pub channels: Vec<Channel>,
    /// Only sends served by these providers.
    pub providers: Vec<String>,
    /// What the traffic light measures.
    pub measure: Measure,
    /// Detail rows at most.
    pub limit: Option<u32>,
}

/// The report `wanted` names, read in one pass of the store's report queries: the same numbers for
/// `pasarela report otp` and the console.
pub async fn make(pool: &Pool, wanted: &Wanted) -> Result<OtpReport, DbError> {
    let states: Vec<&'static str> = wanted.states.iter().map(|s| s.as_str()).collect();
    let channels: Vec<&'static str> = wanted.channels.iter().map(|c| c.as_str()).collect();
    let (state_names, channel_names): (Vec<String>, Vec<String>) = (
        states.iter().map(|s| s.to_string()).collect(),
        channels.iter().map(|c| c.to_string()).collect(),
    );
    let selection = reports::Selection {
        since: wanted.since,
        until: wanted.until,
        tenants: &wanted.tenants,
        destinations: &wanted.destinations,
        states: &state_names,
        channels: &channel_names,
        providers: &wanted.providers,
        limit: wanted.limit,
    };
    let rows = reports::otp(pool, &selection).await?;
    let filters = Filters {
        since: wanted.since,
        until: wanted.until,
        tenants: wanted.tenants.clone(),
        destinations: rows.masked_destinations.clone(),
        states,
        channels,
        providers: wanted.providers.clone(),
        limit: wanted.limit,
    };
    Ok(OtpReport::new(filters, wanted.measure, rows))
}

/// Runs `pasarela report`.
pub async fn run(command: ReportCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReportCommand::Otp(args) => otp(args).await,
    }
}

async fn otp(args: OtpReportArgs) -> anyhow::Result<ExitCode> {
    let section = csv_section(args.format, args.section).map_err(anyhow::Error::msg)?;
    let now = Utc::now();
    let since = args
        .since
        .resolve(now)
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let until = match args.until {
        Some(t) => t
            .resolve(now)
            .map_err(|e| anyhow::anyhow!("--until: {e}"))?,
        None => now,
    };
    if since > until {
        anyhow::bail!("--since ({since}) is after --until ({until})");
    }
    let measure = match args.light {
        Some(measure) => measure,
        None => pasarela_shared::contract::env::Env::from_process()
            .choice("PASARELA_OTP_TRAFFIC_LIGHT", &Measure::CHOICES)?,
    };
    let limit = effective_limit(args.format, args.limit);
    let wanted = Wanted {
        since,
        until,
        tenants: args.tenant.clone(),
        destinations: args.destination.clone(),
        states: args.state.clone(),
        channels: args.channel.clone(),
        providers: args.provider.clone(),
        measure,
        limit,
    };
    let ctx = Context::from_env()?;
    let pool = ctx.database(1).await?;
    let report = make(&pool, &wanted).await?;

    match args.format {
        Format::Table => print!("{}", render::table(&report)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => print!("{}", render::csv(&report, section)?),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_default_to_a_screenful_and_files_to_everything() {
        assert_eq!(effective_limit(Format::Table, None), Some(50));
        assert_eq!(effective_limit(Format::Csv, None), None);
        assert_eq!(effective_limit(Format::Json, None), None);
        assert_eq!(effective_limit(Format::Json, Some(3)), Some(3));
        assert_eq!(effective_limit(Format::Table, Some(500)), Some(500));
    }

    #[test]
    fn a_section_is_for_csv_only() {
        assert_eq!(csv_section(Format::Csv, None), Ok(Section::Detail));
        assert_eq!(
            csv_section(Format::Csv, Some(Section::Light)),
            Ok(Section::Light)
        );
        assert!(csv_section(Format::Table, None).is_ok());
        assert!(csv_section(Format::Json, Some(Section::States)).is_err());
    }
}
