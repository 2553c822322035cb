//! The report window's ends as the command line gives them: an RFC 3339 time, or a duration ago.

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};

/// A point in time from the command line.
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
        if let Some(ago) = parse_duration(s) {
            return ago.map(TimeArg::Ago);
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| TimeArg::At(t.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "{s:?} is neither an RFC 3339 time (2024-05-01T00:00:00Z) nor a duration \
                     ago (a whole number and s, m, h, d or w: 30m, 24h, 7d)"
                )
            })
    }
}

/// `30m`, `24h`, `7d` ... as a duration; `None` when `s` does not have that shape at all (so it may
/// be a timestamp), an error when it does but cannot be represented.
fn parse_duration(s: &str) -> Option<Result<TimeDelta, String>> {
    let unit = s.chars().last()?;
    let seconds_per_unit: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let too_long = || format!("{s:?} is too long a duration");
    Some(
        digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds_per_unit))
            .and_then(TimeDelta::try_seconds)
            .ok_or_else(too_long),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in [
            "",
            "h",
            "24",
            "-5h",
            "1.5h",
            "24 h",
            "yesterday",
            "2024-05-01",
            "7y",
        ] {
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
