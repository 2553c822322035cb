//! How the CLI reads and prints: `--format table|json`, and one syntax for every span and moment
//! (humantime's: `90s`, `5m`, `1h 30m`, `7d`, `2w`).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
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

/// A span as the CLI reads it: humantime's syntax (`90s`, `5m`, `1h 30m`, `2d`); a bare number is
/// seconds, as the wait flags always took.
pub fn duration(text: &str) -> Result<Duration, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|e| format!("{text:?}: {e}"));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e} (say 30s, 5m, 1h 30m)"))
}

/// A moment as the CLI reads it: RFC 3339 (`2026-11-24T10:00:00Z`), or a span ago (`2h`: two hours
/// before now).
pub fn moment(text: &str) -> Result<DateTime<Utc>, String> {
    text.parse::<TimeArg>()?.resolve(Utc::now())
}

/// A point in time from the command line, resolved against "now" when it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// An absolute time.
    At(DateTime<Utc>),
    /// That long before now.
    Ago(TimeDelta),
}

impl TimeArg {
    /// The time this stands for, with `now` as the present.
    pub fn resolve(self, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        match self {
            TimeArg::At(t) => Ok(t),
            TimeArg::Ago(d) => now
                .checked_sub_signed(d)
                .ok_or_else(|| "that duration reaches before the calendar starts".to_string()),
        }
    }
}

impl FromStr for TimeArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let too_long = || format!("{s:?} is too long a duration");
        match humantime::parse_duration(s) {
            Ok(ago) => {
                return TimeDelta::from_std(ago)
                    .map(TimeArg::Ago)
                    .map_err(|_| too_long());
            }
            Err(humantime::DurationError::NumberOverflow) => return Err(too_long()),
            Err(_) => {}
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| TimeArg::At(t.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "{s:?} is neither an RFC 3339 time (2024-05-01T00:00:00Z) nor a duration \
                     ago (30m, 24h, 7d, 1h 30m)"
                )
            })
    }
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
        assert_eq!(duration("30").unwrap(), Duration::from_secs(30));
        assert!(duration("soon").is_err());
        let t = moment("2026-11-24T10:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T10:00:00+00:00");
        let ago = Utc::now() - moment("2h").unwrap();
        assert!((ago.num_seconds() - 7200).abs() < 5);
        assert_eq!(span(Duration::from_millis(3_723_400)), "1h 2m 3s");
    }

    fn now() -> DateTime<Utc> {
        "2024-05-02T12:00:00Z".parse().unwrap()
    }

    fn resolve(s: &str) -> DateTime<Utc> {
        s.parse::<TimeArg>().unwrap().resolve(now()).unwrap()
    }

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(
            resolve("30m"),
            "2024-05-02T11:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            resolve("24h"),
            "2024-05-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            resolve("7d"),
            "2024-04-25T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            resolve("2w"),
            "2024-04-18T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            resolve("90s"),
            "2024-05-02T11:58:30Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(resolve("0h"), now());
        assert_eq!(
            resolve("1.5h"),
            "2024-05-02T10:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            resolve("1h 30m"),
            "2024-05-02T10:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn timestamps_keep_their_instant_whatever_the_offset() {
        assert_eq!(
            resolve("2024-05-01T08:00:00-05:00"),
            "2024-05-01T13:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            resolve("2024-05-01T00:00:00.250Z"),
            "2024-05-01T00:00:00.250Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn other_text_is_refused_with_both_shapes_named() {
        for bad in ["", "h", "24", "-5h", "yesterday", "2024-05-01"] {
            let err = bad.parse::<TimeArg>().unwrap_err();
            assert!(
                err.contains("RFC 3339") && err.contains("24h"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn a_duration_too_long_for_the_calendar_is_an_error() {
        let err = "99999999999999999w".parse::<TimeArg>().unwrap_err();
        assert!(err.contains("too long"), "{err}");
        let far = "9999999999w".parse::<TimeArg>().unwrap();
        assert!(far.resolve(now()).is_err());
    }
}
