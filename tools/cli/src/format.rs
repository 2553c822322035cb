//! `--format table|json`: how a command that prints data prints it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::ValueEnum;

/// How a command prints what it found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a person.
    #[default]
    Table,
    /// One JSON document on stdout, for a script (messages go to stderr).
    Json,
}

/// A span as the CLI reads it: humantime's syntax (`90s`, `5m`, `1h 30m`, `2d`).
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// A moment as the CLI reads it: RFC 3339 (`2026-11-24T10:00:00Z`), or a span ago (`2h`: two hours
/// before now).
pub fn moment(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a span ago like 2h"))?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    Ok(Utc::now() - ago)
}

/// A span for a table cell, to the second, in humantime's syntax (`1h 2m 3s`).
pub fn span(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_moments_read_one_syntax() {
        assert_eq!(duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(duration("soon").is_err());
        let t = moment("2026-11-24T10:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T10:00:00+00:00");
        let ago = Utc::now() - moment("2h").unwrap();
        assert!((ago.num_seconds() - 7200).abs() < 5);
        assert_eq!(span(Duration::from_millis(3_723_400)), "1h 2m 3s");
    }
}
